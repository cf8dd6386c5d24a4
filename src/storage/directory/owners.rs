//! The owner index of a `DirectoryStorage`: one marker file per (owner, key) under
//! `ROOT/owners/` (see `layout.rs`), named by the key in base32.

use std::path::PathBuf;
use std::{fs, io};

use sha2::{Digest, Sha256};

use super::files::{is_absent, os, storage_error, write_temp};
use super::layout::{invalid_id, is_valid_id, OWNERS_DIR};
use super::{ttl_nanos, DirectoryStorage};
use crate::error::Result;

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Unpadded lowercase RFC 4648 base32: index marker names, so that keys differing
/// only by case stay apart on case-insensitive filesystems (128 bytes → 205 chars).
pub(super) fn base32_encode(bytes: &[u8]) -> String {
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
pub(super) fn marker_key(name: &str) -> Option<String> {
    let key = String::from_utf8(base32_decode(name)?).ok()?;
    (is_valid_id(&key) && base32_encode(key.as_bytes()) == name).then_some(key)
}

impl DirectoryStorage {
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
}

#[cfg(test)]
mod tests {
    use super::super::layout::is_shard_name;
    use super::super::test_support::*;
    use super::super::*;
    use super::*;

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
}
