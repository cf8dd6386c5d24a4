//! Bindings for `ferrosession inspect`: open one `Encrypt` or `KtorEncrypt` value and
//! say why it is rejected. The middleware never uses these: a request learns nothing
//! but "absent" (`read` collapses every reason to `None`).

use pyo3::prelude::*;

use crate::codec::aead::{self, Encrypt};
use crate::codec::ktor_encrypt::KtorEncrypt;
use crate::codec::{unix_now, Context};

/// `(payload, reissue, None, "")` when the value opens, else
/// `(None, False, code, message)` with a stable snake_case `code`.
type Outcome = (Option<String>, bool, Option<&'static str>, String);

/// See `encrypt_envelope`.
type Envelope = (
    Option<(u8, Vec<u8>, Option<u64>, usize)>,
    Option<&'static str>,
    String,
);

/// Opens an `Encrypt` value under `keys` (`keys[0]` current, the others old keys) for
/// the session `name`, at `now` (default: the clock), with `max_age` seconds.
#[pyfunction]
#[pyo3(signature = (keys, value, name = "", now = None, max_age = None))]
fn encrypt_open(
    keys: Vec<Vec<u8>>,
    value: &str,
    name: &str,
    now: Option<u64>,
    max_age: Option<u64>,
) -> PyResult<Outcome> {
    let encrypt = Encrypt::new(keys, max_age)?;
    let ctx = Context {
        name,
        now: now.unwrap_or_else(unix_now),
    };
    Ok(match encrypt.open(value, &ctx) {
        Ok(o) => (Some(o.value), o.reissue, None, String::new()),
        Err(why) => (None, false, Some(why.code()), why.to_string()),
    })
}

/// The header of an `Encrypt` value, read without a key:
/// `((version, key_id, issued_at, plaintext_len), None, "")`, or `(None, code, message)`
/// when it is not well formed.
#[pyfunction]
fn encrypt_envelope(value: &str) -> Envelope {
    match aead::envelope(value) {
        Ok(e) => (
            Some((e.version, e.key_id.to_vec(), e.issued_at, e.plaintext_len)),
            None,
            String::new(),
        ),
        Err(why) => (None, Some(why.code()), why.to_string()),
    }
}

/// The 4-byte id an `Encrypt` value carries for `key`.
#[pyfunction]
fn encrypt_key_id(key: Vec<u8>) -> Vec<u8> {
    aead::key_id(&key).to_vec()
}

/// Opens a `KtorEncrypt` value.
#[pyfunction]
#[pyo3(signature = (encryption_key, sign_key, value, backward_compatible_read = false))]
fn ktor_encrypt_open(
    encryption_key: Vec<u8>,
    sign_key: Vec<u8>,
    value: &str,
    backward_compatible_read: bool,
) -> PyResult<Outcome> {
    let ktor = KtorEncrypt::new(&encryption_key, &sign_key, backward_compatible_read)?;
    Ok(match ktor.open(value) {
        Ok(o) => (Some(o.value), o.reissue, None, String::new()),
        Err(why) => (None, false, Some(why.code()), why.to_string()),
    })
}

/// Adds the inspection helpers to `ferrosession._core`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encrypt_open, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_envelope, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_key_id, m)?)?;
    m.add_function(wrap_pyfunction!(ktor_encrypt_open, m)?)?;
    Ok(())
}
