//! Figures read from the libp2p metrics registry for the final result: transport bytes and
//! the duplicates gossipsub's router dropped before they reached the application.
//!
//! The counters live in private prometheus families inside libp2p, so they are read the way
//! a scraper would: encode the registry as text once, at the end, and sum the samples.

use libp2p::metrics::Registry;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouterFigures {
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub router_duplicates: Option<u64>,
}

const BANDWIDTH: &str = "libp2p_bandwidth_bytes_total";
const RECV_UNFILTERED: &str = "gossipsub_topic_msg_recv_counts_unfiltered_total";
const RECV_FILTERED: &str = "gossipsub_topic_msg_recv_counts_total";
const INVALID: &str = "gossipsub_invalid_messages_per_topic_total";

/// Reads the figures. The bandwidth counters always exist, so bytes are measured (zero
/// before any traffic); router duplicates are only measured by gossipsub.
pub fn read(registry: &Registry, gossipsub: bool) -> RouterFigures {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(error = %e, "cannot encode the metrics registry; bytes and router duplicates stay unknown");
        return RouterFigures::default();
    }
    let f = parse(&text);
    RouterFigures {
        bytes_in: Some(f.bytes_in.unwrap_or(0)),
        bytes_out: Some(f.bytes_out.unwrap_or(0)),
        router_duplicates: gossipsub.then(|| f.router_duplicates.unwrap_or(0)),
    }
}

/// Sums the samples that make up each figure; `None` where no sample appeared.
pub fn parse(text: &str) -> RouterFigures {
    let mut f = RouterFigures::default();
    let mut unfiltered = None::<u64>;
    let mut filtered = 0u64;
    let mut invalid = 0u64;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, labels, value)) = split_sample(line) else {
            continue;
        };
        let add = |slot: &mut Option<u64>| *slot = Some(slot.unwrap_or(0) + value);
        match name {
            BANDWIDTH if labels.contains("direction=\"Inbound\"") => add(&mut f.bytes_in),
            BANDWIDTH if labels.contains("direction=\"Outbound\"") => add(&mut f.bytes_out),
            RECV_UNFILTERED => add(&mut unfiltered),
            RECV_FILTERED => filtered += value,
            INVALID => invalid += value,
            _ => {}
        }
    }
    // Every message the router received is either new (filtered), invalid, or a duplicate.
    f.router_duplicates = unfiltered.map(|u| u.saturating_sub(filtered + invalid));
    f
}

/// `name{labels} value` or `name value` → (name, labels, value as an integer).
fn split_sample(line: &str) -> Option<(&str, &str, u64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse::<f64>().ok().filter(|v| *v >= 0.0)? as u64;
    match series.split_once('{') {
        Some((name, labels)) => Some((name, labels, value)),
        None => Some((series, "", value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_bandwidth_and_router_duplicates() {
        let text = r#"# HELP libp2p_bandwidth_bytes Bandwidth usage by direction and transport protocols.
# TYPE libp2p_bandwidth_bytes counter
# UNIT libp2p_bandwidth_bytes bytes
libp2p_bandwidth_bytes_total{protocols="/ip4/tcp",direction="Outbound"} 1200
libp2p_bandwidth_bytes_total{protocols="/ip4/tcp",direction="Inbound"} 3400
libp2p_bandwidth_bytes_total{protocols="/ip6/tcp",direction="Inbound"} 6
gossipsub_topic_msg_recv_counts_unfiltered_total{hash="a"} 10
gossipsub_topic_msg_recv_counts_unfiltered_total{hash="b"} 5
gossipsub_topic_msg_recv_counts_total{hash="a"} 6
gossipsub_topic_msg_recv_counts_total{hash="b"} 5
gossipsub_invalid_messages_per_topic_total{hash="a"} 1
gossipsub_heartbeat_duration_sum 12.5
# EOF
"#;
        assert_eq!(
            parse(text),
            RouterFigures {
                bytes_in: Some(3406),
                bytes_out: Some(1200),
                router_duplicates: Some(3),
            }
        );
    }

    #[test]
    fn absent_metrics_stay_unknown() {
        assert_eq!(parse("# EOF\n"), RouterFigures::default());
    }

    #[test]
    fn reads_a_real_registry() {
        // The bandwidth family appears in the text once registered, even with no traffic.
        let mut registry = Registry::default();
        let _swarm = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                crate::swarm::build(
                    testbed_contract::plan::Variant::Gossipsub,
                    &Default::default(),
                    Default::default(),
                    &mut registry,
                )
                .unwrap()
            });
        let f = read(&registry, true);
        assert_eq!(f.bytes_in, Some(0));
        assert_eq!(f.bytes_out, Some(0));
        assert_eq!(f.router_duplicates, Some(0));
        assert_eq!(read(&registry, false).router_duplicates, None);
    }
}
