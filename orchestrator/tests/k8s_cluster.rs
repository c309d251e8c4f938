//! `orchestrator k8s run` on a real cluster: the cluster of `KUBECONFIG` (in CI and for
//! developers, `scripts/local-cluster.sh up`, which also imports the image
//! `pubsub-testbed:dev` built from this build's release binaries).
//!
//! Without `KUBECONFIG`, or when its cluster does not answer, every test here says SKIPPED
//! and passes, except under CI (`CI` set), where that is a failure: `.ci/run` brings the
//! cluster up and these tests must run.
//!
//! The tests share one cluster, so they take turns (one lock). Nothing here measures time:
//! where a test waits for the cluster (a namespace to go away) it is a bound, not an
//! assertion; what the tests assert is what the launcher said, its exit code, the results
//! folder and what is left on the cluster.
#![cfg(feature = "k8s")]

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Pod, PodDNSConfig, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use orchestrator::k8s::render::{self, RenderOptions};
use orchestrator::k8s::run::{KubeRun, RunConfig, Say};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::workspace;

/// One test at a time on the cluster (an async lock: it is held across the whole test).
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cluster, or `None` after saying why the test is skipped (a panic under CI).
async fn cluster() -> Option<Client> {
    let skip = |why: String| {
        if std::env::var_os("CI").is_some() {
            panic!(
                "no Kubernetes cluster for the end-to-end tests under CI: {why} (.ci/run starts one with scripts/local-cluster.sh up)"
            );
        }
        eprintln!(
            "SKIPPED: {why}; start a cluster with `scripts/local-cluster.sh up` and export the KUBECONFIG it prints"
        );
        None
    };
    if std::env::var_os("KUBECONFIG").is_none() {
        return skip("KUBECONFIG is not set".into());
    }
    let client = match Client::try_default().await {
        Ok(c) => c,
        Err(e) => return skip(format!("KUBECONFIG gives no client: {e}")),
    };
    match tokio::time::timeout(Duration::from_secs(15), client.apiserver_version()).await {
        Ok(Ok(_)) => Some(client),
        Ok(Err(e)) => skip(format!("the cluster of KUBECONFIG does not answer: {e}")),
        Err(_) => skip("the cluster of KUBECONFIG does not answer within 15 s".into()),
    }
}

async fn lock() -> tokio::sync::MutexGuard<'static, ()> {
    CLUSTER.lock().await
}

/// A run id no earlier run used (the namespace is `testbed-<run id>`).
fn run_id(tag: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("e2e-{tag}-{}", t.as_millis() % 100_000_000)
}

/// `orchestrator k8s run …` as a child process, its output collected line by line.
struct Launcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    started: Instant,
}

impl Launcher {
    fn start(args: &[&str], kubeconfig: Option<&Path>) -> Launcher {
        let mut cmd = Command::new(support::orchestrator_bin());
        cmd.arg("k8s")
            .arg("run")
            .args(args)
            .current_dir(workspace())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(k) = kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        let mut child = cmd.spawn().expect("start orchestrator k8s run");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers = [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ]
        .into_iter()
        .map(|pipe| {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    eprintln!("  | {line}");
                    lines.lock().unwrap().push(line);
                }
            })
        })
        .collect();
        Launcher {
            child,
            lines,
            readers,
            started: Instant::now(),
        }
    }

    fn said(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Waits (bounded) until the launcher said `needle`.
    fn wait_for_line(&mut self, needle: &str, bound: Duration) {
        let until = Instant::now() + bound;
        while !self.said(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the launcher ended ({status}) before saying `{needle}`");
            }
            assert!(Instant::now() < until, "the launcher never said `{needle}`");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a plain kill(2) of our own child.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.child.id());
    }

    /// Waits for the end (bounded: the plan's own timeout and the launcher's deadlines end
    /// it long before); returns its exit status and everything it said.
    fn finish(mut self) -> (ExitStatus, String) {
        let until = Instant::now() + Duration::from_secs(600);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                panic!("the launcher did not end within 10 minutes");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        eprintln!(
            "  (the launcher ended with {status} after {:.1} s)",
            self.started.elapsed().as_secs_f64()
        );
        let text = self.lines.lock().unwrap().join("\n");
        (status, text)
    }
}

/// Waits (bounded) until namespace `ns` no longer exists.
async fn namespace_gone(client: &Client, ns: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let until = Instant::now() + Duration::from_secs(300);
    while api.get_opt(ns).await.unwrap().is_some() {
        assert!(
            Instant::now() < until,
            "namespace {ns} still exists 5 minutes after the run"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits (bounded) until nothing of run `run_id` is left in namespace `ns`: no pod, Job,
/// Service or ConfigMap it made.
async fn run_objects_gone(client: &Client, ns: &str, run_id: &str, bound: Duration) {
    let lp = ListParams::default().labels(&render::run_selector(run_id));
    let until = Instant::now() + bound;
    loop {
        let mut left = Vec::new();
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        left.extend(
            pods.list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .map(|o| format!("pod {}", o.name_any())),
        );
        let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
        left.extend(
            jobs.list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .map(|o| format!("job {}", o.name_any())),
        );
        let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
        left.extend(
            svcs.list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .map(|o| format!("service {}", o.name_any())),
        );
        // The plan's ConfigMap carries the run's labels too.
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        left.extend(
            cms.list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .map(|o| format!("configmap {}", o.name_any())),
        );
        // So does the run's Secret.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        left.extend(
            secrets
                .list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .map(|o| format!("secret {}", o.name_any())),
        );
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "left in {ns} after the run: {left:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn results_dir(root: &Path, plan: &str, run_id: &str) -> PathBuf {
    root.join(plan).join(run_id)
}

fn record(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn smoke_passes_with_results_logs_and_nothing_left_behind() {
    let _turn = lock().await;
    let Some(client) = cluster().await else {
        return;
    };
    let id = run_id("smoke");
    let out = tempfile::tempdir().unwrap();
    let started = std::time::SystemTime::now();
    let launcher = Launcher::start(
        &[
            "testplans/k8s-smoke.yaml",
            "--run-id",
            &id,
            "--results",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    let (status, said) = launcher.finish();
    assert_eq!(status.code(), Some(0), "{said}");
    assert!(said.contains("Passed (exit code 0)"), "{said}");
    // Clean output: no loopback metrics URL of the pod, no empty progress tail, one hint.
    assert!(!said.contains("http://127.0.0.1"), "{said}");
    assert!(
        !said.contains("seen; \n") && !said.ends_with("seen; "),
        "{said}"
    );
    let dir = results_dir(out.path(), "k8s-smoke", &id);
    let rec = record(&dir);
    assert_eq!(rec["outcome"]["status"], "passed", "{rec:#}");
    assert_eq!(rec["summary"]["delivery_ratio"], 1.0);
    assert_eq!(rec["runner"], "k8s");
    assert_eq!(rec["plan_file"], "testplans/k8s-smoke.yaml");
    assert_eq!(
        rec["sections"]["kubernetes"]["namespace"],
        format!("testbed-{id}")
    );
    // Every node's log says at least when it started; results keep their own times.
    for i in 0..10 {
        let log = std::fs::read_to_string(dir.join(format!("logs/node-{i:04}.log"))).unwrap();
        assert!(log.contains("starting pubsub-node"), "node {i}: {log:?}");
    }
    assert!(
        !std::fs::read_to_string(dir.join("logs/coordinator.log"))
            .unwrap()
            .is_empty()
    );
    let mtime = std::fs::metadata(dir.join("run.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(
        mtime + Duration::from_secs(3600) > started,
        "run.json is dated {mtime:?}, before the run"
    );
    namespace_gone(&client, &format!("testbed-{id}")).await;
}

#[tokio::test]
async fn several_nodes_per_pod_pass() {
    let _turn = lock().await;
    let Some(client) = cluster().await else {
        return;
    };
    let id = run_id("packed");
    let out = tempfile::tempdir().unwrap();
    let launcher = Launcher::start(
        &[
            "testplans/k8s-smoke.yaml",
            "--run-id",
            &id,
            "--nodes-per-pod",
            "4",
            "--results",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    let (status, said) = launcher.finish();
    assert_eq!(status.code(), Some(0), "{said}");
    // 4 publishers and 6 listeners: 1 + 2 pods.
    assert!(said.contains("for 10 node(s) in 3 pod(s)"), "{said}");
    let dir = results_dir(out.path(), "k8s-smoke", &id);
    assert_eq!(record(&dir)["summary"]["delivery_ratio"], 1.0);
    for i in 0..10 {
        assert!(
            dir.join(format!("logs/node-{i:04}.log")).exists(),
            "node {i}"
        );
    }
    namespace_gone(&client, &format!("testbed-{id}")).await;
}

#[tokio::test]
async fn a_bad_image_fails_fast_with_a_clear_message() {
    let _turn = lock().await;
    let Some(client) = cluster().await else {
        return;
    };
    let id = run_id("badimage");
    let out = tempfile::tempdir().unwrap();
    // A registry on this machine's port 1: the pull fails at once, nothing leaves the machine.
    let launcher = Launcher::start(
        &[
            "testplans/k8s-smoke.yaml",
            "--run-id",
            &id,
            "--image",
            "localhost:1/pubsub-testbed:missing",
            "--results",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    let (status, said) = launcher.finish();
    assert_eq!(status.code(), Some(4), "{said}");
    assert!(
        said.contains("FAILED the coordinator")
            && (said.contains("ErrImagePull") || said.contains("ImagePullBackOff")),
        "{said}"
    );
    assert!(said.contains("check the image name"), "{said}");
    assert!(
        !said.contains("created 2 Job(s)"),
        "no node is started without a coordinator"
    );
    namespace_gone(&client, &format!("testbed-{id}")).await;
}

#[tokio::test]
async fn a_pod_that_cannot_be_created_is_named_with_the_event_reason() {
    let _turn = lock().await;
    let Some(client) = cluster().await else {
        return;
    };
    let id = run_id("nosandbox");
    let out = tempfile::tempdir().unwrap();
    // The listeners' memory limit is too small for the pod's sandbox to start.
    let text = std::fs::read_to_string(workspace().join("testplans/k8s-smoke.yaml")).unwrap();
    let text = text.replace(
        "      memory_request: 16Mi\n      memory_limit: 64Mi",
        "      memory_request: 2Mi\n      memory_limit: 2Mi",
    );
    assert!(text.contains("memory_limit: 2Mi"));
    let plan = out.path().join("k8s-smoke.yaml");
    std::fs::write(&plan, text).unwrap();
    let launcher = Launcher::start(
        &[
            plan.to_str().unwrap(),
            "--run-id",
            &id,
            "--results",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    let (status, said) = launcher.finish();
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(
        said.lines().any(|l| l.starts_with("FAILED node ")
            && l.contains("(group listeners, pod nodes-1-listeners-")
            && l.contains("FailedCreatePodSandBox")),
        "{said}"
    );
    // The launcher's diagnosis stopped the run, not the coordinator's startup timeout.
    assert!(said.contains("stopping the run: node "), "{said}");
    assert!(
        !said.contains("did not connect to the control channel in time"),
        "{said}"
    );
    let rec = record(&results_dir(out.path(), "k8s-smoke", &id));
    assert_eq!(rec["outcome"]["status"], "node_failed");
    namespace_gone(&client, &format!("testbed-{id}")).await;
}

#[tokio::test]
async fn ctrl_c_once_stops_the_run_and_keeps_partial_results() {
    let _turn = lock().await;
    let Some(client) = cluster().await else {
        return;
    };
    let id = run_id("sigint1");
    let out = tempfile::tempdir().unwrap();
    let mut launcher = Launcher::start(
        &[
            "testplans/k8s-smoke.yaml",
            "--run-id",
            &id,
            "--set",
            "messages=3000",
            "--results",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    launcher.wait_for_line("coordinator |   subscribe", Duration::from_secs(180));
    launcher.signal(libc::SIGINT);
    let (status, said) = launcher.finish();
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("stopping the run: interrupted"), "{said}");
    assert_eq!(said.matches("Ctrl-C again").count(), 1, "one hint: {said}");
    let rec = record(&results_dir(out.path(), "k8s-smoke", &id));
    assert_eq!(rec["outcome"]["status"], "interrupted");
    assert!(
        said.contains(&format!("deleted namespace testbed-{id}")),
        "{said}"
    );
    namespace_gone(&client, &format!("testbed-{id}")).await;
}

#[tokio::test]
async fn ctrl_c_twice_stops_waiting_and_still_deletes() {
    let _turn = lock().await;
    let Some(client) = cluster().await else {
        return;
    };
    let id = run_id("sigint2");
    let out = tempfile::tempdir().unwrap();
    let mut launcher = Launcher::start(
        &[
            "testplans/k8s-smoke.yaml",
            "--run-id",
            &id,
            "--set",
            "messages=3000",
            "--results",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    launcher.wait_for_line("coordinator |   subscribe", Duration::from_secs(180));
    launcher.signal(libc::SIGINT);
    launcher.wait_for_line("interrupted: stopping the run", Duration::from_secs(30));
    launcher.signal(libc::SIGINT);
    let (status, said) = launcher.finish();
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(
        said.contains("interrupted again: deleting what was created"),
        "{said}"
    );
    assert!(
        said.contains(&format!("deleted namespace testbed-{id}")),
        "{said}"
    );
    namespace_gone(&client, &format!("testbed-{id}")).await;
}

/// manifests/rbac.yaml, applied as the cluster's admin; returns the ServiceAccount's
/// namespace.
async fn apply_rbac(client: &Client) -> String {
    let text = std::fs::read_to_string(workspace().join("manifests/rbac.yaml")).unwrap();
    let pp = PostParams::default();
    let mut ns_name = String::new();
    for doc in serde_saphyr::from_multiple::<Value>(&text).unwrap() {
        if doc.is_null() {
            continue;
        }
        let ns = doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let r = match doc["kind"].as_str().unwrap() {
            "Namespace" => {
                ns_name = doc["metadata"]["name"].as_str().unwrap().to_string();
                Api::<Namespace>::all(client.clone())
                    .create(&pp, &serde_json::from_value(doc).unwrap())
                    .await
                    .map(|_| ())
            }
            "ServiceAccount" => Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                .create(&pp, &serde_json::from_value(doc).unwrap())
                .await
                .map(|_| ()),
            "Role" => Api::<Role>::namespaced(client.clone(), &ns)
                .create(&pp, &serde_json::from_value(doc).unwrap())
                .await
                .map(|_| ()),
            "RoleBinding" => Api::<RoleBinding>::namespaced(client.clone(), &ns)
                .create(&pp, &serde_json::from_value(doc).unwrap())
                .await
                .map(|_| ()),
            other => panic!("unexpected kind {other} in manifests/rbac.yaml"),
        };
        match r {
            Ok(()) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("applying manifests/rbac.yaml: {e}"),
        }
    }
    ns_name
}

/// A kubeconfig that speaks as the launcher ServiceAccount (a TokenRequest token), to the
/// same server as the admin's.
async fn service_account_kubeconfig(client: &Client, ns: &str, dir: &Path) -> PathBuf {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    // The account is created by the line before; its controller may need a moment.
    let mut token = None;
    for _ in 0..50 {
        match accounts
            .create_token_request("testbed-launcher", &PostParams::default(), &request)
            .await
        {
            Ok(t) => {
                token = t.status.map(|s| s.token);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let token = token.expect("a token for the testbed-launcher ServiceAccount");
    let admin = kube::config::Kubeconfig::read().unwrap();
    let context = admin.current_context.clone().unwrap();
    let ctx = admin
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.clone())
        .unwrap();
    let cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.clone())
        .unwrap();
    let ca = match (
        &cluster.certificate_authority,
        &cluster.certificate_authority_data,
    ) {
        (Some(path), _) => format!("certificate-authority: {path}"),
        (None, Some(data)) => format!("certificate-authority-data: {data}"),
        (None, None) => "insecure-skip-tls-verify: true".into(),
    };
    let path = dir.join("launcher.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    {ca}\n\
             users:\n- name: launcher\n  user:\n    token: {token}\n\
             contexts:\n- name: launcher\n  context: {{cluster: c, user: launcher, namespace: {ns}}}\n\
             current-context: launcher\n",
            cluster.server.unwrap()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn the_rbac_service_account_runs_in_an_existing_namespace_and_leaves_nothing() {
    let _turn = lock().await;
    let Some(client) = cluster().await else {
        return;
    };
    let ns = apply_rbac(&client).await;
    let out = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(&client, &ns, out.path()).await;

    // Without --existing-namespace the account may not create a namespace: the message says
    // what to do instead.
    let id = run_id("rbac-ns");
    let (status, said) = Launcher::start(
        &[
            "testplans/k8s-smoke.yaml",
            "--run-id",
            &id,
            "--results",
            out.path().to_str().unwrap(),
        ],
        Some(&kubeconfig),
    )
    .finish();
    assert_eq!(status.code(), Some(4), "{said}");
    assert!(
        said.contains("forbidden") && said.contains("--namespace NS --existing-namespace"),
        "{said}"
    );

    let id = run_id("rbac");
    let (status, said) = Launcher::start(
        &[
            "testplans/k8s-smoke.yaml",
            "--run-id",
            &id,
            "--namespace",
            &ns,
            "--existing-namespace",
            "--results",
            out.path().to_str().unwrap(),
        ],
        Some(&kubeconfig),
    )
    .finish();
    assert_eq!(status.code(), Some(0), "{said}");
    assert!(
        !said.contains("warning:"),
        "the Role is enough for everything: {said}"
    );
    assert!(
        said.contains(&format!("deleted 6 object(s) from namespace {ns}")),
        "{said}"
    );
    run_objects_gone(&client, &ns, &id, Duration::from_secs(120)).await;
    // The namespace itself was not the run's to delete.
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&ns)
            .await
            .unwrap()
            .is_some()
    );
    Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::background())
        .await
        .unwrap();
    namespace_gone(&client, &ns).await;
}

/// Cluster DNS that does not answer, for this run's node pods only (their pods' resolver
/// points at their own loopback, where nothing listens), so no other test is disturbed.
#[tokio::test]
async fn cluster_dns_that_does_not_answer_is_named_as_such() {
    let _turn = lock().await;
    let Some(client) = cluster().await else {
        return;
    };
    let id = run_id("nodns");
    let ns = format!("testbed-{id}");
    let out = tempfile::tempdir().unwrap();
    let loaded = orchestrator::plan::load(
        &workspace().join("testplans/k8s-smoke.yaml"),
        &BTreeMap::from([
            ("publishers".to_string(), Value::from(1)),
            ("listeners".to_string(), Value::from(2)),
        ]),
    )
    .unwrap();
    let mut objects = render::render(&loaded.plan, &RenderOptions::new(&id, &ns)).unwrap();
    for job in &mut objects.jobs {
        let pod = job.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        pod.dns_policy = Some("None".into());
        pod.dns_config = Some(PodDNSConfig {
            nameservers: Some(vec!["127.0.0.1".into()]),
            searches: Some(vec![
                format!("{ns}.svc.cluster.local"),
                "svc.cluster.local".into(),
            ]),
            ..Default::default()
        });
    }
    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    let say: Say = {
        let said = said.clone();
        Arc::new(move |l: String| {
            eprintln!("  | {l}");
            said.lock().unwrap().push(l)
        })
    };
    let cfg = RunConfig {
        results_root: out.path().to_path_buf(),
        plan_name: loaded.plan.name.clone(),
        plan_file: "testplans/k8s-smoke.yaml".into(),
        run_id: id.clone(),
        groups: loaded.plan.groups.iter().map(|g| g.id.clone()).collect(),
        keep: false,
        pending_timeout: Duration::from_secs(300),
        coordinator_wait: orchestrator::workload::handshake_wait(3),
        event_grace: Duration::from_secs(3),
        startup_timeout: Duration::from_secs(300),
        deadline: loaded.plan.timeout + render::STARTUP_ALLOWANCE,
        poll: Duration::from_secs(2),
        keepalive: None,
        abort_grace: Duration::from_secs(60),
        rewatch_delay: Duration::from_secs(1),
    };
    let (_tx, rx) = tokio::sync::watch::channel(0u32);
    let outcome = KubeRun::new(client.clone(), objects, cfg, say)
        .run(rx)
        .await;
    let said = said.lock().unwrap().join("\n");
    assert_eq!(outcome.exit_code, 2, "{said}");
    let dns: Vec<_> = outcome
        .problems
        .iter()
        .filter(|p| p.problem.reason() == "ClusterDNS")
        .collect();
    assert!(!dns.is_empty(), "{said}");
    let text = dns[0].to_string();
    assert!(
        text.contains("cluster DNS does not work")
            && text.contains("not even kubernetes.default.svc resolves (nameserver 127.0.0.1)"),
        "{text}"
    );
    assert!(
        !said.contains("did not connect to the control channel in time"),
        "{said}"
    );
    // The node's own log says what it waited for, every few seconds.
    let log = std::fs::read_to_string(
        out.path()
            .join("k8s-smoke")
            .join(&id)
            .join("logs/node-0000.log"),
    )
    .unwrap();
    assert!(
        log.contains(
            "waiting 5 s for the name coordinator to resolve: cluster DNS does not answer"
        ),
        "{log}"
    );
    namespace_gone(&client, &ns).await;
}

/// The launcher is killed (SIGKILL: no cleanup of its own). The coordinator notices that
/// nobody asks it anything any more, stops the run and exits; its Job is deleted by its TTL
/// and with it, through ownerReferences, every object of the run. Only the empty namespace
/// stays (the next run's sweep deletes it once it is old enough).
#[tokio::test]
async fn a_lost_launcher_leaves_nothing_running_behind() {
    let _turn = lock().await;
    let Some(client) = cluster().await else {
        return;
    };
    let id = run_id("lost");
    let ns = format!("testbed-{id}");
    let out = tempfile::tempdir().unwrap();
    let mut launcher = Launcher::start(
        &[
            "testplans/k8s-smoke.yaml",
            "--run-id",
            &id,
            "--set",
            "messages=100000",
            "--results",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    launcher.wait_for_line("coordinator |   subscribe", Duration::from_secs(180));
    launcher.signal(libc::SIGKILL);
    let (status, _) = launcher.finish();
    assert_eq!(status.code(), None, "killed");
    let lost = Instant::now();
    // Bound: the lease (60 s), the coordinator's partial results, the TTL (60 s), the
    // garbage collector.
    run_objects_gone(&client, &ns, &id, Duration::from_secs(360)).await;
    eprintln!(
        "  (everything of the run was gone {:.0} s after its launcher was killed)",
        lost.elapsed().as_secs_f64()
    );
    let left = Api::<Namespace>::all(client.clone())
        .get_opt(&ns)
        .await
        .unwrap();
    assert!(
        left.is_some(),
        "the namespace is not the coordinator's to delete"
    );
    Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::background())
        .await
        .unwrap();
    namespace_gone(&client, &ns).await;
}
