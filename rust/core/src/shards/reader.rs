//! Reading one shard file, in file order, through `read(2)` into a reusable buffer, hashing every
//! byte with blake3 as it is handed out.
//!
//! Why not a memory map: a mapped file that is truncated in place while it is read kills the
//! process with SIGBUS, with no message. Reading into a private buffer turns the same event into
//! an error naming the file, and what is reduced is exactly what was hashed (a map could change
//! between the two). The buffer is reused across the shards of a worker, so memory stays bounded.

use super::manifest::ShardInfo;
use super::shard_file::{explain, TensorLoc};
use crate::error::{NilError, Result};
use crate::fsutil::open_regular;
use crate::limits::MAX_HEADER_BYTES;
use safetensors::tensor::{SafeTensorError, TensorInfo};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes the buffer holds by default (it grows for a larger single request, e.g. a big header).
pub(crate) const WINDOW: usize = 32 << 20;

/// Bytes handed out at once when a range is only hashed.
pub(crate) const CHUNK: usize = 16 << 20;

/// A reusable, 8-byte-aligned byte buffer (so that f32/f16 views of it need no copy).
#[derive(Default)]
pub(crate) struct Buffer {
    words: Vec<u64>,
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        // SAFETY: u8 has alignment 1 and every bit pattern is valid; the length is in bounds.
        unsafe {
            std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.words.len() * 8)
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and the borrow is unique.
        unsafe {
            std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut u8, self.words.len() * 8)
        }
    }

    /// Makes room for at least `n` bytes, keeping the contents.
    fn reserve(&mut self, path: &Path, n: usize) -> Result<()> {
        let words = n.div_ceil(8);
        if self.words.len() < words {
            let extra = words - self.words.len();
            self.words.try_reserve_exact(extra).map_err(|_| {
                NilError::Memory(format!(
                    "{}: cannot allocate a read buffer of {}",
                    path.display(),
                    crate::limits::human(n as u64)
                ))
            })?;
            self.words.resize(words, 0);
        }
        Ok(())
    }
}

/// One shard file opened for a single sequential pass.
pub(crate) struct ShardReader<'b> {
    pub path: PathBuf,
    file: File,
    /// Size the manifest records (and the file had when it was opened).
    len: u64,
    /// File offset of the next byte to read from the file.
    read_to: u64,
    /// Bytes handed out (and hashed) so far.
    consumed: u64,
    hasher: blake3::Hasher,
    buf: &'b mut Buffer,
    /// Valid bytes of `buf` not yet handed out: `[lo, hi)`.
    lo: usize,
    hi: usize,
}

impl<'b> ShardReader<'b> {
    /// Opens shard `s` of capture `dir`: a regular file whose size is the one the manifest records.
    pub fn open(dir: &Path, s: &ShardInfo, buf: &'b mut Buffer) -> Result<Self> {
        let path = dir.join(&s.file);
        let (file, meta) = open_regular(&path, "shard")?;
        check_len(&path, s.bytes, meta.len())?;
        if buf.words.is_empty() {
            buf.reserve(&path, WINDOW)?;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: a valid open descriptor; advice only (read-ahead for a sequential pass).
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
            }
        }
        Ok(Self {
            path,
            file,
            len: s.bytes,
            read_to: 0,
            consumed: 0,
            hasher: blake3::Hasher::new(),
            buf,
            lo: 0,
            hi: 0,
        })
    }

    /// Bytes handed out so far: the file offset of the next byte [`next`](Self::next) returns.
    pub fn position(&self) -> u64 {
        self.consumed
    }

    /// Bytes not handed out yet.
    pub fn remaining(&self) -> u64 {
        self.len - self.consumed
    }

    fn truncated(&self) -> NilError {
        NilError::format(
            &self.path,
            format!(
                "the file ended after {} of the {} bytes the manifest records while nil was \
                 reading it (truncated or rewritten in place during the read?)",
                self.read_to, self.len
            ),
        )
    }

    /// The next `n` bytes of the file (hashed), or an error if the file ends before them.
    pub fn next(&mut self, n: usize) -> Result<&[u8]> {
        if n as u64 > self.remaining() {
            return Err(NilError::format(
                &self.path,
                format!(
                    "asked for {n} bytes at offset {}, past the end of the {}-byte file",
                    self.consumed, self.len
                ),
            ));
        }
        if self.hi - self.lo < n {
            self.refill(n)?;
        }
        let (a, b) = (self.lo, self.lo + n);
        self.lo = b;
        self.consumed += n as u64;
        let bytes = &self.buf.bytes()[a..b];
        if bytes.len() >= 1 << 20 {
            self.hasher.update_rayon(bytes); // large blocks hash on all cores (nil's pool)
        } else {
            self.hasher.update(bytes);
        }
        Ok(bytes)
    }

    /// Reads until at least `n` unread bytes are buffered.
    fn refill(&mut self, n: usize) -> Result<()> {
        let keep = self.hi - self.lo;
        let want = n.max(WINDOW);
        self.buf.reserve(&self.path, want)?;
        let cap = self.buf.words.len() * 8;
        self.buf.bytes_mut().copy_within(self.lo..self.hi, 0);
        self.lo = 0;
        self.hi = keep;
        while self.hi < n {
            let room = (cap - self.hi) as u64;
            let left = self.len - self.read_to;
            let take = room.min(left) as usize;
            if take == 0 {
                return Err(self.truncated());
            }
            let got = loop {
                match self
                    .file
                    .read(&mut self.buf.bytes_mut()[self.hi..self.hi + take])
                {
                    Ok(g) => break g,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(NilError::io(&self.path, e)),
                }
            };
            if got == 0 {
                return Err(self.truncated());
            }
            self.hi += got;
            self.read_to += got as u64;
        }
        Ok(())
    }

    /// Hashes `n` bytes without using them, in pieces; `progress(bytes)` after each piece
    /// returns false to stop.
    pub fn skip(&mut self, mut n: u64, progress: &mut dyn FnMut(u64) -> bool) -> Result<bool> {
        while n > 0 {
            let k = n.min(CHUNK as u64);
            self.next(k as usize)?;
            n -= k;
            if !progress(k) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads and parses the safetensors header; returns each tensor's absolute byte range.
    pub fn header(&mut self) -> Result<HashMap<String, TensorLoc>> {
        if self.len < 8 {
            return Err(NilError::format(
                &self.path,
                explain(SafeTensorError::HeaderTooSmall),
            ));
        }
        let head = self.next(8)?;
        let n = u64::from_le_bytes(head.try_into().expect("8 bytes"));
        if n > MAX_HEADER_BYTES as u64 {
            return Err(NilError::format(
                &self.path,
                explain(SafeTensorError::HeaderTooLarge),
            ));
        }
        if n > self.remaining() {
            return Err(NilError::format(
                &self.path,
                explain(SafeTensorError::InvalidHeaderLength),
            ));
        }
        let path = self.path.clone();
        let len = self.len;
        let text = self.next(n as usize)?;
        parse_header_text(&path, text, len)
    }

    /// Hashes whatever is left and returns the file's blake3 hex digest.
    pub fn finish(mut self) -> Result<String> {
        let rest = self.remaining();
        self.skip(rest, &mut |_| true)?;
        Ok(self.hasher.finalize().to_hex().to_string())
    }
}

/// Refuses a file whose size is not the one recorded.
pub(crate) fn check_len(path: &Path, recorded: u64, found: u64) -> Result<()> {
    if found == recorded {
        return Ok(());
    }
    Err(NilError::format(
        path,
        format!(
            "size differs from the manifest: manifest records {recorded} bytes, file has {found} ({})",
            if found < recorded {
                "truncated"
            } else {
                "extended"
            }
        ),
    ))
}

/// A safetensors header, parsed in one pass over its JSON map (serde's `flatten`, which the
/// safetensors crate uses, buffers every entry first and is several times slower on headers of
/// hundreds of thousands of layers).
struct Header {
    tensors: Vec<(String, TensorInfo)>,
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Header;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Header, A::Error> {
                let mut tensors = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "__metadata__" {
                        map.next_value::<HashMap<String, String>>()?;
                    } else {
                        tensors.push((key, map.next_value::<TensorInfo>()?));
                    }
                }
                Ok(Header { tensors })
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses the JSON header `text` (the `n` bytes after the length field) of a safetensors file of
/// `file_len` bytes; checks, as the safetensors reader does, that the tensors are contiguous,
/// that each one's byte range matches its dtype and shape, and that together they fill the file.
pub(crate) fn parse_header_text(
    path: &Path,
    text: &[u8],
    file_len: u64,
) -> Result<HashMap<String, TensorLoc>> {
    let s = std::str::from_utf8(text)
        .map_err(|e| NilError::format(path, explain(SafeTensorError::InvalidHeader(e))))?;
    let mut header: Header = serde_json::from_str(s).map_err(|e| {
        NilError::format(
            path,
            explain(SafeTensorError::InvalidHeaderDeserialization(e)),
        )
    })?;
    header.tensors.sort_by_key(|(_, t)| t.data_offsets);
    let base = 8 + text.len();
    let mut at = 0usize;
    let mut out = HashMap::with_capacity(header.tensors.len());
    for (name, info) in header.tensors {
        let (s0, e0) = info.data_offsets;
        let bytes = info
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(info.dtype.bitsize()))
            .filter(|bits| bits % 8 == 0)
            .map(|bits| bits / 8);
        if s0 != at || e0 < s0 || Some(e0 - s0) != bytes {
            return Err(NilError::format(
                path,
                format!(
                    "tensor {name}: data_offsets [{s0}, {e0}] do not fit its {:?} {:?} right after \
                     the previous tensor (at {at}): corrupt header",
                    info.dtype, info.shape
                ),
            ));
        }
        at = e0;
        let loc = TensorLoc {
            dtype: info.dtype,
            shape: info.shape,
            start: base + s0,
            end: base + e0,
        };
        if out.insert(name.clone(), loc).is_some() {
            return Err(NilError::format(
                path,
                format!("tensor {name}: listed twice in the header"),
            ));
        }
    }
    if (base as u64).checked_add(at as u64) != Some(file_len) {
        return Err(NilError::format(
            path,
            explain(SafeTensorError::MetadataIncompleteBuffer),
        ));
    }
    Ok(out)
}
