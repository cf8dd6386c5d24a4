//! The clock the storages read, injectable so tests drive time without sleeping.
//!
//! Times are nanoseconds since the Unix epoch as `i64` (good until the year 2262),
//! the same unit the directory storage keeps in file modification times.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub type UnixNanos = i64;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> UnixNanos;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixNanos {
        system_now()
    }
}

/// The system clock plus an adjustable offset: tests (Rust and Python) move time
/// forward or back without sleeping; with offset 0 it is the system clock.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: AtomicI64,
}

impl OffsetClock {
    /// A clock `offset` nanoseconds ahead of the system clock.
    pub fn new(offset: i64) -> Self {
        Self {
            offset: AtomicI64::new(offset),
        }
    }

    /// Sets the offset from the system clock, in nanoseconds.
    pub fn set_offset(&self, offset: i64) {
        self.offset.store(offset, Ordering::Relaxed);
    }

    /// Moves the clock forward by `delta` nanoseconds (backward when negative).
    pub fn advance(&self, delta: i64) {
        self.offset.fetch_add(delta, Ordering::Relaxed);
    }

    /// The current offset in nanoseconds.
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> UnixNanos {
        system_now().saturating_add(self.offset())
    }
}

/// The system clock in nanoseconds since the epoch (0 if it is set before 1970).
pub fn system_now() -> UnixNanos {
    to_unix_nanos(SystemTime::now())
}

/// A `SystemTime` as nanoseconds since the epoch, saturating at the `i64` range.
pub fn to_unix_nanos(t: SystemTime) -> UnixNanos {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// Nanoseconds since the epoch as a `SystemTime`.
pub fn from_unix_nanos(n: UnixNanos) -> SystemTime {
    if n >= 0 {
        UNIX_EPOCH + Duration::from_nanos(n.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(n.unsigned_abs())
    }
}

/// A `Duration` as nanoseconds, saturating at `i64::MAX`.
pub fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_clock_moves_without_sleeping() {
        let c = OffsetClock::new(0);
        let a = c.now();
        c.advance(3600 * NANOS_PER_SEC);
        let b = c.now();
        assert!(b - a >= 3600 * NANOS_PER_SEC);
        c.set_offset(-10 * NANOS_PER_SEC);
        assert!(c.now() < b);
    }

    #[test]
    fn nanos_round_trip() {
        for n in [0, 1, 1_700_000_000_123_456_789, -5_000_000_001] {
            assert_eq!(to_unix_nanos(from_unix_nanos(n)), n);
        }
    }
}
