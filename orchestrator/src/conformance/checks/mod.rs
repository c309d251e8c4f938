//! The checks, by group: a node's start ([`startup`]), its answers to commands
//! ([`commands`]), every message it sent ([`messages`]) and its final result ([`results`]).
//! Each returns what was wrong, naming it; the session records it for the node.

pub(crate) mod commands;
pub(crate) mod messages;
pub(crate) mod results;
pub(crate) mod startup;

use super::harness::Proc;
use testbed_contract::protocol::NodeMsg;
use testbed_contract::results::NodeState;

pub(crate) fn saw_state(p: &Proc, state: NodeState) -> bool {
    p.lines
        .iter()
        .any(|l| matches!(&l.msg, Ok(NodeMsg::State { state: s, .. }) if *s == state))
}
