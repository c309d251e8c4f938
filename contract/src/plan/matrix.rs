use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A sweep over parameters (`orchestrator bench`): every combination of the listed values is
/// a cell, each run `iterations` times on a fresh fleet. `warmup` unrecorded runs go first
/// (cycling through the cells), to warm caches before anything is measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub params: BTreeMap<String, Vec<serde_json::Value>>,
    #[serde(default = "one")]
    pub iterations: u32,
    #[serde(default)]
    pub warmup: u32,
    /// The swept parameter whose values are the variants compared side by side (A = its
    /// first value, B = each further value), e.g. `variant` with `[gossipsub, floodsub]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
    /// The swept parameter on the charts' x axis (default: `hosts` when swept, else the
    /// first swept parameter that is not `compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
}

fn one() -> u32 {
    1
}
