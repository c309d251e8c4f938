//! Checks over every message a node sent: well-formed, snapshots unasked and periodic,
//! states only forward.

use super::results::find_nulls;
use crate::conformance::harness::{COUNT, Proc, excerpt};
use testbed_contract::protocol::NodeMsg;
use testbed_contract::results::NodeState;
use tokio::time::Instant;

/// Every line but the result (checked on its own) is a contract message without nulls.
pub(crate) fn check_messages(p: &mut Proc) -> Result<(), String> {
    p.drain();
    let mut probs = Vec::new();
    for (n, l) in p.lines.iter().enumerate() {
        if l.kind() == "result" {
            continue;
        }
        if let Err(e) = &l.msg {
            probs.push(format!(
                "message {} (`{}`): {e}: {}",
                n + 1,
                l.kind(),
                excerpt(&l.raw)
            ));
        } else if let Some(v) = &l.value {
            let mut nulls = Vec::new();
            find_nulls(v, &l.kind(), &mut nulls);
            if !nulls.is_empty() {
                probs.push(format!(
                    "message {} (`{}`): null instead of an omitted field at {}",
                    n + 1,
                    l.kind(),
                    nulls.join(", ")
                ));
            }
        }
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

/// `unasked`: whether two snapshots came unasked after the welcome (checked at the time).
pub(crate) fn check_snapshots(p: &mut Proc, unasked: Result<(), String>) -> Result<(), String> {
    let welcome_at = p
        .lines
        .iter()
        .find(|l| l.kind() == "listening")
        .map(|l| l.at);
    let end_at = p
        .lines
        .iter()
        .find(|l| {
            matches!(
                l.msg,
                Ok(NodeMsg::State {
                    state: NodeState::Draining,
                    ..
                })
            )
        })
        .map(|l| l.at);
    let snaps: Vec<(Instant, testbed_contract::results::Snapshot)> = p
        .lines
        .iter()
        .filter_map(|l| match &l.msg {
            Ok(NodeMsg::Snapshot(s)) => Some((l.at, s.clone())),
            _ => None,
        })
        .collect();
    if welcome_at.is_none() || end_at.is_none() {
        return Err("the session did not reach its end".into());
    }
    let mut probs = Vec::new();
    if let Err(e) = unasked {
        probs.push(e);
    }
    // In the order they were taken. Two may be taken concurrently (a periodic one and one for
    // a report), and an implementation may read its counters a moment before the clock: only
    // snapshots at least 100 ms apart must have counters that did not go backwards.
    let mut snaps = snaps;
    snaps.sort_by_key(|s| s.1.at_ns);
    if snaps.iter().any(|s| s.1.rss_bytes == 0) {
        probs.push("a snapshot with rss_bytes 0".into());
    }
    'outer: for (i, (_, s)) in snaps.iter().enumerate() {
        for (_, q) in &snaps[..i] {
            if q.at_ns + 100_000_000 <= s.at_ns
                && (s.published < q.published || s.received < q.received || s.cpu_ns < q.cpu_ns)
            {
                probs.push(format!(
                    "snapshot counters went backwards: at_ns {} published {} received {} cpu_ns {}, then at_ns {} published {} received {} cpu_ns {}",
                    q.at_ns, q.published, q.received, q.cpu_ns, s.at_ns, s.published, s.received, s.cpu_ns
                ));
                break 'outer;
            }
        }
    }
    let prev = snaps.last().map(|s| &s.1);
    if let Some(last) = prev {
        if last.cpu_ns == 0 {
            probs.push("cpu_ns is 0".into());
        }
        if last.published != u64::from(COUNT) {
            probs.push(format!(
                "the last snapshot says published {}, not {COUNT}",
                last.published
            ));
        }
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

pub(crate) fn check_states(p: &mut Proc) -> Result<(), String> {
    let sent: Vec<(NodeState, u64)> = p
        .msgs()
        .iter()
        .filter_map(|(_, m)| match m {
            NodeMsg::State { state, at_ns, .. } => Some((*state, *at_ns)),
            _ => None,
        })
        .collect();
    let mut probs = Vec::new();
    for w in sent.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.0 <= a.0 && b.0 != NodeState::Failed {
            probs.push(format!("state {} after {}", b.0.as_str(), a.0.as_str()));
        }
        if b.1 < a.1 {
            probs.push(format!(
                "state {} has an earlier at_ns than {}",
                b.0.as_str(),
                a.0.as_str()
            ));
        }
    }
    if let Some(r) = p.parsed_result() {
        let timeline: Vec<(NodeState, u64)> =
            r.timeline.iter().map(|s| (s.state, s.at_ns)).collect();
        if timeline != sent {
            let show = |v: &[(NodeState, u64)]| {
                v.iter()
                    .map(|s| s.0.as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            };
            probs.push(format!(
                "the result's timeline ({}) differs from the states sent ({}){}",
                show(&timeline),
                show(&sent),
                if show(&timeline) == show(&sent) {
                    " in timestamps"
                } else {
                    ""
                }
            ));
        }
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}
