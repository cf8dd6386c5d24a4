//! The one JSON writer: plain Python values straight to JSON, in the dialect of the
//! serializer it stands in for, byte for byte: Python's `json` as Starlette and Flask
//! call it (the drop-ins' dict sessions), or orjson as `JSONSerializer` calls it (typed
//! session values, see `dump_root`). It writes `str`, `int`, `bool`, `None`, `list` and
//! `dict` with `str` keys, of those exact types (and what the dialect adds; for orjson,
//! the dataclasses, enums and UUIDs a schema knows, and tuples); for anything else it
//! returns `None`, and the caller lets that serializer decide (which also gives its
//! errors).
//!
//! Left to orjson by design: floats (its shortest round-trip formatting, which Python's
//! `repr` does not share), datetimes (its RFC 3339 formatting), subclasses of the plain
//! types, and everything it rejects (its `TypeError`s).

use std::collections::HashMap;
use std::fmt::Write as _;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::codec::json::write_string;

use super::schema::{Node, Schema};

/// Containers nested deeper than this are left to the serializer (which also reports
/// circular references its own way).
pub(super) const MAX_DEPTH: u32 = 64;

/// The JSON dialect.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// `json.dumps(obj)`: `", "` and `": "`, insertion order, tuples as lists.
    Starlette,
    /// Flask's `TaggedJSONSerializer` with the default JSON provider: `","` and
    /// `":"`, sorted keys; tuples and one-key dicts whose key starts with a space
    /// would be tagged, so they are left to Flask.
    Flask,
    /// `orjson.dumps(obj, default=_encode_default)` as `JSONSerializer` calls it:
    /// `","` and `":"`, insertion order, UTF-8 as it is, tuples as arrays, dataclasses
    /// by their fields, enums by value; floats (orjson's own formatting) and integers
    /// beyond 64 bits are left to it.
    Orjson,
}

/// What the writer knows of a class a schema describes.
pub(super) enum Class {
    /// A dataclass: its fields, written in this order (as `_encode_default` does).
    Dataclass(Vec<Py<PyString>>),
    /// An enum: written by its value, as orjson writes enums.
    Enum,
}

/// The classes of one schema, by type object (the schema keeps them alive).
pub(super) struct Classes {
    pub(super) by_type: HashMap<usize, Class>,
    /// `uuid.UUID`, written as its canonical text (what orjson writes).
    pub(super) uuid: Py<PyType>,
}

/// Serializes plain JSON values; `None` = "not plain, let Python do it".
pub(super) struct JsonWriter<'s> {
    pub(super) out: Vec<u8>,
    style: Style,
    classes: Option<&'s Classes>,
}

impl<'s> JsonWriter<'s> {
    pub(super) fn new(style: Style) -> Self {
        Self {
            out: Vec::with_capacity(256),
            style,
            classes: None,
        }
    }

    pub(super) fn value(&mut self, obj: &Bound<'_, PyAny>, depth: u32) -> Option<()> {
        if obj.is_exact_instance_of::<PyString>() {
            let text = obj.cast::<PyString>().ok()?;
            if self.style == Style::Orjson {
                write_string(&mut self.out, text.to_str().ok()?); // a lone surrogate: orjson raises
            } else {
                write_json_str(&mut self.out, text.encode_utf8().ok()?.as_bytes());
            }
        } else if obj.is_none() {
            self.out.extend_from_slice(b"null");
        } else if obj.is_exact_instance_of::<PyBool>() {
            let b = obj.is_truthy().ok()?;
            self.out
                .extend_from_slice(if b { b"true" } else { b"false" });
        } else if obj.is_exact_instance_of::<PyInt>() {
            self.int(obj)?;
        } else if obj.is_exact_instance_of::<PyFloat>() && self.style != Style::Orjson {
            let f = obj.cast::<PyFloat>().ok()?.value();
            if f.is_nan() {
                self.out.extend_from_slice(b"NaN");
            } else if f.is_infinite() {
                self.out
                    .extend_from_slice(if f > 0.0 { b"Infinity" } else { b"-Infinity" });
            } else {
                // float.__repr__, exactly what json uses
                self.out
                    .extend_from_slice(obj.repr().ok()?.encode_utf8().ok()?.as_bytes());
            }
        } else if obj.is_exact_instance_of::<PyList>() {
            let list = obj.cast::<PyList>().ok()?;
            self.sequence(list.iter(), list.len(), depth)?;
        } else if obj.is_exact_instance_of::<PyTuple>() && self.style != Style::Flask {
            let tuple = obj.cast::<PyTuple>().ok()?;
            self.sequence(tuple.iter(), tuple.len(), depth)?;
        } else if obj.is_exact_instance_of::<PyDict>() {
            self.dict(obj.cast::<PyDict>().ok()?, depth)?;
        } else {
            self.known(obj, depth)?;
        }
        Some(())
    }

    /// A value of a class the schema knows (orjson style only).
    fn known(&mut self, obj: &Bound<'_, PyAny>, depth: u32) -> Option<()> {
        let classes = self.classes?;
        let py = obj.py();
        let tp = obj.get_type();
        match classes.by_type.get(&(tp.as_ptr() as usize)) {
            Some(Class::Dataclass(names)) => self.fields(obj, names, depth),
            Some(Class::Enum) => self.value(&obj.getattr(pyo3::intern!(py, "value")).ok()?, depth),
            None if tp.is(classes.uuid.bind(py)) => {
                write_string(&mut self.out, obj.str().ok()?.to_str().ok()?);
                Some(())
            }
            None => None,
        }
    }

    /// A dataclass as `_encode_default` hands it to orjson: `{name: getattr(obj, name)}`
    /// for every field, in declaration order.
    fn fields(&mut self, obj: &Bound<'_, PyAny>, names: &[Py<PyString>], depth: u32) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let py = obj.py();
        if names.is_empty() {
            self.out.extend_from_slice(b"{}");
            return Some(());
        }
        let start = self.out.len();
        // the usual instance: its __dict__ is exactly its fields, in order (read without
        // an attribute lookup per field)
        if let Ok(attrs) = obj.getattr(pyo3::intern!(py, "__dict__")) {
            if let Ok(attrs) = attrs.cast_exact::<PyDict>() {
                if attrs.len() == names.len() {
                    // `None`: a value orjson must write, whichever way it is read
                    if self.items(attrs, names, depth)? {
                        return Some(());
                    }
                }
                self.out.truncate(start);
            }
        }
        self.out.push(b'{');
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            let name = name.bind(py);
            write_string(&mut self.out, name.to_str().ok()?);
            self.out.push(b':');
            self.value(&obj.getattr(name).ok()?, depth + 1)?;
        }
        self.out.push(b'}');
        Some(())
    }

    /// `attrs` written as the fields `names`: `Some(false)` when its keys are not
    /// exactly those in that order, `None` when a value is not plain.
    fn items(
        &mut self,
        attrs: &Bound<'_, PyDict>,
        names: &[Py<PyString>],
        depth: u32,
    ) -> Option<bool> {
        let py = attrs.py();
        self.out.push(b'{');
        for (i, ((key, item), name)) in attrs.iter().zip(names).enumerate() {
            let name = name.bind(py);
            let same = key.is(name)
                || key
                    .cast_exact::<PyString>()
                    .is_ok_and(|k| k.to_str().ok() == name.to_str().ok());
            if !same {
                return Some(false);
            }
            if i > 0 {
                self.out.push(b',');
            }
            write_string(&mut self.out, name.to_str().ok()?);
            self.out.push(b':');
            self.value(&item, depth + 1)?;
        }
        self.out.push(b'}');
        Some(true)
    }

    fn int(&mut self, obj: &Bound<'_, PyAny>) -> Option<()> {
        let mut digits = itoa::Buffer::new();
        if let Ok(n) = obj.extract::<i64>() {
            self.out.extend_from_slice(digits.format(n).as_bytes());
        } else if self.style == Style::Orjson {
            // up to 64 bits unsigned; beyond, orjson raises
            let n = obj.extract::<u64>().ok()?;
            self.out.extend_from_slice(digits.format(n).as_bytes());
        } else {
            // int.__repr__ for a big one (it raises past sys.get_int_max_str_digits,
            // and then Python's json raises the same error)
            self.out
                .extend_from_slice(obj.repr().ok()?.encode_utf8().ok()?.as_bytes());
        }
        Some(())
    }

    fn sequence<'py>(
        &mut self,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        len: usize,
        depth: u32,
    ) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        if len == 0 {
            self.out.extend_from_slice(b"[]");
            return Some(());
        }
        self.out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.item_separator();
            }
            self.value(&item, depth + 1)?;
        }
        self.out.push(b']');
        Some(())
    }

    fn item_separator(&mut self) {
        match self.style {
            Style::Starlette => self.out.extend_from_slice(b", "),
            Style::Flask | Style::Orjson => self.out.push(b','),
        }
    }

    fn key_separator(&mut self) {
        match self.style {
            Style::Starlette => self.out.extend_from_slice(b": "),
            Style::Flask | Style::Orjson => self.out.push(b':'),
        }
    }

    /// A dict (its exact type was checked by the caller, or it is the session itself,
    /// whose items are the dict's own).
    pub(super) fn dict(&mut self, dict: &Bound<'_, PyDict>, depth: u32) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let len = dict.len();
        if len == 0 {
            self.out.extend_from_slice(b"{}");
            return Some(());
        }
        if self.style != Style::Flask {
            // insertion order: written as the items come
            self.out.push(b'{');
            for (i, (key, value)) in dict.iter().enumerate() {
                if i > 0 {
                    self.item_separator();
                }
                self.key(&key)?;
                self.value(&value, depth + 1)?;
            }
            self.out.push(b'}');
            return Some(());
        }
        let mut items = Vec::with_capacity(len);
        for (key, value) in dict.iter() {
            if !key.is_exact_instance_of::<PyString>() {
                return None; // json turns int/float/bool/None keys into text: rare, Python does it
            }
            let key = key.cast::<PyString>().ok()?.encode_utf8().ok()?;
            items.push((key, value));
        }
        // a one-key dict whose key may be a tag is escaped by Flask (" di")
        if len == 1 && items[0].0.as_bytes().starts_with(b" ") {
            return None;
        }
        // sort_keys: str order is code point order, which UTF-8 bytes keep
        items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        self.out.push(b'{');
        for (i, (key, value)) in items.iter().enumerate() {
            if i > 0 {
                self.item_separator();
            }
            write_json_str(&mut self.out, key.as_bytes());
            self.key_separator();
            self.value(value, depth + 1)?;
        }
        self.out.push(b'}');
        Some(())
    }

    /// A `str` key and its separator (other keys: json turns int/float/bool/None keys
    /// into text, orjson raises; rare, Python does it).
    pub(super) fn key(&mut self, key: &Bound<'_, PyAny>) -> Option<()> {
        if !key.is_exact_instance_of::<PyString>() {
            return None;
        }
        let key = key.cast::<PyString>().ok()?;
        if self.style == Style::Orjson {
            write_string(&mut self.out, key.to_str().ok()?);
        } else {
            write_json_str(&mut self.out, key.encode_utf8().ok()?.as_bytes());
        }
        self.key_separator();
        Some(())
    }
}

/// `value` (an instance of the session type `schema` describes) as the JSON
/// `JSONSerializer._dumps` gives for it, or `None`: orjson decides.
pub(super) fn dump_root(schema: &Schema, value: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    let mut writer = JsonWriter {
        out: Vec::with_capacity(256),
        style: Style::Orjson,
        classes: Some(&schema.classes),
    };
    match schema.root() {
        Node::Record(record) => match &record.cls {
            // a dataclass: exactly the class (a subclass may add fields: orjson decides)
            Some(cls) => {
                if !value.get_type().is(cls.bind(value.py())) {
                    return None;
                }
                writer.fields(value, &record.names, 0)?;
            }
            // a TypedDict: only its declared keys
            None => {
                let dict = value.cast_exact::<PyDict>().ok()?;
                writer.out.push(b'{');
                let mut first = true;
                for (key, item) in dict.iter() {
                    let declared = key
                        .cast_exact::<PyString>()
                        .ok()
                        .and_then(|k| k.to_str().ok().map(|k| record.declares(k)))
                        .unwrap_or(false);
                    if !declared {
                        continue;
                    }
                    if !first {
                        writer.out.push(b',');
                    }
                    first = false;
                    writer.key(&key)?;
                    writer.value(&item, 1)?;
                }
                writer.out.push(b'}');
            }
        },
        Node::Dict(_) | Node::Object => writer.dict(value.cast_exact::<PyDict>().ok()?, 0)?,
        _ => return None,
    }
    Some(writer.out)
}

/// A JSON string as Python's `json` writes it with `ensure_ascii=True`, from the
/// string's UTF-8 bytes.
fn write_json_str(out: &mut Vec<u8>, utf8: &[u8]) {
    out.push(b'"');
    let plain = |b: u8| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\';
    if utf8.iter().all(|&b| plain(b)) {
        out.extend_from_slice(utf8);
    } else {
        let text = std::str::from_utf8(utf8).expect("Python gave UTF-8");
        for ch in text.chars() {
            match ch {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                ' '..='~' => out.push(ch as u8),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in ch.encode_utf16(&mut units) {
                        let _ = write!(ByteSink(out), "\\u{unit:04x}");
                    }
                }
            }
        }
    }
    out.push(b'"');
}

/// `fmt::Write` into a byte buffer.
struct ByteSink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
