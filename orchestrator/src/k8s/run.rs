//! `orchestrator k8s run PLAN`: runs a plan on a cluster from this machine.
//!
//! 1. Create the namespace (or use `--namespace … --existing-namespace`), the run's Secret
//!    (a fresh 128-bit value every pod reads, and every node's hello must carry), the plan
//!    ConfigMap, the coordinator Service and Job; make the coordinator Job the owner of the
//!    Secret, ConfigMap and Service (and, below, of the node Jobs), so that when the
//!    coordinator's Job goes, Kubernetes deletes the rest of the run.
//! 2. Watch the run's pods and the namespace's Events (list, then watch from that version;
//!    re-list on `410 Gone`). Every pod problem is reported at once, per node, with the
//!    reason: OOMKilled, ImagePullBackOff, CrashLoopBackOff, CreateContainerConfigError,
//!    Evicted, a pod Kubernetes cannot create (`FailedCreatePodSandBox`, `FailedMount`, a Job's
//!    `FailedCreate` …, from Events), cluster DNS that does not answer, Pending too long.
//! 3. Once the coordinator is ready, create the nodes' Jobs.
//! 4. Stream the coordinator's log and the pods' progress; poll the coordinator's `/status`
//!    through the API server's pod proxy. A problem that keeps a node from ever starting
//!    aborts the run at once (`POST /abort`), so the coordinator writes partial results
//!    instead of waiting for its startup timeout; pending pods are diagnosed before that
//!    timeout could fire. Ctrl-C does the same; a second Ctrl-C stops waiting.
//! 5. Stream `/results.tar` into `results/<plan>/<run-id>/`, each pod's log into `logs/`, add
//!    the pod problems to `run.json` (`sections.kubernetes`, node failures, outcome) and
//!    re-render the report.
//! 6. Delete everything it created: on success, on failure and on Ctrl-C (`--keep` to keep).

use super::pods::{self, PodStatus, Problem, Role};
use super::render::{Objects, RESULTS_PORT};
use super::results::{RunState, untar_stream};
use crate::record::Status;
use crate::record::sections::{KubernetesSection, PodRecord};
use crate::record::store as results_dir;
use crate::report;
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Prints one line of progress (stderr in the CLI; collected in tests).
pub type Say = Arc<dyn Fn(String) + Send + Sync>;

/// Warning Events that mean Kubernetes cannot create or start a pod (or a Job its pods).
const BLOCKING_EVENTS: [&str; 8] = [
    "FailedCreatePodSandBox",
    "FailedMount",
    "FailedAttachVolume",
    "FailedMapVolume",
    "FailedCreate",
    "FailedPostStartHook",
    "InspectFailed",
    "ErrImageNeverPull",
];

/// Pending pods are diagnosed this long before the coordinator's own startup wait ends.
const BEFORE_COORDINATOR_GIVES_UP: Duration = Duration::from_secs(10);

/// How a run behaves, beyond the rendered objects.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub results_root: PathBuf,
    pub plan_name: String,
    /// The plan file as given (the report names it, not the pod's `/plan/plan.yaml`).
    pub plan_file: PathBuf,
    pub run_id: String,
    /// Group ids in plan order (to name a node's group in messages).
    pub groups: Vec<String>,
    /// Keep everything on the cluster at the end (for debugging).
    pub keep: bool,
    /// A pod still Pending after this long is a failure (its node will never start).
    pub pending_timeout: Duration,
    /// How long the coordinator waits for every node to connect, from its start
    /// (`workload::handshake_wait`): node pods still pending are named before it ends.
    pub coordinator_wait: Duration,
    /// How long a pod may stay unstarted after a Warning Event that says Kubernetes cannot
    /// create it (it retries; a transient failure passes) before that is its problem.
    pub event_grace: Duration,
    /// How long the coordinator may take to become ready.
    pub startup_timeout: Duration,
    /// The whole run, from the Jobs' creation to the coordinator's last word.
    pub deadline: Duration,
    /// How often the coordinator's `/status` is asked.
    pub poll: Duration,
    /// Ask the coordinator's `/status` at least this often for as long as the run is ours
    /// (its `--client-lease`), also while results and logs are fetched.
    pub keepalive: Option<Duration>,
    /// How long the coordinator may take to write partial results after `/abort`.
    pub abort_grace: Duration,
    /// Pause before a watch is re-established.
    pub rewatch_delay: Duration,
}

/// One pod problem, attributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProblem {
    pub pod: String,
    pub role: Role,
    pub group: Option<String>,
    pub problem: Problem,
}

impl std::fmt::Display for PodProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.role, &self.group) {
            (Role::Group { .. }, Some(g)) => {
                write!(f, "group {g} (Job {}): {}", self.pod, self.problem)
            }
            (_, Some(g)) => write!(
                f,
                "{} (group {g}, pod {}): {}",
                self.role, self.pod, self.problem
            ),
            (_, None) => write!(f, "{} (pod {}): {}", self.role, self.pod, self.problem),
        }
    }
}

/// How a run on the cluster ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Exit code for the command line: the run record's, else 4 for an error, 130 when
    /// interrupted before the run could report.
    pub exit_code: i32,
    /// The run record's outcome, once fetched (and amended with the pod problems).
    pub record_status: Option<Status>,
    /// The coordinator's last `/status`.
    pub state: Option<RunState>,
    /// Where the results were written locally.
    pub results_dir: Option<PathBuf>,
    pub problems: Vec<PodProblem>,
    pub interrupted: bool,
    /// What went wrong on this side (creating, watching, fetching), if anything.
    pub error: Option<String>,
    /// Objects that could not be deleted.
    pub cleanup_error: Option<String>,
}

/// What this run created, so exactly that is deleted.
#[derive(Debug, Default)]
struct Created {
    namespace: bool,
    objects: Vec<(&'static str, String)>,
}

/// The latest Warning Event about one object.
#[derive(Debug, Clone)]
struct EventSeen {
    reason: String,
    message: String,
    count: i32,
    first_seen: Instant,
}

#[derive(Debug, Default)]
struct Tracked {
    pods: BTreeMap<String, (Role, PodStatus)>,
    /// Pod name by uid (Events name their object by uid).
    pod_uids: HashMap<String, String>,
    /// Our Jobs by uid: (name, group index; `None` for the coordinator).
    job_uids: HashMap<String, (String, Option<usize>)>,
    events: HashMap<String, EventSeen>,
    /// (pod, reason) already reported.
    reported: HashSet<(String, String)>,
    pending_since: BTreeMap<String, Instant>,
    problems: Vec<PodProblem>,
    coordinator_pod: Option<String>,
    coordinator_ready: bool,
    /// When the coordinator was first seen ready (its startup wait runs from about then).
    coordinator_ready_at: Option<Instant>,
    coordinator_gone: Option<String>,
    last_progress: String,
}

/// What a watch saw.
enum Seen<K> {
    Applied(Box<K>),
    Deleted(Box<K>),
    Warning(String),
}

pub struct KubeRun {
    client: Client,
    namespace: String,
    objects: Objects,
    cfg: RunConfig,
    say: Say,
}

impl KubeRun {
    pub fn new(client: Client, objects: Objects, cfg: RunConfig, say: Say) -> Self {
        let namespace = objects
            .coordinator
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        KubeRun {
            client,
            namespace,
            objects,
            cfg,
            say,
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn say(&self, line: impl Into<String>) {
        (self.say)(line.into())
    }

    /// Runs the plan; `interrupt` counts Ctrl-Cs (1: abort and collect, 2: stop waiting).
    /// Whatever happens, everything created is deleted before this returns (unless `keep`).
    pub async fn run(&self, interrupt: watch::Receiver<u32>) -> Outcome {
        let mut created = Created::default();
        let mut tracked = Tracked::default();
        let mut outcome = Outcome::default();
        let mut hard = interrupt.clone();
        // The coordinator's pod name, once known, for the keepalive.
        let (pod_tx, pod_rx) = watch::channel(None::<String>);
        let _keepalive = self.cfg.keepalive.map(|every| {
            AbortOnDrop(tokio::spawn(keepalive(
                self.proxy_base(),
                self.client.clone(),
                pod_rx,
                every,
            )))
        });
        let body = self.body(&mut created, &mut tracked, &mut outcome, interrupt, pod_tx);
        let result = tokio::select! {
            r = body => r,
            _ = hard.wait_for(|n| *n >= 2) => {
                outcome.interrupted = true;
                Err(anyhow::anyhow!("interrupted twice: stopped waiting"))
            }
        };
        if let Err(e) = result {
            outcome.error = Some(format!("{e:#}"));
        }
        outcome.problems = tracked.problems;
        outcome.cleanup_error = if self.cfg.keep {
            self.say(format!(
                "kept everything on the cluster (--keep): delete it with `kubectl delete namespace {}`",
                self.namespace
            ));
            None
        } else {
            self.cleanup(&created).await.err()
        };
        outcome.exit_code = match (&outcome.record_status, &outcome.error, &outcome.state) {
            (Some(status), _, _) => status.exit_code(),
            (None, None, Some(RunState::Done { exit_code, .. })) => *exit_code,
            _ if outcome.interrupted => Status::Interrupted.exit_code(),
            _ => Status::Error.exit_code(),
        };
        outcome
    }

    async fn body(
        &self,
        created: &mut Created,
        tracked: &mut Tracked,
        outcome: &mut Outcome,
        mut interrupt: watch::Receiver<u32>,
        coordinator_pod: watch::Sender<Option<String>>,
    ) -> anyhow::Result<()> {
        let coordinator_uid = self.create_base(created).await?;
        tracked.job_uids.insert(
            coordinator_uid.clone(),
            (self.objects.coordinator.name_any(), None),
        );

        let (pod_tx, mut pod_events) = mpsc::unbounded_channel();
        let _pod_watch = AbortOnDrop(tokio::spawn(watch_objects(
            self.api::<Pod>(),
            Some(super::render::run_selector(&self.cfg.run_id)),
            pod_tx,
            self.cfg.rewatch_delay,
            "pods",
        )));
        let (event_tx, mut events) = mpsc::unbounded_channel();
        let _event_watch = AbortOnDrop(tokio::spawn(watch_objects(
            self.api::<Event>(),
            None,
            event_tx,
            self.cfg.rewatch_delay,
            "events",
        )));
        let mut tick = tokio::time::interval(self.cfg.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut interrupts_open = true;

        // The coordinator must be ready before the nodes exist: they wait for its name.
        if !self
            .await_coordinator(
                tracked,
                outcome,
                &mut pod_events,
                &mut events,
                &mut tick,
                &mut interrupt,
            )
            .await?
        {
            return Ok(());
        }
        let coordinator = tracked
            .coordinator_pod
            .clone()
            .expect("a ready coordinator pod has a name");
        let _ = coordinator_pod.send(Some(coordinator.clone()));

        self.create_jobs(created, tracked, &coordinator_uid).await?;

        let (log_tx, mut log_lines) = mpsc::unbounded_channel();
        let _logs = AbortOnDrop(tokio::spawn(follow_log(
            self.api::<Pod>(),
            coordinator.clone(),
            log_tx,
        )));

        let deadline = Instant::now() + self.cfg.deadline;
        let mut aborted: Option<Instant> = None;
        let mut status_errors = 0u32;
        let state = loop {
            let mut abort_reason = None;
            tokio::select! {
                Some(ev) = pod_events.recv() => {
                    if let Some(p) = self.on_pod(tracked, ev)
                        && p.problem.blocks_start()
                    {
                        abort_reason = Some(("a-node-pod-failed", format!("{p}")));
                    }
                }
                Some(ev) = events.recv() => self.on_event(tracked, ev),
                Some(line) = log_lines.recv() => self.say(format!("coordinator | {line}")),
                _ = tick.tick() => {
                    if let Some(p) = self.check_events(tracked).or_else(|| self.check_pending(tracked)) {
                        abort_reason = Some(("a-node-pod-failed", format!("{p}")));
                    }
                    self.progress(tracked);
                    match self.status(&coordinator).await {
                        Ok(RunState::Running) => status_errors = 0,
                        Ok(done) => break done,
                        Err(e) => {
                            status_errors += 1;
                            if status_errors == 3 {
                                self.say(format!("cannot read the coordinator's status yet: {}", api_error(&e)));
                            }
                        }
                    }
                    if let Some(at) = aborted
                        && at.elapsed() >= self.cfg.abort_grace
                    {
                        anyhow::bail!(
                            "the coordinator did not finish within {} of being asked to stop",
                            humantime::format_duration(self.cfg.abort_grace)
                        );
                    }
                    if aborted.is_none() && Instant::now() >= deadline {
                        abort_reason = Some(("the-run-took-too-long", format!(
                            "the run took longer than {}",
                            humantime::format_duration(self.cfg.deadline)
                        )));
                    }
                }
                r = interrupt.changed(), if interrupts_open => {
                    if r.is_err() {
                        interrupts_open = false;
                    } else {
                        outcome.interrupted = true;
                        abort_reason = Some(("interrupted", "interrupted".into()));
                    }
                }
            }
            if let Some(why) = &tracked.coordinator_gone {
                anyhow::bail!("the coordinator stopped before the run ended: {why}");
            }
            if let Some((token, why)) = abort_reason
                && aborted.is_none()
            {
                self.say(format!("stopping the run: {why}"));
                if let Err(e) = self.abort(&coordinator, token).await {
                    self.say(format!(
                        "could not ask the coordinator to stop: {}",
                        api_error(&e)
                    ));
                }
                aborted = Some(Instant::now());
            }
        };
        self.drain(tracked, &mut pod_events, &mut log_lines).await;
        outcome.state = Some(state.clone());
        self.collect(tracked, outcome, &state, &coordinator).await
    }

    /// Waits until the coordinator pod is ready: `Ok(false)` when interrupted first, an error
    /// when it cannot run or is not ready in time.
    async fn await_coordinator(
        &self,
        tracked: &mut Tracked,
        outcome: &mut Outcome,
        pod_events: &mut mpsc::UnboundedReceiver<Seen<Pod>>,
        events: &mut mpsc::UnboundedReceiver<Seen<Event>>,
        tick: &mut tokio::time::Interval,
        interrupt: &mut watch::Receiver<u32>,
    ) -> anyhow::Result<bool> {
        let mut interrupts_open = true;
        self.say("waiting for the coordinator pod to be ready");
        let until = Instant::now() + self.cfg.startup_timeout;
        while !tracked.coordinator_ready {
            tokio::select! {
                Some(ev) = pod_events.recv() => {
                    self.on_pod(tracked, ev);
                }
                Some(ev) = events.recv() => self.on_event(tracked, ev),
                _ = tick.tick() => {
                    self.check_events(tracked);
                    self.check_pending(tracked);
                    if Instant::now() >= until {
                        anyhow::bail!(
                            "the coordinator was not ready after {}",
                            humantime::format_duration(self.cfg.startup_timeout)
                        );
                    }
                }
                r = interrupt.changed(), if interrupts_open => {
                    if r.is_err() { interrupts_open = false; continue; }
                    outcome.interrupted = true;
                    self.say("interrupted before the run started: deleting what was created");
                    return Ok(false);
                }
            }
            if let Some(why) = &tracked.coordinator_gone {
                anyhow::bail!("the run did not start: the coordinator cannot run: {why}");
            }
        }
        Ok(true)
    }

    /// The nodes' Jobs (once the coordinator is ready: the nodes wait for its name), owned by
    /// the coordinator Job so that they go with it.
    async fn create_jobs(
        &self,
        created: &mut Created,
        tracked: &mut Tracked,
        coordinator_uid: &str,
    ) -> anyhow::Result<()> {
        let jobs: Api<Job> = self.api();
        let owner = owner_reference(&self.objects.coordinator, coordinator_uid);
        for job in &self.objects.jobs {
            let name = job.name_any();
            let mut job = job.clone();
            job.metadata.owner_references = Some(vec![owner.clone()]);
            let made = jobs
                .create(&PostParams::default(), &job)
                .await
                .map_err(|e| anyhow::anyhow!("creating Job {name}: {}", api_error(&e)))?;
            created.objects.push(("Job", name.clone()));
            let gi = job
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(super::render::LABEL_GROUP_INDEX))
                .and_then(|v| v.parse().ok());
            if let Some(uid) = made.metadata.uid {
                tracked.job_uids.insert(uid, (name, gi));
            }
        }
        let nodes: u32 = self.objects.layout.counts.iter().sum();
        self.say(format!(
            "created {} Job(s) for {nodes} node(s) in {} pod(s)",
            self.objects.jobs.len(),
            self.objects.node_pods()
        ));
        Ok(())
    }

    /// After the run: the pod events and coordinator log lines already on their way.
    async fn drain(
        &self,
        tracked: &mut Tracked,
        pod_events: &mut mpsc::UnboundedReceiver<Seen<Pod>>,
        log_lines: &mut mpsc::UnboundedReceiver<String>,
    ) {
        // Pod events already received still count (a failure seen just before the end).
        while let Ok(ev) = pod_events.try_recv() {
            self.on_pod(tracked, ev);
        }
        self.progress(tracked);
        // The log stream has the coordinator's last lines.
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(200), log_lines.recv()).await
        {
            self.say(format!("coordinator | {line}"));
        }
    }

    /// Namespace, Secret, ConfigMap, Service and the coordinator Job (whose uid is returned);
    /// then the Secret, ConfigMap and Service become the coordinator Job's, to go with it.
    async fn create_base(&self, created: &mut Created) -> anyhow::Result<String> {
        let pp = PostParams::default();
        if let Some(ns) = &self.objects.namespace {
            super::sweep::stale_namespaces(&self.client, &*self.say).await;
            let api: Api<Namespace> = Api::all(self.client.clone());
            match api.create(&pp, ns).await {
                Ok(_) => created.namespace = true,
                Err(e) if status_code(&e) == Some(409) => anyhow::bail!(
                    "namespace {} already exists: choose another --run-id, or pass --namespace {} --existing-namespace to run in it",
                    self.namespace,
                    self.namespace
                ),
                Err(e) if status_code(&e) == Some(403) => anyhow::bail!(
                    "creating namespace {}: forbidden: {} (this account may not create namespaces: \
                     ask for a namespace with the Role in manifests/rbac.yaml and run with \
                     --namespace NS --existing-namespace)",
                    self.namespace,
                    api_message(&e)
                ),
                Err(e) => anyhow::bail!("creating namespace {}: {}", self.namespace, api_error(&e)),
            }
            self.say(format!("created namespace {}", self.namespace));
        }
        // Before any pod: every pod reads it when it starts.
        let secret =
            super::render::run_secret(&self.objects, &format!("{:032x}", rand::random::<u128>()));
        create(&self.api::<Secret>(), &secret, "Secret").await?;
        created.objects.push(("Secret", secret.name_any()));
        let cm = &self.objects.config_map;
        create(&self.api::<ConfigMap>(), cm, "ConfigMap").await?;
        created.objects.push(("ConfigMap", cm.name_any()));
        let svc = &self.objects.service;
        create(&self.api::<Service>(), svc, "Service").await?;
        created.objects.push(("Service", svc.name_any()));
        let job = create(&self.api::<Job>(), &self.objects.coordinator, "Job").await?;
        created
            .objects
            .push(("Job", self.objects.coordinator.name_any()));
        let uid = job.metadata.uid.ok_or_else(|| {
            anyhow::anyhow!("the API server returned the coordinator Job without a uid")
        })?;
        let owner = serde_json::json!({"metadata": {"ownerReferences": [
            owner_reference(&self.objects.coordinator, &uid)
        ]}});
        let patch = Patch::Merge(&owner);
        let pp = PatchParams::default();
        let owned = async {
            self.api::<Secret>()
                .patch(&secret.name_any(), &pp, &patch)
                .await?;
            self.api::<ConfigMap>()
                .patch(&cm.name_any(), &pp, &patch)
                .await?;
            self.api::<Service>()
                .patch(&svc.name_any(), &pp, &patch)
                .await
        }
        .await;
        if let Err(e) = owned {
            self.say(format!(
                "warning: could not make the coordinator Job the owner of the secret, plan and Service ({}): \
                 if this command is killed, they stay until the namespace is deleted",
                api_error(&e)
            ));
        }
        Ok(uid)
    }

    /// Deletes what was created: the namespace if this run made it, else each object (a Job
    /// with its pods).
    async fn cleanup(&self, created: &Created) -> Result<(), String> {
        let dp = DeleteParams::background();
        let mut failures = Vec::new();
        if created.namespace {
            let api: Api<Namespace> = Api::all(self.client.clone());
            match api.delete(&self.namespace, &dp).await {
                Ok(_) => self.say(format!(
                    "deleted namespace {} (and everything in it)",
                    self.namespace
                )),
                Err(e) if status_code(&e) == Some(404) => {}
                Err(e) => failures.push(format!("namespace {}: {}", self.namespace, api_error(&e))),
            }
        } else {
            for (kind, name) in created.objects.iter().rev() {
                let r = match *kind {
                    "Job" => self.api::<Job>().delete(name, &dp).await.map(|_| ()),
                    "Pod" => self.api::<Pod>().delete(name, &dp).await.map(|_| ()),
                    "Service" => self.api::<Service>().delete(name, &dp).await.map(|_| ()),
                    "ConfigMap" => self.api::<ConfigMap>().delete(name, &dp).await.map(|_| ()),
                    "Secret" => self.api::<Secret>().delete(name, &dp).await.map(|_| ()),
                    _ => Ok(()),
                };
                match r {
                    Ok(()) => {}
                    Err(e) if status_code(&e) == Some(404) => {}
                    Err(e) => failures.push(format!("{kind} {name}: {}", api_error(&e))),
                }
            }
            if !created.objects.is_empty() {
                self.say(format!(
                    "deleted {} object(s) from namespace {}",
                    created.objects.len(),
                    self.namespace
                ));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            let msg = format!("could not delete: {}", failures.join("; "));
            self.say(format!("warning: {msg}"));
            Err(msg)
        }
    }

    /// Takes in a pod event; returns a problem that is new.
    fn on_pod(&self, t: &mut Tracked, ev: Seen<Pod>) -> Option<PodProblem> {
        let (pod, deleted) = match ev {
            Seen::Applied(p) => (p, false),
            Seen::Deleted(p) => (p, true),
            Seen::Warning(w) => {
                self.say(format!("warning: {w}"));
                return None;
            }
        };
        let name = pod.name_any();
        if let Some(uid) = &pod.metadata.uid {
            t.pod_uids.insert(uid.clone(), name.clone());
        }
        let role = pods::role(&pod, &self.objects.layout);
        let status = pods::status(&pod);
        if role == Role::Coordinator {
            t.coordinator_pod = Some(name.clone());
            t.coordinator_ready = status.ready;
            if status.ready && t.coordinator_ready_at.is_none() {
                t.coordinator_ready_at = Some(Instant::now());
            }
            if deleted {
                t.coordinator_gone = Some("its pod was deleted".into());
            } else if let Some(p) = &status.problem {
                t.coordinator_gone = Some(p.to_string());
            } else if status.terminated() {
                t.coordinator_gone = Some(format!("its pod is {}", status.phase));
            }
        }
        if status.pending() && !deleted {
            t.pending_since
                .entry(name.clone())
                .or_insert_with(Instant::now);
        } else {
            t.pending_since.remove(&name);
        }
        let problem = status.problem.clone();
        t.pods.insert(name.clone(), (role.clone(), status));
        let problem = problem?;
        self.record_problem(t, name, role, problem)
    }

    /// Takes in an Event: a Warning that Kubernetes cannot create or start one of our pods
    /// (or a Job its pods) is kept, by the object's uid, for `check_events`.
    fn on_event(&self, t: &mut Tracked, ev: Seen<Event>) {
        let event = match ev {
            Seen::Applied(e) => e,
            Seen::Deleted(_) => return,
            Seen::Warning(w) => {
                self.say(format!("warning: {w}"));
                return;
            }
        };
        let reason = event.reason.clone().unwrap_or_default();
        if event.type_.as_deref() != Some("Warning") || !BLOCKING_EVENTS.contains(&reason.as_str())
        {
            return;
        }
        let object = &event.involved_object;
        let Some(uid) = object.uid.clone() else {
            return;
        };
        let seen = t.events.entry(uid).or_insert_with(|| EventSeen {
            reason: reason.clone(),
            message: String::new(),
            count: 0,
            first_seen: Instant::now(),
        });
        seen.reason = reason;
        seen.message = event.message.clone().unwrap_or_default();
        seen.count = event
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(event.count)
            .unwrap_or(1)
            .max(seen.count);
    }

    /// Objects of ours that Kubernetes has been failing to create or start for longer than
    /// the grace become problems; returns the first new one.
    fn check_events(&self, t: &mut Tracked) -> Option<PodProblem> {
        let due: Vec<(String, EventSeen)> = t
            .events
            .iter()
            .filter(|(_, e)| e.first_seen.elapsed() >= self.cfg.event_grace)
            .map(|(uid, e)| (uid.clone(), e.clone()))
            .collect();
        let mut first = None;
        for (uid, ev) in due {
            let problem = Problem::Event {
                reason: ev.reason.clone(),
                message: ev.message.clone(),
                count: ev.count,
            };
            let p = if let Some(pod) = t.pod_uids.get(&uid).cloned() {
                let Some((role, status)) = t.pods.get(&pod).cloned() else {
                    continue;
                };
                // It started after all (or failed in a way its status already says).
                if !status.pending() || status.problem.is_some() {
                    t.events.remove(&uid);
                    continue;
                }
                if role == Role::Coordinator {
                    t.coordinator_gone = Some(problem.to_string());
                }
                self.record_problem(t, pod, role, problem)
            } else if let Some((job, gi)) = t.job_uids.get(&uid).cloned() {
                // A Job that cannot create pods: the coordinator's, or a group's that has not
                // got all of its pods.
                match gi {
                    None if t.coordinator_pod.is_none() => {
                        t.coordinator_gone = Some(problem.to_string());
                        self.record_problem(t, format!("Job {job}"), Role::Coordinator, problem)
                    }
                    Some(gi) if self.pods_seen(t, gi) < self.objects.layout.pods_of(gi) => {
                        self.record_problem(t, job, Role::Group { group_index: gi }, problem)
                    }
                    _ => {
                        t.events.remove(&uid);
                        continue;
                    }
                }
            } else {
                // Not (yet) known: a pod of ours the watch has not shown yet, or not ours.
                if ev.first_seen.elapsed() >= self.cfg.event_grace * 4 + Duration::from_secs(30) {
                    t.events.remove(&uid);
                }
                continue;
            };
            t.events.remove(&uid);
            first = first.or(p);
        }
        first
    }

    fn pods_seen(&self, t: &Tracked, gi: usize) -> u32 {
        t.pods
            .values()
            .filter(|(r, _)| matches!(r, Role::Node { group_index, .. } if *group_index == gi))
            .count() as u32
    }

    fn record_problem(
        &self,
        t: &mut Tracked,
        pod: String,
        role: Role,
        problem: Problem,
    ) -> Option<PodProblem> {
        if !t
            .reported
            .insert((pod.clone(), problem.reason().to_string()))
        {
            return None;
        }
        let group = match &role {
            Role::Node { group_index, .. } | Role::Group { group_index } => {
                self.cfg.groups.get(*group_index).cloned()
            }
            _ => None,
        };
        let p = PodProblem {
            pod,
            role,
            group,
            problem,
        };
        self.say(format!("FAILED {p}"));
        t.problems.push(p.clone());
        Some(p)
    }

    /// Pods Pending for longer than allowed become problems. A node pod is also named before
    /// the coordinator's own startup wait ends (else the coordinator would only report nodes
    /// that never connected).
    fn check_pending(&self, t: &mut Tracked) -> Option<PodProblem> {
        let coordinator_gives_up = t.coordinator_ready_at.map(|at| {
            at + self
                .cfg
                .coordinator_wait
                .saturating_sub(BEFORE_COORDINATOR_GIVES_UP)
        });
        let now = Instant::now();
        let overdue: Vec<(String, Duration)> = t
            .pending_since
            .iter()
            .filter(|(name, since)| {
                let node = matches!(t.pods.get(*name), Some((Role::Node { .. }, _)));
                since.elapsed() >= self.cfg.pending_timeout
                    || (node && coordinator_gives_up.is_some_and(|at| now >= at))
            })
            .map(|(n, since)| (n.clone(), since.elapsed()))
            .collect();
        let mut first = None;
        for (name, waited) in overdue {
            t.pending_since.remove(&name);
            let Some((role, status)) = t.pods.get(&name).cloned() else {
                continue;
            };
            let mut why = status.unschedulable.clone().unwrap_or_default();
            if waited < self.cfg.pending_timeout {
                let note = format!(
                    "the coordinator stops waiting for nodes {} after its start",
                    humantime::format_duration(self.cfg.coordinator_wait)
                );
                why = if why.is_empty() {
                    note
                } else {
                    format!("{why} ({note})")
                };
            }
            let waited = Duration::from_secs(waited.as_secs());
            if role == Role::Coordinator {
                t.coordinator_gone = Some(format!(
                    "still Pending after {}: {why}",
                    humantime::format_duration(waited)
                ));
            }
            let p = self.record_problem(t, name, role, Problem::PendingTooLong { waited, why });
            first = first.or(p);
        }
        first
    }

    fn progress(&self, t: &mut Tracked) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (role, st) in t.pods.values() {
            if matches!(role, Role::Node { .. }) {
                *counts
                    .entry(if st.phase.is_empty() {
                        "Pending"
                    } else {
                        st.phase.as_str()
                    })
                    .or_default() += 1;
            }
        }
        let seen = counts.values().sum::<usize>();
        let mut line = format!("node pods: {seen} of {} seen", self.objects.node_pods());
        if seen > 0 {
            line.push_str("; ");
            line.push_str(
                &counts
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        if line != t.last_progress {
            self.say(line.clone());
            t.last_progress = line;
        }
    }

    fn proxy_base(&self) -> String {
        format!("/api/v1/namespaces/{}/pods", self.namespace)
    }

    fn proxy_path(&self, pod: &str, path: &str) -> String {
        format!("{}/{pod}:{RESULTS_PORT}/proxy/{path}", self.proxy_base())
    }

    async fn status(&self, pod: &str) -> kube::Result<RunState> {
        let req = http::Request::get(self.proxy_path(pod, "status"))
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        self.client.request::<RunState>(req).await
    }

    async fn abort(&self, pod: &str, why: &str) -> kube::Result<String> {
        let req = http::Request::post(self.proxy_path(pod, &format!("abort?why={why}")))
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        self.client.request_text(req).await
    }

    /// Results, logs and the pod problems into `results/<plan>/<run-id>/`.
    async fn collect(
        &self,
        t: &Tracked,
        outcome: &mut Outcome,
        state: &RunState,
        coordinator: &str,
    ) -> anyhow::Result<()> {
        let dir = self
            .cfg
            .results_root
            .join(&self.cfg.plan_name)
            .join(&self.cfg.run_id);
        std::fs::create_dir_all(dir.join("logs"))?;
        outcome.results_dir = Some(dir.clone());
        let mut fetch_error = None;
        match state {
            RunState::Done { .. } => {
                let req = http::Request::get(self.proxy_path(coordinator, "results.tar"))
                    .body(Vec::new())?;
                match self.client.request_stream(req).await {
                    Ok(body) => match untar_stream(body, &dir).await {
                        Ok(_) => self.say(format!("fetched the results into {}", dir.display())),
                        Err(e) => fetch_error = Some(format!("fetching the results: {e}")),
                    },
                    Err(e) => {
                        fetch_error = Some(format!("fetching the results: {}", api_error(&e)))
                    }
                }
            }
            RunState::Error { error } => {
                self.say(format!("the coordinator could not run the plan: {error}"))
            }
            RunState::Running => {}
        }
        self.fetch_logs(t, &dir).await;
        self.annotate_record(t, outcome, &dir);
        match fetch_error {
            Some(e) => anyhow::bail!(e),
            None => Ok(()),
        }
    }

    /// Each pod's log into `logs/`: `coordinator.log`, `node-NNNN.log` (a pod of several nodes
    /// is split by its lines' `node N | ` prefix; its own lines go to each of its nodes). A
    /// pod that never started has no log: its file says why.
    async fn fetch_logs(&self, t: &Tracked, dir: &std::path::Path) {
        let pods: Api<Pod> = self.api();
        let mut failed = 0;
        for (name, (role, status)) in &t.pods {
            if !matches!(role, Role::Coordinator | Role::Node { .. }) {
                continue;
            }
            let text = match pods.logs(name, &LogParams::default()).await {
                Ok(text) => text,
                Err(_) if status.pending() => {
                    let why = t
                        .problems
                        .iter()
                        .find(|p| &p.pod == name)
                        .map(|p| p.problem.to_string())
                        .unwrap_or_else(|| "it was still Pending".into());
                    format!("(no log: pod {name} never started: {why})\n")
                }
                Err(_) => {
                    failed += 1;
                    continue;
                }
            };
            let files = match role {
                Role::Coordinator => vec![("coordinator.log".to_string(), text)],
                _ => split_node_log(role, &text),
            };
            for (file, text) in files {
                if std::fs::write(dir.join("logs").join(file), text).is_err() {
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            self.say(format!("{failed} pod log(s) could not be fetched"));
        }
    }

    /// Adds what Kubernetes saw to `run.json` and re-renders the report. A pod problem is a
    /// node failure even when the coordinator stopped the run on our request.
    fn annotate_record(&self, t: &Tracked, outcome: &mut Outcome, dir: &std::path::Path) {
        let Ok(mut record) = results_dir::read_record(dir) else {
            return;
        };
        record.runner = "k8s".into();
        record.plan_file = self.cfg.plan_file.display().to_string();
        let pods: Vec<PodRecord> = t
            .pods
            .iter()
            .map(|(name, (role, st))| PodRecord {
                pod: name.clone(),
                role: role.to_string(),
                phase: st.phase.clone(),
                problem: st.problem.as_ref().map(|p| p.to_string()),
            })
            .collect();
        record.sections.kubernetes = Some(KubernetesSection {
            namespace: self.namespace.clone(),
            nodes_per_pod: Some(self.objects.layout.nodes_per_pod),
            pods,
            problems: t.problems.iter().map(|p| p.to_string()).collect(),
        });
        for p in &t.problems {
            for index in p.role.nodes() {
                if let Some(n) = record.nodes.iter_mut().find(|n| n.index == index) {
                    let text = format!("pod {}: {}", p.pod, p.problem);
                    n.failure = Some(match n.failure.take() {
                        Some(f) => format!("{f} ({text})"),
                        None => text,
                    });
                }
            }
        }
        if !t.problems.is_empty() {
            if matches!(record.outcome.status, Status::Passed | Status::Interrupted)
                && !outcome.interrupted
            {
                record.outcome.status = Status::NodeFailed;
            }
            let mut reasons: Vec<String> = t.problems.iter().map(|p| p.to_string()).collect();
            reasons.append(&mut record.outcome.reasons);
            record.outcome.reasons = reasons;
        }
        outcome.record_status = Some(record.outcome.status);
        if let Err(e) = results_dir::write_json(&dir.join("run.json"), &record)
            .and_then(|_| report::write_all(dir, &record))
        {
            self.say(format!("warning: could not update the record: {e:#}"));
        }
    }
}

/// `(file, text)` of each node of a node pod's log.
fn split_node_log(role: &Role, text: &str) -> Vec<(String, String)> {
    let nodes = role.nodes();
    if nodes.len() <= 1 {
        return vec![(format!("node-{:04}.log", nodes.start), text.to_string())];
    }
    let mut out: BTreeMap<u32, String> = nodes.clone().map(|i| (i, String::new())).collect();
    for line in text.lines() {
        let own = line
            .strip_prefix("node ")
            .and_then(|rest| rest.split_once(" | "))
            .and_then(|(i, rest)| Some((i.parse::<u32>().ok()?, rest)))
            .filter(|(i, _)| nodes.contains(i));
        match own {
            Some((i, rest)) => {
                let s = out.entry(i).or_default();
                s.push_str(rest);
                s.push('\n');
            }
            None => {
                for s in out.values_mut() {
                    s.push_str(line);
                    s.push('\n');
                }
            }
        }
    }
    out.into_iter()
        .map(|(i, s)| (format!("node-{i:04}.log"), s))
        .collect()
}

async fn create<K>(api: &Api<K>, object: &K, kind: &str) -> anyhow::Result<K>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), object)
        .await
        .map_err(|e| anyhow::anyhow!("creating {kind} {}: {}", object.name_any(), api_error(&e)))
}

fn owner_reference(job: &Job, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.name_any(),
        uid: uid.to_string(),
        ..Default::default()
    }
}

/// Lists, then watches, objects of kind `K` (with a label selector), forever (until the
/// receiver goes away).
async fn watch_objects<K>(
    api: Api<K>,
    selector: Option<String>,
    tx: mpsc::UnboundedSender<Seen<K>>,
    delay: Duration,
    what: &'static str,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let lp = match &selector {
        Some(s) => ListParams::default().labels(s),
        None => ListParams::default(),
    };
    let mut warned = false;
    'relist: loop {
        if tx.is_closed() {
            return;
        }
        let list = match api.list(&lp).await {
            Ok(l) => l,
            Err(e) => {
                // Said once: a missing right (e.g. events) must not flood the output.
                if !warned {
                    let _ = tx.send(Seen::Warning(format!("listing {what}: {}", api_error(&e))));
                    warned = true;
                }
                tokio::time::sleep(delay.max(Duration::from_millis(100)) * 5).await;
                continue;
            }
        };
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        for o in list.items {
            let _ = tx.send(Seen::Applied(Box::new(o)));
        }
        loop {
            let mut wp = WatchParams::default().timeout(290);
            if let Some(s) = &selector {
                wp = wp.labels(s);
            }
            let stream = match api.watch(&wp, &version).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Seen::Warning(format!("watching {what}: {}", api_error(&e))));
                    tokio::time::sleep(delay).await;
                    continue 'relist;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                let seen = match ev {
                    Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                        version = o.resource_version().unwrap_or(version);
                        Seen::Applied(Box::new(o))
                    }
                    Ok(WatchEvent::Deleted(o)) => Seen::Deleted(Box::new(o)),
                    Ok(WatchEvent::Bookmark(b)) => {
                        version = b.metadata.resource_version;
                        continue;
                    }
                    // 410 Gone: the version is too old; start again from a list.
                    Ok(WatchEvent::Error(e)) if e.code == 410 => continue 'relist,
                    Ok(WatchEvent::Error(e)) => {
                        Seen::Warning(format!("{what} watch: {}", e.message))
                    }
                    Err(e) => Seen::Warning(format!("{what} watch: {e}")),
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// Follows the coordinator's log, line by line, until the stream ends.
async fn follow_log(api: Api<Pod>, name: String, tx: mpsc::UnboundedSender<String>) {
    let lp = LogParams {
        follow: true,
        ..Default::default()
    };
    let Ok(stream) = api.log_stream(&name, &lp).await else {
        return;
    };
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.try_next().await {
        if tx.send(line).is_err() {
            return;
        }
    }
}

/// Asks the coordinator's `/status` every `every` once its pod is known: its `--client-lease`
/// sees that the launcher is still there (also while results and logs are fetched).
async fn keepalive(
    pods: String,
    client: Client,
    mut pod: watch::Receiver<Option<String>>,
    every: Duration,
) {
    let Ok(name) = pod.wait_for(|p| p.is_some()).await.map(|p| p.clone()) else {
        return;
    };
    let Some(name) = name else { return };
    let path = format!("{pods}/{name}:{RESULTS_PORT}/proxy/status");
    loop {
        if let Ok(req) = http::Request::get(&path).body(Vec::new()) {
            let _ = client.request_text(req).await;
        }
        tokio::time::sleep(every).await;
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// An API error as a person reads it: the server's message, and what usually fixes it.
pub fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "forbidden: {} (the account running this needs the rights in manifests/rbac.yaml)",
            s.message
        ),
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
