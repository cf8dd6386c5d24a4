//! `_core.Schema`: the description of a session type that `serializers._describe`
//! builds from its annotations, compiled once. The one typed JSON decoder executes it
//! (`decode`), and so does the one writer (`json_write::dump_root`).

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple, PyType};

use super::decode::Miss;
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
    pub(super) plain: bool,
    /// `(cls,)`: the arguments of `object.__new__`, made once
    pub(super) new_args: Py<PyTuple>,
    pub(super) fields: Vec<Field>,
    /// Every field name in declaration order: what is written.
    pub(super) names: Vec<Py<PyString>>,
    /// `"object (Name)"`
    pub(super) expected: String,
}

impl Record {
    /// Whether a `TypedDict` declares `key`.
    pub(super) fn declares(&self, key: &str) -> bool {
        self.fields.iter().any(|f| f.name == key)
    }
}

pub(super) struct Field {
    pub(super) name: String,
    pub(super) key: Py<PyString>,
    /// `".name"` or `"['name']"`
    pub(super) segment: String,
    pub(super) node: usize,
    pub(super) missing: Missing,
}

/// What a missing key takes.
pub(super) enum Missing {
    Required,
    Value(Py<PyAny>),
    Factory(Py<PyAny>),
    /// Nothing: a key a `TypedDict` does not require, a default the class fills.
    Omit,
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
                    new_args: PyTuple::new(node.py(), [&cls])?.unbind(),
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
                    new_args: PyTuple::empty(node.py()).unbind(),
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
    pub(super) nodes: Vec<Node>,
    pub(super) root: usize,
    pub(super) classes: Classes,
    /// `object.__new__`
    pub(super) new: Py<PyAny>,
    /// `DeserializationError`
    pub(super) error: Py<PyAny>,
    /// `serializers._not_json`: the error for text that is no JSON
    pub(super) not_json: Py<PyAny>,
}

impl Schema {
    pub(super) fn root(&self) -> &Node {
        &self.nodes[self.root]
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
