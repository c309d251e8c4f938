//! The main session: nodes 0 and 1 run the implementation under test, node 2 the Rust
//! reference. The script goes step by step through the contract — hello, a command before
//! the welcome, welcome, listening, malformed input, unknown ops, report, connect (empty,
//! failing, real), subscribe with `wait_mesh`, a publish nobody can receive, publishing by
//! all three while a report runs, unsubscribe, finish and abort — and then checks the
//! results field by field and against each other. A step that cannot go on (a node did not
//! start) ends the session; every check not reached is then skipped with the reason.

use super::catalogue::{CATALOGUE, SIDE_CHECKS};
use super::checks::commands::{
    check_abort, check_connect, check_finish, check_publish, check_report, check_subscribe,
};
use super::checks::messages::{check_messages, check_snapshots, check_states};
use super::checks::results::{
    check_consistent, check_histograms, check_seen, check_well_formed, exact_from,
};
use super::checks::startup::{check_hello, check_listening};
use super::ctx::Ctx;
use super::harness::{
    COUNT, Line, Proc, RATE, SIZE, SNAPSHOT_MS, STARTUP, STEP, Spawn, TOPIC, spawn, welcome,
};
use super::report::Checks;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use testbed_contract::protocol::{Command, NodeMsg, OrchMsg, PeerAddr};
use testbed_contract::results::{ExitReason, NodeState};
use tokio::time::Instant;

/// Nodes in the session.
const N: u32 = 3;

/// The session's nodes: `a` (node 0) and `b` (node 1) under test, `r` the reference.
struct Session {
    a: Proc,
    b: Proc,
    r: Proc,
    /// When the session started (ns since the Unix epoch).
    start_ns: u64,
    /// Whether two snapshots came unasked after the welcome, for node 0 and node 1.
    unasked: Vec<Result<(), String>>,
}

/// Runs the session; returns its checks and node 0's `hello.impl_version`.
pub(super) async fn main_session(ctx: &Ctx) -> (Checks, Option<String>) {
    let mut c = Checks::default();
    let mut said = None;
    let r = script(ctx, &mut c, &mut said).await;
    if let Err(e) = r {
        // Everything not yet reached is skipped with the reason.
        for (id, _) in CATALOGUE {
            if !c.results.contains_key(id) && !SIDE_CHECKS.contains(id) {
                c.skip(id, format!("not reached: {e}"));
            }
        }
    }
    (c, said)
}

async fn script(ctx: &Ctx, c: &mut Checks, said: &mut Option<String>) -> Result<(), String> {
    let mut s = start(ctx).await?;
    hello(ctx, &mut s, c, said).await?;
    before_welcome(&mut s, c).await;
    welcome_and_listening(&mut s, c).await?;
    s.unasked = unasked_snapshots(&mut s).await;
    malformed_and_report(&mut s, c).await;
    connect(&mut s, c).await?;
    subscribe(&mut s, c).await?;
    publish_to_nobody(&mut s, c).await;
    publish(&mut s, c).await?;
    settle(&mut s).await;
    unsubscribe(&mut s, c).await;
    let end_ns = finish(&mut s, c).await;
    messages_and_results(&mut s, c, end_ns);
    interop(&s, c);
    Ok(())
}

fn now_ns() -> u64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64
}

/// Starts the three nodes, each with its own control listener.
async fn start(ctx: &Ctx) -> Result<Session, String> {
    let mut procs = Vec::new();
    for i in 0..N {
        let reference = i == 2;
        let p = spawn(Spawn {
            program: if reference {
                &ctx.reference
            } else {
                &ctx.program
            },
            index: i,
            who: if reference {
                "node 2 (Rust reference)".into()
            } else {
                ctx.who(i)
            },
            unix: false,
            without: &[],
            control_addr: None,
            logs: &ctx.logs,
            name: &format!("main-node-{i}"),
        })
        .await?;
        procs.push(p);
    }
    let [a, b, r]: [Proc; 3] = procs.try_into().map_err(|_| "three nodes".to_string())?;
    Ok(Session {
        a,
        b,
        r,
        start_ns: now_ns(),
        unasked: Vec::new(),
    })
}

/// Hello, then state{starting}.
async fn hello(
    ctx: &Ctx,
    s: &mut Session,
    c: &mut Checks,
    said: &mut Option<String>,
) -> Result<(), String> {
    for p in [&mut s.a, &mut s.b, &mut s.r] {
        let is_ref = p.index == 2;
        let first = p.next(Instant::now() + STARTUP).await;
        let hello = check_hello(ctx, p, first, is_ref);
        if is_ref {
            hello.map_err(|e| format!("the Rust reference node did not start: {e}"))?;
            continue;
        }
        if p.index == 0
            && let Some(Ok(NodeMsg::Hello { impl_version, .. })) = first.map(|i| &p.lines[i].msg)
        {
            *said = Some(impl_version.clone());
        }
        let ok = hello.is_ok();
        c.node("hello", &p.who.clone(), hello);
        if !ok {
            return Err(format!("{} did not say hello", p.who));
        }
        let next = p.next(Instant::now() + STEP).await;
        let st = match next.map(|i| &p.lines[i].msg) {
            Some(Ok(NodeMsg::State {
                state: NodeState::Starting,
                ..
            })) => Ok(()),
            Some(_) => Err(format!(
                "the message after hello is `{}`, not state{{starting}}",
                p.lines[next.unwrap()].kind()
            )),
            None => Err("nothing after hello".into()),
        };
        c.node("state.starting", &p.who.clone(), st);
    }
    Ok(())
}

/// A command before the welcome is refused.
async fn before_welcome(s: &mut Session, c: &mut Checks) {
    let a = &mut s.a;
    a.command(1, Command::Report);
    let r1 = match a.ack(1, Duration::from_secs(5)).await {
        Ok((_, false, Some(_), _)) => Ok(()),
        Ok((_, false, None, _)) => Err("acked ok: false without an error text".into()),
        Ok((_, true, ..)) => Err("acked ok: true before the welcome".into()),
        Err(e) => Err(e),
    };
    c.node("command.before-welcome", &a.who.clone(), r1);
}

async fn welcome_and_listening(s: &mut Session, c: &mut Checks) -> Result<(), String> {
    for p in [&mut s.a, &mut s.b, &mut s.r] {
        p.send(&welcome(p.index, N));
    }
    for p in [&mut s.a, &mut s.b, &mut s.r] {
        let res = check_listening(p).await;
        if p.index == 2 {
            res.map_err(|e| format!("the Rust reference node did not listen: {e}"))?;
            continue;
        }
        let ok = res.is_ok();
        c.node("listening", &p.who.clone(), res);
        if !ok {
            return Err(format!("{} did not listen", p.who));
        }
    }
    Ok(())
}

/// Snapshots come unasked every snapshot_interval_ms: two before any command is sent.
async fn unasked_snapshots(s: &mut Session) -> Vec<Result<(), String>> {
    let mut unasked = Vec::new();
    for p in [&mut s.a, &mut s.b] {
        let is_snapshot = |l: &Line| matches!(l.msg, Ok(NodeMsg::Snapshot(_)));
        let from = p
            .lines
            .iter()
            .position(|l| l.kind() == "listening")
            .unwrap_or(0);
        let within = Duration::from_millis(SNAPSHOT_MS * 20);
        let r = match p
            .expect_since(from, within, "snapshot sent unasked", is_snapshot)
            .await
        {
            Ok(i) => p
                .expect_since(i + 1, within, "second snapshot sent unasked", is_snapshot)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        unasked.push(r.map_err(|e| format!("{e} (snapshot_interval_ms is {SNAPSHOT_MS})")));
    }
    unasked
}

/// Malformed input and unknown ops are answered or ignored, never fatal; report.
async fn malformed_and_report(s: &mut Session, c: &mut Checks) {
    let a = &mut s.a;
    a.send_raw(b"this is not JSON\n");
    a.send_raw(b"{\"type\":\"no_such_message\",\"x\":1}\n");
    a.send_raw(b"\n");
    a.send(&OrchMsg::Released {
        barrier: "nobody-waits-for-this".into(),
        count: 1,
    });
    a.send_raw(b"{\"type\":\"command\",\"id\":50,\"cmd\":{\"op\":\"dance\"}}\n");
    a.send_raw(b"{\"type\":\"command\",\"id\":51,\"cmd\":{\"op\":\"publish\",\"topic\":\"t\"}}\n");
    let sent52 = Instant::now();
    a.command(52, Command::Report);
    let mut unknown = Vec::new();
    for id in [50u64, 51] {
        match a.ack(id, STEP).await {
            Ok((_, false, Some(_), _)) => {}
            Ok((_, false, None, _)) => {
                unknown.push(format!("command {id}: ok: false without an error text"))
            }
            Ok((_, true, ..)) => unknown.push(format!("command {id} acked ok: true")),
            Err(e) => unknown.push(e),
        }
    }
    c.node(
        "command.unknown-op",
        &a.who.clone(),
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(unknown.join("; "))
        },
    );
    let report = a.ack(52, STEP).await;
    let failed_state = a.msgs().iter().find_map(|(_, m)| match m {
        NodeMsg::State {
            state: NodeState::Failed,
            detail,
            ..
        } => Some(detail.clone().unwrap_or_default()),
        _ => None,
    });
    let malformed = match (
        &report,
        failed_state,
        a.exit.is_some() || a.closed_at.is_some(),
    ) {
        (_, Some(d), _) => Err(format!("entered `failed`: {d}")),
        (_, _, true) => Err("closed the channel or exited".into()),
        (Err(e), ..) => Err(format!("stopped answering: {e}")),
        _ => Ok(()),
    };
    c.node("malformed.ignored", &a.who.clone(), malformed);
    c.node("report", &a.who.clone(), check_report(a, sent52, report));
    let b = &mut s.b;
    let sent53 = Instant::now();
    b.command(53, Command::Report);
    let rb = b.ack(53, STEP).await;
    c.node("report", &b.who.clone(), check_report(b, sent53, rb));
}

/// Connect: empty, failing, real.
async fn connect(s: &mut Session, c: &mut Checks) -> Result<(), String> {
    let Session { a, b, r, .. } = s;
    b.command(60, Command::Connect { peers: vec![] });
    let empty = match b.ack(60, Duration::from_secs(5)).await {
        Ok((_, true, ..)) => b
            .expect(Duration::from_secs(2), "state{connected}", |l| {
                matches!(
                    l.msg,
                    Ok(NodeMsg::State {
                        state: NodeState::Connected,
                        ..
                    })
                )
            })
            .await
            .map(|_| ()),
        Ok((_, false, e, _)) => Err(format!("ok: false: {}", e.unwrap_or_default())),
        Err(e) => Err(e),
    };
    c.node("connect.empty", &b.who.clone(), empty);

    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    let bogus = PeerAddr {
        index: 99,
        peer_id: b.peer_id().unwrap_or_default(),
        addr: format!("/ip4/127.0.0.1/tcp/{closed_port}"),
    };
    a.command(61, Command::Connect { peers: vec![bogus] });
    let fail = match a.ack(61, Duration::from_secs(45)).await {
        Ok((_, true, ..)) => Err("a dial to a closed port was acked ok: true".into()),
        Ok((_, false, err, info)) => failed_dial(err, &info),
        Err(e) => Err(e),
    };
    c.node("connect.failure", &a.who.clone(), fail);

    let (Some(pa), Some(pb), Some(pr)) = (a.peer_addr(), b.peer_addr(), r.peer_addr()) else {
        return Err("a node has no listen address".into());
    };
    a.command(
        62,
        Command::Connect {
            peers: vec![pb.clone(), pr.clone()],
        },
    );
    let ca = check_connect(a.ack(62, Duration::from_secs(45)).await, 2);
    c.node("connect", &a.who.clone(), ca);
    b.command(
        63,
        Command::Connect {
            peers: vec![pa.clone(), pr.clone()],
        },
    );
    let cb = check_connect(b.ack(63, Duration::from_secs(45)).await, 2);
    c.node("connect", &b.who.clone(), cb);
    r.command(64, Command::Connect { peers: vec![] });
    r.ack(64, STEP)
        .await
        .map_err(|e| format!("the Rust reference: {e}"))?;
    Ok(())
}

/// A dial to `node 99` at a closed port: the error names it, the info counts it.
fn failed_dial(err: Option<String>, info: &Value) -> Result<(), String> {
    let mut probs = Vec::new();
    let e = err.unwrap_or_default();
    if !e.contains("node 99") {
        probs.push(format!("the error does not name `node 99`: {e:?}"));
    }
    if info.get("failed").and_then(Value::as_u64) != Some(1)
        || info.get("connected").and_then(Value::as_u64) != Some(0)
    {
        probs.push(format!("info is not {{connected: 0, failed: 1}}: {info}"));
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

/// Subscribe, waiting for the mesh.
async fn subscribe(s: &mut Session, c: &mut Checks) -> Result<(), String> {
    for (p, id) in [(&s.a, 70u64), (&s.b, 71), (&s.r, 72)] {
        p.command(
            id,
            Command::Subscribe {
                topics: vec![TOPIC.into()],
                wait_mesh: true,
                mesh_timeout_ms: 30_000,
            },
        );
    }
    for (p, id) in [(&mut s.a, 70u64), (&mut s.b, 71)] {
        let res = check_subscribe(p, id).await;
        c.node("subscribe.wait-mesh", &p.who.clone(), res);
    }
    match s.r.ack(72, Duration::from_secs(40)).await {
        Ok((_, true, ..)) => Ok(()),
        Ok((_, false, e, _)) => Err(format!(
            "the Rust reference found no mesh: {}",
            e.unwrap_or_default()
        )),
        Err(e) => Err(format!("the Rust reference: {e}")),
    }
}

/// A publish nobody can receive fails, after waiting `peer_timeout_ms`.
async fn publish_to_nobody(s: &mut Session, c: &mut Checks) {
    let a = &mut s.a;
    a.command(
        80,
        Command::Publish {
            topic: "nobody-listens-here".into(),
            count: 3,
            rate: None,
            size: SIZE,
            peer_timeout_ms: 500,
        },
    );
    let t80 = Instant::now();
    let np = match a.ack(80, STEP).await {
        Ok((_, true, ..)) => Err("acked ok: true".into()),
        Ok((_, false, err, info)) => {
            let mut probs = Vec::new();
            if info.get("published").and_then(Value::as_u64) != Some(0) {
                probs.push(format!("info is not {{published: 0}}: {info}"));
            }
            if err.is_none() {
                probs.push("no error text".into());
            }
            if t80.elapsed() < Duration::from_millis(400) {
                probs.push(format!(
                    "gave up after {} ms, before peer_timeout_ms (500)",
                    t80.elapsed().as_millis()
                ));
            }
            if probs.is_empty() {
                Ok(())
            } else {
                Err(probs.join("; "))
            }
        }
        Err(e) => Err(e),
    };
    c.node("publish.no-peer", &a.who.clone(), np);
}

/// Everyone publishes; a report while node 0 publishes is answered at once.
async fn publish(s: &mut Session, c: &mut Checks) -> Result<(), String> {
    let Session { a, b, r, .. } = s;
    let publish = Command::Publish {
        topic: TOPIC.into(),
        count: COUNT,
        rate: Some(RATE),
        size: SIZE,
        peer_timeout_ms: 10_000,
    };
    for (p, id) in [(&*a, 90u64), (&*b, 91), (&*r, 92)] {
        p.command(id, publish.clone());
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    a.command(93, Command::Report);
    let within = Duration::from_secs_f64(f64::from(COUNT) / RATE) + Duration::from_secs(30);
    let rep = a.ack(93, within).await;
    let pub_a = a.ack(90, within).await;
    let conc = match (&rep, &pub_a) {
        (Ok((ri, true, ..)), Ok((pi, ..))) if ri < pi => Ok(()),
        (Ok((_, true, ..)), Ok(_)) => {
            Err("the report was answered only after the publish finished".into())
        }
        (Ok((_, false, e, _)), _) => Err(format!(
            "the report failed: {}",
            e.clone().unwrap_or_default()
        )),
        (Err(e), _) => Err(format!("the report: {e}")),
        (_, Err(e)) => Err(format!("the publish: {e}")),
    };
    c.node("commands.concurrent", &a.who.clone(), conc);
    let pa_res = check_publish(a, pub_a);
    c.node("publish", &a.who.clone(), pa_res);
    let pub_b = b.ack(91, within).await;
    let pb_res = check_publish(b, pub_b);
    c.node("publish", &b.who.clone(), pb_res);
    match r.ack(92, within).await {
        Ok((_, true, ..)) => Ok(()),
        Ok((_, false, e, _)) => Err(format!(
            "the Rust reference could not publish: {}",
            e.unwrap_or_default()
        )),
        Err(e) => Err(format!("the Rust reference: {e}")),
    }
}

/// Until every node counted the 2 × COUNT messages of the others (or 20 s).
async fn settle(s: &mut Session) {
    let settle_until = Instant::now() + Duration::from_secs(20);
    let mut id = 100u64;
    loop {
        let mut all = true;
        for p in [&mut s.a, &mut s.b, &mut s.r] {
            id += 1;
            p.command(id, Command::Report);
            let _ = p.ack(id, Duration::from_secs(5)).await;
            let got = p.msgs().iter().rev().find_map(|(_, m)| match m {
                NodeMsg::Snapshot(s) => Some(s.received),
                _ => None,
            });
            all &= got.unwrap_or(0) >= 2 * u64::from(COUNT);
        }
        if all || Instant::now() >= settle_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Node 1 leaves the topic.
async fn unsubscribe(s: &mut Session, c: &mut Checks) {
    let b = &mut s.b;
    b.command(
        120,
        Command::Unsubscribe {
            topics: vec![TOPIC.into()],
        },
    );
    let un = match b.ack(120, STEP).await {
        Ok((_, true, _, info)) if info.get("unsubscribed").and_then(Value::as_u64) == Some(1) => {
            Ok(())
        }
        Ok((_, true, _, info)) => Err(format!("info is not {{unsubscribed: 1}}: {info}")),
        Ok((_, false, e, _)) => Err(format!("ok: false: {}", e.unwrap_or_default())),
        Err(e) => Err(e),
    };
    c.node("unsubscribe", &b.who.clone(), un);
}

/// Finish node 0 and the reference, abort node 1; returns when the session ended (ns).
async fn finish(s: &mut Session, c: &mut Checks) -> u64 {
    let Session { a, b, r, .. } = s;
    a.command(130, Command::Finish);
    r.command(131, Command::Finish);
    b.send(&OrchMsg::Abort {
        reason: "the conformance check ends here".into(),
    });
    let fa = check_finish(a, 130).await;
    c.node("finish", &a.who.clone(), fa);
    let ab = check_abort(
        b,
        "aborted by the orchestrator: the conformance check ends here",
        0,
    )
    .await;
    c.node("abort", &b.who.clone(), ab);
    let _ = r.wait_exit(Duration::from_secs(10)).await;
    r.drain();
    now_ns()
}

/// Snapshots, states and results of the nodes under test.
fn messages_and_results(s: &mut Session, c: &mut Checks, end_ns: u64) {
    let mut unasked = std::mem::take(&mut s.unasked).into_iter();
    for p in [&mut s.a, &mut s.b] {
        let m = check_messages(p);
        c.node("messages.well-formed", &p.who.clone(), m);
        let sn = check_snapshots(p, unasked.next().unwrap_or(Ok(())));
        c.node("snapshots.periodic", &p.who.clone(), sn);
        let st = check_states(p);
        c.node("states.forward", &p.who.clone(), st);
    }
    let window = (s.start_ns, end_ns);
    let expect_exit = [
        (&s.a, ExitReason::Finished, true),
        (&s.b, ExitReason::Aborted, false),
    ];
    for (p, exit, subscribed_at_end) in expect_exit {
        let Some((_, line)) = p.result() else {
            for id in [
                "result.well-formed",
                "result.consistent",
                "result.seen",
                "result.histograms",
            ] {
                c.skip(id, format!("{}: no result", p.who));
            }
            continue;
        };
        c.node("result.well-formed", &p.who, check_well_formed(line));
        let Some(res) = p.parsed_result() else {
            for id in ["result.consistent", "result.seen", "result.histograms"] {
                c.skip(id, format!("{}: the result could not be read", p.who));
            }
            continue;
        };
        c.node(
            "result.consistent",
            &p.who,
            check_consistent(p, res, exit, subscribed_at_end, window),
        );
        c.node("result.seen", &p.who, check_seen(p.index, res));
        c.node("result.histograms", &p.who, check_histograms(res));
    }
}

/// Interop, both ways, exact: what each node published (from its result, else from its
/// publish ack) arrived at the others exactly once, with a latency each.
fn interop(s: &Session, c: &mut Checks) {
    let published: HashMap<u32, u64> = [&s.a, &s.b, &s.r]
        .iter()
        .filter_map(|p| {
            let n = match p.parsed_result() {
                Some(res) => res.published.len() as u64,
                None => p.lines.iter().find_map(|l| match &l.msg {
                    Ok(NodeMsg::Ack { id, info, .. }) if (90..=92).contains(id) => {
                        info.get("published").and_then(Value::as_u64)
                    }
                    _ => None,
                })?,
            };
            Some((p.index, n))
        })
        .collect();
    match s.r.parsed_result() {
        None => c.skip(
            "interop.to-reference",
            "the Rust reference sent no readable result",
        ),
        Some(rr) => {
            for p in [&s.a, &s.b] {
                let res = exact_from(rr, p.index, published.get(&p.index).copied());
                c.node(
                    "interop.to-reference",
                    &p.who,
                    res.map_err(|e| format!("at the reference: {e}")),
                );
            }
        }
    }
    for p in [&s.a, &s.b] {
        let Some(res) = p.parsed_result() else {
            c.skip(
                "interop.from-reference",
                format!("{}: no readable result", p.who),
            );
            continue;
        };
        let other = if p.index == 0 { 1 } else { 0 };
        let mut probs = Vec::new();
        for origin in [2u32, other] {
            if let Err(e) = exact_from(res, origin, published.get(&origin).copied()) {
                probs.push(e);
            }
        }
        c.node(
            "interop.from-reference",
            &p.who,
            if probs.is_empty() {
                Ok(())
            } else {
                Err(probs.join("; "))
            },
        );
    }
}
