//! `DirectoryStorage::gc`: the sweep of expired entries, stale temp files and the owner
//! index.
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

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::clock::{duration_nanos, UnixNanos};
use super::files::{is_absent, os, storage_error, take_if, Taken};
use super::layout::{entry_lanes, is_shard_name, OWNERS_DIR, TEMP_PREFIX};
use super::owners::marker_key;
use super::{change_table, DirectoryStorage};
use crate::error::{CoreError, Result};

/// `gc` removes temp files whose last status change is older than this: a live write
/// holds its temp file for microseconds, so these are left by a crashed writer.
pub const STALE_TEMP: Duration = Duration::from_secs(600);

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

impl DirectoryStorage {
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

    /// The index part of `gc`: deletes expired markers (and those whose entry is
    /// gone) and stale temp files, and owner folders left empty for `STALE_TEMP` (an
    /// `index_add` that finds its folder gone creates it again).
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
                        Ok(fs::symlink_metadata(grave).is_ok_and(|m| os::mtime(&m) <= now))
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
        take_if(marker, dir, |_| Ok(entry_gone()))
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
        // a moved file it cannot stat is not known to be expired: it goes back
        let expired =
            |grave: &Path| Ok(fs::symlink_metadata(grave).is_ok_and(|m| os::mtime(&m) <= now));
        Ok(matches!(take_if(path, leaf, expired)?, Taken::Removed))
    }
}

#[cfg(test)]
mod tests {
    use super::super::owners::base32_encode;
    use super::super::test_support::*;
    use super::super::*;
    use super::*;

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
            take_if(&marker, &user1, |g| Ok(
                fs::metadata(g).is_ok_and(|m| os::mtime(&m) <= later)
            ))
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
            Ok(fs::symlink_metadata(st.entry_path("late").unwrap())
                .is_ok_and(|m| os::mtime(&m) <= now))
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
