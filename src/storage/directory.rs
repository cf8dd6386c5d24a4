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
//! The owner index lives beside them in `ROOT/owners/ab/cd/<64 hex>/`: one folder per
//! owner (the hex SHA-256 of the owner, sharded the same way) holding one empty marker
//! file per key, named by the key in lowercase base32 (so keys differing only by case
//! stay apart) and whose mtime is the marker's expiry. `owners` is not two hex digits,
//! so it can never be a shard folder.
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
//! write), so it can run while other processes use the folder. It sweeps the owner
//! index the same way (expired markers), and removes owner folders that have been
//! empty for `STALE_TEMP`.

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

/// The folder of the owner index, beside the shard folders (which are two hex digits,
/// so never this name).
const OWNERS_DIR: &str = "owners";

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

impl Stripe {
    /// Takes the stripe for a write, invalidation or touch: its lock, and busy (odd
    /// generation), until the returned guard is dropped.
    fn change(&self) -> Change<'_> {
        let lock = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        Change {
            _busy: Busy::new(&self.generation),
            _lock: lock,
        }
    }
}

/// A stripe taken for a change. Fields drop in order: the stripe is marked idle again
/// before its lock is released.
struct Change<'a> {
    _busy: Busy<'a>,
    _lock: MutexGuard<'a, ()>,
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
    /// hit without `shared`), else `None`. The bindings try this before releasing the
    /// GIL for a full `read`.
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
        if self.shared || self.cache.is_none() {
            return None;
        }
        let now = self.clock.now();
        self.read_cache(id)
            .map(|(value, expires_at)| Some((value, remaining(expires_at, now))))
    }

    /// A cache hit (revalidated when `shared`): the value and its expiry.
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
        Some((hit.value.to_string(), hit.expires_at))
    }

    fn read_file(&self, id: &str) -> Result<Option<(String, UnixNanos)>> {
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
        let stripe = &self.stripes[loc.stripe];
        let _change = stripe.change();
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl_nanos(ttl_secs));
        let file = self.write_file(&loc.path, value, expires_at)?;
        self.cache_written(id, value, &file, loc.path, now);
        Ok(())
    }

    /// Puts the value just written as `file` (now the entry at `path`) in the cache.
    fn cache_written(&self, id: &str, value: &str, file: &File, path: PathBuf, now: UnixNanos) {
        if self.cache.is_none() {
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
                    path: Arc::from(path),
                };
                self.lock_cache().insert(id, entry, now);
            }
            Err(_) => self.forget(id),
        }
    }

    /// Writes the record to a temp file and renames it over `path`; returns the
    /// (still open) file that is now the entry.
    fn write_file(&self, path: &Path, value: &str, expires_at: UnixNanos) -> Result<File> {
        let dir = path.parent().expect("entry paths have a folder");
        let (tmp, file) = write_temp(dir, &record::encode(value), expires_at, true)?
            .expect("the folder is created when missing");
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
        let stripe = &self.stripes[loc.stripe];
        let _change = stripe.change();
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
            match move_no_replace(&tmp, &loc.path) {
                Ok(()) => {
                    self.cache_written(id, value, &file, loc.path, now);
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
                    let doomed = |grave: &Path| {
                        fs::symlink_metadata(grave).is_ok_and(|m| m.is_file())
                            && matches!(live_at(grave, now), Ok(None))
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
    /// `write`. A false return leaves nothing cached for `id`.
    pub fn update(&self, id: &str, value: &str, ttl_secs: u64) -> Result<bool> {
        check_id(id)?;
        if ttl_secs == 0 {
            self.invalidate(id)?;
            return Ok(false);
        }
        let loc = self.locate(id);
        let dir = loc.path.parent().expect("entry paths have a folder");
        let stripe = &self.stripes[loc.stripe];
        let _change = stripe.change();
        let now = self.clock.now();
        let expires_at = now.saturating_add(ttl_nanos(ttl_secs));
        let updated = self.update_file(&loc.path, dir, value, expires_at, now);
        match updated {
            Ok(Some(file)) => {
                self.cache_written(id, value, &file, loc.path, now);
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
    ) -> Result<Option<File>> {
        // no shard folder: no entry (and nothing to create)
        let Some((tmp, file)) = write_temp(dir, &record::encode(value), expires_at, false)? else {
            return Ok(None);
        };
        let write_error = |e: &io::Error| storage_error("cannot write session file", path, e);
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
        // unreadable or missing counts as not live: update never revives
        let was_live = matches!(live_at(&tmp, now), Ok(Some(_)));
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
        let is_ours = |grave: &Path| {
            fs::symlink_metadata(grave).is_ok_and(|m| {
                let v = os::validator(&m);
                (v.dev, v.ino) == (ours.dev, ours.ino)
            })
        };
        take_if(path, dir, is_ours)?;
        Ok(None)
    }

    /// Deletes the entry of `id`; returns true when it was live (what `read` would
    /// have returned). False for an absent entry or an invalid id (no file touched).
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
        let stripe = &self.stripes[loc.stripe];
        let _change = stripe.change();
        let now = self.clock.now();
        let removed = remove_entry(&loc.path, dir, now);
        self.forget(id);
        removed
    }

    /// Makes the entry of `id` expire `ttl_secs` seconds from now without rewriting
    /// it (sets the file's mtime). Returns false when there is no live entry.
    pub fn touch(&self, id: &str, ttl_secs: u64) -> Result<bool> {
        if !is_valid_id(id) {
            return Ok(false);
        }
        let loc = self.locate(id);
        let stripe = &self.stripes[loc.stripe];
        let _change = stripe.change();
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

    /// The folder holding the index markers of `owner` (a valid id).
    fn owner_dir(&self, owner: &str) -> PathBuf {
        let name = hex::encode(Sha256::digest(owner.as_bytes()));
        self.root
            .join(OWNERS_DIR)
            .join(&name[0..2])
            .join(&name[2..4])
            .join(&name)
    }

    /// The index folder of `owner`, or `None` for an invalid owner (for tests and
    /// tools).
    pub fn owner_path(&self, owner: &str) -> Option<PathBuf> {
        is_valid_id(owner).then(|| self.owner_dir(owner))
    }

    /// Records that `key` belongs to `owner` for `ttl_secs` seconds (a later add of the
    /// same pair sets the new lifetime; 0 removes the pair). The marker
    /// `OWNER_DIR/<base32 of key>` is an empty file whose mtime is its expiry, written
    /// like an entry (temp file, then rename). An invalid owner or key is
    /// `CoreError::Config` (they are made by the server) and touches no file.
    pub fn index_add(&self, owner: &str, key: &str, ttl_secs: u64) -> Result<()> {
        for (what, id) in [("owner", owner), ("session key", key)] {
            if !is_valid_id(id) {
                return Err(invalid_id(what, id));
            }
        }
        if ttl_secs == 0 {
            return self.index_remove(owner, key);
        }
        let dir = self.owner_dir(owner);
        let marker = dir.join(base32_encode(key.as_bytes()));
        let expires_at = self.clock.now().saturating_add(ttl_nanos(ttl_secs));
        let (tmp, file) =
            write_temp(&dir, b"", expires_at, true)?.expect("the folder is created when missing");
        drop(file);
        fs::rename(&tmp, &marker).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            storage_error("cannot write index file", &marker, &e)
        })
    }

    /// Forgets that `key` belongs to `owner` (nothing when it was not recorded, or
    /// for an invalid owner or key).
    pub fn index_remove(&self, owner: &str, key: &str) -> Result<()> {
        if !is_valid_id(owner) || !is_valid_id(key) {
            return Ok(());
        }
        let marker = self.owner_dir(owner).join(base32_encode(key.as_bytes()));
        match fs::remove_file(&marker) {
            Err(e) if !is_absent(&e) => Err(storage_error("cannot delete index file", &marker, &e)),
            _ => Ok(()),
        }
    }

    /// The keys recorded for `owner` whose index lifetime has not passed (in no
    /// particular order; their entries may be gone already). Empty for an unknown or
    /// invalid owner.
    pub fn index_list(&self, owner: &str) -> Result<Vec<String>> {
        if !is_valid_id(owner) {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let dir = self.owner_dir(owner);
        let list_error = |e: &io::Error| storage_error("cannot list index folder", &dir, e);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(list_error(&e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| list_error(&e))?;
            let Some(key) = entry.file_name().to_str().and_then(marker_key) else {
                continue;
            };
            match entry.metadata() {
                Ok(m) if m.is_file() && os::mtime(&m) > now => keys.push(key),
                Ok(_) => {}
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(storage_error("cannot stat index file", &entry.path(), &e)),
            }
        }
        Ok(keys)
    }

    /// Deletes expired entries, and temp files left by crashed writers (older than
    /// `STALE_TEMP`); returns how many entries it deleted. It also deletes expired
    /// owner-index markers (not counted). Errors on single files do not stop the
    /// sweep; the first one is returned at the end.
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
        // shard folders are two hex digits: never OWNERS_DIR
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
                            remove_quietly(&path, &mut note);
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
        self.gc_index(now, &mut note);
        match first_error {
            None => Ok(removed),
            Some(CoreError::Storage(m)) => Err(CoreError::Storage(format!(
                "{m} (gc removed {removed} expired sessions before failing)"
            ))),
            Some(e) => Err(e),
        }
    }

    /// The index part of `gc`: deletes expired markers and stale temp files, and
    /// owner folders left empty for `STALE_TEMP` (an `index_add` that finds its folder
    /// gone creates it again).
    fn gc_index(&self, now: UnixNanos, note: &mut impl FnMut(CoreError)) {
        let stale_before = now.saturating_sub(duration_nanos(STALE_TEMP));
        let owners = self.root.join(OWNERS_DIR);
        let Some(top) = list(&owners, note) else {
            return;
        };
        for level1 in shard_dirs(top, note) {
            let Some(middle) = list(&level1, note) else {
                continue;
            };
            for level2 in shard_dirs(middle, note) {
                let Some(owner_dirs) = list(&level2, note) else {
                    continue;
                };
                for owner_dir in owner_dirs {
                    let owner_dir = match owner_dir {
                        Ok(d) if d.file_type().is_ok_and(|t| t.is_dir()) => d.path(),
                        Ok(_) => continue,
                        Err(e) => {
                            note(storage_error("cannot list index folder", &level2, &e));
                            continue;
                        }
                    };
                    self.gc_owner(&owner_dir, now, stale_before, note);
                }
            }
        }
    }

    fn gc_owner(
        &self,
        dir: &Path,
        now: UnixNanos,
        stale_before: UnixNanos,
        note: &mut impl FnMut(CoreError),
    ) {
        let Some(files) = list(dir, note) else {
            return;
        };
        let mut left = 0usize;
        for entry in files {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    note(storage_error("cannot list index folder", dir, &e));
                    left += 1;
                    continue;
                }
            };
            let name = entry.file_name();
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if is_absent(&e) => continue,
                Err(e) => {
                    note(storage_error("cannot stat index file", &path, &e));
                    left += 1;
                    continue;
                }
            };
            let name = name.to_str().unwrap_or("");
            let gone = if !meta.is_file() {
                false
            } else if name.starts_with(TEMP_PREFIX) {
                os::ctime(&meta) < stale_before && remove_quietly(&path, note)
            } else if marker_key(name).is_some() && os::mtime(&meta) <= now {
                let expired =
                    |grave: &Path| fs::symlink_metadata(grave).is_ok_and(|m| os::mtime(&m) <= now);
                match take_if(&path, dir, expired) {
                    Ok(Taken::Removed | Taken::Absent) => true,
                    Ok(Taken::Kept) => false,
                    Err(e) => {
                        note(e);
                        false
                    }
                }
            } else {
                false
            };
            if !gone {
                left += 1;
            }
        }
        if left == 0 {
            let idle = fs::symlink_metadata(dir).is_ok_and(|m| os::mtime(&m) < stale_before);
            if idle {
                // fails (and is left) when an index_add put a file in meanwhile
                let _ = fs::remove_dir(dir);
            }
        }
    }

    /// Removes an entry found expired, unless a writer replaced it meanwhile: move it
    /// aside (atomic), check the moved file, and put a live one back (never over a
    /// newer write).
    fn collect(&self, path: &Path, leaf: &Path, stripe: usize, now: UnixNanos) -> Result<bool> {
        let stripe = &self.stripes[stripe];
        let _change = stripe.change();
        let expired =
            |grave: &Path| fs::symlink_metadata(grave).is_ok_and(|m| os::mtime(&m) <= now);
        Ok(matches!(take_if(path, leaf, expired)?, Taken::Removed))
    }
}

/// `CoreError::Config` for a session key (or owner) outside `[A-Za-z0-9_-]{1,128}`.
fn invalid_id(what: &str, id: &str) -> CoreError {
    let shown: String = id.chars().take(40).collect();
    CoreError::Config(format!(
        "invalid {what} {shown:?}: a storage id is 1 to {MAX_ID_LEN} characters \
         of A-Z, a-z, 0-9, '_' and '-'"
    ))
}

fn check_id(id: &str) -> Result<()> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(invalid_id("session id", id))
    }
}

/// The time left until `expires_at` (at least 1 ns: the caller saw it live).
fn remaining(expires_at: UnixNanos, now: UnixNanos) -> Duration {
    Duration::from_nanos(expires_at.saturating_sub(now).max(1).unsigned_abs())
}

/// Creates a uniquely named temp file in `dir`, creating the shard folders if missing
/// and `make_dirs` (else `None` when `dir` is missing).
fn create_temp(dir: &Path, make_dirs: bool) -> Result<Option<(PathBuf, File)>> {
    let mut tries = 0;
    loop {
        let tmp = dir.join(format!("{TEMP_PREFIX}{}", random_hex()?));
        match os::create_new_private(&tmp) {
            Ok(file) => return Ok(Some((tmp, file))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !make_dirs => return Ok(None),
            // a gc may remove an empty owner folder just after we made it: try again
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 3 => {
                os::create_private_dirs(dir)
                    .map_err(|e| storage_error("cannot create session folder", dir, &e))?;
                tries += 1;
            }
            Err(e) => return Err(storage_error("cannot create session file in", dir, &e)),
        }
    }
}

/// A temp file in `dir` holding `bytes` with its mtime set to `expires_at` (see
/// `create_temp` for `make_dirs`). The file is removed on failure.
fn write_temp(
    dir: &Path,
    bytes: &[u8],
    expires_at: UnixNanos,
    make_dirs: bool,
) -> Result<Option<(PathBuf, File)>> {
    let Some((tmp, mut file)) = create_temp(dir, make_dirs)? else {
        return Ok(None);
    };
    let done = file
        .write_all(bytes)
        .and_then(|()| file.set_times(FileTimes::new().set_modified(from_unix_nanos(expires_at))));
    match done {
        Ok(()) => Ok(Some((tmp, file))),
        Err(e) => {
            drop(file);
            let _ = fs::remove_file(&tmp);
            Err(storage_error("cannot write session file in", dir, &e))
        }
    }
}

/// The atomic rename variants of `renameat2` (Linux) and `renameatx_np` (macOS).
#[derive(Debug, Clone, Copy)]
enum Swap {
    /// Fails with `AlreadyExists` when the target exists.
    NoReplace,
    /// Exchanges two existing paths; fails with `NotFound` when either is missing.
    Exchange,
}

/// Renames `from` to `to` the `how` way; `Unsupported` where the system or the
/// filesystem does not offer it.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn rename_with(from: &Path, to: &Path, how: Swap) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    let flags = match how {
        Swap::NoReplace => RenameFlags::NOREPLACE,
        Swap::Exchange => RenameFlags::EXCHANGE,
    };
    match renameat_with(CWD, from, CWD, to, flags) {
        Ok(()) => Ok(()),
        Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::NOTSUP => {
            Err(io::ErrorKind::Unsupported.into())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn rename_with(_from: &Path, _to: &Path, _how: Swap) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Moves `from` to `to` unless something is at `to` (`AlreadyExists`): a no-replace
/// rename, or a hard link (which never replaces) and an unlink where that is missing.
fn move_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    match rename_with(from, to, Swap::NoReplace) {
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            fs::hard_link(from, to)?;
            // a failure leaves a second link gc removes later
            let _ = fs::remove_file(from);
            Ok(())
        }
        done => done,
    }
}

/// The metadata of `file` when it holds a live record (what a read would return);
/// the whole record is checked, so a damaged file is never live.
fn live_file(file: &mut File, now: UnixNanos) -> io::Result<Option<fs::Metadata>> {
    let meta = file.metadata()?;
    if !meta.is_file() || os::mtime(&meta) <= now || meta.len() > MAX_FILE_BYTES {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    file.read_to_end(&mut bytes)?;
    Ok(record::decode(&bytes).is_some().then_some(meta))
}

/// `live_file` of the file at `path` (`None` when absent).
fn live_at(path: &Path, now: UnixNanos) -> io::Result<Option<fs::Metadata>> {
    match File::open(path) {
        Ok(mut file) => live_file(&mut file, now),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `take_if` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// Nothing was at the path.
    Absent,
    /// The file there was doomed and is deleted.
    Removed,
    /// The file there was not doomed: it is back in place (or a newer one is).
    Kept,
}

/// Deletes the file at `path` if `doomed` says so of it, without ever deleting a file
/// put there by a concurrent writer: the file is moved aside (atomically) to a temp
/// name in `dir`, `doomed` looks at the moved file, and a file it spares goes back
/// with a no-replace move (a newer write that took its place meanwhile wins).
fn take_if(path: &Path, dir: &Path, doomed: impl FnOnce(&Path) -> bool) -> Result<Taken> {
    let grave = dir.join(format!("{TEMP_PREFIX}gc-{}", random_hex()?));
    match fs::rename(path, &grave) {
        Ok(()) => {}
        Err(e) if is_absent(&e) => return Ok(Taken::Absent),
        Err(e) => return Err(storage_error("cannot delete session file", path, &e)),
    }
    if doomed(&grave) {
        fs::remove_file(&grave)
            .map_err(|e| storage_error("cannot delete session file", &grave, &e))?;
        return Ok(Taken::Removed);
    }
    match move_no_replace(&grave, path) {
        Ok(()) => Ok(Taken::Kept),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&grave);
            Ok(Taken::Kept)
        }
        Err(_) => {
            // no hard links on this filesystem: a plain rename back
            fs::rename(&grave, path)
                .map(|()| Taken::Kept)
                .map_err(|e| storage_error("cannot restore session file", path, &e))
        }
    }
}

/// The file work of `invalidate`: moves the entry aside, checks it, deletes it.
fn remove_entry(path: &Path, dir: &Path, now: UnixNanos) -> Result<bool> {
    let delete_error = |e: &io::Error| storage_error("cannot delete session file", path, e);
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            // as an unlink would: an error, and the folder stays
            return fs::remove_file(path)
                .map(|()| false)
                .map_err(|e| delete_error(&e));
        }
        Ok(_) => {}
        Err(e) if is_absent(&e) => return Ok(false),
        Err(e) => return Err(delete_error(&e)),
    }
    let grave = dir.join(format!("{TEMP_PREFIX}rm-{}", random_hex()?));
    match fs::rename(path, &grave) {
        Ok(()) => {}
        Err(e) if is_absent(&e) => return Ok(false),
        Err(e) => return Err(delete_error(&e)),
    }
    // an unreadable file still goes; it was not a live entry to anyone
    let live = matches!(live_at(&grave, now), Ok(Some(_)));
    fs::remove_file(&grave).map_err(|e| storage_error("cannot delete session file", &grave, &e))?;
    Ok(live)
}

/// `update` where the exchange is missing: move the entry aside, check it, and rename
/// the new record in. Readers may see no entry between the two renames.
fn update_by_moving(
    path: &Path,
    dir: &Path,
    tmp: &Path,
    file: File,
    now: UnixNanos,
) -> Result<Option<File>> {
    let write_error = |e: &io::Error| storage_error("cannot write session file", path, e);
    let grave = match random_hex() {
        Ok(hex) => dir.join(format!("{TEMP_PREFIX}up-{hex}")),
        Err(e) => {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
    };
    match fs::rename(path, &grave) {
        Ok(()) => {}
        Err(e) => {
            let _ = fs::remove_file(tmp);
            return if is_absent(&e) {
                Ok(None)
            } else {
                Err(write_error(&e))
            };
        }
    }
    let was_live = matches!(live_at(&grave, now), Ok(Some(_)));
    let moved = if was_live {
        fs::rename(tmp, path).map_err(|e| write_error(&e))
    } else {
        Ok(())
    };
    let _ = fs::remove_file(tmp);
    let _ = fs::remove_file(&grave);
    moved.map(|()| was_live.then_some(file))
}

/// Removes a file, noting errors other than its absence; true when it is gone.
fn remove_quietly(path: &Path, note: &mut impl FnMut(CoreError)) -> bool {
    match fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if is_absent(&e) => true,
        Err(e) => {
            note(storage_error("cannot delete temp file", path, &e));
            false
        }
    }
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Unpadded lowercase RFC 4648 base32: index marker names, so that keys differing
/// only by case stay apart on case-insensitive filesystems (128 bytes → 205 chars).
fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The inverse of `base32_encode`; `None` for any other text (also non-canonical).
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = BASE32.iter().position(|&a| a == c)?;
        buffer = (buffer << 5) | u32::try_from(v).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    // leftover bits must be zero padding of less than one byte
    (bits < 5 && buffer & ((1 << bits) - 1) == 0).then_some(out)
}

/// The key an index marker file name stands for (`None` for any other file).
fn marker_key(name: &str) -> Option<String> {
    let key = String::from_utf8(base32_decode(name)?).ok()?;
    (is_valid_id(&key) && base32_encode(key.as_bytes()) == name).then_some(key)
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
    // the whole record is checked, like a read: touch never revives a damaged file
    let Some(meta) = live_file(&mut file, now)? else {
        return Ok(None);
    };
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
    fn invalidate_tells_whether_a_live_entry_was_deleted() {
        let s = Setup::new();
        let st = s.open(true, true);
        assert!(!st.invalidate("abc").unwrap(), "absent");
        st.write("abc", "v", 10).unwrap();
        assert!(st.invalidate("abc").unwrap());
        assert!(!st.entry_path("abc").unwrap().exists());
        assert!(!st.invalidate("abc").unwrap());
        // expired: deleted all the same, but it was not live
        st.write("abc", "v", 10).unwrap();
        s.advance(10);
        assert!(!st.invalidate("abc").unwrap());
        assert!(!st.entry_path("abc").unwrap().exists());
        // damaged: not live either
        st.write("abc", "v", 100).unwrap();
        let path = st.entry_path("abc").unwrap();
        let live = FileTimes::new().set_modified(from_unix_nanos(s.clock.now() + 100 * S));
        fs::write(&path, b"garbage").unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_times(live)
            .unwrap();
        assert!(!st.invalidate("abc").unwrap());
        assert!(!path.exists());
        assert!(temp_files(&s.root()).is_empty());
        // a folder in the way is an error, as before, and stays
        fs::create_dir(&path).unwrap();
        assert!(matches!(st.invalidate("abc"), Err(CoreError::Storage(_))));
        assert!(path.is_dir());
    }

    #[test]
    fn create_stores_only_when_no_live_entry() {
        let s = Setup::new();
        let a = s.open(true, true);
        let b = s.open(true, true);
        assert!(a.create("abc", "first", 10).unwrap());
        assert_eq!(b.read("abc").unwrap().as_deref(), Some("first"));
        assert!(!b.create("abc", "second", 10).unwrap());
        assert!(!a.create("abc", "second", 10).unwrap());
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("first"));
        assert_eq!(b.read("abc").unwrap().as_deref(), Some("first"));
        let path = a.entry_path("abc").unwrap();
        assert_eq!(fs::read(&path).unwrap(), record::encode("first"));
        // an expired entry counts as absent and is replaced
        s.advance(10);
        assert!(b.create("abc", "third", 100).unwrap());
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("third"));
        let opens = b.io_counts().opens;
        assert_eq!(b.read("abc").unwrap().as_deref(), Some("third"));
        assert_eq!(b.io_counts().opens, opens, "the creator's cache has it");
        // so does a damaged one
        fs::write(&path, b"garbage").unwrap();
        let live = FileTimes::new().set_modified(from_unix_nanos(s.clock.now() + 100 * S));
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_times(live)
            .unwrap();
        assert!(a.create("abc", "fourth", 100).unwrap());
        assert_eq!(b.read("abc").unwrap().as_deref(), Some("fourth"));
        // after an invalidate
        assert!(a.invalidate("abc").unwrap());
        assert!(b.create("abc", "fifth", 100).unwrap());
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("fifth"));
        // ttl 0 stores nothing
        assert!(!a.create("zero", "v", 0).unwrap());
        assert!(!a.entry_path("zero").unwrap().exists());
        // something that is not a file in the way
        assert!(a.invalidate("abc").unwrap());
        fs::create_dir_all(path.join("x")).unwrap();
        assert!(matches!(
            a.create("abc", "v", 100),
            Err(CoreError::Storage(_))
        ));
        assert!(temp_files(&s.root()).is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = a.entry_path("new").unwrap();
            assert!(a.create("new", "v", 100).unwrap());
            assert_eq!(fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn concurrent_creates_have_exactly_one_winner() {
        let s = Setup::new();
        for round in 0..20 {
            let id = format!("race{round}");
            // separate instances: no shared lock stripe, only the filesystem decides
            let wins: usize = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..4)
                    .map(|t| {
                        let st = s.open(true, true);
                        let id = id.clone();
                        scope.spawn(move || {
                            usize::from(st.create(&id, &format!("t{t}"), 100).unwrap())
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(wins, 1, "{id}");
        }
        assert!(temp_files(&s.root()).is_empty());
    }

    #[test]
    fn update_replaces_only_a_live_entry() {
        let s = Setup::new();
        let a = s.open(true, true);
        let b = s.open(true, true);
        let before = tree(&s.root());
        assert!(!a.update("abc", "v", 100).unwrap(), "absent");
        assert_eq!(tree(&s.root()), before, "no folder made for nothing");
        a.write("abc", "v1", 10).unwrap();
        let path = a.entry_path("abc").unwrap();
        assert_eq!(b.read("abc").unwrap().as_deref(), Some("v1"));
        assert!(a.update("abc", "v2", 100).unwrap());
        assert_eq!(b.read("abc").unwrap().as_deref(), Some("v2"));
        assert_eq!(fs::read(&path).unwrap(), record::encode("v2"));
        let expiry = os::mtime(&fs::metadata(&path).unwrap()) - s.clock.now();
        assert!((99 * S..=100 * S).contains(&expiry), "the new ttl");
        assert!(b.update("abc", "v3", 100).unwrap());
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v3"));
        // after an invalidate: not brought back, nothing cached
        assert!(b.invalidate("abc").unwrap());
        assert!(!a.update("abc", "v4", 100).unwrap());
        assert_eq!(a.cache_len(), 0);
        assert!(!path.exists());
        assert_eq!(b.read("abc").unwrap(), None);
        // expired: not brought back, and both files are gone
        a.write("abc", "v5", 10).unwrap();
        assert_eq!(a.cache_len(), 1);
        s.advance(10);
        assert!(!a.update("abc", "v6", 100).unwrap());
        assert_eq!(a.cache_len(), 0);
        assert!(!path.exists());
        assert_eq!(a.read("abc").unwrap(), None);
        assert_eq!(b.read("abc").unwrap(), None);
        // damaged: not live
        a.write("abc", "v7", 100).unwrap();
        fs::write(&path, b"garbage").unwrap();
        let live = FileTimes::new().set_modified(from_unix_nanos(s.clock.now() + 100 * S));
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_times(live)
            .unwrap();
        assert!(!b.update("abc", "v8", 100).unwrap());
        assert!(!path.exists());
        // ttl 0 deletes a live entry
        a.write("abc", "v9", 100).unwrap();
        assert!(!a.update("abc", "v", 0).unwrap());
        assert_eq!(b.read("abc").unwrap(), None);
        // a folder in the way is swapped back, untouched
        fs::create_dir_all(path.join("x")).unwrap();
        assert!(!a.update("abc", "v", 100).unwrap());
        assert!(path.join("x").is_dir());
        assert!(temp_files(&s.root()).is_empty());
        // invalid ids are a caller bug, as for write
        assert!(matches!(a.update("a/b", "v", 1), Err(CoreError::Config(_))));
        assert!(matches!(a.create("a/b", "v", 1), Err(CoreError::Config(_))));
    }

    #[test]
    fn the_kernel_renames_behave_as_update_and_create_need() {
        let s = Setup::new();
        let (a, b) = (s.dir.join("a"), s.dir.join("b"));
        fs::write(&a, b"A").unwrap();
        fs::write(&b, b"B").unwrap();
        match rename_with(&a, &b, Swap::Exchange) {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                eprintln!("no RENAME_EXCHANGE here: the fallbacks are used");
                return;
            }
            done => done.unwrap(),
        }
        assert_eq!(fs::read(&a).unwrap(), b"B");
        assert_eq!(fs::read(&b).unwrap(), b"A");
        let gone = s.dir.join("gone");
        let e = rename_with(&a, &gone, Swap::Exchange).unwrap_err();
        assert!(is_absent(&e), "{e}");
        let e = rename_with(&a, &b, Swap::NoReplace).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"A");
        move_no_replace(&a, &gone).unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read(&gone).unwrap(), b"B");
    }

    #[test]
    fn update_without_the_exchange_moves_aside() {
        let s = Setup::new();
        let st = s.open(false, false);
        st.write("abc", "old", 100).unwrap();
        let path = st.entry_path("abc").unwrap();
        let dir = path.parent().unwrap().to_owned();
        let now = s.clock.now();
        let temp = |v: &str| {
            write_temp(&dir, &record::encode(v), now + 50 * S, false)
                .unwrap()
                .unwrap()
        };
        let (tmp, file) = temp("new");
        assert!(update_by_moving(&path, &dir, &tmp, file, now)
            .unwrap()
            .is_some());
        assert_eq!(st.read("abc").unwrap().as_deref(), Some("new"));
        let (tmp, file) = temp("newer");
        let later = now + 60 * S;
        assert!(update_by_moving(&path, &dir, &tmp, file, later)
            .unwrap()
            .is_none());
        assert!(!path.exists(), "an expired entry is not revived");
        let (tmp, file) = temp("newest");
        assert!(update_by_moving(&path, &dir, &tmp, file, now)
            .unwrap()
            .is_none());
        assert!(!path.exists());
        assert!(temp_files(&s.root()).is_empty());
    }

    #[test]
    fn take_if_never_deletes_a_newer_write() {
        let s = Setup::new();
        let dir = s.dir.join("d");
        fs::create_dir(&dir).unwrap();
        let path = dir.join("f");
        assert_eq!(take_if(&path, &dir, |_| true).unwrap(), Taken::Absent);
        fs::write(&path, b"old").unwrap();
        assert_eq!(take_if(&path, &dir, |_| false).unwrap(), Taken::Kept);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        // a writer puts a new file there while the old one is aside
        let kept = take_if(&path, &dir, |_| {
            fs::write(&path, b"new").unwrap();
            false
        });
        assert_eq!(kept.unwrap(), Taken::Kept);
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(take_if(&path, &dir, |_| true).unwrap(), Taken::Removed);
        assert!(!path.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "no grave left");
    }

    #[test]
    fn racing_updates_never_undo_an_invalidate() {
        let s = Setup::new();
        for round in 0..30 {
            let id = format!("k{round}");
            let setup = s.open(true, true);
            assert!(setup.create(&id, "start", 100).unwrap());
            let done = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|scope| {
                for t in 0..3 {
                    let st = s.open(true, true);
                    let (id, done) = (&id, &done);
                    scope.spawn(move || {
                        let mut n = 0;
                        while !done.load(Ordering::Acquire) || n < 5 {
                            if !st.update(id, &format!("t{t}-{n}"), 100).unwrap() {
                                break;
                            }
                            n += 1;
                        }
                    });
                }
                let killer = s.open(true, true);
                std::thread::sleep(Duration::from_micros(200));
                assert!(killer.invalidate(&id).unwrap());
                done.store(true, Ordering::Release);
            });
            assert_eq!(setup.read(&id).unwrap(), None, "{id} came back");
            assert_eq!(s.open(false, false).read(&id).unwrap(), None);
        }
        assert!(temp_files(&s.root()).is_empty());
    }

    #[test]
    fn read_ttl_gives_the_time_left() {
        let s = Setup::new();
        let a = s.open_with(true, true, 3600, 100);
        let b = s.open_with(true, true, 3600, 100);
        assert_eq!(a.read_ttl("abc").unwrap(), None);
        assert_eq!(a.read_ttl("a/b").unwrap(), None);
        a.write("abc", "v", 100).unwrap();
        s.advance(40);
        let opens = a.io_counts().opens;
        let (value, left) = a.read_ttl("abc").unwrap().unwrap();
        assert_eq!(value, "v");
        assert!(
            (Duration::from_secs(59)..=Duration::from_secs(60)).contains(&left),
            "{left:?}"
        );
        assert_eq!(a.io_counts().opens, opens, "from the cache");
        // another instance extends it: the revalidated hit sees the new expiry
        assert!(b.touch("abc", 500).unwrap());
        let (_, left) = a.read_ttl("abc").unwrap().unwrap();
        assert!(left > Duration::from_secs(499), "{left:?}");
        assert_eq!(a.io_counts().opens, opens + 1);
        s.advance(500);
        assert_eq!(a.read_ttl("abc").unwrap(), None);
        // unshared: answered without I/O
        let u = s.open_with(true, false, 3600, 100);
        u.write("xyz", "w", 100).unwrap();
        let (value, left) = u.read_ttl_without_io("xyz").unwrap().unwrap();
        assert_eq!(value, "w");
        assert!(left <= Duration::from_secs(100) && left > Duration::from_secs(99));
        assert_eq!(u.read_ttl_without_io("a/b"), Some(None));
        assert_eq!(a.read_ttl_without_io("xyz"), None, "shared: needs a stat");
    }

    #[test]
    fn owner_index_add_list_remove() {
        let s = Setup::new();
        let st = s.open(false, false);
        assert_eq!(st.index_list("user1").unwrap(), Vec::<String>::new());
        st.index_add("user1", "k1", 100).unwrap();
        st.index_add("user1", "k2", 10).unwrap();
        st.index_add("user1", "K1", 100).unwrap();
        st.index_add("user2", "k3", 100).unwrap();
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(sorted(st.index_list("user1").unwrap()), ["K1", "k1", "k2"]);
        assert_eq!(st.index_list("user2").unwrap(), ["k3"]);
        assert_eq!(st.index_list("USER1").unwrap(), Vec::<String>::new());
        s.advance(10);
        assert_eq!(sorted(st.index_list("user1").unwrap()), ["K1", "k1"]);
        // a later add sets the new lifetime, shorter or longer
        st.index_add("user1", "k2", 100).unwrap();
        st.index_add("user1", "k1", 5).unwrap();
        s.advance(5);
        assert_eq!(sorted(st.index_list("user1").unwrap()), ["K1", "k2"]);
        st.index_remove("user1", "K1").unwrap();
        st.index_remove("user1", "K1").unwrap();
        st.index_remove("nobody", "K1").unwrap();
        assert_eq!(st.index_list("user1").unwrap(), ["k2"]);
        st.index_add("user1", "k2", 0).unwrap();
        assert_eq!(st.index_list("user1").unwrap(), Vec::<String>::new());
        // layout: ROOT/owners/ab/cd/<sha256 hex of owner>/<base32 of key>, 0600 files
        let dir = st.owner_path("user2").unwrap();
        let name = hex::encode(Sha256::digest(b"user2"));
        assert_eq!(
            dir,
            s.root()
                .join("owners")
                .join(&name[..2])
                .join(&name[2..4])
                .join(&name)
        );
        let marker = dir.join(base32_encode(b"k3"));
        assert_eq!(fs::metadata(&marker).unwrap().len(), 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&marker).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
        // foreign files in the folder are not keys
        fs::write(dir.join("README"), b"x").unwrap();
        fs::write(dir.join(".tmp-x"), b"").unwrap();
        assert_eq!(st.index_list("user2").unwrap(), ["k3"]);
        // the longest key fits a file name
        let long = "Z".repeat(MAX_ID_LEN);
        st.index_add("user3", &long, 100).unwrap();
        assert_eq!(st.index_list("user3").unwrap(), [long]);
        assert!(
            temp_files(&s.root().join("owners")).len() == 1,
            "only the foreign one"
        );
    }

    #[test]
    fn owner_index_checks_its_ids() {
        let s = Setup::new();
        let st = s.open(true, true);
        let fresh = tree(&s.root());
        for bad in ["", "a/b", "..", "é", &"x".repeat(129)] {
            assert!(matches!(
                st.index_add(bad, "k", 10),
                Err(CoreError::Config(_))
            ));
            assert!(matches!(
                st.index_add("o", bad, 10),
                Err(CoreError::Config(_))
            ));
            st.index_remove(bad, "k").unwrap();
            st.index_remove("o", bad).unwrap();
            assert!(st.index_list(bad).unwrap().is_empty());
            assert_eq!(st.owner_path(bad), None);
        }
        assert_eq!(tree(&s.root()), fresh, "nothing created");
    }

    #[test]
    fn gc_sweeps_the_index_but_counts_sessions() {
        let s = Setup::new();
        let st = s.open(false, false);
        st.write("sess", "v", 10).unwrap();
        st.index_add("user1", "short", 10).unwrap();
        st.index_add("user1", "long", 1000).unwrap();
        st.index_add("user2", "short", 10).unwrap();
        s.advance(20);
        assert_eq!(st.gc().unwrap(), 1, "only sessions are counted");
        assert_eq!(st.index_list("user1").unwrap(), ["long"]);
        let user1 = st.owner_path("user1").unwrap();
        let user2 = st.owner_path("user2").unwrap();
        assert_eq!(fs::read_dir(&user1).unwrap().count(), 1);
        assert!(
            user2.is_dir(),
            "an owner folder emptied just now stays a while"
        );
        assert_eq!(fs::read_dir(&user2).unwrap().count(), 0);
        s.advance(STALE_TEMP.as_secs() as i64 + 1);
        assert_eq!(st.gc().unwrap(), 0);
        assert!(!user2.exists(), "an idle empty owner folder goes");
        assert_eq!(st.index_list("user1").unwrap(), ["long"]);
        s.advance(1000);
        assert_eq!(st.gc().unwrap(), 0);
        // emptied now in real time, but the test clock runs far ahead of the folder's
        // mtime, so it is idle at once
        assert!(!user1.exists());
        // a marker re-added after gc's look is kept (the same check as for entries)
        st.index_add("user1", "k", 10).unwrap();
        let marker = user1.join(base32_encode(b"k"));
        s.advance(20);
        st.index_add("user1", "k", 100).unwrap();
        let later = s.clock.now();
        assert_eq!(
            take_if(&marker, &user1, |g| fs::metadata(g)
                .is_ok_and(|m| os::mtime(&m) <= later))
            .unwrap(),
            Taken::Kept
        );
        assert_eq!(st.index_list("user1").unwrap(), ["k"]);
        // an add after gc removed the folder makes it again
        st.index_add("user9", "k", 10).unwrap();
        assert_eq!(st.index_list("user9").unwrap(), ["k"]);
    }

    #[test]
    fn base32_names_round_trip_and_are_canonical() {
        for key in [
            "a",
            "ab",
            "abc",
            "abcd",
            "abcde",
            "Ab-_09",
            &"Z".repeat(128),
        ] {
            let name = base32_encode(key.as_bytes());
            assert!(name.bytes().all(|b| BASE32.contains(&b)), "{name}");
            assert_eq!(marker_key(&name).as_deref(), Some(key));
        }
        assert_eq!(base32_encode(b"Z".repeat(128).as_slice()).len(), 205);
        assert_eq!(base32_encode(b"foobar"), "mzxw6ytboi");
        assert_ne!(base32_encode(b"ab"), base32_encode(b"AB"));
        assert_eq!(marker_key("mzxw6ytboj"), None, "non-zero padding bits");
        assert_eq!(marker_key("MZXW6"), None);
        assert_eq!(marker_key(".tmp-x"), None);
        assert_eq!(marker_key(""), None);
        assert_eq!(marker_key(&base32_encode(b"a/b")), None, "not an id");
        assert!(!is_shard_name(OWNERS_DIR));
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
