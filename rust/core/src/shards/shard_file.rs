//! One shard file, `shards/NNNNNN.safetensors`: one `rows × dim` tensor per layer.
//!
//! Writing serialises the tensors, hashes the bytes with blake3 and replaces the file atomically.
//! Reading parses the safetensors header (see [`super::reader`] for the streaming pass) and checks
//! each layer's tensor (present, dtype, shape) against the manifest, naming the file and layer in
//! every error.

use crate::dtype::RowDType;
use crate::error::{NilError, Result};
use crate::fsutil::{atomic_write, open_regular};
use crate::limits::{check_name, MAX_HEADER_BYTES};
use safetensors::tensor::{Dtype, SafeTensorError, TensorView};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Value of the `format` metadata key of a shard.
pub const SHARD_FORMAT: &str = "nil.shard";

/// Where one layer's rows lie inside a shard file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorLoc {
    /// Element type as stored (may be one nil does not read; checked by [`check_layer`]).
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Absolute byte range in the file.
    pub start: usize,
    pub end: usize,
}

/// One tensor to write: layer name, element type, rows, dim and little-endian bytes.
pub struct ShardTensor<'a> {
    pub name: &'a str,
    pub dtype: RowDType,
    pub rows: usize,
    pub dim: usize,
    pub bytes: &'a [u8],
}

fn st_dtype(d: RowDType) -> Dtype {
    match d {
        RowDType::F64 => Dtype::F64,
        RowDType::F32 => Dtype::F32,
        RowDType::F16 => Dtype::F16,
        RowDType::BF16 => Dtype::BF16,
    }
}

/// nil's row type for a stored dtype, if nil reads it.
pub fn row_dtype(d: Dtype) -> Option<RowDType> {
    match d {
        Dtype::F32 => Some(RowDType::F32),
        Dtype::F16 => Some(RowDType::F16),
        Dtype::BF16 => Some(RowDType::BF16),
        _ => None,
    }
}

/// Serialises `tensors` to `path` atomically (temporary file, fsync, rename) and returns the file
/// size and its blake3 hex digest.
pub fn write_shard(
    path: &Path,
    tensors: &[ShardTensor<'_>],
    metadata: &HashMap<String, String>,
) -> Result<(u64, String)> {
    let mut views = Vec::with_capacity(tensors.len());
    for t in tensors {
        check_name(&path.display().to_string(), t.name)?;
        if t.dtype == RowDType::F64 {
            return Err(NilError::DType {
                context: format!("{}: layer {}", path.display(), t.name),
                expected: "float16, bfloat16 or float32".into(),
                found: "float64".into(),
            });
        }
        let view =
            TensorView::new(st_dtype(t.dtype), vec![t.rows, t.dim], t.bytes).map_err(|_| {
                NilError::shape(
                    format!("{}: layer {}", path.display(), t.name),
                    format!(
                        "{} bytes for {} x {} {}",
                        (t.rows as u128) * (t.dim as u128) * (t.dtype.size() as u128),
                        t.rows,
                        t.dim,
                        t.dtype.name()
                    ),
                    format!("{} bytes", t.bytes.len()),
                )
            })?;
        views.push((t.name.to_string(), view));
    }
    let mut meta = metadata.clone();
    meta.insert("format".into(), SHARD_FORMAT.into());
    meta.insert("format_version".into(), "1".into());
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| NilError::format(path, format!("cannot serialise shard: {e}")))?;
    check_header_size(path, &bytes)?;
    // Hash (on every core) while the bytes go to disk: the two overlap instead of adding up.
    let (hash, written) = rayon::join(
        || {
            let mut h = blake3::Hasher::new();
            h.update_rayon(&bytes);
            h.finalize().to_hex().to_string()
        },
        || atomic_write(path, &bytes),
    );
    written?;
    Ok((bytes.len() as u64, hash))
}

/// Refuses serialised safetensors bytes whose header readers would reject as too large.
pub(crate) fn check_header_size(path: &Path, bytes: &[u8]) -> Result<()> {
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(0);
    if n > MAX_HEADER_BYTES as u64 {
        return Err(NilError::Value(format!(
            "{}: the safetensors header would take {n} bytes, over the format's limit of \
             {MAX_HEADER_BYTES} (too many layers or too long names); nothing was written",
            path.display()
        )));
    }
    Ok(())
}

/// blake3 hex digest of a whole regular file, read in 1 MiB pieces.
pub fn file_blake3(path: &Path) -> Result<String> {
    let (mut f, _) = open_regular(path, "file")?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| NilError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Explains a safetensors parse failure in the user's terms.
pub(crate) fn explain(e: SafeTensorError) -> String {
    match e {
        SafeTensorError::HeaderTooSmall => {
            "shorter than a safetensors header (8 bytes): truncated or empty".into()
        }
        SafeTensorError::InvalidHeaderLength => {
            "header length field points past the end of the file: truncated or corrupt".into()
        }
        SafeTensorError::HeaderTooLarge => "header length field is absurdly large: corrupt".into(),
        SafeTensorError::InvalidHeader(e) => format!("header is not UTF-8 text: {e}"),
        SafeTensorError::InvalidHeaderDeserialization(e) => {
            format!("header is not valid safetensors JSON: {e}")
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            "file size differs from what its header describes: truncated or padded".into()
        }
        other => format!("invalid safetensors header: {other:?}"),
    }
}

/// Parses the header of a whole shard file held in `bytes`; returns each tensor's location.
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<HashMap<String, TensorLoc>> {
    let Some(head) = bytes.get(..8) else {
        return Err(NilError::format(
            path,
            explain(SafeTensorError::HeaderTooSmall),
        ));
    };
    let n = u64::from_le_bytes(head.try_into().expect("8 bytes"));
    if n > MAX_HEADER_BYTES as u64 {
        return Err(NilError::format(
            path,
            explain(SafeTensorError::HeaderTooLarge),
        ));
    }
    let Some(text) = bytes.get(8..8 + n as usize) else {
        return Err(NilError::format(
            path,
            explain(SafeTensorError::InvalidHeaderLength),
        ));
    };
    super::reader::parse_header_text(path, text, bytes.len() as u64)
}

/// Checks one layer's tensor against the manifest: present, dtype `expected`, shape `rows × dim`.
pub fn check_layer<'a>(
    path: &Path,
    tensors: &'a HashMap<String, TensorLoc>,
    layer: &str,
    dim: usize,
    rows: u64,
    expected: RowDType,
) -> Result<&'a TensorLoc> {
    let ctx = || format!("{}: layer {layer}", path.display());
    let t = tensors.get(layer).ok_or_else(|| {
        let mut found: Vec<&str> = tensors.keys().map(String::as_str).collect();
        found.sort();
        NilError::format(
            path,
            format!(
                "layer {layer}: tensor missing (the manifest lists it; the file holds {found:?})"
            ),
        )
    })?;
    match row_dtype(t.dtype) {
        None => {
            return Err(NilError::DType {
                context: ctx(),
                expected: "float16, bfloat16 or float32".into(),
                found: format!("{:?}", t.dtype),
            })
        }
        Some(d) if d != expected => {
            return Err(NilError::DType {
                context: ctx(),
                expected: format!("{} (the manifest's capture.dtype)", expected.name()),
                found: d.name().into(),
            })
        }
        Some(_) => {}
    }
    if t.shape.len() != 2 || t.shape[1] != dim || t.shape[0] as u64 != rows {
        return Err(NilError::shape(
            ctx(),
            format!("[{rows}, {dim}] (rows, dim as the manifest records)"),
            format!("{:?}", t.shape),
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_parse_and_check() {
        let dir = std::env::temp_dir().join(format!("nil-shardfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("000000.safetensors");
        let a: Vec<u8> = (0..12u16).flat_map(|v| v.to_le_bytes()).collect();
        let t = [ShardTensor {
            name: "a",
            dtype: RowDType::F16,
            rows: 4,
            dim: 3,
            bytes: &a,
        }];
        let (n, h) = write_shard(&p, &t, &HashMap::new()).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(n as usize, bytes.len());
        assert_eq!(h, file_blake3(&p).unwrap());
        let tensors = parse_header(&p, &bytes).unwrap();
        let loc = check_layer(&p, &tensors, "a", 3, 4, RowDType::F16).unwrap();
        assert_eq!(&bytes[loc.start..loc.end], &a[..]);
        assert!(check_layer(&p, &tensors, "b", 3, 4, RowDType::F16).is_err());
        assert!(check_layer(&p, &tensors, "a", 2, 4, RowDType::F16).is_err());
        assert!(check_layer(&p, &tensors, "a", 3, 5, RowDType::F16).is_err());
        assert!(matches!(
            check_layer(&p, &tensors, "a", 3, 4, RowDType::BF16),
            Err(NilError::DType { .. })
        ));
        assert!(parse_header(&p, &bytes[..bytes.len() - 1]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
