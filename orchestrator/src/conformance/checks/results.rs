//! Checks of a node's final result: well-formed, consistent with what the session did, exact
//! seen-sets and latency histograms.

use crate::conformance::harness::{COUNT, Line, Proc, RATE, TOPIC};
use serde_json::Value;
use testbed_contract::histogram::{self, MAX_LATENCY_US, SIGFIG};
use testbed_contract::results::{ExitReason, NodeResult, NodeState};

/// Why a process's result cannot be used (none, or not the contract's).
pub(crate) fn result_problem(p: &Proc) -> String {
    match p.result() {
        None => "no result".into(),
        Some((_, l)) => format!(
            "the result does not match the contract: {}",
            l.msg.as_ref().err().cloned().unwrap_or_default()
        ),
    }
}

/// The result line against the contract: strict parse, no nulls, integers as integers.
pub(crate) fn check_well_formed(line: &Line) -> Result<(), String> {
    let mut probs = Vec::new();
    if let Err(e) = &line.msg {
        probs.push(format!("does not match the contract's result: {e}"));
    }
    if let Some(v) = &line.value {
        let mut nulls = Vec::new();
        find_nulls(v, "result", &mut nulls);
        if !nulls.is_empty() {
            probs.push(format!(
                "null instead of an omitted field at {}",
                nulls.join(", ")
            ));
        }
        for list in ["latency", "published", "seen", "subscriptions", "timeline"] {
            if !v.get(list).is_some_and(Value::is_array) {
                probs.push(format!(
                    "`{list}` is not a list (empty lists are sent as [])"
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

pub(crate) fn find_nulls(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Null => out.push(at.to_string()),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                find_nulls(x, &format!("{at}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                find_nulls(x, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

pub(crate) fn check_consistent(
    p: &Proc,
    r: &NodeResult,
    exit: ExitReason,
    subscribed_at_end: bool,
    window: (u64, u64),
) -> Result<(), String> {
    let mut probs = Vec::new();
    if r.index != p.index {
        probs.push(format!("index {}, not {}", r.index, p.index));
    }
    if Some(&r.peer_id) != p.peer_id().as_ref() {
        probs.push(format!(
            "peer_id {} differs from the one it listened with",
            r.peer_id
        ));
    }
    if r.exit != exit {
        probs.push(format!("exit {:?}, not {exit:?}", r.exit));
    }
    if exit == ExitReason::Finished && r.error.is_some() {
        probs.push(format!("an error for a finished node: {:?}", r.error));
    }
    let (from, to) = window;
    let seqs: Vec<u64> = r.published.iter().map(|x| x.seq).collect();
    if seqs != (0..u64::from(COUNT)).collect::<Vec<_>>() {
        probs.push(format!(
            "published seqs are {seqs:?}, not 0..{COUNT} in order"
        ));
    }
    if r.published.iter().any(|x| x.topic != TOPIC) {
        probs.push(format!("a published message not on topic {TOPIC}"));
    }
    if r.published.windows(2).any(|w| w[1].at_ns < w[0].at_ns) {
        probs.push("published at_ns go backwards".into());
    }
    if r.published.iter().any(|x| x.at_ns < from || x.at_ns > to) {
        probs.push("a published at_ns outside the session (not ns since the Unix epoch?)".into());
    }
    if let Some(first) = r.published.first().zip(r.published.last()) {
        let span_s = (first.1.at_ns.saturating_sub(first.0.at_ns)) as f64 / 1e9;
        let nominal = f64::from(COUNT - 1) / RATE;
        if span_s < nominal * 0.8 {
            probs.push(format!("published {COUNT} messages in {span_s:.2} s, faster than rate {RATE}/s allows ({nominal:.2} s)"));
        }
    }
    match r.subscriptions.as_slice() {
        [s] if s.topic == TOPIC => {
            if s.from_ns < from || s.from_ns > to {
                probs.push("the subscription's from_ns is outside the session".into());
            }
            match (subscribed_at_end, s.to_ns) {
                (true, Some(_)) => {
                    probs.push("the subscription has a to_ns though it never unsubscribed".into())
                }
                (false, None) => {
                    probs.push("the subscription has no to_ns after unsubscribe".into())
                }
                (false, Some(t)) if t < s.from_ns => {
                    probs.push("the subscription ends before it starts".into())
                }
                _ => {}
            }
        }
        other => probs.push(format!(
            "subscriptions are {other:?}, not one span on {TOPIC}"
        )),
    }
    if r.peak_rss_bytes == 0 || r.final_rss_bytes == 0 {
        probs.push("peak_rss_bytes or final_rss_bytes is 0".into());
    }
    if r.peak_rss_bytes < r.final_rss_bytes {
        probs.push(format!(
            "peak_rss_bytes {} < final_rss_bytes {}",
            r.peak_rss_bytes, r.final_rss_bytes
        ));
    }
    if r.cpu_ns == 0 {
        probs.push("cpu_ns is 0".into());
    }
    if r.timeline.last().map(|s| s.state) != Some(NodeState::Done) {
        probs.push("the timeline does not end with done".into());
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

pub(crate) fn check_seen(own: u32, r: &NodeResult) -> Result<(), String> {
    let mut probs = Vec::new();
    let mut total = 0u64;
    for w in r.seen.windows(2) {
        if w[1].origin <= w[0].origin {
            probs.push(format!(
                "origins not ascending ({} after {})",
                w[1].origin, w[0].origin
            ));
        }
    }
    for s in &r.seen {
        if s.origin == own {
            probs.push("its own messages are in its seen-set".into());
        }
        if s.ranges.is_empty() {
            probs.push(format!("origin {} has no ranges (leave it out)", s.origin));
        }
        for rg in &s.ranges {
            if rg[0] > rg[1] {
                probs.push(format!("origin {}: range {rg:?} is reversed", s.origin));
            }
            total += rg[1].saturating_sub(rg[0]) + 1;
        }
        for w in s.ranges.windows(2) {
            if w[1][0] <= w[0][1].saturating_add(1) {
                probs.push(format!(
                    "origin {}: ranges {:?} and {:?} overlap, touch or are out of order",
                    s.origin, w[0], w[1]
                ));
            }
        }
    }
    if total != r.received {
        probs.push(format!(
            "received is {}, the seen-sets hold {total}",
            r.received
        ));
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

pub(crate) fn check_histograms(r: &NodeResult) -> Result<(), String> {
    let mut probs = Vec::new();
    let mut count = 0u64;
    for w in r.latency.windows(2) {
        if w[1].origin_group <= w[0].origin_group {
            probs.push(format!(
                "origin groups not ascending ({} after {})",
                w[1].origin_group, w[0].origin_group
            ));
        }
    }
    for l in &r.latency {
        let g = l.origin_group;
        if base64_prefix(&l.hdr).is_none_or(|b| b[..4] != [0x1c, 0x84, 0x93, 0x14]) {
            probs.push(format!(
                "group {g}: not the V2 compressed encoding in base64 (cookie 0x1c849314)"
            ));
        }
        match histogram::decode(&l.hdr) {
            Err(e) => probs.push(format!("group {g}: {e}")),
            Ok(h) => {
                if h.low() != 1 || h.high() != MAX_LATENCY_US || h.sigfig() != SIGFIG {
                    probs.push(format!(
                        "group {g}: bounds {}..{} with {} digits, not 1..{MAX_LATENCY_US} with {SIGFIG}",
                        h.low(),
                        h.high(),
                        h.sigfig()
                    ));
                }
                if h.is_empty() {
                    probs.push(format!("group {g}: an empty histogram (leave it out)"));
                }
                count += h.len();
            }
        }
    }
    if probs.is_empty() && count != r.received {
        probs.push(format!(
            "the histograms hold {count} samples, received is {}",
            r.received
        ));
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

/// `r` saw exactly seqs 0..n of `origin` and its histogram of `origin`'s group holds n
/// plausible samples.
pub(crate) fn exact_from(
    r: &NodeResult,
    origin: u32,
    published: Option<u64>,
) -> Result<(), String> {
    let Some(n) = published else {
        return Err(format!(
            "node {origin} neither acked its publish nor sent a result, so its messages cannot be counted"
        ));
    };
    let ranges = r
        .seen
        .iter()
        .find(|s| s.origin == origin)
        .map(|s| s.ranges.clone())
        .unwrap_or_default();
    let want = if n == 0 { vec![] } else { vec![[0, n - 1]] };
    if ranges != want {
        return Err(format!(
            "saw {ranges:?} of node {origin}'s messages, not {want:?}"
        ));
    }
    let group = origin as u16;
    let h = r
        .latency
        .iter()
        .find(|l| l.origin_group == group)
        .map(|l| histogram::decode(&l.hdr));
    match h {
        None if n > 0 => Err(format!("no latency histogram for origin group {group}")),
        None => Ok(()),
        Some(Err(e)) => Err(format!("origin group {group}: {e}")),
        Some(Ok(h)) if h.len() != n => Err(format!(
            "origin group {group}: {} latency samples for {n} messages",
            h.len()
        )),
        Some(Ok(h)) if h.max() > 60_000_000 => Err(format!(
            "origin group {group}: a latency of {} s (wrong publish time or clock?)",
            h.max() / 1_000_000
        )),
        Some(Ok(_)) => Ok(()),
    }
}

/// The first 6 bytes of standard base64 text (its first 8 characters).
pub(crate) fn base64_prefix(s: &str) -> Option<[u8; 6]> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let chars = s.as_bytes().get(..8)?;
    let mut bits: u64 = 0;
    for &ch in chars {
        bits = (bits << 6) | ALPHABET.iter().position(|&a| a == ch)? as u64;
    }
    let b = bits.to_be_bytes();
    Some([b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_cookie() {
        let mut h = histogram::new_latency_histogram();
        h.record(5).unwrap();
        let text = histogram::encode(&h).unwrap();
        assert_eq!(base64_prefix(&text).unwrap()[..4], [0x1c, 0x84, 0x93, 0x14]);
        assert!(base64_prefix("!!").is_none());
    }
}
