//! `DirectoryStorage`: one file per session in a folder, shared safely by threads and
//! processes, with an optional in-memory cache.
//!
//! This file holds the storage type and its reads and writes; the rest is split by
//! concern: `layout` (where things live in the folder, which names are ids, the
//! layout file), `files` (atomic file operations), `coherence` with `change_table`
//! (the cache across threads and processes), `owners` (the owner index) and `gc`.
//!
//! # Writes
//! A write creates `.tmp-<16 random hex>` in the leaf folder (`O_EXCL`, mode 0600),
//! writes the record (see `record.rs`), sets its mtime to the expiry and renames it
//! over the entry: a reader sees the old or the new file, never a mix. On any failure
//! the temp file is removed. There is no fsync: sessions are short-lived, a crash may
//! lose the last writes, and a file torn by a crash fails the record's checksum and
//! reads as absent. `gc` removes temp files left by a crash.
//!
//! # Create, update, invalidate
//! These are atomic across processes without any lock file, by the kernel's rename
//! variants (`renameat2` on Linux, `renameatx_np` on macOS, through `rustix`):
//! * `create` moves its temp file into place with `RENAME_NOREPLACE` (or a hard link,
//!   which never replaces either): of concurrent creates exactly one wins. An expired
//!   entry in the way is removed the way `gc` removes one, then the move is retried once.
//! * `invalidate` moves the entry aside before checking and deleting it, so its answer
//!   (was it live?) is about the very file it removed.
//! * `update` exchanges its temp file with the entry (`RENAME_EXCHANGE`), which fails
//!   when there is no entry: an update that comes after an invalidate finds nothing,
//!   and one that came before is deleted by it. The entry path is never empty during
//!   an update. If the record it displaced was expired, the update expires its own
//!   file (through its handle, wherever the file is by then) and removes it.
//!
//! Where these renames are missing (other systems, or a filesystem that refuses them),
//! `create` links instead, and `update` moves the entry aside, checks it and renames
//! the new one in (readers may then see no entry for a moment).

#[cfg(test)]
#[macro_use]
mod test_support;

mod change_table;
mod coherence;
mod files;
mod gc;
mod layout;
mod owners;
#[cfg(test)]
mod tests;

use std::fs::{self, File, FileTimes};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use std::{fmt, io};

use sha2::{Digest, Sha256};

use super::clock::{duration_nanos, from_unix_nanos, Clock, SystemClock, UnixNanos, NANOS_PER_SEC};
use super::record;
use super::ttl_cache::TtlCache;
use crate::error::{CoreError, Result};
use change_table::{ChangeTable, NoTable};
use coherence::{Change, HitCheck, Stripe, STRIPES};
use files::{
    is_absent, live_at, load, move_no_replace, os, remove_entry, rename_with, storage_error,
    take_if, touch_file, update_by_moving, write_temp, Loaded, Swap, Taken, Validator,
};
use layout::{check_id, ensure_layout_file, slot_of};

pub use change_table::FILE_NAME as CHANGE_TABLE_FILE;
pub use coherence::Revalidation;
pub use gc::STALE_TEMP;
pub use layout::{holds_layout, is_valid_id, LAYOUT_FILE, MAX_ID_LEN};

/// Lifetimes are clamped to this many seconds (about 68 years, the cookie Max-Age
/// limit).
pub const MAX_TTL_SECS: u64 = i32::MAX as u64;

fn ttl_nanos(ttl_secs: u64) -> i64 {
    // MAX_TTL_SECS * 1e9 < i64::MAX
    i64::try_from(ttl_secs.min(MAX_TTL_SECS)).unwrap_or(0) * NANOS_PER_SEC
}

/// One cached entry.
#[derive(Debug, Clone)]
struct Cached {
    value: Arc<str>,
    expires_at: UnixNanos,
    /// The file's identity when the value was cached: checked by a `Stat` hit.
    validator: Validator,
    /// The slot's `begun` count the value is current for: a `Table` hit needs
    /// `begun == tag`. `None` when it could not be tagged (no table, or a change of
    /// the slot was in progress); such an entry is only kept for `Stat` hits.
    tag: Option<u64>,
    slot: usize,
    path: Arc<Path>,
}

/// How many times the storage opened an entry file, stat-ed one to revalidate a
/// cache hit, and revalidated a hit by the change table (for tests and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounts {
    /// Entry files opened to read a value.
    pub opens: usize,
    /// `lstat` calls revalidating a cache hit (`Revalidation::Stat`).
    pub stats: usize,
    /// Cache hits revalidated by the change table, without a system call
    /// (`Revalidation::Table`).
    pub table_hits: usize,
}

#[derive(Debug, Default)]
struct Counters {
    opens: AtomicUsize,
    stats: AtomicUsize,
    table_hits: AtomicUsize,
}

/// Where one id's entry lives.
struct Location {
    path: PathBuf,
    stripe: usize,
    /// Its change-table slot.
    slot: usize,
}

/// A folder of session files (see the module documentation).
pub struct DirectoryStorage {
    root: PathBuf,
    shared: bool,
    /// Revalidate shared hits by `lstat` even with a table.
    force_stat: bool,
    /// The folder's change table: every change counts in it, whatever the other
    /// settings; `shared` hits are checked against it unless `force_stat`.
    table: std::result::Result<ChangeTable, NoTable>,
    cache: Option<Mutex<TtlCache<Cached>>>,
    stripes: Box<[Stripe]>,
    clock: Arc<dyn Clock>,
    counters: Counters,
}

impl fmt::Debug for DirectoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectoryStorage")
            .field("root", &self.root)
            .field("cached", &self.cache.is_some())
            .field("shared", &self.shared)
            .field("revalidation", &self.revalidation())
            .field("table", &self.table_status())
            .finish_non_exhaustive()
    }
}

/// The time left until `expires_at` (at least 1 ns: the caller saw it live).
fn remaining(expires_at: UnixNanos, now: UnixNanos) -> Duration {
    Duration::from_nanos(expires_at.saturating_sub(now).max(1).unsigned_abs())
}

impl DirectoryStorage {
    /// Opens (creating it with mode 0700 if missing) the folder at `path`, and its
    /// change table (creating `.ferrosession-changes` if missing; when the table
    /// cannot be used, see `table_status`, hits are revalidated by `lstat`).
    ///
    /// `cached`: keep read and written values in memory for `cache_ttl`, at most
    /// `cache_max_entries` of them. `shared`: other processes write the same folder, so
    /// revalidate each cache hit: against the change table, else with one `lstat`
    /// (see `revalidation`, and `revalidate_by_stat`).
    pub fn new(
        path: impl AsRef<Path>,
        cached: bool,
        cache_ttl: Duration,
        shared: bool,
        cache_max_entries: usize,
    ) -> Result<Self> {
        let path = path.as_ref();
        let root = std::path::absolute(path)
            .map_err(|e| storage_error("cannot use session folder", path, &e))?;
        os::create_private_dirs(&root)
            .map_err(|e| storage_error("cannot create session folder", &root, &e))?;
        ensure_layout_file(&root);
        let cache = (cached && cache_max_entries > 0)
            .then(|| Mutex::new(TtlCache::new(duration_nanos(cache_ttl), cache_max_entries)));
        let table = change_table::open(&root);
        Ok(Self {
            root,
            shared,
            force_stat: false,
            table,
            cache,
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            clock: Arc::new(SystemClock),
            counters: Counters::default(),
        })
    }

    /// The same storage reading time from `clock` (tests inject one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same storage revalidating its `shared` cache hits with one `lstat` each
    /// even where the change table works: for folders shared in ways the storage
    /// cannot detect (another host through a filesystem it does not know as a
    /// network one). Its changes still count in the table, for the other processes.
    pub fn revalidate_by_stat(mut self) -> Self {
        self.force_stat = true;
        self
    }

    /// The folder (absolute).
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// True when a cache hit is revalidated against the file.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// True when the storage keeps an in-memory cache.
    pub fn cached(&self) -> bool {
        self.cache.is_some()
    }

    /// Entries in the in-memory cache now.
    pub fn cache_len(&self) -> usize {
        self.cache.as_ref().map_or(0, |_| self.lock_cache().len())
    }

    /// File opens and revalidating stats so far.
    pub fn io_counts(&self) -> IoCounts {
        IoCounts {
            opens: self.counters.opens.load(Ordering::Relaxed),
            stats: self.counters.stats.load(Ordering::Relaxed),
            table_hits: self.counters.table_hits.load(Ordering::Relaxed),
        }
    }

    fn lock_cache(&self) -> MutexGuard<'_, TtlCache<Cached>> {
        let cache = self.cache.as_ref().expect("only called with a cache");
        cache.lock().unwrap_or_else(|poisoned| {
            // a panic mid-update may have left it inconsistent: start over
            let mut guard = poisoned.into_inner();
            guard.clear();
            cache.clear_poison();
            guard
        })
    }

    fn forget(&self, id: &str) {
        if self.cache.is_some() {
            self.lock_cache().remove(id);
        }
    }

    /// The path and stripe of a valid id.
    fn locate(&self, id: &str) -> Location {
        let digest = Sha256::digest(id.as_bytes());
        let name = hex::encode(digest);
        let path = self.root.join(&name[0..2]).join(&name[2..4]).join(&name);
        Location {
            path,
            stripe: usize::from(digest[2]) % STRIPES,
            slot: slot_of(&digest[4..8]),
        }
    }

    /// The entry file of `id`, or `None` for an invalid id (for tests and tools).
    pub fn entry_path(&self, id: &str) -> Option<PathBuf> {
        is_valid_id(id).then(|| self.locate(id).path)
    }

    /// The value of `id`, or `None` when it is absent, expired, not a record, or the
    /// id is not valid.
    pub fn read(&self, id: &str) -> Result<Option<String>> {
        Ok(self.read_ttl(id)?.map(|(value, _)| value))
    }

    /// The value of `id` and its expiry (Unix nanoseconds, after now), or `None` like
    /// `read`. Served from the cache whenever `read` would be.
    fn read_with_expiry(&self, id: &str) -> Result<Option<(String, UnixNanos)>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        if let Some(hit) = self.read_cache(id) {
            return Ok(Some(hit));
        }
        self.read_file(id)
    }

    /// The value of `id` and how long it has left to live (more than zero), or `None`
    /// like `read`. Served from the cache whenever `read` would be.
    pub fn read_ttl(&self, id: &str) -> Result<Option<(String, Duration)>> {
        let now = self.clock.now();
        Ok(self
            .read_with_expiry(id)?
            .map(|(value, expires_at)| (value, remaining(expires_at, now))))
    }

    /// The answer to `read(id)` when it needs no disk access (an invalid id, or a cache
    /// hit without `shared` or checked by the change table), else `None`. The bindings
    /// try this before releasing the GIL for a full `read`.
    pub fn read_without_io(&self, id: &str) -> Option<Option<String>> {
        self.read_ttl_without_io(id)
            .map(|answer| answer.map(|(value, _)| value))
    }

    /// The answer to `read_ttl(id)` when it needs no disk access, like
    /// `read_without_io`.
    pub fn read_ttl_without_io(&self, id: &str) -> Option<Option<(String, Duration)>> {
        if !is_valid_id(id) {
            return Some(None);
        }
        if self.cache.is_none() || matches!(self.hit_check(), HitCheck::Stat) {
            return None;
        }
        let now = self.clock.now();
        self.read_cache(id)
            .map(|(value, expires_at)| Some((value, remaining(expires_at, now))))
    }

    /// A cache hit (revalidated when `shared`, see `hit_check`): the value and its
    /// expiry.
    fn read_cache(&self, id: &str) -> Option<(String, UnixNanos)> {
        self.cache.as_ref()?;
        let now = self.clock.now();
        let hit = {
            let mut cache = self.lock_cache();
            match cache.get(id, now) {
                Some(entry) if entry.expires_at > now => Some(entry.clone()),
                Some(_) => {
                    cache.remove(id);
                    None
                }
                None => None,
            }
        }?;
        let current = match self.hit_check() {
            HitCheck::Trust => true,
            HitCheck::Table(table) => {
                // no change of the slot began since the value was known current
                let same = hit.tag.is_some_and(|tag| table.begun(hit.slot) == tag);
                if same {
                    self.counters.table_hits.fetch_add(1, Ordering::Relaxed);
                }
                same
            }
            HitCheck::Stat => {
                self.counters.stats.fetch_add(1, Ordering::Relaxed);
                fs::symlink_metadata(&hit.path).is_ok_and(|m| os::validator(&m) == hit.validator)
            }
        };
        if !current {
            self.lock_cache()
                .remove_if(id, |e| e.validator == hit.validator && e.tag == hit.tag);
            return None;
        }
        Some((hit.value.to_string(), hit.expires_at))
    }

    fn read_file(&self, id: &str) -> Result<Option<(String, UnixNanos)>> {
        let now = self.clock.now();
        let loc = self.locate(id);
        let stripe = &self.stripes[loc.stripe];
        let generation = stripe.generation.load(Ordering::Acquire);
        // before the open: `begun` when no change of the slot was in progress (in
        // any process), the tag the value read may be cached under
        let tag = self.table.as_ref().ok().and_then(|t| t.settled(loc.slot));
        self.counters.opens.fetch_add(1, Ordering::Relaxed);
        match load(&loc.path, now)? {
            Loaded::Absent => Ok(None),
            Loaded::Present {
                value,
                expires_at,
                validator,
            } => {
                let by_table = matches!(self.hit_check(), HitCheck::Table(_));
                if self.cache.is_some() && generation % 2 == 0 && (tag.is_some() || !by_table) {
                    let mut cache = self.lock_cache();
                    // no write, invalidation or touch of this stripe began since the
                    // file was opened, so `value` is not older than the file
                    if stripe.generation.load(Ordering::Acquire) == generation {
                        let entry = Cached {
                            value: Arc::from(value.as_str()),
                            expires_at,
                            validator,
                            tag,
                            slot: loc.slot,
                            path: Arc::from(loc.path),
                        };
                        cache.insert(id, entry, now);
                    }
                }
                Ok(Some((value, expires_at)))
            }
        }
    }

    /// Stores `value` for `id`, expiring in `ttl_secs` seconds (0 = delete the entry).
    ///
    /// An invalid id is a programming error here (ids are minted by the server):
    /// `CoreError::Config`, and no file is touched.
    pub fn write(&self, id: &str, value: &str, ttl_secs: u64) -> Result<()> {
        check_id(id)?;
        if ttl_secs == 0 {
            return self.invalidate(id).map(drop);
        }
        let loc = self.locate(id);
        let change = self.change(loc.stripe, loc.slot);
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl_nanos(ttl_secs));
        let file = self.write_file(&loc.path, value, expires_at, &change)?;
        self.cache_written(id, value, &file, &loc, &change, now);
        Ok(())
    }

    /// Puts the value just written as `file` (now the entry at `loc`) in the cache,
    /// tagged by `change` (without a tag, when hits are checked by the table, the
    /// value is not cached: another process's change may have overlapped).
    fn cache_written(
        &self,
        id: &str,
        value: &str,
        file: &File,
        loc: &Location,
        change: &Change<'_>,
        now: UnixNanos,
    ) {
        if self.cache.is_none() {
            return;
        }
        let tag = change.tag();
        if tag.is_none() && matches!(self.hit_check(), HitCheck::Table(_)) {
            self.forget(id);
            return;
        }
        // fstat after the rename: the validator of the file we put there (the rename
        // may have changed its ctime)
        match file.metadata() {
            Ok(m) => {
                let entry = Cached {
                    value: Arc::from(value),
                    expires_at: os::mtime(&m),
                    validator: os::validator(&m),
                    tag,
                    slot: loc.slot,
                    path: Arc::from(loc.path.as_path()),
                };
                self.lock_cache().insert(id, entry, now);
            }
            Err(_) => self.forget(id),
        }
    }

    /// Writes the record to a temp file and renames it over `path`; returns the
    /// (still open) file that is now the entry.
    fn write_file(
        &self,
        path: &Path,
        value: &str,
        expires_at: UnixNanos,
        change: &Change<'_>,
    ) -> Result<File> {
        let dir = path.parent().expect("entry paths have a folder");
        let (tmp, file) = write_temp(dir, &record::encode(value), expires_at, true)?
            .expect("the folder is created when missing");
        change.about_to_change();
        match fs::rename(&tmp, path) {
            Ok(()) => Ok(file),
            Err(e) => {
                drop(file);
                let _ = fs::remove_file(&tmp);
                Err(storage_error("cannot write session file", path, &e))
            }
        }
    }

    /// Stores `value` for `id` only when there is no live entry, atomically: of
    /// concurrent creates of one id (in any process) exactly one returns true.
    ///
    /// The record is written to a temp file and moved into place without replacing
    /// (`renameat2(RENAME_NOREPLACE)`, or a hard link where that is missing). An
    /// expired or damaged entry in the way is moved aside, checked again (a writer may
    /// have replaced it), deleted, and the move retried once. `ttl_secs == 0` stores
    /// nothing (false). An invalid id is `CoreError::Config`, like `write`.
    pub fn create(&self, id: &str, value: &str, ttl_secs: u64) -> Result<bool> {
        check_id(id)?;
        if ttl_secs == 0 {
            return Ok(false);
        }
        let loc = self.locate(id);
        let dir = loc.path.parent().expect("entry paths have a folder");
        let change = self.change(loc.stripe, loc.slot);
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl_nanos(ttl_secs));
        let (tmp, file) = write_temp(dir, &record::encode(value), expires_at, true)?
            .expect("the folder is created when missing");
        let fail = |e: CoreError| {
            let _ = fs::remove_file(&tmp);
            Err(e)
        };
        let mut cleared = false;
        loop {
            change.about_to_change();
            match move_no_replace(&tmp, &loc.path) {
                Ok(()) => {
                    self.cache_written(id, value, &file, &loc, &change, now);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !cleared => {
                    cleared = true;
                    match fs::symlink_metadata(&loc.path) {
                        Ok(m) if !m.is_file() => {
                            return fail(CoreError::Storage(format!(
                                "cannot create session file {}: something else is there",
                                loc.path.display()
                            )))
                        }
                        Ok(_) => {}
                        Err(e) if is_absent(&e) => continue,
                        Err(e) => {
                            return fail(storage_error("cannot create session file", &loc.path, &e))
                        }
                    }
                    // look without moving first: a live entry stays where readers see it
                    match live_at(&loc.path, now) {
                        Ok(Some(_)) => {
                            let _ = fs::remove_file(&tmp);
                            return Ok(false);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            return fail(storage_error("cannot read session file", &loc.path, &e))
                        }
                    }
                    let doomed =
                        |grave: &Path| {
                            Ok(fs::symlink_metadata(grave)?.is_file()
                                && live_at(grave, now)?.is_none())
                        };
                    match take_if(&loc.path, dir, doomed) {
                        Ok(Taken::Removed | Taken::Absent) => {}
                        Ok(Taken::Kept) => {
                            // a writer put a live entry there meanwhile
                            let _ = fs::remove_file(&tmp);
                            return Ok(false);
                        }
                        Err(e) => return fail(e),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // re-created between our delete and our move: that one won
                    let _ = fs::remove_file(&tmp);
                    return Ok(false);
                }
                Err(e) => return fail(storage_error("cannot create session file", &loc.path, &e)),
            }
        }
    }

    /// Replaces the value of `id` only while it has a live entry, atomically with
    /// respect to `invalidate` and expiry in every process: an update never brings
    /// back an entry deleted (or expired) before it.
    ///
    /// The record is written to a temp file and exchanged with the entry
    /// (`renameat2(RENAME_EXCHANGE)`): that fails when the entry is gone (false).
    /// The old record, now at the temp path, is then checked: if it was not live, the
    /// file just put in place is made expired through its open handle (so neither a
    /// concurrent `gc` nor anything else can bring it back) and removed (unless
    /// another writer replaced it meanwhile), and the update returns false. Where the
    /// exchange is missing (not Linux or macOS, or a filesystem without it), the
    /// entry is moved aside, checked, and the new one renamed in (readers may then
    /// see no entry for a moment). `ttl_secs == 0` deletes a live entry (like
    /// `write`) and returns false. An invalid id is `CoreError::Config`, like
    /// `write`. A false return leaves nothing cached for `id`. False means the entry
    /// is truly gone (missing or expired): any other failure, a folder of the layout
    /// replaced by a file or an entry that cannot be read included, is
    /// `CoreError::Storage`, so a broken folder never reads as a logout.
    pub fn update(&self, id: &str, value: &str, ttl_secs: u64) -> Result<bool> {
        check_id(id)?;
        if ttl_secs == 0 {
            self.invalidate(id)?;
            return Ok(false);
        }
        let loc = self.locate(id);
        let dir = loc.path.parent().expect("entry paths have a folder");
        let change = self.change(loc.stripe, loc.slot);
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl_nanos(ttl_secs));
        let updated = self.update_file(&loc.path, dir, value, expires_at, now, &change);
        match updated {
            Ok(Some(file)) => {
                self.cache_written(id, value, &file, &loc, &change, now);
                Ok(true)
            }
            Ok(None) => {
                self.forget(id);
                Ok(false)
            }
            Err(e) => {
                self.forget(id);
                Err(e)
            }
        }
    }

    /// The file work of `update`: `Some(file)` (now the entry) when it replaced a live
    /// entry.
    fn update_file(
        &self,
        path: &Path,
        dir: &Path,
        value: &str,
        expires_at: UnixNanos,
        now: UnixNanos,
        change: &Change<'_>,
    ) -> Result<Option<File>> {
        // no shard folder: no entry (and nothing to create)
        let Some((tmp, file)) = write_temp(dir, &record::encode(value), expires_at, false)? else {
            return Ok(None);
        };
        let write_error = |e: &io::Error| storage_error("cannot write session file", path, e);
        change.about_to_change();
        match rename_with(&tmp, path, Swap::Exchange) {
            Ok(()) => {}
            Err(e) if is_absent(&e) => {
                let _ = fs::remove_file(&tmp);
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                return update_by_moving(path, dir, &tmp, file, now);
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(write_error(&e));
            }
        }
        // the old entry is now at `tmp`
        let old = fs::symlink_metadata(&tmp);
        if old.as_ref().is_ok_and(|m| !m.is_file()) {
            // a folder (or link) was exchanged with our file: swap back, drop ours
            let back = rename_with(&tmp, path, Swap::Exchange);
            let _ = fs::remove_file(&tmp);
            return back.map(|()| None).map_err(|e| write_error(&e));
        }
        // missing counts as not live (update never revives); unreadable is an error,
        // with the old entry swapped back: it may be a live session
        let was_live = match live_at(&tmp, now) {
            Ok(meta) => meta.is_some(),
            Err(e) => {
                let _ = rename_with(&tmp, path, Swap::Exchange);
                let _ = fs::remove_file(&tmp);
                return Err(storage_error("cannot read session file", path, &e));
            }
        };
        let _ = fs::remove_file(&tmp);
        if was_live {
            return Ok(Some(file));
        }
        // there was no live entry: undo. First make our file expired wherever it is
        // now (a gc may be holding it aside to put back), then remove it from the entry
        // path unless a newer writer replaced it.
        let expired = FileTimes::new().set_modified(from_unix_nanos(0));
        file.set_times(expired).map_err(|e| write_error(&e))?;
        let ours = os::validator(&file.metadata().map_err(|e| write_error(&e))?);
        // a file it cannot stat is not known to be ours: it stays (ours is expired)
        let is_ours = |grave: &Path| {
            Ok(fs::symlink_metadata(grave).is_ok_and(|m| {
                let v = os::validator(&m);
                (v.dev, v.ino) == (ours.dev, ours.ino)
            }))
        };
        take_if(path, dir, is_ours)?;
        Ok(None)
    }

    /// Deletes the entry of `id`; returns true when it was live (what `read` would
    /// have returned). False for an absent entry or an invalid id (no file touched);
    /// `CoreError::Storage` when the folder or the entry cannot be used, also when the
    /// entry was removed but could not be read (whether it was live is unknown).
    ///
    /// The entry is moved aside (atomically) before it is checked and deleted, so the
    /// answer is about the very file removed, and an `update` racing with it either
    /// landed before (and is deleted with it) or finds no entry.
    pub fn invalidate(&self, id: &str) -> Result<bool> {
        if !is_valid_id(id) {
            return Ok(false);
        }
        let loc = self.locate(id);
        let dir = loc.path.parent().expect("entry paths have a folder");
        let _change = self.change(loc.stripe, loc.slot);
        let now = self.clock.now();
        let removed = remove_entry(&loc.path, dir, now);
        self.forget(id);
        removed
    }

    /// Makes the entry of `id` expire `ttl_secs` seconds from now without rewriting
    /// it (sets the file's mtime). Returns false when there is no live entry;
    /// `CoreError::Storage` when it cannot tell.
    pub fn touch(&self, id: &str, ttl_secs: u64) -> Result<bool> {
        if !is_valid_id(id) {
            return Ok(false);
        }
        let loc = self.locate(id);
        let change = self.change(loc.stripe, loc.slot);
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl_nanos(ttl_secs));
        let touched = touch_file(&loc.path, now, expires_at, &change);
        match touched {
            Ok(Some((before, after))) => {
                if self.cache.is_some() {
                    // With the table, the cached value is still current if it was
                    // right before this touch (tagged with the `begun` just before
                    // ours) and the touch may tag its result (`Change::tag`): the
                    // touch changed only the expiry.
                    let tag = change.tag();
                    let by_table = matches!(self.hit_check(), HitCheck::Table(_));
                    let before_tag = tag.map(|t| t.wrapping_sub(1));
                    let mut cache = self.lock_cache();
                    let stale = match cache.peek_mut(id) {
                        Some(entry)
                            if entry.validator == before
                                && (!by_table || (tag.is_some() && entry.tag == before_tag)) =>
                        {
                            entry.validator = os::validator(&after);
                            entry.expires_at = os::mtime(&after);
                            entry.tag = tag;
                            false
                        }
                        Some(_) => true,
                        None => false,
                    };
                    if stale {
                        cache.remove(id);
                    }
                }
                Ok(true)
            }
            Ok(None) => {
                self.forget(id);
                Ok(false)
            }
            Err(e) => {
                self.forget(id);
                Err(storage_error("cannot touch session file", &loc.path, &e))
            }
        }
    }
}
