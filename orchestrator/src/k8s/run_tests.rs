//! The kube runner against a fake API server at the HTTP level: `kube::Client::new` over a
//! `tower-test` mock service, answered by a small in-memory cluster that plays each scenario
//! (pods becoming ready, OOMKilled, ImagePullBackOff, Pending, a sandbox that cannot be
//! created, cluster DNS that does not answer, 403, Ctrl-C …). Every request is recorded, and
//! the tests assert on that sequence and on what the runner reported. The real thing:
//! `orchestrator/tests/k8s_cluster.rs`.
//! No test depends on timing: the fake coordinator finishes only once the runner has said
//! what the scenario expects it to see.

use super::*;
use crate::k8s::pods::fixtures;
use crate::k8s::render::{self, RenderOptions};
use crate::k8s::results::tar_dir;
use crate::record::{
    HostFacts, NodeRecord, NodeStatus, Outcome as RecordOutcome, RunRecord, Versions,
};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Mutex;
use testbed_contract::results::NodeState;

type RespBody = UnsyncBoxBody<Bytes, Infallible>;

const PLAN: &str = r#"
version: 1
name: k8s-test
timeout: 1m
groups:
  - id: a
    count: 3
    resources: {memory_limit: 64Mi}
  - id: b
    count: 2
workload:
  - subscribe: {topics: [t]}
  - publish: {topic: t, count: 1}
"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    Succeeds,
    OomKilled,
    ImagePull,
    Unschedulable,
    /// ContainerCreating, with a `FailedCreatePodSandBox` Warning Event.
    SandboxFails,
    /// The shell line gave up on cluster DNS (exit code 71).
    NoDns,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Coordinator {
    /// Pending in the first list, ready through the watch.
    BecomesReady,
    /// Already ready in the first list.
    ReadyAtOnce,
    ImagePull,
    NeverReady,
}

#[derive(Clone, Debug)]
struct Scenario {
    existing_namespace: bool,
    namespace_exists: bool,
    coordinator: Coordinator,
    fates: BTreeMap<u32, Fate>,
    forbid_jobs: bool,
    /// Ctrl-C when the pod watch starts (before the coordinator is ready).
    interrupt_on_watch: bool,
    /// Ctrl-C at this `/status` call.
    interrupt_on_status: Option<u32>,
    pending_timeout: Duration,
    coordinator_wait: Duration,
    forbid_namespaces: bool,
    nodes_per_pod: u32,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            existing_namespace: false,
            namespace_exists: false,
            coordinator: Coordinator::BecomesReady,
            fates: BTreeMap::new(),
            forbid_jobs: false,
            interrupt_on_watch: false,
            interrupt_on_status: None,
            pending_timeout: Duration::from_secs(3600),
            coordinator_wait: Duration::from_secs(3600),
            forbid_namespaces: false,
            nodes_per_pod: 1,
        }
    }
}

const NODES: u32 = 5;
const NS: &str = "testbed-r1";

struct Fake {
    sc: Scenario,
    requests: Vec<String>,
    said: Arc<Mutex<Vec<String>>>,
    interrupt: watch::Sender<u32>,
    watch_tx: Option<futures::channel::mpsc::UnboundedSender<Bytes>>,
    event_tx: Option<futures::channel::mpsc::UnboundedSender<Bytes>>,
    /// Events made before the event watch started.
    early_events: Vec<Value>,
    coordinator_pod: Option<Value>,
    /// (Job, the uid of its owner) for every Job created.
    job_owners: Vec<(String, Option<String>)>,
    rv: u64,
    status_calls: u32,
    aborted: bool,
    results: tempfile::TempDir,
}

impl Fake {
    fn fate(&self, i: u32) -> Fate {
        self.sc.fates.get(&i).copied().unwrap_or(Fate::Succeeds)
    }

    fn said(&self, needle: &str) -> bool {
        self.said.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// The first node and the fate of every node pod (a pod's fate is its first node's).
    fn pods(&self) -> Vec<(u32, Fate)> {
        let per_pod = self.sc.nodes_per_pod;
        [(0u32, 3u32), (3, 2)]
            .iter()
            .flat_map(|&(offset, count)| {
                (0..count.div_ceil(per_pod)).map(move |ci| offset + ci * per_pod)
            })
            .map(|first| (first, self.fate(first)))
            .collect()
    }

    /// The fake coordinator's run is over once the runner has seen every pod's fate; a node
    /// that never starts (image, scheduling) keeps it waiting, as a real coordinator would.
    fn finished(&self) -> bool {
        let pods = self.pods();
        if pods.iter().any(|(_, f)| {
            matches!(
                f,
                Fate::ImagePull | Fate::Unschedulable | Fate::SandboxFails | Fate::NoDns
            )
        }) {
            return false;
        }
        let succeeded = pods.iter().filter(|(_, f)| *f == Fate::Succeeds).count();
        let failures_seen = pods
            .iter()
            .filter(|(_, f)| *f != Fate::Succeeds)
            .all(|(i, _)| {
                self.said(&format!("FAILED node {i} ")) || self.said(&format!("FAILED nodes {i}-"))
            });
        failures_seen && self.said(&format!("{succeeded} Succeeded"))
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn event(&mut self, kind: &str, mut pod: Value) {
        pod["metadata"]["resourceVersion"] = json!(self.next_rv());
        let line = format!("{}\n", json!({"type": kind, "object": pod}));
        if let Some(tx) = &self.watch_tx {
            let _ = tx.unbounded_send(Bytes::from(line));
        }
    }

    /// A Kubernetes Event (not a watch event) about the pod with `uid`.
    fn k8s_event(&mut self, uid: &str, name: &str, reason: &str, message: &str) {
        let rv = self.next_rv();
        let ev = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{name}.1"), "namespace": NS, "resourceVersion": rv},
            "involvedObject": {"kind": "Pod", "name": name, "namespace": NS, "uid": uid},
            "reason": reason, "message": message, "type": "Warning", "count": 1});
        match &self.event_tx {
            Some(tx) => {
                let line = format!("{}\n", json!({"type": "ADDED", "object": ev}));
                let _ = tx.unbounded_send(Bytes::from(line));
            }
            None => self.early_events.push(ev),
        }
    }

    /// A Job created: the coordinator's pod, or a group's pods each going the way the
    /// scenario says.
    fn create_job(&mut self, mut job: Value) -> Response<RespBody> {
        let name = job["metadata"]["name"].as_str().unwrap().to_string();
        job["metadata"]["uid"] = json!(format!("uid-job-{name}"));
        if name == "coordinator" {
            // The Job controller's pod, with the template's labels.
            let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "coordinator-x", "uid": "uid-coordinator",
                         "labels": job["spec"]["template"]["metadata"]["labels"].clone()}});
            pod["status"] = match self.sc.coordinator {
                Coordinator::ReadyAtOnce => fixtures::running(true),
                _ => json!({"phase": "Pending"}),
            };
            self.coordinator_pod = Some(pod);
            return json_resp(201, job);
        }
        if self.sc.forbid_jobs {
            return status(
                403,
                "Forbidden",
                "jobs.batch is forbidden: User \"ci\" cannot create resource \"jobs\"",
            );
        }
        let gi: usize = job["spec"]["template"]["metadata"]["labels"]["pubsub-testbed/group-index"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let completions = job["spec"]["completions"].as_u64().unwrap() as u32;
        let offset = [0u32, 3][gi];
        let per_pod = self.sc.nodes_per_pod;
        for ci in 0..completions {
            let pod_name = format!("{name}-{ci}-x");
            let uid = format!("uid-{pod_name}");
            let pod = |status| {
                let mut p =
                    serde_json::to_value(fixtures::node_pod(&pod_name, gi, ci, status)).unwrap();
                p["metadata"]["uid"] = json!(uid.clone());
                p
            };
            match self.fate(offset + ci * per_pod) {
                Fate::Succeeds => {
                    self.event("ADDED", pod(fixtures::running(true)));
                    self.event("MODIFIED", pod(fixtures::succeeded()));
                }
                Fate::OomKilled => {
                    self.event("ADDED", pod(fixtures::running(true)));
                    self.event("MODIFIED", pod(fixtures::oom_killed()));
                }
                Fate::ImagePull => self.event(
                    "ADDED",
                    pod(fixtures::waiting(
                        "ImagePullBackOff",
                        "Back-off pulling image \"pubsub-testbed:dev\"",
                    )),
                ),
                Fate::Unschedulable => self.event(
                    "ADDED",
                    pod(fixtures::unschedulable(
                        "0/1 nodes are available: 1 Insufficient memory.",
                    )),
                ),
                Fate::SandboxFails => {
                    self.event("ADDED", pod(fixtures::waiting("ContainerCreating", "")));
                    self.k8s_event(
                    &uid,
                    &pod_name,
                    "FailedCreatePodSandBox",
                    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to start sandbox: cannot start a stopped process",
                );
                }
                Fate::NoDns => {
                    self.event("ADDED", pod(fixtures::running(true)));
                    self.event(
                    "MODIFIED",
                    pod(json!({"phase": "Failed", "containerStatuses": [{"name": "node", "image": "i", "imageID": "",
                        "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 71, "reason": "Error",
                        "message": "gave up after 30 s: cluster DNS does not answer: not even kubernetes.default.svc resolves (nameserver 10.96.0.10)\n"}}}]})),
                );
                }
            }
        }
        json_resp(201, job)
    }

    /// A pod watch: the coordinator's changes as the scenario says, then the nodes' as
    /// their Jobs are created.
    fn watch_pods(&mut self) -> Response<RespBody> {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Bytes>();
        self.watch_tx = Some(tx);
        if self.sc.interrupt_on_watch {
            let _ = self.interrupt.send(1);
        }
        let pod = self.coordinator_pod.clone().unwrap();
        match self.sc.coordinator {
            Coordinator::BecomesReady => {
                let mut p = pod;
                p["status"] = fixtures::running(true);
                self.event("MODIFIED", p);
            }
            Coordinator::ImagePull => {
                let mut p = pod;
                p["status"] =
                    fixtures::waiting("ErrImagePull", "pull access denied for pubsub-testbed");
                self.event("MODIFIED", p);
            }
            Coordinator::ReadyAtOnce | Coordinator::NeverReady => {}
        }
        let stream = rx.map(|b| Ok::<_, Infallible>(Frame::data(b)));
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(StreamBody::new(stream).boxed_unsync())
            .unwrap()
    }

    fn handle(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Response<RespBody> {
        let watch = query.contains("watch=true");
        let follow = query.contains("follow=true");
        let tag = if watch {
            "WATCH"
        } else if follow {
            "FOLLOW"
        } else {
            method.as_str()
        };
        // A Job's creation is recorded with its name (the coordinator's and the nodes' share a path).
        let job_name = if *method == Method::POST && path.ends_with("/jobs") {
            let j = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
            let name = j["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            self.job_owners.push((
                name.clone(),
                j["metadata"]["ownerReferences"][0]["uid"]
                    .as_str()
                    .map(String::from),
            ));
            format!(" {name}")
        } else {
            String::new()
        };
        self.requests.push(format!("{tag} {path}{job_name}"));
        let ns_path = format!("/api/v1/namespaces/{NS}");
        let proxy = format!("{ns_path}/pods/coordinator-x:7001/proxy");
        let body_json = || serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);

        if *method == Method::GET && path == "/api/v1/namespaces" {
            // The sweep of stale namespaces: none here.
            return json_resp(
                200,
                json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {"resourceVersion": "1"}, "items": []}),
            );
        }
        if *method == Method::POST && path == "/api/v1/namespaces" {
            if self.sc.forbid_namespaces {
                return status(
                    403,
                    "Forbidden",
                    "namespaces is forbidden: User \"system:serviceaccount:pubsub-testbed:testbed-launcher\" cannot create resource \"namespaces\" in API group \"\" at the cluster scope",
                );
            }
            if self.sc.namespace_exists {
                return status(
                    409,
                    "AlreadyExists",
                    "namespaces \"testbed-r1\" already exists",
                );
            }
            return json_resp(201, body_json());
        }
        if *method == Method::POST && path == format!("/apis/batch/v1/namespaces/{NS}/jobs") {
            return self.create_job(body_json());
        }
        if *method == Method::PATCH {
            return json_resp(200, json!({"metadata": {"name": path.rsplit('/').next()}}));
        }
        if *method == Method::POST && path.starts_with(&ns_path) && !path.contains("/proxy/") {
            return json_resp(201, body_json());
        }
        if *method == Method::GET && path == format!("{ns_path}/events") && !watch {
            let items = std::mem::take(&mut self.early_events);
            let rv = self.next_rv();
            return json_resp(
                200,
                json!({"apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": rv}, "items": items}),
            );
        }
        if watch && path == format!("{ns_path}/events") {
            let (tx, rx) = futures::channel::mpsc::unbounded::<Bytes>();
            self.event_tx = Some(tx);
            let stream = rx.map(|b| Ok::<_, Infallible>(Frame::data(b)));
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(StreamBody::new(stream).boxed_unsync())
                .unwrap();
        }
        if *method == Method::GET && path == format!("{ns_path}/pods") && !watch {
            let items: Vec<Value> = self.coordinator_pod.iter().cloned().collect();
            let rv = self.next_rv();
            return json_resp(
                200,
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": rv}, "items": items}),
            );
        }
        if watch && path == format!("{ns_path}/pods") {
            return self.watch_pods();
        }
        if follow {
            return text_resp(200, "run k8s-test/r1\n  subscribe      12.0 ms  ok\n");
        }
        if path == format!("{proxy}/status") {
            self.status_calls += 1;
            if self.sc.interrupt_on_status == Some(self.status_calls) {
                let _ = self.interrupt.send(1);
            }
            let state = if self.aborted {
                json!({"state": "done", "exit_code": 130, "dir": "k8s-test/r1"})
            } else if self.finished() {
                json!({"state": "done", "exit_code": 0, "dir": "k8s-test/r1"})
            } else {
                json!({"state": "running"})
            };
            return json_resp(200, state);
        }
        if path == format!("{proxy}/abort") {
            self.aborted = true;
            return text_resp(202, "aborting\n");
        }
        if path == format!("{proxy}/results.tar") {
            let status = if self.aborted {
                Status::Interrupted
            } else {
                Status::Passed
            };
            let dir = self.results.path();
            write_record(dir, status);
            let tar = tar_dir(dir).unwrap();
            return Response::builder()
                .status(200)
                .body(Full::new(Bytes::from(tar)).boxed_unsync())
                .unwrap();
        }
        if *method == Method::GET && path.ends_with("/log") {
            let pod = path.rsplit('/').nth(1).unwrap();
            return text_resp(200, &format!("log of {pod}\n"));
        }
        if *method == Method::DELETE {
            return json_resp(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            );
        }
        status(404, "NotFound", &format!("{path} not found"))
    }
}

fn json_resp(code: u16, v: Value) -> Response<RespBody> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed_unsync())
        .unwrap()
}

fn text_resp(code: u16, t: &str) -> Response<RespBody> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::from(t.to_string())).boxed_unsync())
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> Response<RespBody> {
    json_resp(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}),
    )
}

fn write_record(dir: &Path, status: Status) {
    let nodes = (0..NODES)
        .map(|i| NodeRecord {
            index: i,
            group: if i < 3 { "a".into() } else { "b".into() },
            implementation: "rust".into(),
            pid: None,
            peer_id: None,
            listen_addrs: vec![],
            status: NodeStatus::Ok,
            failure: None,
            failed_at: None,
            exit_code: None,
            exit_signal: None,
            last_state: NodeState::Starting,
            log: format!("logs/node-{i:04}.log"),
            mesh_ms: None,
            meshed: None,
            timeline: vec![],
            last_snapshot: None,
            result: None,
            finish_info: None,
            outside: None,
        })
        .collect();
    let record = RunRecord {
        schema: crate::record::RECORD_SCHEMA,
        run_id: "r1".into(),
        plan_name: "k8s-test".into(),
        plan_file: "/plan/plan.yaml".into(),
        command: vec![],
        started_at: "2025-01-01T00:00:00Z".into(),
        finished_at: "2025-01-01T00:00:01Z".into(),
        duration_s: 1.0,
        runner: "external".into(),
        params: BTreeMap::new(),
        versions: Versions {
            testbed: "0".into(),
            node_implementations: BTreeMap::new(),
        },
        host: HostFacts {
            hostname: "coordinator".into(),
            os: "linux".into(),
            kernel: "6".into(),
            cpu_model: "x".into(),
            cpus: 1,
            memory_bytes: 1,
        },
        outcome: RecordOutcome {
            status,
            reasons: vec![],
        },
        summary: Default::default(),
        assertions: vec![],
        phases: vec![],
        group_pairs: vec![],
        nodes,
        sections: Default::default(),
    };
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("run.json"), serde_json::to_vec(&record).unwrap()).unwrap();
}

struct Ran {
    outcome: Outcome,
    requests: Vec<String>,
    job_owners: Vec<(String, Option<String>)>,
    said: Vec<String>,
    results: tempfile::TempDir,
}

impl Ran {
    fn pos(&self, request: &str) -> usize {
        self.requests
            .iter()
            .position(|r| r == request)
            .unwrap_or_else(|| panic!("no request `{request}` in {:#?}", self.requests))
    }
    fn has(&self, request: &str) -> bool {
        self.requests.iter().any(|r| r == request)
    }
    fn count_prefix(&self, prefix: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }
}

const JOBS: &str = "/apis/batch/v1/namespaces/testbed-r1/jobs";
const PODS: &str = "/api/v1/namespaces/testbed-r1/pods";
const PROXY: &str = "/api/v1/namespaces/testbed-r1/pods/coordinator-x:7001/proxy";

async fn run(sc: Scenario) -> Ran {
    let loaded =
        crate::plan::load_text(Path::new("k8s-test.yaml"), PLAN, &BTreeMap::new()).unwrap();
    let mut opts = RenderOptions::new("r1", NS);
    opts.create_namespace = !sc.existing_namespace;
    opts.nodes_per_pod = sc.nodes_per_pod;
    let objects = render::render(&loaded.plan, &opts).unwrap();
    let results = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        results_root: results.path().to_path_buf(),
        plan_name: "k8s-test".into(),
        plan_file: "testplans/k8s-test.yaml".into(),
        run_id: "r1".into(),
        groups: vec!["a".into(), "b".into()],
        keep: false,
        pending_timeout: sc.pending_timeout,
        coordinator_wait: sc.coordinator_wait,
        event_grace: Duration::ZERO,
        startup_timeout: Duration::from_secs(3600),
        deadline: Duration::from_secs(3600),
        poll: Duration::from_millis(5),
        keepalive: None,
        abort_grace: Duration::from_secs(3600),
        rewatch_delay: Duration::from_millis(5),
    };
    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    let say: Say = {
        let said = said.clone();
        Arc::new(move |l: String| said.lock().unwrap().push(l))
    };
    let (interrupt_tx, interrupt_rx) = watch::channel(0u32);
    let (service, mut handle) =
        tower_test::mock::pair::<Request<kube::client::Body>, Response<RespBody>>();
    let fake = Arc::new(Mutex::new(Fake {
        sc,
        requests: vec![],
        said: said.clone(),
        interrupt: interrupt_tx,
        watch_tx: None,
        event_tx: None,
        early_events: vec![],
        coordinator_pod: None,
        job_owners: vec![],
        rv: 0,
        status_calls: 0,
        aborted: false,
        results: tempfile::tempdir().unwrap(),
    }));
    let server = {
        let fake = fake.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let body = body.collect_bytes().await.unwrap_or_default();
                let resp = fake.lock().unwrap().handle(
                    &parts.method,
                    parts.uri.path(),
                    parts.uri.query().unwrap_or_default(),
                    &body,
                );
                send.send_response(resp);
            }
        })
    };
    let client = kube::Client::new(service, "default");
    let kube_run = KubeRun::new(client, objects, cfg, say);
    // A guard against a hang, not a timing assertion: every scenario ends on its own.
    let outcome = tokio::time::timeout(Duration::from_secs(120), kube_run.run(interrupt_rx))
        .await
        .expect("the run ended");
    server.abort();
    let requests = fake.lock().unwrap().requests.clone();
    let job_owners = fake.lock().unwrap().job_owners.clone();
    let said = said.lock().unwrap().clone();
    Ran {
        outcome,
        requests,
        job_owners,
        said,
        results,
    }
}

#[tokio::test]
async fn happy_path_creates_in_order_watches_fetches_and_deletes() {
    let r = run(Scenario::default()).await;
    assert_eq!(r.outcome.error, None, "{:#?}", r.said);
    assert_eq!(r.outcome.exit_code, 0);
    assert_eq!(r.outcome.record_status, Some(Status::Passed));
    assert!(r.outcome.problems.is_empty());
    // Creation order: namespace, the run's Secret, ConfigMap, Service, coordinator Job; then
    // the Secret, the ConfigMap and the Service become the coordinator Job's.
    let ns = r.pos("POST /api/v1/namespaces");
    let secret = r.pos("POST /api/v1/namespaces/testbed-r1/secrets");
    let cm = r.pos("POST /api/v1/namespaces/testbed-r1/configmaps");
    let svc = r.pos("POST /api/v1/namespaces/testbed-r1/services");
    let coordinator = r.pos(&format!("POST {JOBS} coordinator"));
    assert!(
        ns < secret && secret < cm && cm < svc && svc < coordinator,
        "{:#?}",
        r.requests
    );
    assert!(r.pos("PATCH /api/v1/namespaces/testbed-r1/secrets/run-secret") > coordinator);
    assert!(r.pos("PATCH /api/v1/namespaces/testbed-r1/configmaps/plan") > coordinator);
    assert!(r.pos("PATCH /api/v1/namespaces/testbed-r1/services/coordinator") > coordinator);
    // Then list + watch of pods and events, and only then the node Jobs (one per group),
    // owned by the coordinator Job.
    let list = r.pos(&format!("GET {PODS}"));
    let watch = r.pos(&format!("WATCH {PODS}"));
    assert!(r.has("WATCH /api/v1/namespaces/testbed-r1/events"));
    let first_job = r.pos(&format!("POST {JOBS} nodes-0-a"));
    assert!(
        coordinator < list && list < watch && watch < first_job,
        "{:#?}",
        r.requests
    );
    assert_eq!(r.count_prefix(&format!("POST {JOBS} nodes-")), 2);
    assert_eq!(
        r.job_owners,
        [
            ("coordinator".to_string(), None),
            (
                "nodes-0-a".to_string(),
                Some("uid-job-coordinator".to_string())
            ),
            (
                "nodes-1-b".to_string(),
                Some("uid-job-coordinator".to_string())
            ),
        ]
    );
    // Progress streamed: the coordinator's log and pod counts.
    assert!(r.has(&format!("FOLLOW {PODS}/coordinator-x/log")));
    assert!(
        r.said.iter().any(|l| l == "coordinator | run k8s-test/r1"),
        "{:#?}",
        r.said
    );
    assert!(
        r.said
            .iter()
            .any(|l| l.contains("5 of 5 seen; 5 Succeeded")),
        "{:#?}",
        r.said
    );
    // Results, then logs, then deletion of the namespace, last.
    let tar = r.pos(&format!("GET {PROXY}/results.tar"));
    let del = r.pos("DELETE /api/v1/namespaces/testbed-r1");
    assert_eq!(del, r.requests.len() - 1, "{:#?}", r.requests);
    assert!(tar < del);
    assert!(!r.has(&format!("POST {PROXY}/abort")));
    let dir = r.results.path().join("k8s-test/r1");
    let record = crate::record::store::read_record(&dir).unwrap();
    assert_eq!(record.runner, "k8s");
    // The report names the plan as given, not the pod's /plan/plan.yaml.
    assert_eq!(record.plan_file, "testplans/k8s-test.yaml");
    assert_eq!(
        record.sections.kubernetes.as_ref().unwrap().namespace,
        "testbed-r1"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("logs/node-0004.log")).unwrap(),
        "log of nodes-1-b-1-x\n"
    );
    assert!(dir.join("logs/coordinator.log").exists());
    assert!(dir.join("report.md").exists());
}

#[tokio::test]
async fn oom_killed_and_image_pull_are_reported_per_node_and_stop_the_run() {
    let r = run(Scenario {
        fates: BTreeMap::from([(1, Fate::OomKilled), (4, Fate::ImagePull)]),
        ..Default::default()
    })
    .await;
    let problems: Vec<(Role, Option<&str>, &str)> = r
        .outcome
        .problems
        .iter()
        .map(|p| (p.role.clone(), p.group.as_deref(), p.problem.reason()))
        .collect();
    assert!(
        problems.contains(&(
            Role::Node {
                index: 1,
                count: 1,
                group_index: 0
            },
            Some("a"),
            "OOMKilled"
        )),
        "{problems:?}"
    );
    assert!(
        problems.contains(&(
            Role::Node {
                index: 4,
                count: 1,
                group_index: 1
            },
            Some("b"),
            "ImagePullBackOff"
        )),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    // Reported as they happened, with the pod and the reason.
    assert!(
        r.said
            .iter()
            .any(|l| l.starts_with("FAILED node 1 (group a, pod nodes-0-a-1-x): OOMKilled")),
        "{:#?}",
        r.said
    );
    assert!(
        r.said
            .iter()
            .any(|l| l.starts_with("FAILED node 4 (group b, pod nodes-1-b-1-x): ImagePullBackOff"))
    );
    // The image problem keeps node 4 from ever starting: the run is stopped at once,
    // partial results are fetched, and everything is deleted.
    let abort = r.pos(&format!("POST {PROXY}/abort"));
    let tar = r.pos(&format!("GET {PROXY}/results.tar"));
    let del = r.pos("DELETE /api/v1/namespaces/testbed-r1");
    assert!(abort < tar && tar < del);
    assert_eq!(r.outcome.record_status, Some(Status::NodeFailed));
    assert_eq!(r.outcome.exit_code, Status::NodeFailed.exit_code());
    let record = crate::record::store::read_record(&r.results.path().join("k8s-test/r1")).unwrap();
    assert!(
        record.nodes[1]
            .failure
            .as_deref()
            .unwrap()
            .contains("OOMKilled")
    );
    assert!(
        record.nodes[4]
            .failure
            .as_deref()
            .unwrap()
            .contains("ImagePullBackOff")
    );
    assert!(
        record
            .outcome
            .reasons
            .iter()
            .any(|r| r.starts_with("node 1 (group a"))
    );
}

#[tokio::test]
async fn a_pod_pending_too_long_fails_its_node() {
    let r = run(Scenario {
        coordinator: Coordinator::ReadyAtOnce,
        fates: BTreeMap::from([(2, Fate::Unschedulable)]),
        pending_timeout: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let p = r.outcome.problems.iter().find(|p| {
        p.role
            == Role::Node {
                index: 2,
                count: 1,
                group_index: 0,
            }
    });
    let p = p.unwrap_or_else(|| panic!("{:#?}", r.outcome.problems));
    assert_eq!(p.problem.reason(), "PendingTooLong");
    assert!(p.to_string().contains("Insufficient memory"), "{p}");
    assert!(r.has(&format!("POST {PROXY}/abort")));
    assert_eq!(
        r.requests.last().unwrap(),
        "DELETE /api/v1/namespaces/testbed-r1"
    );
}

#[tokio::test]
async fn a_coordinator_that_cannot_pull_its_image_fails_fast_and_is_cleaned_up() {
    let r = run(Scenario {
        coordinator: Coordinator::ImagePull,
        ..Default::default()
    })
    .await;
    let err = r.outcome.error.clone().unwrap();
    assert!(
        err.contains("the coordinator cannot run: ErrImagePull"),
        "{err}"
    );
    assert_eq!(r.outcome.problems[0].role, Role::Coordinator);
    assert!(
        !r.has(&format!("POST {JOBS}")),
        "no node is started without a coordinator"
    );
    assert_eq!(
        r.requests.last().unwrap(),
        "DELETE /api/v1/namespaces/testbed-r1"
    );
    assert_eq!(r.outcome.exit_code, Status::Error.exit_code());
}

#[tokio::test]
async fn an_api_error_while_creating_cleans_up_and_says_what_to_do() {
    let r = run(Scenario {
        forbid_jobs: true,
        ..Default::default()
    })
    .await;
    let err = r.outcome.error.clone().unwrap();
    assert!(
        err.contains("creating Job nodes-0-a") && err.contains("forbidden"),
        "{err}"
    );
    assert!(err.contains("manifests/rbac.yaml"), "{err}");
    assert_eq!(
        r.requests.last().unwrap(),
        "DELETE /api/v1/namespaces/testbed-r1"
    );
    assert_eq!(r.outcome.exit_code, Status::Error.exit_code());
}

#[tokio::test]
async fn ctrl_c_before_the_coordinator_is_ready_deletes_everything() {
    let r = run(Scenario {
        coordinator: Coordinator::NeverReady,
        interrupt_on_watch: true,
        ..Default::default()
    })
    .await;
    assert!(r.outcome.interrupted);
    assert_eq!(r.outcome.exit_code, 130);
    assert!(!r.has(&format!("POST {JOBS}")));
    assert!(
        !r.has(&format!("POST {PROXY}/abort")),
        "nothing runs yet: nothing to abort"
    );
    assert_eq!(
        r.requests.last().unwrap(),
        "DELETE /api/v1/namespaces/testbed-r1"
    );
}

#[tokio::test]
async fn ctrl_c_during_the_run_aborts_collects_partial_results_and_deletes() {
    let r = run(Scenario {
        // Node 0 never finishes, so the run is still going at the second status call.
        fates: BTreeMap::from([(0, Fate::Unschedulable)]),
        interrupt_on_status: Some(2),
        ..Default::default()
    })
    .await;
    assert!(r.outcome.interrupted);
    let abort = r.pos(&format!("POST {PROXY}/abort"));
    let tar = r.pos(&format!("GET {PROXY}/results.tar"));
    let del = r.pos("DELETE /api/v1/namespaces/testbed-r1");
    assert!(abort < tar && tar < del);
    assert_eq!(r.outcome.record_status, Some(Status::Interrupted));
    assert_eq!(r.outcome.exit_code, 130);
    assert!(
        r.said
            .iter()
            .any(|l| l.contains("stopping the run: interrupted"))
    );
}

#[tokio::test]
async fn in_an_existing_namespace_each_created_object_is_deleted_and_nothing_else() {
    let r = run(Scenario {
        existing_namespace: true,
        ..Default::default()
    })
    .await;
    assert_eq!(r.outcome.exit_code, 0, "{:#?}", r.said);
    assert!(!r.has("POST /api/v1/namespaces"));
    assert!(!r.has("DELETE /api/v1/namespaces/testbed-r1"));
    let deletes: Vec<&str> = r
        .requests
        .iter()
        .filter(|x| x.starts_with("DELETE"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        deletes,
        [
            "DELETE /apis/batch/v1/namespaces/testbed-r1/jobs/nodes-1-b",
            "DELETE /apis/batch/v1/namespaces/testbed-r1/jobs/nodes-0-a",
            "DELETE /apis/batch/v1/namespaces/testbed-r1/jobs/coordinator",
            "DELETE /api/v1/namespaces/testbed-r1/services/coordinator",
            "DELETE /api/v1/namespaces/testbed-r1/configmaps/plan",
            "DELETE /api/v1/namespaces/testbed-r1/secrets/run-secret",
        ]
    );
}

#[tokio::test]
async fn a_namespace_that_already_exists_is_refused_and_left_alone() {
    let r = run(Scenario {
        namespace_exists: true,
        ..Default::default()
    })
    .await;
    let err = r.outcome.error.clone().unwrap();
    assert!(
        err.contains("already exists") && err.contains("--existing-namespace"),
        "{err}"
    );
    assert_eq!(
        r.requests,
        ["GET /api/v1/namespaces", "POST /api/v1/namespaces"],
        "nothing else (a look for stale namespaces, the attempt), and above all no DELETE"
    );
}

#[tokio::test]
async fn a_namespace_the_account_may_not_create_names_the_existing_namespace_route() {
    let r = run(Scenario {
        forbid_namespaces: true,
        ..Default::default()
    })
    .await;
    let err = r.outcome.error.clone().unwrap();
    assert!(
        err.contains("forbidden")
            && err.contains("--namespace NS --existing-namespace")
            && err.contains("manifests/rbac.yaml"),
        "{err}"
    );
    assert!(!r.has("DELETE /api/v1/namespaces/testbed-r1"));
}

#[tokio::test]
async fn a_pod_whose_sandbox_cannot_be_created_is_named_with_the_event_reason() {
    let r = run(Scenario {
        fates: BTreeMap::from([(3, Fate::SandboxFails)]),
        ..Default::default()
    })
    .await;
    let p = r
        .outcome
        .problems
        .iter()
        .find(|p| p.problem.reason() == "FailedCreatePodSandBox")
        .unwrap_or_else(|| panic!("{:#?}", r.said));
    assert_eq!(
        p.role,
        Role::Node {
            index: 3,
            count: 1,
            group_index: 1
        }
    );
    assert!(
        r.said.iter().any(|l| l.starts_with(
            "FAILED node 3 (group b, pod nodes-1-b-0-x): FailedCreatePodSandBox: Failed to create pod sandbox"
        )),
        "{:#?}",
        r.said
    );
    // It can never start: the run is stopped at once, saying why.
    assert!(r.has(&format!("POST {PROXY}/abort")));
    assert_eq!(r.outcome.record_status, Some(Status::NodeFailed));
}

#[tokio::test]
async fn cluster_dns_that_does_not_answer_is_named_as_such() {
    let r = run(Scenario {
        fates: BTreeMap::from([(0, Fate::NoDns)]),
        ..Default::default()
    })
    .await;
    let p = &r.outcome.problems[0];
    assert_eq!(p.problem.reason(), "ClusterDNS");
    let text = p.to_string();
    assert!(
        text.contains("cluster DNS does not work")
            && text.contains("not even kubernetes.default.svc resolves"),
        "{text}"
    );
    assert!(r.has(&format!("POST {PROXY}/abort")));
}

#[tokio::test]
async fn pending_node_pods_are_named_before_the_coordinator_stops_waiting() {
    let r = run(Scenario {
        fates: BTreeMap::from([(1, Fate::Unschedulable)]),
        // The pending timeout alone would never fire; the coordinator's wait comes first.
        pending_timeout: Duration::from_secs(3600),
        coordinator_wait: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let p = r
        .outcome
        .problems
        .iter()
        .find(|p| p.problem.reason() == "PendingTooLong")
        .unwrap_or_else(|| panic!("{:#?}", r.said));
    let text = p.to_string();
    assert!(
        text.contains("Insufficient memory") && text.contains("the coordinator stops waiting"),
        "{text}"
    );
    assert!(r.has(&format!("POST {PROXY}/abort")));
}

#[tokio::test]
async fn several_nodes_per_pod_fail_and_log_together() {
    let r = run(Scenario {
        nodes_per_pod: 2,
        fates: BTreeMap::from([(0, Fate::OomKilled)]),
        ..Default::default()
    })
    .await;
    // Group a (3 nodes) in 2 pods, group b (2 nodes) in 1.
    let pods: Vec<&String> = r
        .requests
        .iter()
        .filter(|q| q.starts_with("POST /apis"))
        .collect();
    assert_eq!(pods.len(), 3, "{pods:?}");
    let p = &r.outcome.problems[0];
    assert_eq!(
        p.role,
        Role::Node {
            index: 0,
            count: 2,
            group_index: 0
        }
    );
    assert!(
        r.said
            .iter()
            .any(|l| l.starts_with("FAILED nodes 0-1 (group a, pod nodes-0-a-0-x): OOMKilled")),
        "{:#?}",
        r.said
    );
    let record = crate::record::store::read_record(&r.results.path().join("k8s-test/r1")).unwrap();
    for i in [0, 1] {
        assert!(
            record.nodes[i]
                .failure
                .as_deref()
                .unwrap()
                .contains("OOMKilled"),
            "node {i}"
        );
    }
    assert!(record.nodes[2].failure.is_none());
}

#[test]
fn a_pod_log_of_several_nodes_is_split_by_node() {
    let role = Role::Node {
        index: 4,
        count: 2,
        group_index: 1,
    };
    let log = "nodes 4..5: coordinator resolved after 0 s; starting 2 pubsub-node processes\n\
               node 4 | hello\n\
               node 5 | panic: boom\n\
               node 5 | exited with code 101\n";
    let files: BTreeMap<String, String> = split_node_log(&role, log).into_iter().collect();
    assert_eq!(
        files["node-0004.log"],
        "nodes 4..5: coordinator resolved after 0 s; starting 2 pubsub-node processes\nhello\n"
    );
    assert!(files["node-0005.log"].ends_with("panic: boom\nexited with code 101\n"));
    let single = Role::Node {
        index: 7,
        count: 1,
        group_index: 0,
    };
    assert_eq!(
        split_node_log(&single, "x\n"),
        [("node-0007.log".to_string(), "x\n".to_string())]
    );
}
