//! The write half of the default serializer's typed fast path: a session value straight
//! to the JSON `JSONSerializer._dumps` gives for it (orjson's, byte for byte; see
//! `json_out`), or `None` when the value is not plain (a float, a subclass, a nested
//! dataclass, a tuple, a lone surrogate, deep nesting): then orjson writes it, or
//! raises.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::json_out::{JsonWriter, Style};
use super::{DataSpec, Spec};

/// `value` (an instance of the session type the root spec describes) as JSON.
pub(super) fn dump_root(root: &Spec, value: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    let mut writer = JsonWriter::new(Style::Orjson);
    match root {
        Spec::Dataclass(data) => dataclass(&mut writer, data, value)?,
        Spec::Dict(_) | Spec::Object => writer.dict(value.cast_exact::<PyDict>().ok()?, 0)?,
        _ => return None,
    }
    Some(writer.out)
}

/// A dataclass whose `__dict__` holds exactly its fields, in declaration order (what
/// `_dumps` checks before it hands that dict to orjson).
fn dataclass(writer: &mut JsonWriter, data: &DataSpec, value: &Bound<'_, PyAny>) -> Option<()> {
    let py = value.py();
    let cls = data.new_args.bind(py).get_item(0).ok()?;
    if !value.get_type().is(&cls) {
        return None;
    }
    let attrs = value.getattr(pyo3::intern!(py, "__dict__")).ok()?;
    let attrs = attrs.cast_exact::<PyDict>().ok()?;
    if attrs.len() != data.fields.len() {
        return None;
    }
    writer.out.push(b'{');
    for (i, ((key, item), field)) in attrs.iter().zip(&data.fields).enumerate() {
        let same = key.is(field.key.bind(py))
            || key
                .cast_exact::<PyString>()
                .is_ok_and(|k| k.to_str().is_ok_and(|k| k == field.name));
        if !same {
            return None;
        }
        if i > 0 {
            writer.out.push(b',');
        }
        writer.key(&key)?;
        writer.value(&item, 1)?;
    }
    writer.out.push(b'}');
    Some(())
}
