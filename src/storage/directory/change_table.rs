//! The change table of a `DirectoryStorage` folder: the file `.ferrosession-changes`
//! in the storage root, mapped shared (`MAP_SHARED`) by every process that opens the
//! folder, holding two counters per slot (`begun`, `done`) of the changes made to the
//! entries whose ids hash to that slot. The protocol, and why a cache hit checked
//! against it is as good as the `lstat` it replaces, are in `coherence.rs`
//! ("Cache and concurrency").
//!
//! # The file (layout version 1)
//! Little-endian (native; the file never leaves the host), 64-bit words:
//! * word 0: magic `"fs-chtbl"`; word 1: `version << 32 | slots` (1, 65 536);
//! * word 2: *retired*: nonzero means "do not trust this table", set (never cleared)
//!   by any process that opens the folder but will not keep the table's counters: a
//!   different layout version, a process that cannot map the file, or one that sees
//!   the folder through a network filesystem (another host, whose mapping would not
//!   be coherent with this host's). Every cache hit checks it. Words 0–2 keep their
//!   meaning in every later version; a later version that changes the rest of the
//!   layout retires a version-1 table it finds, and honours this word.
//! * words 3–7: zero (reserved); then 65 536 slots of `begun`, `done`.
//!
//! A process that finds no table makes one whole: a temp file beside it
//! (`.ferrosession-changes.<random>.tmp`, `O_EXCL`, mode 0600) gets the header and
//! zeros for every slot through `write(2)`, and is moved into place without replacing
//! (`renameat2(RENAME_NOREPLACE)`, or a hard link); of racing processes one wins and
//! the others remove their temp file and open the winner's. So nobody ever sees a
//! partly made table, and every block of the file is allocated before anyone maps
//! it: a store through the mapping never has to allocate, which on a full filesystem
//! would kill the process with `SIGBUS` instead of failing a write with an error.
//! That guarantee does not hold on copy-on-write or log-structured filesystems
//! (btrfs, ZFS, bcachefs, F2FS, NILFS: every rewrite of a page needs new space), so
//! there the storage does not use the table (hits are revalidated by `lstat`).
//!
//! The file is never shrunk: truncating or deleting it while processes use it breaks
//! the protocol (truncating crashes them with `SIGBUS` when they touch the lost pages;
//! deleting it splits them between two tables). Delete it only while no process uses
//! the folder (that also clears the retired mark and any slot a killed writer left
//! busy). A mapped table, like an open file, keeps its filesystem busy: it cannot be
//! unmounted while a storage on it is alive.
//!
//! This is the crate's only `unsafe` code: mapping the file, unmapping it, and
//! viewing the mapped words as `AtomicU64`.
#![allow(unsafe_code)]

use std::fmt;

/// The table's file name in the storage root. It starts with a dot, so it is never a
/// shard folder (two hex digits), an entry (64 hex digits) or `owners`.
pub const FILE_NAME: &str = ".ferrosession-changes";

/// Whether `name` is one of the temp files a table is made in
/// (`.ferrosession-changes.<16 hex digits>.tmp`).
pub(super) fn is_temp_name(name: &str) -> bool {
    name.strip_prefix(FILE_NAME)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Slots in the table (a power of two): ids hash to one each. Ids sharing a slot
/// only cost each other cache hits (a change of one drops the others' cached values).
pub(super) const SLOTS: usize = 1 << 16;

/// Why a folder's cache hits are revalidated by `lstat` instead of by the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NoTable {
    /// Not Linux (or no 64-bit atomics).
    #[cfg_attr(
        all(
            any(target_os = "linux", target_os = "android"),
            target_has_atomic = "64"
        ),
        allow(dead_code)
    )]
    Unsupported,
    /// The folder is on a network or cluster filesystem (the name of its type).
    Network(&'static str),
    /// The folder is on a copy-on-write or log-structured filesystem (its type).
    CopyOnWrite(&'static str),
    /// The file could not be opened, sized or mapped.
    Failed(String),
    /// The file is too short, or is not a change table.
    Damaged,
    /// The table is marked retired (see the module documentation).
    Retired,
}

impl fmt::Display for NoTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoTable::Unsupported => f.write_str("no change table on this system"),
            NoTable::Network(kind) => write!(f, "a network filesystem ({kind})"),
            NoTable::CopyOnWrite(kind) => write!(f, "a copy-on-write filesystem ({kind})"),
            NoTable::Failed(e) => f.write_str(e),
            NoTable::Damaged => write!(f, "{FILE_NAME} is damaged or not a change table"),
            NoTable::Retired => write!(f, "{FILE_NAME} is retired"),
        }
    }
}

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    target_has_atomic = "64"
))]
pub(super) use linux::{open, ChangeTable};

#[cfg(all(
    test,
    any(target_os = "linux", target_os = "android"),
    target_has_atomic = "64"
))]
pub(super) use linux::TEST_FILE_BYTES;

#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    target_has_atomic = "64"
)))]
pub(super) use elsewhere::{open, ChangeTable};

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    target_has_atomic = "64"
))]
mod linux {
    use super::super::files::{move_no_replace, random_hex};
    use super::{NoTable, FILE_NAME, SLOTS};
    use std::ffi::c_void;
    use std::fs::{self, File, OpenOptions, Permissions};
    use std::io::{self, Write};
    use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;
    use std::ptr::{self, NonNull};
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    const MAGIC: u64 = u64::from_le_bytes(*b"fs-chtbl");
    const VERSION: u64 = 1;
    const LAYOUT: u64 = (VERSION << 32) | SLOTS as u64;
    const HEADER_WORDS: usize = 8;
    const RETIRED_WORD: usize = 2;
    const WORDS: usize = HEADER_WORDS + 2 * SLOTS;
    const FILE_BYTES: usize = WORDS * 8;

    /// Filesystems whose mappings are not coherent between hosts (or whose
    /// coherence we cannot vouch for), by `statfs` `f_type`.
    const NETWORK_FS: &[(u32, &str)] = &[
        (0x6969, "nfs"),
        (0x517B, "smb"),
        (0xFE53_4D42, "smb2"),
        (0xFF53_4D42, "cifs"),
        (0x6573_5546, "fuse"),
        (0x00C3_6400, "ceph"),
        (0x5346_414F, "afs"),
        (0x6B41_4653, "kafs"),
        (0x7375_7245, "coda"),
        (0x0102_1997, "9p"),
        (0x564C, "ncp"),
        (0x7461_636F, "ocfs2"),
        (0x0116_1970, "gfs2"),
        (0x0BD0_0BD0, "lustre"),
        (0x4750_4653, "gpfs"),
        (0x1983_0326, "beegfs"),
    ];

    /// Filesystems where a store into a mapped page may need new space (so may fail
    /// with `SIGBUS` when the filesystem is full, however the file was allocated).
    const COPY_ON_WRITE_FS: &[(u32, &str)] = &[
        (0x9123_683E, "btrfs"),
        (0x2FC1_2FC1, "zfs"),
        (0xCA45_1A4E, "bcachefs"),
        (0xF2F5_2010, "f2fs"),
        (0x3434, "nilfs"),
    ];

    /// What `root` is on, when it is a filesystem the table is not used on.
    fn unsuitable_fs(root: &Path) -> Option<NoTable> {
        let st = rustix::fs::statfs(root).ok()?;
        // the magic numbers are 32-bit; f_type is a signed word of either width
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let kind = st.f_type as u32;
        let find =
            |list: &[(u32, &'static str)]| list.iter().find(|(m, _)| *m == kind).map(|(_, n)| *n);
        find(NETWORK_FS)
            .map(NoTable::Network)
            .or_else(|| find(COPY_ON_WRITE_FS).map(NoTable::CopyOnWrite))
    }

    /// A shared read-write mapping of the first `FILE_BYTES` of the table file.
    #[derive(Debug)]
    struct Mapping(NonNull<c_void>);

    // SAFETY: the mapping is plain memory that is only ever accessed through
    // `AtomicU64` (see `words`), which is `Sync`; the pointer is owned by this value
    // and unmapped once, on drop.
    unsafe impl Send for Mapping {}
    // SAFETY: as above.
    unsafe impl Sync for Mapping {}

    impl Mapping {
        fn new(file: &File) -> std::io::Result<Self> {
            use rustix::mm::{mmap, MapFlags, ProtFlags};
            // SAFETY: a new mapping at an address the kernel picks (null hint), so no
            // existing memory is affected; the caller checked that the file is at
            // least FILE_BYTES long, so every mapped page is backed.
            let ptr = unsafe {
                mmap(
                    ptr::null_mut(),
                    FILE_BYTES,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED,
                    file,
                    0,
                )
            }?;
            NonNull::new(ptr)
                .map(Self)
                .ok_or_else(|| std::io::Error::other("mmap returned null"))
        }

        /// The mapped words.
        fn words(&self) -> &[AtomicU64] {
            // SAFETY: the mapping is FILE_BYTES = WORDS * 8 long, page-aligned (so
            // aligned for AtomicU64, which has the size and alignment of u64), readable
            // and writable, and lives as long as `self`. Other processes change these
            // words concurrently, but only through atomic operations of the same
            // width (this protocol), which is what AtomicU64 allows.
            unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<AtomicU64>(), WORDS) }
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`, unmapped once; no reference from
            // `words` outlives `self`.
            let _ = unsafe { rustix::mm::munmap(self.0.as_ptr(), FILE_BYTES) };
        }
    }

    /// A folder's change table, mapped.
    #[derive(Debug)]
    pub(in super::super) struct ChangeTable {
        map: Mapping,
    }

    impl ChangeTable {
        fn word(&self, i: usize) -> &AtomicU64 {
            &self.map.words()[i]
        }

        fn begun_word(&self, slot: usize) -> &AtomicU64 {
            self.word(HEADER_WORDS + 2 * (slot % SLOTS))
        }

        fn done_word(&self, slot: usize) -> &AtomicU64 {
            self.word(HEADER_WORDS + 2 * (slot % SLOTS) + 1)
        }

        /// Changes of `slot` begun so far, in any process.
        pub(in super::super) fn begun(&self, slot: usize) -> u64 {
            self.begun_word(slot).load(SeqCst)
        }

        /// Changes of `slot` finished so far, in any process.
        pub(in super::super) fn done(&self, slot: usize) -> u64 {
            self.done_word(slot).load(SeqCst)
        }

        /// `begun` when no change of `slot` is in progress (it equals `done`), read
        /// `begun` first: the tag a file read started after this call may be cached
        /// under.
        pub(in super::super) fn settled(&self, slot: usize) -> Option<u64> {
            let begun = self.begun(slot);
            (self.done(slot) == begun).then_some(begun)
        }

        /// Marks a change of `slot` begun; returns `begun` counting it.
        pub(in super::super) fn begin(&self, slot: usize) -> u64 {
            self.begun_word(slot).fetch_add(1, SeqCst).wrapping_add(1)
        }

        /// Marks a change of `slot` finished.
        pub(in super::super) fn finish(&self, slot: usize) {
            self.done_word(slot).fetch_add(1, SeqCst);
        }

        /// True once any process has marked the table retired.
        pub(in super::super) fn retired(&self) -> bool {
            self.word(RETIRED_WORD).load(SeqCst) != 0
        }

        /// Marks the table retired, for every process.
        pub(in super::super) fn retire(&self) {
            self.word(RETIRED_WORD).store(1, SeqCst);
        }
    }

    fn failed(what: &str, e: &std::io::Error) -> NoTable {
        NoTable::Failed(format!("{what} {FILE_NAME}: {e}"))
    }

    /// Marks the table in `file` retired without mapping it, unless the file is
    /// something else (word 0 is not the magic).
    fn retire_file(file: &File) {
        let mut magic = [0u8; 8];
        let len = file.metadata().map_or(0, |m| m.len());
        if len < 24 || file.read_exact_at(&mut magic, 0).is_err() {
            return;
        }
        if u64::from_le_bytes(magic) == MAGIC {
            let _ = file.write_all_at(&1u64.to_le_bytes(), (RETIRED_WORD * 8) as u64);
        }
    }

    /// Makes the table file at `path` (in `root`) if there is none: written whole
    /// to a temp file, then moved into place without replacing (see the module
    /// documentation).
    fn ensure_file(root: &Path, path: &Path) -> Result<(), NoTable> {
        if fs::symlink_metadata(path).is_ok() {
            return Ok(());
        }
        let hex = random_hex().map_err(|e| NoTable::Failed(e.to_string()))?;
        let tmp = root.join(format!("{FILE_NAME}.{hex}.tmp"));
        let made = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| {
                // exactly 0600, whatever the umask
                file.set_permissions(Permissions::from_mode(0o600))?;
                let mut bytes = vec![0u8; FILE_BYTES];
                bytes[..8].copy_from_slice(&MAGIC.to_le_bytes());
                bytes[8..16].copy_from_slice(&LAYOUT.to_le_bytes());
                file.write_all(&bytes)
            })
            .and_then(|()| match move_no_replace(&tmp, path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                done => done,
            });
        let _ = fs::remove_file(&tmp);
        made.map_err(|e| failed("cannot make", &e))
    }

    /// The change table of the folder `root` (which exists), made if missing.
    pub(in super::super) fn open(root: &Path) -> Result<ChangeTable, NoTable> {
        let path = root.join(FILE_NAME);
        match unsuitable_fs(root) {
            Some(why @ NoTable::Network(_)) => {
                // Processes on the file server itself would map the file coherently
                // with each other but not with us: make sure none of them trusts it.
                // Made (retired) if missing, so that one started later does not either.
                if ensure_file(root, &path).is_ok() {
                    if let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) {
                        retire_file(&file);
                        let _ = file.sync_data();
                    }
                }
                return Err(why);
            }
            // every process of this host sees the same filesystem: none uses the table
            Some(why) => return Err(why),
            None => {}
        }
        ensure_file(root, &path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| failed("cannot open", &e))?;
        let len = file
            .metadata()
            .map_err(|e| failed("cannot stat", &e))?
            .len();
        if len < FILE_BYTES as u64 {
            // truncated, or a layout this version does not know
            retire_file(&file);
            return Err(NoTable::Damaged);
        }
        let map = match Mapping::new(&file) {
            Ok(map) => map,
            Err(e) => {
                // we cannot keep its counters, so nobody may trust them
                retire_file(&file);
                return Err(failed("cannot map", &e));
            }
        };
        // the mapping stays valid after the file is closed
        drop(file);
        let table = ChangeTable { map };
        if table.word(0).load(SeqCst) != MAGIC {
            return Err(NoTable::Damaged);
        }
        if table.word(1).load(SeqCst) != LAYOUT {
            // another version's table: we would not keep its counters
            table.retire();
            return Err(NoTable::Retired);
        }
        if table.retired() {
            return Err(NoTable::Retired);
        }
        Ok(table)
    }

    #[cfg(test)]
    pub(in super::super) const TEST_FILE_BYTES: usize = FILE_BYTES;
}

#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    target_has_atomic = "64"
)))]
mod elsewhere {
    use super::NoTable;
    use std::convert::Infallible;
    use std::path::Path;

    /// No change table on this system: never made.
    #[derive(Debug)]
    pub(in super::super) struct ChangeTable(Infallible);

    impl ChangeTable {
        pub(in super::super) fn begun(&self, _slot: usize) -> u64 {
            match self.0 {}
        }
        pub(in super::super) fn done(&self, _slot: usize) -> u64 {
            match self.0 {}
        }
        pub(in super::super) fn settled(&self, _slot: usize) -> Option<u64> {
            match self.0 {}
        }
        pub(in super::super) fn begin(&self, _slot: usize) -> u64 {
            match self.0 {}
        }
        pub(in super::super) fn finish(&self, _slot: usize) {
            match self.0 {}
        }
        pub(in super::super) fn retired(&self) -> bool {
            match self.0 {}
        }
        pub(in super::super) fn retire(&self) {
            match self.0 {}
        }
    }

    pub(in super::super) fn open(_root: &Path) -> Result<ChangeTable, NoTable> {
        Err(NoTable::Unsupported)
    }
}
