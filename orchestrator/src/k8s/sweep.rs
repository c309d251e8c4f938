//! Namespaces that earlier runs left behind. A run in its own namespace deletes it at the
//! end; when its launcher was killed, the coordinator stops by itself and Kubernetes deletes
//! the run's objects (the coordinator Job's TTL and ownerReferences), but nothing in the
//! cluster may delete the namespace. The next `orchestrator k8s run` does: a namespace with
//! this program's `managed-by` label, older than [`STALE_AFTER`], with no coordinator Job
//! left, is empty of any run and is deleted. Without the right to list namespaces, nothing
//! is swept (and nothing is said).

use super::render::{COORDINATOR, LABEL_MANAGED_BY, MANAGER};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use std::time::Duration;

/// A run's namespace younger than this is left alone (its launcher may be creating it).
pub const STALE_AFTER: Duration = Duration::from_secs(600);

/// Deletes the stale namespaces of earlier runs; says which.
pub async fn stale_namespaces(client: &Client, say: &(dyn Fn(String) + Send + Sync)) {
    let all: Api<Namespace> = Api::all(client.clone());
    let Ok(list) = all
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}")))
        .await
    else {
        return;
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    for ns in list.items {
        let name = ns.name_any();
        let terminating = ns.metadata.deletion_timestamp.is_some();
        let age = ns
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| Duration::try_from(now.duration_since(t.0)).ok())
            .unwrap_or_default();
        if terminating || age < STALE_AFTER {
            continue;
        }
        let jobs: Api<Job> = Api::namespaced(client.clone(), &name);
        if !matches!(jobs.get_opt(COORDINATOR).await, Ok(None)) {
            continue;
        }
        if all.delete(&name, &DeleteParams::background()).await.is_ok() {
            say(format!(
                "deleted namespace {name} (created {} ago): left behind, empty, by a run whose launcher was stopped",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            ));
        }
    }
}
