//! Counting the acks of many commands while the fleet's events arrive one at a time.

/// The commands of one wait that are still unanswered: the ids are looked at again only when
/// the fleet's change counter moved (an ack, a fault or an exit arrived since the last look),
/// so a wait over 1000 commands costs nothing per snapshot or pong.
pub struct AckTally {
    pending: Vec<u64>,
    total: usize,
    seen: Option<u64>,
}

impl AckTally {
    pub fn new(ids: &[u64]) -> Self {
        AckTally {
            pending: ids.to_vec(),
            total: ids.len(),
            seen: None,
        }
    }

    /// How many ids are settled; `settled(id)` is asked again only when `changes` moved.
    pub fn recount(&mut self, changes: u64, settled: impl Fn(u64) -> bool) -> usize {
        if self.seen != Some(changes) {
            self.seen = Some(changes);
            self.pending.retain(|&id| !settled(id));
        }
        self.total - self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_again_only_when_the_counter_moved() {
        let mut t = AckTally::new(&[1, 2, 3]);
        assert_eq!(t.recount(0, |id| id == 1), 1);
        // Same counter: the answer is not asked again, even if it changed.
        assert_eq!(t.recount(0, |_| true), 1);
        assert_eq!(t.recount(1, |id| id != 3), 2);
        assert_eq!(t.recount(2, |_| true), 3);
    }
}
