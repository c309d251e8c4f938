//! The Dockerfile cannot be built by `cargo test` (scripts/podman-build.sh builds it for real
//! with podman); these tests keep it in step with the workspace: every path it copies exists,
//! every workspace member is copied, the binaries it names are the workspace's, it runs as a
//! non-root user, and nothing it copies is excluded by .dockerignore.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use support::workspace;

fn dockerfile() -> String {
    support::read(workspace().join("Dockerfile"))
}

/// Instructions with their continuation lines joined.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || (l.is_empty() && cur.is_empty()) {
            continue;
        }
        match l.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(l);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

/// `COPY` sources from the build context (not `--from=` another stage).
fn context_copies(text: &str) -> Vec<String> {
    instructions(text)
        .iter()
        .filter(|i| i.starts_with("COPY ") && !i.contains("--from="))
        .flat_map(|i| {
            let args: Vec<&str> = i
                .split_whitespace()
                .skip(1)
                .filter(|a| !a.starts_with("--"))
                .collect();
            args[..args.len() - 1]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn workspace_members() -> Vec<String> {
    let cargo = support::read(workspace().join("Cargo.toml"));
    let line = cargo
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("workspace members");
    line.split('[')
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Binaries of the workspace: `[[bin]]` names, else the package name of a member with
/// src/main.rs.
fn workspace_binaries() -> BTreeSet<String> {
    let mut bins = BTreeSet::new();
    for m in workspace_members() {
        let manifest = support::read(workspace().join(&m).join("Cargo.toml"));
        let mut in_bin = false;
        let mut package = None;
        let mut section = "";
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
                in_bin = line == "[[bin]]";
                continue;
            }
            if let Some(v) = line
                .strip_prefix("name")
                .and_then(|r| r.trim_start().strip_prefix('='))
            {
                let v = v.trim().trim_matches('"').to_string();
                if in_bin {
                    bins.insert(v);
                } else if section == "[package]" {
                    package = Some(v);
                }
            }
        }
        if workspace().join(&m).join("src/main.rs").exists() {
            bins.insert(package.unwrap());
        }
    }
    bins
}

#[test]
fn every_path_the_dockerfile_copies_exists_and_every_member_is_copied() {
    let text = dockerfile();
    let copies = context_copies(&text);
    assert!(!copies.is_empty());
    for src in &copies {
        assert!(
            workspace().join(src).exists(),
            "Dockerfile copies `{src}`, which does not exist"
        );
    }
    for m in workspace_members() {
        assert!(
            copies.iter().any(|c| Path::new(c) == Path::new(&m)),
            "workspace member `{m}` is not copied into the build stage: add `COPY {m} {m}`"
        );
    }
    let ignore = support::read(workspace().join(".dockerignore"));
    for pattern in ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let p = pattern.trim_end_matches('/');
        for c in &copies {
            assert!(
                !(c == p || c.starts_with(&format!("{p}/"))),
                ".dockerignore excludes `{pattern}`, which the Dockerfile copies"
            );
        }
    }
}

#[test]
fn the_binaries_it_builds_and_installs_are_the_workspaces() {
    let text = dockerfile();
    let bins = workspace_binaries();
    assert!(
        bins.contains("orchestrator") && bins.contains("pubsub-node"),
        "{bins:?}"
    );
    let build = instructions(&text)
        .into_iter()
        .find(|i| i.contains("cargo build"))
        .expect("a cargo build");
    let words: Vec<&str> = build.split_whitespace().collect();
    let packages: Vec<&str> = words
        .windows(2)
        .filter(|w| w[0] == "-p")
        .map(|w| w[1])
        .collect();
    let mut named = BTreeSet::new();
    for w in build.split_whitespace().chain(text.split_whitespace()) {
        for prefix in ["target/release/", "/out/"] {
            if let Some(bin) = w.strip_prefix(prefix)
                && !bin.is_empty()
            {
                named.insert(bin.to_string());
            }
        }
    }
    assert!(!named.is_empty());
    for b in &named {
        assert!(
            bins.contains(b),
            "the Dockerfile names binary `{b}`, which the workspace does not build: {bins:?}"
        );
    }
    for b in ["orchestrator", "pubsub-node"] {
        assert!(named.contains(b), "the image lacks `{b}`");
        assert!(
            packages.contains(&b),
            "`cargo build` does not build package `{b}`: {packages:?}"
        );
    }
    assert!(
        build.contains("--locked"),
        "the build must use Cargo.lock as it is"
    );
}

#[test]
fn the_image_runs_as_a_non_root_user() {
    let text = dockerfile();
    let users: Vec<String> = instructions(&text)
        .into_iter()
        .filter(|i| i.starts_with("USER "))
        .collect();
    let last = users.last().expect("a USER instruction");
    let user = last.trim_start_matches("USER ").trim();
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "{user}"
    );
    assert_eq!(
        user, "10001:10001",
        "the pods' securityContext runs as 10001"
    );
    assert!(text.contains("useradd --uid 10001"));
}

/// Without the `k8s` feature, `orchestrator k8s …` says how to get it.
#[cfg(not(feature = "k8s"))]
#[test]
fn without_the_feature_k8s_commands_explain_how_to_build_them() {
    let out = std::process::Command::new(support::orchestrator_bin())
        .args(["k8s", "render", "testplans/k8s-smoke.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features k8s"), "{err}");
}
