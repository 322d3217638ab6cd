//! Files as nil touches them: atomic replacement (write a temporary file beside the target, fsync
//! it, rename it over), and opening for reading only what is a regular file, so that a FIFO, a
//! device or a directory given as a shard, manifest or partial file is an error instead of a read
//! that blocks forever, and a symbolic-link loop is named as such.

use crate::error::{NilError, Result};
use std::fs::{self, File, Metadata};
use std::io::{Read, Write};
use std::path::Path;

/// What a path is, in words, for errors ("a directory", "a FIFO (named pipe)", ...).
pub fn describe(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    if t.is_file() {
        return "a regular file";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    "not a regular file"
}

/// The error of a failed `stat`/`open`, naming a symbolic-link loop in plain words.
pub fn stat_error(path: &Path, e: std::io::Error) -> NilError {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return NilError::format(
            path,
            "a loop of symbolic links (each link points, in the end, back to itself); expected a file or directory",
        );
    }
    NilError::io(path, e)
}

/// `stat` of `path` (following links), with loops named as such.
pub fn stat(path: &Path) -> Result<Metadata> {
    fs::metadata(path).map_err(|e| stat_error(path, e))
}

/// Refuses anything but a regular file, naming what `path` is instead; `what` says what was
/// expected ("shard", "manifest", ...).
fn require_regular(path: &Path, meta: &Metadata, what: &str) -> Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    Err(NilError::format(
        path,
        format!(
            "expected the {what} to be a regular file, found {}",
            describe(meta)
        ),
    ))
}

/// Opens `path` for reading only if it is a regular file: checked before opening (so a FIFO is
/// never opened, which would block), opened non-blocking, and checked again on the descriptor.
/// Returns the file and its metadata as of the open descriptor.
pub fn open_regular(path: &Path, what: &str) -> Result<(File, Metadata)> {
    require_regular(path, &stat(path)?, what)?;
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Replaced by a FIFO between the check and the open: do not block on it.
        opts.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let f = opts.open(path).map_err(|e| stat_error(path, e))?;
    let meta = f.metadata().map_err(|e| NilError::io(path, e))?;
    require_regular(path, &meta, what)?;
    Ok((f, meta))
}

/// Reads a whole regular file, after checking that its size fits in the memory available.
pub fn read_regular(path: &Path, what: &str) -> Result<Vec<u8>> {
    let (mut f, meta) = open_regular(path, what)?;
    let len = meta.len();
    if len >= 64 << 20 {
        crate::limits::check_memory(&format!("{}: reading this {what}", path.display()), len)?;
    }
    let cap = usize::try_from(len)
        .map_err(|_| NilError::format(path, format!("{len} bytes do not fit in memory")))?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(cap).map_err(|_| {
        NilError::Memory(format!(
            "{}: cannot allocate {} to read this {what}",
            path.display(),
            crate::limits::human(len)
        ))
    })?;
    f.read_to_end(&mut buf).map_err(|e| NilError::io(path, e))?;
    Ok(buf)
}

/// Replaces `path` with `bytes` so that readers see either the old or the new file, never a mix.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| NilError::Value(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(|e| NilError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| NilError::io(&tmp, e))?;
        f.sync_all().map_err(|e| NilError::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| NilError::io(path, e))?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("nil-fsutil-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.bin");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn refuses_what_is_not_a_regular_file_without_blocking() {
        let dir = std::env::temp_dir().join(format!("nil-fsutil-reg-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = read_regular(&fifo, "manifest").unwrap_err().to_string();
        assert!(e.contains("FIFO") && e.contains("manifest"), "{e}");
        let e = read_regular(&dir, "shard").unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        std::os::unix::fs::symlink(dir.join("b"), dir.join("a")).unwrap();
        std::os::unix::fs::symlink(dir.join("a"), dir.join("b")).unwrap();
        let e = read_regular(&dir.join("a"), "shard")
            .unwrap_err()
            .to_string();
        assert!(e.contains("loop of symbolic links"), "{e}");
        fs::write(dir.join("f"), b"abc").unwrap();
        assert_eq!(read_regular(&dir.join("f"), "file").unwrap(), b"abc");
        fs::remove_dir_all(&dir).unwrap();
    }
}
