use serde::{Deserialize, Serialize};

/// Network emulation (latency, jitter, loss, bandwidth, partitions) for the `netns` runner.
/// Filled in by the network emulation work; until then it takes no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {}
