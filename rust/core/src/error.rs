//! One error type for the whole core; the bindings map each kind to its own Python exception.

use std::path::PathBuf;

/// Every failure the core can report. Messages name the file, layer and the expected vs found value.
#[derive(Debug, thiserror::Error)]
pub enum NilError {
    /// An array or matrix has the wrong shape.
    #[error("{context}: expected {expected}, found {found}")]
    Shape {
        context: String,
        expected: String,
        found: String,
    },
    /// An element type that the operation does not accept.
    #[error("{context}: expected dtype {expected}, found {found}")]
    DType {
        context: String,
        expected: String,
        found: String,
    },
    /// A NaN or infinity where finite values are required.
    #[error("{context}: row {row} holds a non-finite value ({value}); pass nonfinite=\"skip\" to count and skip such rows")]
    NonFinite {
        context: String,
        row: u64,
        value: f64,
    },
    /// A bad argument value (out of range, unknown option).
    #[error("{0}")]
    Value(String),
    /// An operating-system error while touching a file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file whose contents do not follow its format (bad header, missing tensor, truncated).
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// Not enough memory for what was asked (the message says how much is needed and available).
    #[error("{0}")]
    Memory(String),
    /// A file whose checksum differs from the one recorded for it.
    #[error("{path}: checksum mismatch: {recorded_in} records {expected}, file hashes to {found}")]
    Checksum {
        path: PathBuf,
        /// Where the expected digest comes from ("the manifest", "its header").
        recorded_in: &'static str,
        expected: String,
        found: String,
    },
}

/// Result alias used across the core.
pub type Result<T> = std::result::Result<T, NilError>;

impl NilError {
    /// Shorthand for a shape error.
    pub fn shape(
        context: impl Into<String>,
        expected: impl ToString,
        found: impl ToString,
    ) -> Self {
        NilError::Shape {
            context: context.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    /// Shorthand for an io error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NilError::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for a format error on a path.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        NilError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}
