//! The sync service's barriers, as in Testground: a node signals entry into a named barrier
//! with the number of participants it expects; when that many have signalled, every
//! participant is released with the count.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Barriers {
    waiting: HashMap<String, Vec<u32>>,
    released: HashMap<String, u32>,
}

impl Barriers {
    /// Records `node` at `barrier`; returns the nodes to release (with the count) when the
    /// target is reached. A node signalling an already released barrier is released at once.
    pub fn signal(&mut self, barrier: &str, node: u32, target: u32) -> Option<(Vec<u32>, u32)> {
        if let Some(&count) = self.released.get(barrier) {
            return Some((vec![node], count));
        }
        let list = self.waiting.entry(barrier.to_string()).or_default();
        if !list.contains(&node) {
            list.push(node);
        }
        if list.len() as u32 >= target {
            let nodes = self.waiting.remove(barrier).unwrap_or_default();
            let count = nodes.len() as u32;
            self.released.insert(barrier.to_string(), count);
            return Some((nodes, count));
        }
        None
    }

    /// How many nodes wait at each open barrier (for progress and hang reports).
    pub fn open(&self) -> impl Iterator<Item = (&str, usize)> {
        self.waiting.iter().map(|(k, v)| (k.as_str(), v.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_everyone_at_target() {
        let mut b = Barriers::default();
        assert!(b.signal("x", 0, 3).is_none());
        assert!(b.signal("x", 1, 3).is_none());
        assert!(
            b.signal("x", 1, 3).is_none(),
            "a repeated signal does not count twice"
        );
        let (nodes, count) = b.signal("x", 2, 3).unwrap();
        assert_eq!((nodes, count), (vec![0, 1, 2], 3));
        assert_eq!(b.signal("x", 7, 3).unwrap(), (vec![7], 3));
    }
}
