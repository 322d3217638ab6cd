//! Reduction of a capture into one `AgopAccumulator` per layer: shards are memory-mapped, hashed
//! and reduced in a single pass (a shard's rows count only if its blake3 matches the manifest),
//! groups of shards run in parallel with their own partial accumulators, merged in a fixed order.
//!
//! Memory is bounded independently of the capture's size: mapped pages are released block by
//! block, and the number of concurrent partial accumulator sets is capped by a byte budget.

use super::manifest::{Manifest, ShardInfo};
use super::shard_file::{check_layer, parse_header};
use super::verify::{check_size, hash_map, map_file, release, CHUNK};
use crate::dtype::{view_as_bf16, view_as_f16, RowDType};
use crate::error::{NilError, Result};
use crate::gram::{AgopAccumulator, NonFinitePolicy, Precision};
use memmap2::Mmap;
use ndarray::ArrayView2;
use rayon::prelude::*;
use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Message of the error returned when the progress callback asks to stop.
pub const INTERRUPTED: &str = "interrupted";

/// Bytes allowed for concurrent partial accumulators (each worker holds one set).
const ACCUMULATOR_BUDGET: usize = 512 << 20;

/// Source bytes handed to the accumulator at once (its pages are released after each block).
const BLOCK_BYTES: usize = 32 << 20;

/// Rows handed to the accumulator at once: about [`BLOCK_BYTES`] of stored rows.
fn block_rows(row_bytes: usize) -> usize {
    (BLOCK_BYTES / row_bytes.max(1)).clamp(64, 1 << 20)
}

/// The result of reducing a capture.
#[derive(Clone, Debug)]
pub struct Reduction {
    pub manifest: Manifest,
    /// One accumulator per selected layer, in manifest order.
    pub layers: Vec<(String, AgopAccumulator)>,
    /// blake3 of every shard reduced, in shard order (recorded in partial files against double counting).
    pub sources: Vec<String>,
}

/// Settings shared by every shard of one reduction.
struct Opts<'a> {
    policy: NonFinitePolicy,
    precision: Precision,
    progress: &'a (dyn Fn(u64) -> bool + Sync),
    stop: &'a AtomicBool,
}

/// A layer selected for reduction.
struct Selected {
    name: String,
    dim: usize,
}

fn interrupted() -> NilError {
    NilError::Value(INTERRUPTED.into())
}

fn is_interrupt(e: &NilError) -> bool {
    matches!(e, NilError::Value(m) if m == INTERRUPTED)
}

/// Reduces `dir` into per-layer accumulators. `layers` selects layers (all when None);
/// `precision` is passed to [`AgopAccumulator::update_with`]; `progress(bytes)` is called as bytes
/// are processed and stops the reduction when it returns false.
pub fn reduce_capture(
    dir: &Path,
    layers: Option<&[String]>,
    policy: NonFinitePolicy,
    precision: Precision,
    progress: &(dyn Fn(u64) -> bool + Sync),
) -> Result<Reduction> {
    reduce_capture_shards(dir, layers, policy, precision, progress, None)
}

/// [`reduce_capture`] restricted to the shards whose indices lie in `shards` (all when None): the
/// unit of work that map-reduce engines (Ray) hand to one task. `sources` lists only those shards,
/// so merging the partial results of disjoint ranges equals one reduction of the whole capture.
pub fn reduce_capture_shards(
    dir: &Path,
    layers: Option<&[String]>,
    policy: NonFinitePolicy,
    precision: Precision,
    progress: &(dyn Fn(u64) -> bool + Sync),
    shards: Option<std::ops::Range<usize>>,
) -> Result<Reduction> {
    let m = Manifest::read(dir)?;
    let chosen = shards.unwrap_or(0..m.shards.len());
    if chosen.end > m.shards.len() || chosen.start > chosen.end {
        return Err(NilError::Value(format!(
            "{}: shards {}..{} requested, the capture has {}",
            Manifest::path(dir).display(),
            chosen.start,
            chosen.end,
            m.shards.len()
        )));
    }
    let selected: Vec<Selected> = match layers {
        None => m
            .layers
            .iter()
            .map(|l| Selected {
                name: l.name.clone(),
                dim: l.dim,
            })
            .collect(),
        Some(names) => {
            let mut out: Vec<Selected> = Vec::new();
            for n in names {
                let Some(dim) = m.dim_of(n) else {
                    let have: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
                    return Err(NilError::Value(format!(
                        "{}: layer {n}: not in this capture; it has {have:?}",
                        Manifest::path(dir).display()
                    )));
                };
                if !out.iter().any(|s| &s.name == n) {
                    out.push(Selected {
                        name: n.clone(),
                        dim,
                    });
                }
            }
            out
        }
    };
    if m.shards.is_empty() || chosen.is_empty() {
        return Err(NilError::format(
            Manifest::path(dir),
            "empty capture: the manifest lists no shards, so there are no rows to analyse",
        ));
    }
    let n = chosen.len();
    let per_set: usize = selected.iter().map(|s| s.dim * s.dim * 8).sum::<usize>() + (16 << 20);
    let workers = rayon::current_num_threads()
        .min(n)
        .min((ACCUMULATOR_BUDGET / per_set).max(1))
        .max(1);
    let per = n.div_ceil(workers);
    let groups: Vec<std::ops::Range<usize>> = (0..workers)
        .map(|w| chosen.start + (w * per).min(n)..chosen.start + ((w + 1) * per).min(n))
        .filter(|r| !r.is_empty())
        .collect();
    let stop = AtomicBool::new(false);
    let results: Vec<Result<Vec<AgopAccumulator>>> = groups
        .into_par_iter()
        .map(|range| {
            let mut accs: Vec<AgopAccumulator> = selected
                .iter()
                .map(|s| AgopAccumulator::new(s.dim))
                .collect::<Result<_>>()?;
            for i in range {
                let opts = Opts {
                    policy,
                    precision,
                    progress,
                    stop: &stop,
                };
                let r = reduce_shard(dir, &m, &m.shards[i], &selected, &mut accs, &opts);
                if let Err(e) = r {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Ok(accs)
        })
        .collect();
    let mut total: Option<Vec<AgopAccumulator>> = None;
    let mut first_interrupt = None;
    for r in results {
        match r {
            Err(e) if is_interrupt(&e) => first_interrupt = first_interrupt.or(Some(e)),
            Err(e) => return Err(e),
            Ok(accs) => match total.as_mut() {
                None => total = Some(accs),
                Some(t) => {
                    for (a, b) in t.iter_mut().zip(&accs) {
                        a.merge(b)?;
                    }
                }
            },
        }
    }
    if let Some(e) = first_interrupt {
        return Err(e);
    }
    let accs = total.expect("at least one group");
    Ok(Reduction {
        layers: selected.into_iter().map(|s| s.name).zip(accs).collect(),
        sources: m.shards[chosen].iter().map(|s| s.blake3.clone()).collect(),
        manifest: m,
    })
}

/// Reduces one shard into `accs`, verifying its size and checksum on the way.
fn reduce_shard(
    dir: &Path,
    m: &Manifest,
    s: &ShardInfo,
    selected: &[Selected],
    accs: &mut [AgopAccumulator],
    opts: &Opts<'_>,
) -> Result<()> {
    let path = check_size(dir, s)?;
    let map = map_file(&path)?;
    let mut hasher = blake3::Hasher::new();
    let outcome = reduce_mapped(&path, &map, m, s, selected, accs, opts, &mut hasher);
    let found = match &outcome {
        Ok(hashed_to) => hash_map(&map, *hashed_to, &mut hasher),
        Err(e) if is_interrupt(e) => return outcome.map(|_| ()),
        // The shard failed to parse or held bad values: if its bytes are not the recorded ones,
        // say so rather than reporting the symptom.
        Err(_) => hash_map(&map, 0, &mut blake3::Hasher::new()),
    };
    if found != s.blake3 {
        return Err(NilError::Checksum {
            path,
            expected: s.blake3.clone(),
            found,
        });
    }
    outcome.map(|_| ())
}

/// The single pass over a mapped shard: hashes every byte in file order, reduces the selected
/// layers' rows block by block, releases pages behind it. Returns how far it hashed.
#[allow(clippy::too_many_arguments)]
fn reduce_mapped(
    path: &Path,
    map: &Mmap,
    m: &Manifest,
    s: &ShardInfo,
    selected: &[Selected],
    accs: &mut [AgopAccumulator],
    opts: &Opts<'_>,
    hasher: &mut blake3::Hasher,
) -> Result<usize> {
    let (progress, stop) = (opts.progress, opts.stop);
    let tensors = parse_header(path, map)?;
    for l in &m.layers {
        check_layer(path, &tensors, &l.name, l.dim, s.rows[&l.name], m.dtype())?;
    }
    let mut regions: Vec<(&str, usize, usize)> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.start, t.end))
        .collect();
    regions.sort_by_key(|r| (r.1, r.2));
    let dtype = m.dtype();
    let esize = dtype.size();
    let mut hashed = 0usize;
    for (name, start, end) in regions {
        if stop.load(Ordering::Relaxed) {
            return Err(interrupted());
        }
        hasher.update(&map[hashed..start]);
        let sel = selected.iter().position(|x| x.name == name);
        match sel {
            Some(k) => {
                let dim = selected[k].dim;
                let row_bytes = dim * esize;
                let br = block_rows(row_bytes);
                let rows = (end - start) / row_bytes;
                let mut r0 = 0;
                while r0 < rows {
                    let r1 = (r0 + br).min(rows);
                    let (b0, b1) = (start + r0 * row_bytes, start + r1 * row_bytes);
                    let bytes = &map[b0..b1];
                    hasher.update(bytes);
                    update_block(&mut accs[k], bytes, r1 - r0, dim, dtype, opts)
                        .map_err(|e| relabel(e, path, name, r0 as u64))?;
                    release(map, b0, b1);
                    if !progress((b1 - b0) as u64) || stop.load(Ordering::Relaxed) {
                        return Err(interrupted());
                    }
                    r0 = r1;
                }
            }
            None => {
                let mut at = start;
                while at < end {
                    let e = (at + CHUNK).min(end);
                    hasher.update(&map[at..e]);
                    release(map, at, e);
                    if !progress((e - at) as u64) {
                        return Err(interrupted());
                    }
                    at = e;
                }
            }
        }
        hashed = end;
    }
    // The header and padding, counted once the shard is done.
    let data: usize = tensors.values().map(|t| t.end - t.start).sum();
    if !progress((map.len() - data) as u64) {
        return Err(interrupted());
    }
    Ok(hashed)
}

/// Names the file and layer (and the row within the shard) in a non-finite error.
fn relabel(e: NilError, path: &Path, layer: &str, first_row: u64) -> NilError {
    match e {
        NilError::NonFinite { row, value, .. } => NilError::NonFinite {
            context: format!(
                "{}: layer {layer} (rows counted within this shard)",
                path.display()
            ),
            row: first_row + row,
            value,
        },
        NilError::Shape {
            context,
            expected,
            found,
        } => NilError::Shape {
            context: format!("{}: layer {layer}: {context}", path.display()),
            expected,
            found,
        },
        other => other,
    }
}

/// Adds `rows × dim` little-endian elements of `dtype` to `acc`, in place when aligned.
fn update_block(
    acc: &mut AgopAccumulator,
    bytes: &[u8],
    rows: usize,
    dim: usize,
    dtype: RowDType,
    opts: &Opts<'_>,
) -> Result<()> {
    let (policy, precision) = (opts.policy, opts.precision);
    let shape = (rows, dim);
    let view_err = |_| NilError::shape("shard block", format!("{rows}x{dim}"), bytes.len());
    match dtype {
        RowDType::F16 | RowDType::BF16 => {
            let words = as_words::<u16>(bytes);
            let v = ArrayView2::from_shape(shape, &words[..]).map_err(view_err)?;
            if dtype == RowDType::F16 {
                acc.update_with(view_as_f16(v), policy, precision)
            } else {
                acc.update_with(view_as_bf16(v), policy, precision)
            }
        }
        RowDType::F32 => {
            let vals = as_words::<f32>(bytes);
            let v = ArrayView2::from_shape(shape, &vals[..]).map_err(view_err)?;
            acc.update_with(v, policy, precision)
        }
        RowDType::F64 => {
            let vals = as_words::<f64>(bytes);
            let v = ArrayView2::from_shape(shape, &vals[..]).map_err(view_err)?;
            acc.update_with(v, policy, precision)
        }
    }
}

/// A plain number type decoded from little-endian bytes (valid for every bit pattern).
trait LeWord: Copy + 'static {
    const SIZE: usize;
    fn from_le(b: &[u8]) -> Self;
}

impl LeWord for u16 {
    const SIZE: usize = 2;
    fn from_le(b: &[u8]) -> Self {
        u16::from_le_bytes([b[0], b[1]])
    }
}

impl LeWord for f32 {
    const SIZE: usize = 4;
    fn from_le(b: &[u8]) -> Self {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl LeWord for f64 {
    const SIZE: usize = 8;
    fn from_le(b: &[u8]) -> Self {
        f64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
    }
}

/// Little-endian bytes as a slice of `T`: borrowed when aligned on a little-endian host, else decoded.
fn as_words<T: LeWord>(bytes: &[u8]) -> Cow<'_, [T]> {
    let n = bytes.len() / T::SIZE;
    if cfg!(target_endian = "little") && (bytes.as_ptr() as usize) % std::mem::align_of::<T>() == 0
    {
        // SAFETY: T is a plain number type valid for every bit pattern, the pointer is aligned for
        // T, and n * size_of::<T>() bytes lie within `bytes`, borrowed for the same lifetime.
        Cow::Borrowed(unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, n) })
    } else {
        Cow::Owned(bytes.chunks_exact(T::SIZE).map(T::from_le).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::partial::{merge_partials, Partial};
    use crate::shards::shard_file::{write_shard, ShardTensor};
    use half::f16;
    use std::collections::HashMap;

    /// Writes a capture of `shards` shards with layers a (dim 3) and b (dim 2); returns its rows.
    fn capture(dir: &Path, shards: usize, seed: f64) -> HashMap<&'static str, Vec<Vec<f64>>> {
        std::fs::create_dir_all(dir.join("shards")).unwrap();
        let mut all: HashMap<&str, Vec<Vec<f64>>> = HashMap::new();
        let mut entries = Vec::new();
        let mut x = seed;
        for i in 0..shards {
            let mut bufs = Vec::new();
            let mut rows_of = serde_json::Map::new();
            for (name, dim, rows) in [("a", 3usize, 5 + i), ("b", 2, 4)] {
                let mut bytes = Vec::new();
                for _ in 0..rows {
                    let mut row = Vec::new();
                    for _ in 0..dim {
                        x = (x * 3.7 + 0.11).fract() - 0.5;
                        let h = f16::from_f64(x);
                        row.push(h.to_f64());
                        bytes.extend(h.to_bits().to_le_bytes());
                    }
                    all.entry(name).or_default().push(row);
                }
                bufs.push((name, dim, rows, bytes));
                rows_of.insert(name.into(), rows.into());
            }
            let ts: Vec<ShardTensor> = bufs
                .iter()
                .map(|(n, d, r, b)| ShardTensor {
                    name: n,
                    dtype: RowDType::F16,
                    rows: *r,
                    dim: *d,
                    bytes: b,
                })
                .collect();
            let file = format!("shards/{i:06}.safetensors");
            let (bytes, hash) = write_shard(&dir.join(&file), &ts, &HashMap::new()).unwrap();
            entries.push(
                serde_json::json!({"file": file, "bytes": bytes, "rows": rows_of, "blake3": hash}),
            );
        }
        let manifest = serde_json::json!({
            "format": "nil.shards", "format_version": 1, "capture": {"dtype": "float16"},
            "layers": [{"name": "a", "dim": 3}, {"name": "b", "dim": 2}], "shards": entries,
        });
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
        all
    }

    fn naive(rows: &[Vec<f64>]) -> Vec<f64> {
        let d = rows[0].len();
        let mut m = vec![0.0; d * d];
        for r in rows {
            for i in 0..d {
                for j in 0..d {
                    m[i * d + j] += r[i] * r[j];
                }
            }
        }
        m.iter().map(|v| v / rows.len() as f64).collect()
    }

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("nil-reduce-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn reduces_to_the_naive_agop_and_verifies() {
        let dir = tmp("ok");
        let rows = capture(&dir, 5, 0.37);
        let r = reduce_capture(
            &dir,
            None,
            NonFinitePolicy::Raise,
            Precision::Exact,
            &|_| true,
        )
        .unwrap();
        for (name, acc) in &r.layers {
            let want = naive(&rows[name.as_str()]);
            assert_eq!(acc.count() as usize, rows[name.as_str()].len());
            for (a, b) in acc.matrix().iter().zip(want) {
                assert!((a - b).abs() < 1e-12);
            }
        }
        assert!(crate::shards::verify_capture(&dir).problems.is_empty());
        let only_b = reduce_capture(
            &dir,
            Some(&["b".to_string()]),
            NonFinitePolicy::Raise,
            Precision::Exact,
            &|_| true,
        )
        .unwrap();
        assert_eq!(only_b.layers.len(), 1);
        assert!(reduce_capture(
            &dir,
            Some(&["zz".to_string()]),
            NonFinitePolicy::Raise,
            Precision::Exact,
            &|_| true
        )
        .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_byte_is_a_checksum_error_and_verify_reports_it() {
        let dir = tmp("bad");
        capture(&dir, 3, 0.37);
        let p = dir.join("shards/000001.safetensors");
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0x40;
        std::fs::write(&p, &bytes).unwrap();
        let err = reduce_capture(
            &dir,
            None,
            NonFinitePolicy::Raise,
            Precision::Exact,
            &|_| true,
        )
        .unwrap_err();
        assert!(matches!(err, NilError::Checksum { .. }), "{err}");
        let report = crate::shards::verify_capture(&dir);
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].kind, "checksum");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn partials_merge_exactly_and_refuse_double_counting() {
        let (d1, d2) = (tmp("p1"), tmp("p2"));
        let r1 = capture(&d1, 2, 0.37);
        let r2 = capture(&d2, 3, 0.11);
        let p = |d: &Path| {
            let r = reduce_capture(d, None, NonFinitePolicy::Raise, Precision::Exact, &|_| true)
                .unwrap();
            (
                d.to_path_buf(),
                Partial {
                    layers: r.layers,
                    sources: r.sources,
                },
            )
        };
        let (a, b) = (p(&d1), p(&d2));
        let merged = merge_partials(&[a.clone(), b.clone()]).unwrap();
        let mut sum = a.1.layers[0].1.clone();
        sum.merge(&b.1.layers[0].1).unwrap();
        assert_eq!(merged.layers[0].1.sum_matrix(), sum.sum_matrix());
        assert_eq!(
            merged.layers[0].1.count() as usize,
            r1["a"].len() + r2["a"].len()
        );
        assert!(merge_partials(&[a.clone(), a]).is_err());
        std::fs::remove_dir_all(&d1).unwrap();
        std::fs::remove_dir_all(&d2).unwrap();
    }
}
