//! Every node in its own network namespace, reachable only through its TUN device, which the
//! user-space shaper (`netsim`) holds: per-link latency, jitter, loss, bandwidth and
//! partitions in both directions. The namespaces belong to the node processes, so they go
//! when the processes go; control traffic uses the Unix socket and never crosses a link.

use super::local::{node_command, send_signal, shutdown_all, spawn_watched};
use super::{ControlTransport, ExitSender, NodeLaunch, Runner, RunnerError, StopMode};
use crate::record::Sections;
use async_trait::async_trait;
use netsim::{Netsim, NetsimConfig, NodeNet};
use std::collections::HashMap;
use std::time::Duration;
use testbed_contract::plan::Plan;
use tokio::sync::watch;

pub struct NetnsRunner {
    exits: ExitSender,
    sim: Option<Netsim>,
    nets: HashMap<u32, NodeNet>,
    running: HashMap<u32, (u32, watch::Receiver<bool>)>,
    stats: Option<netsim::NetsimStats>,
}

impl NetnsRunner {
    /// Checks privileges and `/dev/net/tun` (the error says what is missing), then starts the
    /// shaper for the plan's network section.
    pub fn new(plan: &Plan, exits: ExitSender) -> Result<NetnsRunner, RunnerError> {
        Netsim::preflight().map_err(|e| {
            RunnerError::Unavailable(format!("the netns runner cannot run here: {e}"))
        })?;
        let network = plan.network.clone().unwrap_or_default();
        let groups = plan.groups.iter().map(|g| g.id.clone()).collect();
        let sim = Netsim::start(NetsimConfig::new(network, groups, plan.seed)).map_err(|e| {
            RunnerError::Unavailable(format!("cannot start the network shaper: {e}"))
        })?;
        Ok(NetnsRunner {
            exits,
            sim: Some(sim),
            nets: HashMap::new(),
            running: HashMap::new(),
            stats: None,
        })
    }

    fn sim(&self) -> Result<&Netsim, RunnerError> {
        self.sim
            .as_ref()
            .ok_or_else(|| RunnerError::Unavailable("the shaper has stopped".into()))
    }
}

#[async_trait]
impl Runner for NetnsRunner {
    fn name(&self) -> &'static str {
        "netns"
    }

    fn control_transport(&self) -> ControlTransport {
        ControlTransport::Unix
    }

    fn listen_ip(&self, index: u32) -> String {
        self.sim
            .as_ref()
            .and_then(|s| s.addressing().addr_of(index))
            .map_or_else(|| "127.0.0.1".into(), |a| a.to_string())
    }

    async fn launch(&mut self, node: NodeLaunch) -> Result<Option<u32>, RunnerError> {
        let net = self.sim()?.add_node(node.index, &node.group).map_err(|e| {
            RunnerError::Unavailable(format!(
                "node {}: cannot create its namespace: {e}",
                node.index
            ))
        })?;
        let mut cmd = node_command(&node)?;
        let hook = net.pre_exec_hook(true);
        // SAFETY: the hook only makes async-signal-safe system calls (setns, prctl, kill).
        unsafe { cmd.pre_exec(hook) };
        let (pid, reaped) = spawn_watched(cmd, &node, &self.exits)?;
        self.running.insert(node.index, (pid, reaped));
        self.nets.insert(node.index, net);
        Ok(Some(pid))
    }

    async fn stop(&mut self, index: u32, mode: StopMode) -> Result<(), RunnerError> {
        let (pid, reaped) = self
            .running
            .get(&index)
            .ok_or(RunnerError::NotRunning(index))?;
        if !*reaped.borrow() {
            send_signal(*pid, mode);
        }
        Ok(())
    }

    fn workload_started(&mut self) {
        if let Some(sim) = &self.sim
            && let Err(e) = sim.start_events()
        {
            tracing::warn!("cannot start the network events: {e}");
        }
    }

    async fn shutdown(&mut self, grace: Duration) {
        shutdown_all(&mut self.running, grace).await;
        self.nets.clear();
        if let Some(sim) = self.sim.take() {
            match sim.stop() {
                Ok(stats) => self.stats = Some(stats),
                Err(e) => tracing::warn!("the network shaper did not stop cleanly: {e}"),
            }
        }
    }

    fn add_sections(&mut self, sections: &mut Sections) {
        sections.shaper = self.stats.take();
    }
}
