//! Session lifetimes carried inside a client-side value (idle and absolute timeouts,
//! a per-value deadline), checked by the server.
//!
//! Framing, applied to the serialized payload before the transformer chain (so a MAC or
//! AEAD covers it): `~1:NAME:CREATED:LAST_SEEN:DEADLINE:PAYLOAD`, Unix seconds in ASCII
//! digits (at most 12), DEADLINE empty when there is none. NAME binds the value to its
//! registration.

use super::mac::CLOCK_SKEW;

/// A registration's lifetimes, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lifetimes {
    /// Ends this long after the last use.
    pub idle: Option<u64>,
    /// Ends this long after it began.
    pub absolute: Option<u64>,
    /// Renew `last_seen` when it is at least this old (`None`: only on set).
    pub refresh: Option<u64>,
}

/// The clocks of a value that is still alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alive {
    /// When the session began (never in the future).
    pub created: u64,
    /// When it was last used, as far as the value (and `seen`) tell.
    pub last_seen: u64,
    /// Its per-value deadline, if any.
    pub deadline: Option<u64>,
    /// `last_seen` is due for renewal.
    pub renew: bool,
}

/// Frames `payload` with its clocks.
pub fn wrap(
    name: &str,
    created: u64,
    last_seen: u64,
    deadline: Option<u64>,
    payload: &str,
) -> String {
    let mut out = String::with_capacity(payload.len() + name.len() + 40);
    out.push_str("~1:");
    out.push_str(name);
    out.push(':');
    out.push_str(itoa::Buffer::new().format(created));
    out.push(':');
    out.push_str(itoa::Buffer::new().format(last_seen));
    out.push(':');
    if let Some(d) = deadline {
        out.push_str(itoa::Buffer::new().format(d));
    }
    out.push(':');
    out.push_str(payload);
    out
}

fn number(field: &str, allow_empty: bool) -> Option<Option<u64>> {
    if field.is_empty() {
        return allow_empty.then_some(None);
    }
    if field.len() > 12 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok().map(Some)
}

/// Checks the clocks in front of `text` at time `now`: the payload and what is alive
/// about it, or `None` when the value has no valid clocks, names another session, or
/// has ended.
pub fn open<'a>(
    name: &str,
    text: &'a str,
    lifetimes: &Lifetimes,
    now: u64,
) -> Option<(&'a str, Alive)> {
    open_seen(name, text, lifetimes, now, None)
}

/// Like [`open`], for a stored record whose storage knows of a later use than the
/// record's own `last_seen` (a touch that extended the entry without rewriting it):
/// the later of the two counts.
pub fn open_seen<'a>(
    name: &str,
    text: &'a str,
    lifetimes: &Lifetimes,
    now: u64,
    seen: Option<u64>,
) -> Option<(&'a str, Alive)> {
    let rest = text
        .strip_prefix("~1:")?
        .strip_prefix(name)?
        .strip_prefix(':')?;
    let mut parts = rest.splitn(4, ':');
    let created = number(parts.next()?, false)??;
    let last_seen = number(parts.next()?, false)??;
    let deadline = number(parts.next()?, true)?;
    let payload = parts.next()?;
    if created > now.saturating_add(CLOCK_SKEW) || last_seen > now.saturating_add(CLOCK_SKEW) {
        return None;
    }
    // skew never extends a lifetime: a time from the future counts as now
    let last_seen = last_seen.max(seen.unwrap_or(0));
    let (created, last_seen) = (created.min(now), last_seen.min(now));
    let ended = lifetimes.idle.is_some_and(|idle| now - last_seen > idle)
        || lifetimes.absolute.is_some_and(|abs| now - created > abs)
        || deadline.is_some_and(|d| now > d);
    if ended {
        return None;
    }
    let renew = lifetimes.refresh.is_some_and(|r| now - last_seen >= r);
    Some((
        payload,
        Alive {
            created,
            last_seen,
            deadline,
            renew,
        },
    ))
}

/// Seconds a stored record with clocks outlives them in its storage, so that the
/// record's clocks, not the storage's expiry, decide the last second.
pub const RECORD_SLACK: u64 = 1;

/// Like [`open_seen`] for a stored record whose storage reports `left` seconds of life
/// (`read_ttl`). An entry renewed by a touch expires `idle + RECORD_SLACK` after that
/// touch, or `RECORD_SLACK` after the session's end (absolute lifetime, deadline),
/// whichever comes first, which tells when it was last used (rounded up: a timeout is
/// never early, and holds to within a second). No renewal is due when the entry
/// already lasts until the session's end: a touch could not extend it.
pub fn open_stored<'a>(
    name: &str,
    text: &'a str,
    lifetimes: &Lifetimes,
    now: u64,
    left: Option<f64>,
) -> Option<(&'a str, Alive)> {
    let ends = left
        .filter(|l| l.is_finite())
        .map(|l| now.saturating_add(l.max(0.0).ceil() as u64));
    let seen = match (ends, lifetimes.idle) {
        (Some(ends), Some(idle)) => Some(ends.saturating_sub(idle + RECORD_SLACK)),
        _ => None,
    };
    let (payload, mut alive) = open_seen(name, text, lifetimes, now, seen)?;
    if let (true, Some(ends)) = (alive.renew, ends) {
        let end = [
            alive.deadline,
            lifetimes.absolute.map(|a| alive.created.saturating_add(a)),
        ]
        .into_iter()
        .flatten()
        .min();
        if end.is_some_and(|end| ends.saturating_add(1) >= end) {
            alive.renew = false;
        }
    }
    Some((payload, alive))
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Lifetimes = Lifetimes {
        idle: Some(60),
        absolute: Some(100),
        refresh: Some(20),
    };

    #[test]
    fn round_trip_and_limits() {
        let w = wrap("S", 1000, 1000, None, "{\"a\":1}");
        assert_eq!(w, "~1:S:1000:1000::{\"a\":1}");
        let (p, a) = open("S", &w, &L, 1010).unwrap();
        assert_eq!(
            (p, a.created, a.deadline, a.renew),
            ("{\"a\":1}", 1000, None, false)
        );
        assert!(open("S", &w, &L, 1020).unwrap().1.renew);
        assert!(open("S", &w, &L, 1060).is_some());
        assert!(open("S", &w, &L, 1061).is_none()); // idle
        let active = wrap("S", 1000, 1090, None, "x");
        assert!(open("S", &active, &L, 1100).is_some());
        assert!(open("S", &active, &L, 1101).is_none()); // absolute
        let dl = wrap("S", 1000, 1000, Some(1005), "x");
        assert!(open("S", &dl, &L, 1005).is_some());
        assert!(open("S", &dl, &L, 1006).is_none()); // deadline
    }

    #[test]
    fn rejects_other_names_malformed_and_future() {
        let w = wrap("S", 1000, 1000, None, "x");
        assert!(open("T", &w, &L, 1000).is_none());
        assert!(open("SS", &w, &L, 1000).is_none());
        for bad in [
            "~1:S:²:1::x",
            "~1:S::1::x",
            "~1:S:1:1:x:x",
            "~1:S:1:1",
            "~2:S:1:1::x",
            "x",
        ] {
            assert!(open("S", bad, &L, 1000).is_none(), "{bad}");
        }
        let ahead = wrap("S", 1050, 1050, None, "x");
        assert!(open("S", &ahead, &L, 1000).is_some()); // within the skew
        assert!(open("S", &ahead, &L, 1110).is_some());
        assert!(open("S", &ahead, &L, 1111).is_none()); // idle counted from its own time
        let far = wrap("S", 1100, 1100, None, "x");
        assert!(open("S", &far, &L, 1000).is_none());
    }

    #[test]
    fn a_stored_record_reads_its_last_use_from_the_time_left() {
        let w = wrap("S", 1000, 1000, None, "x");
        // touched at 1010 with ttl idle + slack = 61: at 1030, 41 s are left
        let (_, a) = open_stored("S", &w, &L, 1030, Some(40.2)).unwrap();
        assert_eq!((a.last_seen, a.renew), (1010, true));
        assert!(open_stored("S", &w, &L, 1110, Some(1.0)).is_none()); // absolute ends
                                                                      // an entry that lasts to the absolute end: nothing to renew
        let (_, a) = open_stored("S", &w, &L, 1090, Some(11.0)).unwrap();
        assert!(!a.renew);
        // no expiry: the record's own clocks
        let (_, a) = open_stored("S", &w, &L, 1030, Some(f64::INFINITY)).unwrap();
        assert_eq!((a.last_seen, a.renew), (1000, true));
        assert!(open_stored("S", &w, &L, 1061, None).is_none());
    }

    #[test]
    fn a_later_use_known_to_the_storage_counts() {
        let w = wrap("S", 1000, 1000, None, "x");
        assert!(open_seen("S", &w, &L, 1061, None).is_none()); // idle by the record
        let (_, a) = open_seen("S", &w, &L, 1061, Some(1050)).unwrap();
        assert_eq!((a.last_seen, a.renew), (1050, false));
        assert!(open_seen("S", &w, &L, 1070, Some(1050)).unwrap().1.renew);
        // an older `seen` changes nothing; a future one counts as now
        assert_eq!(
            open_seen("S", &w, &L, 1010, Some(900)).unwrap().1.last_seen,
            1000
        );
        assert_eq!(
            open_seen("S", &w, &L, 1010, Some(5000))
                .unwrap()
                .1
                .last_seen,
            1010
        );
        // it never extends the absolute lifetime
        assert!(open_seen("S", &w, &L, 1101, Some(1100)).is_none());
    }
}
