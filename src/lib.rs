//! ferrosession's Rust core.
//!
//! `codec` and `storage` are plain Rust (no pyo3) so `cargo test` runs them without
//! Python; `bindings` is the only module that touches pyo3 and is compiled when the
//! `python` feature is on (maturin turns it on).

pub mod codec;
pub mod error;
pub mod storage;

#[cfg(feature = "python")]
mod bindings;

/// The cargo profile this library was compiled with ("release" or "debug"), so
/// benchmarks can refuse a debug build.
pub const BUILD_PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};
