//! Plan → every Kubernetes object a run creates. Pure: no cluster, no clock, no randomness,
//! so `orchestrator k8s render` prints the same YAML every time and tests can compare it.
//!
//! The objects of one run, all in one namespace:
//! - `Namespace` (unless the run uses an existing one);
//! - `ConfigMap/plan`: the resolved plan (parameters substituted, defaults filled in);
//! - `Service/coordinator`: headless, so its DNS name resolves only once the coordinator is
//!   ready; the nodes wait for that name before they start (no race, no restarts);
//! - `Pod/coordinator`: `orchestrator k8s coordinate`, which runs the plan with the `external`
//!   runner (it launches nothing, the Jobs' pods are the nodes), serves the control channel on
//!   7000 and the results on 7001 (`/status`, `/results.tar`, `/abort`);
//! - one Indexed `Job` per group (`nodes-<n>-<group>`), so each group has its own resource
//!   requests and limits. A pod's global node index is its Job completion index plus the
//!   group's offset (`TESTBED_NODE_INDEX_OFFSET`), computed by the container's shell line, so
//!   any node program works unchanged.
//!
//! No ServiceAccount, Role or RoleBinding: nothing in the run talks to the API server (every
//! pod runs with `automountServiceAccountToken: false`). The person or CI job running
//! `orchestrator k8s run` needs the rights listed in manifests/rbac.yaml.

use super::names::{self, is_dns_label};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, Namespace, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use testbed_contract::env;
use testbed_contract::plan::{Group, Implementation, Plan, Resources, RunnerKind};

/// Port of the control channel on the coordinator.
pub const CONTROL_PORT: u16 = 7000;
/// Port of the coordinator's results endpoint (`/status`, `/results.tar`, `/abort`).
pub const RESULTS_PORT: u16 = 7001;
pub const COORDINATOR: &str = "coordinator";
pub const PLAN_CONFIG_MAP: &str = "plan";
/// Where the plan is mounted in the coordinator.
pub const PLAN_PATH: &str = "/plan/plan.yaml";
/// Where the coordinator writes results (an emptyDir).
pub const RESULTS_PATH: &str = "/results";
/// The non-root user of the image (Dockerfile `useradd --uid`).
pub const IMAGE_UID: i64 = 10001;
/// Default image; `kind load docker-image` this name (docs/kubernetes.md).
pub const DEFAULT_IMAGE: &str = "pubsub-testbed:dev";
/// How long node pods may take to be scheduled and pulled before the plan's own timeout runs
/// out; also bounds how long a node waits for the coordinator's name.
pub const STARTUP_ALLOWANCE: Duration = Duration::from_secs(600);

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_PLAN: &str = "pubsub-testbed/plan";
pub const LABEL_GROUP: &str = "pubsub-testbed/group";
/// Position of the group in the plan (a label, so a watcher maps a pod to its node index).
pub const LABEL_GROUP_INDEX: &str = "pubsub-testbed/group-index";
/// Set by the Job controller on every pod of an Indexed Job.
pub const ANNOTATION_COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
pub const APP: &str = "pubsub-testbed";
pub const MANAGER: &str = "pubsub-testbed-orchestrator";
/// Extra environment of node pods: added to the Job completion index to get the node index.
pub const ENV_INDEX_OFFSET: &str = "TESTBED_NODE_INDEX_OFFSET";

/// What a render needs beyond the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    pub run_id: String,
    pub namespace: String,
    /// Emit a Namespace object (a run in its own namespace), or use an existing namespace.
    pub create_namespace: bool,
    pub image: String,
    pub image_pull_policy: String,
    /// Requests and limits of the coordinator pod.
    pub coordinator_resources: Resources,
    /// How long the coordinator keeps serving results after the run (for `kubectl` users;
    /// `orchestrator k8s run` fetches them at once and deletes everything).
    pub hold: Duration,
}

impl RenderOptions {
    pub fn new(run_id: &str, namespace: &str) -> Self {
        RenderOptions {
            run_id: run_id.to_string(),
            namespace: namespace.to_string(),
            create_namespace: true,
            image: DEFAULT_IMAGE.to_string(),
            image_pull_policy: "IfNotPresent".to_string(),
            coordinator_resources: default_coordinator_resources(),
            hold: Duration::from_secs(3600),
        }
    }
}

pub fn default_coordinator_resources() -> Resources {
    Resources {
        cpu_request: Some("500m".into()),
        cpu_limit: None,
        memory_request: Some("256Mi".into()),
        memory_limit: Some("2Gi".into()),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error(
        "plan `{plan}` has a `network:` section, but network emulation needs the `netns` runner on one machine \
         (`orchestrator run --runner netns`); Kubernetes pods talk over the cluster's own network. \
         Remove `network:` to run this plan on Kubernetes"
    )]
    Network { plan: String },
    #[error(
        "group `{group}` uses the {implementation} node, but the image holds only the Rust node (`pubsub-node`); \
         on Kubernetes use `implementation: rust` (the default), or run Go/JS interop plans locally"
    )]
    Implementation {
        group: String,
        implementation: &'static str,
    },
    #[error("plan `{plan}` cannot run on Kubernetes: {}", problems.join("; "))]
    Invalid { plan: String, problems: Vec<String> },
    #[error(
        "{what} `{value}` is not a valid Kubernetes name: use 1-63 lower-case letters, digits and `-`, starting and ending with a letter or digit"
    )]
    Name { what: &'static str, value: String },
    #[error(
        "{field} `{value}` of {owner} is not a Kubernetes quantity (examples: `250m`, `1`, `64Mi`, `1Gi`, `1e3`)"
    )]
    Quantity {
        owner: String,
        field: &'static str,
        value: String,
    },
    #[error("{0}")]
    Other(String),
}

/// Every object of one run, in the order they are created.
#[derive(Debug, Clone, PartialEq)]
pub struct Objects {
    pub namespace: Option<Namespace>,
    pub config_map: ConfigMap,
    pub service: Service,
    pub coordinator: Pod,
    /// One per group, in plan order.
    pub jobs: Vec<Job>,
    /// The global index of each Job's completion index 0, by group index.
    pub offsets: Vec<u32>,
}

impl Objects {
    /// `(kind, name)` of every object, in creation order.
    pub fn kinds_and_names(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(ns) = &self.namespace {
            out.push(("Namespace", name_of(&ns.metadata)));
        }
        out.push(("ConfigMap", name_of(&self.config_map.metadata)));
        out.push(("Service", name_of(&self.service.metadata)));
        out.push(("Pod", name_of(&self.coordinator.metadata)));
        for j in &self.jobs {
            out.push(("Job", name_of(&j.metadata)));
        }
        out
    }

    /// Multi-document YAML of every object, in creation order.
    pub fn to_yaml(&self) -> Result<String, RenderError> {
        let mut docs = Vec::new();
        if let Some(ns) = &self.namespace {
            docs.push(yaml(ns)?);
        }
        docs.push(yaml(&self.config_map)?);
        docs.push(yaml(&self.service)?);
        docs.push(yaml(&self.coordinator)?);
        for j in &self.jobs {
            docs.push(yaml(j)?);
        }
        Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
    }
}

fn name_of(m: &ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

fn yaml<T: Serialize>(value: &T) -> Result<String, RenderError> {
    let mut s = serde_saphyr::to_string(value)
        .map_err(|e| RenderError::Other(format!("cannot write YAML: {e}")))?;
    if !s.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

/// Refuses what cannot run on Kubernetes, with the reason and what to do.
pub fn check_plan(plan: &Plan) -> Result<(), RenderError> {
    if plan.network.is_some() {
        return Err(RenderError::Network {
            plan: plan.name.clone(),
        });
    }
    for g in &plan.groups {
        if g.implementation != Implementation::Rust {
            return Err(RenderError::Implementation {
                group: g.id.clone(),
                implementation: g.implementation.as_str(),
            });
        }
        check_resources(&format!("group `{}`", g.id), &g.resources)?;
    }
    if plan.telemetry.traces.is_on() && plan.telemetry.otlp_endpoint.is_none() {
        return Err(RenderError::Other(format!(
            "plan `{}` turns traces on with the embedded collector, which listens on the coordinator's \
             loopback where pods cannot reach it; on Kubernetes set `telemetry.otlp_endpoint` to a \
             collector the pods can reach, or turn traces off",
            plan.name
        )));
    }
    // Whatever else the plan's checks refuse for `runner: k8s` (e.g. churn, which starts and
    // stops node processes itself).
    let mut as_k8s = plan.clone();
    as_k8s.runner = RunnerKind::K8s;
    let problems = crate::plan::validate::validate(&as_k8s, &crate::plan::Overrides::default());
    if !problems.is_empty() {
        return Err(RenderError::Invalid {
            plan: plan.name.clone(),
            problems: problems
                .iter()
                .map(|(field, msg)| format!("field `{field}`: {msg}"))
                .collect(),
        });
    }
    Ok(())
}

fn check_resources(owner: &str, r: &Resources) -> Result<(), RenderError> {
    for (field, v) in [
        ("cpu_request", &r.cpu_request),
        ("cpu_limit", &r.cpu_limit),
        ("memory_request", &r.memory_request),
        ("memory_limit", &r.memory_limit),
    ] {
        if let Some(v) = v
            && !is_quantity(v)
        {
            return Err(RenderError::Quantity {
                owner: owner.to_string(),
                field,
                value: v.clone(),
            });
        }
    }
    Ok(())
}

/// A Kubernetes resource quantity: a decimal number with an optional binary (`Ki`…`Ei`),
/// decimal (`n u m k M G T P E`) or exponent (`e3`, `E-2`) suffix.
pub fn is_quantity(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_len = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (num, suffix) = body.split_at(num_len);
    let digits = num.bytes().filter(u8::is_ascii_digit).count();
    if digits == 0 || num.bytes().filter(|b| *b == b'.').count() > 1 {
        return false;
    }
    const SUFFIXES: [&str; 16] = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    match suffix.strip_prefix(['e', 'E']) {
        Some(exp) => {
            let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The plan as the coordinator reads it: parameters substituted, every default written out.
pub fn resolved_plan_yaml(plan: &Plan) -> Result<String, RenderError> {
    let mut plan = plan.clone();
    plan.runner = RunnerKind::K8s;
    let text = yaml(&plan)?;
    Ok(format!(
        "# Resolved plan `{}` (parameters substituted, defaults written out) for Kubernetes.\n{text}",
        plan.name
    ))
}

/// Every object of the run of `plan`.
pub fn render(plan: &Plan, opts: &RenderOptions) -> Result<Objects, RenderError> {
    check_plan(plan)?;
    check_resources("the coordinator", &opts.coordinator_resources)?;
    for (what, value) in [("namespace", &opts.namespace), ("run id", &opts.run_id)] {
        if !is_dns_label(value) {
            return Err(RenderError::Name {
                what,
                value: value.clone(),
            });
        }
    }
    let plan_text = resolved_plan_yaml(plan)?;
    let base = base_labels(plan, opts);
    let meta = |name: &str, component: Option<&str>| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(opts.namespace.clone()),
        labels: Some(with_component(&base, component)),
        ..Default::default()
    };

    let namespace = opts.create_namespace.then(|| Namespace {
        metadata: ObjectMeta {
            name: Some(opts.namespace.clone()),
            labels: Some(base.clone()),
            ..Default::default()
        },
        ..Default::default()
    });

    let config_map = ConfigMap {
        metadata: meta(PLAN_CONFIG_MAP, None),
        data: Some(BTreeMap::from([("plan.yaml".to_string(), plan_text)])),
        ..Default::default()
    };

    let coordinator_labels = with_component(&base, Some(COORDINATOR));
    let service = Service {
        metadata: meta(COORDINATOR, Some(COORDINATOR)),
        spec: Some(ServiceSpec {
            // Headless: the name resolves to the pod's IP once it is ready, not before.
            cluster_ip: Some("None".into()),
            selector: Some(selector(&coordinator_labels)),
            ports: Some(vec![
                service_port("control", CONTROL_PORT),
                service_port("results", RESULTS_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };

    let deadline = plan.timeout + STARTUP_ALLOWANCE;
    let coordinator = coordinator_pod(meta(COORDINATOR, Some(COORDINATOR)), opts, deadline);

    let mut jobs = Vec::new();
    let mut offsets = Vec::new();
    let mut offset = 0u32;
    for (gi, g) in plan.groups.iter().enumerate() {
        let name = names::job_name(gi, &g.id);
        jobs.push(node_job(
            gi,
            g,
            offset,
            &base,
            meta(&name, None),
            opts,
            deadline,
        ));
        offsets.push(offset);
        offset += g.count;
    }

    Ok(Objects {
        namespace,
        config_map,
        service,
        coordinator,
        jobs,
        offsets,
    })
}

/// The coordinator: `orchestrator k8s coordinate` with the plan mounted, serving the
/// control channel and, after the run, the results.
fn coordinator_pod(metadata: ObjectMeta, opts: &RenderOptions, deadline: Duration) -> Pod {
    Pod {
        metadata,
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some((deadline + opts.hold).as_secs() as i64),
            termination_grace_period_seconds: Some(10),
            containers: vec![Container {
                name: COORDINATOR.into(),
                image: Some(opts.image.clone()),
                image_pull_policy: Some(opts.image_pull_policy.clone()),
                command: Some(coordinator_command(opts)),
                ports: Some(vec![
                    container_port("control", CONTROL_PORT),
                    container_port("results", RESULTS_PORT),
                ]),
                readiness_probe: Some(Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::String("control".into()),
                        ..Default::default()
                    }),
                    period_seconds: Some(1),
                    ..Default::default()
                }),
                resources: Some(requirements(&opts.coordinator_resources)),
                security_context: Some(container_security()),
                volume_mounts: Some(vec![
                    mount("plan", "/plan", true),
                    mount("results", RESULTS_PATH, false),
                    mount("tmp", "/tmp", false),
                ]),
                ..Default::default()
            }],
            volumes: Some(vec![
                Volume {
                    name: "plan".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: PLAN_CONFIG_MAP.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                empty_dir("results"),
                empty_dir("tmp"),
            ]),
            ..pod_defaults()
        }),
        ..Default::default()
    }
}

/// The Indexed Job of group `gi`: its pods are the group's nodes, indices from `offset`.
fn node_job(
    gi: usize,
    g: &Group,
    offset: u32,
    base: &BTreeMap<String, String>,
    metadata: ObjectMeta,
    opts: &RenderOptions,
    deadline: Duration,
) -> Job {
    let mut labels = with_component(base, Some("node"));
    labels.insert(LABEL_GROUP.into(), names::label_value(&g.id));
    labels.insert(LABEL_GROUP_INDEX.into(), gi.to_string());
    let env = vec![
        env_value(
            env::CONTROL_ADDR,
            &format!("tcp://{COORDINATOR}:{CONTROL_PORT}"),
        ),
        env_value(env::RUN_ID, &opts.run_id),
        env_value(env::GROUP, &g.id),
        env_value(ENV_INDEX_OFFSET, &offset.to_string()),
        EnvVar {
            name: env::LISTEN_IP.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "status.podIP".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    Job {
        metadata: ObjectMeta {
            labels: Some(labels.clone()),
            ..metadata
        },
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(g.count as i32),
            parallelism: Some(g.count as i32),
            // A node that fails fails the run: never a second attempt with the same index.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(deadline.as_secs() as i64),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    termination_grace_period_seconds: Some(10),
                    containers: vec![Container {
                        name: "node".into(),
                        image: Some(opts.image.clone()),
                        image_pull_policy: Some(opts.image_pull_policy.clone()),
                        command: Some(node_command()),
                        env: Some(env),
                        resources: Some(requirements(&g.resources)),
                        security_context: Some(container_security()),
                        volume_mounts: Some(vec![mount("tmp", "/tmp", false)]),
                        ..Default::default()
                    }],
                    volumes: Some(vec![empty_dir("tmp")]),
                    ..pod_defaults()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The coordinator's command line.
pub fn coordinator_command(opts: &RenderOptions) -> Vec<String> {
    [
        "orchestrator",
        "k8s",
        "coordinate",
        PLAN_PATH,
        "--run-id",
        &opts.run_id,
        "--results",
        RESULTS_PATH,
        "--control-listen",
        &format!("0.0.0.0:{CONTROL_PORT}"),
        "--http-listen",
        &format!("0.0.0.0:{RESULTS_PORT}"),
        "--hold",
        &humantime::format_duration(opts.hold).to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The node container's shell line: wait until the coordinator's (headless) name resolves,
/// i.e. it is ready, then become `pubsub-node` with the global node index.
pub fn node_command() -> Vec<String> {
    let wait = STARTUP_ALLOWANCE.as_secs();
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "n=0\n\
             until getent hosts {COORDINATOR} >/dev/null; do\n\
             \x20 n=$((n+1))\n\
             \x20 if [ \"$n\" -gt {wait} ]; then echo \"the coordinator's name did not resolve in {wait} s\" >&2; exit 70; fi\n\
             \x20 sleep 1\n\
             done\n\
             export {idx}=$((JOB_COMPLETION_INDEX + {ENV_INDEX_OFFSET}))\n\
             exec pubsub-node\n",
            idx = env::NODE_INDEX
        ),
    ]
}

fn base_labels(plan: &Plan, opts: &RenderOptions) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), APP.to_string()),
        (LABEL_INSTANCE.to_string(), opts.run_id.clone()),
        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
        (LABEL_PLAN.to_string(), names::label_value(&plan.name)),
    ])
}

fn with_component(
    base: &BTreeMap<String, String>,
    component: Option<&str>,
) -> BTreeMap<String, String> {
    let mut l = base.clone();
    if let Some(c) = component {
        l.insert(LABEL_COMPONENT.into(), c.into());
    }
    l
}

/// The labels that pick the pods of a run: name, instance and component.
fn selector(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| [LABEL_NAME, LABEL_INSTANCE, LABEL_COMPONENT].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Label selector (`k=v,…`) of every pod of run `run_id`.
pub fn run_selector(run_id: &str) -> String {
    format!("{LABEL_NAME}={APP},{LABEL_INSTANCE}={run_id}")
}

fn pod_defaults() -> PodSpec {
    PodSpec {
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(IMAGE_UID),
            run_as_group: Some(IMAGE_UID),
            fs_group: Some(IMAGE_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn requirements(r: &Resources) -> ResourceRequirements {
    let map = |pairs: [(&str, &Option<String>); 2]| {
        let m: BTreeMap<String, Quantity> = pairs
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), Quantity(v.clone()))))
            .collect();
        (!m.is_empty()).then_some(m)
    };
    ResourceRequirements {
        requests: map([("cpu", &r.cpu_request), ("memory", &r.memory_request)]),
        limits: map([("cpu", &r.cpu_limit), ("memory", &r.memory_limit)]),
        ..Default::default()
    }
}

fn env_value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn service_port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: port as i32,
        target_port: Some(IntOrString::Int(port as i32)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port as i32,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in [
            "1", "250m", "0.5", "64Mi", "1Gi", "1e3", "1E-2", "+1", ".5", "100k",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Mi", "1.2.3", "64MB", "1e", "one", "1 Gi", "-"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
