//! Bindings of the Starlette- and Flask-compatible session cookies
//! (`codec::itsdangerous`): `StarletteCodec` and `FlaskCodec`, one Rust call per
//! direction.
//!
//! Starlette: `StarletteCodec.load` verifies the request's cookie into the lazy
//! session on its first use and `finish` completes the response start (`Vary`,
//! `Set-Cookie`) as Starlette's middleware does. Flask: `FlaskCodec.load_header` finds
//! the cookie in `HTTP_COOKIE` with Werkzeug's rules and verifies it; `dump` signs.
//!
//! JSON: reading hands the JSON text to orjson when a quick scan (`json_hints`) shows
//! nothing it would read differently from Python's `json` (big integers, `NaN`, and for
//! Flask strings that may be tag keys), else to `json.loads` / Flask's serializer.
//! Writing serializes the session dict here when it holds only plain JSON values
//! (exact `dict`, `list`, `str`, `int`, `float`, `bool`, `None`; Starlette also takes
//! `tuple`), byte for byte as Python's `json.dumps` with the peer's settings would:
//! Starlette's `json.dumps(session)` (separators `", "` / `": "`, `ensure_ascii`) or
//! Flask's tagged JSON for untagged values (`","` / `":"`, sorted keys, `ensure_ascii`).
//! Anything else goes to Python's `json.dumps` (Starlette, which then raises what it
//! raises) or back to the caller (`None`, Flask: its serializer, then `dump_json`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};

use crate::codec::itsdangerous::{exotic_numbers, json_hints, werkzeug_cookie, KeyDerivation};
use crate::codec::itsdangerous::{FlaskCodec as CoreFlask, StarletteCodec as CoreStarlette};
use crate::codec::unix_now;

use super::json_write::{JsonWriter, Style};

mod testing;

/// The `Cookie` headers of an ASGI scope: none, one (borrowed from its `bytes`), or
/// several joined with `;` (Starlette reads them as one).
enum CookieHeader<'py> {
    One(Bound<'py, PyBytes>),
    Many(Vec<u8>),
}

impl CookieHeader<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::One(b) => b.as_bytes(),
            Self::Many(v) => v,
        }
    }

    fn add<'py>(found: &mut Option<CookieHeader<'py>>, value: Bound<'py, PyBytes>) {
        *found = Some(match found.take() {
            None => CookieHeader::One(value),
            Some(previous) => {
                let mut joined = previous.bytes().to_vec();
                joined.push(b';');
                joined.extend_from_slice(value.as_bytes());
                CookieHeader::Many(joined)
            }
        });
    }
}

/// The `Cookie` header values of an ASGI scope's `headers`: only headers named exactly
/// `b"cookie"`, as Starlette's `Headers` compares them.
fn cookie_headers<'py>(headers: &Bound<'py, PyAny>) -> PyResult<Option<CookieHeader<'py>>> {
    let mut found = None;
    if let Ok(list) = headers.cast::<PyList>() {
        for item in list.iter() {
            if let Ok(pair) = item.cast::<PyTuple>() {
                if pair.len() == 2 {
                    let key = pair.get_borrowed_item(0)?;
                    if let Ok(key) = key.cast::<PyBytes>() {
                        if key.as_bytes() == b"cookie" {
                            let value = pair.get_item(1)?.cast_into::<PyBytes>()?;
                            CookieHeader::add(&mut found, value);
                        }
                        continue;
                    }
                }
            }
            generic_pair(&item, &mut found)?;
        }
    } else {
        for item in headers.try_iter()? {
            generic_pair(&item?, &mut found)?;
        }
    }
    Ok(found)
}

/// One `[name, value]` pair of any shape ASGI allows (two-item iterables of bytes).
fn generic_pair<'py>(
    item: &Bound<'py, PyAny>,
    found: &mut Option<CookieHeader<'py>>,
) -> PyResult<()> {
    let key = item.get_item(0)?;
    if key
        .cast::<PyBytes>()
        .is_ok_and(|k| k.as_bytes() == b"cookie")
    {
        let value = item.get_item(1)?.cast_into::<PyBytes>()?;
        CookieHeader::add(found, value);
    }
    Ok(())
}

/// The JSON callables a codec uses: a fast parser (orjson) with its error type, and
/// Python's `json.loads` / `json.dumps` where the fast one is not exact.
struct JsonFns {
    fast_loads: Py<PyAny>,
    fast_error: Py<PyAny>,
    loads: Py<PyAny>,
    dumps: Py<PyAny>,
}

impl JsonFns {
    /// `json.loads(raw)`, through the fast parser unless `exotic` or it fails to parse.
    fn loads<'py>(
        &self,
        py: Python<'py>,
        raw: &Bound<'py, PyBytes>,
        exotic: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !exotic {
            match self.fast_loads.bind(py).call1((raw,)) {
                Ok(value) => return Ok(value),
                Err(e) if e.is_instance(py, self.fast_error.bind(py)) => {}
                Err(e) => return Err(e),
            }
        }
        self.loads.bind(py).call1((raw,))
    }
}

/// Starlette's `SessionMiddleware` cookie: reads a scope's headers into the session
/// dict, and adds `Vary` / `Set-Cookie` to the response start (the `Set-Cookie` text
/// is `prefix + cookie + suffix`, its attributes built once by the Python side).
#[pyclass(name = "StarletteCodec", module = "ferrosession._core", frozen)]
struct StarletteCodec {
    inner: CoreStarlette,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    clear_line: Py<PyBytes>,
    json: JsonFns,
    /// `b"vary"`, `(b"vary", b"Cookie")` and `b"set-cookie"`, made once.
    vary_key: Py<PyBytes>,
    vary_cookie: Py<PyTuple>,
    set_cookie_key: Py<PyBytes>,
    /// Whether fallback secrets are configured (a cookie they verify is re-signed).
    fallbacks: bool,
    /// Returns the Unix time (tests); the system clock when `None`.
    clock: Option<Py<PyAny>>,
    /// The lazy session class (`finish` leaves an unread one alone).
    lazy_type: Option<Py<PyAny>>,
    /// The key an unread lazy session holds its state under (`begin`).
    not_read: Option<Py<PyAny>>,
    /// Whether `begin` leaves the cookie unread until the session's first use.
    lazy: bool,
}

#[pymethods]
impl StarletteCodec {
    /// `secrets[0]` signs, every secret verifies; `name` is the cookie name as latin-1
    /// bytes (`None` when it has none: such a cookie is never found). `loads` /
    /// `dumps` are `json`'s, `fast_loads` / `fast_error` orjson's.
    #[new]
    #[pyo3(signature = (
        secrets, max_age, name, prefix, suffix, clear_line, *, fast_loads, fast_error, loads,
        dumps, clock = None, lazy_type = None, not_read = None, lazy = true
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        secrets: Vec<Vec<u8>>,
        max_age: Option<i64>,
        name: Option<Vec<u8>>,
        prefix: Vec<u8>,
        suffix: Vec<u8>,
        clear_line: Vec<u8>,
        fast_loads: Py<PyAny>,
        fast_error: Py<PyAny>,
        loads: Py<PyAny>,
        dumps: Py<PyAny>,
        clock: Option<Py<PyAny>>,
        lazy_type: Option<Py<PyAny>>,
        not_read: Option<Py<PyAny>>,
        lazy: bool,
    ) -> PyResult<Self> {
        // A ';' cannot be a cookie name: a name without latin-1 bytes never matches.
        let name = name.unwrap_or_else(|| b";".to_vec());
        let fallbacks = secrets.len() > 1;
        Ok(Self {
            inner: CoreStarlette::new(&secrets, max_age, name)?,
            prefix,
            suffix,
            clear_line: PyBytes::new(py, &clear_line).unbind(),
            json: JsonFns {
                fast_loads,
                fast_error,
                loads,
                dumps,
            },
            vary_key: PyBytes::new(py, b"vary").unbind(),
            vary_cookie: PyTuple::new(
                py,
                [PyBytes::new(py, b"vary"), PyBytes::new(py, b"Cookie")],
            )?
            .unbind(),
            set_cookie_key: PyBytes::new(py, b"set-cookie").unbind(),
            fallbacks,
            clock,
            lazy_type,
            not_read,
            lazy,
        })
    }

    /// Starts an ASGI request: puts a new lazy session (`lazy_type()`, holding the
    /// request's `[codec, scope["headers"], None]` state under `not_read`) in
    /// `scope["session"]`, reads it at once unless the codec is lazy, and returns the
    /// `send` to hand to the app (it finishes the response start, then calls `send`).
    fn begin(
        slf: &Bound<'_, Self>,
        scope: &Bound<'_, PyAny>,
        send: Py<PyAny>,
    ) -> PyResult<StarletteSend> {
        let py = slf.py();
        let this = slf.get();
        let (Some(lazy_type), Some(not_read)) = (&this.lazy_type, &this.not_read) else {
            return Err(PyValueError::new_err("begin needs lazy_type and not_read"));
        };
        let headers = scope.get_item(pyo3::intern!(py, "headers"))?;
        let none = py.None().into_bound(py);
        let state = PyList::new(py, [slf.as_any(), &headers, &none])?;
        let session = lazy_type.bind(py).call0()?;
        session
            .cast::<PyDict>()?
            .set_item(not_read.bind(py), &state)?;
        scope.set_item(pyo3::intern!(py, "session"), &session)?;
        if !this.lazy {
            session.call_method0(pyo3::intern!(py, "_fs_load"))?;
        }
        Ok(StarletteSend {
            codec: slf.clone().unbind(),
            scope: scope.clone().unbind(),
            state: state.unbind(),
            send,
        })
    }

    /// Reads the request's cookie into `session`, a lazy session that just became a
    /// plain one. `state` is the request's `[codec, scope headers, status]` list; the
    /// status becomes 0 (no valid cookie), 1 (verified) or 2 (verified by a fallback).
    fn load(
        &self,
        py: Python<'_>,
        session: &Bound<'_, PyDict>,
        state: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        self.read_cookie(py, session, state).map(|_| ())
    }

    /// Finishes an ASGI `http.response.start` message as Starlette's middleware does
    /// (`Vary: Cookie` when the session was accessed; `Set-Cookie` when it was modified,
    /// or re-signed when a fallback secret verified it), for `scope["session"]`.
    fn finish(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        scope: &Bound<'_, PyAny>,
        state: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        self.finish_start(py, message, scope, state)
    }

    /// `(json, reissue, exotic)` of one cookie value (tests, tools), `None` when it
    /// does not verify.
    #[pyo3(signature = (value, now = None))]
    fn load_value<'py>(
        &self,
        py: Python<'py>,
        value: &[u8],
        now: Option<u64>,
    ) -> Option<(Bound<'py, PyBytes>, bool, bool)> {
        let now = now.unwrap_or_else(unix_now);
        self.inner.read_value(value, now).map(|(json, reissue)| {
            let exotic = json_hints(&json).exotic_numbers;
            (PyBytes::new(py, &json), reissue, exotic)
        })
    }

    /// The whole `Set-Cookie` value for `session` (`json.dumps` decides for values
    /// that are not plain JSON, and raises what it raises).
    #[pyo3(signature = (session, now = None))]
    fn dump<'py>(
        &self,
        py: Python<'py>,
        session: &Bound<'py, PyDict>,
        now: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut writer = JsonWriter::new(Style::Starlette);
        if writer.dict(session, 0).is_some() {
            return Ok(self.line(py, &writer.out, now));
        }
        let text = self.json.dumps.bind(py).call1((session,))?;
        let text = text.cast::<PyString>()?.to_cow()?;
        Ok(self.line(py, text.as_bytes(), now))
    }

    /// Only the cookie value for a JSON text (tests, tools).
    #[pyo3(signature = (json, now = None))]
    fn sign(&self, json: &[u8], now: Option<u64>) -> String {
        self.inner.write(json, now.unwrap_or_else(unix_now))
    }
}

/// Whether a header list holds a `vary` header.
fn has_vary(list: &Bound<'_, PyList>) -> PyResult<bool> {
    for item in list.iter() {
        if vary_value_of(&item)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The value of a `(b"vary", value)` header item, `None` for any other header.
fn vary_value_of(item: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    let pair = item.cast::<PyTuple>().ok();
    let key = match pair {
        Some(pair) => pair.get_item(0)?,
        None => item.get_item(0)?,
    };
    if !key.cast::<PyBytes>().is_ok_and(|k| k.as_bytes() == b"vary") {
        return Ok(None);
    }
    let value = match pair {
        Some(pair) => pair.get_item(1)?,
        None => item.get_item(1)?,
    };
    Ok(Some(value.cast::<PyBytes>()?.as_bytes().to_vec()))
}

/// `state[2]` of a request: `None` before its cookie was read, else 0, 1 or 2.
fn status_of(state: &Bound<'_, PyList>) -> PyResult<Option<u8>> {
    let status = state.get_item(2)?;
    if status.is_none() {
        Ok(None)
    } else {
        Ok(Some(status.extract()?))
    }
}

impl StarletteCodec {
    /// `finish`'s work (also `StarletteSend`'s on the response start).
    fn finish_start(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        scope: &Bound<'_, PyAny>,
        state: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let session = scope.get_item(pyo3::intern!(py, "session"))?;
        if let Some(lazy) = &self.lazy_type {
            if session.get_type().is(lazy.bind(py)) {
                if !self.fallbacks {
                    return Ok(()); // never used: not accessed, not modified
                }
                // a cookie a fallback verified is re-signed
                session.call_method0(pyo3::intern!(py, "_fs_load"))?;
            }
        }
        let truthy =
            |name: &Bound<'_, PyString>| -> PyResult<bool> { session.getattr(name)?.is_truthy() };
        let mut status = status_of(state)?;
        let mut action = 0;
        if truthy(pyo3::intern!(py, "modified"))? {
            if session.is_truthy()? {
                action = 1;
            } else {
                if status.is_none() {
                    // the session object was replaced before the cookie was read;
                    // Starlette knows whether a valid one came in, so find out
                    status = Some(self.read_cookie(py, &PyDict::new(py), state)?);
                }
                if status != Some(0) {
                    action = 2;
                }
            }
        } else if status == Some(2) && session.is_truthy()? {
            action = 1;
        }
        let accessed = truthy(pyo3::intern!(py, "accessed"))?;
        if accessed || action != 0 {
            let now = self.now(py)?;
            self.respond(
                py,
                message,
                session.cast::<PyDict>()?,
                accessed,
                action,
                now,
            )?;
        }
        Ok(())
    }

    fn read_cookie(
        &self,
        py: Python<'_>,
        session: &Bound<'_, PyDict>,
        state: &Bound<'_, PyList>,
    ) -> PyResult<u8> {
        state.set_item(2, 0)?; // an error below leaves "no valid cookie"
        let now = self.now(py)?;
        let status = self.load_into(py, session, &state.get_item(1)?, now)?;
        state.set_item(2, status)?;
        Ok(status)
    }

    /// Verifies the session cookie of an ASGI `headers` list and adds its data to
    /// `session` (a dict) as `dict.update` would. Returns 0 when there is no valid
    /// cookie, 1 when the current secret verified it, 2 when a fallback did.
    fn load_into(
        &self,
        py: Python<'_>,
        session: &Bound<'_, PyDict>,
        headers: &Bound<'_, PyAny>,
        now: Option<u64>,
    ) -> PyResult<u8> {
        let Some(header) = cookie_headers(headers)? else {
            return Ok(0);
        };
        let read = self
            .inner
            .read(header.bytes(), now.unwrap_or_else(unix_now));
        let Some((json, reissue)) = read else {
            return Ok(0);
        };
        let raw = PyBytes::new(py, &json);
        let data = self.json.loads(py, &raw, exotic_numbers(&json))?;
        match data.cast::<PyDict>() {
            Ok(dict) => session.update(dict.as_mapping())?,
            // Starlette builds the session with dict(data): take what dict takes
            Err(_) => {
                py.get_type::<PyDict>()
                    .getattr("update")?
                    .call1((session, data))?;
            }
        }
        Ok(if reissue { 2 } else { 1 })
    }

    /// The clock's time (`int(clock())`), `None` for the system clock.
    fn now(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        match &self.clock {
            None => Ok(None),
            Some(clock) => {
                let t = clock.bind(py).call0()?;
                Ok(Some(py.get_type::<PyInt>().call1((t,))?.extract()?))
            }
        }
    }

    /// Finishes an ASGI `http.response.start` message as Starlette's middleware does:
    /// a new header list with `Vary: Cookie` merged into the first `vary` header (when
    /// `vary`), then `set-cookie` with the session's cookie (`action` 1) or the clearing
    /// one (`action` 2).
    fn respond(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        session: &Bound<'_, PyDict>,
        vary: bool,
        action: u8,
        now: Option<u64>,
    ) -> PyResult<()> {
        let line = match action {
            1 => Some(self.dump(py, session, now)?),
            2 => Some(self.clear_line.bind(py).clone()),
            _ => None,
        };
        let key = pyo3::intern!(py, "headers");
        let old = match message.get_item(key) {
            Ok(headers) if headers.is_truthy()? => Some(headers),
            Ok(_) => None,
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => None,
            Err(e) => return Err(e),
        };
        // Starlette 1.x: every `vary` value, joined with ", " and then "Cookie", goes
        // where the first `vary` header was; the others are dropped
        let mut vary_at: Option<usize> = None;
        let mut vary_value: Vec<u8> = Vec::new();
        let headers = match old.as_ref().map(|o| o.cast::<PyList>()) {
            // the usual case: a list without any `vary` header is copied in one go
            Some(Ok(list)) if !(vary && has_vary(list)?) => list.get_slice(0, list.len()),
            _ => {
                let headers = PyList::empty(py);
                if let Some(old) = old {
                    for item in old.try_iter()? {
                        let item = item?;
                        if vary {
                            if let Some(value) = vary_value_of(&item)? {
                                vary_value.extend_from_slice(&value);
                                vary_value.extend_from_slice(b", ");
                                if vary_at.is_none() {
                                    vary_at = Some(headers.len());
                                    headers.append(&item)?; // replaced below
                                }
                                continue;
                            }
                        }
                        headers.append(item)?;
                    }
                }
                headers
            }
        };
        if vary {
            match vary_at {
                Some(at) => {
                    vary_value.extend_from_slice(b"Cookie");
                    let pair = (self.vary_key.bind(py), PyBytes::new(py, &vary_value));
                    headers.set_item(at, pair)?;
                }
                None => headers.append(self.vary_cookie.bind(py))?,
            }
        }
        if let Some(line) = line {
            headers.append((self.set_cookie_key.bind(py), line))?;
        }
        message.set_item(key, headers)
    }

    fn line<'py>(&self, py: Python<'py>, json: &[u8], now: Option<u64>) -> Bound<'py, PyBytes> {
        let mut line =
            Vec::with_capacity(self.prefix.len() + json.len() * 4 / 3 + 48 + self.suffix.len());
        line.extend_from_slice(&self.prefix);
        self.inner
            .write_into(&mut line, json, now.unwrap_or_else(unix_now));
        line.extend_from_slice(&self.suffix);
        PyBytes::new(py, &line)
    }
}

/// `len("http.response.start")`.
const START_LEN: usize = 19;

/// The `send` an app gets from `StarletteCodec.begin`: on `http.response.start` it
/// adds `Vary` / `Set-Cookie` as `finish` does (nothing for a lazy session never used,
/// unless fallback secrets are configured), then returns `send(message)`'s awaitable.
#[pyclass(name = "StarletteSend", module = "ferrosession._core", frozen)]
struct StarletteSend {
    codec: Py<StarletteCodec>,
    scope: Py<PyAny>,
    state: Py<PyList>,
    send: Py<PyAny>,
}

#[pymethods]
impl StarletteSend {
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind = message.get_item(pyo3::intern!(py, "type"))?;
        let start = pyo3::intern!(py, "http.response.start");
        // the app's literal is usually the very same (interned) object; a body message's
        // type is a str of another length (`==` only when it could be equal)
        let same = kind.is(start)
            || (!(kind.is_exact_instance_of::<PyString>() && kind.len()? != START_LEN)
                && kind.eq(start)?);
        if same {
            let codec = self.codec.get();
            codec.finish_start(py, message, self.scope.bind(py), self.state.bind(py))?;
        }
        self.send.bind(py).call1((message,))
    }

    /// The objects it holds, for the garbage collector (an app may keep its `send`
    /// somewhere the scope reaches).
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.codec)?;
        visit.call(&self.scope)?;
        visit.call(&self.state)?;
        visit.call(&self.send)
    }
}

/// Flask's `SecureCookieSessionInterface` cookie value.
#[pyclass(name = "FlaskCodec", module = "ferrosession._core", frozen)]
struct FlaskCodec {
    inner: CoreFlask,
}

impl FlaskCodec {
    fn opened<'py>(
        py: Python<'py>,
        read: Option<(Vec<u8>, bool)>,
    ) -> Option<(Bound<'py, PyBytes>, bool, bool)> {
        read.map(|(json, reissue)| {
            let hints = json_hints(&json);
            let plain = !hints.exotic_numbers && !hints.space_strings;
            (PyBytes::new(py, &json), reissue, plain)
        })
    }
}

#[pymethods]
impl FlaskCodec {
    /// `secrets[0]` signs (`SECRET_KEY`), every secret verifies
    /// (`SECRET_KEY_FALLBACKS`); `salt` and `key_derivation` as Flask's interface has them.
    #[new]
    #[pyo3(signature = (secrets, salt = b"cookie-session".to_vec(), key_derivation = "hmac"))]
    fn new(secrets: Vec<Vec<u8>>, salt: Vec<u8>, key_derivation: &str) -> PyResult<Self> {
        let derivation = KeyDerivation::parse(key_derivation)?;
        Ok(Self {
            inner: CoreFlask::new(&secrets, &salt, derivation)?,
        })
    }

    /// `(json, reissue, plain)` of a cookie value, `None` when it does not verify or
    /// is older than `max_age` seconds. `plain` = no number a fast parser could get
    /// wrong and no string that could be a tag key: the JSON needs no untagging.
    #[pyo3(signature = (value, max_age = None, now = None))]
    fn load<'py>(
        &self,
        py: Python<'py>,
        value: &[u8],
        max_age: Option<i64>,
        now: Option<u64>,
    ) -> Option<(Bound<'py, PyBytes>, bool, bool)> {
        let now = now.unwrap_or_else(unix_now);
        Self::opened(py, self.inner.read(value, max_age, now))
    }

    /// Like `load` for the cookie `name` in a WSGI `HTTP_COOKIE` value, found the way
    /// Werkzeug's `request.cookies.get(name)` finds it.
    #[pyo3(signature = (header, name, max_age = None, now = None))]
    fn load_header<'py>(
        &self,
        py: Python<'py>,
        header: &str,
        name: &str,
        max_age: Option<i64>,
        now: Option<u64>,
    ) -> Option<(Bound<'py, PyBytes>, bool, bool)> {
        let value = werkzeug_cookie(header.as_bytes(), name.as_bytes())?;
        let now = now.unwrap_or_else(unix_now);
        Self::opened(py, self.inner.read(&value, max_age, now))
    }

    /// The cookie value for `session`, or `None` when it holds something Flask tags
    /// (tuple, bytes, Markup, UUID, datetime, a one-key dict with a tag-like key) or
    /// that is not plain JSON: then serialize with Flask's serializer and call
    /// `dump_json`. JSON shorter than `compress_min` bytes is not compressed.
    #[pyo3(signature = (session, now = None, compress_min = 0))]
    fn dump(
        &self,
        session: &Bound<'_, PyDict>,
        now: Option<u64>,
        compress_min: usize,
    ) -> Option<String> {
        let mut writer = JsonWriter::new(Style::Flask);
        writer.dict(session, 0)?;
        let now = now.unwrap_or_else(unix_now);
        Some(self.inner.write(&writer.out, now, compress_min))
    }

    /// The cookie value for a JSON text (compressed when that is shorter).
    #[pyo3(signature = (json, now = None, compress_min = 0))]
    fn dump_json(&self, json: &[u8], now: Option<u64>, compress_min: usize) -> String {
        self.inner
            .write(json, now.unwrap_or_else(unix_now), compress_min)
    }
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, as Werkzeug's `http_date` writes
/// it) for Unix seconds; `None` before 1970.
#[pyfunction]
fn http_date(seconds: i64) -> Option<String> {
    let secs = u64::try_from(seconds).ok()?;
    let time = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))?;
    Some(httpdate::fmt_http_date(time))
}

/// Adds the compatibility codecs to `ferrosession._core`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StarletteCodec>()?;
    m.add_class::<StarletteSend>()?;
    m.add_class::<FlaskCodec>()?;
    m.add_function(wrap_pyfunction!(http_date, m)?)?;
    testing::register(m)
}
