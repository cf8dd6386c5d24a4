//! What a read found, as named fields: written into the request's state for the
//! session (the `_State` of `ferrosession.current`: `present`, `payload`, `value`,
//! `reissue`, `created`, `deadline`, `renew`), or returned as a [`Clocks`].
//!
//! A field is only written when it differs from the state's class default (`False` /
//! `None`), so the common read — a verified value, nothing more to do — writes two. A
//! re-issue or a renewal also sets `todo` (the response has work for the session).

use pyo3::intern;
use pyo3::prelude::*;

use super::Schema;
use crate::codec::clocks::Alive;
use crate::codec::session::Incoming;
use crate::codec::Opened;

/// The clocks in front of a value that is alive (`Codec.open_clocks`).
#[pyclass(name = "Clocks", module = "ferrosession._core", frozen, get_all)]
pub(crate) struct Clocks {
    /// The value behind the clocks.
    payload: String,
    /// When the session began.
    created: u64,
    /// When it was last used, as far as the value (and the storage) tell.
    last_seen: u64,
    /// Its per-value deadline, if any.
    deadline: Option<u64>,
    /// `last_seen` is due for renewal.
    renew: bool,
}

impl Clocks {
    pub(crate) fn new(payload: &str, alive: Alive) -> Self {
        Self {
            payload: payload.to_owned(),
            created: alive.created,
            last_seen: alive.last_seen,
            deadline: alive.deadline,
            renew: alive.renew,
        }
    }
}

/// Writes what a read of the wire value found into `st`. With `schema` (the session
/// type's typed reader) a verified payload is also read into its value; the payload
/// itself is kept only when it is needed: to issue it again (a retired key, a due
/// renewal) or for the serializer's Python path (the schema left it).
pub(crate) fn fill(
    py: Python<'_>,
    st: &Bound<'_, PyAny>,
    incoming: Incoming,
    schema: Option<&Schema>,
) -> PyResult<()> {
    let (opened, alive) = match incoming {
        Incoming::Absent => return Ok(()),
        Incoming::Invalid => return st.setattr(intern!(py, "present"), true),
        Incoming::Valid(opened) => (opened, None),
        Incoming::Clocked(opened, alive) => (opened, Some(alive)),
    };
    st.setattr(intern!(py, "present"), true)?;
    let renew = alive.is_some_and(|a| a.renew);
    if let Some(alive) = alive {
        set_clocks(py, st, alive.created, alive.deadline, renew)?;
    }
    let Opened {
        value: text,
        reissue,
    } = opened;
    if reissue {
        st.setattr(intern!(py, "reissue"), true)?;
        st.setattr(intern!(py, "todo"), true)?;
    }
    let value = schema.and_then(|s| s.read(py, &text));
    let needed = value.is_none() || reissue || renew;
    if let Some(value) = value {
        st.setattr(intern!(py, "value"), value)?;
    }
    if needed {
        st.setattr(intern!(py, "payload"), text)?;
    }
    Ok(())
}

/// Writes a stored record that is alive into `st`: its payload, its clocks and, with
/// `schema`, its value.
pub(crate) fn fill_record(
    py: Python<'_>,
    st: &Bound<'_, PyAny>,
    payload: &str,
    alive: Alive,
    schema: Option<&Schema>,
) -> PyResult<()> {
    set_clocks(py, st, alive.created, alive.deadline, alive.renew)?;
    if let Some(value) = schema.and_then(|s| s.read(py, payload)) {
        st.setattr(intern!(py, "value"), value)?;
    }
    st.setattr(intern!(py, "payload"), payload)
}

fn set_clocks(
    py: Python<'_>,
    st: &Bound<'_, PyAny>,
    created: u64,
    deadline: Option<u64>,
    renew: bool,
) -> PyResult<()> {
    st.setattr(intern!(py, "created"), created)?;
    if deadline.is_some() {
        st.setattr(intern!(py, "deadline"), deadline)?;
    }
    if renew {
        st.setattr(intern!(py, "renew"), true)?;
        st.setattr(intern!(py, "todo"), true)?;
    }
    Ok(())
}
