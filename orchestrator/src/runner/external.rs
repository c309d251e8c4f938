//! Nodes that something else starts: the pods of a Kubernetes Indexed Job, or processes a
//! person starts by hand. This runner launches nothing; it only records which nodes the run
//! expects. Crash detection comes from the control channel (a node whose connection closes
//! before its final result has failed), since there is no process to wait for here.

use super::{NodeLaunch, Runner, RunnerError, StopMode};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct ExternalRunner {
    /// Expected nodes by index, and whether the run asked them to stop.
    expected: BTreeMap<u32, Expected>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub group: String,
    pub stop: Option<StopMode>,
}

impl ExternalRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes the run expects, with the stop the run asked for (if any).
    pub fn expected(&self) -> &BTreeMap<u32, Expected> {
        &self.expected
    }
}

#[async_trait]
impl Runner for ExternalRunner {
    fn name(&self) -> &'static str {
        "external"
    }

    /// Nodes started elsewhere pick their own listen address (a pod's IP); this is only what
    /// the run writes into an environment nobody reads.
    fn listen_ip(&self, _index: u32) -> String {
        "0.0.0.0".into()
    }

    async fn launch(&mut self, node: NodeLaunch) -> Result<Option<u32>, RunnerError> {
        self.expected.insert(
            node.index,
            Expected {
                group: node.group,
                stop: None,
            },
        );
        Ok(None)
    }

    /// There is no process to signal: the stop is recorded, and the node itself leaves when
    /// the control channel tells it to (or its pod is deleted with the run).
    async fn stop(&mut self, index: u32, mode: StopMode) -> Result<(), RunnerError> {
        let e = self
            .expected
            .get_mut(&index)
            .ok_or(RunnerError::NotRunning(index))?;
        e.stop = Some(mode);
        Ok(())
    }

    async fn shutdown(&mut self, _grace: Duration) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::NodeProgram;
    use testbed_contract::plan::Implementation;

    fn launch(index: u32) -> NodeLaunch {
        NodeLaunch {
            index,
            group: "g".into(),
            implementation: Implementation::Rust,
            program: NodeProgram {
                path: "/nonexistent/pubsub-node".into(),
                args: vec![],
            },
            env: vec![],
            log_path: "/nonexistent/log".into(),
        }
    }

    #[tokio::test]
    async fn launches_nothing_and_records_stops() {
        let mut r = ExternalRunner::new();
        assert_eq!(r.launch(launch(0)).await.unwrap(), None);
        assert_eq!(r.launch(launch(1)).await.unwrap(), None);
        r.stop(1, StopMode::Graceful).await.unwrap();
        assert!(matches!(
            r.stop(7, StopMode::Kill).await,
            Err(RunnerError::NotRunning(7))
        ));
        r.shutdown(Duration::from_secs(1)).await;
        assert_eq!(r.expected()[&0].stop, None);
        assert_eq!(r.expected()[&1].stop, Some(StopMode::Graceful));
        assert_eq!(r.name(), "external");
    }
}
