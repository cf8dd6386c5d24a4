//! The only module that touches pyo3: the `ferrosession._core` extension.

use std::borrow::Cow;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::codec::chain::Chain;
use crate::codec::clocks::Lifetimes;
use crate::codec::cookie::{CookieAttributes, CookieSpec};
use crate::codec::digest::Digest;
use crate::codec::encoding::Encoding;
use crate::codec::mac::{MacAlgorithm, MessageAuthentication};
use crate::codec::session::{SessionCodec, Transport};
use crate::codec::{ids, unix_now, Context, Transformer};
use crate::error::CoreError;

mod compat;
mod crypto;
mod decode;
mod django;
mod found;
mod inspect;
mod json_write;
mod schema;
mod storage;

use schema::Schema;

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
fn latin1(bytes: &[u8]) -> Cow<'_, str> {
    if bytes.is_ascii() {
        // ASCII is UTF-8 as it is
        if let Ok(text) = std::str::from_utf8(bytes) {
            return std::borrow::Cow::Borrowed(text);
        }
    }
    std::borrow::Cow::Owned(bytes.iter().map(|&b| b as char).collect())
}

/// Header values found in an ASGI header list: the first without a heap allocation.
#[derive(Default)]
struct Values<'py> {
    first: Option<Bound<'py, PyBytes>>,
    more: Vec<Bound<'py, PyBytes>>,
}

impl<'py> Values<'py> {
    fn push(&mut self, value: Bound<'py, PyBytes>) {
        if self.first.is_none() {
            self.first = Some(value);
        } else {
            self.more.push(value);
        }
    }
}

/// What came in, for Python: `None` (absent), `(None, False)` (invalid),
/// `(payload, reissue)`, or for a codec with lifetimes
/// `(payload, reissue, created, deadline, renew)`.
/// A payload as text: a `str`, or the UTF-8 bytes orjson writes (read without a copy).
fn payload_text<'a>(payload: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, str>> {
    if let Ok(bytes) = payload.cast::<PyBytes>() {
        return std::str::from_utf8(bytes.as_bytes())
            .map(Cow::Borrowed)
            .map_err(|_| PyValueError::new_err("the payload is not UTF-8"));
    }
    payload.cast::<PyString>()?.to_cow()
}

/// A rendered header line as the Latin-1 bytes an ASGI header value is.
fn line_to_bytes(py: Python<'_>, line: Vec<u8>) -> PyResult<Bound<'_, PyBytes>> {
    if line.is_ascii() {
        return Ok(PyBytes::new(py, &line));
    }
    // not reached (a rendered line is ASCII); Python's encoding, errors and all
    PyString::new(py, &String::from_utf8_lossy(&line))
        .call_method1(pyo3::intern!(py, "encode"), ("latin-1",))?
        .cast_into::<PyBytes>()
        .map_err(PyErr::from)
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

    /// Reads the incoming value into `st` (see `found::fill`) from `text`: the `Cookie`
    /// header for a cookie session, the header's value for a header session.
    #[pyo3(signature = (st, text, now = None, schema = None))]
    fn read_text(
        &self,
        py: Python<'_>,
        st: &Bound<'_, PyAny>,
        text: &str,
        now: Option<u64>,
        schema: Option<&Bound<'_, Schema>>,
    ) -> PyResult<()> {
        let now = now.unwrap_or_else(unix_now);
        let incoming = if self.header_key.is_some() {
            self.inner.read_value(text, now)
        } else {
            self.inner.read_cookie(text, now)
        };
        found::fill(py, st, incoming, schema.map(Bound::get))
    }

    /// Like `read_text`, straight from an ASGI `headers` list of `(name, value)` byte
    /// pairs: one call finds, decodes, verifies and (with `schema`) reads the value
    /// into `st`, with no copy of the list.
    #[pyo3(signature = (st, headers, now = None, schema = None))]
    fn read_asgi(
        &self,
        py: Python<'_>,
        st: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        now: Option<u64>,
        schema: Option<&Bound<'_, Schema>>,
    ) -> PyResult<()> {
        let now = now.unwrap_or_else(unix_now);
        let wanted = self.header_key.as_deref().unwrap_or(b"cookie");
        let header = self.header_key.is_some();
        // the matching values, kept as they are (usually one: read without a copy)
        let mut values: Values<'_> = Values::default();
        if let Ok(list) = headers.cast::<PyList>() {
            // the usual shape (a list of 2-tuples), read without the item protocol
            for item in list.iter() {
                let (key, pair) = match item.cast::<PyTuple>() {
                    Ok(pair) if pair.len() == 2 => (pair.get_item(0)?, Some(pair)),
                    _ => (item.get_item(0)?, None),
                };
                if key.cast::<PyBytes>()?.as_bytes() != wanted {
                    continue;
                }
                let value = match pair {
                    Some(pair) => pair.get_item(1)?,
                    None => item.get_item(1)?,
                };
                values.push(value.cast_into::<PyBytes>()?);
                if header {
                    break; // header sessions: the first header wins
                }
            }
        } else {
            for item in headers.try_iter()? {
                let item = item?;
                let key = item.get_item(0)?;
                if key.cast::<PyBytes>()?.as_bytes() != wanted {
                    continue;
                }
                values.push(item.get_item(1)?.cast_into::<PyBytes>()?);
                if header {
                    break;
                }
            }
        }
        let found = match (&values.first, values.more.is_empty()) {
            (None, _) => None,
            (Some(one), true) => Some(latin1(one.as_bytes())),
            (Some(one), false) => {
                let parts: Vec<_> = std::iter::once(one)
                    .chain(&values.more)
                    .map(|v| latin1(v.as_bytes()))
                    .collect();
                Some(std::borrow::Cow::Owned(parts.join("; ")))
            }
        };
        let incoming = match found {
            None => return Ok(()),
            Some(raw) if self.header_key.is_some() => self.inner.read_value(&raw, now),
            Some(header) => self.inner.read_cookie(&header, now),
        };
        found::fill(py, st, incoming, schema.map(Bound::get))
    }

    /// The raw value of this cookie in a `Cookie` header, if present.
    fn find_cookie(&self, header: &str) -> Option<String> {
        crate::codec::cookie::find_cookie(header, self.inner.name()).map(str::to_owned)
    }

    /// Only the encoding step of a read.
    fn decode(&self, raw: &str) -> Option<String> {
        self.inner.decode(raw)
    }

    /// The `Set-Cookie` value (cookie) or header value (header) carrying `payload`
    /// (text, or its UTF-8 bytes as orjson writes them: read without a copy).
    #[pyo3(signature = (payload, max_age = None, now = None))]
    fn write(
        &self,
        payload: &Bound<'_, PyAny>,
        max_age: Option<u64>,
        now: Option<u64>,
    ) -> PyResult<String> {
        let now = now.unwrap_or_else(unix_now);
        Ok(self.inner.write(&payload_text(payload)?, max_age, now)?)
    }

    /// Like `write`, as the Latin-1 bytes an ASGI header value is (the line is ASCII).
    #[pyo3(signature = (payload, max_age = None, now = None))]
    fn write_asgi<'py>(
        &self,
        py: Python<'py>,
        payload: &Bound<'_, PyAny>,
        max_age: Option<u64>,
        now: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let now = now.unwrap_or_else(unix_now);
        let line = self
            .inner
            .write_line(&payload_text(payload)?, max_age, now)?;
        line_to_bytes(py, line)
    }

    /// `set`'s common case in one call: `value` as the default serializer writes it
    /// (see `Schema.dumps`), transformed and rendered as `write_asgi` (`asgi`) or
    /// `write` would; `None` when the schema leaves the value to orjson.
    #[pyo3(signature = (schema, value, max_age = None, asgi = true, now = None))]
    fn write_value<'py>(
        &self,
        py: Python<'py>,
        schema: &Bound<'py, Schema>,
        value: &Bound<'py, PyAny>,
        max_age: Option<u64>,
        asgi: bool,
        now: Option<u64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(json) = json_write::dump_root(schema.get(), value) else {
            return Ok(None);
        };
        // the writer puts whole UTF-8 strings between ASCII punctuation
        let json = String::from_utf8(json).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let line = self
            .inner
            .write_line(&json, max_age, now.unwrap_or_else(unix_now))?;
        Ok(Some(if asgi {
            line_to_bytes(py, line)?.into_any()
        } else {
            PyString::new(py, &String::from_utf8_lossy(&line)).into_any()
        }))
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

    /// For chains that run partly in Python, and for server-side records: the clocks
    /// in front of `text` when they say it is alive, else `None`. `seen`: a later use
    /// the storage knows of; `left`: the seconds of life the storage reports for the
    /// record (`read_ttl`), which tell its last use (see `clocks::open_stored`).
    #[pyo3(signature = (text, now = None, seen = None, left = None))]
    fn open_clocks(
        &self,
        text: &str,
        now: Option<u64>,
        seen: Option<u64>,
        left: Option<f64>,
    ) -> Option<found::Clocks> {
        let now = now.unwrap_or_else(unix_now);
        let (payload, alive) = if left.is_some() {
            self.inner.open_stored(text, now, left)?
        } else {
            self.inner.open_clocks(text, now, seen)?
        };
        Some(found::Clocks::new(payload, alive))
    }

    /// A server-side record read by the middleware, in one call: `open_clocks` (with
    /// `left` from `read_ttl`), then its payload, clocks and (with `schema`) value
    /// written into `st`. `False` when the record has ended.
    #[pyo3(signature = (st, text, now = None, left = None, schema = None))]
    fn open_record(
        &self,
        py: Python<'_>,
        st: &Bound<'_, PyAny>,
        text: &str,
        now: Option<u64>,
        left: Option<f64>,
        schema: Option<&Bound<'_, Schema>>,
    ) -> PyResult<bool> {
        let now = now.unwrap_or_else(unix_now);
        let opened = if left.is_some() {
            self.inner.open_stored(text, now, left)
        } else {
            self.inner.open_clocks(text, now, None)
        };
        let Some((payload, alive)) = opened else {
            return Ok(false);
        };
        found::fill_record(py, st, payload, alive, schema.map(Bound::get))?;
        Ok(true)
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
    m.add("RECORD_SLACK", crate::codec::clocks::RECORD_SLACK)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Transform>()?;
    m.add_class::<Codec>()?;
    m.add_class::<Schema>()?;
    m.add_class::<found::Clocks>()?;
    m.add_function(wrap_pyfunction!(mac_transformer, m)?)?;
    m.add_function(wrap_pyfunction!(digest_transformer, m)?)?;
    m.add_function(wrap_pyfunction!(new_session_id, m)?)?;
    m.add_function(wrap_pyfunction!(random_bytes, m)?)?;
    crypto::register(m)?;
    django::register(m)?;
    compat::register(m)?;
    inspect::register(m)?;
    storage::register(m)?;
    Ok(())
}
