//! What a pod's status says about its node, in words a person can act on: OOMKilled,
//! ImagePullBackOff, CrashLoopBackOff, Pending too long, … Pure functions of `Pod` objects,
//! so every case is tested without a cluster.

use super::render::{
    ANNOTATION_COMPLETION_INDEX, COORDINATOR, EXIT_NO_COORDINATOR, EXIT_NO_DNS, LABEL_COMPONENT,
    LABEL_GROUP_INDEX, Layout,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use std::time::Duration;

/// Whose pod it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Coordinator,
    /// The pod of nodes `index..index + count` (one unless several nodes share a pod), and
    /// their group's position in the plan.
    Node {
        index: u32,
        count: u32,
        group_index: usize,
    },
    /// A group's Job itself (its events: pods it cannot create).
    Group {
        group_index: usize,
    },
    Other,
}

impl Role {
    /// The global indices of the nodes in this pod.
    pub fn nodes(&self) -> std::ops::Range<u32> {
        match self {
            Role::Node { index, count, .. } => *index..index + count,
            _ => 0..0,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Coordinator => write!(f, "the coordinator"),
            Role::Node {
                index, count: 1, ..
            } => write!(f, "node {index}"),
            Role::Node { index, count, .. } => {
                write!(f, "nodes {index}-{}", index + count.saturating_sub(1))
            }
            Role::Group { .. } => write!(f, "the Job"),
            Role::Other => write!(f, "a pod"),
        }
    }
}

/// The role of `pod`, given where the run's nodes are (`layout`).
pub fn role(pod: &Pod, layout: &Layout) -> Role {
    let labels = pod.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    match label(LABEL_COMPONENT) {
        Some(COORDINATOR) => Role::Coordinator,
        Some("node") => {
            let gi = label(LABEL_GROUP_INDEX).and_then(|v| v.parse::<usize>().ok());
            // The Job controller sets the completion index as an annotation (and, since 1.28,
            // as a label too).
            let ci = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_COMPLETION_INDEX))
                .or_else(|| labels.and_then(|l| l.get(ANNOTATION_COMPLETION_INDEX)))
                .and_then(|v| v.parse::<u32>().ok());
            match (gi, ci) {
                (Some(gi), Some(ci)) => match layout.nodes_of(gi, ci) {
                    Some((index, count)) => Role::Node {
                        index,
                        count,
                        group_index: gi,
                    },
                    None => Role::Other,
                },
                _ => Role::Other,
            }
        }
        _ => Role::Other,
    }
}

/// Something wrong with a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The container went over its memory limit and the kernel killed it.
    OomKilled { exit_code: i32 },
    /// The image cannot be pulled (`ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, …).
    ImagePull { reason: String, message: String },
    /// The container keeps crashing and the kubelet backs off restarting it.
    CrashLoop { message: String },
    /// The container cannot be created (`CreateContainerConfigError`, …).
    Container { reason: String, message: String },
    /// The container exited with an error.
    Exited {
        exit_code: i32,
        reason: String,
        message: String,
    },
    /// The kubelet evicted the pod (node pressure).
    Evicted { message: String },
    /// The pod failed without container details.
    Failed { reason: String, message: String },
    /// Not running after the allowed time; the scheduler's last word, if any.
    PendingTooLong { waited: Duration, why: String },
    /// Kubernetes reported that it cannot create or start the pod (a Warning Event:
    /// `FailedCreatePodSandBox`, `FailedMount`, a Job's `FailedCreate`, …) and the pod has not
    /// started since.
    Event {
        reason: String,
        message: String,
        count: i32,
    },
    /// The node's cluster DNS did not answer (its shell line gave up before starting the node).
    ClusterDns { message: String },
    /// The coordinator's name never resolved although cluster DNS answered.
    NoCoordinatorName { message: String },
}

impl Problem {
    /// A short name: the Kubernetes reason where there is one.
    pub fn reason(&self) -> &str {
        match self {
            Problem::OomKilled { .. } => "OOMKilled",
            Problem::ImagePull { reason, .. } | Problem::Container { reason, .. } => reason,
            Problem::CrashLoop { .. } => "CrashLoopBackOff",
            Problem::Exited { .. } => "Error",
            Problem::Evicted { .. } => "Evicted",
            Problem::Failed { reason, .. } => reason,
            Problem::PendingTooLong { .. } => "PendingTooLong",
            Problem::Event { reason, .. } => reason,
            Problem::ClusterDns { .. } => "ClusterDNS",
            Problem::NoCoordinatorName { .. } => "CoordinatorNameUnresolved",
        }
    }

    /// The pod will never run its program: the run cannot go on without it, so it is stopped
    /// at once instead of waiting for the coordinator's startup timeout.
    pub fn blocks_start(&self) -> bool {
        matches!(
            self,
            Problem::ImagePull { .. }
                | Problem::CrashLoop { .. }
                | Problem::Container { .. }
                | Problem::PendingTooLong { .. }
                | Problem::Event { .. }
                | Problem::ClusterDns { .. }
                | Problem::NoCoordinatorName { .. }
        )
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msg = |m: &str| {
            if m.is_empty() {
                String::new()
            } else {
                format!(": {m}")
            }
        };
        match self {
            Problem::OomKilled { exit_code } => write!(
                f,
                "OOMKilled (exit code {exit_code}): it went over its memory limit; raise the group's `resources.memory_limit`"
            ),
            Problem::ImagePull { reason, message } => write!(
                f,
                "{reason}{}; check the image name, that it is in the cluster (`kind load docker-image`, `scripts/local-cluster.sh image`) or in a registry the cluster can pull from",
                msg(message)
            ),
            Problem::CrashLoop { message } => write!(f, "CrashLoopBackOff{}", msg(message)),
            Problem::Container { reason, message } => write!(f, "{reason}{}", msg(message)),
            Problem::Exited {
                exit_code,
                reason,
                message,
            } => {
                write!(f, "exited with code {exit_code} ({reason}){}", msg(message))
            }
            Problem::Evicted { message } => write!(f, "Evicted{}", msg(message)),
            Problem::Failed { reason, message } => write!(f, "failed ({reason}){}", msg(message)),
            Problem::PendingTooLong { waited, why } => write!(
                f,
                "still Pending after {}{}",
                humantime::format_duration(*waited),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ),
            Problem::Event {
                reason,
                message,
                count,
            } => {
                let times = if *count > 1 {
                    format!(" ({count} times)")
                } else {
                    String::new()
                };
                write!(f, "{reason}{times}{}", msg(message))?;
                match reason.as_str() {
                    "FailedCreatePodSandBox" => write!(
                        f,
                        "; the container runtime cannot create the pod (a memory limit too small for the pod's sandbox is a usual cause: raise the group's `resources.memory_limit`)"
                    ),
                    "FailedMount" | "FailedAttachVolume" | "FailedMapVolume" => {
                        write!(f, "; a volume of the pod cannot be mounted")
                    }
                    "FailedCreate" => write!(
                        f,
                        "; the Job cannot create its pods (quota, admission or policy: see the message)"
                    ),
                    _ => Ok(()),
                }
            }
            Problem::ClusterDns { message } => write!(
                f,
                "cluster DNS does not work{}; check the cluster's DNS (CoreDNS pods or service, the kubelet's clusterDNS)",
                msg(message)
            ),
            Problem::NoCoordinatorName { message } => {
                write!(f, "the name `coordinator` never resolved{}", msg(message))
            }
        }
    }
}

const IMAGE_PULL: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];
const CONTAINER: [&str; 4] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "PreStartHookError",
];

/// What a pod's status shows now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    pub phase: String,
    pub ready: bool,
    pub problem: Option<Problem>,
    /// The scheduler's message while the pod cannot be placed.
    pub unschedulable: Option<String>,
}

impl PodStatus {
    pub fn pending(&self) -> bool {
        self.phase == "Pending" || self.phase.is_empty()
    }
    pub fn terminated(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }
}

pub fn status(pod: &Pod) -> PodStatus {
    let Some(st) = &pod.status else {
        return PodStatus::default();
    };
    let phase = st.phase.clone().unwrap_or_default();
    let conditions = st.conditions.as_deref().unwrap_or_default();
    let ready = conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let unschedulable = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| c.message.clone().or(c.reason.clone()).unwrap_or_default());
    let containers = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten());
    let mut problem = containers.filter_map(container_problem).next();
    if problem.is_none() && st.reason.as_deref() == Some("Evicted") {
        problem = Some(Problem::Evicted {
            message: st.message.clone().unwrap_or_default(),
        });
    }
    if problem.is_none() && phase == "Failed" {
        problem = Some(Problem::Failed {
            reason: st.reason.clone().unwrap_or_else(|| "Failed".into()),
            message: st.message.clone().unwrap_or_default(),
        });
    }
    PodStatus {
        phase,
        ready,
        problem,
        unschedulable,
    }
}

fn container_problem(c: &ContainerStatus) -> Option<Problem> {
    let state = c.state.as_ref();
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.clone().unwrap_or_default();
        let message = w.message.clone().unwrap_or_default();
        if IMAGE_PULL.contains(&reason.as_str()) {
            return Some(Problem::ImagePull { reason, message });
        }
        if CONTAINER.contains(&reason.as_str()) {
            return Some(Problem::Container { reason, message });
        }
        if reason == "CrashLoopBackOff" {
            let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            if last.and_then(|t| t.reason.as_deref()) == Some("OOMKilled") {
                return Some(Problem::OomKilled {
                    exit_code: last.map_or(137, |t| t.exit_code),
                });
            }
            let detail = last
                .map(|t| {
                    format!(
                        "last exit code {} ({})",
                        t.exit_code,
                        t.reason.clone().unwrap_or_default()
                    )
                })
                .unwrap_or(message);
            return Some(Problem::CrashLoop { message: detail });
        }
    }
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        let reason = t.reason.clone().unwrap_or_default();
        if reason == "OOMKilled" {
            return Some(Problem::OomKilled {
                exit_code: t.exit_code,
            });
        }
        let message = last_line(t.message.as_deref().unwrap_or_default());
        if t.exit_code == EXIT_NO_DNS {
            return Some(Problem::ClusterDns { message });
        }
        if t.exit_code == EXIT_NO_COORDINATOR {
            return Some(Problem::NoCoordinatorName { message });
        }
        if t.exit_code != 0 {
            return Some(Problem::Exited {
                exit_code: t.exit_code,
                reason: if reason.is_empty() {
                    "Error".into()
                } else {
                    reason
                },
                message,
            });
        }
    }
    None
}

/// The last non-empty line of a termination message (with `FallbackToLogsOnError` it is the
/// end of the container's log, up to 80 lines), at most 400 characters.
fn last_line(message: &str) -> String {
    let line = message
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim();
    match line.char_indices().nth(400) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

#[cfg(test)]
pub mod fixtures {
    //! Pods as the API server would return them, for tests here and in `run`.
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    pub fn node_pod(
        name: &str,
        group_index: usize,
        completion: u32,
        status: serde_json::Value,
    ) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name,
                "labels": {
                    "app.kubernetes.io/name": "pubsub-testbed",
                    "app.kubernetes.io/component": "node",
                    "pubsub-testbed/group-index": group_index.to_string(),
                },
                "annotations": {"batch.kubernetes.io/job-completion-index": completion.to_string()},
            },
            "status": status,
        }))
        .expect("pod fixture")
    }

    pub fn coordinator_pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "coordinator",
                "labels": {"app.kubernetes.io/name": "pubsub-testbed", "app.kubernetes.io/component": "coordinator"},
            },
            "status": status,
        }))
        .expect("pod fixture")
    }

    pub fn running(ready: bool) -> serde_json::Value {
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
               "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready, "restartCount": 0,
                                      "state": {"running": {}}}]})
    }

    pub fn succeeded() -> serde_json::Value {
        json!({"phase": "Succeeded", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
               "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})
    }

    pub fn oom_killed() -> serde_json::Value {
        json!({"phase": "Failed", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
               "restartCount": 0, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]})
    }

    pub fn waiting(reason: &str, message: &str) -> serde_json::Value {
        json!({"phase": "Pending", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
               "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}}]})
    }

    pub fn unschedulable(message: &str) -> serde_json::Value {
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
               "message": message}]})
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn roles() {
        let layout = Layout {
            offsets: vec![0, 20],
            counts: vec![20, 10],
            nodes_per_pod: 1,
        };
        assert_eq!(
            role(&node_pod("p", 1, 3, json!({})), &layout),
            Role::Node {
                index: 23,
                count: 1,
                group_index: 1
            }
        );
        assert_eq!(
            role(&node_pod("p", 0, 3, json!({})), &layout),
            Role::Node {
                index: 3,
                count: 1,
                group_index: 0
            }
        );
        assert_eq!(role(&node_pod("p", 5, 3, json!({})), &layout), Role::Other);
        assert_eq!(role(&node_pod("p", 1, 10, json!({})), &layout), Role::Other);
        assert_eq!(
            role(&coordinator_pod(json!({})), &layout),
            Role::Coordinator
        );
        // Several nodes per pod: the pod's first node and how many it runs.
        let packed = Layout {
            nodes_per_pod: 8,
            ..layout
        };
        let r = role(&node_pod("p", 1, 1, json!({})), &packed);
        assert_eq!(
            r,
            Role::Node {
                index: 28,
                count: 2,
                group_index: 1
            }
        );
        assert_eq!(r.to_string(), "nodes 28-29");
        assert_eq!(r.nodes(), 28..30);
    }

    #[test]
    fn problems() {
        let s = |v| status(&node_pod("p", 0, 0, v));
        assert_eq!(s(running(true)).problem, None);
        assert!(s(running(true)).ready);
        assert_eq!(s(succeeded()).problem, None);
        assert_eq!(
            s(oom_killed()).problem,
            Some(Problem::OomKilled { exit_code: 137 })
        );
        let pull = s(waiting("ImagePullBackOff", "Back-off pulling image \"x\""))
            .problem
            .unwrap();
        assert_eq!(pull.reason(), "ImagePullBackOff");
        assert!(pull.blocks_start());
        assert!(
            pull.to_string().contains("kind load docker-image"),
            "{pull}"
        );
        assert_eq!(
            s(waiting("CreateContainerConfigError", "no such configmap"))
                .problem
                .unwrap()
                .reason(),
            "CreateContainerConfigError"
        );
        assert_eq!(s(waiting("ContainerCreating", "")).problem, None);
        let crash = json!({"phase": "Running", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
            "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}}]});
        assert_eq!(
            s(crash).problem,
            Some(Problem::CrashLoop {
                message: "last exit code 3 (Error)".into()
            })
        );
        let crash_oom = json!({"phase": "Running", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
            "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]});
        assert_eq!(
            s(crash_oom).problem,
            Some(Problem::OomKilled { exit_code: 137 })
        );
        let exited = json!({"phase": "Failed", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 3, "reason": "Error", "message": "starting\nboom\n"}}}]});
        assert_eq!(
            s(exited).problem.unwrap().to_string(),
            "exited with code 3 (Error): boom"
        );
        // The node's shell line gave up on cluster DNS (its last log line is the message).
        let no_dns = json!({"phase": "Failed", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 71, "reason": "Error",
            "message": "waiting 25 s for the name coordinator to resolve: …\ngave up after 30 s: cluster DNS does not answer\n"}}}]});
        let p = s(no_dns).problem.unwrap();
        assert_eq!(p.reason(), "ClusterDNS");
        assert!(p.blocks_start());
        assert!(
            p.to_string()
                .starts_with("cluster DNS does not work: gave up after 30 s"),
            "{p}"
        );
        let evicted = json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"});
        assert_eq!(
            s(evicted).problem,
            Some(Problem::Evicted {
                message: "low on memory".into()
            })
        );
        let u = s(unschedulable(
            "0/1 nodes are available: 1 Insufficient memory.",
        ));
        assert_eq!(u.problem, None);
        assert!(u.pending());
        assert_eq!(
            u.unschedulable.as_deref(),
            Some("0/1 nodes are available: 1 Insufficient memory.")
        );
    }
}
