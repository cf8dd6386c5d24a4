//! The change table of a `DirectoryStorage` folder: the file `.ferrosession-changes`
//! in the storage root, mapped shared (`MAP_SHARED`) by every process that opens the
//! folder, holding two counters per slot (`begun`, `done`) of the changes made to the
//! entries whose ids hash to that slot. The protocol, and why a cache hit checked
//! against it is as good as the `lstat` it replaces, are in the parent module's
//! documentation ("Cache and concurrency").
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
//! The file is made with `O_CREAT` (no `O_EXCL`: racing processes open the same
//! file), mode 0600, and sized with `ftruncate` when it is empty; the header is
//! filled by compare-and-swap from zero, so racing openers agree. It is never shrunk:
//! truncating or deleting it while processes use the folder breaks the protocol
//! (truncating crashes them with `SIGBUS` when they touch the lost pages; deleting it
//! splits them between two tables). Delete it only while no process uses the folder
//! (that also clears the retired mark and any slot a killed writer left busy).
//!
//! This is the crate's only `unsafe` code: mapping the file, unmapping it, and
//! viewing the mapped words as `AtomicU64`.
#![allow(unsafe_code)]

use std::fmt;

/// The table's file name in the storage root. It starts with a dot, so it is never a
/// shard folder (two hex digits), an entry (64 hex digits) or `owners`.
pub const FILE_NAME: &str = ".ferrosession-changes";

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
    use super::{NoTable, FILE_NAME, SLOTS};
    use std::ffi::c_void;
    use std::fs::{File, OpenOptions, Permissions};
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

    /// The network filesystem type of `root`, if it is one.
    fn network_fs(root: &Path) -> Option<&'static str> {
        let st = rustix::fs::statfs(root).ok()?;
        // the magic numbers are 32-bit; f_type is a signed word of either width
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let kind = st.f_type as u32;
        NETWORK_FS.iter().find(|(m, _)| *m == kind).map(|(_, n)| *n)
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
    /// something else (a nonzero word 0 other than the magic).
    fn retire_file(file: &File) {
        let mut magic = [0u8; 8];
        let len = file.metadata().map_or(0, |m| m.len());
        if len < 24 || file.read_exact_at(&mut magic, 0).is_err() {
            return;
        }
        let magic = u64::from_le_bytes(magic);
        if magic == 0 || magic == MAGIC {
            let _ = file.write_all_at(&1u64.to_le_bytes(), (RETIRED_WORD * 8) as u64);
        }
    }

    /// Opens `path`, creating it (mode 0600) and sizing it when it is new; its
    /// length.
    fn open_file(path: &Path) -> Result<(File, u64), NoTable> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            // never truncate: other processes may have it mapped
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| failed("cannot open", &e))?;
        let len = file
            .metadata()
            .map_err(|e| failed("cannot stat", &e))?
            .len();
        if len != 0 {
            return Ok((file, len));
        }
        // new (or being made by a racing process, which sets the same length: a
        // set_len to the current length changes nothing). Exactly 0600, whatever the
        // umask, so the other processes of this user can open it read-write.
        file.set_permissions(Permissions::from_mode(0o600))
            .and_then(|()| file.set_len(FILE_BYTES as u64))
            .map_err(|e| failed("cannot size", &e))?;
        Ok((file, FILE_BYTES as u64))
    }

    /// The change table of the folder `root` (which exists), created if missing.
    pub(in super::super) fn open(root: &Path) -> Result<ChangeTable, NoTable> {
        let path = root.join(FILE_NAME);
        if let Some(kind) = network_fs(root) {
            // Processes on the file server itself would map the file coherently with
            // each other but not with us: make sure none of them trusts it. Made
            // (retired) if missing, so that one started later does not either.
            if let Ok((file, _)) = open_file(&path) {
                retire_file(&file);
                let _ = file.sync_data();
            }
            return Err(NoTable::Network(kind));
        }
        let (file, len) = open_file(&path)?;
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
        let magic = table.word(0);
        let _ = magic.compare_exchange(0, MAGIC, SeqCst, SeqCst);
        if magic.load(SeqCst) != MAGIC {
            return Err(NoTable::Damaged);
        }
        let layout = table.word(1);
        let _ = layout.compare_exchange(0, LAYOUT, SeqCst, SeqCst);
        if layout.load(SeqCst) != LAYOUT {
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
