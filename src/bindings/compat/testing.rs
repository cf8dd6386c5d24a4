//! Test-only hooks of the compatibility codecs: `_core._test_cookie_value` and
//! `_core._test_compat_json` expose the Werkzeug / Starlette cookie lookup and the JSON
//! writer on their own, so that property tests can hold them against the real
//! `werkzeug.http.parse_cookie` and `json.dumps` (which only run in Python). Nothing in
//! `ferrosession` calls them; they are not API.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::codec::itsdangerous::{starlette_cookie, werkzeug_cookie};

use super::super::json_write::{JsonWriter, Style};

/// The value of cookie `name` in a `Cookie` header as Starlette (`style="starlette"`,
/// last wins) or Werkzeug (`style="werkzeug"`, first wins) finds it (tests).
#[pyfunction(name = "_test_cookie_value")]
#[pyo3(signature = (header, name, style))]
fn cookie_value<'py>(
    py: Python<'py>,
    header: &str,
    name: &str,
    style: &str,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let found = match style {
        "starlette" => {
            // Starlette sees the latin-1 decoding of the header bytes
            let Some(bytes) = latin1(header) else {
                return Ok(None);
            };
            let Some(name) = latin1(name) else {
                return Ok(None);
            };
            starlette_cookie(&bytes, &name).map(|v| v.into_owned())
        }
        "werkzeug" => werkzeug_cookie(header.as_bytes(), name.as_bytes()).map(|v| v.into_owned()),
        other => {
            return Err(PyValueError::new_err(format!(
                "style must be \"starlette\" or \"werkzeug\", not {other:?}"
            )))
        }
    };
    Ok(found.map(|v| PyBytes::new(py, &v)))
}

fn latin1(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// `json.dumps(obj)` (Starlette) or Flask's compact sorted JSON for plain values,
/// `None` when Python must serialize (tests compare it with the peers' output).
#[pyfunction(name = "_test_compat_json")]
#[pyo3(signature = (obj, style = "starlette"))]
fn compat_json(obj: &Bound<'_, PyAny>, style: &str) -> PyResult<Option<String>> {
    let style = match style {
        "starlette" => Style::Starlette,
        "flask" => Style::Flask,
        other => {
            return Err(PyValueError::new_err(format!(
                "style must be \"starlette\" or \"flask\", not {other:?}"
            )))
        }
    };
    let mut writer = JsonWriter::new(style);
    let written = match obj.cast::<PyDict>() {
        Ok(dict) => writer.dict(dict, 0),
        Err(_) => writer.value(obj, 0),
    };
    Ok(written.map(|()| String::from_utf8(writer.out).expect("the writer emits ASCII")))
}

/// Adds the test-only hooks to `ferrosession._core`.
pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cookie_value, m)?)?;
    m.add_function(wrap_pyfunction!(compat_json, m)?)?;
    Ok(())
}
