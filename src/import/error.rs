//! Why an import refuses its input: the file, the byte offset and the reason, so an
//! operator can find the damage (or the unsupported feature) with a hex dump.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: PathBuf,
    pub offset: usize,
    pub reason: String,
}

impl ImportError {
    pub fn new(file: &Path, offset: usize, reason: impl Into<String>) -> ImportError {
        ImportError { file: file.to_owned(), offset, reason: reason.into() }
    }
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}: {}", self.file.display(), self.offset, self.reason)
    }
}

impl std::error::Error for ImportError {}
