//! Bindings of the encryption transformers: `Encrypt` (AES-256-GCM) and `KtorEncrypt`.

use std::sync::Arc;

use pyo3::prelude::*;

use super::Transform;
use crate::codec::aead::Encrypt;
use crate::codec::ktor_encrypt::KtorEncrypt;

/// `Encrypt` core: AES-256-GCM; `keys[0]` encrypts, every key decrypts; each key is
/// exactly 32 bytes. `max_age` (seconds) puts the issue time under the tag.
#[pyfunction]
#[pyo3(signature = (keys, max_age = None))]
fn encrypt_transformer(keys: Vec<Vec<u8>>, max_age: Option<u64>) -> PyResult<Transform> {
    let encrypt = Encrypt::new(keys, max_age)?;
    Ok(Transform::new(Arc::new(encrypt)))
}

/// `KtorEncrypt` core: Ktor's `SessionTransportTransformerEncrypt` (AES-CBC + HMAC-SHA256).
#[pyfunction]
#[pyo3(signature = (encryption_key, sign_key, backward_compatible_read = false))]
fn ktor_encrypt_transformer(
    encryption_key: Vec<u8>,
    sign_key: Vec<u8>,
    backward_compatible_read: bool,
) -> PyResult<Transform> {
    let ktor = KtorEncrypt::new(&encryption_key, &sign_key, backward_compatible_read)?;
    Ok(Transform::new(Arc::new(ktor)))
}

/// Adds the encryption transformer constructors to `ferrosession._core`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encrypt_transformer, m)?)?;
    m.add_function(wrap_pyfunction!(ktor_encrypt_transformer, m)?)?;
    Ok(())
}
