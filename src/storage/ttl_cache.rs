//! A bounded in-memory cache whose entries are trusted for a fixed time (`ttl`) after
//! they were put in, evicting the least recently used entry when it is full.
//!
//! Every operation is O(1): a `HashMap` from key to a slot of a slab, and the slots
//! form a doubly linked list in recency order (head = most recent). The cache holds
//! no clock: each call takes `now`, so the owner injects time (see `clock.rs`). It is
//! not synchronised; the directory storage keeps it behind a `Mutex`.

use std::collections::HashMap;

use super::clock::UnixNanos;

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Slot<V> {
    key: Box<str>,
    value: V,
    cached_at: UnixNanos,
    prev: usize,
    next: usize,
}

/// The cache. `V` is whatever the owner keeps per key.
#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: i64,
    max_entries: usize,
    map: HashMap<Box<str>, usize>,
    slots: Vec<Option<Slot<V>>>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
}

impl<V> TtlCache<V> {
    /// A cache whose entries are fresh for `ttl` nanoseconds after insertion, holding
    /// at most `max_entries` (0 = holds nothing).
    pub fn new(ttl: i64, max_entries: usize) -> Self {
        Self {
            ttl: ttl.max(0),
            max_entries,
            map: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// Number of entries held (fresh or not yet noticed to be stale).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The largest number of entries the cache holds.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    fn slot(&self, i: usize) -> &Slot<V> {
        self.slots[i].as_ref().expect("linked slot is occupied")
    }

    fn slot_mut(&mut self, i: usize) -> &mut Slot<V> {
        self.slots[i].as_mut().expect("linked slot is occupied")
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = {
            let s = self.slot(i);
            (s.prev, s.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slot_mut(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slot_mut(next).prev = prev;
        }
    }

    fn push_front(&mut self, i: usize) {
        let old_head = self.head;
        {
            let s = self.slot_mut(i);
            s.prev = NIL;
            s.next = old_head;
        }
        if old_head == NIL {
            self.tail = i;
        } else {
            self.slot_mut(old_head).prev = i;
        }
        self.head = i;
    }

    fn take(&mut self, i: usize) -> Slot<V> {
        self.unlink(i);
        let slot = self.slots[i].take().expect("linked slot is occupied");
        self.map.remove(&slot.key);
        self.free.push(i);
        slot
    }

    fn is_fresh(&self, cached_at: UnixNanos, now: UnixNanos) -> bool {
        now.saturating_sub(cached_at) < self.ttl
    }

    /// The value for `key` if it was put in less than `ttl` ago (and marks it most
    /// recently used); a stale entry is dropped.
    pub fn get(&mut self, key: &str, now: UnixNanos) -> Option<&mut V> {
        let i = *self.map.get(key)?;
        if !self.is_fresh(self.slot(i).cached_at, now) {
            self.take(i);
            return None;
        }
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
        Some(&mut self.slot_mut(i).value)
    }

    /// The value for `key` without the freshness check and without touching the
    /// recency order.
    pub fn peek_mut(&mut self, key: &str) -> Option<&mut V> {
        let i = *self.map.get(key)?;
        Some(&mut self.slot_mut(i).value)
    }

    /// Puts `value` in for `key` (replacing any entry), fresh from `now`, evicting the
    /// least recently used entries past the bound.
    pub fn insert(&mut self, key: &str, value: V, now: UnixNanos) {
        if self.max_entries == 0 {
            return;
        }
        if let Some(&i) = self.map.get(key) {
            let s = self.slot_mut(i);
            s.value = value;
            s.cached_at = now;
            if self.head != i {
                self.unlink(i);
                self.push_front(i);
            }
            return;
        }
        while self.map.len() >= self.max_entries && self.tail != NIL {
            self.take(self.tail);
        }
        let key: Box<str> = key.into();
        let slot = Slot {
            key: key.clone(),
            value,
            cached_at: now,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.map.insert(key, i);
        self.push_front(i);
    }

    /// Drops the entry for `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let i = *self.map.get(key)?;
        Some(self.take(i).value)
    }

    /// Drops the entry for `key` when `pred` holds for its value.
    pub fn remove_if(&mut self, key: &str, pred: impl FnOnce(&V) -> bool) -> bool {
        match self.map.get(key) {
            Some(&i) if pred(&self.slot(i).value) => {
                self.take(i);
                true
            }
            _ => false,
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.map.clear();
        self.slots.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn hit_within_ttl_miss_after() {
        let mut c = TtlCache::new(60 * S, 10);
        c.insert("a", 1, 0);
        assert_eq!(c.get("a", 59 * S).copied(), Some(1));
        assert_eq!(c.get("a", 60 * S).copied(), None);
        assert!(c.is_empty(), "a stale entry is dropped when seen");
    }

    #[test]
    fn reinsert_refreshes_and_replaces() {
        let mut c = TtlCache::new(10 * S, 10);
        c.insert("a", 1, 0);
        c.insert("a", 2, 8 * S);
        assert_eq!(c.get("a", 15 * S).copied(), Some(2));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn bounded_evicts_least_recently_used() {
        let mut c = TtlCache::new(60 * S, 3);
        c.insert("a", 1, 0);
        c.insert("b", 2, 0);
        c.insert("c", 3, 0);
        assert!(c.get("a", 1).is_some()); // a is now most recent; b is the LRU
        c.insert("d", 4, 2);
        assert_eq!(c.len(), 3);
        assert!(c.get("b", 3).is_none());
        for k in ["a", "c", "d"] {
            assert!(c.get(k, 3).is_some(), "{k} kept");
        }
    }

    #[test]
    fn bound_holds_under_many_inserts_and_slots_are_reused() {
        let mut c = TtlCache::new(60 * S, 100);
        for i in 0..10_000 {
            c.insert(&format!("k{i}"), i, i64::from(i));
            assert!(c.len() <= 100);
        }
        assert_eq!(c.len(), 100);
        assert!(c.slots.len() <= 101);
        // the 100 most recent are the ones kept
        for i in 9_900..10_000 {
            assert_eq!(c.get(&format!("k{i}"), 10_000).copied(), Some(i));
        }
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut c = TtlCache::new(60 * S, 0);
        c.insert("a", 1, 0);
        assert!(c.get("a", 0).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn remove_and_remove_if() {
        let mut c = TtlCache::new(60 * S, 10);
        c.insert("a", 1, 0);
        c.insert("b", 2, 0);
        assert_eq!(c.remove("a"), Some(1));
        assert_eq!(c.remove("a"), None);
        assert!(!c.remove_if("b", |v| *v == 3));
        assert!(c.remove_if("b", |v| *v == 2));
        assert!(c.is_empty());
        c.insert("c", 3, 0);
        c.insert("d", 4, 0);
        assert_eq!(c.get("c", 1).copied(), Some(3));
        c.clear();
        assert!(c.get("d", 1).is_none());
    }

    #[test]
    fn list_stays_consistent_under_mixed_operations() {
        let mut c = TtlCache::new(5 * S, 7);
        let mut model: Vec<(String, i64)> = Vec::new(); // most recent last
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..5_000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("k{}", x % 13);
            let now = step * S / 10;
            match x % 3 {
                0 => {
                    c.insert(&key, step, now);
                    model.retain(|(k, _)| *k != key);
                    if model.len() == 7 {
                        model.remove(0);
                    }
                    model.push((key, now));
                }
                1 => {
                    let got = c.get(&key, now).is_some();
                    let pos = model.iter().position(|(k, _)| *k == key);
                    let want = match pos {
                        Some(p) if now - model[p].1 < 5 * S => {
                            let e = model.remove(p);
                            model.push(e);
                            true
                        }
                        Some(p) => {
                            model.remove(p);
                            false
                        }
                        None => false,
                    };
                    assert_eq!(got, want, "step {step}");
                }
                _ => {
                    assert_eq!(
                        c.remove(&key).is_some(),
                        model.iter().any(|(k, _)| *k == key)
                    );
                    model.retain(|(k, _)| *k != key);
                }
            }
            assert_eq!(c.len(), model.len());
        }
    }
}
