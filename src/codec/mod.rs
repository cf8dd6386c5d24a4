//! Wire formats: cookie value encodings, the transformer chain and its built-in
//! transformers, session ids and `Set-Cookie` rendering. No pyo3 here.

pub mod aead;
pub mod chain;
pub mod clocks;
pub mod cookie;
pub mod digest;
pub mod django_signing;
pub mod encoding;
pub mod ids;
pub mod itsdangerous;
pub mod json;
pub mod ktor_encrypt;
pub mod mac;
pub mod session;

use crate::error::Result;

/// What a transformer may need to know besides the value.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The session's registered name (AEAD transformers bind it into the
    /// authenticated data, so a value issued for one name is rejected under another).
    pub name: &'a str,
    /// Unix time in seconds, for transformers that sign an issue time.
    pub now: u64,
}

/// The result of a successful read step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The inner value.
    pub value: String,
    /// True when the value was accepted under a retired key (or otherwise needs to be
    /// issued again under the current configuration).
    pub reissue: bool,
}

/// One step of a transformer chain. `write` is applied in registration order,
/// `read` in reverse; a `read` that returns `None` rejects the value, and the session
/// is then absent.
pub trait Transformer: Send + Sync + std::fmt::Debug {
    /// Wraps `value` for the wire.
    fn write(&self, value: &str, ctx: &Context<'_>) -> Result<String>;
    /// Unwraps `value`, or `None` when it is not authentic / not well formed.
    fn read(&self, value: &str, ctx: &Context<'_>) -> Option<Opened>;
}

/// Seconds since the Unix epoch from the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
