use crate::duration::human;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// The plan's `telemetry:` section (docs/plan-format.md, docs/observability.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// How often each node sends a snapshot (counts, RSS, CPU) during the run (default 2 s).
    #[serde(with = "human")]
    pub snapshot_interval: Duration,
    /// OpenTelemetry traces from every node: `on` or `off` (default). When on, each node
    /// exports its lifecycle (one span per state) and the propagation of sampled messages
    /// (a publish span and one delivery span per receiver) over OTLP/HTTP.
    pub traces: Traces,
    /// Fraction of each node's published messages that are traced, 0..=1 (0.01: 1 in 100).
    /// Lifecycle spans are always kept.
    pub sample_ratio: f64,
    /// An external OTLP/HTTP collector (base URL, e.g. `http://collector:4318`); absent: the
    /// orchestrator's embedded collector, which writes traces.json into the results folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Each node serves its own libp2p/gossipsub metrics (Prometheus text) on an
    /// OS-assigned port, listed in the results folder's `prometheus-targets.json`.
    pub node_metrics: bool,
    /// Where the orchestrator serves the run's Prometheus metrics (`/metrics`): `HOST:PORT`,
    /// or `off`. Absent: 127.0.0.1 on a free port (printed at the start of the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Keep serving `/metrics` this long after the run, so a scraper sees the final figures.
    #[serde(with = "human")]
    pub metrics_linger: Duration,
    /// Whether node timestamps are corrected by each node's measured clock offset: `auto`
    /// (default: only when the nodes run on other machines, the external runner), `on`, or
    /// `off`. The offsets are measured and recorded either way.
    pub clock_correction: ClockCorrection,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            // Each snapshot costs a node a wake-up, a /proc read and a send (≈ 0.1 ms of CPU on
            // a busy 2-core host): at 500 ms that was most of an idle node's cost.
            snapshot_interval: Duration::from_secs(2),
            traces: Traces::Off,
            sample_ratio: 1.0,
            otlp_endpoint: None,
            node_metrics: false,
            metrics_listen: None,
            metrics_linger: Duration::ZERO,
            clock_correction: ClockCorrection::Auto,
        }
    }
}

/// `traces: on|off`. YAML 1.1 readers turn a bare `on` into `true`, so booleans are
/// accepted as well.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Traces {
    #[default]
    Off,
    On,
}

impl Traces {
    pub fn is_on(self) -> bool {
        self == Traces::On
    }
}

impl Serialize for Traces {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Traces::Off => "off",
            Traces::On => "on",
        })
    }
}

impl<'de> Deserialize<'de> for Traces {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(b) => Ok(if b { Traces::On } else { Traces::Off }),
            Raw::Str(s) => match s.as_str() {
                "on" | "true" => Ok(Traces::On),
                "off" | "false" => Ok(Traces::Off),
                other => Err(serde::de::Error::custom(format!(
                    "`{other}` is not a traces setting: use `on` or `off`"
                ))),
            },
        }
    }
}

/// `clock_correction: auto|on|off` (booleans accepted, as for `traces`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClockCorrection {
    /// Correct when the nodes' clocks are not the orchestrator's (nodes on other machines).
    #[default]
    Auto,
    On,
    Off,
}

impl ClockCorrection {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockCorrection::Auto => "auto",
            ClockCorrection::On => "on",
            ClockCorrection::Off => "off",
        }
    }

    /// Whether to correct, given whether the nodes share the orchestrator's clock.
    pub fn applies(self, same_clock: bool) -> bool {
        match self {
            ClockCorrection::Auto => !same_clock,
            ClockCorrection::On => true,
            ClockCorrection::Off => false,
        }
    }
}

impl Serialize for ClockCorrection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ClockCorrection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(b) => Ok(if b {
                ClockCorrection::On
            } else {
                ClockCorrection::Off
            }),
            Raw::Str(s) => match s.as_str() {
                "auto" => Ok(ClockCorrection::Auto),
                "on" | "true" => Ok(ClockCorrection::On),
                "off" | "false" => Ok(ClockCorrection::Off),
                other => Err(serde::de::Error::custom(format!(
                    "`{other}` is not a clock_correction setting: use `auto`, `on` or `off`"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_accepts_words_and_booleans() {
        for (text, want) in [
            ("on", Traces::On),
            ("\"off\"", Traces::Off),
            ("true", Traces::On),
        ] {
            let t: Traces = serde_json::from_str(&if text.starts_with('"') || text == "true" {
                text.to_string()
            } else {
                format!("\"{text}\"")
            })
            .unwrap();
            assert_eq!(t, want);
        }
        assert!(serde_json::from_str::<Traces>("\"maybe\"").is_err());
        assert_eq!(serde_json::to_string(&Traces::On).unwrap(), "\"on\"");
    }

    #[test]
    fn clock_correction_accepts_words_and_booleans() {
        for (text, want) in [
            ("\"auto\"", ClockCorrection::Auto),
            ("\"on\"", ClockCorrection::On),
            ("false", ClockCorrection::Off),
        ] {
            assert_eq!(serde_json::from_str::<ClockCorrection>(text).unwrap(), want);
        }
        let e = serde_json::from_str::<ClockCorrection>("\"sometimes\"").unwrap_err();
        assert!(e.to_string().contains("auto"), "{e}");
        assert!(ClockCorrection::Auto.applies(false) && !ClockCorrection::Auto.applies(true));
        assert!(ClockCorrection::On.applies(true) && !ClockCorrection::Off.applies(false));
    }
}
