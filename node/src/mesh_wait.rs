//! `subscribe` with `wait_mesh`: acknowledged when every topic has the mesh peers it can get.
//!
//! A topic's condition is a mesh of at least `min(mesh_n_low, known subscribed peers)` peers,
//! and at least one (floodsub: one subscribed peer, its "mesh" being all of them). Right after
//! a subscribe, the peers' own SUBSCRIBE messages are still arriving, so "known subscribed peers" undercounts: a mesh below `mesh_n_low` is only
//! accepted once a grace period (about a heartbeat) has passed, and a topic no connected peer
//! subscribes to stops waiting at the end of it. `mesh_ms` is the time from the subscribe
//! until the condition last became true, so the grace does not inflate it.
//!
//! The condition is not always reachable: a peer whose own mesh is full (`mesh_n_high`) prunes
//! our GRAFT and is then off limits for the prune backoff (a minute by default), so a node with
//! few connections can stay one peer short for good. After the grace, a non-empty mesh that has
//! not changed for [`STUCK_GRACES`] grace periods (several heartbeats in which gossipsub tried
//! to graft) is therefore taken as the mesh this node gets; the ack's counts show it.

use crate::pubsub::Pubsub;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Mesh changes happen inside the router (heartbeats, GRAFTs) without an event to wake the
/// node, so a pending wait looks again this often.
pub const POLL: Duration = Duration::from_millis(20);

/// Grace periods an unchanged, non-empty mesh below the condition must last to be accepted.
pub const STUCK_GRACES: u32 = 3;

#[derive(Debug)]
pub struct MeshWait {
    pub cmd_id: u64,
    topics: Vec<String>,
    started: Instant,
    deadline: Instant,
    grace_until: Instant,
    /// A mesh this large is as good as it gets: `mesh_n_low` (gossipsub), 1 (floodsub).
    full_mesh: u32,
    /// Since when every topic's condition has held without interruption.
    met_since: Option<Instant>,
    /// An unchanged mesh this long (after the grace) is accepted as final.
    stuck_after: Duration,
    /// Per topic: the last mesh size seen and since when it has not changed.
    last_change: BTreeMap<String, (u32, Instant)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
    TimedOut {
        error: String,
        topics: BTreeMap<String, TopicCounts>,
    },
}

impl MeshWait {
    pub fn new(
        cmd_id: u64,
        topics: Vec<String>,
        now: Instant,
        timeout: Duration,
        grace: Duration,
        full_mesh: u32,
    ) -> Self {
        MeshWait {
            cmd_id,
            topics,
            started: now,
            deadline: now + timeout,
            grace_until: now + grace,
            full_mesh,
            met_since: None,
            stuck_after: grace * STUCK_GRACES,
            last_change: BTreeMap::new(),
        }
    }

    /// When to look again at the latest.
    pub fn wake_at(&self, now: Instant) -> Instant {
        (now + POLL).min(self.deadline)
    }

    pub fn check(&mut self, now: Instant, net: &Pubsub) -> MeshStatus {
        self.evaluate(now, |t| TopicCounts {
            mesh: net.mesh_peers(t),
            subscribed: net.subscribed_peers(t),
        })
    }

    fn evaluate(&mut self, now: Instant, counts: impl Fn(&str) -> TopicCounts) -> MeshStatus {
        let in_grace = now < self.grace_until;
        let mut all = BTreeMap::new();
        let mut missing = Vec::new();
        let mut settled = true;
        for t in &self.topics {
            let c = counts(t);
            let need = self.full_mesh.min(c.subscribed).max(1);
            let changed = self.last_change.entry(t.clone()).or_insert((c.mesh, now));
            if changed.0 != c.mesh {
                *changed = (c.mesh, now);
            }
            let stuck =
                !in_grace && c.mesh >= 1 && now.duration_since(changed.1) >= self.stuck_after;
            let met = if c.subscribed == 0 {
                !in_grace
            } else {
                c.mesh >= need || stuck
            };
            if !met {
                missing.push(format!(
                    "topic {t:?}: {} mesh peer(s) of {need} needed, {} subscribed peer(s) known",
                    c.mesh, c.subscribed
                ));
            }
            // A full mesh is final; a smaller one may only mean subscriptions still arrive.
            settled &= c.mesh >= self.full_mesh || !in_grace;
            all.insert(t.clone(), c);
        }
        self.met_since = if missing.is_empty() {
            Some(self.met_since.unwrap_or(now))
        } else {
            None
        };
        match self.met_since {
            // At the deadline a met condition counts even if it might still have grown.
            Some(since) if settled || now >= self.deadline => MeshStatus::Ready {
                mesh_ms: since.duration_since(self.started).as_millis() as u64,
                topics: all,
            },
            _ if now >= self.deadline => MeshStatus::TimedOut {
                error: format!(
                    "no mesh within {} ms: {}",
                    self.deadline.duration_since(self.started).as_millis(),
                    missing.join("; ")
                ),
                topics: all,
            },
            _ => MeshStatus::Waiting,
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
        let ms = Duration::from_millis;
        let mut w = wait(t0);
        // Two subscribers: two mesh peers suffice although mesh_n_low is 5, but only once
        // the grace period has passed (more subscriptions could still arrive).
        assert_eq!(w.evaluate(t0, counts((1, 2), (2, 2))), MeshStatus::Waiting);
        assert_eq!(
            w.evaluate(t0 + ms(300), counts((2, 2), (2, 2))),
            MeshStatus::Waiting
        );
        match w.evaluate(t0 + ms(1000), counts((2, 2), (2, 2))) {
            MeshStatus::Ready { mesh_ms, topics } => {
                // Met since 300 ms: the grace does not count.
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
    }

    #[test]
    fn a_mesh_that_stays_one_peer_short_is_accepted_after_a_while() {
        // Four subscribers known, one of them refuses to graft (its mesh is full): the mesh
        // stays at 3. Growth restarts the clock; an unchanged mesh counts after 3 graces.
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = MeshWait::new(1, vec!["a".into()], t0, ms(60_000), ms(1000), 5);
        let c = |mesh| counts((mesh, 4), (0, 0));
        assert_eq!(w.evaluate(t0, c(1)), MeshStatus::Waiting);
        assert_eq!(w.evaluate(t0 + ms(1000), c(2)), MeshStatus::Waiting);
        assert_eq!(w.evaluate(t0 + ms(2000), c(3)), MeshStatus::Waiting);
        assert_eq!(w.evaluate(t0 + ms(4900), c(3)), MeshStatus::Waiting);
        match w.evaluate(t0 + ms(5000), c(3)) {
            MeshStatus::Ready { mesh_ms, topics } => {
                assert_eq!(mesh_ms, 5000);
                assert_eq!(topics["a"].mesh, 3);
            }
            other => panic!("{other:?}"),
        }
        // An empty mesh is never accepted this way.
        let mut w = MeshWait::new(1, vec!["a".into()], t0, ms(10_000), ms(1000), 5);
        assert_eq!(w.evaluate(t0, c(0)), MeshStatus::Waiting);
        assert_eq!(w.evaluate(t0 + ms(9000), c(0)), MeshStatus::Waiting);
    }

    #[test]
    fn a_full_mesh_is_ready_at_once() {
        let t0 = Instant::now();
        let mut w = wait(t0);
        assert_eq!(
            w.evaluate(t0, counts((4, 20), (5, 20))),
            MeshStatus::Waiting
        );
        match w.evaluate(t0 + Duration::from_millis(40), counts((5, 20), (6, 20))) {
            MeshStatus::Ready { mesh_ms, .. } => assert_eq!(mesh_ms, 40),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn interruptions_restart_the_clock() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = wait(t0);
        // One subscriber known, one mesh peer: met, but not settled.
        assert_eq!(
            w.evaluate(t0 + ms(5), counts((1, 1), (1, 1))),
            MeshStatus::Waiting
        );
        // More subscriptions arrive: no longer met.
        assert_eq!(
            w.evaluate(t0 + ms(10), counts((1, 3), (1, 1))),
            MeshStatus::Waiting
        );
        assert_eq!(
            w.evaluate(t0 + ms(900), counts((3, 3), (1, 1))),
            MeshStatus::Waiting
        );
        match w.evaluate(t0 + ms(1100), counts((3, 3), (1, 1))) {
            MeshStatus::Ready { mesh_ms, .. } => assert_eq!(mesh_ms, 900),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_met_condition_counts_at_a_short_deadline() {
        let t0 = Instant::now();
        let mut w = MeshWait::new(
            1,
            vec!["a".into()],
            t0,
            Duration::from_millis(200),
            Duration::from_secs(1),
            5,
        );
        assert_eq!(w.evaluate(t0, counts((1, 1), (0, 0))), MeshStatus::Waiting);
        assert!(matches!(
            w.evaluate(t0 + Duration::from_millis(200), counts((1, 1), (0, 0))),
            MeshStatus::Ready { mesh_ms: 0, .. }
        ));
    }

    #[test]
    fn floodsub_needs_one_peer_and_settles_with_it() {
        let t0 = Instant::now();
        let mut w = MeshWait::new(
            1,
            vec!["a".into()],
            t0,
            Duration::from_secs(10),
            Duration::from_secs(1),
            1,
        );
        assert!(matches!(
            w.evaluate(t0, counts((3, 3), (0, 0))),
            MeshStatus::Ready { mesh_ms: 0, .. }
        ));
    }

    #[test]
    fn lonely_topics_wait_only_for_the_grace_period() {
        let t0 = Instant::now();
        let mut w = wait(t0);
        assert_eq!(w.evaluate(t0, counts((0, 0), (1, 1))), MeshStatus::Waiting);
        assert!(matches!(
            w.evaluate(t0 + Duration::from_secs(1), counts((0, 0), (1, 1))),
            MeshStatus::Ready { .. }
        ));
    }

    #[test]
    fn times_out_naming_the_topic_and_counts() {
        let t0 = Instant::now();
        let mut w = wait(t0);
        match w.evaluate(t0 + Duration::from_secs(10), counts((3, 3), (0, 4))) {
            MeshStatus::TimedOut { error: e, .. } => {
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
