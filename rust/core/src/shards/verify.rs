//! Verification of a capture directory: every problem of the manifest and of every shard (size,
//! blake3 checksum, header, each layer's tensor), shards checked in parallel. Never writes.

use super::manifest::{Manifest, ShardInfo, SHARD_DIR};
use super::reader::{Buffer, ShardReader};
use super::shard_file::check_layer;
use crate::error::{NilError, Result};
use rayon::prelude::*;
use std::path::Path;

/// One problem found in a capture.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The file at fault.
    pub file: String,
    /// The layer at fault, where one is.
    pub layer: Option<String>,
    /// `io`, `format`, `checksum`, `dtype`, `shape`, `empty` or `memory`.
    pub kind: String,
    /// The full message (names file, layer, expected and found).
    pub message: String,
}

/// What `verify_capture` found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub shards: usize,
    pub bytes: u64,
    /// Total rows per layer, as the manifest records them.
    pub rows: Vec<(String, u64)>,
    pub problems: Vec<Problem>,
    /// Harmless findings: files a killed writer left behind, which a resumed writer replaces.
    pub notes: Vec<String>,
}

fn problem(err: &NilError, file: &Path, layer: Option<&str>) -> Problem {
    let kind = match err {
        NilError::Io { .. } => "io",
        NilError::Format { .. } => "format",
        NilError::Checksum { .. } => "checksum",
        NilError::DType { .. } => "dtype",
        NilError::Shape { .. } => "shape",
        NilError::NonFinite { .. } => "nonfinite",
        NilError::Value(_) => "value",
        NilError::Memory(_) => "memory",
    };
    Problem {
        file: file.display().to_string(),
        layer: layer.map(String::from),
        kind: kind.into(),
        message: err.to_string(),
    }
}

/// The checksum error of shard `s` when `found` differs from what the manifest records.
fn checksum(path: &Path, s: &ShardInfo, found: String) -> Result<()> {
    if found == s.blake3 {
        return Ok(());
    }
    Err(NilError::Checksum {
        path: path.to_path_buf(),
        recorded_in: "the manifest",
        expected: s.blake3.clone(),
        found,
    })
}

/// Every problem of shard `s`: one sequential read hashes the file and parses its header.
fn shard_problems(dir: &Path, m: &Manifest, s: &ShardInfo, buf: &mut Buffer) -> Vec<Problem> {
    let mut out = Vec::new();
    let path = dir.join(&s.file);
    let mut r = match ShardReader::open(dir, s, buf) {
        Ok(r) => r,
        Err(e) => {
            out.push(problem(&e, &path, None));
            return out;
        }
    };
    let mut layer_problems = Vec::new();
    match r.header() {
        Err(e) => layer_problems.push(problem(&e, &path, None)),
        Ok(tensors) => {
            for l in &m.layers {
                if let Err(e) =
                    check_layer(&path, &tensors, &l.name, l.dim, s.rows[&l.name], m.dtype())
                {
                    layer_problems.push(problem(&e, &path, Some(&l.name)));
                }
            }
        }
    }
    match r.finish() {
        Err(e) => out.push(problem(&e, &path, None)),
        Ok(found) => {
            if let Err(e) = checksum(&path, s, found) {
                out.push(problem(&e, &path, None));
            }
            out.extend(layer_problems);
        }
    }
    out
}

/// Files in `shards/` that the manifest does not list (a killed writer's leftovers).
fn stray_files(dir: &Path, m: &Manifest) -> Vec<String> {
    let listed: std::collections::HashSet<&str> =
        m.shards.iter().map(|s| s.file.as_str()).collect();
    let Ok(entries) = std::fs::read_dir(dir.join(SHARD_DIR)) else {
        return Vec::new();
    };
    let mut notes: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| format!("{SHARD_DIR}/{}", e.file_name().to_string_lossy()))
        .filter(|f| !listed.contains(f.as_str()))
        .map(|f| format!("{f}: not listed in the manifest (left by an interrupted writer; ignored by readers, replaced on resume)"))
        .collect();
    notes.sort();
    notes
}

/// Verifies a capture directory and reports every problem found; never modifies anything.
pub fn verify_capture(dir: &Path) -> VerifyReport {
    let mut report = VerifyReport::default();
    let m = match Manifest::read(dir) {
        Ok(m) => m,
        Err(e) => {
            report
                .problems
                .push(problem(&e, &Manifest::path(dir), None));
            return report;
        }
    };
    report.shards = m.shards.len();
    report.bytes = m.shards.iter().map(|s| s.bytes).sum();
    report.rows = m.total_rows();
    if m.shards.is_empty() {
        let e = NilError::format(
            Manifest::path(dir),
            "empty capture: the manifest lists no shards",
        );
        let mut p = problem(&e, &Manifest::path(dir), None);
        p.kind = "empty".into();
        report.problems.push(p);
    }
    // What analysing every layer here would need: reported, as analyze would fail on it.
    let dims: Vec<(&str, usize)> = m.layers.iter().map(|l| (l.name.as_str(), l.dim)).collect();
    if let Err(e) = super::reduce::check_reduction_memory(&Manifest::path(dir), &dims) {
        let largest = dims.iter().rev().max_by_key(|(_, d)| *d).map(|(n, _)| *n);
        report
            .problems
            .push(problem(&e, &Manifest::path(dir), largest));
    }
    let per_shard: Vec<Vec<Problem>> = m
        .shards
        .par_iter()
        .map_init(Buffer::default, |buf, s| shard_problems(dir, &m, s, buf))
        .collect();
    report.problems.extend(per_shard.into_iter().flatten());
    report.notes = stray_files(dir, &m);
    report
}

/// The first problem of shard `index` as an error, or Ok (used before resuming a capture).
pub fn verify_shard(dir: &Path, m: &Manifest, index: usize) -> Result<()> {
    let s = m.shards.get(index).ok_or_else(|| {
        NilError::Value(format!(
            "{}: no shard {index}",
            Manifest::path(dir).display()
        ))
    })?;
    let mut buf = Buffer::default();
    let mut r = ShardReader::open(dir, s, &mut buf)?;
    let path = r.path.clone();
    let tensors = r.header();
    checksum(&path, s, r.finish()?)?;
    let tensors = tensors?;
    for l in &m.layers {
        check_layer(&path, &tensors, &l.name, l.dim, s.rows[&l.name], m.dtype())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::RowDType;
    use crate::shards::shard_file::{write_shard, ShardTensor};
    use std::collections::HashMap;

    fn capture(dir: &Path, shards: usize) {
        std::fs::create_dir_all(dir.join(SHARD_DIR)).unwrap();
        let mut entries = Vec::new();
        for i in 0..shards {
            let bytes: Vec<u8> = (0..8u32)
                .flat_map(|v| ((v + i as u32) as f32).to_le_bytes())
                .collect();
            let t = [ShardTensor {
                name: "a",
                dtype: RowDType::F32,
                rows: 4,
                dim: 2,
                bytes: &bytes,
            }];
            let file = format!("{SHARD_DIR}/{i:06}.safetensors");
            let (n, h) = write_shard(&dir.join(&file), &t, &HashMap::new()).unwrap();
            entries
                .push(serde_json::json!({"file": file, "bytes": n, "rows": {"a": 4}, "blake3": h}));
        }
        let m = serde_json::json!({"format": "nil.shards", "format_version": 1, "capture": {"dtype": "float32"},
                                   "layers": [{"name": "a", "dim": 2}], "shards": entries});
        std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
    }

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("nil-verify-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn reports_every_problem_and_notes_leftovers() {
        let dir = tmp("all");
        capture(&dir, 3);
        assert!(verify_capture(&dir).problems.is_empty());
        std::fs::remove_file(dir.join("shards/000000.safetensors")).unwrap();
        let p2 = dir.join("shards/000002.safetensors");
        let b = std::fs::read(&p2).unwrap();
        std::fs::write(&p2, &b[..b.len() - 4]).unwrap();
        std::fs::write(dir.join("shards/.000003.safetensors.tmp-1"), b"x").unwrap();
        let r = verify_capture(&dir);
        let kinds: Vec<&str> = r.problems.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(kinds, ["io", "format"]);
        assert!(r.problems[1].message.contains("truncated"));
        assert_eq!(r.notes.len(), 1);
        assert!(verify_shard(&dir, &Manifest::read(&dir).unwrap(), 1).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_and_missing_captures_are_problems() {
        let dir = tmp("empty");
        capture(&dir, 0);
        assert_eq!(verify_capture(&dir).problems[0].kind, "empty");
        let r = verify_capture(&dir.join("nowhere"));
        assert_eq!(r.problems[0].kind, "io");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
