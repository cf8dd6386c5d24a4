//USES

//! What the storage's tests share: temp folders, storages on an injected clock, and
//! views of the folder.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU32;

use super::files::random_hex;
use super::layout::TEMP_PREFIX;
use super::*;

pub(super) use super::super::clock::OffsetClock;

pub(super) const S: i64 = NANOS_PER_SEC;

/// This system has the change table (the temp folders the tests use are local).
pub(super) const HAS_TABLE: bool = cfg!(all(
    any(target_os = "linux", target_os = "android"),
    target_has_atomic = "64"
));

/// A temp folder removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new() -> Self {
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
    pub(super) fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(super) struct Setup {
    pub(super) dir: TempDir,
    pub(super) clock: Arc<OffsetClock>,
    /// Open storages with `revalidate_by_stat`.
    pub(super) stat: bool,
}

impl Setup {
    /// Shared hits checked by the change table.
    pub(super) fn new() -> Self {
        Self {
            dir: TempDir::new(),
            clock: Arc::new(OffsetClock::new(0)),
            stat: false,
        }
    }
    /// Shared hits checked by `lstat` (the table is still kept).
    pub(super) fn with_stat() -> Self {
        Self {
            stat: true,
            ..Self::new()
        }
    }
    pub(super) fn root(&self) -> PathBuf {
        self.dir.join("sessions")
    }
    pub(super) fn open(&self, cached: bool, shared: bool) -> DirectoryStorage {
        self.open_with(cached, shared, 60, 100_000)
    }
    pub(super) fn open_with(
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
    pub(super) fn advance(&self, secs: i64) {
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

/// Every path under `root` with its kind, size and mtime, but the change table
/// (whose mtime the kernel updates when its mapped pages are written) and the
/// layout file (both made when the folder is opened).
pub(super) fn tree(root: &Path) -> BTreeMap<PathBuf, (bool, u64, UnixNanos)> {
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

pub(super) fn entry_files(root: &Path) -> Vec<PathBuf> {
    tree(root)
        .into_iter()
        .filter(|(p, (dir, _, _))| {
            !dir && !p.file_name().unwrap().to_str().unwrap().starts_with('.')
        })
        .map(|(p, _)| p)
        .collect()
}

pub(super) fn temp_files(root: &Path) -> Vec<PathBuf> {
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

/// Values that carry their own checksum, and the ticket of the op that wrote them.
pub(super) fn ticketed(ticket: u64, n: usize) -> String {
    let body = format!("{ticket}:{}", "y".repeat(n % 200));
    format!(
        "{}|{body}",
        hex::encode(&Sha256::digest(body.as_bytes())[..4])
    )
}

pub(super) fn ticket_of(v: &str) -> u64 {
    let (sum, body) = v.split_once('|').expect("framed");
    assert_eq!(
        sum,
        hex::encode(&Sha256::digest(body.as_bytes())[..4]),
        "{v}"
    );
    body.split_once(':').unwrap().0.parse().unwrap()
}

#[cfg(unix)]
pub(super) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Writes `contents` to `path` with the mtime of an entry that expires at
/// `expires_at`: a damaged or foreign file that looks live.
pub(super) fn write_live(path: &Path, contents: &[u8], expires_at: UnixNanos) {
    fs::write(path, contents).unwrap();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(from_unix_nanos(expires_at)))
        .unwrap();
}
