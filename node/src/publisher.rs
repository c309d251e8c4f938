//! `publish`: wait for a subscribed peer, then publish `count` messages at a rate or back to
//! back, as a job the event loop steps between swarm events (publishing never blocks the
//! swarm).
//!
//! Paced messages carry their due time (`start + i / rate`, wall clock) besides their send
//! time, so receivers measure latency from when the message should have left: a publisher
//! that falls behind shows up in the latency (no coordinated omission) and in its own
//! `publish_lag` histogram.

use crate::ack::Outcome;
use crate::clock::now_ns;
use crate::pubsub::{PublishFailure, Pubsub};
use hdrhistogram::Histogram;
use std::time::Duration;
use testbed_contract::histogram::{self, new_latency_histogram};
use testbed_contract::payload::Header;
use testbed_contract::results::Published;
use tokio::time::Instant;

/// Back to back, a job publishes at most this many messages before the loop polls the swarm
/// again: the router's queues drain while we publish.
const BATCH: u32 = 32;
/// A retryable failure (no subscribed peer, full queues) is retried this long, this often.
const RETRY_FOR: Duration = Duration::from_secs(1);
const RETRY_EVERY: Duration = Duration::from_millis(10);

/// Every message this node published, compactly (topic names stored once), and the
/// publisher's lag (send − due).
#[derive(Debug, Default)]
pub struct PublishLog {
    topics: Vec<String>,
    entries: Vec<Entry>,
    /// Send − due per published message, µs; created with the first one.
    lag: Option<Histogram<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    seq: u64,
    topic: u32,
    send_ns: u64,
    /// Paced messages only: back to back, due = send.
    due_ns: Option<u64>,
}

impl PublishLog {
    fn topic_index(&mut self, topic: &str) -> u32 {
        match self.topics.iter().position(|t| t == topic) {
            Some(i) => i as u32,
            None => {
                self.topics.push(topic.to_owned());
                self.topics.len() as u32 - 1
            }
        }
    }

    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    fn record(&mut self, e: Entry) {
        let lag_us = e
            .due_ns
            .map_or(0, |due| e.send_ns.saturating_sub(due) / 1_000);
        self.lag
            .get_or_insert_with(new_latency_histogram)
            .saturating_record(lag_us);
        self.entries.push(e);
    }

    pub fn to_published(&self) -> Vec<Published> {
        self.entries
            .iter()
            .map(|e| Published {
                seq: e.seq,
                topic: self.topics[e.topic as usize].clone(),
                at_ns: e.send_ns,
                due_ns: e.due_ns,
            })
            .collect()
    }

    /// The `publish_lag` histogram in the contract's encoding; None if nothing was published.
    pub fn lag(&self) -> Result<Option<String>, histogram::HistogramError> {
        self.lag.as_ref().map(histogram::encode).transpose()
    }
}

/// What a job needs from the node while it steps.
pub struct Ctx<'a> {
    pub net: &'a mut Pubsub,
    pub log: &'a mut PublishLog,
    /// Next sequence number: per node, from 0, across all topics.
    pub next_seq: &'a mut u64,
    pub origin: u32,
    /// The tracer, when tracing is on: sampled messages get a publish span whose context
    /// travels in the header.
    pub tel: Option<&'a mut crate::telemetry::Telemetry>,
}

#[derive(Debug)]
enum Phase {
    /// Waiting until a peer subscribed to the topic is known.
    WaitPeers { until: Instant },
    /// Message `i` is due at `start + i / rate`: scheduled against the start, not the
    /// previous send, so the rate does not drift (a late message is sent at once).
    /// `start_ns` is the same instant on the wall clock, for the due times in the header.
    Sending { start: Instant, start_ns: u64 },
}

#[derive(Debug)]
pub struct PublishJob {
    pub cmd_id: u64,
    topic: String,
    topic_idx: u32,
    count: u32,
    done: u32,
    size: usize,
    /// Messages per second; None: back to back.
    rate: Option<f64>,
    peer_timeout: Duration,
    phase: Phase,
    started: Instant,
    failing_since: Option<Instant>,
}

pub enum Step {
    /// Call again at this instant (or earlier, after any event).
    Wait(Instant),
    Done(Outcome),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PublishRequestError {
    #[error("size {size} exceeds what the router carries on topic {topic:?} ({max} bytes)")]
    TooLarge {
        size: usize,
        max: usize,
        topic: String,
    },
}

impl PublishJob {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cmd_id: u64,
        topic: String,
        count: u32,
        rate: Option<f64>,
        size: u32,
        peer_timeout: Duration,
        max_payload: usize,
        log: &mut PublishLog,
        now: Instant,
    ) -> Result<Self, PublishRequestError> {
        // No rate, or one that is not a positive number: back to back.
        let rate = rate.filter(|r| r.is_finite() && *r > 0.0);
        let size = (size as usize).max(testbed_contract::payload::HEADER_LEN);
        if size > max_payload {
            return Err(PublishRequestError::TooLarge {
                size,
                max: max_payload,
                topic,
            });
        }
        Ok(PublishJob {
            cmd_id,
            topic_idx: log.topic_index(&topic),
            topic,
            count,
            done: 0,
            size,
            rate,
            peer_timeout,
            phase: Phase::WaitPeers {
                until: now + peer_timeout,
            },
            started: now,
            failing_since: None,
        })
    }

    /// Publishes what is due; never blocks.
    pub fn step(&mut self, now: Instant, ctx: &mut Ctx<'_>) -> Step {
        if self.done == self.count {
            return Step::Done(self.finished(now));
        }
        if let Phase::WaitPeers { until } = self.phase {
            if ctx.net.subscribed_peers(&self.topic) > 0 {
                self.phase = Phase::Sending {
                    start: now,
                    start_ns: now_ns(),
                };
            } else if now >= until {
                return Step::Done(Outcome {
                    error: Some(format!(
                        "no peer subscribed to topic {:?} within {} ms; published nothing",
                        self.topic,
                        self.peer_timeout.as_millis()
                    )),
                    info: serde_json::json!({ "published": 0 }),
                });
            } else {
                // Subscriptions arrive as swarm events, which step the job again.
                return Step::Wait(until);
            }
        }
        let Phase::Sending { start, start_ns } = self.phase else {
            unreachable!("handled above")
        };
        for _ in 0..BATCH {
            let due = self.due(start);
            if due > now {
                return Step::Wait(due);
            }
            let seq = *ctx.next_seq;
            let send_ns = now_ns();
            // A retried message keeps this: it depends only on its index.
            let due_ns = self.due_offset().map(|d| start_ns + d.as_nanos() as u64);
            let mut span = match ctx.tel.as_deref_mut() {
                Some(t) => t.start_publish(seq, &self.topic, self.size, due_ns.unwrap_or(send_ns)),
                None => None,
            };
            let data = Header {
                origin: ctx.origin,
                seq,
                send_ns,
                due_ns: due_ns.unwrap_or(send_ns),
                paced: due_ns.is_some(),
                trace: span.as_ref().map(|(_, c)| *c),
            }
            .encode(self.size);
            let published = ctx.net.publish(&self.topic, data);
            if let (Some(t), Some((s, _))) = (ctx.tel.as_deref_mut(), span.take()) {
                t.end_publish(s, published.as_ref().err().map(|e| e.to_string()));
            }
            match published {
                Ok(()) => {
                    *ctx.next_seq += 1;
                    ctx.log.record(Entry {
                        seq,
                        topic: self.topic_idx,
                        send_ns,
                        due_ns,
                    });
                    self.done += 1;
                    self.failing_since = None;
                    if self.done == self.count {
                        return Step::Done(self.finished(now));
                    }
                }
                Err(e) if e.is_retryable() => {
                    let since = *self.failing_since.get_or_insert(now);
                    if now.duration_since(since) >= RETRY_FOR {
                        return Step::Done(self.failed(&e));
                    }
                    return Step::Wait(now + RETRY_EVERY);
                }
                Err(e) => return Step::Done(self.failed(&e)),
            }
        }
        // A full batch went out: come back at once, after the swarm had its turn.
        Step::Wait(now)
    }

    /// When the next message (index `done`) is due.
    fn due(&self, start: Instant) -> Instant {
        start + self.due_offset().unwrap_or_default()
    }

    /// How long after the start the next message is due; None when back to back.
    fn due_offset(&self) -> Option<Duration> {
        self.rate
            .map(|r| Duration::from_secs_f64(f64::from(self.done) / r))
    }

    fn finished(&self, now: Instant) -> Outcome {
        Outcome {
            error: None,
            info: serde_json::json!({
                "published": self.done,
                "elapsed_ms": now.duration_since(self.started).as_millis() as u64,
            }),
        }
    }

    fn failed(&self, e: &PublishFailure) -> Outcome {
        Outcome {
            error: Some(format!(
                "published {} of {} on topic {:?}, then: {e}",
                self.done, self.count, self.topic
            )),
            info: serde_json::json!({ "published": self.done }),
        }
    }

    /// Whether this job has published anything (the node is "running").
    pub fn has_published(&self) -> bool {
        self.done > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keeps_topics_once_and_expands() {
        let mut log = PublishLog::default();
        let a = log.topic_index("a");
        let b = log.topic_index("b");
        assert_eq!(log.topic_index("a"), a);
        assert_eq!(log.lag().unwrap(), None);
        let entry = |seq, topic, send_ns, due_ns| Entry {
            seq,
            topic,
            send_ns,
            due_ns,
        };
        log.record(entry(0, a, 10_000, None));
        log.record(entry(1, b, 2_020_000, Some(20_000)));
        log.record(entry(2, a, 30_000, Some(30_000)));
        let p = log.to_published();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[1],
            Published {
                seq: 1,
                topic: "b".into(),
                at_ns: 2_020_000,
                due_ns: Some(20_000),
            }
        );
        assert_eq!(p[0].due_ns, None);
        assert_eq!(log.topics.len(), 2);
        // Lag: 0 back to back, 2000 µs late, on time.
        let lag = histogram::decode(&log.lag().unwrap().unwrap()).unwrap();
        assert_eq!(lag.len(), 3);
        assert!(lag.equivalent(lag.max(), 2_000));
        assert_eq!(lag.min(), 0);
    }

    #[test]
    fn requests_are_checked() {
        let mut log = PublishLog::default();
        let now = Instant::now();
        let mk = |rate, size, log: &mut PublishLog| {
            PublishJob::new(1, "t".into(), 5, rate, size, Duration::ZERO, 1000, log, now)
        };
        // A rate that is not positive means back to back.
        assert_eq!(mk(Some(0.0), 100, &mut log).unwrap().rate, None);
        assert_eq!(mk(Some(-3.0), 100, &mut log).unwrap().rate, None);
        assert!(matches!(
            mk(None, 1001, &mut log).unwrap_err(),
            PublishRequestError::TooLarge { .. }
        ));
        let j = mk(Some(4.0), 10, &mut log).unwrap();
        let t0 = Instant::now();
        assert_eq!(j.due(t0), t0);
        assert_eq!(j.due_offset(), Some(Duration::ZERO));
        let j = PublishJob { done: 3, ..j };
        assert_eq!(j.due(t0), t0 + Duration::from_millis(750));
        assert_eq!(mk(None, 100, &mut log).unwrap().due_offset(), None);
        // Smaller than the header: the header alone is sent.
        assert_eq!(j.size, testbed_contract::payload::HEADER_LEN);
    }
}
