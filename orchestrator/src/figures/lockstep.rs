//! Lock-step publishing's own figure: each message's time to full delivery, from the
//! publisher's send time (its result) to the last receiver's receive time (its `delivered`
//! event), both measured by the nodes; percentiles exact over the messages.

use crate::record::drive_log::{DriveLog, LockstepLog, SentMessage};
use crate::record::sections::{LockstepMessage, LockstepPhase, LockstepSection};
use crate::record::{Latency, NodeRecord};
use std::collections::HashMap;

/// The section, or nothing when the workload had no lock-step phase.
pub fn section(nodes: &[NodeRecord], log: &DriveLog) -> Option<LockstepSection> {
    let logs = &log.lockstep;
    if logs.is_empty() {
        return None;
    }
    // (origin, seq) → send time, from every publisher's own record.
    let sent: HashMap<(u32, u64), u64> = nodes
        .iter()
        .filter_map(|n| Some((n.index, n.result.as_ref()?)))
        .flat_map(|(i, r)| r.published.iter().map(move |p| ((i, p.seq), p.at_ns)))
        .collect();
    Some(LockstepSection {
        phases: logs.iter().map(|l| phase(l, &sent)).collect(),
        workload_span_ms: workload_span_ms(log),
    })
}

/// From the start of the first workload phase (peer discovery, in the reference workload) to
/// when the driver saw the last lock-step message at every subscriber: the reference
/// benchmark's test body as its runtime trace spans it, but for the process launch (the
/// reference creates its hosts in-process). None unless every lock-step message completed.
pub fn workload_span_ms(log: &DriveLog) -> Option<f64> {
    let start = log.workload_start?;
    if log.lockstep.is_empty() || log.lockstep.iter().any(|l| l.complete < l.planned) {
        return None;
    }
    let end = log.lockstep.iter().filter_map(|l| l.last_read).max()?;
    Some(end.saturating_duration_since(start).as_secs_f64() * 1e3)
}

fn phase(log: &LockstepLog, sent: &HashMap<(u32, u64), u64>) -> LockstepPhase {
    let messages: Vec<LockstepMessage> = log.messages.iter().map(|m| message(m, sent)).collect();
    let times: Vec<f64> = messages.iter().filter_map(|m| m.full_delivery_ms).collect();
    let slowest = messages
        .iter()
        .find(|m| !m.missing.is_empty())
        .or_else(|| {
            messages
                .iter()
                .filter_map(|m| Some((m.full_delivery_ms?, m)))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, m)| m)
        })
        .cloned();
    LockstepPhase {
        phase: log.phase,
        topic: log.topic.clone(),
        planned: log.planned,
        complete: messages.iter().filter(|m| m.missing.is_empty()).count() as u32,
        full_delivery: exact(times),
        slowest,
        messages,
    }
}

fn message(m: &SentMessage, sent: &HashMap<(u32, u64), u64>) -> LockstepMessage {
    let missing: Vec<u32> = m
        .receivers
        .iter()
        .copied()
        .filter(|r| !m.delivered.iter().any(|(d, _)| d == r))
        .collect();
    let sent_ns = sent.get(&(m.origin, m.seq)).copied();
    let last = m
        .delivered
        .iter()
        .filter(|(d, _)| m.receivers.contains(d))
        .map(|&(_, at)| at)
        .max();
    let full_delivery_ms = match (sent_ns, last) {
        (Some(s), Some(l)) if missing.is_empty() => Some(l.saturating_sub(s) as f64 / 1e6),
        // A message with no receiver is delivered when it is sent.
        (Some(_), None) if missing.is_empty() => Some(0.0),
        _ => None,
    };
    LockstepMessage {
        origin: m.origin,
        seq: m.seq,
        sent_ns,
        receivers: m.receivers.len() as u32,
        delivered: m
            .delivered
            .iter()
            .map(|&(d, at)| [u64::from(d), at])
            .collect(),
        missing,
        full_delivery_ms,
    }
}

/// Exact nearest-rank percentiles of `v` (ms).
fn exact(mut v: Vec<f64>) -> Option<Latency> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let rank = |q: f64| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(Latency {
        count: n as u64,
        min_ms: v[0],
        p50_ms: rank(0.50),
        p90_ms: rank(0.90),
        p99_ms: rank(0.99),
        max_ms: v[n - 1],
        mean_ms: v.iter().sum::<f64>() / n as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = exact((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!(
            (l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert!(exact(vec![]).is_none());
    }

    #[test]
    fn incomplete_message_has_no_time_and_names_the_missing() {
        let sent = HashMap::from([((1, 0), 1_000_000)]);
        let m = SentMessage {
            origin: 1,
            seq: 0,
            receivers: vec![0, 2, 3],
            delivered: vec![(0, 3_000_000), (3, 2_000_000)],
        };
        let r = message(&m, &sent);
        assert_eq!(r.missing, vec![2]);
        assert_eq!(r.full_delivery_ms, None);
        let m = SentMessage {
            delivered: vec![(0, 3_000_000), (3, 2_000_000), (2, 5_500_000)],
            ..m
        };
        assert_eq!(message(&m, &sent).full_delivery_ms, Some(4.5));
    }

    #[test]
    fn the_workload_span_ends_at_the_last_message_read_and_needs_every_message() {
        use std::time::Duration;
        let t0 = tokio::time::Instant::now();
        let phase = |planned, complete, ms| LockstepLog {
            planned,
            complete,
            last_read: Some(t0 + Duration::from_millis(ms)),
            ..LockstepLog::default()
        };
        let mut log = DriveLog {
            workload_start: Some(t0),
            ..DriveLog::default()
        };
        log.lockstep = vec![phase(1, 1, 1500), phase(3, 3, 2500)];
        assert_eq!(workload_span_ms(&log), Some(2500.0));
        log.lockstep[1].complete = 2;
        assert_eq!(
            workload_span_ms(&log),
            None,
            "a message did not reach everyone"
        );
        log.lockstep.clear();
        assert_eq!(workload_span_ms(&log), None, "no lock-step phase");
    }
}
