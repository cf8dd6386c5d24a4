//! `DirectoryStorage`: one file per session in a folder, shared safely by threads and
//! processes, with an optional in-memory cache.
//!
//! # Layout
//! `ROOT/ab/cd/<64 hex>`: the file name is the lowercase hex SHA-256 of the session
//! id, and the two folder levels are its first two bytes. So:
//! * no path is ever built from the id's characters (and the id is checked against
//!   `[A-Za-z0-9_-]{1,128}` before anything else anyway);
//! * names are lowercase hex, so ids differing only by case stay apart on
//!   case-insensitive filesystems (macOS, Windows);
//! * 256 × 256 leaf folders: each holds n / 65 536 entries (1 500 at 100 M sessions),
//!   the top and middle folders at most 256 each, for any choice of ids;
//! * shard folders are created by writes only (mode 0700), never removed.
//!
//! # Writes
//! A write creates `.tmp-<16 random hex>` in the leaf folder (`O_EXCL`, mode 0600),
//! writes the record (see `record.rs`), sets its mtime to the expiry and renames it
//! over the entry: a reader sees the old or the new file, never a mix. On any failure
//! the temp file is removed. There is no fsync: sessions are short-lived, a crash may
//! lose the last writes, and a file torn by a crash fails the record's checksum and
//! reads as absent. `gc` removes temp files left by a crash.
//!
//! # Cache and concurrency
//! Within a process, operations on one id are ordered by a striped lock (writes,
//! invalidations, touches) and a per-stripe generation counter (a read that raced a
//! write does not fill the cache), so the cache never holds an older value than the
//! file after the process's own writes. With `shared`, a cache hit is revalidated
//! with one `lstat`: device, inode, size, mtime and ctime must be those recorded when
//! the value was cached. A replacing write by another process makes a new inode (the
//! temp file exists beside the old one before the rename), and a delete + re-create
//! that reuses the inode still changes the nanosecond mtime (set from the writer's
//! clock) and the ctime; a touch changes both times. Any mismatch drops the entry and
//! reads the file.
//!
//! # Expiry and gc
//! An entry's expiry is its file's mtime (see `record.rs`): a read checks it with the
//! `fstat` it makes anyway, a cache hit checks the cached copy, `touch` sets it. Reads
//! never delete (a read that raced a rewrite could delete the fresh file); `gc`
//! deletes expired entries by moving each aside atomically, checking the moved file,
//! and linking it back if a writer had replaced it meanwhile (never over a newer
//! write), so it can run while other processes use the folder.

use std::fmt;
use std::fs::{self, File, FileTimes};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::clock::{duration_nanos, from_unix_nanos, Clock, SystemClock, UnixNanos, NANOS_PER_SEC};
use super::record;
use super::ttl_cache::TtlCache;
use crate::error::{CoreError, Result};

/// The longest accepted session id.
pub const MAX_ID_LEN: usize = 128;

/// Lifetimes are clamped to this many seconds (about 68 years, the cookie Max-Age
/// limit).
pub const MAX_TTL_SECS: u64 = i32::MAX as u64;

/// `gc` removes temp files whose last status change is older than this: a live write
/// holds its temp file for microseconds, so these are left by a crashed writer.
pub const STALE_TEMP: Duration = Duration::from_secs(600);

/// A file larger than this is not a record (reads as absent without being read).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Number of lock stripes ordering the operations on one id within the process.
const STRIPES: usize = 64;

const TEMP_PREFIX: &str = ".tmp-";

/// True for ids of `[A-Za-z0-9_-]{1,128}`: the only ids the storage knows.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What identifies one version of a file: changes whenever another writer replaces,
/// deletes and re-creates, or touches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Validator {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: UnixNanos,
    ctime: UnixNanos,
}

#[cfg(unix)]
mod os {
    use super::{UnixNanos, Validator, NANOS_PER_SEC};
    use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
    use std::io;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    fn nanos(secs: i64, nsec: i64) -> UnixNanos {
        secs.saturating_mul(NANOS_PER_SEC).saturating_add(nsec)
    }

    pub(super) fn validator(m: &fs::Metadata) -> Validator {
        Validator {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: mtime(m),
            ctime: ctime(m),
        }
    }

    pub(super) fn mtime(m: &fs::Metadata) -> UnixNanos {
        nanos(m.mtime(), m.mtime_nsec())
    }

    /// The last status change (set by the kernel; a rename or chmod updates it).
    pub(super) fn ctime(m: &fs::Metadata) -> UnixNanos {
        nanos(m.ctime(), m.ctime_nsec())
    }

    pub(super) fn create_new_private(path: &Path) -> io::Result<File> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        // exactly 0600, whatever the umask
        file.set_permissions(Permissions::from_mode(0o600))?;
        Ok(file)
    }

    pub(super) fn create_private_dirs(path: &Path) -> io::Result<()> {
        DirBuilder::new().recursive(true).mode(0o700).create(path)
    }
}

#[cfg(not(unix))]
mod os {
    use super::{to_unix_nanos, UnixNanos, Validator};
    use std::fs::{self, File, OpenOptions};
    use std::io;
    use std::path::Path;

    pub(super) fn validator(m: &fs::Metadata) -> Validator {
        Validator {
            dev: 0,
            ino: 0,
            size: m.len(),
            mtime: mtime(m),
            ctime: m.created().map(to_unix_nanos).unwrap_or(0),
        }
    }

    pub(super) fn mtime(m: &fs::Metadata) -> UnixNanos {
        m.modified().map(to_unix_nanos).unwrap_or(0)
    }

    pub(super) fn ctime(m: &fs::Metadata) -> UnixNanos {
        mtime(m)
    }

    pub(super) fn create_new_private(path: &Path) -> io::Result<File> {
        OpenOptions::new().write(true).create_new(true).open(path)
    }

    pub(super) fn create_private_dirs(path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
}

#[cfg(not(unix))]
use super::clock::to_unix_nanos;

fn storage_error(what: &str, path: &Path, e: &io::Error) -> CoreError {
    CoreError::Storage(format!("{what} {}: {e}", path.display()))
}

/// The open failed because the entry, or a folder on its path, does not exist.
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn random_hex() -> Result<String> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).map_err(|e| CoreError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

fn ttl_nanos(ttl_secs: u64) -> i64 {
    // MAX_TTL_SECS * 1e9 < i64::MAX
    i64::try_from(ttl_secs.min(MAX_TTL_SECS)).unwrap_or(0) * NANOS_PER_SEC
}

/// One cached entry.
#[derive(Debug, Clone)]
struct Cached {
    value: Arc<str>,
    expires_at: UnixNanos,
    validator: Validator,
    path: Arc<Path>,
}

/// Orders the operations on the ids of one stripe within the process.
#[derive(Debug, Default)]
struct Stripe {
    lock: Mutex<()>,
    /// Odd while a write, invalidation or touch is in progress; bumped before and
    /// after each.
    generation: AtomicU64,
}

/// Marks a stripe busy (odd generation) for as long as it lives.
struct Busy<'a>(&'a AtomicU64);

impl<'a> Busy<'a> {
    fn new(generation: &'a AtomicU64) -> Self {
        generation.fetch_add(1, Ordering::AcqRel);
        Self(generation)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// How many times the storage opened an entry file and stat-ed one to revalidate a
/// cache hit (for tests and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounts {
    /// Entry files opened to read a value.
    pub opens: usize,
    /// `lstat` calls revalidating a cache hit (`shared` only).
    pub stats: usize,
}

#[derive(Debug, Default)]
struct Counters {
    opens: AtomicUsize,
    stats: AtomicUsize,
}

/// Where one id's entry lives.
struct Location {
    path: PathBuf,
    stripe: usize,
}

/// The result of a file read.
enum Loaded {
    Absent,
    Present {
        value: String,
        expires_at: UnixNanos,
        validator: Validator,
    },
}

/// A folder of session files (see the module documentation).
pub struct DirectoryStorage {
    root: PathBuf,
    shared: bool,
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
            .finish_non_exhaustive()
    }
}

impl DirectoryStorage {
    /// Opens (creating it with mode 0700 if missing) the folder at `path`.
    ///
    /// `cached`: keep read and written values in memory for `cache_ttl`, at most
    /// `cache_max_entries` of them. `shared`: other processes write the same folder, so
    /// revalidate each cache hit with one `lstat`.
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
        let cache = (cached && cache_max_entries > 0)
            .then(|| Mutex::new(TtlCache::new(duration_nanos(cache_ttl), cache_max_entries)));
        Ok(Self {
            root,
            shared,
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
        }
    }

    /// The entry file of `id`, or `None` for an invalid id (for tests and tools).
    pub fn entry_path(&self, id: &str) -> Option<PathBuf> {
        is_valid_id(id).then(|| self.locate(id).path)
    }

    /// The value of `id`, or `None` when it is absent, expired, not a record, or the
    /// id is not valid.
    pub fn read(&self, id: &str) -> Result<Option<String>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        if let Some(value) = self.read_cache(id) {
            return Ok(Some(value));
        }
        self.read_file(id)
    }

    /// The answer to `read(id)` when it needs no disk access (an invalid id, or a cache
    /// hit without `shared`), else `None`. The bindings try this before releasing the
    /// GIL for a full `read`.
    pub fn read_without_io(&self, id: &str) -> Option<Option<String>> {
        if !is_valid_id(id) {
            return Some(None);
        }
        if self.shared || self.cache.is_none() {
            return None;
        }
        self.read_cache(id).map(Some)
    }

    /// A cache hit (revalidated when `shared`).
    fn read_cache(&self, id: &str) -> Option<String> {
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
        if self.shared {
            self.counters.stats.fetch_add(1, Ordering::Relaxed);
            let same =
                fs::symlink_metadata(&hit.path).is_ok_and(|m| os::validator(&m) == hit.validator);
            if !same {
                self.lock_cache()
                    .remove_if(id, |e| e.validator == hit.validator);
                return None;
            }
        }
        Some(hit.value.to_string())
    }

    fn read_file(&self, id: &str) -> Result<Option<String>> {
        let now = self.clock.now();
        let loc = self.locate(id);
        let stripe = &self.stripes[loc.stripe];
        let generation = stripe.generation.load(Ordering::Acquire);
        self.counters.opens.fetch_add(1, Ordering::Relaxed);
        match load(&loc.path, now)? {
            Loaded::Absent => Ok(None),
            Loaded::Present {
                value,
                expires_at,
                validator,
            } => {
                if self.cache.is_some() && generation % 2 == 0 {
                    let mut cache = self.lock_cache();
                    // no write, invalidation or touch of this stripe began since the
                    // file was opened, so `value` is not older than the file
                    if stripe.generation.load(Ordering::Acquire) == generation {
                        let entry = Cached {
                            value: Arc::from(value.as_str()),
                            expires_at,
                            validator,
                            path: Arc::from(loc.path),
                        };
                        cache.insert(id, entry, now);
                    }
                }
                Ok(Some(value))
            }
        }
    }

    /// Stores `value` for `id`, expiring in `ttl_secs` seconds (0 = delete the entry).
    ///
    /// An invalid id is a programming error here (ids are minted by the server):
    /// `CoreError::Config`, and no file is touched.
    pub fn write(&self, id: &str, value: &str, ttl_secs: u64) -> Result<()> {
        if !is_valid_id(id) {
            let shown: String = id.chars().take(40).collect();
            return Err(CoreError::Config(format!(
                "invalid session id {shown:?}: a storage id is 1 to {MAX_ID_LEN} characters \
                 of A-Z, a-z, 0-9, '_' and '-'"
            )));
        }
        if ttl_secs == 0 {
            return self.invalidate(id);
        }
        let loc = self.locate(id);
        let stripe = &self.stripes[loc.stripe];
        let _lock = stripe.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _busy = Busy::new(&stripe.generation);
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl_nanos(ttl_secs));
        let file = self.write_file(&loc.path, value, expires_at)?;
        if self.cache.is_some() {
            // fstat after the rename: the validator of the file we put there (the
            // rename may have changed its ctime)
            match file.metadata() {
                Ok(m) => {
                    let entry = Cached {
                        value: Arc::from(value),
                        expires_at: os::mtime(&m),
                        validator: os::validator(&m),
                        path: Arc::from(loc.path),
                    };
                    self.lock_cache().insert(id, entry, now);
                }
                Err(_) => self.forget(id),
            }
        }
        Ok(())
    }

    /// Writes the record to a temp file and renames it over `path`; returns the
    /// (still open) file that is now the entry.
    fn write_file(&self, path: &Path, value: &str, expires_at: UnixNanos) -> Result<File> {
        let dir = path.parent().expect("entry paths have a folder");
        let (tmp, mut file) = create_temp(dir)?;
        let bytes = record::encode(value);
        let done = file
            .write_all(&bytes)
            .and_then(|()| {
                file.set_times(FileTimes::new().set_modified(from_unix_nanos(expires_at)))
            })
            .and_then(|()| fs::rename(&tmp, path));
        match done {
            Ok(()) => Ok(file),
            Err(e) => {
                drop(file);
                let _ = fs::remove_file(&tmp);
                Err(storage_error("cannot write session file", path, &e))
            }
        }
    }

    /// Deletes the entry of `id` (nothing for an absent entry or an invalid id).
    pub fn invalidate(&self, id: &str) -> Result<()> {
        if !is_valid_id(id) {
            return Ok(());
        }
        let loc = self.locate(id);
        let stripe = &self.stripes[loc.stripe];
        let _lock = stripe.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _busy = Busy::new(&stripe.generation);
        let removed = fs::remove_file(&loc.path);
        self.forget(id);
        match removed {
            Err(e) if !is_absent(&e) => {
                Err(storage_error("cannot delete session file", &loc.path, &e))
            }
            _ => Ok(()),
        }
    }

    /// Makes the entry of `id` expire `ttl_secs` seconds from now without rewriting
    /// it (sets the file's mtime). Returns false when there is no live entry.
    pub fn touch(&self, id: &str, ttl_secs: u64) -> Result<bool> {
        if !is_valid_id(id) {
            return Ok(false);
        }
        let loc = self.locate(id);
        let stripe = &self.stripes[loc.stripe];
        let _lock = stripe.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _busy = Busy::new(&stripe.generation);
        let now = self.clock.now();
        let touched = touch_file(&loc.path, now, now.saturating_add(ttl_nanos(ttl_secs)));
        match touched {
            Ok(Some((before, after))) => {
                if self.cache.is_some() {
                    let mut cache = self.lock_cache();
                    let stale = match cache.peek_mut(id) {
                        Some(entry) if entry.validator == before => {
                            entry.validator = os::validator(&after);
                            entry.expires_at = os::mtime(&after);
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

    /// Deletes expired entries, and temp files left by crashed writers (older than
    /// `STALE_TEMP`); returns how many entries it deleted. Errors on single files do
    /// not stop the sweep; the first one is returned at the end.
    pub fn gc(&self) -> Result<usize> {
        let now = self.clock.now();
        let stale_temp_before = now.saturating_sub(duration_nanos(STALE_TEMP));
        let mut removed = 0usize;
        let mut first_error: Option<CoreError> = None;
        let mut note = |e: CoreError| {
            first_error.get_or_insert(e);
        };
        let top = match fs::read_dir(&self.root) {
            Ok(top) => top,
            Err(e) if is_absent(&e) => return Ok(0),
            Err(e) => return Err(storage_error("cannot list session folder", &self.root, &e)),
        };
        for level1 in shard_dirs(top, &mut note) {
            let Some(middle) = list(&level1, &mut note) else {
                continue;
            };
            for leaf in shard_dirs(middle, &mut note) {
                let Some(files) = list(&leaf, &mut note) else {
                    continue;
                };
                for entry in files {
                    let entry = match entry {
                        Ok(entry) => entry,
                        Err(e) => {
                            note(storage_error("cannot list session folder", &leaf, &e));
                            continue;
                        }
                    };
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    let path = entry.path();
                    // DirEntry::metadata does not follow symlinks
                    let meta = match entry.metadata() {
                        Ok(m) if m.is_file() => m,
                        Ok(_) => continue,
                        Err(e) if is_absent(&e) => continue,
                        Err(e) => {
                            note(storage_error("cannot stat session file", &path, &e));
                            continue;
                        }
                    };
                    if name.starts_with(TEMP_PREFIX) {
                        if os::ctime(&meta) < stale_temp_before {
                            if let Err(e) = fs::remove_file(&path) {
                                if !is_absent(&e) {
                                    note(storage_error("cannot delete temp file", &path, &e));
                                }
                            }
                        }
                    } else if let Some(stripe) = entry_stripe(name, &leaf) {
                        if os::mtime(&meta) > now {
                            continue;
                        }
                        match self.collect(&path, &leaf, stripe, now) {
                            Ok(true) => removed += 1,
                            Ok(false) => {}
                            Err(e) => note(e),
                        }
                    }
                }
            }
        }
        match first_error {
            None => Ok(removed),
            Some(CoreError::Storage(m)) => Err(CoreError::Storage(format!(
                "{m} (gc removed {removed} expired sessions before failing)"
            ))),
            Some(e) => Err(e),
        }
    }

    /// Removes an entry found expired, unless a writer replaced it meanwhile: move it
    /// aside (atomic), check the moved file, and link a live one back (never over a
    /// newer write).
    fn collect(&self, path: &Path, leaf: &Path, stripe: usize, now: UnixNanos) -> Result<bool> {
        let stripe = &self.stripes[stripe];
        let _lock = stripe.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _busy = Busy::new(&stripe.generation);
        let grave = leaf.join(format!("{TEMP_PREFIX}gc-{}", random_hex()?));
        match fs::rename(path, &grave) {
            Ok(()) => {}
            Err(e) if is_absent(&e) => return Ok(false),
            Err(e) => return Err(storage_error("cannot delete session file", path, &e)),
        }
        let expired = fs::symlink_metadata(&grave).is_ok_and(|m| os::mtime(&m) <= now);
        if !expired {
            // a write landed between our stat and our rename: put it back
            match fs::hard_link(&grave, path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(_) => {
                    // no hard links on this filesystem: a plain rename back
                    let back = fs::rename(&grave, path);
                    return back
                        .map(|()| false)
                        .map_err(|e| storage_error("cannot restore session file", path, &e));
                }
            }
        }
        fs::remove_file(&grave)
            .map_err(|e| storage_error("cannot delete session file", &grave, &e))?;
        Ok(expired)
    }
}

/// Creates a uniquely named temp file in `dir`, creating the shard folders if missing.
fn create_temp(dir: &Path) -> Result<(PathBuf, File)> {
    let mut created_dirs = false;
    loop {
        let tmp = dir.join(format!("{TEMP_PREFIX}{}", random_hex()?));
        match os::create_new_private(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !created_dirs => {
                os::create_private_dirs(dir)
                    .map_err(|e| storage_error("cannot create session folder", dir, &e))?;
                created_dirs = true;
            }
            Err(e) => return Err(storage_error("cannot create session file in", dir, &e)),
        }
    }
}

/// Reads and checks the entry file at `path`.
fn load(path: &Path, now: UnixNanos) -> Result<Loaded> {
    let read_error = |e: &io::Error| storage_error("cannot read session file", path, e);
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if is_absent(&e) => return Ok(Loaded::Absent),
        Err(e) => return Err(read_error(&e)),
    };
    let meta = file.metadata().map_err(|e| read_error(&e))?;
    let expires_at = os::mtime(&meta);
    if !meta.is_file() || expires_at <= now || meta.len() > MAX_FILE_BYTES {
        return Ok(Loaded::Absent);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    match file.read_to_end(&mut bytes) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => return Ok(Loaded::Absent),
        Err(e) => return Err(read_error(&e)),
    }
    Ok(match record::decode(&bytes) {
        Some(value) => Loaded::Present {
            value: value.to_owned(),
            expires_at,
            validator: os::validator(&meta),
        },
        None => Loaded::Absent,
    })
}

/// Sets the mtime of a live entry file to `expires_at`: `Some((before, after))`
/// validators, or `None` when there is no live record there.
fn touch_file(
    path: &Path,
    now: UnixNanos,
    expires_at: UnixNanos,
) -> io::Result<Option<(Validator, fs::Metadata)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || os::mtime(&meta) <= now || meta.len() > MAX_FILE_BYTES {
        return Ok(None);
    }
    // the whole record is checked, like a read: touch never revives a damaged file
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    file.read_to_end(&mut bytes)?;
    if record::decode(&bytes).is_none() {
        return Ok(None);
    }
    file.set_times(FileTimes::new().set_modified(from_unix_nanos(expires_at)))?;
    let after = file.metadata()?;
    Ok(Some((os::validator(&meta), after)))
}

fn list(dir: &Path, note: &mut impl FnMut(CoreError)) -> Option<fs::ReadDir> {
    match fs::read_dir(dir) {
        Ok(entries) => Some(entries),
        Err(e) if is_absent(&e) => None,
        Err(e) => {
            note(storage_error("cannot list session folder", dir, &e));
            None
        }
    }
}

fn is_shard_name(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The shard folders (two lowercase hex digits) among `entries`.
fn shard_dirs(entries: fs::ReadDir, note: &mut impl FnMut(CoreError)) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir && entry.file_name().to_str().is_some_and(is_shard_name) {
                    dirs.push(entry.path());
                }
            }
            Err(e) => note(CoreError::Storage(format!(
                "cannot list session folder: {e}"
            ))),
        }
    }
    dirs
}

/// For an entry file name (64 lowercase hex, in the leaf its first 4 digits name), its
/// lock stripe; `None` for any other file.
fn entry_stripe(name: &str, leaf: &Path) -> Option<usize> {
    if name.len() != 64 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let l2 = leaf.file_name()?.to_str()?;
    let l1 = leaf.parent()?.file_name()?.to_str()?;
    if name[0..2] != *l1 || name[2..4] != *l2 {
        return None;
    }
    let byte = u8::from_str_radix(&name[4..6], 16).ok()?;
    Some(usize::from(byte) % STRIPES)
}

#[cfg(test)]
mod tests {
    use super::super::clock::OffsetClock;
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU32;

    const S: i64 = NANOS_PER_SEC;

    /// A temp folder removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "ferrosession-dirtest-{}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                random_hex().unwrap()
            ));
            fs::create_dir_all(&path).unwrap();
            Self(path)
        }
        fn join(&self, p: &str) -> PathBuf {
            self.0.join(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    struct Setup {
        dir: TempDir,
        clock: Arc<OffsetClock>,
    }

    impl Setup {
        fn new() -> Self {
            Self {
                dir: TempDir::new(),
                clock: Arc::new(OffsetClock::new(0)),
            }
        }
        fn root(&self) -> PathBuf {
            self.dir.join("sessions")
        }
        fn open(&self, cached: bool, shared: bool) -> DirectoryStorage {
            self.open_with(cached, shared, 60, 100_000)
        }
        fn open_with(
            &self,
            cached: bool,
            shared: bool,
            cache_ttl: u64,
            max: usize,
        ) -> DirectoryStorage {
            DirectoryStorage::new(
                self.root(),
                cached,
                Duration::from_secs(cache_ttl),
                shared,
                max,
            )
            .unwrap()
            .with_clock(self.clock.clone())
        }
        fn advance(&self, secs: i64) {
            self.clock.advance(secs * S);
        }
    }

    /// Every path under `root` with its kind, size and mtime.
    fn tree(root: &Path) -> BTreeMap<PathBuf, (bool, u64, UnixNanos)> {
        fn walk(p: &Path, out: &mut BTreeMap<PathBuf, (bool, u64, UnixNanos)>) {
            for e in fs::read_dir(p).unwrap() {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                out.insert(e.path(), (m.is_dir(), m.len(), os::mtime(&m)));
                if m.is_dir() {
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = BTreeMap::new();
        let m = fs::metadata(root).unwrap();
        out.insert(root.to_owned(), (true, 0, os::mtime(&m)));
        walk(root, &mut out);
        out
    }

    fn entry_files(root: &Path) -> Vec<PathBuf> {
        tree(root)
            .into_iter()
            .filter(|(p, (dir, _, _))| {
                !dir && !p.file_name().unwrap().to_str().unwrap().starts_with('.')
            })
            .map(|(p, _)| p)
            .collect()
    }

    fn temp_files(root: &Path) -> Vec<PathBuf> {
        tree(root)
            .into_keys()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(TEMP_PREFIX)
            })
            .collect()
    }

    #[test]
    fn round_trip_with_and_without_cache() {
        let s = Setup::new();
        for (cached, shared) in [(false, false), (true, false), (true, true)] {
            let st = s.open(cached, shared);
            let id = format!("id-{cached}-{shared}");
            assert_eq!(st.read(&id).unwrap(), None);
            st.write(&id, "{\"user\":\"jöhn\"}", 100).unwrap();
            assert_eq!(
                st.read(&id).unwrap().as_deref(),
                Some("{\"user\":\"jöhn\"}")
            );
            // a second instance (no cache yet) reads the file
            let other = s.open(false, false);
            assert_eq!(
                other.read(&id).unwrap().as_deref(),
                Some("{\"user\":\"jöhn\"}")
            );
        }
    }

    #[test]
    fn overwrite_with_a_shorter_value() {
        let s = Setup::new();
        let st = s.open(true, true);
        st.write("abc", &"x".repeat(1000), 100).unwrap();
        st.write("abc", "short", 100).unwrap();
        assert_eq!(st.read("abc").unwrap().as_deref(), Some("short"));
        assert_eq!(
            s.open(false, false).read("abc").unwrap().as_deref(),
            Some("short")
        );
        let path = st.entry_path("abc").unwrap();
        assert_eq!(fs::read(path).unwrap(), record::encode("short"));
        assert!(temp_files(&s.root()).is_empty());
    }

    #[test]
    fn invalidate_deletes_the_file_and_the_cache_entry() {
        let s = Setup::new();
        let st = s.open(true, false);
        st.write("abc", "v", 100).unwrap();
        assert!(st.read("abc").unwrap().is_some());
        st.invalidate("abc").unwrap();
        assert_eq!(st.read("abc").unwrap(), None);
        assert!(!st.entry_path("abc").unwrap().exists());
        st.invalidate("abc").unwrap(); // absent: nothing to do, no error
        st.invalidate("never-written").unwrap();
    }

    #[test]
    fn write_with_zero_ttl_deletes() {
        let s = Setup::new();
        let st = s.open(true, true);
        st.write("abc", "v", 100).unwrap();
        st.write("abc", "w", 0).unwrap();
        assert_eq!(st.read("abc").unwrap(), None);
        assert!(entry_files(&s.root()).is_empty());
    }

    #[test]
    fn entries_expire_by_the_injected_clock() {
        let s = Setup::new();
        for (cached, shared) in [(false, false), (true, false), (true, true)] {
            let st = s.open_with(cached, shared, 3600, 100);
            st.write("abc", "v", 10).unwrap();
            s.advance(9);
            assert_eq!(
                st.read("abc").unwrap().as_deref(),
                Some("v"),
                "{cached} {shared}"
            );
            s.advance(1);
            assert_eq!(st.read("abc").unwrap(), None, "{cached} {shared}");
            // expiry is the file's mtime
            let m = fs::metadata(st.entry_path("abc").unwrap()).unwrap();
            assert!(os::mtime(&m) <= s.clock.now());
            assert!(os::mtime(&m) > s.clock.now() - S);
            s.clock.set_offset(0);
        }
    }

    #[test]
    fn odd_ids_touch_no_file() {
        let s = Setup::new();
        let st = s.open(true, true);
        let fresh = tree(&s.root());
        assert_eq!(fresh.len(), 1, "a new folder is empty");
        let long = "a".repeat(200);
        let just_over = "b".repeat(129);
        let odd = [
            "../x",
            "a/b",
            "a\0b",
            "\0",
            &long,
            &just_over,
            "",
            ".",
            "..",
            "/",
            "/etc/passwd",
            "a b",
            "é",
            "a.b",
            "..\\x",
            "a\\b",
            "~",
            "%2e%2e",
        ];
        for id in odd {
            assert!(!is_valid_id(id), "{id:?}");
            assert_eq!(st.read(id).unwrap(), None);
            assert_eq!(st.read_without_io(id), Some(None));
            assert!(matches!(st.write(id, "v", 100), Err(CoreError::Config(_))));
            st.invalidate(id).unwrap();
            assert!(!st.touch(id, 100).unwrap());
            assert_eq!(st.entry_path(id), None);
        }
        assert_eq!(tree(&s.root()), fresh, "nothing created or changed");
        assert_eq!(st.io_counts(), IoCounts::default());
        // the edges of the valid range
        assert!(is_valid_id(&"a".repeat(128)));
        assert!(is_valid_id("-"));
        assert!(is_valid_id("_aZ09-"));
    }

    #[test]
    fn cache_hit_reads_no_file_and_ends_after_cache_ttl() {
        let s = Setup::new();
        let st = s.open_with(true, false, 60, 100);
        st.write("abc", "v", 3600).unwrap();
        // delete the file behind the back of an unshared cache: still served
        fs::remove_file(st.entry_path("abc").unwrap()).unwrap();
        for _ in 0..5 {
            assert_eq!(st.read("abc").unwrap().as_deref(), Some("v"));
            assert_eq!(st.read_without_io("abc"), Some(Some("v".to_owned())));
        }
        assert_eq!(st.io_counts(), IoCounts { opens: 0, stats: 0 });
        s.advance(59);
        assert_eq!(st.read("abc").unwrap().as_deref(), Some("v"));
        s.advance(1);
        assert_eq!(st.read("abc").unwrap(), None, "trusted for cache_ttl only");
        assert_eq!(st.io_counts().opens, 1);
    }

    #[test]
    fn read_fills_the_cache() {
        let s = Setup::new();
        s.open(false, false).write("abc", "v", 3600).unwrap();
        let st = s.open(true, false);
        assert_eq!(st.read("abc").unwrap().as_deref(), Some("v"));
        assert_eq!(st.read("abc").unwrap().as_deref(), Some("v"));
        assert_eq!(st.io_counts().opens, 1);
        assert_eq!(st.cache_len(), 1);
    }

    #[test]
    fn cache_hit_honours_entry_expiry() {
        let s = Setup::new();
        let st = s.open_with(true, false, 3600, 100);
        st.write("abc", "v", 5).unwrap();
        s.advance(4);
        assert_eq!(st.read("abc").unwrap().as_deref(), Some("v"));
        s.advance(1);
        assert_eq!(st.read_without_io("abc"), None);
        assert_eq!(st.read("abc").unwrap(), None);
    }

    #[test]
    fn shared_cache_revalidates_with_one_stat() {
        let s = Setup::new();
        let a = s.open(true, true);
        let b = s.open(true, true);
        a.write("abc", "v1", 3600).unwrap();
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v1"));
        assert_eq!(a.io_counts(), IoCounts { opens: 0, stats: 1 });
        assert_eq!(a.read_without_io("abc"), None, "shared hits need a stat");
        // another instance replaces it: the next read sees the new value
        b.write("abc", "v2", 3600).unwrap();
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v2"));
        assert_eq!(a.io_counts(), IoCounts { opens: 1, stats: 2 });
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v2"));
        assert_eq!(a.io_counts(), IoCounts { opens: 1, stats: 3 });
        // same size, same ttl, same clock reading: still a different file
        b.write("abc", "v3", 3600).unwrap();
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v3"));
        // delete + re-create (inode may be reused) of the same length
        b.invalidate("abc").unwrap();
        assert_eq!(a.read("abc").unwrap(), None);
        b.write("abc", "v4", 3600).unwrap();
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v4"));
        b.invalidate("abc").unwrap();
        b.write("abc", "v5", 3600).unwrap();
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v5"));
        // deleted by the other instance
        b.invalidate("abc").unwrap();
        assert_eq!(a.read("abc").unwrap(), None);
    }

    #[test]
    fn unshared_cache_trusts_its_entry() {
        let s = Setup::new();
        let a = s.open(true, false);
        let b = s.open(false, false);
        a.write("abc", "v1", 3600).unwrap();
        b.write("abc", "v2", 3600).unwrap();
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v1"), "by design");
        s.advance(60);
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v2"));
    }

    #[test]
    fn touch_extends_without_rewriting() {
        let s = Setup::new();
        let a = s.open_with(true, true, 3600, 100);
        let b = s.open_with(true, true, 3600, 100);
        a.write("abc", "value", 10).unwrap();
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("value"));
        let path = a.entry_path("abc").unwrap();
        let before = fs::metadata(&path).unwrap();
        s.advance(5);
        let t = s.clock.now();
        assert!(b.touch("abc", 100).unwrap());
        let after = fs::metadata(&path).unwrap();
        assert_eq!(
            os::validator(&before).ino,
            os::validator(&after).ino,
            "same file"
        );
        assert_eq!(fs::read(&path).unwrap(), record::encode("value"));
        let expiry = os::mtime(&after) - t;
        assert!(
            (100 * S..101 * S).contains(&expiry),
            "mtime = touch time + ttl"
        );
        s.advance(50); // past the first expiry, within the new one
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("value"));
        assert_eq!(b.read("abc").unwrap().as_deref(), Some("value"));
        // the toucher's own cache follows the touch without a read
        assert!(a.touch("abc", 1000).unwrap());
        s.advance(500);
        let opens = a.io_counts().opens;
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("value"));
        assert_eq!(a.io_counts().opens, opens);
        // absent and expired entries are not revived
        assert!(!a.touch("nope", 100).unwrap());
        s.advance(1000);
        assert!(!a.touch("abc", 100).unwrap());
        assert_eq!(a.read("abc").unwrap(), None);
        // a foreign file is not an entry, even with a live mtime
        fs::write(&path, b"not a record").unwrap();
        let live = FileTimes::new().set_modified(from_unix_nanos(s.clock.now() + 3600 * S));
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_times(live)
            .unwrap();
        assert!(!a.touch("abc", 100).unwrap());
    }

    #[test]
    fn corrupt_and_foreign_files_read_as_absent() {
        let s = Setup::new();
        let st = s.open(false, false);
        st.write("abc", "hello", 3600).unwrap();
        let path = st.entry_path("abc").unwrap();
        let times = FileTimes::new().set_modified(from_unix_nanos(s.clock.now() + 3600 * S));
        for bad in [
            &b""[..],
            b"hello",
            b"ferrosession 1 5 0000000000000000\nhello",
            b"ferrosession 1 6 2cf24dba5fb0a30e\nhello",
            b"ferrosession 9 5 2cf24dba5fb0a30e\nhello",
        ] {
            fs::write(&path, bad).unwrap();
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_times(times)
                .unwrap();
            assert_eq!(st.read("abc").unwrap(), None, "{bad:?}");
        }
        fs::write(&path, record::encode("hello")).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_times(times)
            .unwrap();
        assert_eq!(st.read("abc").unwrap().as_deref(), Some("hello"));
        // a folder where the file should be
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert_eq!(st.read("abc").unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_0600_and_folders_0700() {
        use std::os::unix::fs::PermissionsExt;
        let s = Setup::new();
        let st = s.open(false, false);
        st.write("abc", "v", 100).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&s.root()), 0o700);
        let file = st.entry_path("abc").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(mode(file.parent().unwrap().parent().unwrap()), 0o700);
        // layout: ROOT/ab/cd/<64 hex of sha256(id)>
        let name = hex::encode(Sha256::digest(b"abc"));
        assert_eq!(
            file,
            s.root().join(&name[..2]).join(&name[2..4]).join(&name)
        );
    }

    #[test]
    fn unwritable_folder_is_a_storage_error_with_the_path() {
        let s = Setup::new();
        // a folder whose parent is a regular file fails even for root
        fs::write(s.dir.join("file"), b"x").unwrap();
        let bad = s.dir.join("file").join("sessions");
        let e = DirectoryStorage::new(&bad, true, Duration::from_secs(60), true, 10).unwrap_err();
        match e {
            CoreError::Storage(m) => assert!(m.contains(&*bad.to_string_lossy()), "{m}"),
            other => panic!("{other:?}"),
        }
        // a shard folder blocked by a file
        let st = s.open(true, true);
        let path = st.entry_path("abc").unwrap();
        let level1 = path.parent().unwrap().parent().unwrap();
        fs::write(level1, b"x").unwrap();
        let before = tree(&s.root());
        match st.write("abc", "v", 100).unwrap_err() {
            CoreError::Storage(m) => {
                assert!(m.contains(&*level1.to_string_lossy()), "{m}");
                assert!(m.contains("os error"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(tree(&s.root()), before);
        assert_eq!(st.read("abc").unwrap(), None);
    }

    #[test]
    fn failed_rename_leaves_no_temp_file_and_the_old_value() {
        let s = Setup::new();
        let st = s.open(true, true);
        let path = st.entry_path("abc").unwrap();
        // a non-empty folder at the entry path: the rename fails
        fs::create_dir_all(path.join("x")).unwrap();
        let e = st.write("abc", "v", 100).unwrap_err();
        assert!(matches!(&e, CoreError::Storage(m) if m.contains(&*path.to_string_lossy())));
        assert!(temp_files(&s.root()).is_empty());
        assert_eq!(st.read("abc").unwrap(), None);
        assert_eq!(st.cache_len(), 0);
    }

    #[test]
    fn cache_is_bounded() {
        let s = Setup::new();
        let st = s.open_with(true, false, 60, 10);
        for i in 0..100 {
            st.write(&format!("id{i}"), "v", 100).unwrap();
            assert!(st.cache_len() <= 10);
        }
        for i in 0..100 {
            assert_eq!(st.read(&format!("id{i}")).unwrap().as_deref(), Some("v"));
            assert!(st.cache_len() <= 10);
        }
        assert_eq!(st.cache_len(), 10);
        // cache_max_entries = 0 or cached = false: no cache at all
        assert!(!s.open_with(true, false, 60, 0).cached());
        assert!(!s.open_with(false, false, 60, 10).cached());
    }

    #[test]
    fn gc_removes_expired_entries_and_stale_temp_files() {
        let s = Setup::new();
        let st = s.open(true, false);
        for i in 0..5 {
            st.write(&format!("short{i}"), "v", 10).unwrap();
        }
        for i in 0..3 {
            st.write(&format!("long{i}"), "v", 100).unwrap();
        }
        let leaf = st
            .entry_path("short0")
            .unwrap()
            .parent()
            .unwrap()
            .to_owned();
        fs::write(leaf.join(".tmp-crashed"), b"partial").unwrap();
        fs::write(leaf.join("README"), b"not ours").unwrap();
        assert_eq!(st.gc().unwrap(), 0, "nothing expired yet");
        s.advance(50);
        assert_eq!(st.gc().unwrap(), 5);
        assert_eq!(entry_files(&s.root()).len(), 4, "3 live + README");
        assert!(
            leaf.join(".tmp-crashed").exists(),
            "a recent temp file is kept"
        );
        for i in 0..3 {
            assert!(st.read(&format!("long{i}")).unwrap().is_some());
        }
        assert_eq!(st.gc().unwrap(), 0);
        s.advance(11 * 60);
        assert_eq!(st.gc().unwrap(), 3);
        assert!(
            temp_files(&s.root()).is_empty(),
            "a stale temp file is removed"
        );
        assert!(leaf.join("README").exists(), "foreign files are left alone");
        // an empty or missing folder
        assert_eq!(s.open(false, false).gc().unwrap(), 0);
    }

    #[test]
    fn gc_keeps_an_entry_rewritten_after_its_stat() {
        let s = Setup::new();
        let st = s.open(false, false);
        st.write("abc", "old", 10).unwrap();
        let path = st.entry_path("abc").unwrap();
        let leaf = path.parent().unwrap().to_owned();
        s.advance(20);
        // gc saw it expired; a writer then replaced it before gc moved it
        st.write("abc", "new", 100).unwrap();
        let stripe = entry_stripe(path.file_name().unwrap().to_str().unwrap(), &leaf).unwrap();
        assert!(!st.collect(&path, &leaf, stripe, s.clock.now()).unwrap());
        assert_eq!(st.read("abc").unwrap().as_deref(), Some("new"));
        assert!(temp_files(&s.root()).is_empty());
    }

    #[test]
    fn threads_share_ids_without_torn_or_stale_values() {
        fn value(writer: usize, n: usize) -> String {
            let body = format!(
                "w{writer}-n{n}-{}",
                "x".repeat((writer * 37 + n * 11) % 300)
            );
            format!(
                "{}|{body}",
                hex::encode(&Sha256::digest(body.as_bytes())[..4])
            )
        }
        fn check(v: &str) {
            let (sum, body) = v.split_once('|').expect("framed");
            assert_eq!(
                sum,
                hex::encode(&Sha256::digest(body.as_bytes())[..4]),
                "{v}"
            );
        }
        let s = Setup::new();
        for (cached, shared) in [(true, false), (true, true), (false, false)] {
            let st = Arc::new(s.open(cached, shared));
            let ids: Vec<String> = (0..8).map(|i| format!("id{i}")).collect();
            let handles: Vec<_> = (0..6)
                .map(|t| {
                    let st = Arc::clone(&st);
                    let ids = ids.clone();
                    std::thread::spawn(move || {
                        for n in 0..400 {
                            let id = &ids[(t + n) % ids.len()];
                            if n % 5 < 2 {
                                st.write(id, &value(t, n), 100).unwrap();
                            } else if n % 20 == 2 {
                                st.invalidate(id).unwrap();
                            } else if n % 5 == 3 {
                                st.touch(id, 200).unwrap();
                            }
                            if let Some(v) = st.read(id).unwrap() {
                                check(&v);
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            // the cache agrees with the files
            let fresh = s.open(false, false);
            for id in &ids {
                assert_eq!(st.read(id).unwrap(), fresh.read(id).unwrap(), "{id}");
            }
            assert!(temp_files(&s.root()).is_empty());
        }
    }

    #[test]
    fn shard_names_are_checked_by_gc() {
        assert!(is_shard_name("0f"));
        assert!(!is_shard_name("0F"));
        assert!(!is_shard_name("abc"));
        let leaf = Path::new("/r/ab/cd");
        let name = format!("abcd{}", "0".repeat(60));
        assert_eq!(entry_stripe(&name, leaf), Some(0));
        assert_eq!(entry_stripe(&name.replace("abcd", "abce"), leaf), None);
        assert_eq!(entry_stripe("abcd", leaf), None);
    }
}
