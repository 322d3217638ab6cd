//! One verified pass over a shard: every byte is hashed in file order as it is read, the selected
//! layers' rows are handed out block by block, and the pass succeeds only if the shard's blake3
//! matches the manifest. The CPU reduction ([`super::reduce`]) and the rows streamed to a torch
//! device (`nil analyze --device cuda`, through [`stream_shard`]) share it, so what is reduced is
//! exactly what was hashed, in both.

use super::manifest::{Manifest, ShardInfo};
use super::reader::{Buffer, ShardReader};
use super::reduce::{interrupted, is_interrupt};
use super::shard_file::check_layer;
use crate::dtype::RowDType;
use crate::error::{NilError, Result};
use std::collections::HashMap;
use std::path::Path;

/// A block of consecutive rows of one layer, as stored (little-endian `dtype` elements).
pub struct RowBlock<'a> {
    pub layer: &'a str,
    /// Index of the block's first row among this layer's rows in this shard.
    pub first_row: usize,
    pub rows: usize,
    pub dim: usize,
    pub dtype: RowDType,
    /// `rows × dim` elements, borrowed from the read buffer until the callback returns.
    pub bytes: &'a [u8],
}

/// A layer to hand out: its row width and the most rows per block.
#[derive(Clone, Copy, Debug)]
pub struct Wanted {
    pub dim: usize,
    pub block_rows: usize,
}

/// Opens shard `s` of `dir`, runs `pass` over it, and checks the blake3 of every byte against the
/// manifest once the pass has read what it needs (the rest is hashed then). A pass that failed
/// on bytes that are not the recorded ones reports the checksum, not the symptom; a stop request
/// ([`is_interrupt`]) is returned as it is.
pub(crate) fn verified_pass(
    dir: &Path,
    s: &ShardInfo,
    buf: &mut Buffer,
    pass: impl FnOnce(&mut ShardReader<'_>) -> Result<()>,
) -> Result<()> {
    let mut r = ShardReader::open(dir, s, buf)?;
    let outcome = pass(&mut r);
    let path = r.path.clone();
    let mismatch = |found: String| NilError::Checksum {
        path: path.clone(),
        recorded_in: "the manifest",
        expected: s.blake3.clone(),
        found,
    };
    match outcome {
        Ok(()) => {
            let found = r.finish()?;
            if found != s.blake3 {
                return Err(mismatch(found));
            }
            Ok(())
        }
        Err(e) if is_interrupt(&e) => Err(e),
        Err(e) => match r.finish() {
            Ok(found) if found != s.blake3 => Err(mismatch(found)),
            _ => Err(e),
        },
    }
}

/// Reads the header of an opened shard, checks every manifest layer against it, and walks its
/// tensors in file order: the rows of each layer in `wanted` go to `on_block` in blocks of at most
/// its `block_rows` rows; other bytes (the header included) are hashed and reported to `on_skip`.
/// Either callback returning false stops the walk with the interrupt error.
pub(crate) fn walk_rows(
    r: &mut ShardReader<'_>,
    m: &Manifest,
    s: &ShardInfo,
    wanted: &HashMap<&str, Wanted>,
    on_block: &mut dyn FnMut(RowBlock<'_>) -> Result<bool>,
    on_skip: &mut dyn FnMut(u64) -> bool,
) -> Result<()> {
    let path = r.path.clone();
    let tensors = r.header()?;
    if !on_skip(r.position()) {
        return Err(interrupted());
    }
    let dtype = m.dtype();
    for l in &m.layers {
        check_layer(&path, &tensors, &l.name, l.dim, s.rows[&l.name], dtype)?;
    }
    let mut regions: Vec<(&str, usize, usize)> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.start, t.end))
        .collect();
    regions.sort_by_key(|r| (r.1, r.2));
    let esize = dtype.size();
    for (name, start, end) in regions {
        let at = r.position();
        if (start as u64) > at {
            // Not produced by a valid header (tensors are contiguous), but hash any gap all the same.
            r.skip(start as u64 - at, &mut |_| true)?;
        }
        match wanted.get(name) {
            Some(w) => {
                let row_bytes = w.dim * esize;
                let rows = (end - start) / row_bytes;
                let step = w.block_rows.max(1);
                let mut r0 = 0;
                while r0 < rows {
                    let r1 = (r0 + step).min(rows);
                    let bytes = r.next((r1 - r0) * row_bytes)?;
                    let block = RowBlock {
                        layer: name,
                        first_row: r0,
                        rows: r1 - r0,
                        dim: w.dim,
                        dtype,
                        bytes,
                    };
                    if !on_block(block)? {
                        return Err(interrupted());
                    }
                    r0 = r1;
                }
            }
            None => {
                let mut go = true;
                r.skip((end - start) as u64, &mut |n| {
                    go = on_skip(n);
                    go
                })?;
                if !go {
                    return Err(interrupted());
                }
            }
        }
    }
    Ok(())
}

/// Hands out the rows of `layers` (name, most rows per block) of shard `index` of capture `dir`,
/// in file order, to `on_block`; returns Ok only if every byte of the shard hashed to the
/// manifest's blake3, so a caller counts the rows it was given only then. `on_block` returning
/// false stops the pass with the interrupt error ([`is_interrupt`]).
pub fn stream_shard(
    dir: &Path,
    m: &Manifest,
    index: usize,
    layers: &[(String, usize)],
    on_block: &mut dyn FnMut(RowBlock<'_>) -> Result<bool>,
) -> Result<()> {
    let Some(s) = m.shards.get(index) else {
        return Err(NilError::Value(format!(
            "{}: shard {index} requested, the capture has {}",
            Manifest::path(dir).display(),
            m.shards.len()
        )));
    };
    let by_name = m.layer_index();
    let mut wanted = HashMap::with_capacity(layers.len());
    for (name, block_rows) in layers {
        let Some(&i) = by_name.get(name.as_str()) else {
            return Err(NilError::Value(format!(
                "{}: layer {name}: not in this capture",
                Manifest::path(dir).display()
            )));
        };
        if *block_rows == 0 {
            return Err(NilError::Value(format!(
                "layer {name}: rows per block must be at least 1, found 0"
            )));
        }
        wanted.insert(
            name.as_str(),
            Wanted {
                dim: m.layers[i].dim,
                block_rows: *block_rows,
            },
        );
    }
    let mut buf = Buffer::default();
    verified_pass(dir, s, &mut buf, |r| {
        walk_rows(r, m, s, &wanted, on_block, &mut |_| true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::reduce::tests::{capture, tmp};
    use half::f16;

    /// Every block handed out, as (layer, first row, rows of f64 values).
    fn stream_all(
        dir: &Path,
        layers: &[(String, usize)],
    ) -> Result<Vec<(String, usize, Vec<Vec<f64>>)>> {
        let m = Manifest::read(dir)?;
        let mut out = Vec::new();
        for i in 0..m.shards.len() {
            stream_shard(dir, &m, i, layers, &mut |b| {
                assert_eq!(b.bytes.len(), b.rows * b.dim * 2);
                let vals: Vec<f64> = b
                    .bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f64())
                    .collect();
                let rows = vals.chunks(b.dim).map(|r| r.to_vec()).collect();
                out.push((b.layer.to_string(), b.first_row, rows));
                Ok(true)
            })?;
        }
        Ok(out)
    }

    #[test]
    fn hands_out_every_selected_row_in_file_order_and_blocks() {
        let dir = tmp("stream-ok");
        let rows = capture(&dir, 3, 0.41);
        let blocks = stream_all(&dir, &[("a".into(), 2), ("b".into(), 10)]).unwrap();
        let a: Vec<Vec<f64>> = blocks
            .iter()
            .filter(|b| b.0 == "a")
            .flat_map(|b| b.2.clone())
            .collect();
        let b: Vec<Vec<f64>> = blocks
            .iter()
            .filter(|b| b.0 == "b")
            .flat_map(|b| b.2.clone())
            .collect();
        assert_eq!(a, rows["a"]);
        assert_eq!(b, rows["b"]);
        assert!(blocks
            .iter()
            .all(|b| b.2.len() <= if b.0 == "a" { 2 } else { 10 }));
        // Shard 0 holds 5 rows of a: blocks start at rows 0, 2, 4.
        let firsts: Vec<usize> = blocks.iter().take(3).map(|b| b.1).collect();
        assert_eq!(firsts, vec![0, 2, 4]);
        let only_b = stream_all(&dir, &[("b".into(), 3)]).unwrap();
        assert!(only_b.iter().all(|b| b.0 == "b"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_changed_byte_fails_the_pass_with_the_checksum() {
        let dir = tmp("stream-bad");
        capture(&dir, 2, 0.23);
        let file = dir.join("shards/000001.safetensors");
        let mut bytes = std::fs::read(&file).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0x01; // a row of the last tensor: the pass reads it, the digest differs
        std::fs::write(&file, &bytes).unwrap();
        let e = stream_all(&dir, &[("a".into(), 4)]).unwrap_err();
        assert!(matches!(e, NilError::Checksum { .. }), "{e}");
        assert!(e.to_string().contains("000001.safetensors"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stops_when_asked_and_refuses_bad_requests() {
        let dir = tmp("stream-stop");
        capture(&dir, 1, 0.61);
        let m = Manifest::read(&dir).unwrap();
        let mut seen = 0;
        let e = stream_shard(&dir, &m, 0, &[("a".into(), 1)], &mut |_| {
            seen += 1;
            Ok(seen < 2)
        })
        .unwrap_err();
        assert!(is_interrupt(&e));
        assert_eq!(seen, 2);
        let e = stream_shard(&dir, &m, 5, &[("a".into(), 1)], &mut |_| Ok(true)).unwrap_err();
        assert!(e.to_string().contains("shard 5 requested"), "{e}");
        let e = stream_shard(&dir, &m, 0, &[("zz".into(), 1)], &mut |_| Ok(true)).unwrap_err();
        assert!(e.to_string().contains("layer zz"), "{e}");
        let e = stream_shard(&dir, &m, 0, &[("a".into(), 0)], &mut |_| Ok(true)).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
