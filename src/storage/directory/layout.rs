//! Layout and names of a `DirectoryStorage` folder: where an id's entry and an owner's
//! index markers live, which names are ids, shards and markers, and the layout file
//! that says a folder is a storage's.
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
//! `ROOT/.ferrosession-changes` is the change table (see `coherence.rs`):
//! its name starts with a dot, so it is never a shard folder, an entry, a temp file
//! or `owners`, and `gc` (which walks the two-hex-digit folders) leaves it alone; in
//! the root it only removes the table's own temp files a process left when it died
//! while making the table (`.ferrosession-changes.<hex>.tmp`, after `STALE_TEMP`).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::change_table::SLOTS;
use super::coherence::STRIPES;
use super::files::{is_absent, os, storage_error};
use super::CHANGE_TABLE_FILE;
use crate::error::{CoreError, Result};

/// The longest accepted session id.
pub const MAX_ID_LEN: usize = 128;

pub(super) const TEMP_PREFIX: &str = ".tmp-";

/// The file that marks a folder as a `DirectoryStorage` (see the module documentation).
pub const LAYOUT_FILE: &str = ".ferrosession-layout";

/// What `LAYOUT_FILE` holds (for a person who finds the folder).
const LAYOUT_TEXT: &[u8] = b"ferrosession DirectoryStorage folder (layout 1)\n";

/// The folder of the owner index, beside the shard folders (which are two hex digits,
/// so never this name).
pub(super) const OWNERS_DIR: &str = "owners";

/// True for ids of `[A-Za-z0-9_-]{1,128}`: the only ids the storage knows.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Makes `LAYOUT_FILE` in `root` if it is missing. Best effort: a folder the process
/// may read but not write still opens (`holds_layout` also knows older signs).
pub(super) fn ensure_layout_file(root: &Path) {
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
        // a file at `root` (NotADirectory) holds no layout either: a predicate, not
        // a storage operation
        Err(e) if is_absent(&e) || e.kind() == io::ErrorKind::NotADirectory => return Ok(false),
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
pub(super) fn invalid_id(what: &str, id: &str) -> CoreError {
    let shown: String = id.chars().take(40).collect();
    CoreError::Config(format!(
        "invalid {what} {shown:?}: a storage id is 1 to {MAX_ID_LEN} characters \
         of A-Z, a-z, 0-9, '_' and '-'"
    ))
}

pub(super) fn check_id(id: &str) -> Result<()> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(invalid_id("session id", id))
    }
}

pub(super) fn is_shard_name(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// For an entry file name (64 lowercase hex, in the leaf its first 4 digits name), its
/// lock stripe and change-table slot (as `locate` gives them); `None` for any other
/// file.
pub(super) fn entry_lanes(name: &str, leaf: &Path) -> Option<(usize, usize)> {
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
pub(super) fn slot_of(bytes: &[u8]) -> usize {
    let word = u32::from_be_bytes(bytes.try_into().expect("four bytes"));
    usize::try_from(word).unwrap_or(0) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    use super::*;

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
}
