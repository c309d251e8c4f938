//! Which (origin, seq) pairs this node has received, as sorted inclusive ranges per origin.
//!
//! Sequence numbers from one origin mostly arrive in order, so the common case extends the
//! last range in O(1) and a whole run from one origin is a single `[first, last]` pair: memory
//! grows with the number of gaps, not with the number of messages.

use std::collections::BTreeMap;
use testbed_contract::results::SeenFrom;

#[derive(Debug, Default)]
pub struct SeenSet {
    origins: BTreeMap<u32, Ranges>,
}

/// Sorted, disjoint and non-adjacent inclusive ranges.
#[derive(Debug, Default)]
struct Ranges(Vec<[u64; 2]>);

impl SeenSet {
    /// Marks `(origin, seq)` seen; false if it already was (a duplicate).
    pub fn insert(&mut self, origin: u32, seq: u64) -> bool {
        self.origins.entry(origin).or_default().insert(seq)
    }

    #[cfg(test)]
    pub fn contains(&self, origin: u32, seq: u64) -> bool {
        self.origins.get(&origin).is_some_and(|r| r.contains(seq))
    }

    /// The contract form, origins ascending.
    pub fn to_seen_from(&self) -> Vec<SeenFrom> {
        self.origins
            .iter()
            .map(|(&origin, r)| SeenFrom {
                origin,
                ranges: r.0.clone(),
            })
            .collect()
    }
}

impl Ranges {
    fn insert(&mut self, seq: u64) -> bool {
        let v = &mut self.0;
        // Fast path: in-order arrival touches only the last range.
        match v.last_mut() {
            None => {
                v.push([seq, seq]);
                return true;
            }
            Some(last) if seq > last[1] => {
                if last[1] + 1 == seq {
                    last[1] = seq;
                } else {
                    v.push([seq, seq]);
                }
                return true;
            }
            Some(_) => {}
        }
        // First range that ends at or after `seq`; it exists because seq <= last end.
        let i = v.partition_point(|r| r[1] < seq);
        if v[i][0] <= seq {
            return false;
        }
        // seq lies in the gap between v[i-1] (if any) and v[i].
        let joins_prev = i > 0 && v[i - 1][1] + 1 == seq;
        let joins_next = v[i][0] == seq + 1;
        match (joins_prev, joins_next) {
            (true, true) => {
                v[i - 1][1] = v[i][1];
                v.remove(i);
            }
            (true, false) => v[i - 1][1] = seq,
            (false, true) => v[i][0] = seq,
            (false, false) => v.insert(i, [seq, seq]),
        }
        true
    }

    #[cfg(test)]
    fn contains(&self, seq: u64) -> bool {
        let i = self.0.partition_point(|r| r[1] < seq);
        i < self.0.len() && self.0[i][0] <= seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(s: &SeenSet, origin: u32) -> Vec<[u64; 2]> {
        s.to_seen_from()
            .into_iter()
            .find(|f| f.origin == origin)
            .map(|f| f.ranges)
            .unwrap_or_default()
    }

    #[test]
    fn in_order_is_one_range() {
        let mut s = SeenSet::default();
        for seq in 0..1000 {
            assert!(s.insert(4, seq));
        }
        assert_eq!(ranges(&s, 4), vec![[0, 999]]);
    }

    #[test]
    fn duplicates_are_refused() {
        let mut s = SeenSet::default();
        assert!(s.insert(1, 5));
        assert!(!s.insert(1, 5));
        assert!(s.insert(1, 7));
        assert!(!s.insert(1, 7));
        assert!(s.insert(1, 6));
        for seq in 5..=7 {
            assert!(!s.insert(1, seq), "{seq}");
        }
        assert_eq!(ranges(&s, 1), vec![[5, 7]]);
    }

    #[test]
    fn gaps_fill_and_merge() {
        let mut s = SeenSet::default();
        for seq in [10, 0, 2, 4, 20, 3, 1, 11, 9, 19] {
            assert!(s.insert(0, seq));
        }
        assert_eq!(ranges(&s, 0), vec![[0, 4], [9, 11], [19, 20]]);
        for seq in [5, 6, 7, 8] {
            assert!(s.insert(0, seq));
        }
        assert_eq!(ranges(&s, 0), vec![[0, 11], [19, 20]]);
        assert!(s.contains(0, 11));
        assert!(!s.contains(0, 12));
        assert!(!s.contains(0, 21));
    }

    #[test]
    fn origins_are_separate_and_sorted() {
        let mut s = SeenSet::default();
        assert!(s.insert(9, 0));
        assert!(s.insert(2, 0));
        assert!(s.insert(2, 1));
        let all = s.to_seen_from();
        assert_eq!(all.iter().map(|f| f.origin).collect::<Vec<_>>(), vec![2, 9]);
        assert_eq!(all[0].ranges, vec![[0, 1]]);
        assert_eq!(all[1].ranges, vec![[0, 0]]);
    }

    /// Every insertion order of a small set gives the same ranges as a plain set.
    #[test]
    fn agrees_with_a_plain_set() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let mut s = SeenSet::default();
            let mut plain = std::collections::BTreeSet::new();
            for _ in 0..60 {
                // xorshift: a fixed pseudo-random sequence, no dependency needed.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let seq = state % 40;
                assert_eq!(s.insert(0, seq), plain.insert(seq));
            }
            let expanded: Vec<u64> = ranges(&s, 0).into_iter().flat_map(|[a, b]| a..=b).collect();
            assert_eq!(expanded, plain.into_iter().collect::<Vec<_>>());
            let r = ranges(&s, 0);
            assert!(r.windows(2).all(|w| w[0][1] + 1 < w[1][0]), "{r:?}");
        }
    }
}
