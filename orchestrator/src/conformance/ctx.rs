//! What every part of the check needs to know: the implementation under test, its program,
//! the Rust reference, where the logs go.

use crate::runner::program::NodeProgram;
use std::path::PathBuf;
use testbed_contract::plan::Implementation;

pub(super) struct Ctx {
    pub(super) implementation: Implementation,
    pub(super) impl_version: Option<String>,
    pub(super) program: NodeProgram,
    pub(super) reference: NodeProgram,
    pub(super) logs: PathBuf,
}

impl Ctx {
    pub(super) fn who(&self, index: u32) -> String {
        format!("node {index} ({})", self.implementation.as_str())
    }
}
