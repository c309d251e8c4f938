//! Starting and stopping nodes while the run goes on. `run_plan` hands the churn phase the
//! runner and one launch of each group exactly as it launched the initial fleet; a new peer
//! is that launch with its own index (environment, listen address, log file), so whatever
//! the initial nodes were given (control address, telemetry …), a new peer gets too.

use crate::run::fleet::NodeSlot;
use crate::runner::{NodeLaunch, Runner, RunnerError, StopMode};
use std::collections::BTreeMap;
use std::path::PathBuf;
use testbed_contract::env;
use testbed_contract::protocol::NodeConfig;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "no node of group `{0}` was launched at the start, so there is nothing to copy a new peer from"
    )]
    NoTemplate(String),
    #[error(transparent)]
    Runner(#[from] RunnerError),
}

pub struct Launcher<'r> {
    runner: &'r mut dyn Runner,
    /// Group id → (the launch and the welcome config of its first node).
    templates: BTreeMap<String, (NodeLaunch, NodeConfig)>,
    /// The run's results folder (node logs go to `logs/node-NNNN.log`).
    results_dir: PathBuf,
    plan_seed: u64,
}

impl<'r> Launcher<'r> {
    pub fn new(
        runner: &'r mut dyn Runner,
        templates: BTreeMap<String, (NodeLaunch, NodeConfig)>,
        results_dir: PathBuf,
        plan_seed: u64,
    ) -> Self {
        Launcher {
            runner,
            templates,
            results_dir,
            plan_seed,
        }
    }

    /// Starts node `index` of `group`; returns its slot (pid filled in) for the fleet.
    pub async fn launch(&mut self, index: u32, group: &str) -> Result<NodeSlot, LaunchError> {
        let (template, config) = self
            .templates
            .get(group)
            .ok_or_else(|| LaunchError::NoTemplate(group.to_string()))?;
        let mut launch = template.clone();
        launch.index = index;
        launch.log_path = self.results_dir.join(format!("logs/node-{index:04}.log"));
        let listen_ip = self.runner.listen_ip(index);
        for (k, v) in &mut launch.env {
            if k == env::NODE_INDEX {
                *v = index.to_string();
            } else if k == env::LISTEN_IP {
                *v = listen_ip.clone();
            }
        }
        let mut config = config.clone();
        config.index = index;
        config.seed = crate::run::node_seed(self.plan_seed, index);
        if let Some(t) = config.tracing.as_mut() {
            t.service_name = testbed_contract::protocol::node_service_name(index);
        }
        let mut slot = NodeSlot::new(config, launch.implementation.as_str());
        slot.pid = self.runner.launch(launch).await?;
        Ok(slot)
    }

    pub async fn stop(&mut self, index: u32, mode: StopMode) -> Result<(), RunnerError> {
        self.runner.stop(index, mode).await
    }
}
