//! Kubernetes up to the API boundary, fast and without a cluster: every testplan renders into
//! objects that are valid `k8s-openapi` types with valid names; the checked-in manifests and
//! the Helm chart agree with the renderer; and a whole run works with the rendered
//! coordinator command and the rendered node shell line, as local processes standing in for
//! pods. The kube runner's API calls are tested in `src/k8s/run_tests.rs`; the same on a real
//! cluster in `k8s_cluster.rs`.
#![cfg(feature = "k8s")]

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use orchestrator::k8s::names::{is_dns_label, is_label_value};
use orchestrator::k8s::render::{self, Objects, RenderError, RenderOptions};
use orchestrator::k8s::results::{RunState, untar};
use orchestrator::plan;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::workspace;
use testbed_contract::plan::{Implementation, Network};

fn testplans() -> Vec<PathBuf> {
    let mut plans: Vec<PathBuf> = std::fs::read_dir(workspace().join("testplans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    plans.sort();
    assert!(!plans.is_empty());
    plans
}

fn load(path: &Path) -> plan::LoadedPlan {
    plan::load(path, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

/// Parses multi-document YAML into JSON values (empty documents dropped).
fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap_or_else(|e| panic!("not YAML: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// Deserializes one document as the k8s-openapi type of its kind (unknown fields refused).
fn check_typed(doc: &Value) {
    fn strict<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) {
        let typed: T =
            serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc:#}"));
        // Nothing was dropped on the way: the typed object says all the document said.
        assert_eq!(&serde_json::to_value(&typed).unwrap(), doc);
    }
    match doc["kind"].as_str().unwrap() {
        "Namespace" => strict::<Namespace>(doc),
        "ConfigMap" => strict::<ConfigMap>(doc),
        "Service" => strict::<Service>(doc),
        "Pod" => strict::<Pod>(doc),
        "Job" => strict::<Job>(doc),
        other => panic!("unexpected kind {other}"),
    }
}

fn check_names(objects: &Objects, opts: &RenderOptions) {
    for (kind, name) in objects.kinds_and_names() {
        assert!(is_dns_label(&name), "{kind} {name}");
    }
    for job in &objects.jobs {
        let name = job.metadata.name.clone().unwrap();
        let spec = job.spec.as_ref().unwrap();
        let last = spec.completions.unwrap() - 1;
        // Indexed Job pods are named and host-named `<job>-<index>[-xxxxx]`.
        assert!(format!("{name}-{last}-xxxxx").len() <= 63, "{name}");
        for (k, v) in spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()
        {
            assert!(is_label_value(v), "label {k}={v}");
        }
    }
    assert!(is_dns_label(&opts.namespace));
}

#[test]
fn every_testplan_renders_into_valid_kubernetes_objects_or_a_clear_refusal() {
    let opts = RenderOptions::new("r1", "testbed-r1");
    let mut rendered = 0;
    for path in testplans() {
        let loaded = load(&path);
        match render::render(&loaded.plan, &opts) {
            Ok(objects) => {
                check_names(&objects, &opts);
                let yaml = objects.to_yaml().unwrap();
                let docs = docs(&yaml);
                assert_eq!(
                    docs.len(),
                    objects.kinds_and_names().len(),
                    "{}",
                    path.display()
                );
                for d in &docs {
                    check_typed(d);
                }
                // One Job per group, with the group's count and its offset.
                let mut offset = 0;
                for (g, job) in loaded.plan.groups.iter().zip(&objects.jobs) {
                    let spec = job.spec.as_ref().unwrap();
                    assert_eq!(spec.completions, Some(g.count as i32));
                    let env = spec.template.spec.as_ref().unwrap().containers[0]
                        .env
                        .clone()
                        .unwrap();
                    let off = env
                        .iter()
                        .find(|e| e.name == render::ENV_INDEX_OFFSET)
                        .unwrap();
                    assert_eq!(off.value.as_deref(), Some(offset.to_string().as_str()));
                    offset += g.count;
                }
                assert_eq!(offset, loaded.plan.node_count());
                // Deterministic.
                assert_eq!(
                    render::render(&loaded.plan, &opts)
                        .unwrap()
                        .to_yaml()
                        .unwrap(),
                    yaml
                );
                rendered += 1;
            }
            Err(RenderError::Network { .. }) => assert!(loaded.plan.network.is_some()),
            Err(e @ RenderError::Invalid { .. }) => {
                assert!(e.to_string().contains("runner"), "{}: {e}", path.display())
            }
            Err(RenderError::Implementation { .. }) => {
                assert!(
                    loaded
                        .plan
                        .groups
                        .iter()
                        .any(|g| g.implementation != Implementation::Rust)
                )
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    assert!(rendered > 0);
}

#[test]
fn the_resolved_plan_in_the_config_map_loads_back_to_the_same_plan() {
    for path in testplans() {
        let loaded = load(&path);
        if render::check_plan(&loaded.plan).is_err() {
            continue;
        }
        let text = render::resolved_plan_yaml(&loaded.plan).unwrap();
        let again = plan::load_text(Path::new("/plan/plan.yaml"), &text, &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
        let mut expected = loaded.plan.clone();
        expected.runner = testbed_contract::plan::RunnerKind::K8s;
        if expected.telemetry.metrics_listen.is_none() {
            expected.telemetry.metrics_listen = Some("off".into());
        }
        assert_eq!(again.plan, expected, "{}", path.display());
    }
}

#[test]
fn a_plan_with_network_emulation_is_refused_with_the_reason() {
    let mut p = load(&workspace().join("testplans/k8s-smoke.yaml")).plan;
    p.network = Some(Network::default());
    let err = render::render(&p, &RenderOptions::new("r1", "ns")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`network:`") && msg.contains("netns") && msg.contains("Remove"),
        "{msg}"
    );
}

#[test]
fn bad_names_quantities_and_implementations_are_refused() {
    let base = load(&workspace().join("testplans/k8s-smoke.yaml")).plan;
    let bad_ns = render::render(&base, &RenderOptions::new("r1", "Not_A_Label")).unwrap_err();
    assert!(
        matches!(
            bad_ns,
            RenderError::Name {
                what: "namespace",
                ..
            }
        ),
        "{bad_ns}"
    );
    let mut p = base.clone();
    p.groups[0].resources.memory_limit = Some("64MB".into());
    let e = render::render(&p, &RenderOptions::new("r1", "ns")).unwrap_err();
    assert!(
        e.to_string()
            .contains("memory_limit `64MB` of group `publishers`"),
        "{e}"
    );
    let mut p = base.clone();
    p.telemetry.traces = testbed_contract::plan::Traces::On;
    let e = render::render(&p, &RenderOptions::new("r1", "ns")).unwrap_err();
    assert!(e.to_string().contains("otlp_endpoint"), "{e}");
    p.telemetry.otlp_endpoint = Some("http://collector.observability:4318".into());
    assert!(render::render(&p, &RenderOptions::new("r1", "ns")).is_ok());
    let mut p = base;
    p.groups[1].implementation = Implementation::Go;
    let e = render::render(&p, &RenderOptions::new("r1", "ns")).unwrap_err();
    assert!(
        e.to_string().contains("group `listeners` uses the go node"),
        "{e}"
    );
}

/// manifests/k8s-smoke.yaml and the chart's sample plan are generated; they must not drift.
/// `UPDATE_K8S_MANIFESTS=1 cargo test -p orchestrator --features k8s --test k8s` rewrites them.
#[test]
fn checked_in_manifests_match_the_renderer() {
    let loaded = load(&workspace().join("testplans/k8s-smoke.yaml"));
    let header = "# Generated by `orchestrator k8s render testplans/k8s-smoke.yaml` (namespace pubsub-testbed,\n\
                  # run id manual, image pubsub-testbed:dev). Apply with `kubectl apply -f manifests/k8s-smoke.yaml`.\n\
                  # Regenerate: UPDATE_K8S_MANIFESTS=1 cargo test -p orchestrator --features k8s --test k8s\n";
    let manifests = format!(
        "{header}{}",
        render::render(
            &loaded.plan,
            &RenderOptions::new("manual", "pubsub-testbed")
        )
        .unwrap()
        .to_yaml()
        .unwrap()
    );
    let chart_plan = render::resolved_plan_yaml(&loaded.plan).unwrap();
    let files = [
        (workspace().join("manifests/k8s-smoke.yaml"), manifests),
        (
            workspace().join("helm/pubsub-testbed/files/plan.yaml"),
            chart_plan,
        ),
    ];
    for (path, want) in files {
        if std::env::var_os("UPDATE_K8S_MANIFESTS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is out of date: UPDATE_K8S_MANIFESTS=1 cargo test -p orchestrator --features k8s --test k8s",
            path.display()
        );
    }
}

#[test]
fn the_render_command_prints_the_same_yaml_every_time_and_explains_refusals() {
    let run = |args: &[&str]| {
        Command::new(support::orchestrator_bin())
            .args(args)
            .current_dir(workspace())
            .output()
            .unwrap()
    };
    let a = run(&[
        "k8s",
        "render",
        "testplans/k8s-smoke.yaml",
        "--set",
        "listeners=3",
    ]);
    let b = run(&[
        "k8s",
        "render",
        "testplans/k8s-smoke.yaml",
        "--set",
        "listeners=3",
    ]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    let yaml = String::from_utf8(a.stdout).unwrap();
    assert!(yaml.contains("completions: 3"), "{yaml}");
    let plan_only = run(&["k8s", "render", "testplans/k8s-smoke.yaml", "--plan-only"]);
    assert!(String::from_utf8_lossy(&plan_only.stdout).contains("runner: k8s"));

    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(workspace().join("testplans/k8s-smoke.yaml")).unwrap();
    let with_network = dir.path().join("net.yaml");
    std::fs::write(
        &with_network,
        format!("{text}network:\n  default:\n    latency: 10ms\n"),
    )
    .unwrap();
    let refused = run(&["k8s", "render", with_network.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("netns"));
}

// ---- the chart ----

/// helm from $HELM, tools/bin/helm (scripts/install-helm.sh) or PATH.
/// Says why a test skips; under CI (`CI` set) a missing tool is a failure instead, so CI
/// never passes a test it did not run.
fn skip_unless_ci(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so this test must run, but: {why}"
    );
    eprintln!("SKIPPED: {why}");
}

fn helm() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("HELM").map(PathBuf::from),
        Some(workspace().join("tools/bin/helm")),
        Some(PathBuf::from("helm")),
    ];
    candidates.into_iter().flatten().find(|h| {
        Command::new(h)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn without_helm_labels(mut v: Value) -> Value {
    fn strip(labels: &mut Value) {
        if let Some(m) = labels.as_object_mut() {
            m.remove("app.kubernetes.io/managed-by");
            m.remove("helm.sh/chart");
        }
    }
    strip(&mut v["metadata"]["labels"]);
    if v["kind"] == "Job" {
        strip(&mut v["spec"]["template"]["metadata"]["labels"]);
    }
    v
}

/// `helm template` of the chart equals `orchestrator k8s render`, object for object, apart
/// from Helm's own labels. Without helm (run scripts/install-helm.sh) it says so and passes,
/// except under CI (`CI` set), where scripts/ci-extras.sh has installed it and it must run.
#[test]
fn the_helm_chart_renders_the_same_objects_as_the_renderer() {
    let Some(helm) = helm() else {
        skip_unless_ci("no helm binary (scripts/install-helm.sh installs one into tools/bin)");
        return;
    };
    let chart = workspace().join("helm/pubsub-testbed");
    let lint = Command::new(&helm)
        .arg("lint")
        .arg(&chart)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    let dir = tempfile::tempdir().unwrap();
    for (plan_file, sets) in [
        ("testplans/k8s-smoke.yaml", vec![]),
        ("testplans/simple-discovery.yaml", vec!["hosts=7"]),
        ("testplans/scale-100.yaml", vec![]),
    ] {
        let ov = sets
            .iter()
            .map(|s| plan::parse_override(s).unwrap())
            .collect::<BTreeMap<_, _>>();
        let loaded = plan::load(&workspace().join(plan_file), &ov).unwrap();
        let opts = RenderOptions {
            image: "registry.example/pubsub-testbed:1.2".into(),
            image_pull_policy: "Always".into(),
            ..RenderOptions::new("run-7", "bench")
        };
        let objects = render::render(&loaded.plan, &opts).unwrap();
        let plan_path = dir.path().join("plan.yaml");
        std::fs::write(
            &plan_path,
            render::resolved_plan_yaml(&loaded.plan).unwrap(),
        )
        .unwrap();
        let out = Command::new(&helm)
            .args(["template", "release", chart.to_str().unwrap()])
            .args([
                "--set",
                "runId=run-7",
                "--set",
                "namespace.name=bench",
                "--set",
                "namespace.create=true",
            ])
            .args([
                "--set",
                "image.repository=registry.example/pubsub-testbed",
                "--set",
                "image.tag=1.2",
            ])
            .args(["--set", "image.pullPolicy=Always"])
            .arg("--set-file")
            .arg(format!("plan={}", plan_path.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let by_key = |docs: Vec<Value>| {
            docs.into_iter()
                .map(|d| {
                    let key = (
                        d["kind"].as_str().unwrap().to_string(),
                        d["metadata"]["name"].as_str().unwrap().to_string(),
                    );
                    (key, without_helm_labels(d))
                })
                .collect::<BTreeMap<_, _>>()
        };
        let chart_objects = by_key(docs(&String::from_utf8(out.stdout).unwrap()));
        let ours = by_key(docs(&objects.to_yaml().unwrap()));
        assert_eq!(
            chart_objects.keys().collect::<Vec<_>>(),
            ours.keys().collect::<Vec<_>>(),
            "{plan_file}: kinds and names"
        );
        for (key, want) in &ours {
            let have = &chart_objects[key];
            check_typed(have);
            assert_eq!(
                have, want,
                "{plan_file}: {key:?} differs between the chart and the renderer"
            );
        }
    }
}

/// Offline schema validation with the PyPI package `kubernetes-validate`, where installed
/// (under CI it must be: scripts/ci-extras.sh installs it).
#[test]
fn manifests_pass_kubernetes_validate_where_it_is_installed() {
    let tool = std::env::var_os("KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("tools/venv/bin/kubernetes-validate"));
    if !tool.exists() {
        skip_unless_ci("kubernetes-validate not installed (scripts/install-helm.sh --validate)");
        return;
    }
    let out = Command::new(&tool)
        .args(["--strict", "--quiet", "--kubernetes-version", "1.33.0"])
        .arg(workspace().join("manifests/k8s-smoke.yaml"))
        .arg(workspace().join("manifests/rbac.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- a whole run with the rendered commands, pods played by local processes ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "{method} {path} HTTP/1.1\r\nhost: coordinator\r\n\r\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = &out[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return Ok((code, body.to_vec()));
    }
    // The archive is streamed in chunks: decode them (and insist on the last one).
    let mut decoded = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap(), 16).unwrap();
        body = &body[eol + 2..];
        if size == 0 {
            return Ok((code, decoded));
        }
        decoded.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// Sends one line to the control port once it listens; returns the first line of the answer.
fn talk_when_up(port: u16, line: &str) -> String {
    let mut stream = None;
    for _ in 0..600 {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let mut s = stream.expect("the coordinator's control port listens");
    writeln!(s, "{line}").unwrap();
    let mut answer = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(s), &mut answer).unwrap();
    answer
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The coordinator pod's command (ports moved to free local ones) and, for every completion
/// index of every Job, the node container's shell line with the Job's environment: a real
/// fleet run that exercises the external runner, the index offsets, the results endpoint and
/// the tarball, exactly as they run in a cluster (only DNS is stubbed: `getent` succeeds).
#[test]
fn a_run_with_the_rendered_coordinator_and_node_commands_passes() {
    run_rendered_commands(1);
}

/// The same with three nodes per pod: the shell line starts every node of its pod under its
/// own index and reports their output and exit codes.
#[test]
fn a_run_with_several_nodes_per_pod_passes() {
    run_rendered_commands(3);
}

fn run_rendered_commands(nodes_per_pod: u32) {
    let node_bin = support::node_bin();
    let work = tempfile::tempdir().unwrap();
    let ov = BTreeMap::from([
        ("publishers".to_string(), Value::from(2)),
        ("listeners".to_string(), Value::from(3)),
        ("messages".to_string(), Value::from(3)),
    ]);
    let loaded = plan::load(&workspace().join("testplans/k8s-smoke.yaml"), &ov).unwrap();
    let opts = RenderOptions {
        nodes_per_pod,
        ..RenderOptions::new("e2e", "testbed-e2e")
    };
    let objects = render::render(&loaded.plan, &opts).unwrap();

    // The ConfigMap's plan, as mounted at /plan/plan.yaml.
    let plan_path = work.path().join("plan.yaml");
    let cm = objects.config_map.data.as_ref().unwrap();
    std::fs::write(&plan_path, &cm["plan.yaml"]).unwrap();

    // The coordinator: its rendered command line, with paths and ports made local.
    let (control, results_port) = (free_port(), free_port());
    let results_dir = work.path().join("results");
    let command = objects
        .coordinator
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .command
        .clone()
        .unwrap();
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| match a.as_str() {
            render::PLAN_PATH => plan_path.display().to_string(),
            render::RESULTS_PATH => results_dir.display().to_string(),
            "0.0.0.0:7000" => format!("127.0.0.1:{control}"),
            "0.0.0.0:7001" => format!("127.0.0.1:{results_port}"),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(command[0], "orchestrator");
    // The run's Secret, as `k8s run` creates it and every pod reads it (`secretKeyRef`).
    let secret = render::run_secret(&objects, "0123456789abcdef0123456789abcdef");
    let secret_value = secret.string_data.as_ref().unwrap()[render::RUN_SECRET_KEY].clone();
    let from_secret = |e: &k8s_openapi::api::core::v1::EnvVar| {
        let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
        (r.name == render::RUN_SECRET && r.key == render::RUN_SECRET_KEY)
            .then(|| secret_value.clone())
    };
    let coordinator_container = &objects
        .coordinator
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let coordinator_env: Vec<(String, String)> = coordinator_container
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), from_secret(e)?)))
        .collect();
    assert_eq!(coordinator_env.len(), 1, "the coordinator reads the secret");
    let coordinator = KillOnDrop(
        Command::new(support::orchestrator_bin())
            .args(&args)
            .envs(coordinator_env)
            .env("PUBSUB_NODE_BIN", &node_bin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // A PATH where `getent` always resolves to 127.0.0.1 and `pubsub-node` is this build's node.
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // `getent hosts NAME` answers as for the headless Service: the address, then the name.
    std::fs::write(bin.join("getent"), "#!/bin/sh\necho \"127.0.0.1 $3\"\n").unwrap();
    std::fs::set_permissions(
        bin.join("getent"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink(&node_bin, bin.join("pubsub-node")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // A hello without the run's secret is refused, and touches no node's slot: node 0's
    // pod, started next, is accepted.
    let impostor = format!(
        r#"{{"type":"hello","protocol":2,"index":0,"pid":1,"implementation":"rust","impl_version":"x","secret":"{}"}}"#,
        "f".repeat(32)
    );
    let answer = talk_when_up(control, &impostor);
    assert!(
        answer.contains("abort") && !answer.contains("welcome"),
        "{answer}"
    );

    let mut pods = Vec::new();
    for job in &objects.jobs {
        let spec = job.spec.as_ref().unwrap();
        let container = &spec.template.spec.as_ref().unwrap().containers[0];
        let cmd = container.command.clone().unwrap();
        for ci in 0..spec.completions.unwrap() {
            let mut c = Command::new(&cmd[0]);
            c.args(&cmd[1..])
                .env_clear()
                .env("PATH", &path)
                .env("JOB_COMPLETION_INDEX", ci.to_string());
            for e in container.env.as_ref().unwrap() {
                let value = match (e.name.as_str(), &e.value) {
                    ("TESTBED_CONTROL_ADDR", _) => format!("tcp://127.0.0.1:{control}"),
                    (_, Some(v)) => v.clone(),
                    _ => from_secret(e).unwrap_or_else(|| "127.0.0.1".into()), // or status.podIP
                };
                c.env(&e.name, value);
            }
            pods.push(KillOnDrop(
                c.stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            ));
        }
    }

    // Poll /status as `orchestrator k8s run` does (bounded: the plan's own timeout applies).
    let mut state = RunState::Running;
    for _ in 0..1200 {
        if let Ok((200, body)) = http(results_port, "GET", "/status") {
            state = serde_json::from_slice(&body).unwrap();
            if state != RunState::Running {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        state,
        RunState::Done {
            exit_code: 0,
            dir: "k8s-smoke/e2e".into()
        }
    );
    let (code, tarball) = http(results_port, "GET", "/results.tar").unwrap();
    assert_eq!(code, 200);
    let fetched = work.path().join("fetched");
    untar(&tarball, &fetched).unwrap();
    let record = orchestrator::record::store::read_record(&fetched).unwrap();
    assert_eq!(record.runner, "external");
    assert_eq!(
        record.outcome.status,
        orchestrator::record::Status::Passed,
        "{:?}",
        record.outcome
    );
    assert_eq!(record.summary.delivery_ratio, Some(1.0));
    // Each node connected under its global index: completion index + its group's offset.
    let groups: Vec<(u32, &str)> = record
        .nodes
        .iter()
        .map(|n| (n.index, n.group.as_str()))
        .collect();
    assert_eq!(
        groups,
        [
            (0, "publishers"),
            (1, "publishers"),
            (2, "listeners"),
            (3, "listeners"),
            (4, "listeners")
        ]
    );
    assert!(record.nodes.iter().all(|n| n.peer_id.is_some()));
    let mut said = String::new();
    for mut p in pods {
        p.0.stdout
            .take()
            .unwrap()
            .read_to_string(&mut said)
            .unwrap();
        let status = p.0.wait().unwrap();
        assert!(status.success(), "a node pod exited with {status}");
    }
    // Each pod says when the coordinator's name resolved and which nodes it starts.
    let starts = if nodes_per_pod == 1 {
        said.matches("; starting pubsub-node").count()
    } else {
        said.matches(" pubsub-node processes").count()
    };
    assert_eq!(starts as u32, objects.node_pods(), "{said}");
    drop(coordinator);
}

#[test]
fn node_jobs_survive_one_failed_pod_spread_out_and_request_a_measured_node() {
    let loaded = load(&workspace().join("testplans/simple-discovery.yaml"));
    let opts = RenderOptions {
        nodes_per_pod: 4,
        ..RenderOptions::new("r1", "ns")
    };
    let objects = render::render(&loaded.plan, &opts).unwrap();
    let hosts = loaded.plan.groups[0].count;
    let spec = objects.jobs[0].spec.as_ref().unwrap();
    // Four nodes per pod.
    assert_eq!(spec.completions, Some(hosts.div_ceil(4) as i32));
    // One pod's failure neither restarts it nor fails the Job (which would stop the others).
    assert_eq!(spec.backoff_limit_per_index, Some(0));
    assert_eq!(spec.max_failed_indexes, spec.completions);
    assert_eq!(spec.backoff_limit, None);
    let pod = spec.template.spec.as_ref().unwrap();
    let spread = &pod.topology_spread_constraints.as_ref().unwrap()[0];
    assert_eq!(spread.topology_key, "kubernetes.io/hostname");
    assert_eq!(spread.when_unsatisfiable, "ScheduleAnyway");
    // The plan sets no resources: the measured per-node default, times four.
    let requests = pod.containers[0]
        .resources
        .as_ref()
        .unwrap()
        .requests
        .clone()
        .unwrap();
    assert_eq!(
        requests["cpu"].0,
        render::scale_quantity(render::DEFAULT_NODE_CPU_REQUEST, 4).unwrap()
    );
    assert_eq!(
        requests["memory"].0,
        render::scale_quantity(render::DEFAULT_NODE_MEMORY_REQUEST, 4).unwrap()
    );
    assert_eq!(
        pod.containers[0].termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    // The coordinator is a Job that Kubernetes deletes once it ended.
    let coordinator = objects.coordinator.spec.as_ref().unwrap();
    assert_eq!(
        coordinator.ttl_seconds_after_finished,
        Some(render::COORDINATOR_TTL.as_secs() as i32)
    );
    assert_eq!(coordinator.backoff_limit, Some(0));
    let command = coordinator.template.spec.as_ref().unwrap().containers[0]
        .command
        .clone()
        .unwrap();
    assert!(!command.contains(&"--client-lease".to_string()));
    let leased = render::render(
        &loaded.plan,
        &RenderOptions {
            client_lease: Some(Duration::from_secs(60)),
            ..opts
        },
    )
    .unwrap();
    let command = leased
        .coordinator
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .command
        .clone()
        .unwrap();
    assert!(command.ends_with(&["--client-lease".to_string(), "1m".to_string()]));
    // The coordinator's /metrics would serve on the pod's loopback: off unless asked for.
    let plan_text = &objects.config_map.data.as_ref().unwrap()["plan.yaml"];
    let resolved = plan::load_text(Path::new("/plan/plan.yaml"), plan_text, &BTreeMap::new())
        .unwrap()
        .plan;
    assert_eq!(resolved.telemetry.metrics_listen.as_deref(), Some("off"));
}

/// Every pod reads the run's secret from the Secret `run-secret`; no command line and no
/// ConfigMap holds it, and the Secret the runner creates carries the value it is given.
#[test]
fn every_pod_reads_the_run_secret_from_its_secret() {
    let loaded = load(&workspace().join("testplans/k8s-smoke.yaml"));
    let objects = render::render(&loaded.plan, &RenderOptions::new("r1", "ns")).unwrap();
    let pods = std::iter::once(&objects.coordinator).chain(&objects.jobs);
    for job in pods {
        let c = &job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let secret = c
            .env
            .iter()
            .flatten()
            .find(|e| e.name == testbed_contract::env::RUN_SECRET)
            .unwrap_or_else(|| panic!("{:?} has no run secret", job.metadata.name));
        assert_eq!(secret.value, None, "never a literal value");
        let r = secret
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("from a Secret");
        assert_eq!(
            (r.name.as_str(), r.key.as_str()),
            (render::RUN_SECRET, render::RUN_SECRET_KEY)
        );
        let command = c.command.clone().unwrap().join(" ");
        assert!(!command.contains("SECRET"), "{command}");
    }
    let secret = render::run_secret(&objects, "s3cr3t");
    assert_eq!(secret.metadata.name.as_deref(), Some(render::RUN_SECRET));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(
        secret.string_data.as_ref().unwrap()[render::RUN_SECRET_KEY],
        "s3cr3t"
    );
    let yaml = objects.to_yaml().unwrap();
    assert!(!yaml.contains("s3cr3t") && !yaml.contains("kind: Secret"));
}
