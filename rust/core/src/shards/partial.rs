//! Partial AGOP results: named accumulators in the `agop.safetensors` format of
//! [`crate::agop_file`], plus the blake3 digests of the shards they count (metadata key
//! `nil.sources`, a JSON list). Partial results from several captures, processes or machines merge
//! exactly (sums and counts add), and a shard counted twice is refused.

use super::reduce::reduce_capture;
pub use crate::agop_file::SOURCES_KEY;
use crate::agop_file::{read_accumulator_file, write_accumulators};
use crate::error::{NilError, Result};
use crate::fsutil::{describe, stat};
use crate::gram::{AgopAccumulator, NonFinitePolicy, Precision};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

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
    let (layers, meta) = read_accumulator_file(path)?;
    let sources = match meta.get(SOURCES_KEY) {
        None => Vec::new(),
        Some(text) => serde_json::from_str::<Vec<String>>(text).map_err(|e| {
            NilError::format(
                path,
                format!("metadata {SOURCES_KEY}: expected a JSON list of blake3 digests: {e}"),
            )
        })?,
    };
    let mut seen = HashSet::with_capacity(sources.len());
    for s in &sources {
        if !seen.insert(s.as_str()) {
            return Err(NilError::format(
                path,
                format!("metadata {SOURCES_KEY}: shard {s} is listed twice (its rows would be counted twice)"),
            ));
        }
    }
    Ok(Partial { layers, sources })
}

/// What an input path is: a capture directory or a partial AGOP file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InputKind {
    Capture,
    PartialFile,
}

/// Classifies `path` for analyze/merge: a directory is a capture, a regular file a partial file;
/// anything else (missing, a FIFO, a device, a symbolic-link loop) is an error naming it.
pub fn input_kind(path: &Path) -> Result<InputKind> {
    let meta = stat(path)?;
    if meta.is_dir() {
        Ok(InputKind::Capture)
    } else if meta.is_file() {
        Ok(InputKind::PartialFile)
    } else {
        Err(NilError::format(
            path,
            format!(
                "expected a capture directory or a partial AGOP file, found {}",
                describe(&meta)
            ),
        ))
    }
}

/// A partial result from a capture directory (reduced, verified) or from a partial file;
/// `progress` as in [`reduce_capture`].
pub fn load_partial(
    path: &Path,
    policy: NonFinitePolicy,
    precision: Precision,
    progress: &(dyn Fn(u64) -> bool + Sync),
) -> Result<Partial> {
    match input_kind(path)? {
        InputKind::Capture => {
            let r = reduce_capture(path, None, policy, precision, progress)?;
            Ok(Partial {
                layers: r.layers,
                sources: r.sources,
            })
        }
        InputKind::PartialFile => read_partial(path),
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
    let index: HashMap<String, usize> = out
        .layers
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.clone(), i))
        .collect();
    for (path, p) in &inputs[1..] {
        let here: HashSet<&str> = p.layers.iter().map(|(n, _)| n.as_str()).collect();
        for (name, _) in &out.layers {
            if !here.contains(name.as_str()) {
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
            let Some((_, target)) = index.get(name).map(|&i| &mut out.layers[i]) else {
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
            target.merge(acc).map_err(|e| match e {
                NilError::Value(m) => {
                    NilError::Value(format!("{}: layer {name}: {m}", path.display()))
                }
                other => other,
            })?;
        }
        out.sources.extend(p.sources.iter().cloned());
    }
    Ok(out)
}
