//! `agop.safetensors`: named accumulators as exact sums plus counts, mergeable across processes.
//!
//! Per accumulator NAME the file holds `NAME.sum` (f64, d×d, the full symmetric Σ g gᵀ),
//! `NAME.count` and `NAME.nonfinite` (u64, shape [1]); metadata `format = "nil.agop"`,
//! `format_version = "2"` and `nil.blake3`, a digest of every tensor (name, dtype, shape, bytes)
//! and of `nil.sources` (docs/shard-format.md §4). A reader recomputes the digest and checks that
//! each sum is a plausible Gram matrix (finite, symmetric, non-negative diagonal, Cauchy–Schwarz,
//! all zero when no row was counted), so a flipped byte or an edited file is refused, naming it.

use crate::error::{NilError, Result};
use crate::fsutil::{atomic_write, read_regular};
use crate::gram::AgopAccumulator;
use crate::limits::{add_counts, check_dim, check_layer_count, check_name};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub const FORMAT: &str = "nil.agop";
/// Version 2 added the `nil.blake3` digest; version 1 files (no digest) are refused.
pub const FORMAT_VERSION: &str = "2";
/// Named accumulators, in name order.
pub type Accumulators = Vec<(String, AgopAccumulator)>;

/// Metadata key of the content digest.
pub const CHECKSUM_KEY: &str = "nil.blake3";
/// Metadata key listing the shards (blake3 hex) a partial file counts; covered by the digest.
pub const SOURCES_KEY: &str = "nil.sources";

/// Relative slack of the Cauchy–Schwarz check |S_ij| ≤ √(S_ii S_jj): far above the rounding of
/// f64 sums of f32 products (about 1e-6 in `fast` precision), far below any real inconsistency.
const CAUCHY_SCHWARZ_SLACK: f64 = 1e-4;

/// The content digest: for every tensor in name order its name, dtype, shape and bytes, each
/// length-prefixed (u64 little-endian), then a flag byte and the `nil.sources` text if present.
fn content_digest(tensors: &mut [(&str, Dtype, &[usize], &[u8])], sources: Option<&str>) -> String {
    tensors.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    for (name, dtype, shape, data) in tensors.iter() {
        field(name.as_bytes());
        field(format!("{dtype:?}").as_bytes());
        let dims: Vec<u8> = shape
            .iter()
            .flat_map(|d| (*d as u64).to_le_bytes())
            .collect();
        field(&dims);
        field(data);
    }
    match sources {
        Some(text) => {
            field(&[1]);
            field(text.as_bytes());
        }
        None => field(&[0]),
    }
    h.finalize().to_hex().to_string()
}

/// Checks that a d×d row-major sum and its counts could have come from an accumulator; the error
/// names `name` and the first entry at fault.
fn check_sum(
    name: &str,
    d: usize,
    sum: &[f64],
    count: u64,
    nonfinite: u64,
) -> std::result::Result<(), String> {
    add_counts(name, count, nonfinite).map_err(|e| e.to_string())?;
    let at = |i: usize, j: usize| sum[i * d + j];
    for i in 0..d {
        let sii = at(i, i);
        if !sii.is_finite() {
            return Err(format!(
                "{name}.sum: entry ({i}, {i}) is {sii}, not a finite number"
            ));
        }
        if sii < 0.0 {
            return Err(format!(
                "{name}.sum: diagonal entry ({i}, {i}) is {sii}; a sum of squares is never negative"
            ));
        }
    }
    for i in 0..d {
        for j in 0..i {
            let (a, b) = (at(i, j), at(j, i));
            if !a.is_finite() || !b.is_finite() {
                return Err(format!(
                    "{name}.sum: entry ({i}, {j}) is {a} and ({j}, {i}) is {b}, not finite numbers"
                ));
            }
            if a.to_bits() != b.to_bits() {
                return Err(format!(
                    "{name}.sum: not symmetric: entry ({i}, {j}) is {a:e}, entry ({j}, {i}) is {b:e}"
                ));
            }
            let bound = (at(i, i) * at(j, j)).sqrt();
            if a.abs() > bound * (1.0 + CAUCHY_SCHWARZ_SLACK) + f64::MIN_POSITIVE {
                return Err(format!(
                    "{name}.sum: entry ({i}, {j}) = {a:e} exceeds √(S_ii·S_jj) = {bound:e}: not a \
                     sum of outer products g gᵀ"
                ));
            }
        }
    }
    if count == 0 && sum.iter().any(|v| *v != 0.0) {
        return Err(format!(
            "{name}: count is 0 but the sum is not zero: the counts and the sum disagree"
        ));
    }
    Ok(())
}

/// Writes `entries` to `path` atomically, with the content digest; `extra_metadata` may hold
/// `nil.sources` (covered by the digest) and informative keys.
pub fn write_accumulators(
    path: &Path,
    entries: &[(String, &AgopAccumulator)],
    extra_metadata: &HashMap<String, String>,
) -> Result<()> {
    let ctx = path.display().to_string();
    check_layer_count(&ctx, entries.len())?;
    let mut seen = HashSet::with_capacity(entries.len());
    let mut buffers: Vec<(String, Vec<u8>, Vec<usize>, Dtype)> = Vec::new();
    for (name, acc) in entries {
        check_name(&ctx, name)?;
        if !seen.insert(name.as_str()) {
            return Err(NilError::Value(format!(
                "{ctx}: accumulator {name} given twice"
            )));
        }
        let d = acc.dim();
        let sum_values = acc.sum_matrix();
        check_sum(name, d, &sum_values, acc.count(), acc.nonfinite())
            .map_err(|m| NilError::Value(format!("{ctx}: refusing to write accumulator {m}")))?;
        let sum: Vec<u8> = sum_values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((format!("{name}.sum"), sum, vec![d, d], Dtype::F64));
        buffers.push((
            format!("{name}.count"),
            acc.count().to_le_bytes().to_vec(),
            vec![1],
            Dtype::U64,
        ));
        buffers.push((
            format!("{name}.nonfinite"),
            acc.nonfinite().to_le_bytes().to_vec(),
            vec![1],
            Dtype::U64,
        ));
    }
    let mut parts: Vec<(&str, Dtype, &[usize], &[u8])> = buffers
        .iter()
        .map(|(n, b, s, t)| (n.as_str(), *t, s.as_slice(), b.as_slice()))
        .collect();
    let digest = content_digest(
        &mut parts,
        extra_metadata.get(SOURCES_KEY).map(String::as_str),
    );
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(n, b, s, t)| {
            (
                n.clone(),
                TensorView::new(*t, s.clone(), b).expect("shape matches buffer"),
            )
        })
        .collect();
    let mut meta = extra_metadata.clone();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("format_version".into(), FORMAT_VERSION.into());
    meta.insert(CHECKSUM_KEY.into(), digest);
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| NilError::format(path, e.to_string()))?;
    crate::shards::shard_file::check_header_size(path, &bytes)?;
    atomic_write(path, &bytes)
}

/// Reads every accumulator in `path`, in name order.
pub fn read_accumulators(path: &Path) -> Result<Vec<(String, AgopAccumulator)>> {
    Ok(read_accumulator_file(path)?.0)
}

/// Reads an accumulator file: its accumulators in name order and its metadata (a regular file
/// only, whose size fits in memory; checked as [`parse_accumulators`] describes).
pub fn read_accumulator_file(path: &Path) -> Result<(Accumulators, HashMap<String, String>)> {
    let bytes = read_regular(path, "accumulator file")?;
    parse_accumulator_file(path, &bytes)
}

/// Parses accumulator file bytes; `path` only names the file in errors.
pub fn parse_accumulators(path: &Path, bytes: &[u8]) -> Result<Vec<(String, AgopAccumulator)>> {
    Ok(parse_accumulator_file(path, bytes)?.0)
}

/// Parses accumulator file bytes: checks format and version, recomputes the digest, checks every
/// tensor and every sum; returns the accumulators in name order and the metadata.
pub fn parse_accumulator_file(
    path: &Path,
    bytes: &[u8],
) -> Result<(Accumulators, HashMap<String, String>)> {
    let bad = |m: String| NilError::format(path, m);
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        other => {
            return Err(bad(format!(
                "expected metadata format {FORMAT:?} (an accumulator file), found {other:?}"
            )))
        }
    }
    match meta.get("format_version").map(String::as_str) {
        Some(FORMAT_VERSION) => {}
        Some("1") => {
            return Err(bad(
                "accumulator file format_version 1 carries no checksum, so its contents cannot \
                 be verified; re-create it with this nil (nil analyze --save-agop, nil merge or \
                 AgopAccumulator.save write format_version 2)"
                    .into(),
            ))
        }
        other => {
            return Err(bad(format!(
                "format_version: this nil reads accumulator files of version {FORMAT_VERSION}, \
                 found {other:?}"
            )))
        }
    }
    let Some(recorded) = meta.get(CHECKSUM_KEY) else {
        return Err(bad(format!(
            "metadata {CHECKSUM_KEY} (the content digest) is missing"
        )));
    };
    let tensors = st.tensors();
    let mut parts: Vec<(&str, Dtype, &[usize], &[u8])> = tensors
        .iter()
        .map(|(n, v)| (n.as_str(), v.dtype(), v.shape(), v.data()))
        .collect();
    let found = content_digest(&mut parts, meta.get(SOURCES_KEY).map(String::as_str));
    if &found != recorded {
        return Err(NilError::Checksum {
            path: path.to_path_buf(),
            recorded_in: "its header",
            expected: recorded.clone(),
            found,
        });
    }
    let mut names: Vec<String> = st
        .names()
        .into_iter()
        .filter_map(|n| n.strip_suffix(".sum").map(String::from))
        .collect();
    names.sort();
    check_layer_count(&path.display().to_string(), names.len())?;
    if st.len() != 3 * names.len() {
        let known: HashSet<String> = names
            .iter()
            .flat_map(|n| ["sum", "count", "nonfinite"].map(|s| format!("{n}.{s}")))
            .collect();
        let mut stray: Vec<&str> = st
            .names()
            .into_iter()
            .filter(|n| !known.contains(*n))
            .collect();
        stray.sort();
        return Err(bad(format!(
            "tensor {:?} belongs to no accumulator (expected NAME.sum, NAME.count and \
             NAME.nonfinite for every NAME)",
            stray.first().copied().unwrap_or("?")
        )));
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let sum = st
            .tensor(&format!("{name}.sum"))
            .map_err(|e| bad(e.to_string()))?;
        let shape = sum.shape();
        if sum.dtype() != Dtype::F64 || shape.len() != 2 || shape[0] != shape[1] {
            return Err(bad(format!(
                "{name}.sum: expected a square F64 tensor, found {:?} {:?}",
                sum.dtype(),
                shape
            )));
        }
        let d = shape[0];
        check_dim(&format!("{}: {name}.sum", path.display()), d)?;
        let scalar = |suffix: &str| -> Result<u64> {
            let t = st
                .tensor(&format!("{name}.{suffix}"))
                .map_err(|_| bad(format!("{name}: tensor {name}.{suffix} is missing")))?;
            if t.dtype() != Dtype::U64 || t.data().len() != 8 {
                return Err(bad(format!(
                    "{name}.{suffix}: expected one U64, found {:?} {:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(u64::from_le_bytes(t.data().try_into().expect("8 bytes")))
        };
        let (count, nonfinite) = (scalar("count")?, scalar("nonfinite")?);
        crate::limits::check_accumulator_memory(&format!("{}: {name}", path.display()), d)?;
        let vals: Vec<f64> = sum
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        check_sum(&name, d, &vals, count, nonfinite).map_err(bad)?;
        let acc = AgopAccumulator::from_parts(d, &vals, count, nonfinite)?;
        out.push((name, acc));
    }
    Ok((out, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gram::NonFinitePolicy;
    use ndarray::arr2;

    #[test]
    fn round_trip_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("nil-agopfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("agop.safetensors");
        let mut acc = AgopAccumulator::new(2).unwrap();
        acc.update(
            arr2(&[[1.0f32, 2.0], [3.0, -1.0]]).view(),
            NonFinitePolicy::Raise,
        )
        .unwrap();
        write_accumulators(&p, &[("blocks.0".into(), &acc)], &HashMap::new()).unwrap();
        let back = read_accumulators(&p).unwrap();
        assert_eq!(back[0].0, "blocks.0");
        assert_eq!(back[0].1.matrix(), acc.matrix());
        assert_eq!(back[0].1.count(), 2);
        let good = std::fs::read(&p).unwrap();
        // One flipped data byte: the digest catches it.
        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 20] ^= 0x04;
        std::fs::write(&p, &flipped).unwrap();
        let e = read_accumulators(&p).unwrap_err();
        assert!(matches!(e, NilError::Checksum { .. }), "{e}");
        // A version 1 file (no digest) is refused with the way out.
        let key = b"\"format_version\":\"2\"";
        let at = good.windows(key.len()).position(|w| w == key).unwrap();
        let mut v1 = good.clone();
        v1[at + key.len() - 2] = b'1';
        std::fs::write(&p, &v1).unwrap();
        let e = read_accumulators(&p).unwrap_err().to_string();
        assert!(e.contains("version 1") && e.contains("re-create"), "{e}");
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(
            read_accumulators(&p),
            Err(NilError::Format { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sums_that_no_accumulator_produces_are_refused() {
        let ok = [4.0, 2.0, 2.0, 9.0];
        assert!(check_sum("a", 2, &ok, 3, 0).is_ok());
        let e = check_sum("a", 2, &[4.0, 2.0, 2.5, 9.0], 3, 0).unwrap_err();
        assert!(e.contains("not symmetric"), "{e}");
        let e = check_sum("a", 2, &[4.0, 7.0, 7.0, 9.0], 3, 0).unwrap_err();
        assert!(e.contains("exceeds"), "{e}");
        let e = check_sum("a", 2, &[f64::NAN, 0.0, 0.0, 1.0], 3, 0).unwrap_err();
        assert!(e.contains("NaN"), "{e}");
        let e = check_sum("a", 2, &[-1.0, 0.0, 0.0, 1.0], 3, 0).unwrap_err();
        assert!(e.contains("negative"), "{e}");
        assert!(check_sum("a", 2, &ok, 0, 0)
            .unwrap_err()
            .contains("count is 0"));
        assert!(check_sum("a", 2, &ok, u64::MAX, 1)
            .unwrap_err()
            .contains("overflow"));
    }
}
