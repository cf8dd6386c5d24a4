//! Cross-process coherence of a `DirectoryStorage`'s cache: the lock stripes, the
//! change guard that counts every change in the change table (`change_table.rs`), and
//! how a cache hit is revalidated.
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

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::change_table::ChangeTable;
use super::DirectoryStorage;

/// Number of lock stripes ordering the operations on one id within the process.
pub(super) const STRIPES: usize = 64;

/// Orders the operations on the ids of one stripe within the process.
#[derive(Debug, Default)]
pub(super) struct Stripe {
    pub(super) lock: Mutex<()>,
    /// Odd while a write, invalidation or touch is in progress; bumped before and
    /// after each.
    pub(super) generation: AtomicU64,
}

/// An entry taken for a change (write, create, update, invalidate, touch, gc
/// removal): its stripe's lock, the stripe busy (odd generation), and the change
/// counted as begun in the change table (when there is one), until dropped; then
/// counted as done (also on error paths and panics). Fields drop in order: the table
/// counts the change done, then the stripe is marked idle, then its lock released.
pub(super) struct Change<'a> {
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
    pub(super) fn about_to_change(&self) {
        if let Some(t) = &self.table {
            t.settled
                .set(t.table.done(t.slot) == t.begun.wrapping_sub(1));
        }
    }

    /// After the change: the tag its result may be cached under (this change's
    /// `begun`), when every earlier change had finished before it (see
    /// `about_to_change`) and no other has begun since. `None` otherwise, or without
    /// a table.
    pub(super) fn tag(&self) -> Option<u64> {
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
pub(super) enum HitCheck<'a> {
    Trust,
    Table(&'a ChangeTable),
    Stat,
}

impl DirectoryStorage {
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

    pub(super) fn hit_check(&self) -> HitCheck<'_> {
        if !self.shared {
            return HitCheck::Trust;
        }
        match &self.table {
            Ok(table) if !self.force_stat && !table.retired() => HitCheck::Table(table),
            _ => HitCheck::Stat,
        }
    }

    /// Takes the entry at `stripe`, `slot` for a change (see `Change`).
    pub(super) fn change(&self, stripe: usize, slot: usize) -> Change<'_> {
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
}

#[cfg(test)]
mod tests {
    use super::super::change_table::SLOTS;
    use super::super::test_support::*;
    use super::super::*;
    use super::*;

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
}
