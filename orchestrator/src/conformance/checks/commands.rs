//! Checks of the answers to commands: report, connect, subscribe, publish, finish, abort.

use super::saw_state;
use crate::conformance::harness::{COUNT, Line, Proc, TOPIC, exit_text};
use serde_json::Value;
use std::process::ExitStatus;
use std::time::Duration;
use testbed_contract::protocol::NodeMsg;
use testbed_contract::results::{ExitReason, NodeState};
use tokio::time::Instant;

pub(crate) type AckResult = Result<(usize, bool, Option<String>, Value), String>;

/// A report sent at `sent`: a snapshot arrives after that and before the ack.
pub(crate) fn check_report(p: &Proc, sent: Instant, ack: AckResult) -> Result<(), String> {
    let (i, ok, err, _) = ack?;
    if !ok {
        return Err(format!(
            "report acked ok: false: {}",
            err.unwrap_or_default()
        ));
    }
    let snapshot = p.lines[..i]
        .iter()
        .any(|l| l.at >= sent && matches!(l.msg, Ok(NodeMsg::Snapshot(_))));
    if snapshot {
        Ok(())
    } else {
        Err("no snapshot between the report command and its ack".into())
    }
}

pub(crate) fn check_connect(ack: AckResult, n: u64) -> Result<(), String> {
    let (_, ok, err, info) = ack?;
    if !ok {
        return Err(format!("ok: false: {}", err.unwrap_or_default()));
    }
    let connected = info.get("connected").and_then(Value::as_u64);
    let failed = info.get("failed").and_then(Value::as_u64);
    if connected != Some(n) || failed != Some(0) {
        return Err(format!("info is not {{connected: {n}, failed: 0}}: {info}"));
    }
    Ok(())
}

pub(crate) async fn check_subscribe(p: &mut Proc, id: u64) -> Result<(), String> {
    let (_, ok, err, info) = p.ack(id, Duration::from_secs(40)).await?;
    if !ok {
        return Err(format!("no mesh: {}", err.unwrap_or_default()));
    }
    let mut probs = Vec::new();
    if !info.get("mesh_ms").is_some_and(Value::is_number) {
        probs.push(format!("info has no numeric mesh_ms: {info}"));
    }
    let t = info.get("topics").and_then(|t| t.get(TOPIC));
    let mesh = t.and_then(|t| t.get("mesh")).and_then(Value::as_u64);
    let subscribed = t.and_then(|t| t.get("subscribed")).and_then(Value::as_u64);
    match (mesh, subscribed) {
        (Some(m), Some(s)) if m >= 1 && s >= 1 => {}
        _ => probs.push(format!(
            "info.topics.{TOPIC} is not {{mesh ≥ 1, subscribed ≥ 1}}: {info}"
        )),
    }
    for st in [NodeState::Subscribed, NodeState::Ready] {
        if !saw_state(p, st) {
            probs.push(format!("no state{{{}}}", st.as_str()));
        }
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

pub(crate) fn check_publish(p: &Proc, ack: AckResult) -> Result<(), String> {
    let (_, ok, err, info) = ack?;
    if !ok {
        return Err(format!("ok: false: {}", err.unwrap_or_default()));
    }
    let mut probs = Vec::new();
    if info.get("published").and_then(Value::as_u64) != Some(u64::from(COUNT)) {
        probs.push(format!("info is not {{published: {COUNT}, …}}: {info}"));
    }
    if !saw_state(p, NodeState::Running) {
        probs.push("no state{running}".into());
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

pub(crate) async fn check_finish(p: &mut Proc, id: u64) -> Result<(), String> {
    let exit = p.wait_exit(Duration::from_secs(15)).await;
    p.drain();
    let mut probs = Vec::new();
    let result = p.result().map(|(i, l)| (i, l.at));
    let ack = p
        .lines
        .iter()
        .position(|l| matches!(&l.msg, Ok(NodeMsg::Ack { id: a, .. }) if *a == id));
    match ack {
        None => probs.push("no ack for finish".into()),
        Some(i) => {
            if let Ok(NodeMsg::Ack {
                ok: false, error, ..
            }) = &p.lines[i].msg
            {
                probs.push(format!(
                    "finish acked ok: false: {}",
                    error.clone().unwrap_or_default()
                ));
            }
            if result.is_some_and(|(r, _)| r < i) {
                probs.push("the finish ack came after the result".into());
            }
        }
    }
    check_end_states(p, &mut probs);
    check_result_last(p, result, exit, 0, &mut probs);
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

pub(crate) async fn check_abort(
    p: &mut Proc,
    want_error: &str,
    want_code: i32,
) -> Result<(), String> {
    let exit = p.wait_exit(Duration::from_secs(15)).await;
    p.drain();
    let mut probs = Vec::new();
    let result = p.result().map(|(i, l)| (i, l.at));
    // (A result that cannot be read is `result.well-formed`'s failure.)
    if let Some(r) = p.parsed_result() {
        if r.exit != ExitReason::Aborted {
            probs.push(format!("result exit is {:?}, not aborted", r.exit));
        }
        if r.error.as_deref() != Some(want_error) {
            probs.push(format!("result error is {:?}, not {want_error:?}", r.error));
        }
    }
    check_end_states(p, &mut probs);
    check_result_last(p, result, exit, want_code, &mut probs);
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

pub(crate) fn check_end_states(p: &Proc, probs: &mut Vec<String>) {
    for st in [NodeState::Draining, NodeState::Done] {
        if !saw_state(p, st) {
            probs.push(format!("no state{{{}}}", st.as_str()));
        }
    }
}

pub(crate) fn check_result_last(
    p: &Proc,
    result: Option<(usize, Instant)>,
    exit: Option<ExitStatus>,
    code: i32,
    probs: &mut Vec<String>,
) {
    match result {
        None => probs.push("no result".into()),
        Some((i, at)) => {
            if i + 1 != p.lines.len() {
                let after: Vec<String> = p.lines[i + 1..].iter().map(Line::kind).collect();
                probs.push(format!("messages after the result: {}", after.join(", ")));
            }
            if let Some((_, exited)) = p.exit
                // The contract says 2 s; a loaded machine gets some slack.
                && exited.saturating_duration_since(at) > Duration::from_secs(5)
            {
                probs.push(format!(
                    "exited {:.1} s after the result (the contract: within 2 s)",
                    exited.saturating_duration_since(at).as_secs_f64()
                ));
            }
        }
    }
    if p.closed_at.is_none() {
        probs.push("the control channel was not closed".into());
    }
    match exit {
        Some(s) if s.code() == Some(code) => {}
        s => probs.push(format!("{}, not exit code {code}", exit_text(s))),
    }
}
