use super::group::Implementation;
use serde::{Deserialize, Serialize};

/// The plan's `witness:` section: extra subscribers, typically of another implementation,
/// that join every topic the fleet subscribes to, never publish, and count what they
/// receive. Their counts are reported beside the fleet's own figures (never in them), so a
/// run can be cross-checked by code that is not the fleet's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Witness {
    /// Which node program listens: `rust`, `go` or `js`.
    pub implementation: Implementation,
    /// How many witnesses (each a process of its own).
    #[serde(default = "default_count")]
    pub count: u32,
    /// Version of the implementation's pubsub library (Go only), as for a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impl_version: Option<String>,
    /// How many fleet nodes each witness dials, drawn from the plan's seed.
    #[serde(default = "default_peers")]
    pub peers: u32,
}

fn default_count() -> u32 {
    1
}

fn default_peers() -> u32 {
    4
}
