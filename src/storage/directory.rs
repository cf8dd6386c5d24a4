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
//! `ROOT/.ferrosession-layout` says what the folder is: every `DirectoryStorage::new`
//! makes it if missing (an empty-but-for-one-line file, 0600; best effort, so a
//! read-only folder still opens). `holds_layout` (what `ferrosession gc` asks before it
//! opens a folder, so that it never makes a layout in a folder that is not one) accepts
//! a folder holding that file, or, for folders made before it existed, the change
//! table, `owners` or a two-level shard folder: so a folder a storage opened but never
//! wrote to is accepted on every system, with or without a change table.
//!
//! `ROOT/.ferrosession-changes` is the change table (see "Cache and concurrency"):
//! its name starts with a dot, so it is never a shard folder, an entry, a temp file
//! or `owners`, and `gc` (which walks the two-hex-digit folders) leaves it alone; in
//! the root it only removes the table's own temp files a process left when it died
//! while making the table (`.ferrosession-changes.<hex>.tmp`, after `STALE_TEMP`).
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
//! file after the process's own writes. With `shared`, a cache hit is also checked for
//! changes made by other processes, in one of two ways (`revalidation()`):
//!
//! ## The change table (`Revalidation::Table`, the default on Linux)
//! `ROOT/.ferrosession-changes` (see `change_table.rs` for the file) is mapped
//! `MAP_SHARED` by every process that opens the folder: 65 536 slots, each two 64-bit
//! counters `begun` and `done`, in memory all the processes of the host see. An id's
//! slot is bytes 4..8 of its SHA-256 (the file name), the same in every process.
//!
//! * **Changes.** Every change of an entry file by any process, whatever its own
//!   settings (write, create, update, invalidate, touch, gc's removals: everything that
//!   renames, unlinks or sets the times of an entry), runs inside `Change`, the guard
//!   that also takes the stripe: `begun += 1` before the first filesystem step and
//!   `done += 1` when the guard drops (on error paths and panics too).
//! * **Fills.** A read that goes to the file loads `b0 = begun`, then `d0 = done`,
//!   before it opens the file; it may cache the value only if `b0 == d0`, tagged `b0`.
//! * **Hits.** A cached value is served iff `begun == tag` now: one atomic load.
//!
//! Why a hit is current: suppose `begun == b0` at the hit. Every change ever begun on
//! the slot was then begun before the fill loaded `b0` (a later one would have made
//! `begun > b0`; the counters only grow), and there are `b0` of them. Each adds one to
//! `done` only after its filesystem step, and nothing else adds to it, so
//! `done == b0` at the fill's second load means all of them had finished (renamed,
//! unlinked, touched) before the file was opened: the value read is the file after
//! all changes there have been. If `d0 == b0` but a change begun later had already
//! finished in between and made up the count, that change also raised `begun`, and no
//! hit is ever served for that tag.
//!
//! Caching a process's own change: the guard's increment gives `b` (`begun` counting
//! it). Right before the rename (or exchange, or utimes) `done == b - 1` is checked:
//! every earlier change, in any process, had finished, so ours lands after all of them.
//! The result is cached with tag `b` only if that held and `begun == b` still holds
//! after the change (a later change began: the entry would never be hit anyway).
//! With both, a hit (`begun == b`) means ours is the last change of the file (the
//! `b - 1` earlier ones all finished before our rename, none began after). The second
//! check only saves caching an entry no hit would accept; the first is what makes it
//! safe: without it, an earlier writer still between its rename and its `done` could
//! land after ours and leave its value on disk while ours is cached, which is also
//! why it must run before our rename and not after (checked after, the earlier
//! writer may have renamed over ours and finished in between). If `done == b - 1`
//! holds only because a later change finished early and made up the count, that
//! change raised `begun` and the second check (and every hit) fails. Otherwise the
//! entry is dropped and the next read goes to the file. A `touch` keeps a cached value (new expiry, tag
//! `b`) only if the value was tagged `b - 1`, i.e. current right before the touch.
//!
//! What follows, and what it costs:
//! * ids sharing a slot only cost each other hits (a change of one drops the others'
//!   cached values); so does a `create` that finds a live entry (it counts as a
//!   change);
//! * a writer killed between its two increments leaves its slot busy for good
//!   (`begun > done`): reads of the ids of that slot are correct but never cached
//!   (nor are the process's own writes there) until the table file is deleted while
//!   no process uses the folder. `gc` cannot tell a dead writer from a slow one and
//!   leaves it;
//! * the table counts the storages' changes only: a file deleted or replaced by
//!   something else (`rm`, an editor, a restore) is seen by a hit only when the value
//!   leaves the cache (`cache_ttl`), where an `lstat` sees it at once;
//! * every process sharing the folder must keep the counters: all run a version with
//!   this table (during a rolling upgrade from one without it, use `"stat"`), as the
//!   same user (the file is 0600). A process that opens the folder but will not keep
//!   them, because it cannot map the file, finds another layout version there, or
//!   sees the folder through a network filesystem (another host's mapping is not
//!   coherent with ours), sets the table's *retired* word, and from then on every
//!   process checks its hits by `lstat` (each hit loads that word too);
//! * the file must not be truncated or deleted while processes use it (see
//!   `change_table.rs`).
//!
//! Security: the file is 0600 in the 0700 root, like the entries. A process that can
//! write it can already write (or delete) every session file, so it opens no new
//! trust boundary; the worst it can do through the table is what it can do through
//! the files directly (make other processes serve stale values, or crash them by
//! truncating the file).
//!
//! ## Stat (`Revalidation::Stat`)
//! Where there is no table (not Linux, a network or cluster filesystem by `statfs`:
//! NFS, SMB/CIFS, FUSE, Ceph, AFS, Coda, 9p, NCP, OCFS2, GFS2, Lustre, GPFS,
//! BeeGFS), when it cannot be used or was retired, or when asked
//! (`revalidate_by_stat`, Python `shared="stat"`): a hit is revalidated with one
//! `lstat`: device, inode, size, mtime and ctime must be those recorded when the
//! value was cached. A replacing write by another process makes a new inode (the temp
//! file exists beside the old one before the rename), and a delete + re-create that
//! reuses the inode still changes the nanosecond mtime (set from the writer's clock)
//! and the ctime; a touch changes both times. Any mismatch drops the entry and reads
//! the file. Such a process still counts its changes in the table when there is one,
//! for the others. Every cached entry keeps both its tag and its validator, so a table
//! retired at run time falls back to the stat at the next hit.
//!
//! # Expiry and gc
//! An entry's expiry is its file's mtime (see `record.rs`): a read checks it with the
//! `fstat` it makes anyway, a cache hit checks the cached copy, `touch` sets it. Reads
//! never delete (a read that raced a rewrite could delete the fresh file); `gc`
//! deletes expired entries by moving each aside atomically, checking the moved file,
//! and linking it back if a writer had replaced it meanwhile (never over a newer
//! write), so it can run while other processes use the folder. It sweeps the owner
//! index the same way: expired markers, and markers whose entry is gone (absent or
//! expired: removed by this sweep, an invalidation or by hand), so a marker goes with
//! its entry; and it removes owner folders that have been empty for `STALE_TEMP`. A
//! marker outlives its entry only between a session's `create` and its `index_add`
//! (the middleware writes the entry first), so before removing one for a missing entry
//! gc takes the entry's stripe (ordering it after this process's writes) and checks
//! the entry again after the marker is moved aside.

mod change_table;

use std::cell::Cell;
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
use change_table::{ChangeTable, NoTable, SLOTS};

pub use change_table::FILE_NAME as CHANGE_TABLE_FILE;

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

/// The file that marks a folder as a `DirectoryStorage` (see "Layout").
pub const LAYOUT_FILE: &str = ".ferrosession-layout";

/// What `LAYOUT_FILE` holds (for a person who finds the folder).
const LAYOUT_TEXT: &[u8] = b"ferrosession DirectoryStorage folder (layout 1)\n";

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
    /// The file's identity when the value was cached: checked by a `Stat` hit.
    validator: Validator,
    /// The slot's `begun` count the value is current for: a `Table` hit needs
    /// `begun == tag`. `None` when it could not be tagged (no table, or a change of
    /// the slot was in progress); such an entry is only kept for `Stat` hits.
    tag: Option<u64>,
    slot: usize,
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

/// An entry taken for a change (write, create, update, invalidate, touch, gc
/// removal): its stripe's lock, the stripe busy (odd generation), and the change
/// counted as begun in the change table (when there is one), until dropped; then
/// counted as done (also on error paths and panics). Fields drop in order: the table
/// counts the change done, then the stripe is marked idle, then its lock released.
struct Change<'a> {
    table: Option<TableChange<'a>>,
    _busy: Busy<'a>,
    _lock: MutexGuard<'a, ()>,
}

/// A change counted in the table's `begun` of `slot`; counted in `done` on drop.
struct TableChange<'a> {
    table: &'a ChangeTable,
    slot: usize,
    /// `begun` right after this change incremented it.
    begun: u64,
    /// Set by `Change::about_to_change`.
    settled: Cell<bool>,
}

impl Drop for TableChange<'_> {
    fn drop(&mut self) {
        self.table.finish(self.slot);
    }
}

impl Change<'_> {
    /// Call right before the filesystem change whose result the process may cache:
    /// notes whether every change of the slot begun before this one, in any process,
    /// has finished (`done == begun - 1`).
    fn about_to_change(&self) {
        if let Some(t) = &self.table {
            t.settled
                .set(t.table.done(t.slot) == t.begun.wrapping_sub(1));
        }
    }

    /// After the change: the tag its result may be cached under (this change's
    /// `begun`), when every earlier change had finished before it (see
    /// `about_to_change`) and no other has begun since. `None` otherwise, or without
    /// a table.
    fn tag(&self) -> Option<u64> {
        let t = self.table.as_ref()?;
        (t.settled.get() && t.table.begun(t.slot) == t.begun).then_some(t.begun)
    }
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

/// How a cache hit is checked for changes made by other processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revalidation {
    /// Not checked: the cache is trusted for `cache_ttl` (`shared = false`), or there
    /// is no cache.
    None,
    /// Against the folder's change table in shared memory: one atomic load.
    Table,
    /// By one `lstat` of the entry file.
    Stat,
}

impl Revalidation {
    /// `"none"`, `"table"` or `"stat"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Revalidation::None => "none",
            Revalidation::Table => "table",
            Revalidation::Stat => "stat",
        }
    }
}

/// How `read_cache` checks a hit now.
enum HitCheck<'a> {
    Trust,
    Table(&'a ChangeTable),
    Stat,
}

/// Where one id's entry lives.
struct Location {
    path: PathBuf,
    stripe: usize,
    /// Its change-table slot.
    slot: usize,
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

    /// How a cache hit is revalidated now: `None` without `shared` (or without a
    /// cache), else `Table`, or `Stat` (forced, or the table is missing, unusable or
    /// was retired by another process, see `table_status`).
    pub fn revalidation(&self) -> Revalidation {
        if self.cache.is_none() {
            return Revalidation::None;
        }
        match self.hit_check() {
            HitCheck::Trust => Revalidation::None,
            HitCheck::Table(_) => Revalidation::Table,
            HitCheck::Stat => Revalidation::Stat,
        }
    }

    /// Whether the folder's change table is in use, or why not (for diagnostics).
    pub fn table_status(&self) -> String {
        match &self.table {
            Ok(table) if table.retired() => "retired by another process".to_owned(),
            Ok(_) => "in use".to_owned(),
            Err(why) => why.to_string(),
        }
    }

    fn hit_check(&self) -> HitCheck<'_> {
        if !self.shared {
            return HitCheck::Trust;
        }
        match &self.table {
            Ok(table) if !self.force_stat && !table.retired() => HitCheck::Table(table),
            _ => HitCheck::Stat,
        }
    }

    /// Takes the entry at `stripe`, `slot` for a change (see `Change`).
    fn change(&self, stripe: usize, slot: usize) -> Change<'_> {
        let stripe = &self.stripes[stripe];
        let lock = stripe.lock.lock().unwrap_or_else(|p| p.into_inner());
        let busy = Busy::new(&stripe.generation);
        let table = self.table.as_ref().ok().map(|table| TableChange {
            table,
            slot,
            begun: table.begin(slot),
            settled: Cell::new(false),
        });
        Change {
            table,
            _busy: busy,
            _lock: lock,
        }
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
        let _change = self.change(loc.stripe, loc.slot);
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
        self.gc_table_temps(stale_temp_before, &mut note);
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
                    } else if let Some((stripe, slot)) = entry_lanes(name, &leaf) {
                        if os::mtime(&meta) > now {
                            continue;
                        }
                        match self.collect(&path, &leaf, stripe, slot, now) {
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
    /// Removes the change table's temp files a process left when it died while making
    /// the table (`.ferrosession-changes.<hex>.tmp` in the root, last changed before
    /// `stale_before`; a live one is moved into place within milliseconds).
    fn gc_table_temps(&self, stale_before: UnixNanos, note: &mut impl FnMut(CoreError)) {
        let Some(entries) = list(&self.root, note) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !change_table::is_temp_name(name) {
                continue;
            }
            match entry.metadata() {
                Ok(m) if m.is_file() && os::ctime(&m) < stale_before => {
                    remove_quietly(&entry.path(), note);
                }
                _ => {}
            }
        }
    }

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
            } else if let Some(key) = marker_key(name) {
                let taken = if os::mtime(&meta) <= now {
                    let expired = |grave: &Path| {
                        fs::symlink_metadata(grave).is_ok_and(|m| os::mtime(&m) <= now)
                    };
                    take_if(&path, dir, expired)
                } else {
                    self.drop_orphan_marker(&path, dir, &key, now)
                };
                match taken {
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

    /// Removes the live marker of `key` at `marker` when the entry of `key` is gone
    /// (absent, or expired by its mtime), under the entry's stripe lock; the entry is
    /// checked before the marker is moved aside and again after, so a marker whose
    /// entry came back meanwhile is put back. `Kept` (touching nothing) while the
    /// entry is there or cannot be looked at.
    fn drop_orphan_marker(
        &self,
        marker: &Path,
        dir: &Path,
        key: &str,
        now: UnixNanos,
    ) -> Result<Taken> {
        let entry = self.locate(key);
        let _lock = self.stripes[entry.stripe]
            .lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry_gone = || match fs::symlink_metadata(&entry.path) {
            Ok(m) => !(m.is_file() && os::mtime(&m) > now),
            Err(e) => is_absent(&e),
        };
        if !entry_gone() {
            return Ok(Taken::Kept);
        }
        take_if(marker, dir, |_| entry_gone())
    }

    /// Removes an entry found expired, unless a writer replaced it meanwhile: move it
    /// aside (atomic), check the moved file, and put a live one back (never over a
    /// newer write).
    fn collect(
        &self,
        path: &Path,
        leaf: &Path,
        stripe: usize,
        slot: usize,
        now: UnixNanos,
    ) -> Result<bool> {
        let _change = self.change(stripe, slot);
        let expired =
            |grave: &Path| fs::symlink_metadata(grave).is_ok_and(|m| os::mtime(&m) <= now);
        Ok(matches!(take_if(path, leaf, expired)?, Taken::Removed))
    }
}

/// Makes `LAYOUT_FILE` in `root` if it is missing. Best effort: a folder the process
/// may read but not write still opens (`holds_layout` also knows older signs).
fn ensure_layout_file(root: &Path) {
    let path = root.join(LAYOUT_FILE);
    if fs::symlink_metadata(&path).is_ok() {
        return;
    }
    if let Ok(mut file) = os::create_new_private(&path) {
        if file.write_all(LAYOUT_TEXT).is_err() {
            drop(file);
            let _ = fs::remove_file(&path);
        }
    }
}

/// Whether the folder `root` holds a `DirectoryStorage` layout: `LAYOUT_FILE`, or
/// (made by a version before that file) the change table, the `owners` folder, or a
/// shard folder holding a shard folder. `false` for a folder that is missing or holds
/// none of these; a `CoreError::Storage` when it cannot be listed. Touches nothing.
pub fn holds_layout(root: &Path) -> Result<bool> {
    let list_error = |e: &io::Error| storage_error("cannot list session folder", root, e);
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if is_absent(&e) => return Ok(false),
        Err(e) => return Err(list_error(&e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| list_error(&e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // DirEntry::file_type does not follow symlinks
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let found = match name {
            LAYOUT_FILE | CHANGE_TABLE_FILE => kind.is_file(),
            OWNERS_DIR => kind.is_dir(),
            _ if is_shard_name(name) && kind.is_dir() => fs::read_dir(entry.path())
                .map_err(|e| list_error(&e))?
                .flatten()
                .any(|inner| {
                    inner.file_type().is_ok_and(|t| t.is_dir())
                        && inner.file_name().to_str().is_some_and(is_shard_name)
                }),
            _ => false,
        };
        if found {
            return Ok(true);
        }
    }
    Ok(false)
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
    change: &Change<'_>,
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
    change.about_to_change();
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
/// lock stripe and change-table slot (as `locate` gives them); `None` for any other
/// file.
fn entry_lanes(name: &str, leaf: &Path) -> Option<(usize, usize)> {
    if name.len() != 64 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let l2 = leaf.file_name()?.to_str()?;
    let l1 = leaf.parent()?.file_name()?.to_str()?;
    if name[0..2] != *l1 || name[2..4] != *l2 {
        return None;
    }
    let digest = hex::decode(name).ok()?;
    Some((usize::from(digest[2]) % STRIPES, slot_of(&digest[4..8])))
}

/// The change-table slot of an id, from bytes 4..8 of its SHA-256 (the same in every
/// process and version of this layout).
fn slot_of(bytes: &[u8]) -> usize {
    let word = u32::from_be_bytes(bytes.try_into().expect("four bytes"));
    usize::try_from(word).unwrap_or(0) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::super::clock::OffsetClock;
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU32;

    const S: i64 = NANOS_PER_SEC;

    /// This system has the change table (the temp folders the tests use are local).
    const HAS_TABLE: bool = cfg!(all(
        any(target_os = "linux", target_os = "android"),
        target_has_atomic = "64"
    ));

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
        /// Open storages with `revalidate_by_stat`.
        stat: bool,
    }

    impl Setup {
        /// Shared hits checked by the change table.
        fn new() -> Self {
            Self {
                dir: TempDir::new(),
                clock: Arc::new(OffsetClock::new(0)),
                stat: false,
            }
        }
        /// Shared hits checked by `lstat` (the table is still kept).
        fn with_stat() -> Self {
            Self {
                stat: true,
                ..Self::new()
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
            let st = DirectoryStorage::new(
                self.root(),
                cached,
                Duration::from_secs(cache_ttl),
                shared,
                max,
            )
            .unwrap()
            .with_clock(self.clock.clone());
            let st = if self.stat {
                st.revalidate_by_stat()
            } else {
                st
            };
            if cached && shared && max > 0 {
                let want = if self.stat || !HAS_TABLE {
                    Revalidation::Stat
                } else {
                    Revalidation::Table
                };
                assert_eq!(st.revalidation(), want, "{}", st.table_status());
            }
            st
        }
        fn advance(&self, secs: i64) {
            self.clock.advance(secs * S);
        }
    }

    /// Runs each named test body (`fn name(s: &Setup)`) twice: with shared hits
    /// checked by the change table (`name::table`) and by `lstat` (`name::stat`).
    macro_rules! in_both_modes {
        ($($name:ident),* $(,)?) => {
            $(
                mod $name {
                    #[test]
                    fn table() {
                        super::$name(&super::Setup::new());
                    }
                    #[test]
                    fn stat() {
                        super::$name(&super::Setup::with_stat());
                    }
                }
            )*
        };
    }

    in_both_modes!(
        round_trip_with_and_without_cache,
        overwrite_with_a_shorter_value,
        write_with_zero_ttl_deletes,
        entries_expire_by_the_injected_clock,
        odd_ids_touch_no_file,
        touch_extends_without_rewriting,
        failed_rename_leaves_no_temp_file_and_the_old_value,
        threads_share_ids_without_torn_or_stale_values,
        invalidate_tells_whether_a_live_entry_was_deleted,
        create_stores_only_when_no_live_entry,
        concurrent_creates_have_exactly_one_winner,
        update_replaces_only_a_live_entry,
        racing_updates_never_undo_an_invalidate,
        read_ttl_gives_the_time_left,
        instances_never_serve_a_replaced_value,
    );

    /// Every path under `root` with its kind, size and mtime, but the change table
    /// (whose mtime the kernel updates when its mapped pages are written) and the
    /// layout file (both made when the folder is opened).
    fn tree(root: &Path) -> BTreeMap<PathBuf, (bool, u64, UnixNanos)> {
        fn walk(p: &Path, out: &mut BTreeMap<PathBuf, (bool, u64, UnixNanos)>) {
            for e in fs::read_dir(p).unwrap() {
                let e = e.unwrap();
                if e.file_name() == CHANGE_TABLE_FILE || e.file_name() == LAYOUT_FILE {
                    continue;
                }
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

    fn round_trip_with_and_without_cache(s: &Setup) {
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

    fn overwrite_with_a_shorter_value(s: &Setup) {
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

    fn write_with_zero_ttl_deletes(s: &Setup) {
        let st = s.open(true, true);
        st.write("abc", "v", 100).unwrap();
        st.write("abc", "w", 0).unwrap();
        assert_eq!(st.read("abc").unwrap(), None);
        assert!(entry_files(&s.root()).is_empty());
    }

    fn entries_expire_by_the_injected_clock(s: &Setup) {
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

    fn odd_ids_touch_no_file(s: &Setup) {
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
        assert_eq!(st.io_counts(), IoCounts::default());
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
        let s = Setup::with_stat();
        let a = s.open(true, true);
        let b = s.open(true, true);
        let counts = |opens, stats| IoCounts {
            opens,
            stats,
            table_hits: 0,
        };
        a.write("abc", "v1", 3600).unwrap();
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v1"));
        assert_eq!(a.io_counts(), counts(0, 1));
        assert_eq!(a.read_without_io("abc"), None, "shared hits need a stat");
        // another instance replaces it: the next read sees the new value
        b.write("abc", "v2", 3600).unwrap();
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v2"));
        assert_eq!(a.io_counts(), counts(1, 2));
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v2"));
        assert_eq!(a.io_counts(), counts(1, 3));
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
        // replaced by something other than a storage (no change counted anywhere):
        // the stat sees it all the same
        let path = a.entry_path("abc").unwrap();
        let other = s.open(false, false);
        other.write("xyz", "v6", 3600).unwrap();
        fs::rename(other.entry_path("xyz").unwrap(), &path).unwrap();
        assert_eq!(a.read("abc").unwrap().as_deref(), Some("v6"));
        fs::remove_file(&path).unwrap();
        assert_eq!(a.read("abc").unwrap(), None);
        assert_eq!(a.io_counts().table_hits, 0);
    }

    #[test]
    fn gc_removes_stale_temp_files_of_the_table_only() {
        let s = Setup::new();
        let st = s.open(true, true);
        let temp = s
            .root()
            .join(format!("{CHANGE_TABLE_FILE}.0123456789abcdef.tmp"));
        let other = s.root().join(format!("{CHANGE_TABLE_FILE}.notes.tmp"));
        fs::write(&temp, b"partial").unwrap();
        fs::write(&other, b"not ours").unwrap();
        st.gc().unwrap();
        assert!(temp.exists(), "a fresh one may be a table being made");
        s.advance(STALE_TEMP.as_secs() as i64 + 1);
        st.gc().unwrap();
        assert!(!temp.exists());
        assert!(other.exists());
        assert!(
            s.root().join(CHANGE_TABLE_FILE).exists() || st.revalidation() != Revalidation::Table
        );
        assert!(change_table::is_temp_name(
            ".ferrosession-changes.00ff00ff00ff00ff.tmp"
        ));
        assert!(!change_table::is_temp_name(
            ".ferrosession-changes.00ff.tmp"
        ));
        assert!(!change_table::is_temp_name(".ferrosession-changes"));
    }

    /// The change table (Linux, 64-bit atomics): a process's hits without a stat.
    #[cfg(all(
        any(target_os = "linux", target_os = "android"),
        target_has_atomic = "64"
    ))]
    mod table {
        use super::*;

        /// The table of `st`, and the slot of `id` in it.
        fn table_slot<'a>(st: &'a DirectoryStorage, id: &str) -> (&'a ChangeTable, usize) {
            (
                st.table.as_ref().expect("a change table"),
                st.locate(id).slot,
            )
        }

        #[test]
        fn changes_by_another_instance_reach_table_hits_without_a_stat() {
            // a and b stand for two processes: each maps the table itself
            let s = Setup::new();
            let a = s.open(true, true);
            let b = s.open(true, true);
            assert_eq!(a.revalidation(), Revalidation::Table);
            assert_eq!(a.table_status(), "in use");
            let hits = |n| IoCounts {
                opens: a.io_counts().opens,
                stats: 0,
                table_hits: n,
            };
            a.write("abc", "v1", 3600).unwrap();
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v1"));
            assert_eq!(
                a.io_counts(),
                IoCounts {
                    opens: 0,
                    stats: 0,
                    table_hits: 1
                }
            );
            // a table hit needs no I/O: answered without releasing the GIL
            assert_eq!(a.read_without_io("abc"), Some(Some("v1".to_owned())));
            assert_eq!(a.io_counts(), hits(2));
            let opens = |st: &DirectoryStorage| st.io_counts().opens;
            // write
            b.write("abc", "v2", 3600).unwrap();
            assert_eq!(a.read_without_io("abc"), None, "a changed slot is a miss");
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v2"));
            assert_eq!(opens(&a), 1);
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v2"));
            assert_eq!(
                (opens(&a), a.io_counts().table_hits),
                (1, 3),
                "cached again"
            );
            // invalidate
            assert!(b.invalidate("abc").unwrap());
            assert_eq!(a.read("abc").unwrap(), None);
            // create
            assert!(b.create("abc", "v3", 3600).unwrap());
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v3"));
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v3"));
            // update
            assert!(b.update("abc", "v4", 3600).unwrap());
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v4"));
            // touch: the same file, a new expiry
            let (_, left) = a.read_ttl("abc").unwrap().unwrap();
            assert!(left <= Duration::from_secs(3600));
            assert!(b.touch("abc", 7200).unwrap());
            let (value, left) = a.read_ttl("abc").unwrap().unwrap();
            assert_eq!(value, "v4");
            assert!(left > Duration::from_secs(7100), "{left:?}");
            // write with ttl 0 (an invalidate)
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v4"));
            b.write("abc", "x", 0).unwrap();
            assert_eq!(a.read("abc").unwrap(), None);
            // gc: b's clock runs ahead, so it finds expired what a still holds as live
            a.write("old", "v5", 100).unwrap();
            assert_eq!(a.read("old").unwrap().as_deref(), Some("v5"));
            let later = s
                .open(true, true)
                .with_clock(Arc::new(OffsetClock::new(s.clock.offset() + 200 * S)));
            assert_eq!(later.gc().unwrap(), 1);
            assert_eq!(a.read("old").unwrap(), None, "gc's removal is seen");
            // changes of other ids (other slots) leave a's cached value alone
            a.write("kept", "k", 3600).unwrap();
            assert!(!b.update("nothing", "v", 100).unwrap());
            b.write("another", "v", 100).unwrap();
            let before = a.io_counts();
            assert_eq!(a.read("kept").unwrap().as_deref(), Some("k"));
            assert_eq!(a.io_counts().opens, before.opens);
            // a create that loses counts as a change all the same (it may have removed
            // an expired entry): the value is read again, and is still right
            assert!(!b.create("kept", "other", 100).unwrap());
            assert_eq!(a.read("kept").unwrap().as_deref(), Some("k"));
            assert_eq!(a.io_counts().opens, before.opens + 1);
            assert_eq!(a.io_counts().stats, 0, "not one stat in all of this");
            assert_eq!(b.io_counts().stats, 0);
        }

        #[test]
        fn every_change_counts_in_the_table() {
            let s = Setup::new();
            let st = s.open(false, false);
            let (table, slot) = table_slot(&st, "abc");
            let counts = || (table.begun(slot), table.done(slot));
            let mut want = counts();
            let mut step = |what: &str| {
                want = (want.0 + 1, want.1 + 1);
                assert_eq!(counts(), want, "{what}");
            };
            st.write("abc", "v", 100).unwrap();
            step("write");
            assert!(!st.create("abc", "v", 100).unwrap());
            step("create (lost)");
            assert!(st.update("abc", "w", 100).unwrap());
            step("update");
            assert!(st.touch("abc", 100).unwrap());
            step("touch");
            assert!(st.invalidate("abc").unwrap());
            step("invalidate");
            assert!(st.create("abc", "v", 10).unwrap());
            step("create");
            s.advance(20);
            assert_eq!(st.gc().unwrap(), 1);
            step("gc");
            // a failing change counts as done too
            let path = st.entry_path("abc").unwrap();
            fs::create_dir_all(path.join("x")).unwrap();
            assert!(st.write("abc", "v", 100).is_err());
            step("failed write");
            // reads, odd ids and other ids do not count here
            st.read("abc").unwrap();
            st.invalidate("a/b").unwrap();
            st.write("other", "v", 100).unwrap();
            assert_eq!(counts(), want);
        }

        #[test]
        fn a_slot_left_busy_is_not_cached_but_reads_stay_right() {
            let s = Setup::new();
            let a = s.open(true, true);
            let b = s.open(true, true);
            // a writer of "abc"'s slot died between `begun` and `done`
            let (table, slot) = table_slot(&b, "abc");
            table.begin(slot);
            a.write("abc", "v1", 3600).unwrap();
            assert_eq!(a.cache_len(), 0, "its own write is not cached either");
            for want in ["v2", "v3"] {
                b.write("abc", want, 3600).unwrap();
                for _ in 0..3 {
                    assert_eq!(a.read("abc").unwrap().as_deref(), Some(want));
                }
            }
            assert_eq!(a.io_counts().opens, 6, "every read reads the file");
            assert_eq!(a.cache_len(), 0);
            assert!(b.invalidate("abc").unwrap());
            assert_eq!(a.read("abc").unwrap(), None);
            // other slots are unaffected
            a.write("xyz", "w", 3600).unwrap();
            assert_ne!(a.locate("xyz").slot, slot);
            assert_eq!(a.read("xyz").unwrap().as_deref(), Some("w"));
            assert_eq!(a.io_counts().table_hits, 1);
            assert_eq!(a.revalidation(), Revalidation::Table);
            // once the change is counted done (here by hand), the slot caches again
            table.finish(slot);
            b.write("abc", "v4", 3600).unwrap();
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v4"));
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v4"));
            assert_eq!(a.io_counts().table_hits, 2);
            assert_eq!(a.io_counts().stats, 0);
        }

        #[test]
        fn own_changes_are_cached_only_when_no_other_overlapped() {
            let s = Setup::new();
            let a = s.open(true, true);
            let (table, slot) = table_slot(&a, "abc");
            a.write("abc", "v1", 3600).unwrap();
            assert_eq!(a.cache_len(), 1);
            // another process's change of the slot is in progress while a writes: a
            // cannot tell whose rename lands last, so it caches nothing
            table.begin(slot);
            a.write("abc", "v2", 3600).unwrap();
            assert_eq!(a.cache_len(), 0);
            table.finish(slot);
            assert!(a.update("abc", "v3", 3600).unwrap());
            assert_eq!(a.cache_len(), 1);
            // a touch keeps the cached value only when it was current right before
            table.begin(slot);
            table.finish(slot);
            assert!(a.touch("abc", 100).unwrap());
            assert_eq!(
                a.cache_len(),
                0,
                "the value cached may be older than the file"
            );
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v3"));
            assert!(a.touch("abc", 200).unwrap());
            assert_eq!(a.cache_len(), 1);
            let opens = a.io_counts().opens;
            let (_, left) = a.read_ttl("abc").unwrap().unwrap();
            assert!(left > Duration::from_secs(199), "{left:?}");
            assert_eq!(a.io_counts().opens, opens);
        }

        #[test]
        fn changes_made_outside_the_storages_wait_for_cache_ttl_with_the_table() {
            // the documented price of the table: it counts the storages' changes only
            let s = Setup::new();
            let a = s.open_with(true, true, 60, 100);
            a.write("abc", "v1", 3600).unwrap();
            fs::remove_file(a.entry_path("abc").unwrap()).unwrap();
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v1"));
            s.advance(60);
            assert_eq!(a.read("abc").unwrap(), None);
        }

        #[test]
        fn forced_stat_keeps_counting_for_the_others() {
            let s = Setup::new();
            let a = s.open(true, true);
            let b = s.open(true, true).revalidate_by_stat();
            assert_eq!(b.revalidation(), Revalidation::Stat);
            assert_eq!(b.table_status(), "in use");
            a.write("abc", "v1", 3600).unwrap();
            assert_eq!(b.read("abc").unwrap().as_deref(), Some("v1"));
            assert_eq!(b.read("abc").unwrap().as_deref(), Some("v1"));
            assert_eq!(b.io_counts().stats, 1);
            b.write("abc", "v2", 3600).unwrap();
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v2"));
            assert_eq!(a.io_counts().stats, 0);
            // no shared revalidation at all
            assert_eq!(s.open(true, false).revalidation(), Revalidation::None);
            assert_eq!(s.open(false, true).revalidation(), Revalidation::None);
        }

        #[test]
        fn the_table_file_is_private_sized_and_left_alone_by_gc() {
            use std::os::unix::fs::PermissionsExt;
            let s = Setup::new();
            let st = s.open(true, true);
            let path = s.root().join(CHANGE_TABLE_FILE);
            let meta = fs::metadata(&path).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            assert_eq!(meta.len(), change_table::TEST_FILE_BYTES as u64);
            let bytes = fs::read(&path).unwrap();
            assert_eq!(&bytes[..8], b"fs-chtbl");
            assert_eq!(&bytes[8..16], &((1u64 << 32) | SLOTS as u64).to_le_bytes());
            assert_eq!(&bytes[16..24], &[0; 8], "not retired");
            st.write("abc", "v", 10).unwrap();
            s.advance(100);
            s.advance(STALE_TEMP.as_secs() as i64);
            assert_eq!(st.gc().unwrap(), 1);
            assert!(path.exists());
            assert_eq!(fs::metadata(&path).unwrap().len(), meta.len());
            // a second opener (as a racing process would) reuses it
            let again = s.open(true, true);
            assert_eq!(again.revalidation(), Revalidation::Table);
            assert_eq!(fs::metadata(&path).unwrap().len(), meta.len());
        }

        #[test]
        fn racing_openers_share_one_whole_table() {
            for _ in 0..10 {
                let s = Setup::new();
                fs::create_dir_all(s.root()).unwrap();
                let storages: Vec<DirectoryStorage> = std::thread::scope(|scope| {
                    let handles: Vec<_> =
                        (0..6).map(|_| scope.spawn(|| s.open(true, true))).collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
                for st in &storages {
                    assert_eq!(
                        st.revalidation(),
                        Revalidation::Table,
                        "{}",
                        st.table_status()
                    );
                }
                let mut names: Vec<_> = fs::read_dir(s.root())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                names.sort();
                assert_eq!(
                    names,
                    [CHANGE_TABLE_FILE, LAYOUT_FILE],
                    "one table, no temp file left"
                );
                // they all count in the same table
                storages[0].write("abc", "v1", 3600).unwrap();
                for st in &storages[1..] {
                    assert_eq!(st.read("abc").unwrap().as_deref(), Some("v1"));
                }
                storages[5].write("abc", "v2", 3600).unwrap();
                for st in &storages[..5] {
                    assert_eq!(st.read("abc").unwrap().as_deref(), Some("v2"));
                }
            }
        }

        #[test]
        fn a_damaged_foreign_or_retired_table_falls_back_to_stat() {
            let check_stat = |st: &DirectoryStorage, why: &str| {
                assert_eq!(st.revalidation(), Revalidation::Stat, "{why}");
                assert!(st.table_status().contains(why), "{}", st.table_status());
                st.write("abc", "v", 3600).unwrap();
                assert_eq!(st.read("abc").unwrap().as_deref(), Some("v"));
                assert_eq!(st.io_counts().stats, 1, "{why}");
                assert_eq!(st.io_counts().table_hits, 0);
            };
            let full = change_table::TEST_FILE_BYTES;
            let open = |s: &Setup| {
                DirectoryStorage::new(s.root(), true, Duration::from_secs(60), true, 100).unwrap()
            };
            // short
            let s = Setup::new();
            fs::create_dir_all(s.root()).unwrap();
            let path = s.root().join(CHANGE_TABLE_FILE);
            fs::write(&path, b"fs-chtbl").unwrap();
            check_stat(&open(&s), "damaged");
            assert_eq!(fs::read(&path).unwrap(), b"fs-chtbl", "left as it was");
            // full size but something else: left alone
            let s = Setup::new();
            fs::create_dir_all(s.root()).unwrap();
            let path = s.root().join(CHANGE_TABLE_FILE);
            let mut foreign = vec![7u8; full];
            foreign[..8].copy_from_slice(b"not-ours");
            fs::write(&path, &foreign).unwrap();
            check_stat(&open(&s), "damaged");
            assert_eq!(fs::read(&path).unwrap(), foreign);
            // another layout version: retired, for everyone
            let s = Setup::new();
            fs::create_dir_all(s.root()).unwrap();
            let path = s.root().join(CHANGE_TABLE_FILE);
            let mut other = vec![0u8; full];
            other[..8].copy_from_slice(b"fs-chtbl");
            other[8..16].copy_from_slice(&((2u64 << 32) | 16).to_le_bytes());
            fs::write(&path, &other).unwrap();
            check_stat(&open(&s), "retired");
            assert_ne!(fs::read(&path).unwrap()[16..24], [0; 8]);
            // a short file of ours (truncated) is retired too: a process still holding
            // the old mapping must stop trusting it
            let s = Setup::new();
            fs::create_dir_all(s.root()).unwrap();
            let path = s.root().join(CHANGE_TABLE_FILE);
            let mut short = vec![0u8; 4096];
            short[..8].copy_from_slice(b"fs-chtbl");
            fs::write(&path, &short).unwrap();
            check_stat(&open(&s), "damaged");
            assert_ne!(fs::read(&path).unwrap()[16..24], [0; 8]);
            // retired while in use (another process could not keep it): the next hit
            // is checked by stat
            let s = Setup::new();
            let a = s.open(true, true);
            let b = s.open(true, true);
            a.write("abc", "v1", 3600).unwrap();
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v1"));
            assert_eq!(a.io_counts().table_hits, 1);
            b.table.as_ref().unwrap().retire();
            assert_eq!(a.revalidation(), Revalidation::Stat);
            assert_eq!(a.table_status(), "retired by another process");
            assert_eq!(a.read_without_io("abc"), None);
            assert_eq!(a.read("abc").unwrap().as_deref(), Some("v1"));
            assert_eq!(a.io_counts().stats, 1);
            check_stat(&open(&s), "retired");
        }
    }

    /// Values that carry their own checksum, and the ticket of the op that wrote them.
    fn ticketed(ticket: u64, n: usize) -> String {
        let body = format!("{ticket}:{}", "y".repeat(n % 200));
        format!(
            "{}|{body}",
            hex::encode(&Sha256::digest(body.as_bytes())[..4])
        )
    }

    fn ticket_of(v: &str) -> u64 {
        let (sum, body) = v.split_once('|').expect("framed");
        assert_eq!(
            sum,
            hex::encode(&Sha256::digest(body.as_bytes())[..4]),
            "{v}"
        );
        body.split_once(':').unwrap().0.parse().unwrap()
    }

    /// Instances in threads stand for processes (each its own cache, stripes and
    /// mapping of the table). Changes of an id are serialised by a lock that also
    /// records the last completed one; a read that no change overlapped must return
    /// exactly that one: no instance ever serves a value another replaced or deleted.
    fn instances_never_serve_a_replaced_value(s: &Setup) {
        const IDS: usize = 3;
        let latest: Vec<Mutex<i64>> = (0..IDS).map(|_| Mutex::new(0)).collect();
        let busy: Vec<AtomicU64> = (0..IDS).map(|_| AtomicU64::new(0)).collect();
        let tickets = AtomicU64::new(0);
        let ids: Vec<String> = (0..IDS).map(|i| format!("checked-{i}")).collect();
        let reads = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 0..4usize {
                let st = s.open(true, true);
                let (latest, busy, tickets, ids, reads) = (&latest, &busy, &tickets, &ids, &reads);
                scope.spawn(move || {
                    for n in 0..1500usize {
                        let i = (n * 7 + t * 3) % IDS;
                        let id = &ids[i];
                        let op = (n * 13 + t * 5) % 20;
                        if op < 6 {
                            let mut last = latest[i].lock().unwrap();
                            busy[i].fetch_add(1, Ordering::SeqCst);
                            let ticket = tickets.fetch_add(1, Ordering::SeqCst) + 1;
                            let v = ticketed(ticket, n);
                            let stored = match op {
                                0 | 1 => st.write(id, &v, 3600).map(|()| true).unwrap(),
                                2 => st.update(id, &v, 3600).unwrap(),
                                3 => st.create(id, &v, 3600).unwrap(),
                                4 => {
                                    st.invalidate(id).unwrap();
                                    *last = -(ticket as i64);
                                    false
                                }
                                _ => {
                                    st.touch(id, 3600).unwrap();
                                    false
                                }
                            };
                            if stored {
                                *last = ticket as i64;
                            }
                            busy[i].fetch_add(1, Ordering::SeqCst);
                        } else {
                            let b0 = busy[i].load(Ordering::SeqCst);
                            let before = *latest[i].lock().unwrap();
                            let got = st.read(id).unwrap().map(|v| ticket_of(&v));
                            let after = *latest[i].lock().unwrap();
                            let b1 = busy[i].load(Ordering::SeqCst);
                            if b0 % 2 == 0 && b0 == b1 && before == after {
                                let want = u64::try_from(before).ok().filter(|&t| t > 0);
                                assert_eq!(got, want, "{id}: last completed change {before}");
                                reads.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        assert!(reads.load(Ordering::Relaxed) > 1000, "reads were checked");
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

    fn touch_extends_without_rewriting(s: &Setup) {
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

    fn failed_rename_leaves_no_temp_file_and_the_old_value(s: &Setup) {
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
        let (stripe, slot) =
            entry_lanes(path.file_name().unwrap().to_str().unwrap(), &leaf).unwrap();
        let loc = st.locate("abc");
        assert_eq!(
            (stripe, slot),
            (loc.stripe, loc.slot),
            "gc finds the same lanes"
        );
        assert!(!st
            .collect(&path, &leaf, stripe, slot, s.clock.now())
            .unwrap());
        assert_eq!(st.read("abc").unwrap().as_deref(), Some("new"));
        assert!(temp_files(&s.root()).is_empty());
    }

    fn threads_share_ids_without_torn_or_stale_values(s: &Setup) {
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

    fn invalidate_tells_whether_a_live_entry_was_deleted(s: &Setup) {
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

    fn create_stores_only_when_no_live_entry(s: &Setup) {
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

    fn concurrent_creates_have_exactly_one_winner(s: &Setup) {
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

    fn update_replaces_only_a_live_entry(s: &Setup) {
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

    fn racing_updates_never_undo_an_invalidate(s: &Setup) {
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

    fn read_ttl_gives_the_time_left(s: &Setup) {
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
        st.write("short", "v", 10).unwrap();
        st.write("long", "v", 1000).unwrap();
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
        assert_eq!(st.gc().unwrap(), 1);
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
    fn gc_removes_the_markers_of_entries_that_are_gone() {
        let s = Setup::new();
        let st = s.open(true, true);
        st.write("kept", "v", 1000).unwrap();
        st.write("ended", "v", 1000).unwrap();
        st.write("expired", "v", 10).unwrap();
        // markers outliving their entries: an invalidated session, one whose entry
        // expired before its marker, one whose entry was deleted by hand
        st.index_add("ann", "kept", 1000).unwrap();
        st.index_add("ann", "ended", 1000).unwrap();
        st.index_add("ann", "expired", 1000).unwrap();
        st.index_add("ann", "never", 1000).unwrap();
        st.index_add("bob", "kept", 1000).unwrap();
        assert!(st.invalidate("ended").unwrap());
        s.advance(20);
        assert_eq!(st.gc().unwrap(), 1);
        assert_eq!(st.index_list("ann").unwrap(), ["kept"]);
        assert_eq!(
            st.index_list("bob").unwrap(),
            ["kept"],
            "another owner's live marker"
        );
        let ann = st.owner_path("ann").unwrap();
        assert_eq!(fs::read_dir(&ann).unwrap().count(), 1);
        assert!(temp_files(&s.root()).is_empty());
        fs::remove_file(st.entry_path("kept").unwrap()).unwrap();
        assert_eq!(st.gc().unwrap(), 0);
        assert!(st.index_list("ann").unwrap().is_empty());
        assert!(st.index_list("bob").unwrap().is_empty());
        // an entry that is back by the second look keeps its marker
        st.index_add("cy", "late", 1000).unwrap();
        let marker = st.owner_path("cy").unwrap().join(base32_encode(b"late"));
        let dir = marker.parent().unwrap().to_owned();
        let now = s.clock.now();
        let kept = take_if(&marker, &dir, |_| {
            st.write("late", "v", 1000).unwrap();
            fs::symlink_metadata(st.entry_path("late").unwrap()).is_ok_and(|m| os::mtime(&m) <= now)
        })
        .unwrap();
        assert_eq!(kept, Taken::Kept);
        assert_eq!(st.gc().unwrap(), 0);
        assert_eq!(st.index_list("cy").unwrap(), ["late"]);
        // a marker whose entry cannot be looked at stays (and is no error)
        #[cfg(unix)]
        if !running_as_root() {
            use std::os::unix::fs::PermissionsExt;
            let entry = st.entry_path("late").unwrap();
            let leaf = entry.parent().unwrap().to_owned();
            fs::remove_file(&entry).unwrap();
            fs::set_permissions(&leaf, fs::Permissions::from_mode(0o000)).unwrap();
            let swept = st.gc();
            fs::set_permissions(&leaf, fs::Permissions::from_mode(0o700)).unwrap();
            assert!(swept.is_err(), "the unlistable leaf is reported");
            assert_eq!(st.index_list("cy").unwrap(), ["late"]);
        }
    }

    #[cfg(unix)]
    fn running_as_root() -> bool {
        use std::os::unix::fs::MetadataExt;
        fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }

    #[test]
    fn the_layout_file_marks_a_storage_folder() {
        let s = Setup::new();
        let root = s.root();
        assert!(!holds_layout(&root).unwrap(), "missing");
        fs::create_dir_all(root.join("ab")).unwrap();
        fs::write(root.join("notes.txt"), b"x").unwrap();
        fs::write(root.join("ab").join("cd"), b"a file, not a leaf").unwrap();
        fs::write(root.join(".ferrosession-changes.0123456789abcdef.tmp"), b"").unwrap();
        assert!(!holds_layout(&root).unwrap(), "unrelated files");
        let st = s.open(false, false);
        let layout = root.join(LAYOUT_FILE);
        assert_eq!(fs::read(&layout).unwrap(), LAYOUT_TEXT);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&layout).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(holds_layout(&root).unwrap());
        // opened again: the file is left as it is
        fs::write(&layout, b"edited").unwrap();
        drop(st);
        let again = s.open(false, false);
        assert_eq!(fs::read(&layout).unwrap(), b"edited");
        assert_eq!(again.gc().unwrap(), 0);
        // the older signs, each on its own
        for sign in ["table", "owners", "shards"] {
            let other = s.dir.join(sign);
            fs::create_dir_all(&other).unwrap();
            match sign {
                "table" => fs::write(other.join(CHANGE_TABLE_FILE), b"").unwrap(),
                "owners" => fs::create_dir(other.join(OWNERS_DIR)).unwrap(),
                _ => fs::create_dir_all(other.join("0f").join("a1")).unwrap(),
            }
            assert!(holds_layout(&other).unwrap(), "{sign}");
        }
        // a folder of the same names but of other kinds is not one
        let odd = s.dir.join("odd");
        fs::create_dir_all(odd.join(LAYOUT_FILE)).unwrap();
        fs::create_dir_all(odd.join(CHANGE_TABLE_FILE)).unwrap();
        fs::write(odd.join(OWNERS_DIR), b"").unwrap();
        fs::create_dir_all(odd.join("0F").join("a1")).unwrap();
        assert!(!holds_layout(&odd).unwrap());
        assert!(holds_layout(&s.dir.join("notes.txt").join("x")).is_ok_and(|h| !h));
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
        assert_eq!(entry_lanes(&name, leaf), Some((0, 0)));
        assert_eq!(entry_lanes(&name.replace("abcd", "abce"), leaf), None);
        assert_eq!(entry_lanes("abcd", leaf), None);
        assert_eq!(entry_lanes(CHANGE_TABLE_FILE, leaf), None);
        assert!(!is_shard_name(CHANGE_TABLE_FILE));
    }
}
