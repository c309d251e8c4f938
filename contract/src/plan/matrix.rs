use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A sweep over parameters: every combination of the listed values is a cell, each run
/// `iterations` times (after `warmup` unrecorded runs) on a fresh fleet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub params: BTreeMap<String, Vec<serde_json::Value>>,
    #[serde(default = "one")]
    pub iterations: u32,
    #[serde(default)]
    pub warmup: u32,
}

fn one() -> u32 {
    1
}
