//! `_core.Schema`: the description of a session type that `serializers._describe`
//! builds from its annotations, compiled once, and the one typed JSON decoder, which
//! executes it (the writer that executes it is `json_write::dump_root`).
//!
//! The decoder reads JSON text straight into the value (no intermediate dict), checks
//! JSON types strictly as DESIGN.md "Session types" says, and on a misfit reports
//! what is wrong and where: the same reasons and paths `DeserializationError` carries.

use std::collections::HashMap;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple, PyType};

use crate::codec::json::{Kind, Number, Reader, MAX_DEPTH};

/// Levels of nesting the typed nodes follow (an `Any` inside goes on to orjson's
/// `MAX_DEPTH`): each level costs stack, and a Python decoder gave up at about this
/// depth too ("nested too deeply").
const TYPED_DEPTH: usize = 256;

use super::json_write::{dump_root, Class, Classes};

/// One node of a description; children are indexes into the node table, so a
/// recursive dataclass refers to its own node.
pub(super) enum Node {
    Any,
    Str,
    Int,
    Bool,
    Float,
    Null,
    /// `dict` (any JSON object)
    Object,
    /// `list` (any JSON array)
    Array,
    List(usize),
    /// `tuple[X, ...]`
    Tuple(usize),
    /// `tuple[X, Y]`
    Fixed(Vec<usize>),
    /// `dict[str, X]`
    Dict(usize),
    Optional(usize),
    /// Alternatives tried in order (`text`: "fits none of ...").
    Union {
        members: Vec<usize>,
        nullable: bool,
        text: String,
    },
    /// `Literal` or `Enum`: a scalar looked up by `(type, value)`; an enum also tries
    /// `cls(value)` for a value of one of `types` (a Flag combination).
    Choice {
        table: Py<PyDict>,
        fallback: Option<Py<PyAny>>,
        types: Vec<Py<PyAny>>,
        text: String,
    },
    /// A string parsed by a Python callable (`datetime.fromisoformat`, `UUID`) that
    /// raises `ValueError` for a bad one.
    Parsed {
        parse: Py<PyAny>,
        what: String,
        article: String,
    },
    Record(Box<Record>),
}

/// A dataclass or a `TypedDict`.
pub(super) struct Record {
    /// The dataclass; `None` for a `TypedDict` (read into a dict).
    pub(super) cls: Option<Py<PyAny>>,
    /// Built by filling `__dict__` (the generated `__init__` does nothing more);
    /// otherwise by calling the class.
    plain: bool,
    fields: Vec<Field>,
    /// Every field name in declaration order: what is written.
    pub(super) names: Vec<Py<PyString>>,
    /// `"object (Name)"`
    expected: String,
}

impl Record {
    /// Whether a `TypedDict` declares `key`.
    pub(super) fn declares(&self, key: &str) -> bool {
        self.fields.iter().any(|f| f.name == key)
    }
}

struct Field {
    name: String,
    key: Py<PyString>,
    /// `".name"` or `"['name']"`
    segment: String,
    node: usize,
    missing: Missing,
}

/// What a missing key takes.
enum Missing {
    Required,
    Value(Py<PyAny>),
    Factory(Py<PyAny>),
    /// Nothing: a key a `TypedDict` does not require, a default the class fills.
    Omit,
}

/// Why a read failed.
enum Miss {
    /// Malformed JSON (or nested deeper than orjson reads).
    Syntax,
    /// Typed nodes nested deeper than `TYPED_DEPTH`.
    Deep,
    /// Valid JSON that does not fit: what is wrong and where, innermost segment first
    /// (pushed while unwinding); `cause` for a class that rejected its fields.
    Mismatch {
        reason: String,
        path: Vec<String>,
        cause: Option<PyErr>,
    },
    /// A Python call raised (a `default_factory`): raised as it is.
    Err(PyErr),
}

impl From<PyErr> for Miss {
    fn from(e: PyErr) -> Self {
        Miss::Err(e)
    }
}

impl From<std::convert::Infallible> for Miss {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

fn misfit(reason: String) -> Miss {
    Miss::Mismatch {
        reason,
        path: Vec::new(),
        cause: None,
    }
}

/// The mismatch of a value whose place is `segment`.
fn within(miss: Miss, segment: impl FnOnce() -> String) -> Miss {
    match miss {
        Miss::Mismatch {
            reason,
            mut path,
            cause,
        } => {
            path.push(segment());
            Miss::Mismatch {
                reason,
                path,
                cause,
            }
        }
        other => other,
    }
}

fn syn<T>(found: Option<T>) -> Result<T, Miss> {
    found.ok_or(Miss::Syntax)
}

/// The JSON type of the value at `r`, as the messages name it.
fn json_type(r: &Reader<'_>) -> &'static str {
    let mut probe = r.clone();
    match probe.peek() {
        Some(Kind::Object) => "object",
        Some(Kind::Array) => "array",
        Some(Kind::String) => "string",
        Some(Kind::Bool) => "boolean",
        Some(Kind::Null) => "null",
        Some(Kind::Number) => match probe.number() {
            Some(Number::Int(_) | Number::UInt(_)) => "integer",
            _ => "number",
        },
        None => "nothing",
    }
}

fn expected(what: &str, r: &Reader<'_>) -> Miss {
    misfit(format!("expected {what}, got {}", json_type(r)))
}

/// `[{key[:32]!r}]` (with `...` when cut), as `serializers._key_segment` writes it.
fn key_segment(py: Python<'_>, key: &str) -> String {
    let cut: String = key.chars().take(32).collect();
    let more = if cut.len() < key.len() { "..." } else { "" };
    let shown = PyString::new(py, &cut)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_default();
    format!("[{shown}{more}]")
}

fn item<'py>(node: &Bound<'py, PyTuple>, i: usize) -> PyResult<Bound<'py, PyAny>> {
    node.get_item(i)
}

fn text(node: &Bound<'_, PyTuple>, i: usize) -> PyResult<String> {
    Ok(item(node, i)?.cast::<PyString>()?.to_cow()?.into_owned())
}

fn indexes(node: &Bound<'_, PyTuple>, i: usize) -> PyResult<Vec<usize>> {
    item(node, i)?.extract()
}

/// One node of the table `serializers._describe` builds (see there for the shapes).
fn compile_node(node: &Bound<'_, PyTuple>, classes: &mut Classes) -> PyResult<Node> {
    let tag = text(node, 0)?;
    Ok(match tag.as_str() {
        "any" => Node::Any,
        "str" => Node::Str,
        "int" => Node::Int,
        "bool" => Node::Bool,
        "float" => Node::Float,
        "none" => Node::Null,
        "object" => Node::Object,
        "array" => Node::Array,
        "list" => Node::List(item(node, 1)?.extract()?),
        "tuple" => Node::Tuple(item(node, 1)?.extract()?),
        "fixed" => Node::Fixed(indexes(node, 1)?),
        "dict" => Node::Dict(item(node, 1)?.extract()?),
        "optional" => Node::Optional(item(node, 1)?.extract()?),
        "union" => Node::Union {
            members: indexes(node, 1)?,
            nullable: item(node, 2)?.is_truthy()?,
            text: text(node, 3)?,
        },
        "choice" => {
            let fallback = item(node, 2)?;
            let fallback = (!fallback.is_none()).then(|| fallback.unbind());
            if let Some(cls) = &fallback {
                classes.by_type.insert(cls.as_ptr() as usize, Class::Enum);
            }
            Node::Choice {
                table: item(node, 1)?.cast_into::<PyDict>()?.unbind(),
                fallback,
                types: item(node, 3)?.extract()?,
                text: text(node, 4)?,
            }
        }
        "parsed" => Node::Parsed {
            parse: item(node, 1)?.unbind(),
            what: text(node, 2)?,
            article: text(node, 3)?,
        },
        "dataclass" | "typeddict" => {
            let dataclass = tag == "dataclass";
            let at = if dataclass { 3 } else { 1 };
            let mut fields = Vec::new();
            for spec in item(node, at)?.try_iter()? {
                let spec = spec?;
                let spec = spec.cast::<PyTuple>()?;
                let key = item(spec, 0)?.cast_into::<PyString>()?;
                let default = item(spec, 4)?.unbind();
                let missing = match item(spec, 3)?.extract::<u8>()? {
                    0 => Missing::Required,
                    1 => Missing::Value(default),
                    2 => Missing::Factory(default),
                    _ => Missing::Omit,
                };
                fields.push(Field {
                    name: key.to_cow()?.into_owned(),
                    key: key.unbind(),
                    segment: text(spec, 1)?,
                    node: item(spec, 2)?.extract()?,
                    missing,
                });
            }
            let record = if dataclass {
                let cls = item(node, 1)?;
                let names: Vec<Py<PyString>> = item(node, 4)?.extract()?;
                let names_again = names.iter().map(|n| n.clone_ref(node.py())).collect();
                classes
                    .by_type
                    .insert(cls.as_ptr() as usize, Class::Dataclass(names_again));
                Record {
                    cls: Some(cls.unbind()),
                    plain: item(node, 2)?.is_truthy()?,
                    fields,
                    names,
                    expected: text(node, 5)?,
                }
            } else {
                Record {
                    cls: None,
                    plain: false,
                    fields,
                    names: Vec::new(),
                    expected: text(node, 2)?,
                }
            };
            Node::Record(Box::new(record))
        }
        other => return Err(PyValueError::new_err(format!("unknown node {other:?}"))),
    })
}

/// The reader and writer of one session type (`JSONSerializer._fast`).
#[pyclass(name = "Schema", module = "ferrosession._core", frozen)]
pub(super) struct Schema {
    nodes: Vec<Node>,
    root: usize,
    pub(super) classes: Classes,
    /// `object.__new__`
    new: Py<PyAny>,
    /// `DeserializationError`
    error: Py<PyAny>,
    /// `serializers._not_json`: the error for text that is no JSON
    not_json: Py<PyAny>,
}

impl Schema {
    pub(super) fn root(&self) -> &Node {
        &self.nodes[self.root]
    }

    /// The value at `r` read as node `id`: the common nodes here, in a small stack
    /// frame (the recursion goes through it), the others in `rest`.
    fn value<'py>(
        &self,
        py: Python<'py>,
        r: &mut Reader<'_>,
        id: usize,
        depth: usize,
    ) -> Result<Bound<'py, PyAny>, Miss> {
        let kind = syn(r.peek())?;
        if matches!(kind, Kind::Object | Kind::Array) && depth >= TYPED_DEPTH {
            return Err(Miss::Deep);
        }
        Ok(match (&self.nodes[id], kind) {
            (Node::Any, _) => self.any(py, r, kind, depth)?,
            (Node::Str, Kind::String) => PyString::new(py, &syn(r.string())?).into_any(),
            (Node::Bool, Kind::Bool) => syn(r.boolean())?.into_pyobject(py)?.to_owned().into_any(),
            (Node::Null, Kind::Null) | (Node::Optional(_), Kind::Null) => {
                syn(r.null())?;
                py.None().into_bound(py)
            }
            (Node::List(inner), Kind::Array) => self.list(py, r, *inner, depth)?.into_any(),
            (Node::Record(record), Kind::Object) => self.record(py, r, record, depth)?,
            _ => self.rest(py, r, id, kind, depth)?,
        })
    }

    #[inline(never)]
    fn rest<'py>(
        &self,
        py: Python<'py>,
        r: &mut Reader<'_>,
        id: usize,
        kind: Kind,
        depth: usize,
    ) -> Result<Bound<'py, PyAny>, Miss> {
        let node = &self.nodes[id];
        Ok(match (node, kind) {
            (Node::Any, _) => self.any(py, r, kind, depth)?,
            (Node::Str, Kind::String) => PyString::new(py, &syn(r.string())?).into_any(),
            (Node::Int, Kind::Number) => match syn(r.number())? {
                Number::Int(i) => i.into_pyobject(py)?.into_any(),
                Number::UInt(u) => u.into_pyobject(py)?.into_any(),
                Number::Float(_) => return Err(misfit("expected integer, got number".into())),
            },
            (Node::Float, Kind::Number) => PyFloat::new(
                py,
                match syn(r.number())? {
                    Number::Int(i) => i as f64,
                    Number::UInt(u) => u as f64,
                    Number::Float(f) => f,
                },
            )
            .into_any(),
            (Node::Bool, Kind::Bool) => syn(r.boolean())?.into_pyobject(py)?.to_owned().into_any(),
            (Node::Null, Kind::Null) | (Node::Optional(_), Kind::Null) => {
                syn(r.null())?;
                py.None().into_bound(py)
            }
            (Node::Object, Kind::Object) | (Node::Array, Kind::Array) => {
                self.any(py, r, kind, depth)?
            }
            (Node::List(inner), Kind::Array) => self.list(py, r, *inner, depth)?.into_any(),
            (Node::Tuple(inner), Kind::Array) => {
                let list = self.list(py, r, *inner, depth)?;
                PyTuple::new(py, list.iter())?.into_any()
            }
            (Node::Fixed(items), Kind::Array) => self.fixed(py, r, items, depth)?,
            (Node::Dict(inner), Kind::Object) => {
                syn(r.begin_object())?;
                let dict = PyDict::new(py);
                let mut first = true;
                while let Some(key) = syn(r.key(first))? {
                    first = false;
                    let item = self
                        .value(py, r, *inner, depth + 1)
                        .map_err(|e| within(e, || key_segment(py, &key)))?;
                    dict.set_item(PyString::new(py, &key), item)?;
                }
                dict.into_any()
            }
            (Node::Optional(inner), _) => {
                let saved = r.clone();
                match self.value(py, r, *inner, depth) {
                    Err(Miss::Mismatch {
                        reason,
                        path,
                        cause,
                    }) if path.is_empty() => {
                        // an exact scalar inside: the message says null would do too
                        let name = match self.nodes[*inner] {
                            Node::Str => "string",
                            Node::Int => "integer",
                            Node::Bool => "boolean",
                            Node::Null => "null",
                            _ => {
                                return Err(Miss::Mismatch {
                                    reason,
                                    path,
                                    cause,
                                })
                            }
                        };
                        return Err(expected(&format!("{name} or null"), &saved));
                    }
                    found => found?,
                }
            }
            (
                Node::Union {
                    members,
                    nullable,
                    text,
                },
                _,
            ) => {
                if *nullable && kind == Kind::Null {
                    syn(r.null())?;
                    return Ok(py.None().into_bound(py));
                }
                let saved = r.clone();
                for &member in members {
                    match self.value(py, r, member, depth) {
                        Ok(value) => return Ok(value),
                        Err(Miss::Mismatch { .. }) => *r = saved.clone(),
                        Err(other) => return Err(other),
                    }
                }
                return Err(misfit(format!("{} {text}", json_type(&saved))));
            }
            (
                Node::Choice {
                    table,
                    fallback,
                    types,
                    text,
                },
                _,
            ) => {
                let saved = r.clone();
                let fail = || misfit(format!("{} {text}", json_type(&saved)));
                if matches!(kind, Kind::Object | Kind::Array) {
                    return Err(fail());
                }
                let raw = self.any(py, r, kind, depth)?;
                let tp = raw.get_type();
                let key = PyTuple::new(py, [tp.as_any(), &raw])?;
                if let Some(found) = table.bind(py).get_item(key)? {
                    return Ok(found);
                }
                if let Some(cls) = fallback {
                    if types.iter().any(|t| tp.is(t.bind(py))) {
                        match cls.bind(py).call1((raw,)) {
                            Ok(member) => return Ok(member),
                            Err(e) if e.is_instance_of::<PyValueError>(py) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                return Err(fail());
            }
            (
                Node::Parsed {
                    parse,
                    what,
                    article,
                },
                Kind::String,
            ) => {
                let raw = syn(r.string())?;
                match parse.bind(py).call1((PyString::new(py, &raw),)) {
                    Ok(value) => value,
                    Err(e) if e.is_instance_of::<PyValueError>(py) => {
                        return Err(misfit(format!("not {article} {what}")))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            (Node::Record(record), Kind::Object) => self.record(py, r, record, depth)?,
            (Node::Str, _) => return Err(expected("string", r)),
            (Node::Int, _) => return Err(expected("integer", r)),
            (Node::Float, _) => return Err(expected("number", r)),
            (Node::Bool, _) => return Err(expected("boolean", r)),
            (Node::Null, _) => return Err(expected("null", r)),
            (Node::Object | Node::Dict(_), _) => return Err(expected("object", r)),
            (Node::Array | Node::List(_) | Node::Tuple(_) | Node::Fixed(_), _) => {
                return Err(expected("array", r))
            }
            (Node::Parsed { what, .. }, _) => return Err(expected(&format!("{what} string"), r)),
            (Node::Record(record), _) => return Err(expected(&record.expected, r)),
        })
    }

    #[inline(never)]
    fn list<'py>(
        &self,
        py: Python<'py>,
        r: &mut Reader<'_>,
        inner: usize,
        depth: usize,
    ) -> Result<Bound<'py, PyList>, Miss> {
        syn(r.begin_array())?;
        let list = PyList::empty(py);
        let mut index = 0usize;
        while syn(r.more(index == 0))? {
            let item = self
                .value(py, r, inner, depth + 1)
                .map_err(|e| within(e, || format!("[{index}]")))?;
            list.append(item)?;
            index += 1;
        }
        Ok(list)
    }

    /// `tuple[X, Y]`: the length is checked before any item, as the message says.
    fn fixed<'py>(
        &self,
        py: Python<'py>,
        r: &mut Reader<'_>,
        items: &[usize],
        depth: usize,
    ) -> Result<Bound<'py, PyAny>, Miss> {
        let mut probe = r.clone();
        syn(probe.begin_array())?;
        let mut count = 0usize;
        while syn(probe.more(count == 0))? {
            syn(probe.skip(depth + 1))?;
            count += 1;
        }
        if count != items.len() {
            let size = items.len();
            return Err(misfit(format!(
                "expected an array of {size} items, got {count}"
            )));
        }
        syn(r.begin_array())?;
        let mut values = Vec::with_capacity(count);
        for (index, &node) in items.iter().enumerate() {
            syn(r.more(index == 0))?;
            let item = self
                .value(py, r, node, depth + 1)
                .map_err(|e| within(e, || format!("[{index}]")))?;
            values.push(item);
        }
        syn(r.more(false).filter(|more| !more))?;
        Ok(PyTuple::new(py, values)?.into_any())
    }

    /// Any JSON value, as orjson builds it.
    fn any<'py>(
        &self,
        py: Python<'py>,
        r: &mut Reader<'_>,
        kind: Kind,
        depth: usize,
    ) -> Result<Bound<'py, PyAny>, Miss> {
        if matches!(kind, Kind::Object | Kind::Array) && depth >= MAX_DEPTH {
            return Err(Miss::Syntax);
        }
        Ok(match kind {
            Kind::Object => {
                syn(r.begin_object())?;
                let dict = PyDict::new(py);
                let mut first = true;
                while let Some(key) = syn(r.key(first))? {
                    let next = syn(r.peek())?;
                    let item = self.any(py, r, next, depth + 1)?;
                    dict.set_item(PyString::new(py, &key), item)?;
                    first = false;
                }
                dict.into_any()
            }
            Kind::Array => {
                syn(r.begin_array())?;
                let list = PyList::empty(py);
                let mut first = true;
                while syn(r.more(first))? {
                    let next = syn(r.peek())?;
                    list.append(self.any(py, r, next, depth + 1)?)?;
                    first = false;
                }
                list.into_any()
            }
            Kind::String => PyString::new(py, &syn(r.string())?).into_any(),
            Kind::Number => match syn(r.number())? {
                Number::Int(i) => i.into_pyobject(py)?.into_any(),
                Number::UInt(u) => u.into_pyobject(py)?.into_any(),
                Number::Float(f) => PyFloat::new(py, f).into_any(),
            },
            Kind::Bool => syn(r.boolean())?.into_pyobject(py)?.to_owned().into_any(),
            Kind::Null => {
                syn(r.null())?;
                py.None().into_bound(py)
            }
        })
    }

    /// A dataclass or a `TypedDict`. A field that does not fit is remembered and the
    /// reading goes on, so that the error reported is the first in declaration order,
    /// whatever the order of the keys.
    #[inline(never)]
    fn record<'py>(
        &self,
        py: Python<'py>,
        r: &mut Reader<'_>,
        record: &Record,
        depth: usize,
    ) -> Result<Bound<'py, PyAny>, Miss> {
        syn(r.begin_object())?;
        let mut slots: Vec<Option<Result<Bound<'py, PyAny>, Miss>>> =
            record.fields.iter().map(|_| None).collect();
        let mut first = true;
        while let Some(key) = syn(r.key(first))? {
            first = false;
            let Some(i) = record.fields.iter().position(|f| f.name == *key) else {
                syn(r.skip(depth + 1))?;
                continue;
            };
            let saved = r.clone();
            slots[i] = Some(match self.value(py, r, record.fields[i].node, depth + 1) {
                Ok(value) => Ok(value),
                Err(miss @ Miss::Mismatch { .. }) => {
                    *r = saved;
                    syn(r.skip(depth + 1))?;
                    Err(miss)
                }
                Err(other) => return Err(other),
            });
        }
        // every error first, in declaration order; only then the defaults
        let mut values = Vec::with_capacity(slots.len());
        for (field, slot) in record.fields.iter().zip(slots) {
            match slot {
                Some(Ok(value)) => values.push(Some(value)),
                Some(Err(miss)) => return Err(within(miss, || field.segment.clone())),
                None if matches!(field.missing, Missing::Required) => {
                    return Err(within(misfit("missing required field".into()), || {
                        field.segment.clone()
                    }))
                }
                None => values.push(None),
            }
        }
        let Some(cls) = &record.cls else {
            let dict = PyDict::new(py);
            for (field, value) in record.fields.iter().zip(values) {
                if let Some(value) = value {
                    dict.set_item(field.key.bind(py), value)?;
                }
            }
            return Ok(dict.into_any());
        };
        let cls = cls.bind(py);
        if record.plain {
            // as the generated __init__ builds it: every field, in declaration order
            let obj = self.new.bind(py).call1((cls,))?;
            let dict = obj.getattr(pyo3::intern!(py, "__dict__"))?;
            let dict = dict.cast::<PyDict>().map_err(PyErr::from)?;
            for (field, value) in record.fields.iter().zip(values) {
                let value = match (value, &field.missing) {
                    (Some(value), _) => value,
                    (None, Missing::Value(v)) => v.bind(py).clone(),
                    (None, Missing::Factory(make)) => make.bind(py).call0()?,
                    (None, _) => continue,
                };
                dict.set_item(field.key.bind(py), value)?;
            }
            return Ok(obj);
        }
        let kwargs = PyDict::new(py);
        for (field, value) in record.fields.iter().zip(values) {
            if let Some(value) = value {
                kwargs.set_item(field.key.bind(py), value)?;
            }
        }
        match cls.call((), Some(&kwargs)) {
            Ok(obj) => Ok(obj),
            // __post_init__ validation, say; the cause keeps the details
            Err(e)
                if e.is_instance_of::<PyTypeError>(py) || e.is_instance_of::<PyValueError>(py) =>
            {
                let name = cls.getattr(pyo3::intern!(py, "__qualname__"))?;
                let kind = e.get_type(py).name()?;
                Err(Miss::Mismatch {
                    reason: format!("{name}() rejected the value ({kind})"),
                    path: Vec::new(),
                    cause: Some(e),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `text` read into the session type. A misfit inside text that is no JSON
    /// further on is reported as no JSON, as a reader that parses first would.
    fn run<'py>(&self, py: Python<'py>, text: &str) -> Result<Bound<'py, PyAny>, Miss> {
        let mut r = Reader::new(text);
        match self.value(py, &mut r, self.root, 0) {
            Ok(value) if r.at_end() => Ok(value),
            Ok(_) => Err(Miss::Syntax),
            Err(_) if !Reader::valid(text) => Err(Miss::Syntax),
            Err(miss) => Err(miss),
        }
    }

    /// `decode` for the fused reads of `Codec` (`read_asgi`, `open_record`): `None`
    /// when it does not fit or a Python call raised; the Python path then raises the
    /// error again.
    pub(super) fn read<'py>(&self, py: Python<'py>, text: &str) -> Option<Bound<'py, PyAny>> {
        self.run(py, text).ok()
    }

    fn raise(&self, py: Python<'_>, miss: Miss, text: &Bound<'_, PyAny>) -> PyErr {
        match miss {
            Miss::Err(e) => e,
            Miss::Deep => match self.error.bind(py).call1(("nested too deeply",)) {
                Ok(error) => PyErr::from_value(error),
                Err(e) => e,
            },
            Miss::Syntax => match self.not_json.bind(py).call1((text,)) {
                Ok(error) => PyErr::from_value(error),
                Err(e) => e,
            },
            Miss::Mismatch {
                reason,
                path,
                cause,
            } => {
                let path = match PyTuple::new(py, path.iter().rev()) {
                    Ok(path) => path,
                    Err(e) => return e,
                };
                match self.error.bind(py).call1((reason, path)) {
                    Ok(error) => {
                        let error = PyErr::from_value(error);
                        error.set_cause(py, cause);
                        error
                    }
                    Err(e) => e,
                }
            }
        }
    }
}

#[pymethods]
impl Schema {
    /// `nodes` and `root`: what `serializers._describe` builds; `error`: the
    /// `DeserializationError` class; `not_json`: `text -> DeserializationError` for
    /// text that is no JSON.
    #[new]
    fn py_new(
        py: Python<'_>,
        nodes: &Bound<'_, PyTuple>,
        root: usize,
        error: Py<PyAny>,
        not_json: Py<PyAny>,
    ) -> PyResult<Self> {
        let uuid = py.import("uuid")?.getattr("UUID")?.cast_into::<PyType>()?;
        let mut classes = Classes {
            by_type: HashMap::new(),
            uuid: uuid.unbind(),
        };
        let mut compiled = Vec::with_capacity(nodes.len());
        for node in nodes.iter() {
            compiled.push(compile_node(node.cast::<PyTuple>()?, &mut classes)?);
        }
        let count = compiled.len();
        let check = |i: usize| -> PyResult<()> {
            if i < count {
                Ok(())
            } else {
                Err(PyValueError::new_err(format!("no node {i}")))
            }
        };
        check(root)?;
        for node in &compiled {
            match node {
                Node::List(i) | Node::Tuple(i) | Node::Dict(i) | Node::Optional(i) => check(*i)?,
                Node::Fixed(items) | Node::Union { members: items, .. } => {
                    items.iter().try_for_each(|i| check(*i))?
                }
                Node::Record(record) => record.fields.iter().try_for_each(|f| check(f.node))?,
                _ => {}
            }
        }
        let new = py
            .import("builtins")?
            .getattr("object")?
            .getattr("__new__")?;
        Ok(Self {
            nodes: compiled,
            root,
            classes,
            new: new.unbind(),
            error,
            not_json,
        })
    }

    /// The value `text` describes, or `None` when it does not fit (or is no JSON); a
    /// Python call that raised (a `default_factory`) raises.
    fn decode(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let Ok(text) = text.cast::<PyString>() else {
            return Ok(None);
        };
        let Ok(text) = text.to_cow() else {
            return Ok(None);
        };
        match self.run(py, &text) {
            Ok(value) => Ok(Some(value.unbind())),
            Err(Miss::Err(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// `JSONSerializer.deserialize`: the value `text` (text or UTF-8 bytes) describes;
    /// raises `DeserializationError` with what is wrong and where.
    fn load(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let found = if let Ok(s) = text.cast::<PyString>() {
            s.to_cow().ok().map(|t| self.run(py, &t))
        } else if let Ok(b) = text.cast::<PyBytes>() {
            std::str::from_utf8(b.as_bytes())
                .ok()
                .map(|t| self.run(py, t))
        } else {
            None
        };
        match found {
            Some(Ok(value)) => Ok(value.unbind()),
            Some(Err(miss)) => Err(self.raise(py, miss, text)),
            // no text (a lone surrogate, bytes that are no UTF-8, no str at all)
            None => Err(self.raise(py, Miss::Syntax, text)),
        }
    }

    /// The JSON `JSONSerializer._dumps` writes for `value` (orjson's, byte for byte),
    /// or `None`: orjson decides (see `json_write` for what is written here).
    fn dumps<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> Option<Bound<'py, PyBytes>> {
        let json = dump_root(self, value)?;
        Some(PyBytes::new(py, &json))
    }
}
