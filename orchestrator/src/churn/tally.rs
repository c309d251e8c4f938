//! How far one event's actions have come while the phase runs, and the outcome that makes.

use crate::record::churn_log::Outcome;

/// Progress of one event's actions while the phase runs.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub actions: u32,
    pub ok: u32,
    pub failed: u32,
    pub skipped: u32,
}

impl Tally {
    pub fn settled(&self) -> bool {
        self.ok + self.failed + self.skipped >= self.actions
    }

    pub fn outcome(&self) -> Outcome {
        if !self.settled() {
            Outcome::Unfinished
        } else if self.ok == self.actions {
            Outcome::Ok
        } else if self.ok > 0 {
            Outcome::Partial
        } else if self.failed > 0 {
            Outcome::Failed
        } else {
            Outcome::Skipped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        let t = |actions, ok, failed, skipped| {
            Tally {
                actions,
                ok,
                failed,
                skipped,
            }
            .outcome()
        };
        assert_eq!(t(0, 0, 0, 0), Outcome::Ok);
        assert_eq!(t(2, 2, 0, 0), Outcome::Ok);
        assert_eq!(t(2, 1, 1, 0), Outcome::Partial);
        assert_eq!(t(2, 0, 1, 1), Outcome::Failed);
        assert_eq!(t(2, 0, 0, 2), Outcome::Skipped);
        assert_eq!(t(2, 1, 0, 0), Outcome::Unfinished);
    }
}
