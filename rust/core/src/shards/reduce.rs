//! Reduction of a capture into one `AgopAccumulator` per layer: each shard is read once, in file
//! order, into a reusable buffer ([`super::reader`]), hashed and reduced in the same pass (a
//! shard's rows count only if its blake3 matches the manifest); groups of shards run in parallel
//! with their own partial accumulators, merged in a fixed order.
//!
//! Memory is bounded independently of the capture's size: one read buffer per worker, and the
//! number of concurrent partial accumulator sets is capped by a byte budget and by the memory the
//! machine has; a reduction that cannot fit even one set fails before allocating, saying how much
//! the largest layer needs.

use super::manifest::{Manifest, ShardInfo};
use super::reader::{Buffer, CHUNK, WINDOW};
use super::stream::{verified_pass, walk_rows, Wanted};
use crate::dtype::{view_as_bf16, view_as_f16, RowDType};
use crate::error::{NilError, Result};
use crate::gram::{AgopAccumulator, NonFinitePolicy, Precision};
use crate::limits::{available_memory, dim_square_bytes, human};
use ndarray::ArrayView2;
use rayon::prelude::*;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Message of the error returned when the progress callback asks to stop.
pub const INTERRUPTED: &str = "interrupted";

/// Bytes allowed for concurrent partial accumulators (each worker holds one set).
const ACCUMULATOR_BUDGET: u64 = 512 << 20;

/// Source bytes handed to the accumulator at once (half the read window, so that one refill
/// serves two blocks).
const BLOCK_BYTES: usize = WINDOW / 2;

/// Multiply-adds allowed in one block (2³³: well under a second at f32 matrix-product speed), so
/// that a stop request (Ctrl-C) is seen within about a second even for wide layers.
const BLOCK_MACS: usize = 1 << 33;

/// Rows handed to the accumulator at once: about [`BLOCK_BYTES`] of stored rows, fewer for wide
/// layers (at most [`BLOCK_MACS`] multiply-adds), never fewer than 64.
fn block_rows(row_bytes: usize, dim: usize) -> usize {
    let by_bytes = BLOCK_BYTES / row_bytes.max(1);
    let by_work = BLOCK_MACS / dim.saturating_mul(dim).max(1);
    by_bytes.min(by_work).clamp(64, 1 << 20)
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
    /// Lowest index of a shard that failed (usize::MAX while none has): workers on later shards
    /// stop, workers on earlier ones finish, so the error reported is always the first shard's.
    failed_at: &'a AtomicUsize,
    /// Index of the shard being reduced.
    shard: usize,
}

impl Opts<'_> {
    /// Whether an earlier shard has failed, so this one need not be finished.
    fn halted(&self) -> bool {
        self.shard > self.failed_at.load(Ordering::Relaxed)
    }
}

/// A layer selected for reduction.
struct Selected {
    name: String,
    dim: usize,
}

pub(crate) fn interrupted() -> NilError {
    NilError::Value(INTERRUPTED.into())
}

/// Whether `e` is the error of a reduction stopped by its progress callback (Ctrl-C).
pub fn is_interrupt(e: &NilError) -> bool {
    matches!(e, NilError::Value(m) if m == INTERRUPTED)
}

/// Bytes one worker needs for the accumulators of `layers` (name, dim): their d×d f64 sums, the
/// largest update's working triangles (f64 scratch and f32 block, 12·d²) and the read buffer.
/// None when the total overflows.
fn set_bytes(layers: &[(&str, usize)]) -> Option<u64> {
    let mut total: u64 = (WINDOW as u64) + (16 << 20);
    let mut largest = 0u64;
    for (_, d) in layers {
        let b = dim_square_bytes(*d, 8)?;
        total = total.checked_add(b)?;
        largest = largest.max(dim_square_bytes(*d, 12)?);
    }
    total.checked_add(largest)
}

/// Checks that one set of accumulators for `layers` fits in the memory available; returns the
/// bytes it needs. The error names the largest layer and what it and the whole set need.
pub(crate) fn check_reduction_memory(path: &Path, layers: &[(&str, usize)]) -> Result<u64> {
    // The first of the largest layers (max_by_key keeps the last of equals: search backwards).
    let Some((name, dim)) = layers.iter().rev().max_by_key(|(_, d)| *d) else {
        return Ok(0);
    };
    let need = set_bytes(layers);
    let avail = available_memory();
    let fits = match (need, avail) {
        (Some(n), Some(a)) => n <= a,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if fits {
        return Ok(need.unwrap_or(0));
    }
    let one = dim_square_bytes(*dim, 8).map_or("more than 16 EiB".into(), human);
    Err(NilError::Memory(format!(
        "{}: layer {name} (dim {dim}) needs {one} for its d×d float64 accumulator; reducing the \
         {} selected layer(s) needs {} in all, and this machine has {} available \
         (select fewer layers with --layers, or analyse on a machine with more memory)",
        path.display(),
        layers.len(),
        need.map_or("more than 16 EiB".into(), human),
        avail.map_or("an unknown amount".into(), human),
    )))
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

/// The layers `names` selects (all when None), in the order given, without repeats.
fn select(dir: &Path, m: &Manifest, names: Option<&[String]>) -> Result<Vec<Selected>> {
    let Some(names) = names else {
        return Ok(m
            .layers
            .iter()
            .map(|l| Selected {
                name: l.name.clone(),
                dim: l.dim,
            })
            .collect());
    };
    let index = m.layer_index();
    let mut seen = HashSet::with_capacity(names.len());
    let mut out: Vec<Selected> = Vec::with_capacity(names.len());
    for n in names {
        let Some(&i) = index.get(n.as_str()) else {
            let mut have: Vec<&str> = m.layers.iter().take(20).map(|l| l.name.as_str()).collect();
            if m.layers.len() > 20 {
                have.push("…");
            }
            return Err(NilError::Value(format!(
                "{}: layer {n}: not in this capture; it has {have:?}",
                Manifest::path(dir).display()
            )));
        };
        if seen.insert(n.as_str()) {
            out.push(Selected {
                name: n.clone(),
                dim: m.layers[i].dim,
            });
        }
    }
    Ok(out)
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
    let selected = select(dir, &m, layers)?;
    if m.shards.is_empty() || chosen.is_empty() {
        return Err(NilError::format(
            Manifest::path(dir),
            "empty capture: the manifest lists no shards, so there are no rows to analyse",
        ));
    }
    let dims: Vec<(&str, usize)> = selected.iter().map(|s| (s.name.as_str(), s.dim)).collect();
    let per_set = check_reduction_memory(&Manifest::path(dir), &dims)?.max(1);
    let by_memory = available_memory().map_or(usize::MAX, |a| (a / per_set) as usize);
    let n = chosen.len();
    let workers = rayon::current_num_threads()
        .min(n)
        .min((ACCUMULATOR_BUDGET / per_set) as usize)
        .min(by_memory)
        .max(1);
    let per = n.div_ceil(workers);
    let groups: Vec<std::ops::Range<usize>> = (0..workers)
        .map(|w| chosen.start + (w * per).min(n)..chosen.start + ((w + 1) * per).min(n))
        .filter(|r| !r.is_empty())
        .collect();
    let index: HashMap<&str, usize> = selected
        .iter()
        .enumerate()
        .map(|(k, s)| (s.name.as_str(), k))
        .collect();
    let failed_at = AtomicUsize::new(usize::MAX);
    let results: Vec<Result<Vec<AgopAccumulator>>> = groups
        .into_par_iter()
        .map(|range| {
            let mut accs: Vec<AgopAccumulator> = selected
                .iter()
                .map(|s| AgopAccumulator::new(s.dim))
                .collect::<Result<_>>()?;
            let mut buf = Buffer::default();
            for i in range {
                let opts = Opts {
                    policy,
                    precision,
                    progress,
                    failed_at: &failed_at,
                    shard: i,
                };
                let r = reduce_shard(
                    dir,
                    &m,
                    &m.shards[i],
                    &index,
                    &selected,
                    &mut accs,
                    &opts,
                    &mut buf,
                );
                if let Err(e) = r {
                    if !is_interrupt(&e) {
                        failed_at.fetch_min(i, Ordering::Relaxed);
                    }
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

/// Reduces one shard into `accs` in one verified pass ([`verified_pass`]): its size and checksum
/// are checked on the way, and progress is reported about every [`CHUNK`] bytes.
#[allow(clippy::too_many_arguments)]
fn reduce_shard(
    dir: &Path,
    m: &Manifest,
    s: &ShardInfo,
    index: &HashMap<&str, usize>,
    selected: &[Selected],
    accs: &mut [AgopAccumulator],
    opts: &Opts<'_>,
    buf: &mut Buffer,
) -> Result<()> {
    let esize = m.dtype().size();
    let wanted: HashMap<&str, Wanted> = selected
        .iter()
        .map(|l| {
            let w = Wanted {
                dim: l.dim,
                block_rows: block_rows(l.dim * esize, l.dim),
            };
            (l.name.as_str(), w)
        })
        .collect();
    // Bytes processed but not yet reported (the header counts as processed).
    let pending = Cell::new(0u64);
    let report = |n: u64| -> bool {
        pending.set(pending.get() + n);
        if pending.get() >= CHUNK as u64 {
            return (opts.progress)(pending.take()) && !opts.halted();
        }
        !opts.halted()
    };
    verified_pass(dir, s, buf, |r| {
        let path = r.path.clone();
        walk_rows(
            r,
            m,
            s,
            &wanted,
            &mut |b| {
                let acc = &mut accs[index[b.layer]];
                update_block(acc, b.bytes, b.rows, b.dim, b.dtype, opts)
                    .map_err(|e| relabel(e, &path, b.layer, b.first_row as u64))?;
                Ok(report(b.bytes.len() as u64))
            },
            &mut |n| report(n),
        )?;
        let left = pending.take();
        if left > 0 && !(opts.progress)(left) {
            return Err(interrupted());
        }
        Ok(())
    })
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
pub(crate) mod tests {
    use super::*;
    use crate::shards::partial::{merge_partials, Partial};
    use crate::shards::reader::{Buffer, ShardReader};
    use crate::shards::shard_file::{write_shard, ShardTensor};
    use half::f16;
    use std::collections::HashMap;

    /// Writes a capture of `shards` shards with layers a (dim 3) and b (dim 2); returns its rows.
    pub(crate) fn capture(
        dir: &Path,
        shards: usize,
        seed: f64,
    ) -> HashMap<&'static str, Vec<Vec<f64>>> {
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

    pub(crate) fn tmp(tag: &str) -> std::path::PathBuf {
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
    fn a_shard_truncated_while_it_is_read_is_an_error_naming_it() {
        let dir = tmp("shrink");
        capture(&dir, 1, 0.37);
        let m = Manifest::read(&dir).unwrap();
        let mut buf = Buffer::default();
        // Opened (its size checked) and then truncated in place before the bytes are read.
        let mut r = ShardReader::open(&dir, &m.shards[0], &mut buf).unwrap();
        let path = dir.join(&m.shards[0].file);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(m.shards[0].bytes - 8).unwrap();
        r.header().unwrap();
        let e = r.finish().unwrap_err().to_string();
        assert!(
            e.contains("000000.safetensors") && e.contains("while nil was reading"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_as_shard_or_manifest_is_refused_without_blocking() {
        let dir = tmp("fifo");
        capture(&dir, 2, 0.37);
        let mkfifo = |p: &Path| {
            std::fs::remove_file(p).unwrap();
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        };
        mkfifo(&dir.join("shards/000001.safetensors"));
        let run = || {
            reduce_capture(
                &dir,
                None,
                NonFinitePolicy::Raise,
                Precision::Exact,
                &|_| true,
            )
        };
        let e = run().unwrap_err().to_string();
        assert!(
            e.contains("000001.safetensors") && e.contains("FIFO"),
            "{e}"
        );
        let report = crate::shards::verify_capture(&dir);
        assert_eq!(report.problems.len(), 1);
        assert!(report.problems[0].message.contains("FIFO"));
        mkfifo(&dir.join("manifest.json"));
        let e = run().unwrap_err().to_string();
        assert!(e.contains("manifest.json") && e.contains("FIFO"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn many_layers_reduce_in_linear_time() {
        // 200,000 layers of dim 1: a lookup that scans the layer list per tensor would take
        // minutes (2·10¹⁰ name comparisons); a linear reduction takes about a second.
        let dir = tmp("many");
        std::fs::create_dir_all(dir.join("shards")).unwrap();
        let n = 200_000usize;
        let names: Vec<String> = (0..n).map(|i| format!("l{i}")).collect();
        let one = half::f16::from_f64(0.5).to_bits().to_le_bytes();
        let ts: Vec<ShardTensor> = names
            .iter()
            .map(|name| ShardTensor {
                name,
                dtype: RowDType::F16,
                rows: 1,
                dim: 1,
                bytes: &one,
            })
            .collect();
        let file = "shards/000000.safetensors";
        let (bytes, hash) = write_shard(&dir.join(file), &ts, &HashMap::new()).unwrap();
        let rows: serde_json::Map<String, serde_json::Value> =
            names.iter().map(|n| (n.clone(), 1.into())).collect();
        let layers: Vec<serde_json::Value> = names
            .iter()
            .map(|n| serde_json::json!({"name": n, "dim": 1}))
            .collect();
        let manifest = serde_json::json!({
            "format": "nil.shards", "format_version": 1, "capture": {"dtype": "float16"},
            "layers": layers,
            "shards": [{"file": file, "bytes": bytes, "rows": rows, "blake3": hash}],
        });
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
        let t = std::time::Instant::now();
        let r = reduce_capture(&dir, None, NonFinitePolicy::Raise, Precision::Fast, &|_| {
            true
        })
        .unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(r.layers.len(), n);
        assert!(r
            .layers
            .iter()
            .all(|(_, a)| a.count() == 1 && a.sum_matrix() == [0.25]));
        let picked: Vec<String> = names.iter().rev().cloned().collect();
        let r = reduce_capture(
            &dir,
            Some(&picked),
            NonFinitePolicy::Raise,
            Precision::Fast,
            &|_| true,
        )
        .unwrap();
        assert_eq!(r.layers[0].0, names[n - 1]);
        assert!(crate::shards::verify_capture(&dir).problems.is_empty());
        let secs_all = t.elapsed().as_secs_f64();
        assert!(
            secs < 60.0 && secs_all < 120.0,
            "{secs} s, {secs_all} s in all"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_reduction_that_cannot_fit_in_memory_says_so_before_allocating() {
        let big = crate::limits::MAX_DIM;
        let e = check_reduction_memory(
            Path::new("cap/manifest.json"),
            &[("a", 4), ("wide", big), ("w2", big)],
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, NilError::Memory(_)), "{msg}");
        assert!(
            msg.contains("layer wide (dim 131072) needs 128.0 GiB") && msg.contains("available"),
            "{msg}"
        );
        assert!(check_reduction_memory(Path::new("m"), &[("a", 64)]).is_ok());
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
