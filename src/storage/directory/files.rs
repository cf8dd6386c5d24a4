//! Atomic file operations of a `DirectoryStorage`: temp files, the kernel's rename
//! variants, taking a file aside before deleting it, reading and touching records, and
//! the platform's file metadata (see the parent module's "Writes" and "Create, update,
//! invalidate").

use std::fs::{self, File, FileTimes};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::super::clock::{from_unix_nanos, UnixNanos};
use super::super::record;
use super::coherence::Change;
use super::layout::TEMP_PREFIX;
use crate::error::{CoreError, Result};

/// A file larger than this is not a record (reads as absent without being read).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// What identifies one version of a file: changes whenever another writer replaces,
/// deletes and re-creates, or touches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Validator {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) size: u64,
    pub(super) mtime: UnixNanos,
    pub(super) ctime: UnixNanos,
}

#[cfg(unix)]
pub(super) mod os {
    use super::Validator;
    use crate::storage::clock::{UnixNanos, NANOS_PER_SEC};
    use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
    use std::io;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    fn nanos(secs: i64, nsec: i64) -> UnixNanos {
        secs.saturating_mul(NANOS_PER_SEC).saturating_add(nsec)
    }

    pub(in super::super) fn validator(m: &fs::Metadata) -> Validator {
        Validator {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: mtime(m),
            ctime: ctime(m),
        }
    }

    pub(in super::super) fn mtime(m: &fs::Metadata) -> UnixNanos {
        nanos(m.mtime(), m.mtime_nsec())
    }

    /// The last status change (set by the kernel; a rename or chmod updates it).
    pub(in super::super) fn ctime(m: &fs::Metadata) -> UnixNanos {
        nanos(m.ctime(), m.ctime_nsec())
    }

    pub(in super::super) fn create_new_private(path: &Path) -> io::Result<File> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        // exactly 0600, whatever the umask
        file.set_permissions(Permissions::from_mode(0o600))?;
        Ok(file)
    }

    pub(in super::super) fn create_private_dirs(path: &Path) -> io::Result<()> {
        DirBuilder::new().recursive(true).mode(0o700).create(path)
    }
}

#[cfg(not(unix))]
pub(super) mod os {
    use super::Validator;
    use crate::storage::clock::{to_unix_nanos, UnixNanos};
    use std::fs::{self, File, OpenOptions};
    use std::io;
    use std::path::Path;

    pub(in super::super) fn validator(m: &fs::Metadata) -> Validator {
        Validator {
            dev: 0,
            ino: 0,
            size: m.len(),
            mtime: mtime(m),
            ctime: m.created().map(to_unix_nanos).unwrap_or(0),
        }
    }

    pub(in super::super) fn mtime(m: &fs::Metadata) -> UnixNanos {
        m.modified().map(to_unix_nanos).unwrap_or(0)
    }

    pub(in super::super) fn ctime(m: &fs::Metadata) -> UnixNanos {
        mtime(m)
    }

    pub(in super::super) fn create_new_private(path: &Path) -> io::Result<File> {
        OpenOptions::new().write(true).create_new(true).open(path)
    }

    pub(in super::super) fn create_private_dirs(path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
}

pub(super) fn storage_error(what: &str, path: &Path, e: &io::Error) -> CoreError {
    CoreError::Storage(format!("{what} {}: {e}", path.display()))
}

/// The call failed because the entry, or a folder on its path, does not exist: the
/// only failure that means "no entry". Anything else, `NotADirectory` included (a
/// folder of the layout replaced by a file), is a broken storage, never an absent entry.
pub(super) fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

pub(super) fn random_hex() -> Result<String> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).map_err(|e| CoreError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// The result of a file read.
pub(super) enum Loaded {
    Absent,
    Present {
        value: String,
        expires_at: UnixNanos,
        validator: Validator,
    },
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
pub(super) fn write_temp(
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
pub(super) enum Swap {
    /// Fails with `AlreadyExists` when the target exists.
    NoReplace,
    /// Exchanges two existing paths; fails with `NotFound` when either is missing.
    Exchange,
}

/// Renames `from` to `to` the `how` way; `Unsupported` where the system or the
/// filesystem does not offer it.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
pub(super) fn rename_with(from: &Path, to: &Path, how: Swap) -> io::Result<()> {
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
pub(super) fn rename_with(_from: &Path, _to: &Path, _how: Swap) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Moves `from` to `to` unless something is at `to` (`AlreadyExists`): a no-replace
/// rename, or a hard link (which never replaces) and an unlink where that is missing.
pub(super) fn move_no_replace(from: &Path, to: &Path) -> io::Result<()> {
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
pub(super) fn live_at(path: &Path, now: UnixNanos) -> io::Result<Option<fs::Metadata>> {
    match File::open(path) {
        Ok(mut file) => live_file(&mut file, now),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `take_if` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
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
/// with a no-replace move (a newer write that took its place meanwhile wins). When
/// `doomed` cannot tell (an error), the file goes back too and the error is returned.
pub(super) fn take_if(
    path: &Path,
    dir: &Path,
    doomed: impl FnOnce(&Path) -> io::Result<bool>,
) -> Result<Taken> {
    let grave = dir.join(format!("{TEMP_PREFIX}gc-{}", random_hex()?));
    match fs::rename(path, &grave) {
        Ok(()) => {}
        Err(e) if is_absent(&e) => return Ok(Taken::Absent),
        Err(e) => return Err(storage_error("cannot delete session file", path, &e)),
    }
    let verdict = doomed(&grave);
    if matches!(verdict, Ok(true)) {
        fs::remove_file(&grave)
            .map_err(|e| storage_error("cannot delete session file", &grave, &e))?;
        return Ok(Taken::Removed);
    }
    put_back(&grave, path)?;
    match verdict {
        Err(e) => Err(storage_error("cannot read session file", path, &e)),
        Ok(_) => Ok(Taken::Kept),
    }
}

/// Moves a file taken aside to `grave` back to `path`, unless a newer write took
/// its place meanwhile (that one wins, and the old file is dropped).
fn put_back(grave: &Path, path: &Path) -> Result<()> {
    match move_no_replace(grave, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(grave);
            Ok(())
        }
        Err(_) => {
            // no hard links on this filesystem: a plain rename back
            fs::rename(grave, path)
                .map_err(|e| storage_error("cannot restore session file", path, &e))
        }
    }
}

/// The file work of `invalidate`: moves the entry aside, checks it, deletes it.
pub(super) fn remove_entry(path: &Path, dir: &Path, now: UnixNanos) -> Result<bool> {
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
    // an unreadable file still goes (the caller wants it gone), but whether it was
    // live is unknown: an error, never a "was not live" that reads as a logout
    let live = live_at(&grave, now);
    fs::remove_file(&grave).map_err(|e| storage_error("cannot delete session file", &grave, &e))?;
    live.map(|meta| meta.is_some())
        .map_err(|e| storage_error("cannot read session file", path, &e))
}

/// `update` where the exchange is missing: move the entry aside, check it, and rename
/// the new record in. Readers may see no entry between the two renames.
pub(super) fn update_by_moving(
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
    let was_live = match live_at(&grave, now) {
        Ok(meta) => meta.is_some(),
        Err(e) => {
            // unknown: the old entry goes back, the update is an error, not a false
            let _ = fs::remove_file(tmp);
            put_back(&grave, path)?;
            return Err(storage_error("cannot read session file", path, &e));
        }
    };
    let moved = if was_live {
        fs::rename(tmp, path).map_err(|e| write_error(&e))
    } else {
        Ok(())
    };
    let _ = fs::remove_file(tmp);
    let _ = fs::remove_file(&grave);
    moved.map(|()| was_live.then_some(file))
}

/// Reads and checks the entry file at `path`.
pub(super) fn load(path: &Path, now: UnixNanos) -> Result<Loaded> {
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
pub(super) fn touch_file(
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    use super::*;

    in_both_modes!(failed_rename_leaves_no_temp_file_and_the_old_value,);

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
        assert_eq!(take_if(&path, &dir, |_| Ok(true)).unwrap(), Taken::Absent);
        fs::write(&path, b"old").unwrap();
        assert_eq!(take_if(&path, &dir, |_| Ok(false)).unwrap(), Taken::Kept);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        // a writer puts a new file there while the old one is aside
        let kept = take_if(&path, &dir, |_| {
            fs::write(&path, b"new").unwrap();
            Ok(false)
        });
        assert_eq!(kept.unwrap(), Taken::Kept);
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(take_if(&path, &dir, |_| Ok(true)).unwrap(), Taken::Removed);
        assert!(!path.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "no grave left");
    }
}
