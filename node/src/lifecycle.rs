//! The node's lifecycle as an explicit state machine with a timestamped timeline.
//!
//! States only move forward (Starting → Listening → Connected → Subscribed → Ready →
//! Running → Draining → Done), or to Failed from anywhere. Re-entering an earlier phase later
//! in a run (a second `connect` during churn, a `subscribe` while publishing) does not move
//! the timeline backwards: the timeline answers "how far did this node get, and when".

use testbed_contract::protocol::NodeMsg;
use testbed_contract::results::{NodeState, StateChange};

#[derive(Debug)]
pub struct Lifecycle {
    timeline: Vec<StateChange>,
}

impl Lifecycle {
    /// A node whose control channel opened at `at_ns`.
    pub fn new(at_ns: u64) -> Self {
        Lifecycle {
            timeline: vec![StateChange {
                state: NodeState::Starting,
                at_ns,
                detail: None,
            }],
        }
    }

    pub fn current(&self) -> NodeState {
        self.timeline
            .last()
            .map_or(NodeState::Starting, |c| c.state)
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.current(), NodeState::Done | NodeState::Failed)
    }

    /// The message announcing the latest transition (used for `starting`, which is recorded
    /// before the node may speak).
    pub fn last_msg(&self) -> NodeMsg {
        let c = self.timeline.last().expect("the timeline starts non-empty");
        state_msg(c)
    }

    /// Moves to `state` at `at_ns` if that is forward; returns the `state` message to send.
    pub fn advance(
        &mut self,
        state: NodeState,
        at_ns: u64,
        detail: Option<String>,
    ) -> Option<NodeMsg> {
        if self.is_terminal() || state == NodeState::Failed || state <= self.current() {
            return None;
        }
        Some(self.push(state, at_ns, detail))
    }

    /// Moves to Failed (from any non-terminal state).
    pub fn fail(&mut self, at_ns: u64, detail: String) -> Option<NodeMsg> {
        if self.is_terminal() {
            return None;
        }
        Some(self.push(NodeState::Failed, at_ns, Some(detail)))
    }

    pub fn timeline(&self) -> &[StateChange] {
        &self.timeline
    }

    fn push(&mut self, state: NodeState, at_ns: u64, detail: Option<String>) -> NodeMsg {
        // Timestamps never go backwards in the timeline even if the wall clock is stepped.
        let at_ns = at_ns.max(self.timeline.last().map_or(0, |c| c.at_ns));
        self.timeline.push(StateChange {
            state,
            at_ns,
            detail,
        });
        self.last_msg()
    }
}

fn state_msg(c: &StateChange) -> NodeMsg {
    NodeMsg::State {
        state: c.state,
        at_ns: c.at_ns,
        detail: c.detail.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NodeState::*;

    fn states(l: &Lifecycle) -> Vec<NodeState> {
        l.timeline().iter().map(|c| c.state).collect()
    }

    #[test]
    fn moves_forward_only() {
        let mut l = Lifecycle::new(10);
        assert!(l.advance(Listening, 11, None).is_some());
        assert!(l.advance(Connected, 12, None).is_some());
        assert!(l.advance(Subscribed, 13, None).is_some());
        assert!(l.advance(Connected, 14, None).is_none());
        assert!(l.advance(Subscribed, 14, None).is_none());
        assert!(l.advance(Running, 15, None).is_some());
        assert!(l.advance(Ready, 16, None).is_none());
        assert_eq!(
            states(&l),
            vec![Starting, Listening, Connected, Subscribed, Running]
        );
    }

    #[test]
    fn terminal_states_stick() {
        let mut l = Lifecycle::new(0);
        let msg = l.fail(5, "boom".into()).unwrap();
        assert_eq!(
            msg,
            NodeMsg::State {
                state: Failed,
                at_ns: 5,
                detail: Some("boom".into())
            }
        );
        assert!(l.advance(Done, 6, None).is_none());
        assert!(l.fail(7, "again".into()).is_none());

        let mut l = Lifecycle::new(0);
        l.advance(Draining, 1, None).unwrap();
        l.advance(Done, 2, None).unwrap();
        assert!(l.fail(3, "late".into()).is_none());
        assert_eq!(states(&l), vec![Starting, Draining, Done]);
    }

    #[test]
    fn failed_only_through_fail() {
        let mut l = Lifecycle::new(0);
        assert!(l.advance(Failed, 1, None).is_none());
        assert_eq!(l.current(), Starting);
    }

    #[test]
    fn timestamps_are_monotonic() {
        let mut l = Lifecycle::new(100);
        l.advance(Listening, 50, None).unwrap();
        assert_eq!(l.timeline()[1].at_ns, 100);
    }
}
