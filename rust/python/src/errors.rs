//! Maps core errors to the exception classes defined in `nil.errors` (which carry the Python-side
//! multiple inheritance, e.g. ShapeError is both a NilError and a ValueError).

use nil_core::NilError;
use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyOSError, PyPermissionError, PyRuntimeError,
};
use pyo3::prelude::*;

fn nil_class(name: &str, message: String) -> PyErr {
    Python::attach(|py| {
        match py.import("nil.errors").and_then(|m| m.getattr(name)) {
            Ok(cls) => match cls.call1((message.clone(),)) {
                Ok(inst) => PyErr::from_value(inst),
                Err(e) => e,
            },
            // The facade is missing (raw module used alone): still raise something truthful.
            Err(_) => PyRuntimeError::new_err(message),
        }
    })
}

/// Converts a core error into the matching Python exception.
pub fn to_py(err: NilError) -> PyErr {
    let message = err.to_string();
    match err {
        NilError::Shape { .. } => nil_class("ShapeError", message),
        NilError::DType { .. } => nil_class("DTypeError", message),
        NilError::NonFinite { .. } => nil_class("NonFiniteError", message),
        NilError::Value(_) => nil_class("NilValueError", message),
        NilError::Format { .. } => nil_class("FormatError", message),
        NilError::Checksum { .. } => nil_class("ChecksumError", message),
        NilError::Memory(_) => nil_class("MemoryLimitError", message),
        NilError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                PyPermissionError::new_err(message)
            }
            std::io::ErrorKind::AlreadyExists => PyFileExistsError::new_err(message),
            _ => PyOSError::new_err(message),
        },
    }
}
