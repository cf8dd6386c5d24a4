//! `ferrosession._core.DirectoryStorage`: the Python face of `storage::directory`.
//!
//! Every method that may touch the disk releases the GIL (`py.detach`); a cache hit
//! of an unshared cache is answered without releasing it (no I/O, a few hundred ns).
//! Errors go through the crate's one `CoreError -> PyErr` mapping (`bindings/mod.rs`):
//! `Storage` → `ferrosession.errors.StorageError`, `Config` → `ConfigurationError`.
//!
//! Every method that may touch the disk releases the GIL, except a cache hit checked
//! by the folder's change table (`revalidation == "table"`), which needs no system
//! call either.
//!
//! Tests move this storage's clock with `_set_clock_offset(seconds)` (entry expiry,
//! cache freshness and `gc` all read it); `_io_counts()` tells how many entry files
//! were opened, how many revalidating stats were made and how many hits the change
//! table revalidated; `_table_status()` says whether the table is in use, or why not.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString};

use crate::error::CoreError;
use crate::storage::clock::NANOS_PER_SEC;
use crate::storage::directory::holds_layout;
use crate::storage::{DirectoryStorage as Core, OffsetClock};

/// A folder of session files with an in-memory cache (see `storage::directory`).
#[pyclass(name = "DirectoryStorage", module = "ferrosession._core", frozen)]
pub(crate) struct DirectoryStorage {
    inner: Core,
    clock: Arc<OffsetClock>,
}

fn seconds_to_nanos(what: &str, seconds: f64) -> Result<i64, CoreError> {
    let nanos = seconds * NANOS_PER_SEC as f64;
    if !nanos.is_finite() || nanos.abs() >= i64::MAX as f64 {
        return Err(CoreError::Config(format!(
            "{what} must be a finite number of seconds, not {seconds}"
        )));
    }
    Ok(nanos as i64)
}

#[pymethods]
impl DirectoryStorage {
    /// `shared`: `True` (revalidate hits by the change table where it works, else by
    /// `lstat`), `"stat"` (always by `lstat`) or `False` (trust the cache).
    #[new]
    #[pyo3(
        signature = (path, cached = true, cache_ttl = 60.0, shared = Sharing::Auto, cache_max_entries = 100_000),
        text_signature = "(path, cached=True, cache_ttl=60.0, shared=True, cache_max_entries=100000)"
    )]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        cached: bool,
        cache_ttl: f64,
        shared: Sharing,
        cache_max_entries: usize,
    ) -> PyResult<Self> {
        let ttl_nanos = seconds_to_nanos("cache_ttl", cache_ttl)?;
        if ttl_nanos < 0 {
            return Err(CoreError::Config(format!(
                "cache_ttl must not be negative, not {cache_ttl}"
            ))
            .into());
        }
        let cache_ttl = Duration::from_nanos(ttl_nanos.unsigned_abs());
        let clock = Arc::new(OffsetClock::new(0));
        let inner = py
            .detach(|| {
                let sharing = !matches!(shared, Sharing::Private);
                Core::new(&path, cached, cache_ttl, sharing, cache_max_entries)
            })?
            .with_clock(clock.clone());
        let inner = if matches!(shared, Sharing::Stat) {
            inner.revalidate_by_stat()
        } else {
            inner
        };
        Ok(Self { inner, clock })
    }

    /// The stored value, or `None` (absent, expired, unreadable record, invalid id).
    /// A hit needing no I/O (unshared, or checked by the change table) keeps the GIL.
    fn read(&self, py: Python<'_>, id: Cow<'_, str>) -> PyResult<Option<String>> {
        if let Some(answer) = self.inner.read_without_io(&id) {
            return Ok(answer);
        }
        Ok(py.detach(|| self.inner.read(&id))?)
    }

    /// Stores `value` for `ttl` seconds (0 deletes). An invalid id raises
    /// `ConfigurationError` and touches nothing.
    fn write(
        &self,
        py: Python<'_>,
        id: Cow<'_, str>,
        value: Cow<'_, str>,
        ttl: u64,
    ) -> PyResult<()> {
        Ok(py.detach(|| self.inner.write(&id, &value, ttl))?)
    }

    /// Deletes the entry; returns whether it was live (false for an absent or
    /// expired entry, or an invalid id, which touches no file).
    fn invalidate(&self, py: Python<'_>, id: Cow<'_, str>) -> PyResult<bool> {
        Ok(py.detach(|| self.inner.invalidate(&id))?)
    }

    /// Stores `value` only when there is no live entry (atomic across processes);
    /// returns whether it did. An invalid id raises `ConfigurationError`.
    fn create(
        &self,
        py: Python<'_>,
        id: Cow<'_, str>,
        value: Cow<'_, str>,
        ttl: u64,
    ) -> PyResult<bool> {
        Ok(py.detach(|| self.inner.create(&id, &value, ttl))?)
    }

    /// Replaces the value only while there is a live entry (never undoing an earlier
    /// invalidation); returns whether it did. An invalid id raises
    /// `ConfigurationError`.
    fn update(
        &self,
        py: Python<'_>,
        id: Cow<'_, str>,
        value: Cow<'_, str>,
        ttl: u64,
    ) -> PyResult<bool> {
        Ok(py.detach(|| self.inner.update(&id, &value, ttl))?)
    }

    /// `(value, seconds left)` of a live entry, or `None` (like `read`).
    fn read_ttl(&self, py: Python<'_>, id: Cow<'_, str>) -> PyResult<Option<(String, f64)>> {
        let answer = match self.inner.read_ttl_without_io(&id) {
            Some(answer) => answer,
            None => py.detach(|| self.inner.read_ttl(&id))?,
        };
        Ok(answer.map(|(value, left)| (value, left.as_secs_f64())))
    }

    /// Records that `key` belongs to `owner` for `ttl` seconds. An invalid owner or
    /// key raises `ConfigurationError`.
    fn index_add(
        &self,
        py: Python<'_>,
        owner: Cow<'_, str>,
        key: Cow<'_, str>,
        ttl: u64,
    ) -> PyResult<()> {
        Ok(py.detach(|| self.inner.index_add(&owner, &key, ttl))?)
    }

    /// Forgets that `key` belongs to `owner` (nothing when it was not recorded).
    fn index_remove(&self, py: Python<'_>, owner: Cow<'_, str>, key: Cow<'_, str>) -> PyResult<()> {
        Ok(py.detach(|| self.inner.index_remove(&owner, &key))?)
    }

    /// The keys recorded for `owner` whose index lifetime has not passed.
    fn index_list(&self, py: Python<'_>, owner: Cow<'_, str>) -> PyResult<Vec<String>> {
        Ok(py.detach(|| self.inner.index_list(&owner))?)
    }

    /// Makes a live entry expire `ttl` seconds from now without rewriting it; returns
    /// whether there was one.
    fn touch(&self, py: Python<'_>, id: Cow<'_, str>, ttl: u64) -> PyResult<bool> {
        Ok(py.detach(|| self.inner.touch(&id, ttl))?)
    }

    /// Deletes expired entries (and temp files left by crashed writers); returns how
    /// many entries it deleted.
    fn gc(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(py.detach(|| self.inner.gc())?)
    }

    /// Whether the folder `path` holds a DirectoryStorage layout (its layout file, or
    /// the change table, `owners/` or shard folders of an older version); touches
    /// nothing. `ferrosession gc` asks before it opens a folder.
    #[staticmethod]
    fn holds_layout(py: Python<'_>, path: PathBuf) -> PyResult<bool> {
        Ok(py.detach(|| holds_layout(&path))?)
    }

    /// The folder, absolute.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_owned()
    }

    #[getter]
    fn cached(&self) -> bool {
        self.inner.cached()
    }

    #[getter]
    fn shared(&self) -> bool {
        self.inner.shared()
    }

    /// How a cache hit is revalidated now: `"table"`, `"stat"` or `"none"` (unshared,
    /// or no cache).
    #[getter]
    fn revalidation(&self) -> &'static str {
        self.inner.revalidation().as_str()
    }

    /// Test hook: whether the folder's change table is in use, or why not.
    fn _table_status(&self) -> String {
        self.inner.table_status()
    }

    /// Test hook: this storage's clock runs `seconds` ahead of the system clock
    /// (negative = behind). Only this instance is affected.
    fn _set_clock_offset(&self, seconds: f64) -> PyResult<()> {
        self.clock
            .set_offset(seconds_to_nanos("the clock offset", seconds)?);
        Ok(())
    }

    /// Test hook: `(entry files opened, revalidating stats, hits revalidated by the
    /// change table)` so far.
    fn _io_counts(&self) -> (usize, usize, usize) {
        let c = self.inner.io_counts();
        (c.opens, c.stats, c.table_hits)
    }

    /// Test hook: entries in the in-memory cache.
    fn _cache_len(&self) -> usize {
        self.inner.cache_len()
    }

    fn __repr__(&self) -> String {
        format!(
            "DirectoryStorage({:?}, cached={}, shared={}, revalidation='{}')",
            self.inner.path().display().to_string(),
            if self.inner.cached() { "True" } else { "False" },
            if self.inner.shared() { "True" } else { "False" },
            self.inner.revalidation().as_str(),
        )
    }
}

/// The `shared` argument: `True`, `False` or `"stat"`.
#[derive(Debug, Clone, Copy)]
enum Sharing {
    Auto,
    Private,
    Stat,
}

impl<'a, 'py> FromPyObject<'a, 'py> for Sharing {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(flag) = ob.cast::<PyBool>() {
            return Ok(if flag.is_true() {
                Sharing::Auto
            } else {
                Sharing::Private
            });
        }
        if ob
            .cast::<PyString>()
            .is_ok_and(|s| s.to_str().is_ok_and(|s| s == "stat"))
        {
            return Ok(Sharing::Stat);
        }
        Err(CoreError::Config(format!(
            "DirectoryStorage shared must be True, False or \"stat\", not {}",
            ob.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string())
        ))
        .into())
    }
}

/// Adds `DirectoryStorage` to the `_core` module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DirectoryStorage>()
}
