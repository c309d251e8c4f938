//! What a pod's status says about its node, in words a person can act on: OOMKilled,
//! ImagePullBackOff, CrashLoopBackOff, Pending too long, … Pure functions of `Pod` objects,
//! so every case is tested without a cluster.

use super::render::{ANNOTATION_COMPLETION_INDEX, COORDINATOR, LABEL_COMPONENT, LABEL_GROUP_INDEX};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use std::time::Duration;

/// Whose pod it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Coordinator,
    /// A node with its global index and its group's position in the plan.
    Node {
        index: u32,
        group_index: usize,
    },
    Other,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Coordinator => write!(f, "the coordinator"),
            Role::Node { index, .. } => write!(f, "node {index}"),
            Role::Other => write!(f, "a pod"),
        }
    }
}

/// The role of `pod`, given each group's first node index (`offsets`, plan order).
pub fn role(pod: &Pod, offsets: &[u32]) -> Role {
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
                (Some(gi), Some(ci)) if gi < offsets.len() => Role::Node {
                    index: offsets[gi] + ci,
                    group_index: gi,
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
                "{reason}{}; check the image name, that it was loaded into the cluster (`kind load docker-image`) or pushed to a registry the cluster can pull from",
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
        if t.exit_code != 0 {
            return Some(Problem::Exited {
                exit_code: t.exit_code,
                reason: if reason.is_empty() {
                    "Error".into()
                } else {
                    reason
                },
                message: t.message.clone().unwrap_or_default(),
            });
        }
    }
    None
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
        let offsets = [0, 20];
        assert_eq!(
            role(&node_pod("p", 1, 3, json!({})), &offsets),
            Role::Node {
                index: 23,
                group_index: 1
            }
        );
        assert_eq!(
            role(&node_pod("p", 0, 3, json!({})), &offsets),
            Role::Node {
                index: 3,
                group_index: 0
            }
        );
        assert_eq!(role(&node_pod("p", 5, 3, json!({})), &offsets), Role::Other);
        assert_eq!(
            role(&coordinator_pod(json!({})), &offsets),
            Role::Coordinator
        );
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
            "restartCount": 0, "state": {"terminated": {"exitCode": 70, "reason": "Error", "message": "boom"}}}]});
        assert_eq!(
            s(exited).problem.unwrap().to_string(),
            "exited with code 70 (Error): boom"
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
