//! A test aid: faults this node injects on purpose (`TESTBED_FAULT`) into its own final
//! result or its behaviour, so the orchestrator's checks of what nodes report, and the
//! endings of a run held in one place, can be tested with a real fleet. A node without the
//! variable reports exactly what it measured and does what it is told.

use testbed_contract::results::{NodeResult, Published};

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every latency histogram of the result is cut to a prefix that is valid base64 but no
    /// HDR histogram (one such histogram is added when the node has none).
    CorruptHistogram,
    /// The result claims one message more than the node published, with the next sequence
    /// number: a publish no command asked for and no ack counted.
    ExtraPublishes,
    /// Connect commands are never acknowledged (nor dialled); everything else goes on, pings
    /// and `abort` included: a run held in its connect phase.
    StallConnect,
    /// `abort` is ignored; everything else goes on, pings included: a node that does not end
    /// when the run does (the runner's shutdown still stops it).
    IgnoreAbort,
}

impl Fault {
    fn parse(name: &str) -> Option<Fault> {
        match name.trim() {
            "corrupt_histogram" => Some(Fault::CorruptHistogram),
            "extra_publishes" => Some(Fault::ExtraPublishes),
            "stall_connect" => Some(Fault::StallConnect),
            "ignore_abort" => Some(Fault::IgnoreAbort),
            _ => None,
        }
    }

    /// This node's fault from the variable's value: `KIND` for every node, or `INDEX:KIND`
    /// pairs separated by commas. `None` when any part does not parse, so a typo is named
    /// rather than ignored.
    pub fn for_node(value: &str, index: u32) -> Option<Option<Fault>> {
        let value = value.trim();
        if !value.contains(':') {
            return Fault::parse(value).map(Some);
        }
        let mut mine = None;
        for part in value.split(',') {
            let (i, kind) = part.split_once(':')?;
            let i: u32 = i.trim().parse().ok()?;
            let kind = Fault::parse(kind)?;
            if i == index {
                mine = Some(kind);
            }
        }
        Some(mine)
    }

    /// Changes `result` as the fault says (the faults of behaviour leave it as it is).
    pub fn apply(self, result: &mut NodeResult) {
        match self {
            Fault::StallConnect | Fault::IgnoreAbort => {}
            Fault::CorruptHistogram => {
                if result.latency.is_empty() {
                    result
                        .latency
                        .push(testbed_contract::results::OriginLatency {
                            origin_group: 0,
                            hdr: String::new(),
                        });
                }
                // 8 base64 characters are 6 bytes: the encoding's cookie and half its
                // length field, so the text decodes as base64 but not as a histogram.
                for l in &mut result.latency {
                    l.hdr = if l.hdr.len() >= 8 {
                        l.hdr[..8].to_string()
                    } else {
                        "AAAAAAAA".into()
                    };
                }
            }
            Fault::ExtraPublishes => {
                let seq = result
                    .published
                    .iter()
                    .map(|p| p.seq.saturating_add(1))
                    .max()
                    .unwrap_or(0);
                let topic = result
                    .published
                    .last()
                    .map_or_else(|| "extra".to_string(), |p| p.topic.clone());
                result.published.push(Published {
                    seq,
                    topic,
                    at_ns: crate::clock::now_ns(),
                    due_ns: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testbed_contract::histogram;

    fn result() -> NodeResult {
        serde_json::from_value(serde_json::json!({
            "index": 1, "peer_id": "p", "exit": "finished", "latency": [],
            "published": [{"seq": 0, "topic": "t", "at_ns": 1}],
            "seen": [], "subscriptions": [], "received": 0,
            "duplicates": 0, "peak_rss_bytes": 0, "final_rss_bytes": 0, "cpu_ns": 0,
            "timeline": [],
        }))
        .unwrap()
    }

    #[test]
    fn for_every_node_or_by_index() {
        assert_eq!(
            Fault::for_node("corrupt_histogram", 3),
            Some(Some(Fault::CorruptHistogram))
        );
        assert_eq!(
            Fault::for_node("1:corrupt_histogram, 2:extra_publishes", 2),
            Some(Some(Fault::ExtraPublishes))
        );
        assert_eq!(Fault::for_node("1:corrupt_histogram", 2), Some(None));
        for bad in ["crash", "1:crash", "x:extra_publishes", "1"] {
            assert!(Fault::for_node(bad, 1).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_corrupt_histogram_is_base64_but_does_not_decode() {
        let mut h = histogram::new_latency_histogram();
        h.record(650).unwrap();
        let mut r = result();
        r.latency.push(testbed_contract::results::OriginLatency {
            origin_group: 0,
            hdr: histogram::encode(&h).unwrap(),
        });
        Fault::CorruptHistogram.apply(&mut r);
        assert_eq!(r.latency.len(), 1);
        let e = histogram::decode(&r.latency[0].hdr).unwrap_err();
        assert!(
            matches!(e, histogram::HistogramError::Decode(_)),
            "{e}: the base64 itself is valid"
        );
        // A node that received nothing still reports a histogram that does not decode.
        let mut empty = result();
        Fault::CorruptHistogram.apply(&mut empty);
        assert!(histogram::decode(&empty.latency[0].hdr).is_err());
    }

    #[test]
    fn extra_publishes_claim_the_next_sequence_number() {
        let mut r = result();
        Fault::ExtraPublishes.apply(&mut r);
        assert_eq!(r.published.len(), 2);
        assert_eq!(r.published[1].seq, 1);
        assert_eq!(r.published[1].topic, "t");
    }
}
