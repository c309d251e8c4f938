//! Starting and stopping nodes while the run goes on. A new peer is the spec's node of its
//! group with its own index ([`crate::spec::RunSpec::node`]), wired exactly as the initial
//! fleet was ([`crate::spec::Wiring::launch`]): whatever the initial nodes were given
//! (control address, telemetry …), a new peer gets too.

use crate::fleet::NodeSlot;
use crate::runner::{Runner, RunnerError, StopMode};
use crate::spec::{RunSpec, SpecError, Wiring};

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
}

pub struct Launcher<'r> {
    runner: &'r mut dyn Runner,
    spec: &'r RunSpec,
    wiring: &'r Wiring,
}

impl<'r> Launcher<'r> {
    pub fn new(runner: &'r mut dyn Runner, spec: &'r RunSpec, wiring: &'r Wiring) -> Self {
        Launcher {
            runner,
            spec,
            wiring,
        }
    }

    /// Starts node `index` of `group`; returns its slot (pid filled in) for the fleet.
    pub async fn launch(&mut self, index: u32, group: &str) -> Result<NodeSlot, LaunchError> {
        let node = self.spec.node(index, group)?;
        let (launch, config) = self.wiring.launch(&node, self.runner.listen_ip(index));
        let pid = self.runner.launch(launch).await?;
        Ok(NodeSlot::new(config, node.implementation.as_str()).with_pid(pid))
    }

    pub async fn stop(&mut self, index: u32, mode: StopMode) -> Result<(), RunnerError> {
        self.runner.stop(index, mode).await
    }
}
