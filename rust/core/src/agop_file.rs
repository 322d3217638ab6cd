//! `agop.safetensors`: named accumulators as exact sums plus counts, mergeable across processes.
//!
//! Per accumulator NAME the file holds `NAME.sum` (f64, d×d, the full symmetric Σ g gᵀ),
//! `NAME.count` and `NAME.nonfinite` (u64, shape [1]); metadata `format = "nil.agop"`, `format_version = "1"`.

use crate::error::{NilError, Result};
use crate::fsutil::atomic_write;
use crate::gram::AgopAccumulator;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

pub const FORMAT: &str = "nil.agop";
pub const FORMAT_VERSION: &str = "1";

/// Writes `entries` to `path` atomically.
pub fn write_accumulators(
    path: &Path,
    entries: &[(String, &AgopAccumulator)],
    extra_metadata: &HashMap<String, String>,
) -> Result<()> {
    let mut buffers: Vec<(String, Vec<u8>, Vec<usize>, Dtype)> = Vec::new();
    for (name, acc) in entries {
        if name.is_empty() {
            return Err(NilError::Value("accumulator name must not be empty".into()));
        }
        let d = acc.dim();
        let sum: Vec<u8> = acc
            .sum_matrix()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
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
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| NilError::format(path, e.to_string()))?;
    atomic_write(path, &bytes)
}

/// Reads every accumulator in `path`, in name order.
pub fn read_accumulators(path: &Path) -> Result<Vec<(String, AgopAccumulator)>> {
    let bytes = std::fs::read(path).map_err(|e| NilError::io(path, e))?;
    parse_accumulators(path, &bytes)
}

/// Parses accumulator file bytes; `path` only names the file in errors.
pub fn parse_accumulators(path: &Path, bytes: &[u8]) -> Result<Vec<(String, AgopAccumulator)>> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| NilError::format(path, format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        other => {
            return Err(NilError::format(
                path,
                format!("expected metadata format {FORMAT:?}, found {other:?}"),
            ))
        }
    }
    if meta.get("format_version").map(String::as_str) != Some(FORMAT_VERSION) {
        return Err(NilError::format(
            path,
            format!(
                "expected format_version {FORMAT_VERSION}, found {:?}",
                meta.get("format_version")
            ),
        ));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| NilError::format(path, e.to_string()))?;
    let mut names: Vec<String> = st
        .names()
        .into_iter()
        .filter_map(|n| n.strip_suffix(".sum").map(String::from))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let sum = st
            .tensor(&format!("{name}.sum"))
            .map_err(|e| NilError::format(path, e.to_string()))?;
        let shape = sum.shape();
        if sum.dtype() != Dtype::F64 || shape.len() != 2 || shape[0] != shape[1] {
            return Err(NilError::format(
                path,
                format!(
                    "{name}.sum: expected a square F64 tensor, found {:?} {:?}",
                    sum.dtype(),
                    shape
                ),
            ));
        }
        let d = shape[0];
        let vals: Vec<f64> = sum
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let scalar = |suffix: &str| -> Result<u64> {
            let t = st.tensor(&format!("{name}.{suffix}")).map_err(|_| {
                NilError::format(path, format!("{name}: tensor {name}.{suffix} is missing"))
            })?;
            if t.dtype() != Dtype::U64 || t.data().len() != 8 {
                return Err(NilError::format(
                    path,
                    format!(
                        "{name}.{suffix}: expected one U64, found {:?} {:?}",
                        t.dtype(),
                        t.shape()
                    ),
                ));
            }
            Ok(u64::from_le_bytes(t.data().try_into().unwrap()))
        };
        let acc = AgopAccumulator::from_parts(d, &vals, scalar("count")?, scalar("nonfinite")?)?;
        out.push((name, acc));
    }
    Ok(out)
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
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(
            read_accumulators(&p),
            Err(NilError::Format { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
