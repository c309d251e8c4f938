//! What happens to each delivered message: decode the header, record latency per origin
//! group (from the due time, and from the send time), count it in its receive second, mark
//! (origin, seq) seen, count duplicates and malformed payloads.

use crate::per_second::PerSecond;
use crate::seen_set::SeenSet;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use testbed_contract::histogram::{self, new_latency_histogram};
use testbed_contract::payload::{Header, PayloadError};
use testbed_contract::results::{OriginLatency, ReceivedOverTime, SeenFrom};

/// Group of origins whose index the node does not know.
pub const UNKNOWN_GROUP: u16 = u16::MAX;

#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// First delivery of this (origin, seq); `latency_us` from its due time.
    New {
        origin: u32,
        seq: u64,
        latency_us: u64,
    },
    Duplicate {
        origin: u32,
        seq: u64,
    },
    Malformed(PayloadError),
    /// One of this node's own messages, echoed back: not counted at all.
    Own,
}

struct Latencies {
    since_due: Histogram<u64>,
    since_send: Histogram<u64>,
}

pub struct Receiver {
    /// This node's index: its own messages, if a router echoes them back, are ignored.
    own: u32,
    origin_groups: Vec<u16>,
    /// Per origin group, created on first use, receive − due and receive − send: a histogram
    /// reserves ~190 KB of (lazily zeroed) counts, so groups nobody hears from cost nothing.
    latency: BTreeMap<u16, Latencies>,
    /// Receive-time counts per origin group: a `Vec<u32>` per group, one slot per second.
    per_second: BTreeMap<u16, PerSecond>,
    seen: SeenSet,
    /// Distinct deliveries.
    pub received: u64,
    pub duplicates: u64,
    pub malformed: u64,
    /// Deliveries that arrived "before" they were due (clock skew between hosts); their
    /// latency is recorded as 0.
    pub clamped: u64,
}

impl Receiver {
    pub fn new(own: u32, origin_groups: Vec<u16>) -> Self {
        Receiver {
            own,
            origin_groups,
            latency: BTreeMap::new(),
            per_second: BTreeMap::new(),
            seen: SeenSet::default(),
            received: 0,
            duplicates: 0,
            malformed: 0,
            clamped: 0,
        }
    }

    /// Handles one delivered payload, received at `now_ns` (ns since the Unix epoch).
    pub fn on_message(&mut self, data: &[u8], now_ns: u64) -> Delivery {
        let h = match Header::decode(data) {
            Ok(h) => h,
            Err(e) => {
                self.malformed += 1;
                return Delivery::Malformed(e);
            }
        };
        if h.origin == self.own {
            return Delivery::Own;
        }
        if !self.seen.insert(h.origin, h.seq) {
            self.duplicates += 1;
            return Delivery::Duplicate {
                origin: h.origin,
                seq: h.seq,
            };
        }
        self.received += 1;
        let latency_us = match now_ns.checked_sub(h.due_ns) {
            Some(d) => d / 1_000,
            None => {
                self.clamped += 1;
                0
            }
        };
        let since_send_us = now_ns.saturating_sub(h.send_ns) / 1_000;
        let group = self
            .origin_groups
            .get(h.origin as usize)
            .copied()
            .unwrap_or(UNKNOWN_GROUP);
        // Saturating: a latency beyond the histogram's hour is recorded as the hour.
        let l = self.latency.entry(group).or_insert_with(|| Latencies {
            since_due: new_latency_histogram(),
            since_send: new_latency_histogram(),
        });
        l.since_due.saturating_record(latency_us);
        l.since_send.saturating_record(since_send_us);
        if let Some(count) = self
            .per_second
            .entry(group)
            .or_default()
            .slot(now_ns / 1_000_000_000)
        {
            *count = count.saturating_add(1);
        }
        Delivery::New {
            origin: h.origin,
            seq: h.seq,
            latency_us,
        }
    }

    pub fn seen(&self) -> Vec<SeenFrom> {
        self.seen.to_seen_from()
    }

    /// Receive-time counts in the contract's shape, by origin group ascending.
    pub fn received_over_time(&self) -> Vec<ReceivedOverTime> {
        self.per_second
            .iter()
            .map(|(&origin_group, p)| ReceivedOverTime {
                origin_group,
                start_unix_s: p.start_s,
                counts: p.values.clone(),
            })
            .collect()
    }

    /// Latency histograms (receive − due) in the contract's encoding, by origin group
    /// ascending.
    pub fn latency(&self) -> Result<Vec<OriginLatency>, histogram::HistogramError> {
        self.encode(|l| &l.since_due)
    }

    /// Receive − send histograms, by origin group ascending.
    pub fn latency_since_send(&self) -> Result<Vec<OriginLatency>, histogram::HistogramError> {
        self.encode(|l| &l.since_send)
    }

    fn encode(
        &self,
        pick: impl Fn(&Latencies) -> &Histogram<u64>,
    ) -> Result<Vec<OriginLatency>, histogram::HistogramError> {
        self.latency
            .iter()
            .map(|(&origin_group, l)| {
                Ok(OriginLatency {
                    origin_group,
                    hdr: histogram::encode(pick(l))?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(origin: u32, seq: u64, publish_ns: u64) -> Vec<u8> {
        Header::unpaced(origin, seq, publish_ns).encode(100)
    }

    #[test]
    fn latency_counts_from_the_due_time_and_since_send_from_the_send_time() {
        let mut r = Receiver::new(9, vec![0]);
        let due = 1_700_000_000_000_000_000u64;
        // Due at `due`, sent 3 ms late, received 1 ms after sending.
        let paced = Header {
            send_ns: due + 3_000_000,
            due_ns: due,
            paced: true,
            ..Header::unpaced(0, 0, 0)
        };
        assert_eq!(
            r.on_message(&paced.encode(64), due + 4_000_000),
            Delivery::New {
                origin: 0,
                seq: 0,
                latency_us: 4_000
            }
        );
        let from_due = histogram::decode(&r.latency().unwrap()[0].hdr).unwrap();
        let from_send = histogram::decode(&r.latency_since_send().unwrap()[0].hdr).unwrap();
        assert!(from_due.equivalent(from_due.max(), 4_000));
        assert!(from_send.equivalent(from_send.max(), 1_000));
        assert_eq!((from_due.len(), from_send.len()), (1, 1));
    }

    #[test]
    fn layout_1_payloads_count_from_their_publish_time() {
        let mut r = Receiver::new(9, vec![0]);
        let v1 = "50540100000000010000000000000002000000000000000300000000000000000000000000000000000000000000000000";
        let bytes: Vec<u8> = (0..v1.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&v1[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            r.on_message(&bytes, 2_003),
            Delivery::New {
                origin: 1,
                seq: 2,
                latency_us: 2
            }
        );
    }

    #[test]
    fn latency_seen_and_duplicates() {
        let mut r = Receiver::new(9, vec![0, 0, 1]);
        let t = 1_700_000_000_000_000_000u64;
        assert_eq!(
            r.on_message(&msg(0, 0, t), t + 1_500_000),
            Delivery::New {
                origin: 0,
                seq: 0,
                latency_us: 1_500
            }
        );
        assert_eq!(
            r.on_message(&msg(0, 0, t), t + 9_000_000),
            Delivery::Duplicate { origin: 0, seq: 0 }
        );
        r.on_message(&msg(2, 0, t), t + 700_000);
        r.on_message(&msg(2, 1, t), t + 800_000);
        assert_eq!(r.received, 3);
        assert_eq!(r.duplicates, 1);

        let lat = r.latency().unwrap();
        assert_eq!(
            lat.iter().map(|l| l.origin_group).collect::<Vec<_>>(),
            vec![0, 1]
        );
        let g0 = histogram::decode(&lat[0].hdr).unwrap();
        assert_eq!(g0.len(), 1);
        assert!(g0.equivalent(g0.max(), 1_500));
        let g1 = histogram::decode(&lat[1].hdr).unwrap();
        assert_eq!(g1.len(), 2);

        let seen = r.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].ranges, vec![[0, 0]]);
        assert_eq!(seen[1].ranges, vec![[0, 1]]);
    }

    #[test]
    fn deliveries_are_counted_per_receive_second_and_origin_group() {
        let mut r = Receiver::new(9, vec![0, 0, 1]);
        let s = 1_700_000_000u64;
        let at = |sec: u64, ms: u64| (s + sec) * 1_000_000_000 + ms * 1_000_000;
        r.on_message(&msg(0, 0, 1), at(0, 10));
        r.on_message(&msg(1, 0, 1), at(0, 999));
        r.on_message(&msg(0, 1, 1), at(3, 0));
        // A duplicate and an own message are not deliveries.
        r.on_message(&msg(0, 1, 1), at(3, 5));
        r.on_message(&msg(9, 0, 1), at(3, 5));
        r.on_message(&msg(2, 0, 1), at(2, 500));
        assert_eq!(
            r.received_over_time(),
            vec![
                ReceivedOverTime {
                    origin_group: 0,
                    start_unix_s: s,
                    counts: vec![2, 0, 0, 1],
                },
                ReceivedOverTime {
                    origin_group: 1,
                    start_unix_s: s + 2,
                    counts: vec![1],
                },
            ]
        );
        // A clock stepped back grows the span at the front.
        r.on_message(&msg(2, 1, 1), at(0, 0));
        assert_eq!(r.received_over_time()[1].start_unix_s, s);
        assert_eq!(r.received_over_time()[1].counts, vec![1, 0, 1]);
        // One stepped a year ahead is left out of this view, not of the others.
        r.on_message(&msg(2, 2, 1), at(365 * 86_400, 0));
        assert_eq!(r.received_over_time()[1].counts, vec![1, 0, 1]);
        assert_eq!(r.received, 6);
    }

    #[test]
    fn unknown_origin_goes_to_the_unknown_group() {
        let mut r = Receiver::new(9, vec![0]);
        r.on_message(&msg(55, 0, 10), 2_010);
        let lat = r.latency().unwrap();
        assert_eq!(lat.len(), 1);
        assert_eq!(lat[0].origin_group, UNKNOWN_GROUP);
    }

    #[test]
    fn clock_skew_is_clamped_and_counted() {
        let mut r = Receiver::new(9, vec![]);
        let d = r.on_message(&msg(0, 0, 5_000_000), 1_000_000);
        assert_eq!(
            d,
            Delivery::New {
                origin: 0,
                seq: 0,
                latency_us: 0
            }
        );
        assert_eq!(r.clamped, 1);
        assert_eq!(r.received, 1);
    }

    #[test]
    fn malformed_payloads_are_counted_not_fatal() {
        let mut r = Receiver::new(9, vec![]);
        assert!(matches!(
            r.on_message(b"short", 1),
            Delivery::Malformed(PayloadError::TooShort { len: 5, .. })
        ));
        assert!(matches!(
            r.on_message(&[0u8; 64], 1),
            Delivery::Malformed(PayloadError::BadMagic)
        ));
        assert_eq!(r.malformed, 2);
        assert_eq!(r.received, 0);
        assert!(r.latency().unwrap().is_empty());
    }

    #[test]
    fn own_messages_are_ignored() {
        let mut r = Receiver::new(3, vec![0; 4]);
        assert_eq!(r.on_message(&msg(3, 0, 10), 2_010), Delivery::Own);
        assert_eq!((r.received, r.duplicates), (0, 0));
        assert!(r.seen().is_empty());
    }

    #[test]
    fn huge_latency_saturates() {
        let mut r = Receiver::new(9, vec![0]);
        r.on_message(&msg(0, 0, 0), u64::MAX);
        let h = histogram::decode(&r.latency().unwrap()[0].hdr).unwrap();
        assert_eq!(h.len(), 1);
    }
}
