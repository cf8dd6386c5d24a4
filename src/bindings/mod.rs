//! The only module that touches pyo3: the `ferrosession._core` extension.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::codec::chain::Chain;
use crate::codec::clocks::Lifetimes;
use crate::codec::cookie::{CookieAttributes, CookieSpec};
use crate::codec::digest::Digest;
use crate::codec::encoding::Encoding;
use crate::codec::mac::{MacAlgorithm, MessageAuthentication};
use crate::codec::session::{Incoming, SessionCodec, Transport};
use crate::codec::{ids, unix_now, Context, Transformer};
use crate::error::CoreError;

mod compat;
mod crypto;
mod inspect;
mod storage;

pyo3::import_exception!(ferrosession.errors, ConfigurationError);
pyo3::import_exception!(ferrosession.errors, SessionTooLarge);
pyo3::import_exception!(ferrosession.errors, StorageError);

/// The one mapping from core errors to Python exceptions.
impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        let message = e.to_string();
        match e {
            CoreError::Config(_) => ConfigurationError::new_err(message),
            CoreError::TooLarge { .. } => SessionTooLarge::new_err(message),
            CoreError::Encoding(_) => PyValueError::new_err(message),
            CoreError::Random(_) | CoreError::Storage(_) => StorageError::new_err(message),
        }
    }
}

/// A built-in transformer (`MessageAuthentication`, `Digest`, `Encrypt`, …) as an
/// opaque object that a `Codec` chain holds.
#[pyclass(name = "Transform", module = "ferrosession._core", frozen)]
pub(crate) struct Transform {
    pub(crate) inner: Arc<dyn Transformer>,
}

impl Transform {
    /// Wraps a core transformer.
    pub(crate) fn new(inner: Arc<dyn Transformer>) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl Transform {
    /// Wraps `value` for the wire.
    #[pyo3(signature = (value, name = "", now = None))]
    fn write(&self, value: &str, name: &str, now: Option<u64>) -> PyResult<String> {
        let ctx = Context {
            name,
            now: now.unwrap_or_else(unix_now),
        };
        Ok(self.inner.write(value, &ctx)?)
    }

    /// Unwraps `value`: `(inner, reissue)` or `None` when it is rejected.
    #[pyo3(signature = (value, name = "", now = None))]
    fn read(&self, value: &str, name: &str, now: Option<u64>) -> Option<(String, bool)> {
        let ctx = Context {
            name,
            now: now.unwrap_or_else(unix_now),
        };
        self.inner.read(value, &ctx).map(|o| (o.value, o.reissue))
    }
}

/// `MessageAuthentication` core: `keys[0]` signs, every key verifies.
#[pyfunction]
#[pyo3(signature = (keys, algorithm = "sha256", max_age = None))]
fn mac_transformer(
    keys: Vec<Vec<u8>>,
    algorithm: &str,
    max_age: Option<u64>,
) -> PyResult<Transform> {
    let algorithm = MacAlgorithm::parse(algorithm)?;
    let mac = MessageAuthentication::new(keys, algorithm, max_age)?;
    Ok(Transform::new(Arc::new(mac)))
}

/// `Digest` core (Ktor 1.x salted digest).
#[pyfunction]
#[pyo3(signature = (salt, algorithm = "sha384"))]
fn digest_transformer(salt: Vec<u8>, algorithm: &str) -> PyResult<Transform> {
    let algorithm = MacAlgorithm::parse(algorithm)?;
    Ok(Transform::new(Arc::new(Digest::new(salt, algorithm))))
}

/// The wire codec of one registered session (see `codec::session`).
#[pyclass(name = "Codec", module = "ferrosession._core", frozen)]
struct Codec {
    inner: SessionCodec,
    /// Header sessions: the lowercase header name to look for in ASGI headers.
    header_key: Option<Vec<u8>>,
}

/// Header bytes as text: ASCII as it is, any other byte as its Latin-1 character (what
/// ASGI servers and WSGI do), so hostile bytes cannot fail the decoding.
fn latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.is_ascii() => text.to_owned(),
        _ => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// What came in, for Python: `None` (absent), `(None, False)` (invalid),
/// `(payload, reissue)`, or for a codec with lifetimes
/// `(payload, reissue, created, deadline, renew)`.
fn incoming_to_py<'py>(py: Python<'py>, incoming: Incoming) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(match incoming {
        Incoming::Absent => None,
        Incoming::Invalid => Some((None::<String>, false).into_pyobject(py)?.into_any()),
        Incoming::Valid(o) => Some((o.value, o.reissue).into_pyobject(py)?.into_any()),
        Incoming::Clocked(o, a) => Some(
            (o.value, o.reissue, a.created, a.deadline, a.renew)
                .into_pyobject(py)?
                .into_any(),
        ),
    })
}

#[pymethods]
impl Codec {
    #[new]
    #[pyo3(signature = (
        name, *, header = false, encoding = "uri", chain = Vec::new(), domain = None,
        path = "/".to_owned(), secure = false, http_only = true, same_site = None,
        partitioned = false, clocks = false, idle = None, absolute = None, refresh = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &str,
        header: bool,
        encoding: &str,
        chain: Vec<PyRef<'_, Transform>>,
        domain: Option<String>,
        path: String,
        secure: bool,
        http_only: bool,
        same_site: Option<String>,
        partitioned: bool,
        clocks: bool,
        idle: Option<u64>,
        absolute: Option<u64>,
        refresh: Option<u64>,
    ) -> PyResult<Self> {
        let encoding = Encoding::parse(encoding)?;
        let transport = if header {
            Transport::Header
        } else {
            let attrs = CookieAttributes {
                domain,
                path,
                secure,
                http_only,
                same_site,
                partitioned,
            };
            Transport::Cookie(CookieSpec::new(name, &attrs)?)
        };
        let chain = Chain::new(chain.iter().map(|t| Arc::clone(&t.inner)).collect());
        let mut inner = SessionCodec::new(name, transport, encoding, chain);
        if clocks {
            inner = inner.with_lifetimes(Lifetimes {
                idle,
                absolute,
                refresh,
            });
        }
        Ok(Self {
            inner,
            header_key: header.then(|| name.to_ascii_lowercase().into_bytes()),
        })
    }

    /// `None` when the cookie is not in the header; otherwise `(payload, reissue)`
    /// with `payload = None` when it did not decode or verify.
    #[pyo3(signature = (header, now = None))]
    fn read_cookie<'py>(
        &self,
        py: Python<'py>,
        header: &str,
        now: Option<u64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        incoming_to_py(
            py,
            self.inner.read_cookie(header, now.unwrap_or_else(unix_now)),
        )
    }

    /// Like `read_cookie` (cookie sessions) or `read_value` (header sessions), straight
    /// from an ASGI `headers` list of `(name, value)` byte pairs: one call finds, decodes
    /// and verifies, with no copy of the list.
    #[pyo3(signature = (headers, now = None))]
    fn read_asgi<'py>(
        &self,
        py: Python<'py>,
        headers: &Bound<'_, PyAny>,
        now: Option<u64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let now = now.unwrap_or_else(unix_now);
        let wanted = self.header_key.as_deref().unwrap_or(b"cookie");
        let mut found: Option<String> = None;
        for item in headers.try_iter()? {
            let item = item?;
            let key = item.get_item(0)?;
            let key = key.cast::<PyBytes>()?;
            if key.as_bytes() != wanted {
                continue;
            }
            let value = item.get_item(1)?;
            let text = latin1(value.cast::<PyBytes>()?.as_bytes());
            match (&mut found, self.header_key.is_some()) {
                (Some(_), true) => break, // header sessions: the first header wins
                (Some(all), false) => {
                    all.push_str("; ");
                    all.push_str(&text);
                }
                (None, _) => found = Some(text),
            }
        }
        match found {
            None => Ok(None),
            Some(raw) if self.header_key.is_some() => {
                incoming_to_py(py, self.inner.read_value(&raw, now))
            }
            Some(header) => incoming_to_py(py, self.inner.read_cookie(&header, now)),
        }
    }

    /// `(payload, reissue)` for one wire value, `payload = None` when it is rejected.
    #[pyo3(signature = (raw, now = None))]
    fn read_value<'py>(
        &self,
        py: Python<'py>,
        raw: &str,
        now: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match incoming_to_py(py, self.inner.read_value(raw, now.unwrap_or_else(unix_now)))? {
            Some(found) => Ok(found),
            None => Ok((None::<String>, false).into_pyobject(py)?.into_any()),
        }
    }

    /// The raw value of this cookie in a `Cookie` header, if present.
    fn find_cookie(&self, header: &str) -> Option<String> {
        crate::codec::cookie::find_cookie(header, self.inner.name()).map(str::to_owned)
    }

    /// Only the encoding step of a read.
    fn decode(&self, raw: &str) -> Option<String> {
        self.inner.decode(raw)
    }

    /// The `Set-Cookie` value (cookie) or header value (header) carrying `payload`.
    #[pyo3(signature = (payload, max_age = None, now = None))]
    fn write(&self, payload: &str, max_age: Option<u64>, now: Option<u64>) -> PyResult<String> {
        Ok(self
            .inner
            .write(payload, max_age, now.unwrap_or_else(unix_now))?)
    }

    /// Like `write` for a value framed with its clocks (`last_seen` = `now`).
    #[pyo3(signature = (payload, created, deadline = None, max_age = None, now = None))]
    fn write_clocked(
        &self,
        payload: &str,
        created: u64,
        deadline: Option<u64>,
        max_age: Option<u64>,
        now: Option<u64>,
    ) -> PyResult<String> {
        let now = now.unwrap_or_else(unix_now);
        Ok(self
            .inner
            .write_clocked(payload, created, deadline, max_age, now)?)
    }

    /// For chains that run partly in Python, and for server-side records:
    /// `(payload, created, last_seen, deadline, renew)` when the clocks in front of
    /// `text` say it is alive, else `None`. `seen`: a later use the storage knows of.
    #[pyo3(signature = (text, now = None, seen = None))]
    fn open_clocks(
        &self,
        text: &str,
        now: Option<u64>,
        seen: Option<u64>,
    ) -> Option<(String, u64, u64, Option<u64>, bool)> {
        let now = now.unwrap_or_else(unix_now);
        let (payload, alive) = self.inner.open_clocks(text, now, seen)?;
        Some((
            payload.to_owned(),
            alive.created,
            alive.last_seen,
            alive.deadline,
            alive.renew,
        ))
    }

    /// For chains that run partly in Python: `payload` framed with its clocks.
    #[pyo3(signature = (payload, created, deadline = None, now = None))]
    fn wrap_clocks(
        &self,
        payload: &str,
        created: u64,
        deadline: Option<u64>,
        now: Option<u64>,
    ) -> String {
        self.inner
            .wrap_clocks(payload, created, deadline, now.unwrap_or_else(unix_now))
    }

    /// Like `write` for a value the chain already transformed.
    #[pyo3(signature = (transformed, max_age = None, now = None))]
    fn render(
        &self,
        transformed: &str,
        max_age: Option<u64>,
        now: Option<u64>,
    ) -> PyResult<String> {
        Ok(self
            .inner
            .render(transformed, max_age, now.unwrap_or_else(unix_now))?)
    }

    /// The key a storage sees for this session's `id` (see `codec::ids::storage_key`).
    fn storage_key(&self, id: &str) -> String {
        ids::storage_key(self.inner.name(), id)
    }

    /// The clearing `Set-Cookie` value, `None` for a header session.
    #[getter]
    fn clear_line(&self) -> Option<&str> {
        self.inner.clear_line()
    }
}

/// A new session id: 64 lowercase hex characters from the OS CSPRNG.
#[pyfunction]
fn new_session_id() -> PyResult<String> {
    Ok(ids::new_session_id()?)
}

/// `n` bytes from the OS CSPRNG.
#[pyfunction]
fn random_bytes(n: usize) -> PyResult<Vec<u8>> {
    let mut buf = vec![0u8; n];
    ids::random_bytes(&mut buf)?;
    Ok(buf)
}

#[pymodule(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("build_profile", crate::BUILD_PROFILE)?;
    m.add("CLOCK_SKEW", crate::codec::mac::CLOCK_SKEW)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Transform>()?;
    m.add_class::<Codec>()?;
    m.add_function(wrap_pyfunction!(mac_transformer, m)?)?;
    m.add_function(wrap_pyfunction!(digest_transformer, m)?)?;
    m.add_function(wrap_pyfunction!(new_session_id, m)?)?;
    m.add_function(wrap_pyfunction!(random_bytes, m)?)?;
    crypto::register(m)?;
    compat::register(m)?;
    inspect::register(m)?;
    storage::register(m)?;
    Ok(())
}
