//! The documented limits of nil's files and accumulators, and the memory check made before a
//! d×d accumulator is allocated (docs/shard-format.md §7).
//!
//! Every size derived from a dimension or a count goes through checked arithmetic here, so that a
//! hostile or mistaken value (a dim of 2³², a row count near 2⁶⁴) is a clear error rather than a
//! wrapped multiplication, an allocation abort or a panic across the FFI.

use crate::error::{NilError, Result};

/// Largest row length (`dim`) of a layer or an accumulator: 131,072. Its d×d f64 sum takes
/// 128 GiB; anything larger does not fit a single machine and would only overflow sizes.
pub const MAX_DIM: usize = 1 << 17;

/// Most layers in one capture or accumulator file: 262,144 (the safetensors header of a shard
/// or partial file, one entry per layer, must stay under the format's 100 MB header limit).
pub const MAX_LAYERS: usize = 1 << 18;

/// Longest layer name, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// Header size limit of the safetensors format (the reference reader refuses larger headers).
pub const MAX_HEADER_BYTES: usize = 100_000_000;

/// Tensor names the safetensors format reserves (its header keeps file metadata under this key).
pub const RESERVED_NAMES: &[&str] = &["__metadata__"];

/// Environment variable capping the memory nil assumes it may use (bytes, or with a K/M/G/T
/// suffix, powers of 1024); the minimum of it and what the system reports is used.
pub const MEMORY_LIMIT_ENV: &str = "NIL_MEMORY_LIMIT";

/// Accumulators smaller than this are allocated without reading the system's free memory.
const CHECK_ABOVE: u64 = 64 << 20;

/// Checks a dimension: positive and at most [`MAX_DIM`].
pub fn check_dim(context: &str, dim: usize) -> Result<()> {
    if dim == 0 {
        return Err(NilError::Value(format!(
            "{context}: dim must be positive, found 0"
        )));
    }
    if dim > MAX_DIM {
        return Err(NilError::Value(format!(
            "{context}: dim {dim} exceeds nil's maximum of {MAX_DIM} (its d×d float64 \
             accumulator would take {})",
            human(dim_square_bytes(dim, 8).unwrap_or(u64::MAX))
        )));
    }
    Ok(())
}

/// Checks a layer name: non-empty, at most [`MAX_NAME_BYTES`], no control characters, not reserved.
pub fn check_name(context: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(NilError::Value(format!(
            "{context}: a layer has an empty name"
        )));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(NilError::Value(format!(
            "{context}: layer name {name:?} is reserved by the safetensors format (it holds the \
             file's metadata); choose another name"
        )));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NilError::Value(format!(
            "{context}: layer name {:?}… is {} bytes long; the maximum is {MAX_NAME_BYTES}",
            name.chars().take(40).collect::<String>(),
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(NilError::Value(format!(
            "{context}: layer name {name:?} holds a control character"
        )));
    }
    Ok(())
}

/// Checks a layer count against [`MAX_LAYERS`].
pub fn check_layer_count(context: &str, n: usize) -> Result<()> {
    if n > MAX_LAYERS {
        return Err(NilError::Value(format!(
            "{context}: {n} layers exceed nil's maximum of {MAX_LAYERS}"
        )));
    }
    Ok(())
}

/// `dim × dim × elem` bytes, or None when it overflows.
pub fn dim_square_bytes(dim: usize, elem: u64) -> Option<u64> {
    (dim as u64).checked_mul(dim as u64)?.checked_mul(elem)
}

/// `dim × dim` as an element count, or an error naming `context` when it overflows usize.
pub fn square_len(context: &str, dim: usize) -> Result<usize> {
    dim.checked_mul(dim).ok_or_else(|| {
        NilError::Value(format!(
            "{context}: dim {dim}: dim × dim overflows this machine's address space"
        ))
    })
}

/// Adds row counts, or fails naming `context` where the sum would not fit in 64 bits.
pub fn add_counts(context: &str, a: u64, b: u64) -> Result<u64> {
    a.checked_add(b).ok_or_else(|| {
        NilError::Value(format!(
            "{context}: row count overflow: {a} + {b} does not fit in 64 bits"
        ))
    })
}

/// Bytes as a short human-readable size (binary units).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses a byte size such as `8G`, `512M` or `1048576`.
fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return None,
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

fn read_u64_file(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn meminfo_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Room left under the memory cgroup's limit (v2, then v1), when one is set.
fn cgroup_available() -> Option<u64> {
    let pairs = [
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ];
    pairs.iter().find_map(|(limit, usage)| {
        let l = read_u64_file(limit)?; // "max" (no limit) does not parse: skipped
        let u = read_u64_file(usage).unwrap_or(0);
        // cgroup v1 reports "no limit" as a huge number.
        (l < (1u64 << 60)).then(|| l.saturating_sub(u))
    })
}

/// The memory nil may use now: the least of `MemAvailable`, the cgroup's remaining room and
/// [`MEMORY_LIMIT_ENV`]; None when none of them is known (then no check is made).
pub fn available_memory() -> Option<u64> {
    let env = std::env::var(MEMORY_LIMIT_ENV)
        .ok()
        .and_then(|v| parse_size(&v));
    [meminfo_available(), cgroup_available(), env]
        .into_iter()
        .flatten()
        .min()
}

/// Fails with a [`NilError::Memory`] naming `what` when `needed` bytes exceed the available memory.
pub fn check_memory(what: &str, needed: u64) -> Result<()> {
    match available_memory() {
        Some(avail) if needed > avail => Err(NilError::Memory(format!(
            "{what} needs {} of memory; this machine has {} available{}",
            human(needed),
            human(avail),
            if std::env::var(MEMORY_LIMIT_ENV).is_ok() {
                format!(" (capped by {MEMORY_LIMIT_ENV})")
            } else {
                String::new()
            }
        ))),
        _ => Ok(()),
    }
}

/// The check made before allocating one accumulator's d×d f64 sum (skipped below 64 MiB).
pub fn check_accumulator_memory(context: &str, dim: usize) -> Result<()> {
    check_dim(context, dim)?;
    let bytes = dim_square_bytes(dim, 8).expect("dim checked");
    if bytes >= CHECK_ABOVE {
        check_memory(
            &format!("{context}: a d×d float64 accumulator of dim {dim}"),
            bytes,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_errors_not_overflows() {
        assert!(check_dim("x", 0).is_err());
        assert!(check_dim("x", MAX_DIM).is_ok());
        let e = check_dim("x", 1 << 32).unwrap_err().to_string();
        assert!(e.contains("exceeds") && e.contains("131072"), "{e}");
        assert!(check_dim("x", 3_037_000_500).is_err());
        assert_eq!(dim_square_bytes(usize::MAX, 8), None);
        assert!(add_counts("m", u64::MAX, 10).is_err());
        assert_eq!(add_counts("m", 2, 3).unwrap(), 5);
        assert!(check_name("c", "__metadata__").is_err());
        assert!(check_name("c", "a\nb").is_err());
        assert!(check_name("c", &"x".repeat(201)).is_err());
        assert!(check_name("c", "blocks.0").is_ok());
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size(" 512m "), Some(512 << 20));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(human(1536), "1.5 KiB");
        assert!(available_memory().is_some_and(|b| b > 0));
    }
}
