//! The one error type of the Rust core. `bindings` maps each variant to a Python
//! exception from `ferrosession.errors`.

use std::fmt;

/// Everything the core can fail with. Bad client input is never an error: read
/// paths return `None` for it instead (one opaque outcome, no oracle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A configuration value is wrong (maps to `ConfigurationError`).
    Config(String),
    /// A rendered header would be larger than the limit (maps to `SessionTooLarge`).
    TooLarge {
        /// Bytes the header would take.
        size: usize,
        /// The limit it passes.
        limit: usize,
    },
    /// A value cannot be written in the chosen encoding (maps to `ValueError`).
    Encoding(String),
    /// The OS random number generator failed.
    Random(String),
    /// A storage operation failed (maps to `StorageError`).
    Storage(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Config(m) | CoreError::Encoding(m) | CoreError::Storage(m) => f.write_str(m),
            CoreError::TooLarge { size, limit } => write!(
                f,
                "the session header would be {size} bytes, over the {limit}-byte limit; \
                 store less in the session or use a server-side storage"
            ),
            CoreError::Random(m) => write!(f, "the OS random number generator failed: {m}"),
        }
    }
}

impl std::error::Error for CoreError {}

/// Shorthand for results of the core.
pub type Result<T> = std::result::Result<T, CoreError>;
