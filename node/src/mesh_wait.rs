//! `subscribe` with `wait_mesh`: acknowledged when every topic's mesh reached its target, or
//! when the node has to go ahead without one.
//!
//! A topic's target is `min(mesh_n_low, known subscribed peers)` (floodsub: `min(1, …)`, its
//! "mesh" being all subscribed peers); its mesh is complete when the target is at least 1 and
//! reached. The node is *meshed* when every topic's mesh is complete; only then is there a
//! `mesh_ms` (from the subscribe until every topic last became complete), so a time to mesh
//! is never reported for a node without one.
//!
//! Right after a subscribe the peers' own SUBSCRIBE messages are still arriving, so "known
//! subscribed peers" undercounts: a mesh below `mesh_n_low` only counts once a grace period
//! (about a heartbeat) has passed. After the grace the node goes ahead without a mesh
//! (`meshed: false`, the run goes on) when each incomplete topic either has no subscribed peer
//! at all, or a non-empty mesh stuck below its target: a peer whose own mesh is full
//! (`mesh_n_high`) prunes our GRAFT and is then off limits for the prune backoff (a minute by
//! default), so a node with few connections can stay one peer short for good. "Stuck" is a
//! mesh that has not changed for [`STUCK_GRACES`] grace periods (several heartbeats in which
//! gossipsub tried to graft). An empty mesh although peers subscribe waits until the deadline
//! and fails.

use crate::pubsub::Pubsub;
use std::collections::BTreeMap;
use std::time::Duration;
use testbed_contract::results::{MeshOutcome, TopicMesh};
use tokio::time::Instant;

/// Mesh changes happen inside the router (heartbeats, GRAFTs) without an event to wake the
/// node, so a pending wait looks again this often.
pub const POLL: Duration = Duration::from_millis(20);

/// Grace periods an unchanged, non-empty mesh below its target must last to be given up on.
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
    /// Since when every topic's mesh has been complete without interruption.
    complete_since: Option<Instant>,
    /// An unchanged mesh this long (after the grace) is taken as final.
    stuck_after: Duration,
    /// Per topic: the last mesh size seen and since when it has not changed.
    last_change: BTreeMap<String, (u32, Instant)>,
}

/// Mesh and known subscribers of one topic, as the router reports them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicCounts {
    pub mesh: u32,
    pub subscribed: u32,
}

#[derive(Debug, PartialEq)]
pub enum MeshStatus {
    /// Ack `ok` with this outcome: meshed, or going ahead without a mesh (`why` says which
    /// topics have none).
    Done {
        outcome: MeshOutcome,
        why_not: Option<String>,
    },
    Waiting,
    /// Ack `ok: false` with `error`; the outcome is not meshed.
    TimedOut {
        error: String,
        outcome: MeshOutcome,
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
            complete_since: None,
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
        let mut topics = BTreeMap::new();
        // Incomplete topics: those the node can go ahead without, and those it waits for.
        let mut given_up = Vec::new();
        let mut missing = Vec::new();
        let mut settled = true;
        for t in &self.topics {
            let c = counts(t);
            let target = self.full_mesh.min(c.subscribed);
            let changed = self.last_change.entry(t.clone()).or_insert((c.mesh, now));
            if changed.0 != c.mesh {
                *changed = (c.mesh, now);
            }
            let complete = target >= 1 && c.mesh >= target;
            if !complete {
                let stuck =
                    !in_grace && c.mesh >= 1 && now.duration_since(changed.1) >= self.stuck_after;
                if c.subscribed == 0 && !in_grace {
                    given_up.push(format!("topic {t:?}: no other peer subscribes"));
                } else if stuck {
                    given_up.push(format!(
                        "topic {t:?}: mesh stuck at {} of {target} peer(s)",
                        c.mesh
                    ));
                } else {
                    missing.push(format!(
                        "topic {t:?}: {} mesh peer(s) of {} needed, {} subscribed peer(s) known",
                        c.mesh,
                        target.max(1),
                        c.subscribed
                    ));
                }
            }
            // A full mesh is final; a smaller one may only mean subscriptions still arrive.
            settled &= c.mesh >= self.full_mesh || !in_grace;
            topics.insert(
                t.clone(),
                TopicMesh {
                    mesh: c.mesh,
                    subscribed: c.subscribed,
                    target,
                },
            );
        }
        let all_complete = given_up.is_empty() && missing.is_empty();
        self.complete_since = if all_complete {
            Some(self.complete_since.unwrap_or(now))
        } else {
            None
        };
        let unmeshed = |topics| MeshOutcome {
            mesh_ms: None,
            meshed: false,
            topics,
        };
        match self.complete_since {
            // At the deadline a complete mesh counts even if it might still have grown.
            Some(since) if settled || now >= self.deadline => MeshStatus::Done {
                outcome: MeshOutcome {
                    mesh_ms: Some(since.duration_since(self.started).as_millis() as u64),
                    meshed: true,
                    topics,
                },
                why_not: None,
            },
            Some(_) => MeshStatus::Waiting,
            None if missing.is_empty() => MeshStatus::Done {
                outcome: unmeshed(topics),
                why_not: Some(format!(
                    "went ahead without a mesh: {}",
                    given_up.join("; ")
                )),
            },
            None if now >= self.deadline => MeshStatus::TimedOut {
                error: format!(
                    "no mesh within {} ms: {}",
                    self.deadline.duration_since(self.started).as_millis(),
                    missing.join("; ")
                ),
                outcome: unmeshed(topics),
            },
            None => MeshStatus::Waiting,
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

    /// The outcome of a finished wait, asserting it is `Done`.
    fn done(s: MeshStatus) -> (MeshOutcome, Option<String>) {
        match s {
            MeshStatus::Done { outcome, why_not } => (outcome, why_not),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn target_is_min_of_mesh_n_low_and_subscribers() {
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
        let (o, why_not) = done(w.evaluate(t0 + ms(1000), counts((2, 2), (2, 2))));
        // Complete since 300 ms: the grace does not count.
        assert_eq!(o.mesh_ms, Some(300));
        assert!(o.meshed);
        assert_eq!(why_not, None);
        assert_eq!(
            o.topics["a"],
            TopicMesh {
                mesh: 2,
                subscribed: 2,
                target: 2
            }
        );
    }

    #[test]
    fn a_mesh_stuck_below_its_target_goes_ahead_unmeshed() {
        // Four subscribers known, one of them refuses to graft (its mesh is full): the mesh
        // stays at 3. Growth restarts the clock; an unchanged mesh is given up on after 3
        // graces, without a time to mesh.
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = MeshWait::new(1, vec!["a".into()], t0, ms(60_000), ms(1000), 5);
        let c = |mesh| counts((mesh, 4), (0, 0));
        assert_eq!(w.evaluate(t0, c(1)), MeshStatus::Waiting);
        assert_eq!(w.evaluate(t0 + ms(1000), c(2)), MeshStatus::Waiting);
        assert_eq!(w.evaluate(t0 + ms(2000), c(3)), MeshStatus::Waiting);
        assert_eq!(w.evaluate(t0 + ms(4900), c(3)), MeshStatus::Waiting);
        let (o, why_not) = done(w.evaluate(t0 + ms(5000), c(3)));
        assert!(!o.meshed);
        assert_eq!(o.mesh_ms, None);
        assert_eq!(
            o.topics["a"],
            TopicMesh {
                mesh: 3,
                subscribed: 4,
                target: 4
            }
        );
        let why_not = why_not.unwrap();
        assert!(why_not.contains("mesh stuck at 3 of 4"), "{why_not}");
        // The wire form says so: `mesh_ms` null, `meshed` false.
        let v = serde_json::to_value(&o).unwrap();
        assert!(v["mesh_ms"].is_null() && v["meshed"] == false, "{v}");

        // An empty mesh is never given up on: it times out, not meshed.
        let mut w = MeshWait::new(1, vec!["a".into()], t0, ms(10_000), ms(1000), 5);
        assert_eq!(w.evaluate(t0, c(0)), MeshStatus::Waiting);
        assert_eq!(w.evaluate(t0 + ms(9000), c(0)), MeshStatus::Waiting);
        match w.evaluate(t0 + ms(10_000), c(0)) {
            MeshStatus::TimedOut { error, outcome } => {
                assert!(error.contains("0 mesh peer(s) of 4 needed"), "{error}");
                assert!(!outcome.meshed && outcome.mesh_ms.is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_mesh_is_ready_at_once() {
        let t0 = Instant::now();
        let mut w = wait(t0);
        assert_eq!(
            w.evaluate(t0, counts((4, 20), (5, 20))),
            MeshStatus::Waiting
        );
        let (o, _) = done(w.evaluate(t0 + Duration::from_millis(40), counts((5, 20), (6, 20))));
        assert_eq!(o.mesh_ms, Some(40));
        assert!(o.meshed);
        assert_eq!(o.topics["b"].target, 5);
    }

    #[test]
    fn interruptions_restart_the_clock() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = wait(t0);
        // One subscriber known, one mesh peer: complete, but not settled.
        assert_eq!(
            w.evaluate(t0 + ms(5), counts((1, 1), (1, 1))),
            MeshStatus::Waiting
        );
        // More subscriptions arrive: no longer complete.
        assert_eq!(
            w.evaluate(t0 + ms(10), counts((1, 3), (1, 1))),
            MeshStatus::Waiting
        );
        assert_eq!(
            w.evaluate(t0 + ms(900), counts((3, 3), (1, 1))),
            MeshStatus::Waiting
        );
        let (o, _) = done(w.evaluate(t0 + ms(1100), counts((3, 3), (1, 1))));
        assert_eq!(o.mesh_ms, Some(900));
    }

    #[test]
    fn a_complete_mesh_counts_at_a_short_deadline() {
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
        let (o, _) = done(w.evaluate(t0 + Duration::from_millis(200), counts((1, 1), (0, 0))));
        assert_eq!((o.meshed, o.mesh_ms), (true, Some(0)));
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
        let (o, _) = done(w.evaluate(t0, counts((3, 3), (0, 0))));
        assert_eq!((o.meshed, o.mesh_ms), (true, Some(0)));
        assert_eq!(o.topics["a"].target, 1);
    }

    #[test]
    fn a_topic_nobody_else_subscribes_to_goes_ahead_unmeshed_after_the_grace() {
        let t0 = Instant::now();
        let mut w = wait(t0);
        // Topic "a" has no subscriber; "b" has a complete mesh.
        assert_eq!(w.evaluate(t0, counts((0, 0), (1, 1))), MeshStatus::Waiting);
        let (o, why_not) = done(w.evaluate(t0 + Duration::from_secs(1), counts((0, 0), (1, 1))));
        assert!(!o.meshed);
        assert_eq!(o.mesh_ms, None);
        assert_eq!(
            o.topics["a"],
            TopicMesh {
                mesh: 0,
                subscribed: 0,
                target: 0
            }
        );
        assert_eq!(o.topics["b"].target, 1);
        let why_not = why_not.unwrap();
        assert!(
            why_not.contains("topic \"a\": no other peer subscribes") && !why_not.contains("\"b\""),
            "{why_not}"
        );
    }

    #[test]
    fn times_out_naming_the_topic_and_counts() {
        let t0 = Instant::now();
        let mut w = wait(t0);
        match w.evaluate(t0 + Duration::from_secs(10), counts((3, 3), (0, 4))) {
            MeshStatus::TimedOut { error: e, outcome } => {
                assert!(e.contains("topic \"b\""), "{e}");
                assert!(
                    e.contains("0 mesh peer(s) of 4 needed, 4 subscribed"),
                    "{e}"
                );
                assert!(!e.contains("topic \"a\""), "{e}");
                assert!(!outcome.meshed && outcome.mesh_ms.is_none());
                assert_eq!(outcome.topics["a"].mesh, 3);
            }
            other => panic!("{other:?}"),
        }
    }
}
