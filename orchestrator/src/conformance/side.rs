//! The side processes, one scenario each and all at once, beside the main session: missing
//! environment, an unreachable control address, a Unix socket control channel ended by
//! SIGTERM, welcomes with another protocol or index, an abort before the welcome, and the
//! orchestrator closing the channel.

use super::checks::commands::check_abort;
use super::checks::results::result_problem;
use super::checks::saw_state;
use super::ctx::Ctx;
use super::harness::{Proc, STARTUP, STEP, Spawn, excerpt, exit_text, node_config, spawn, welcome};
use super::report::Checks;
use std::time::Duration;
use testbed_contract::protocol::{NodeMsg, OrchMsg};
use testbed_contract::results::{ExitReason, NodeState};
use testbed_contract::{PROTOCOL_VERSION, env};

pub(super) async fn side_processes(ctx: &Ctx) -> Checks {
    let (a, b, c, d, e, f, g, h) = tokio::join!(
        side_env(ctx, "env.no-control-addr", env::CONTROL_ADDR, 10),
        side_env(ctx, "env.no-node-index", env::NODE_INDEX, 11),
        side_unreachable(ctx),
        side_sigterm(ctx),
        side_bad_welcome(ctx, "welcome.wrong-protocol", 14, true),
        side_bad_welcome(ctx, "welcome.wrong-index", 15, false),
        side_abort_before_welcome(ctx),
        side_channel_lost(ctx),
    );
    let mut checks = Checks::default();
    for part in [a, b, c, d, e, f, g, h] {
        for (id, rs) in part.results {
            checks.results.entry(id).or_default().extend(rs);
        }
    }
    checks
}

async fn side_spawn(
    ctx: &Ctx,
    index: u32,
    name: &str,
    unix: bool,
    without: &[&str],
    control_addr: Option<String>,
) -> Result<Proc, String> {
    spawn(Spawn {
        program: &ctx.program,
        index,
        who: ctx.who(index),
        unix,
        without,
        control_addr,
        logs: &ctx.logs,
        name,
    })
    .await
}

async fn side_env(ctx: &Ctx, id: &'static str, var: &'static str, index: u32) -> Checks {
    let mut c = Checks::default();
    let without: &[&str] = if var == env::NODE_INDEX {
        &[env::NODE_INDEX, env::JOB_COMPLETION_INDEX]
    } else {
        &[var]
    };
    let r = async {
        let mut p = side_spawn(ctx, index, id, false, without, None).await?;
        let exit = p.wait_exit(Duration::from_secs(30)).await;
        let mut probs = Vec::new();
        if exit.and_then(|s| s.code()) != Some(2) {
            probs.push(format!("{}, not exit code 2", exit_text(exit)));
        }
        let stderr = p.stderr_text();
        if !stderr.contains(var) {
            probs.push(format!(
                "stderr does not name {var}: {:?}",
                excerpt(stderr.trim())
            ));
        }
        if probs.is_empty() {
            Ok(())
        } else {
            Err(probs.join("; "))
        }
    }
    .await;
    c.add(id, r);
    c
}

async fn side_unreachable(ctx: &Ctx) -> Checks {
    let mut c = Checks::default();
    let r = async {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            l.local_addr().map_err(|e| e.to_string())?.port()
        };
        let mut p = side_spawn(
            ctx,
            12,
            "control-unreachable",
            false,
            &[],
            Some(format!("tcp://127.0.0.1:{port}")),
        )
        .await?;
        let exit = p.wait_exit(Duration::from_secs(40)).await;
        if exit.and_then(|s| s.code()) == Some(3) {
            Ok(())
        } else {
            Err(format!("{}, not exit code 3", exit_text(exit)))
        }
    }
    .await;
    c.add("control.unreachable", r);
    c
}

/// Hello, welcome, listening over a Unix socket; then SIGTERM.
async fn side_sigterm(ctx: &Ctx) -> Checks {
    let mut c = Checks::default();
    let mut p = match side_spawn(ctx, 13, "sigterm-unix", true, &[], None).await {
        Ok(p) => p,
        Err(e) => {
            c.add("control.unix", Err(e));
            c.skip("signal.sigterm", "the node could not be started");
            return c;
        }
    };
    let up = async {
        p.expect(STARTUP, "hello over the Unix socket", |l| {
            l.kind() == "hello"
        })
        .await?;
        p.send(&welcome(13, 14));
        p.expect(STARTUP, "listening", |l| l.kind() == "listening")
            .await?;
        p.expect(STEP, "state{listening}", |l| {
            matches!(
                l.msg,
                Ok(NodeMsg::State {
                    state: NodeState::Listening,
                    ..
                })
            )
        })
        .await
        .map(|_| ())
    }
    .await;
    let ok = up.is_ok();
    c.node("control.unix", &p.who.clone(), up);
    if !ok {
        c.skip(
            "signal.sigterm",
            "the node did not come up over the Unix socket",
        );
        return c;
    }
    p.signal(libc::SIGTERM);
    let r = check_abort(&mut p, "stopped by SIGTERM", 143).await;
    c.node("signal.sigterm", &p.who.clone(), r);
    c
}

async fn side_bad_welcome(ctx: &Ctx, id: &'static str, index: u32, wrong_protocol: bool) -> Checks {
    let mut c = Checks::default();
    let r = async {
        let mut p = side_spawn(ctx, index, id, false, &[], None).await?;
        p.expect(STARTUP, "hello", |l| l.kind() == "hello").await?;
        let msg = if wrong_protocol {
            OrchMsg::Welcome {
                protocol: PROTOCOL_VERSION + 1,
                config: Box::new(node_config(index, index + 1)),
            }
        } else {
            OrchMsg::Welcome {
                protocol: PROTOCOL_VERSION,
                config: Box::new(node_config(index + 1, index + 2)),
            }
        };
        p.send(&msg);
        let exit = p.wait_exit(Duration::from_secs(20)).await;
        p.drain();
        let mut probs = Vec::new();
        match p.parsed_result() {
            Some(r)
                if r.exit == ExitReason::Error
                    && r.error.as_ref().is_some_and(|e| !e.is_empty()) => {}
            Some(r) => probs.push(format!(
                "result exit {:?} with error {:?}, not exit error with the error",
                r.exit, r.error
            )),
            None => probs.push(result_problem(&p)),
        }
        if !saw_state(&p, NodeState::Failed) {
            probs.push("no state{failed}".into());
        }
        if exit.and_then(|s| s.code()) != Some(1) {
            probs.push(format!("{}, not exit code 1", exit_text(exit)));
        }
        if probs.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", p.who, probs.join("; ")))
        }
    }
    .await;
    c.add(id, r);
    c
}

async fn side_abort_before_welcome(ctx: &Ctx) -> Checks {
    let mut c = Checks::default();
    let r = async {
        let mut p = side_spawn(ctx, 16, "abort-before-welcome", false, &[], None).await?;
        p.expect(STARTUP, "hello", |l| l.kind() == "hello").await?;
        p.send(&OrchMsg::Abort {
            reason: "not needed".into(),
        });
        let exit = p.wait_exit(Duration::from_secs(20)).await;
        p.drain();
        let mut probs = Vec::new();
        match p.parsed_result() {
            Some(r) => {
                if r.exit != ExitReason::Aborted {
                    probs.push(format!("result exit {:?}, not aborted", r.exit));
                }
                if r.error.as_deref() != Some("aborted by the orchestrator: not needed") {
                    probs.push(format!(
                        "result error {:?}, not \"aborted by the orchestrator: not needed\"",
                        r.error
                    ));
                }
                if !(r.latency.is_empty()
                    && r.published.is_empty()
                    && r.seen.is_empty()
                    && r.subscriptions.is_empty())
                {
                    probs.push("latency, published, seen or subscriptions not empty".into());
                }
            }
            None => probs.push(result_problem(&p)),
        }
        if exit.and_then(|s| s.code()) != Some(0) {
            probs.push(format!("{}, not exit code 0", exit_text(exit)));
        }
        if probs.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", p.who, probs.join("; ")))
        }
    }
    .await;
    c.add("abort.before-welcome", r);
    c
}

async fn side_channel_lost(ctx: &Ctx) -> Checks {
    let mut c = Checks::default();
    let r = async {
        let mut p = side_spawn(ctx, 17, "channel-lost", false, &[], None).await?;
        p.expect(STARTUP, "hello", |l| l.kind() == "hello").await?;
        p.send(&welcome(17, 18));
        p.expect(STARTUP, "listening", |l| l.kind() == "listening")
            .await?;
        p.close();
        let exit = p.wait_exit(Duration::from_secs(15)).await;
        p.drain();
        let mut probs = Vec::new();
        if exit.and_then(|s| s.code()) != Some(3) {
            probs.push(format!("{}, not exit code 3", exit_text(exit)));
        }
        if p.result().is_some() {
            probs.push("sent a result to a closed channel".into());
        }
        if probs.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", p.who, probs.join("; ")))
        }
    }
    .await;
    c.add("channel.lost", r);
    c
}
