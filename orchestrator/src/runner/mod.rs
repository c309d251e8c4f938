//! The runner seam: how node processes come to exist and go away. `local` runs plain
//! processes on this machine; `netns` (network emulation) and `k8s` plug in here. The fleet
//! logic never knows which runner it has: it launches, stops, and hears about exits.

pub mod external;
pub mod local;
pub mod netns;
pub mod program;

use crate::record::Sections;
use async_trait::async_trait;
use std::path::PathBuf;
use std::time::Duration;
use testbed_contract::plan::Implementation;
use tokio::sync::mpsc;

pub use program::NodeProgram;

/// Everything needed to start one node.
#[derive(Debug, Clone)]
pub struct NodeLaunch {
    pub index: u32,
    pub group: String,
    pub implementation: Implementation,
    /// The command to run (program and arguments).
    pub program: NodeProgram,
    /// Environment for the node (run id, index, control address …) beyond the runner's own.
    pub env: Vec<(String, String)>,
    /// Where the node's stdout and stderr go.
    pub log_path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// SIGTERM: the node sends its result and exits.
    Graceful,
    /// SIGKILL.
    Kill,
}

/// A node process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeExit {
    pub index: u32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl std::fmt::Display for NodeExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exited with code {c}"),
            (None, Some(s)) => write!(f, "was killed by signal {s} ({})", signal_name(s)),
            _ => write!(f, "ended"),
        }
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot start node {index} ({program}): {source}")]
    Spawn {
        index: u32,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write node log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("node {0} is not running")]
    NotRunning(u32),
}

/// Which control endpoint a runner's nodes should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlTransport {
    Tcp,
    Unix,
}

#[async_trait]
pub trait Runner: Send {
    fn name(&self) -> &'static str;
    /// How the nodes of this runner reach the control server.
    fn control_transport(&self) -> ControlTransport {
        ControlTransport::Tcp
    }
    /// IP address node `index` listens on for libp2p.
    fn listen_ip(&self, _index: u32) -> String {
        "127.0.0.1".into()
    }
    /// Starts one node; returns its process id where there is one.
    async fn launch(&mut self, node: NodeLaunch) -> Result<Option<u32>, RunnerError>;
    /// Stops one node; its exit is reported on the exits channel like any other.
    async fn stop(&mut self, index: u32, mode: StopMode) -> Result<(), RunnerError>;
    /// Ends every node still running (SIGTERM, then SIGKILL after `grace`) and reaps them all.
    async fn shutdown(&mut self, grace: Duration);
    /// The workload starts now: time zero of timed events (network partitions, …).
    fn workload_started(&mut self) {}
    /// Adds the runner's sections to run.json once the run is over (the shaper's counters).
    fn add_sections(&mut self, _sections: &mut Sections) {}
}

/// The channel on which a runner reports node exits.
pub type ExitSender = mpsc::UnboundedSender<NodeExit>;
