//! Server-side storages implemented in Rust: the directory storage and its in-memory
//! TTL cache. No pyo3 here (`bindings::storage` wraps them).

pub mod clock;
pub mod directory;
pub mod record;
pub mod ttl_cache;

pub use clock::{Clock, OffsetClock, SystemClock};
pub use directory::{is_valid_id, DirectoryStorage, IoCounts};
pub use ttl_cache::TtlCache;
