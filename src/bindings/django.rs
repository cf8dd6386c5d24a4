//! Binding of Django's signing format (`codec::django_signing`) for
//! `ferrosession.django`: `DjangoSigner.dumps` signs a session's JSON text,
//! `DjangoSigner.loads` verifies a cookie into its JSON bytes, one Rust call each.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::codec::django_signing::{DjangoSigner as CoreSigner, SESSION_SALT};
use crate::codec::unix_now;

/// `TimestampSigner` of `django.core.signing` for one salt: `secrets[0]` signs
/// (`SECRET_KEY`), every one verifies (`SECRET_KEY_FALLBACKS`).
#[pyclass(name = "DjangoSigner", module = "ferrosession._core", frozen)]
struct DjangoSigner {
    inner: CoreSigner,
}

#[pymethods]
impl DjangoSigner {
    #[new]
    #[pyo3(signature = (secrets, salt = SESSION_SALT))]
    fn new(secrets: Vec<Vec<u8>>, salt: &str) -> PyResult<Self> {
        Ok(Self {
            inner: CoreSigner::new(&secrets, salt.as_bytes())?,
        })
    }

    /// How many secrets verify.
    #[getter]
    fn key_count(&self) -> usize {
        self.inner.key_count()
    }

    /// `signing.dumps` of the value whose JSON text is `json`; with `compress`, JSON of
    /// at least `compress_min` bytes is tried with zlib.
    #[pyo3(signature = (json, compress = true, compress_min = 0, now = None))]
    fn dumps(&self, json: &[u8], compress: bool, compress_min: usize, now: Option<u64>) -> String {
        self.inner
            .dumps(json, compress, compress_min, now.unwrap_or_else(unix_now))
    }

    /// `(json, timestamp, reissue)` of a value that verifies and is at most `max_age`
    /// seconds old, `reissue` when a fallback secret verified it; else `None`.
    #[pyo3(signature = (signed, max_age = None, now = None))]
    fn loads<'py>(
        &self,
        py: Python<'py>,
        signed: &str,
        max_age: Option<u64>,
        now: Option<u64>,
    ) -> Option<(Bound<'py, PyBytes>, u64, bool)> {
        let loaded = self
            .inner
            .loads(signed.as_bytes(), max_age, now.unwrap_or_else(unix_now))?;
        Some((
            PyBytes::new(py, &loaded.json),
            loaded.timestamp,
            loaded.key_index != 0,
        ))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DjangoSigner>()
}
