use serde::{Deserialize, Serialize};

/// Churn workload (peers, topics and friendships come and go). Filled in by the simulator
/// work; until then it takes no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChurnPhase {}
