//! Plan → every Kubernetes object a run creates. Pure: no cluster, no clock, no randomness,
//! so `orchestrator k8s render` prints the same YAML every time and tests can compare it.
//!
//! The objects of one run, all in one namespace:
//! - `Namespace` (unless the run uses an existing one);
//! - `ConfigMap/plan`: the resolved plan (parameters substituted, defaults filled in);
//! - `Service/coordinator`: headless, so its DNS name resolves only once the coordinator is
//!   ready; the nodes wait for that name before they start (no race, no restarts);
//! - `Job/coordinator`: one pod running `orchestrator k8s coordinate`, which runs the plan with
//!   the `external` runner (it launches nothing, the node Jobs' pods are the nodes), serves the
//!   control channel on 7000 and the results on 7001 (`/status`, `/results.tar`, `/abort`). A
//!   Job, not a bare Pod, for `ttlSecondsAfterFinished`: once the coordinator exits (after its
//!   hold, or at once when its launcher is lost) the Job is deleted, and with it everything
//!   `orchestrator k8s run` made it the owner of (ownerReferences are set at creation);
//! - one Indexed `Job` per group (`nodes-<n>-<group>`), so each group has its own resource
//!   requests and limits. A pod's global node index is its Job completion index (times the
//!   nodes per pod) plus the group's offset (`TESTBED_NODE_INDEX_OFFSET`), computed by the
//!   container's shell line, so any node program works unchanged.
//!
//! Every pod reads the run's secret (`TESTBED_RUN_SECRET`, which a node's hello must carry)
//! from the Secret `run-secret` through `secretKeyRef`, never from its command line or the
//! plan's ConfigMap. The Secret itself is not rendered here (a render has no randomness):
//! `orchestrator k8s run` creates one with a fresh value per run ([`run_secret`]); with the
//! rendered YAML or the chart, create it yourself (docs/kubernetes.md). The reference is
//! optional, so pods start without it, and the coordinator then says its control channel is
//! not authenticated.
//!
//! No ServiceAccount, Role or RoleBinding: nothing in the run talks to the API server (every
//! pod runs with `automountServiceAccountToken: false`). The person or CI job running
//! `orchestrator k8s run` needs the rights listed in manifests/rbac.yaml.

use super::names::{self, is_dns_label};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, Namespace, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector,
    SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction, TopologySpreadConstraint,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use testbed_contract::env;
use testbed_contract::plan::{Implementation, Plan, Resources, RunnerKind};

/// Port of the control channel on the coordinator.
pub const CONTROL_PORT: u16 = 7000;
/// Port of the coordinator's results endpoint (`/status`, `/results.tar`, `/abort`).
pub const RESULTS_PORT: u16 = 7001;
pub const COORDINATOR: &str = "coordinator";
pub const PLAN_CONFIG_MAP: &str = "plan";
/// The Secret holding the run's secret, and its key.
pub const RUN_SECRET: &str = "run-secret";
pub const RUN_SECRET_KEY: &str = "secret";
/// Where the plan is mounted in the coordinator.
pub const PLAN_PATH: &str = "/plan/plan.yaml";
/// Where the coordinator writes results (an emptyDir).
pub const RESULTS_PATH: &str = "/results";
/// The non-root user of the image (Dockerfile `useradd --uid`).
pub const IMAGE_UID: i64 = 10001;
/// Default image: `docker.io/library/pubsub-testbed:dev` to a cluster's container runtime,
/// the name `docker build -t pubsub-testbed:dev` and `scripts/podman-build.sh` give it.
pub const DEFAULT_IMAGE: &str = "pubsub-testbed:dev";
/// How long node pods may take to be scheduled and pulled before the plan's own timeout runs
/// out; also bounds how long a node waits for the coordinator's name while cluster DNS works.
pub const STARTUP_ALLOWANCE: Duration = Duration::from_secs(600);
/// A node gives up this soon when cluster DNS does not answer at all (not even for
/// `kubernetes.default.svc`): well before the coordinator's startup wait, so the pod's failure
/// names the cause instead of the coordinator reporting nodes that never connected.
pub const DNS_GIVE_UP: Duration = Duration::from_secs(30);
/// How often a waiting node says what it waits for.
pub const DNS_LOG_EVERY: Duration = Duration::from_secs(5);
/// Exit code of a node pod's shell line when cluster DNS does not answer.
pub const EXIT_NO_DNS: i32 = 71;
/// Exit code of a node pod's shell line when the coordinator's name never resolved.
pub const EXIT_NO_COORDINATOR: i32 = 70;
/// The coordinator Job is deleted this long after its pod ended (and with it every object
/// `k8s run` made it the owner of).
pub const COORDINATOR_TTL: Duration = Duration::from_secs(60);

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
/// With several nodes per pod: one past the group's last node index.
pub const ENV_INDEX_END: &str = "TESTBED_NODE_INDEX_END";

/// Requests of a node pod whose group sets no `resources` (per node; times the nodes per
/// pod). From a measured node on a real cluster: docs/kubernetes.md, "Sizing".
pub fn default_node_resources() -> Resources {
    Resources {
        cpu_request: Some(DEFAULT_NODE_CPU_REQUEST.into()),
        cpu_limit: None,
        memory_request: Some(DEFAULT_NODE_MEMORY_REQUEST.into()),
        memory_limit: None,
    }
}
pub const DEFAULT_NODE_CPU_REQUEST: &str = "20m";
pub const DEFAULT_NODE_MEMORY_REQUEST: &str = "16Mi";

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
    /// The coordinator stops the run and exits when nobody asked it anything for this long
    /// (its launcher is gone). `orchestrator k8s run` sets it; manual runs have none.
    pub client_lease: Option<Duration>,
    /// `pubsub-node` processes per pod (1: one pod per node).
    pub nodes_per_pod: u32,
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
            client_lease: None,
            nodes_per_pod: 1,
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
    /// The coordinator: a Job of one pod.
    pub coordinator: Job,
    /// One per group, in plan order.
    pub jobs: Vec<Job>,
    /// Which node indices each pod runs.
    pub layout: Layout,
}

/// Where each node runs: group by group, `nodes_per_pod` consecutive indices per pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The global index of each group's first node, by group index.
    pub offsets: Vec<u32>,
    /// Nodes in each group.
    pub counts: Vec<u32>,
    pub nodes_per_pod: u32,
}

impl Layout {
    /// The nodes (first global index, how many) of completion index `ci` of group `gi`.
    pub fn nodes_of(&self, gi: usize, ci: u32) -> Option<(u32, u32)> {
        let (offset, count) = (*self.offsets.get(gi)?, *self.counts.get(gi)?);
        let first_in_group = ci.checked_mul(self.nodes_per_pod)?;
        if first_in_group >= count {
            return None;
        }
        Some((
            offset + first_in_group,
            self.nodes_per_pod.min(count - first_in_group),
        ))
    }

    /// Pods of group `gi`.
    pub fn pods_of(&self, gi: usize) -> u32 {
        self.counts[gi].div_ceil(self.nodes_per_pod)
    }
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
        out.push(("Job", name_of(&self.coordinator.metadata)));
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

    /// Node pods of the run.
    pub fn node_pods(&self) -> u32 {
        (0..self.layout.counts.len())
            .map(|gi| self.layout.pods_of(gi))
            .sum()
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
    split_quantity(s).is_some()
}

/// `(sign and number, suffix)` of a quantity.
fn split_quantity(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_len = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (num, suffix) = body.split_at(num_len);
    let digits = num.bytes().filter(u8::is_ascii_digit).count();
    if digits == 0 || num.bytes().filter(|b| *b == b'.').count() > 1 {
        return None;
    }
    const SUFFIXES: [&str; 16] = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    let ok = SUFFIXES.contains(&suffix)
        || match suffix.strip_prefix(['e', 'E']) {
            Some(exp) => {
                let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        };
    ok.then(|| s.split_at(s.len() - suffix.len()))
}

/// `q` times `n`, exactly (decimal arithmetic on the number, the suffix kept): the requests of
/// a pod that runs `n` nodes. `None` for something that is not a quantity.
pub fn scale_quantity(q: &str, n: u32) -> Option<String> {
    let (num, suffix) = split_quantity(q)?;
    if n == 1 {
        return Some(q.to_string());
    }
    let (sign, num) = match num.strip_prefix(['+', '-']) {
        Some(rest) => (&num[..1], rest),
        None => ("", num),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits: u128 = format!("{int}{frac}").parse().ok()?;
    let scaled = digits.checked_mul(n as u128)?.to_string();
    let scaled = format!("{scaled:0>width$}", width = frac.len() + 1);
    let (i, f) = scaled.split_at(scaled.len() - frac.len());
    let f = f.trim_end_matches('0');
    let sign = if sign == "+" { "" } else { sign };
    Some(if f.is_empty() {
        format!("{sign}{i}{suffix}")
    } else {
        format!("{sign}{i}.{f}{suffix}")
    })
}

/// The plan as the coordinator reads it: parameters substituted, every default written out.
/// The run's `/metrics` endpoint is off unless the plan asks for one: it would serve on the
/// coordinator pod's loopback, out of anyone's reach.
pub fn resolved_plan_yaml(plan: &Plan) -> Result<String, RenderError> {
    let mut plan = plan.clone();
    plan.runner = RunnerKind::K8s;
    if plan.telemetry.metrics_listen.is_none() {
        plan.telemetry.metrics_listen = Some("off".into());
    }
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
    if opts.nodes_per_pod == 0 {
        return Err(RenderError::Other(
            "nodes per pod must be at least 1".into(),
        ));
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
    let coordinator = coordinator_job(
        meta(COORDINATOR, Some(COORDINATOR)),
        &coordinator_labels,
        opts,
        deadline,
    );

    let per_pod = opts.nodes_per_pod;
    let mut jobs = Vec::new();
    let mut offsets = Vec::new();
    let mut counts = Vec::new();
    let mut offset = 0u32;
    let node_pod_labels = selector(&with_component(&base, Some("node")));
    for (gi, g) in plan.groups.iter().enumerate() {
        let name = names::job_name(gi, &g.id);
        let mut labels = with_component(&base, Some("node"));
        labels.insert(LABEL_GROUP.into(), names::label_value(&g.id));
        labels.insert(LABEL_GROUP_INDEX.into(), gi.to_string());
        let mut env = vec![
            env_value(
                env::CONTROL_ADDR,
                &format!("tcp://{COORDINATOR}:{CONTROL_PORT}"),
            ),
            env_value(env::RUN_ID, &opts.run_id),
            env_value(env::GROUP, &g.id),
            env_value(ENV_INDEX_OFFSET, &offset.to_string()),
        ];
        if per_pod > 1 {
            env.push(env_value(ENV_INDEX_END, &(offset + g.count).to_string()));
        }
        env.push(EnvVar {
            name: env::LISTEN_IP.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "status.podIP".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        env.push(secret_env());
        let pods = g.count.div_ceil(per_pod) as i32;
        let resources = if g.resources == Resources::default() {
            default_node_resources()
        } else {
            g.resources.clone()
        };
        jobs.push(node_job(
            meta(&name, None),
            labels,
            env,
            &resources,
            &node_pod_labels,
            pods,
            per_pod,
            opts,
            deadline,
        ));
        offsets.push(offset);
        counts.push(g.count);
        offset += g.count;
    }

    Ok(Objects {
        namespace,
        config_map,
        service,
        coordinator,
        jobs,
        layout: Layout {
            offsets,
            counts,
            nodes_per_pod: per_pod,
        },
    })
}

/// `TESTBED_RUN_SECRET` from the run's Secret (optional: absent, the pod starts without it).
fn secret_env() -> EnvVar {
    EnvVar {
        name: env::RUN_SECRET.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: RUN_SECRET.into(),
                key: RUN_SECRET_KEY.into(),
                optional: Some(true),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Secret of the run of `objects` holding `value`, the secret every pod reads (see the
/// module's introduction), labelled as the plan's ConfigMap. Not part of [`Objects`]: the
/// value is drawn per run.
pub fn run_secret(objects: &Objects, value: &str) -> Secret {
    let plan = &objects.config_map.metadata;
    Secret {
        metadata: ObjectMeta {
            name: Some(RUN_SECRET.into()),
            namespace: plan.namespace.clone(),
            labels: plan.labels.clone(),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(
            RUN_SECRET_KEY.to_string(),
            value.to_string(),
        )])),
        ..Default::default()
    }
}

/// The coordinator Job: `orchestrator k8s coordinate` with the plan mounted, serving the
/// control channel and, after the run, the results.
fn coordinator_job(
    metadata: ObjectMeta,
    coordinator_labels: &BTreeMap<String, String>,
    opts: &RenderOptions,
    deadline: Duration,
) -> Job {
    Job {
        metadata,
        spec: Some(JobSpec {
            // One coordinator per run: a failed one is not started again.
            backoff_limit: Some(0),
            active_deadline_seconds: Some((deadline + opts.hold).as_secs() as i64),
            ttl_seconds_after_finished: Some(COORDINATOR_TTL.as_secs() as i32),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(coordinator_labels.clone()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    termination_grace_period_seconds: Some(10),
                    containers: vec![Container {
                        name: COORDINATOR.into(),
                        image: Some(opts.image.clone()),
                        image_pull_policy: Some(opts.image_pull_policy.clone()),
                        command: Some(coordinator_command(opts)),
                        env: Some(vec![secret_env()]),
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
                        resources: Some(requirements(&opts.coordinator_resources, 1)),
                        security_context: Some(container_security()),
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
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
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Indexed Job of one group: `pods` pods of `per_pod` nodes each.
#[allow(clippy::too_many_arguments)]
fn node_job(
    metadata: ObjectMeta,
    labels: BTreeMap<String, String>,
    env: Vec<EnvVar>,
    resources: &Resources,
    node_pod_labels: &BTreeMap<String, String>,
    pods: i32,
    per_pod: u32,
    opts: &RenderOptions,
    deadline: Duration,
) -> Job {
    Job {
        metadata: ObjectMeta {
            labels: Some(labels.clone()),
            ..metadata
        },
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(pods),
            parallelism: Some(pods),
            // A failed node pod is never started again (a second node with the same
            // index), and it does not fail the Job, which would stop the group's other
            // pods: the coordinator decides what a failed node means for the run.
            backoff_limit_per_index: Some(0),
            max_failed_indexes: Some(pods),
            active_deadline_seconds: Some(deadline.as_secs() as i64),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    termination_grace_period_seconds: Some(10),
                    // Spread the run's node pods over the cluster's machines, where the
                    // scheduler can.
                    topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: "kubernetes.io/hostname".into(),
                        when_unsatisfiable: "ScheduleAnyway".into(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(node_pod_labels.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    containers: vec![Container {
                        name: "node".into(),
                        image: Some(opts.image.clone()),
                        image_pull_policy: Some(opts.image_pull_policy.clone()),
                        command: Some(node_command(per_pod)),
                        env: Some(env),
                        resources: Some(requirements(resources, per_pod)),
                        security_context: Some(container_security()),
                        // A failed node's last lines become its pod's status message.
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
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
    let mut cmd: Vec<String> = [
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
    .collect();
    if let Some(lease) = opts.client_lease {
        cmd.push("--client-lease".into());
        cmd.push(humantime::format_duration(lease).to_string());
    }
    cmd
}

/// The node container's shell line: wait until the coordinator's (headless) name resolves,
/// i.e. it is ready, saying every few seconds what it waits for (and whether cluster DNS
/// answers at all, giving up early if it does not), then become `pubsub-node` with the global
/// node index, or, with several nodes per pod, run them side by side. The nodes get the
/// address the name resolved to (the port of `TESTBED_CONTROL_ADDR`): one lookup per pod, not
/// one per node process, however busy cluster DNS is.
pub fn node_command(nodes_per_pod: u32) -> Vec<String> {
    let wait = STARTUP_ALLOWANCE.as_secs();
    let give_up = DNS_GIVE_UP.as_secs();
    let every = DNS_LOG_EVERY.as_secs();
    let idx = env::NODE_INDEX;
    let control = env::CONTROL_ADDR;
    let dns_wait = format!(
        "t0=$(date +%s)\n\
         next={every}\n\
         until addr=$(timeout 2 getent hosts {COORDINATOR}); do\n\
         \x20 waited=$(($(date +%s) - t0))\n\
         \x20 if timeout 2 getent hosts kubernetes.default.svc >/dev/null 2>&1; then\n\
         \x20   why=\"cluster DNS answers, but {COORDINATOR} has no address yet (its pod is not ready)\"\n\
         \x20 else\n\
         \x20   why=\"cluster DNS does not answer: not even kubernetes.default.svc resolves (nameserver $(sed -n 's/^nameserver //p' /etc/resolv.conf | head -n 1))\"\n\
         \x20   if [ \"$waited\" -ge {give_up} ]; then echo \"gave up after $waited s: $why\" >&2; exit {EXIT_NO_DNS}; fi\n\
         \x20 fi\n\
         \x20 if [ \"$waited\" -ge {wait} ]; then echo \"{COORDINATOR} did not resolve in $waited s: $why\" >&2; exit {EXIT_NO_COORDINATOR}; fi\n\
         \x20 if [ \"$waited\" -ge \"$next\" ]; then echo \"waiting $waited s for the name {COORDINATOR} to resolve: $why\"; next=$((next + {every})); fi\n\
         \x20 sleep 1\n\
         done\n\
         addr=${{addr%% *}}\n\
         case $addr in *:*) addr=\"[$addr]\" ;; esac\n\
         export {control}=\"tcp://$addr:${{{control}##*:}}\"\n"
    );
    let start = if nodes_per_pod <= 1 {
        format!(
            "export {idx}=$((JOB_COMPLETION_INDEX + {ENV_INDEX_OFFSET}))\n\
             echo \"node ${idx}: {COORDINATOR} resolved after $(($(date +%s) - t0)) s; starting pubsub-node\"\n\
             exec pubsub-node\n"
        )
    } else {
        // Each node's output goes to its own file, printed with a `node N | ` prefix once it
        // ends (the launcher splits the pod's log by that prefix); the exit codes decide the
        // pod's. SIGTERM (pod deletion) reaches every node.
        format!(
            "first=$(({ENV_INDEX_OFFSET} + JOB_COMPLETION_INDEX * {nodes_per_pod}))\n\
             end=$((first + {nodes_per_pod}))\n\
             if [ \"$end\" -gt \"${ENV_INDEX_END}\" ]; then end=${ENV_INDEX_END}; fi\n\
             echo \"nodes $first..$((end - 1)): {COORDINATOR} resolved after $(($(date +%s) - t0)) s; starting $((end - first)) pubsub-node processes\"\n\
             trap 'trap \"\" TERM INT; kill -TERM 0' TERM INT\n\
             i=$first\n\
             while [ \"$i\" -lt \"$end\" ]; do\n\
             \x20 ( {idx}=$i pubsub-node >/tmp/node-$i.log 2>&1; echo $? >/tmp/node-$i.rc ) &\n\
             \x20 i=$((i + 1))\n\
             done\n\
             while :; do wait; [ $? -gt 128 ] || break; done\n\
             rc=0\n\
             i=$first\n\
             while [ \"$i\" -lt \"$end\" ]; do\n\
             \x20 sed \"s/^/node $i | /\" /tmp/node-$i.log\n\
             \x20 code=$(cat /tmp/node-$i.rc 2>/dev/null || echo killed)\n\
             \x20 if [ \"$code\" != 0 ]; then echo \"node $i | exited with code $code\" >&2; rc=1; fi\n\
             \x20 i=$((i + 1))\n\
             done\n\
             exit $rc\n"
        )
    };
    vec!["/bin/sh".into(), "-c".into(), format!("{dns_wait}{start}")]
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

/// Requests and limits of a pod running `n` nodes of resources `r` each (the quantities were
/// checked before: `scale_quantity` cannot fail on them).
fn requirements(r: &Resources, n: u32) -> ResourceRequirements {
    let map = |pairs: [(&str, &Option<String>); 2]| {
        let m: BTreeMap<String, Quantity> = pairs
            .into_iter()
            .filter_map(|(k, v)| {
                v.as_ref().map(|v| {
                    let v = scale_quantity(v, n).unwrap_or_else(|| v.clone());
                    (k.to_string(), Quantity(v))
                })
            })
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

    #[test]
    fn quantities_scale_exactly() {
        for (q, n, want) in [
            ("64Mi", 3, "192Mi"),
            ("250m", 4, "1000m"),
            ("0.1", 3, "0.3"),
            ("0.5", 2, "1"),
            (".5", 3, "1.5"),
            ("1e3", 2, "2e3"),
            ("+1", 5, "5"),
            ("16Mi", 1, "16Mi"),
            ("20m", 50, "1000m"),
        ] {
            assert_eq!(scale_quantity(q, n).as_deref(), Some(want), "{q} x {n}");
        }
        assert_eq!(scale_quantity("64MB", 2), None);
    }

    #[test]
    fn layout_maps_completion_indices_to_nodes() {
        let l = Layout {
            offsets: vec![0, 10],
            counts: vec![10, 5],
            nodes_per_pod: 4,
        };
        assert_eq!(l.pods_of(0), 3);
        assert_eq!(l.pods_of(1), 2);
        assert_eq!(l.nodes_of(0, 0), Some((0, 4)));
        assert_eq!(l.nodes_of(0, 2), Some((8, 2)));
        assert_eq!(l.nodes_of(0, 3), None);
        assert_eq!(l.nodes_of(1, 1), Some((14, 1)));
        assert_eq!(l.nodes_of(2, 0), None);
    }
}
