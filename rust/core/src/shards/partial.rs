//! Partial AGOP results: named accumulators in the `agop.safetensors` format of
//! [`crate::agop_file`], plus the blake3 digests of the shards they count (metadata key
//! `nil.sources`, a JSON list). Partial results from several captures, processes or machines merge
//! exactly (sums and counts add), and a shard counted twice is refused.

use super::reduce::reduce_capture;
use crate::agop_file::{parse_accumulators, write_accumulators};
use crate::error::{NilError, Result};
use crate::gram::{AgopAccumulator, NonFinitePolicy, Precision};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata key listing the shards (blake3 hex) a partial file counts.
pub const SOURCES_KEY: &str = "nil.sources";

/// Named accumulators and the shards they count.
#[derive(Clone, Debug, Default)]
pub struct Partial {
    pub layers: Vec<(String, AgopAccumulator)>,
    /// blake3 of every shard counted; empty when unknown (accumulated on a device, say).
    pub sources: Vec<String>,
}

/// Writes a partial result atomically.
pub fn write_partial(path: &Path, p: &Partial, extra: &HashMap<String, String>) -> Result<()> {
    let mut meta = extra.clone();
    meta.insert(
        SOURCES_KEY.into(),
        serde_json::to_string(&p.sources).expect("strings serialise"),
    );
    let refs: Vec<(String, &AgopAccumulator)> =
        p.layers.iter().map(|(n, a)| (n.clone(), a)).collect();
    write_accumulators(path, &refs, &meta)
}

/// Reads a partial result written by [`write_partial`] (or any `agop.safetensors`).
pub fn read_partial(path: &Path) -> Result<Partial> {
    let bytes = std::fs::read(path).map_err(|e| NilError::io(path, e))?;
    let layers = parse_accumulators(path, &bytes)?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| NilError::format(path, format!("not a safetensors file: {e}")))?;
    let sources = match header.metadata().as_ref().and_then(|m| m.get(SOURCES_KEY)) {
        None => Vec::new(),
        Some(text) => serde_json::from_str::<Vec<String>>(text).map_err(|e| {
            NilError::format(
                path,
                format!("metadata {SOURCES_KEY}: expected a JSON list of blake3 digests: {e}"),
            )
        })?,
    };
    Ok(Partial { layers, sources })
}

/// A partial result from a capture directory (reduced, verified) or from a partial file.
pub fn load_partial(path: &Path, policy: NonFinitePolicy, precision: Precision) -> Result<Partial> {
    if path.is_dir() {
        let r = reduce_capture(path, None, policy, precision, &|_| true)?;
        Ok(Partial {
            layers: r.layers,
            sources: r.sources,
        })
    } else {
        read_partial(path)
    }
}

/// Merges partial results exactly. Every input must hold the same layers with the same dims, and
/// no shard may be counted by two inputs.
pub fn merge_partials(inputs: &[(PathBuf, Partial)]) -> Result<Partial> {
    let Some((first_path, first)) = inputs.first() else {
        return Err(NilError::Value(
            "merge: expected at least one input, found none".into(),
        ));
    };
    let mut out = first.clone();
    let mut seen: HashMap<String, &Path> = HashMap::new();
    for (path, p) in inputs {
        for s in &p.sources {
            if let Some(prev) = seen.insert(s.clone(), path) {
                return Err(NilError::Value(format!(
                    "{}: shard {s} is already counted by {}; merging it again would count its rows twice",
                    path.display(),
                    prev.display()
                )));
            }
        }
    }
    for (path, p) in &inputs[1..] {
        for (name, _) in &out.layers {
            if !p.layers.iter().any(|(n, _)| n == name) {
                return Err(NilError::format(
                    path,
                    format!(
                        "layer {name}: missing here but present in {}",
                        first_path.display()
                    ),
                ));
            }
        }
        for (name, acc) in &p.layers {
            let Some((_, target)) = out.layers.iter_mut().find(|(n, _)| n == name) else {
                return Err(NilError::format(
                    path,
                    format!(
                        "layer {name}: present here but missing in {}",
                        first_path.display()
                    ),
                ));
            };
            if target.dim() != acc.dim() {
                return Err(NilError::shape(
                    format!("{}: layer {name}: dim", path.display()),
                    format!("{} (as in {})", target.dim(), first_path.display()),
                    acc.dim(),
                ));
            }
            target.merge(acc)?;
        }
        out.sources.extend(p.sources.iter().cloned());
    }
    Ok(out)
}
