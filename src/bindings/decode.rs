//! The one typed JSON decoder: executes a [`Schema`] on JSON text, building the
//! Python value as it reads (no intermediate dict). JSON types are checked strictly as
//! DESIGN.md "Session types" says; a misfit says what is wrong and where, the reason
//! and path `DeserializationError` carries.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString, PyTuple};

use crate::codec::json::{Kind, Number, Reader, MAX_DEPTH};

use super::schema::{Missing, Node, Record, Schema};

/// Levels of nesting the typed nodes follow (an `Any` inside goes on to orjson's
/// `MAX_DEPTH`): each level costs stack, and a Python decoder gave up at about this
/// depth too ("nested too deeply").
const TYPED_DEPTH: usize = 256;

/// Why a read failed.
pub(super) enum Miss {
    /// Malformed JSON (or nested deeper than orjson reads).
    Syntax,
    /// Typed nodes nested deeper than `TYPED_DEPTH`.
    Deep,
    /// Valid JSON that does not fit (boxed: the error path only, so the results of
    /// the reading stay small).
    Mismatch(Box<Misfit>),
    /// A Python call raised (a `default_factory`): raised as it is.
    Err(PyErr),
}

/// What is wrong and where, innermost segment first (pushed while unwinding); `cause`
/// for a class that rejected its fields.
pub(super) struct Misfit {
    reason: String,
    path: Vec<String>,
    cause: Option<PyErr>,
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
    Miss::Mismatch(Box::new(Misfit {
        reason,
        path: Vec::new(),
        cause: None,
    }))
}

/// The mismatch of a value whose place is `segment`.
fn within(miss: Miss, segment: impl FnOnce() -> String) -> Miss {
    match miss {
        Miss::Mismatch(mut misfit) => {
            misfit.path.push(segment());
            Miss::Mismatch(misfit)
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

fn int<'py>(py: Python<'py>, r: &mut Reader<'_>) -> Result<Bound<'py, PyAny>, Miss> {
    Ok(match syn(r.number())? {
        Number::Int(i) => i.into_pyobject(py)?.into_any(),
        Number::UInt(u) => u.into_pyobject(py)?.into_any(),
        Number::Float(_) => return Err(misfit("expected integer, got number".into())),
    })
}

/// A number for a `float`: an integer converted (correctly rounded, as `float(int)`).
fn float<'py>(py: Python<'py>, r: &mut Reader<'_>) -> Result<Bound<'py, PyAny>, Miss> {
    let f = match syn(r.number())? {
        Number::Int(i) => i as f64,
        Number::UInt(u) => u as f64,
        Number::Float(f) => f,
    };
    Ok(PyFloat::new(py, f).into_any())
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

impl Schema {
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
            (Node::Int, Kind::Number) => int(py, r)?,
            (Node::Float, Kind::Number) => float(py, r)?,
            (Node::Bool, Kind::Bool) => syn(r.boolean())?.into_pyobject(py)?.to_owned().into_any(),
            (Node::Null, Kind::Null) | (Node::Optional(_), Kind::Null) => {
                syn(r.null())?;
                py.None().into_bound(py)
            }
            (Node::Optional(inner), _) => {
                let saved = r.clone();
                match self.value(py, r, *inner, depth) {
                    Ok(value) => value,
                    Err(miss) => return Err(self.optional_misfit(miss, *inner, &saved)),
                }
            }
            (Node::List(inner), Kind::Array) => self.list(py, r, *inner, depth)?.into_any(),
            (Node::Record(record), Kind::Object) => self.record(py, r, record, depth)?,
            _ => self.rest(py, r, id, kind, depth)?,
        })
    }

    /// A misfit inside `Optional[X]`: for an exact scalar X the message says that null
    /// would do too.
    #[inline(never)]
    fn optional_misfit(&self, miss: Miss, inner: usize, at: &Reader<'_>) -> Miss {
        let name = match self.nodes[inner] {
            Node::Str => "string",
            Node::Int => "integer",
            Node::Bool => "boolean",
            Node::Null => "null",
            _ => return miss,
        };
        match miss {
            Miss::Mismatch(misfit) if misfit.path.is_empty() => {
                expected(&format!("{name} or null"), at)
            }
            other => other,
        }
    }

    /// The nodes `value` does not read itself.
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
            // read by `value` (not reached from there)
            (Node::Any | Node::Optional(_), _)
            | (Node::Str, Kind::String)
            | (Node::Int | Node::Float, Kind::Number)
            | (Node::Bool, Kind::Bool)
            | (Node::Null, Kind::Null)
            | (Node::List(_), Kind::Array)
            | (Node::Record(_), Kind::Object) => return self.value(py, r, id, depth),
            (Node::Object, Kind::Object) | (Node::Array, Kind::Array) => {
                self.any(py, r, kind, depth)?
            }
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
                        Err(Miss::Mismatch(_)) => *r = saved.clone(),
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
        let mut values: Vec<Option<Bound<'py, PyAny>>> =
            record.fields.iter().map(|_| None).collect();
        // the misfits by field, made only when there is one (the last of a repeated key
        // counts, as in the dict orjson reads)
        let mut misfits: Vec<Option<Miss>> = Vec::new();
        let mut first = true;
        while let Some(key) = syn(r.key(first))? {
            first = false;
            let Some(i) = record.fields.iter().position(|f| f.name == *key) else {
                syn(r.skip(depth + 1))?;
                continue;
            };
            let saved = r.clone();
            match self.value(py, r, record.fields[i].node, depth + 1) {
                Ok(value) => {
                    values[i] = Some(value);
                    if let Some(misfit) = misfits.get_mut(i) {
                        *misfit = None;
                    }
                }
                Err(miss @ Miss::Mismatch(_)) => {
                    *r = saved;
                    syn(r.skip(depth + 1))?;
                    values[i] = None;
                    if misfits.is_empty() {
                        misfits = record.fields.iter().map(|_| None).collect();
                    }
                    misfits[i] = Some(miss);
                }
                Err(other) => return Err(other),
            }
        }
        // every error first, in declaration order; only then the defaults
        for (i, (field, value)) in record.fields.iter().zip(&values).enumerate() {
            if let Some(miss) = misfits.get_mut(i).and_then(Option::take) {
                return Err(within(miss, || field.segment.clone()));
            }
            if value.is_none() && matches!(field.missing, Missing::Required) {
                let miss = misfit("missing required field".into());
                return Err(within(miss, || field.segment.clone()));
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
            let obj = self.new.bind(py).call1(record.new_args.bind(py))?;
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
                Err(Miss::Mismatch(Box::new(Misfit {
                    reason: format!("{name}() rejected the value ({kind})"),
                    path: Vec::new(),
                    cause: Some(e),
                })))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `text` read into the session type. A misfit inside text that is no JSON
    /// further on is reported as no JSON, as a reader that parses first would.
    pub(super) fn run<'py>(&self, py: Python<'py>, text: &str) -> Result<Bound<'py, PyAny>, Miss> {
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

    pub(super) fn raise(&self, py: Python<'_>, miss: Miss, text: &Bound<'_, PyAny>) -> PyErr {
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
            Miss::Mismatch(misfit) => {
                let Misfit {
                    reason,
                    path,
                    cause,
                } = *misfit;
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
