//! `manifest.json` of a capture directory: what the capture is (model, settings, layers) and which
//! shards it holds, each with its size, row counts and blake3 checksum.
//!
//! Parsing is strict about what readers rely on (format, version, layers, shard entries) and
//! tolerant of fields it does not know, so that later minor additions stay readable.

use crate::dtype::RowDType;
use crate::error::{NilError, Result};
use crate::fsutil::{read_regular, stat};
use crate::limits::{add_counts, check_dim, check_layer_count, check_name};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// File name of the manifest inside a capture directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Value of the `format` field.
pub const FORMAT: &str = "nil.shards";
/// The one format version this reader understands.
pub const FORMAT_VERSION: u32 = 1;
/// Subdirectory holding the shard files.
pub const SHARD_DIR: &str = "shards";

/// Description of the model that produced the rows (every field optional).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ModelInfo {
    pub family: Option<String>,
    pub depth: Option<u64>,
    pub width: Option<u64>,
    pub params: Option<u64>,
    pub budget: Option<u64>,
    /// Depth/width ratio R_D/W.
    pub ratio: Option<f64>,
}

/// How the rows were captured; `dtype` is the element type of every shard tensor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CaptureInfo {
    pub dtype: String,
    pub mode: Option<String>,
    pub probes: Option<u64>,
    pub projection_seed: Option<u64>,
    pub token_stride: Option<u64>,
}

/// One captured layer: its name (the tensor name in every shard) and row length.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LayerInfo {
    pub name: String,
    pub dim: usize,
}

/// One shard file as the writer recorded it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ShardInfo {
    /// Path relative to the capture directory: `shards/NNNNNN.safetensors`.
    pub file: String,
    /// Exact file size in bytes.
    pub bytes: u64,
    /// Rows per layer in this shard.
    pub rows: BTreeMap<String, u64>,
    /// blake3 of the whole file, 64 lowercase hex digits.
    pub blake3: String,
}

/// The whole manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    #[serde(default)]
    pub model: ModelInfo,
    pub capture: CaptureInfo,
    pub layers: Vec<LayerInfo>,
    #[serde(default)]
    pub shards: Vec<ShardInfo>,
}

/// The file name shard `index` must have.
pub fn shard_file_name(index: usize) -> String {
    format!("{SHARD_DIR}/{index:06}.safetensors")
}

impl Manifest {
    /// Path of the manifest of capture directory `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Reads and validates `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let bytes = Self::read_bytes(dir)?;
        Self::parse(&path, &bytes)
    }

    /// The bytes of `dir/manifest.json`, refusing a capture path that is not a directory and a
    /// manifest that is not a regular file (a FIFO would block the read forever).
    pub fn read_bytes(dir: &Path) -> Result<Vec<u8>> {
        let meta = stat(dir)?;
        if !meta.is_dir() {
            return Err(NilError::format(
                dir,
                format!(
                    "expected a capture directory (holding manifest.json and shards/), found {}",
                    crate::fsutil::describe(&meta)
                ),
            ));
        }
        read_regular(&Self::path(dir), "manifest")
    }

    /// Parses and validates manifest bytes; `path` only names the file in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        // The version first (a newer capture gets a clear "use that release" error), parsed
        // without building a JSON tree: manifests of many layers are large.
        #[derive(Deserialize)]
        struct Version {
            format_version: Option<serde_json::Value>,
        }
        let v: Version = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                NilError::format(
                    path,
                    format!("expected a JSON object (a nil capture manifest): {e}"),
                )
            } else {
                NilError::format(path, format!("not valid JSON: {e}"))
            }
        })?;
        match v.format_version {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(FORMAT_VERSION as u64) => {}
            Some(v) => {
                return Err(NilError::format(
                    path,
                    format!(
                        "format_version: this nil reads version {FORMAT_VERSION}, found {v}; \
                         use the nil release that wrote this capture"
                    ),
                ))
            }
            None => {
                return Err(NilError::format(
                    path,
                    "format_version is missing: not a nil capture manifest",
                ))
            }
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            NilError::format(
                path,
                format!("manifest does not follow format {FORMAT} v{FORMAT_VERSION}: {e}"),
            )
        })?;
        m.validate(path)?;
        Ok(m)
    }

    /// The row element type of every shard tensor.
    pub fn dtype(&self) -> RowDType {
        RowDType::parse(&self.capture.dtype).expect("validated")
    }

    /// Checks everything a reader relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |msg: String| Err(NilError::format(path, msg));
        if self.format != FORMAT {
            return bad(format!(
                "format: expected {FORMAT:?}, found {:?}",
                self.format
            ));
        }
        match RowDType::parse(&self.capture.dtype) {
            Some(RowDType::F16 | RowDType::BF16 | RowDType::F32) => {}
            _ => {
                return Err(NilError::DType {
                    context: format!("{}: capture.dtype", path.display()),
                    expected: "float16, bfloat16 or float32".into(),
                    found: self.capture.dtype.clone(),
                })
            }
        }
        if self.layers.is_empty() {
            return bad("layers: expected at least one layer, found none".into());
        }
        let limit = |e: NilError| match e {
            NilError::Value(m) => NilError::format(path, m),
            other => other,
        };
        check_layer_count("layers", self.layers.len()).map_err(limit)?;
        let mut names = HashSet::with_capacity(self.layers.len());
        for l in &self.layers {
            check_name("layers", &l.name).map_err(limit)?;
            if !names.insert(l.name.as_str()) {
                return bad(format!("layer {}: listed twice", l.name));
            }
            check_dim(&format!("layer {}", l.name), l.dim).map_err(limit)?;
        }
        let mut digests: HashMap<&str, usize> = HashMap::with_capacity(self.shards.len());
        let mut totals: Vec<u64> = vec![0; self.layers.len()];
        for (i, s) in self.shards.iter().enumerate() {
            let expected = shard_file_name(i);
            if s.file != expected {
                return bad(format!(
                    "shards[{i}].file: expected {expected:?}, found {:?}",
                    s.file
                ));
            }
            if s.blake3.len() != 64
                || !s
                    .blake3
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return bad(format!(
                    "{}: blake3 must be 64 lowercase hex digits, found {:?}",
                    s.file, s.blake3
                ));
            }
            if let Some(first) = digests.insert(s.blake3.as_str(), i) {
                return bad(format!(
                    "{} has the same blake3 as {} ({}): the same bytes listed twice would count \
                     their rows twice",
                    s.file, self.shards[first].file, s.blake3
                ));
            }
            for (l, total) in self.layers.iter().zip(totals.iter_mut()) {
                let Some(&n) = s.rows.get(&l.name) else {
                    return bad(format!(
                        "{}: layer {}: row count missing from the manifest",
                        s.file, l.name
                    ));
                };
                *total = add_counts(&format!("layer {}", l.name), *total, n).map_err(limit)?;
            }
            if let Some(extra) = s.rows.keys().find(|k| !names.contains(k.as_str())) {
                return bad(format!(
                    "{}: layer {extra}: has a row count but is not in the manifest's layers",
                    s.file
                ));
            }
        }
        Ok(())
    }

    /// Index of every layer by name (lookups in constant time, however many layers).
    pub fn layer_index(&self) -> HashMap<&str, usize> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.as_str(), i))
            .collect()
    }

    /// Total rows of each layer over all shards, in layer order (validation has checked that
    /// they fit in 64 bits; saturating here all the same).
    pub fn total_rows(&self) -> Vec<(String, u64)> {
        self.layers
            .iter()
            .map(|l| {
                let n = self
                    .shards
                    .iter()
                    .fold(0u64, |acc, s| acc.saturating_add(s.rows[&l.name]));
                (l.name.clone(), n)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> serde_json::Value {
        serde_json::json!({
            "format": "nil.shards", "format_version": 1,
            "model": {"family": "mlp", "depth": 4, "width": 64, "params": 1000, "budget": 1000, "ratio": 0.0625},
            "capture": {"dtype": "float16", "mode": "input", "probes": 1, "projection_seed": 0, "token_stride": 1},
            "layers": [{"name": "a", "dim": 3}, {"name": "b", "dim": 2}],
            "shards": [{"file": "shards/000000.safetensors", "bytes": 10, "rows": {"a": 1, "b": 2},
                        "blake3": "0".repeat(64)}],
            "future_field": true
        })
    }

    fn parse(v: &serde_json::Value) -> Result<Manifest> {
        Manifest::parse(Path::new("m.json"), v.to_string().as_bytes())
    }

    #[test]
    fn parses_and_totals() {
        let m = parse(&good()).unwrap();
        assert_eq!(m.total_rows(), vec![("a".into(), 1), ("b".into(), 2)]);
        assert_eq!(m.dtype(), RowDType::F16);
        assert_eq!(m.model.ratio, Some(0.0625));
    }

    #[test]
    fn rejects_what_readers_rely_on() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("/format_version", serde_json::json!(2)),
            ("/capture/dtype", serde_json::json!("int8")),
            ("/layers/1/name", serde_json::json!("a")),
            ("/layers/0/dim", serde_json::json!(0)),
            ("/shards/0/file", serde_json::json!("../x.safetensors")),
            ("/shards/0/blake3", serde_json::json!("xyz")),
            ("/shards/0/rows", serde_json::json!({"a": 1})),
            ("/layers/0/dim", serde_json::json!(1u64 << 32)),
            ("/layers/0/name", serde_json::json!("__metadata__")),
        ];
        for (ptr, val) in cases {
            let mut v = good();
            *v.pointer_mut(ptr).unwrap() = val;
            assert!(parse(&v).is_err(), "{ptr} accepted");
        }
        assert!(Manifest::parse(Path::new("m"), b"{not json").is_err());
    }

    #[test]
    fn refuses_duplicated_digests_and_overflowing_row_counts() {
        let mut v = good();
        let mut second = v["shards"][0].clone();
        second["file"] = serde_json::json!("shards/000001.safetensors");
        v["shards"].as_array_mut().unwrap().push(second.clone());
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("same blake3") && e.contains("000000"), "{e}");
        second["blake3"] = serde_json::json!("1".repeat(64));
        second["rows"]["a"] = serde_json::json!(u64::MAX);
        v["shards"][1] = second;
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("overflow") && e.contains("layer a"), "{e}");
    }
}
