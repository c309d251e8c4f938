//! `subscribe` with `wait_mesh`: acknowledged when every topic has the mesh peers it can get.
//!
//! A topic is ready when its mesh holds at least `min(mesh_n_low, known subscribed peers)`
//! peers, and at least one. A topic no connected peer subscribes to does not wait, but only
//! after a grace period: the peers' own SUBSCRIBE messages may still be in flight.

use crate::pubsub::Pubsub;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Mesh changes happen inside the router (heartbeats, GRAFTs) without an event to wake the
/// node, so a pending wait looks again this often.
pub const POLL: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub struct MeshWait {
    pub cmd_id: u64,
    topics: Vec<String>,
    started: Instant,
    deadline: Instant,
    grace_until: Instant,
    mesh_n_low: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicCounts {
    pub mesh: u32,
    pub subscribed: u32,
}

#[derive(Debug, PartialEq)]
pub enum MeshStatus {
    Ready {
        mesh_ms: u64,
        topics: BTreeMap<String, TopicCounts>,
    },
    Waiting,
    TimedOut(String),
}

impl MeshWait {
    pub fn new(
        cmd_id: u64,
        topics: Vec<String>,
        now: Instant,
        timeout: Duration,
        grace: Duration,
        mesh_n_low: u32,
    ) -> Self {
        MeshWait {
            cmd_id,
            topics,
            started: now,
            deadline: now + timeout,
            grace_until: now + grace,
            mesh_n_low,
        }
    }

    /// When to look again at the latest.
    pub fn wake_at(&self, now: Instant) -> Instant {
        (now + POLL).min(self.deadline)
    }

    pub fn check(&self, now: Instant, net: &Pubsub) -> MeshStatus {
        self.evaluate(now, |t| TopicCounts {
            mesh: net.mesh_peers(t),
            subscribed: net.subscribed_peers(t),
        })
    }

    fn evaluate(&self, now: Instant, counts: impl Fn(&str) -> TopicCounts) -> MeshStatus {
        let mut all = BTreeMap::new();
        let mut missing = Vec::new();
        for t in &self.topics {
            let c = counts(t);
            let need = self.mesh_n_low.min(c.subscribed).max(1);
            let ready = if c.subscribed == 0 {
                now >= self.grace_until
            } else {
                c.mesh >= need
            };
            if !ready {
                missing.push(format!(
                    "topic {t:?}: {} mesh peer(s) of {need} needed, {} subscribed peer(s) known",
                    c.mesh, c.subscribed
                ));
            }
            all.insert(t.clone(), c);
        }
        if missing.is_empty() {
            MeshStatus::Ready {
                mesh_ms: now.duration_since(self.started).as_millis() as u64,
                topics: all,
            }
        } else if now >= self.deadline {
            MeshStatus::TimedOut(format!(
                "no mesh within {} ms: {}",
                self.deadline.duration_since(self.started).as_millis(),
                missing.join("; ")
            ))
        } else {
            MeshStatus::Waiting
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(now: Instant) -> MeshWait {
        MeshWait::new(
            1,
            vec!["a".into(), "b".into()],
            now,
            Duration::from_secs(10),
            Duration::from_secs(1),
            5,
        )
    }

    fn counts(a: (u32, u32), b: (u32, u32)) -> impl Fn(&str) -> TopicCounts {
        move |t| {
            let (mesh, subscribed) = if t == "a" { a } else { b };
            TopicCounts { mesh, subscribed }
        }
    }

    #[test]
    fn needs_min_of_mesh_n_low_and_subscribers() {
        let t0 = Instant::now();
        let w = wait(t0);
        // Two subscribers: two mesh peers suffice although mesh_n_low is 5.
        assert_eq!(w.evaluate(t0, counts((1, 2), (2, 2))), MeshStatus::Waiting);
        match w.evaluate(t0 + Duration::from_millis(300), counts((2, 2), (2, 2))) {
            MeshStatus::Ready { mesh_ms, topics } => {
                assert_eq!(mesh_ms, 300);
                assert_eq!(
                    topics["a"],
                    TopicCounts {
                        mesh: 2,
                        subscribed: 2
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        // Many subscribers: mesh_n_low is the bar.
        assert_eq!(
            w.evaluate(t0, counts((4, 20), (5, 20))),
            MeshStatus::Waiting
        );
        assert!(matches!(
            w.evaluate(t0, counts((5, 20), (6, 20))),
            MeshStatus::Ready { .. }
        ));
    }

    #[test]
    fn lonely_topics_wait_only_for_the_grace_period() {
        let t0 = Instant::now();
        let w = wait(t0);
        assert_eq!(w.evaluate(t0, counts((0, 0), (1, 1))), MeshStatus::Waiting);
        assert!(matches!(
            w.evaluate(t0 + Duration::from_secs(1), counts((0, 0), (1, 1))),
            MeshStatus::Ready { .. }
        ));
    }

    #[test]
    fn times_out_naming_the_topic_and_counts() {
        let t0 = Instant::now();
        let w = wait(t0);
        match w.evaluate(t0 + Duration::from_secs(10), counts((3, 3), (0, 4))) {
            MeshStatus::TimedOut(e) => {
                assert!(e.contains("topic \"b\""), "{e}");
                assert!(
                    e.contains("0 mesh peer(s) of 4 needed, 4 subscribed"),
                    "{e}"
                );
                assert!(!e.contains("topic \"a\""), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
}
