//! `orchestrator k8s run PLAN`: runs a plan on a cluster from this machine.
//!
//! 1. Create the namespace (or use `--namespace … --existing-namespace`), the plan ConfigMap,
//!    the coordinator Service and Pod.
//! 2. Watch the run's pods (list, then watch from that version; re-list on `410 Gone`). Every
//!    pod problem is reported at once, per node, with the reason: OOMKilled, ImagePullBackOff,
//!    CrashLoopBackOff, CreateContainerConfigError, Evicted, Pending too long.
//! 3. Once the coordinator is ready, create the nodes' Jobs.
//! 4. Stream the coordinator's log and the pods' progress; poll the coordinator's `/status`
//!    through the API server's pod proxy. A problem that keeps a node from ever starting
//!    (image, config, scheduling) aborts the run at once (`POST /abort`), so the coordinator
//!    writes partial results instead of waiting for its startup timeout. Ctrl-C does the same;
//!    a second Ctrl-C stops waiting.
//! 5. Fetch `/results.tar` into `results/<plan>/<run-id>/`, each pod's log into `logs/`, add
//!    the pod problems to `run.json` (`sections.kubernetes`, node failures, outcome) and re-render
//!    the report.
//! 6. Delete everything it created: on success, on failure and on Ctrl-C (`--keep` to keep).

use super::pods::{self, PodStatus, Problem, Role};
use super::render::{COORDINATOR, Objects, RESULTS_PORT};
use super::results::{RunState, untar};
use crate::record::Status;
use crate::record::sections::{KubernetesSection, PodRecord};
use crate::record::store as results_dir;
use crate::report;
use futures::{AsyncBufReadExt, AsyncReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Prints one line of progress (stderr in the CLI; collected in tests).
pub type Say = Arc<dyn Fn(String) + Send + Sync>;

/// How a run behaves, beyond the rendered objects.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub results_root: PathBuf,
    pub plan_name: String,
    pub run_id: String,
    /// Group ids in plan order (to name a node's group in messages).
    pub groups: Vec<String>,
    /// Keep everything on the cluster at the end (for debugging).
    pub keep: bool,
    /// A pod still Pending after this long is a failure (its node will never start).
    pub pending_timeout: Duration,
    /// How long the coordinator may take to become ready.
    pub startup_timeout: Duration,
    /// The whole run, from the Jobs' creation to the coordinator's last word.
    pub deadline: Duration,
    /// How often the coordinator's `/status` is asked.
    pub poll: Duration,
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
        match &self.group {
            Some(g) => write!(
                f,
                "{} (group {g}, pod {}): {}",
                self.role, self.pod, self.problem
            ),
            None => write!(f, "{} (pod {}): {}", self.role, self.pod, self.problem),
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

#[derive(Debug, Default)]
struct Tracked {
    pods: BTreeMap<String, (Role, PodStatus)>,
    /// (pod, reason) already reported.
    reported: HashSet<(String, String)>,
    pending_since: BTreeMap<String, Instant>,
    problems: Vec<PodProblem>,
    coordinator_ready: bool,
    coordinator_gone: Option<String>,
    last_progress: String,
}

enum PodEvent {
    Applied(Box<Pod>),
    Deleted(Box<Pod>),
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
        let body = self.body(&mut created, &mut tracked, &mut outcome, interrupt);
        let result = tokio::select! {
            r = body => r,
            _ = hard.wait_for(|n| *n >= 2) => {
                outcome.interrupted = true;
                Err(anyhow::anyhow!("interrupted twice: stopped waiting"))
            }
        };
        if let Err(e) = result {
            self.say(format!("error: {e:#}"));
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
    ) -> anyhow::Result<()> {
        self.create_base(created).await?;

        let (ev_tx, mut events) = mpsc::unbounded_channel();
        let _watcher = AbortOnDrop(tokio::spawn(watch_pods(
            self.api::<Pod>(),
            super::render::run_selector(&self.cfg.run_id),
            ev_tx,
            self.cfg.rewatch_delay,
        )));
        let mut tick = tokio::time::interval(self.cfg.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut interrupts_open = true;

        // The coordinator must be ready before the nodes exist: they wait for its name.
        self.say("waiting for the coordinator pod to be ready");
        let until = Instant::now() + self.cfg.startup_timeout;
        while !tracked.coordinator_ready {
            tokio::select! {
                Some(ev) = events.recv() => {
                    self.on_event(tracked, ev);
                }
                _ = tick.tick() => {
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
                    return Ok(());
                }
            }
            if let Some(why) = &tracked.coordinator_gone {
                anyhow::bail!("the coordinator cannot run: {why}");
            }
        }

        self.create_jobs(created).await?;

        let (log_tx, mut log_lines) = mpsc::unbounded_channel();
        let _logs = AbortOnDrop(tokio::spawn(follow_log(
            self.api::<Pod>(),
            COORDINATOR.to_string(),
            log_tx,
        )));

        let deadline = Instant::now() + self.cfg.deadline;
        let mut aborted: Option<Instant> = None;
        let mut status_errors = 0u32;
        let state = loop {
            let mut abort_reason = None;
            tokio::select! {
                Some(ev) = events.recv() => {
                    if let Some(p) = self.on_event(tracked, ev)
                        && p.problem.blocks_start()
                    {
                        abort_reason = Some(format!("{p}"));
                    }
                }
                Some(line) = log_lines.recv() => self.say(format!("coordinator | {line}")),
                _ = tick.tick() => {
                    if let Some(p) = self.check_pending(tracked) {
                        abort_reason = Some(format!("{p}"));
                    }
                    self.progress(tracked);
                    match self.status().await {
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
                        abort_reason = Some(format!(
                            "the run took longer than {}",
                            humantime::format_duration(self.cfg.deadline)
                        ));
                    }
                }
                r = interrupt.changed(), if interrupts_open => {
                    if r.is_err() {
                        interrupts_open = false;
                    } else {
                        outcome.interrupted = true;
                        abort_reason = Some("interrupted (Ctrl-C again to stop waiting)".into());
                    }
                }
            }
            if let Some(why) = &tracked.coordinator_gone {
                anyhow::bail!("the coordinator stopped before the run ended: {why}");
            }
            if let Some(why) = abort_reason
                && aborted.is_none()
            {
                self.say(format!("stopping the run: {why}"));
                if let Err(e) = self.abort().await {
                    self.say(format!(
                        "could not ask the coordinator to stop: {}",
                        api_error(&e)
                    ));
                }
                aborted = Some(Instant::now());
            }
        };
        self.drain(tracked, &mut events, &mut log_lines).await;
        outcome.state = Some(state.clone());
        self.collect(tracked, outcome, &state).await
    }

    /// The nodes' Jobs (once the coordinator is ready: the nodes wait for its name).
    async fn create_jobs(&self, created: &mut Created) -> anyhow::Result<()> {
        let jobs: Api<Job> = self.api();
        for job in &self.objects.jobs {
            let name = job.name_any();
            jobs.create(&PostParams::default(), job)
                .await
                .map_err(|e| anyhow::anyhow!("creating Job {name}: {}", api_error(&e)))?;
            created.objects.push(("Job", name));
        }
        self.say(format!(
            "created {} Job(s) for {} node(s)",
            self.objects.jobs.len(),
            self.objects
                .jobs
                .iter()
                .filter_map(|j| j.spec.as_ref()?.completions)
                .sum::<i32>()
        ));
        Ok(())
    }

    /// After the run: the pod events and coordinator log lines already on their way.
    async fn drain(
        &self,
        tracked: &mut Tracked,
        events: &mut mpsc::UnboundedReceiver<PodEvent>,
        log_lines: &mut mpsc::UnboundedReceiver<String>,
    ) {
        // Pod events already received still count (a failure seen just before the end).
        while let Ok(ev) = events.try_recv() {
            self.on_event(tracked, ev);
        }
        self.progress(tracked);
        // The log stream has the coordinator's last lines.
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(200), log_lines.recv()).await
        {
            self.say(format!("coordinator | {line}"));
        }
    }

    /// Namespace, ConfigMap, Service and coordinator Pod.
    async fn create_base(&self, created: &mut Created) -> anyhow::Result<()> {
        let pp = PostParams::default();
        if let Some(ns) = &self.objects.namespace {
            let api: Api<Namespace> = Api::all(self.client.clone());
            match api.create(&pp, ns).await {
                Ok(_) => created.namespace = true,
                Err(e) if status_code(&e) == Some(409) => anyhow::bail!(
                    "namespace {} already exists: choose another --run-id, or pass --namespace {} --existing-namespace to run in it",
                    self.namespace,
                    self.namespace
                ),
                Err(e) => anyhow::bail!("creating namespace {}: {}", self.namespace, api_error(&e)),
            }
            self.say(format!("created namespace {}", self.namespace));
        }
        let cm: Api<ConfigMap> = self.api();
        cm.create(&pp, &self.objects.config_map)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "creating ConfigMap {}: {}",
                    self.objects.config_map.name_any(),
                    api_error(&e)
                )
            })?;
        created
            .objects
            .push(("ConfigMap", self.objects.config_map.name_any()));
        let svc: Api<Service> = self.api();
        svc.create(&pp, &self.objects.service).await.map_err(|e| {
            anyhow::anyhow!(
                "creating Service {}: {}",
                self.objects.service.name_any(),
                api_error(&e)
            )
        })?;
        created
            .objects
            .push(("Service", self.objects.service.name_any()));
        let pods: Api<Pod> = self.api();
        pods.create(&pp, &self.objects.coordinator)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "creating Pod {}: {}",
                    self.objects.coordinator.name_any(),
                    api_error(&e)
                )
            })?;
        created
            .objects
            .push(("Pod", self.objects.coordinator.name_any()));
        Ok(())
    }

    /// Deletes what was created: the namespace if this run made it, else each object.
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
    fn on_event(&self, t: &mut Tracked, ev: PodEvent) -> Option<PodProblem> {
        let (pod, deleted) = match ev {
            PodEvent::Applied(p) => (p, false),
            PodEvent::Deleted(p) => (p, true),
            PodEvent::Warning(w) => {
                self.say(format!("warning: {w}"));
                return None;
            }
        };
        let name = pod.name_any();
        let role = pods::role(&pod, &self.objects.offsets);
        let status = pods::status(&pod);
        if role == Role::Coordinator {
            t.coordinator_ready = status.ready;
            if deleted {
                t.coordinator_gone = Some("its pod was deleted".into());
            } else if let Some(p) = &status.problem {
                t.coordinator_gone = Some(p.to_string());
            } else if status.terminated() {
                t.coordinator_gone = Some(format!("its pod is {}", status.phase));
            }
        }
        if status.pending() {
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
            Role::Node { group_index, .. } => self.cfg.groups.get(*group_index).cloned(),
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

    /// Pods Pending for longer than allowed become problems.
    fn check_pending(&self, t: &mut Tracked) -> Option<PodProblem> {
        let overdue: Vec<(String, Duration)> = t
            .pending_since
            .iter()
            .filter(|(_, since)| since.elapsed() >= self.cfg.pending_timeout)
            .map(|(n, since)| (n.clone(), since.elapsed()))
            .collect();
        let mut first = None;
        for (name, waited) in overdue {
            t.pending_since.remove(&name);
            let Some((role, status)) = t.pods.get(&name).cloned() else {
                continue;
            };
            let why = status.unschedulable.clone().unwrap_or_default();
            if role == Role::Coordinator {
                t.coordinator_gone = Some(format!(
                    "still Pending after {}: {why}",
                    humantime::format_duration(waited)
                ));
            }
            let p = self.record_problem(
                t,
                name,
                role,
                Problem::PendingTooLong {
                    waited: self.cfg.pending_timeout,
                    why,
                },
            );
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
        let total: i32 = self
            .objects
            .jobs
            .iter()
            .filter_map(|j| j.spec.as_ref()?.completions)
            .sum();
        let line = format!(
            "node pods: {} of {total} seen; {}",
            counts.values().sum::<usize>(),
            counts
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if line != t.last_progress {
            self.say(line.clone());
            t.last_progress = line;
        }
    }

    fn proxy_path(&self, path: &str) -> String {
        format!(
            "/api/v1/namespaces/{}/pods/{COORDINATOR}:{RESULTS_PORT}/proxy/{path}",
            self.namespace
        )
    }

    async fn status(&self) -> kube::Result<RunState> {
        let req = http::Request::get(self.proxy_path("status"))
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        self.client.request::<RunState>(req).await
    }

    async fn abort(&self) -> kube::Result<String> {
        let req = http::Request::post(self.proxy_path("abort"))
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
                let req = http::Request::get(self.proxy_path("results.tar")).body(Vec::new())?;
                match self.client.request_stream(req).await {
                    Ok(mut body) => {
                        let mut bytes = Vec::new();
                        body.read_to_end(&mut bytes).await?;
                        untar(&bytes, &dir)?;
                        self.say(format!("fetched the results into {}", dir.display()));
                    }
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

    async fn fetch_logs(&self, t: &Tracked, dir: &std::path::Path) {
        let pods: Api<Pod> = self.api();
        let mut failed = 0;
        for (name, (role, _)) in &t.pods {
            let file = match role {
                Role::Coordinator => "coordinator.log".to_string(),
                Role::Node { index, .. } => format!("node-{index:04}.log"),
                Role::Other => continue,
            };
            match pods.logs(name, &LogParams::default()).await {
                Ok(text) => {
                    if std::fs::write(dir.join("logs").join(file), text).is_err() {
                        failed += 1;
                    }
                }
                Err(_) => failed += 1,
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
        let pods: Vec<PodRecord> = t
            .pods
            .iter()
            .map(|(name, (role, st))| PodRecord {
                pod: name.clone(),
                role: match role {
                    Role::Coordinator => "coordinator".to_string(),
                    Role::Node { index, .. } => format!("node {index}"),
                    Role::Other => "other".into(),
                },
                phase: st.phase.clone(),
                problem: st.problem.as_ref().map(|p| p.to_string()),
            })
            .collect();
        record.sections.kubernetes = Some(KubernetesSection {
            namespace: self.namespace.clone(),
            pods,
            problems: t.problems.iter().map(|p| p.to_string()).collect(),
        });
        for p in &t.problems {
            if let Role::Node { index, .. } = p.role
                && let Some(n) = record.nodes.iter_mut().find(|n| n.index == index)
            {
                let text = format!("pod {}: {}", p.pod, p.problem);
                n.failure = Some(match n.failure.take() {
                    Some(f) => format!("{f} ({text})"),
                    None => text,
                });
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

/// Lists, then watches, the run's pods, forever (until the receiver goes away).
async fn watch_pods(
    api: Api<Pod>,
    selector: String,
    tx: mpsc::UnboundedSender<PodEvent>,
    delay: Duration,
) {
    'relist: loop {
        if tx.is_closed() {
            return;
        }
        let list = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(PodEvent::Warning(format!(
                    "listing pods: {}",
                    api_error(&e)
                )));
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        for p in list.items {
            let _ = tx.send(PodEvent::Applied(Box::new(p)));
        }
        loop {
            let wp = WatchParams::default().labels(&selector).timeout(290);
            let stream = match api.watch(&wp, &version).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(PodEvent::Warning(format!(
                        "watching pods: {}",
                        api_error(&e)
                    )));
                    tokio::time::sleep(delay).await;
                    continue 'relist;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                let event = match ev {
                    Ok(WatchEvent::Added(p)) | Ok(WatchEvent::Modified(p)) => {
                        version = p.resource_version().unwrap_or(version);
                        PodEvent::Applied(Box::new(p))
                    }
                    Ok(WatchEvent::Deleted(p)) => PodEvent::Deleted(Box::new(p)),
                    Ok(WatchEvent::Bookmark(b)) => {
                        version = b.metadata.resource_version;
                        continue;
                    }
                    // 410 Gone: the version is too old; start again from a list.
                    Ok(WatchEvent::Error(e)) if e.code == 410 => continue 'relist,
                    Ok(WatchEvent::Error(e)) => {
                        PodEvent::Warning(format!("pod watch: {}", e.message))
                    }
                    Err(e) => PodEvent::Warning(format!("pod watch: {e}")),
                };
                if tx.send(event).is_err() {
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
