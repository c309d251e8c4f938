//! What the command line changes in a plan — parameters (`--set`), the runner (`--runner`)
//! and the telemetry flags — applied before the plan is validated, so a combination the
//! plan's checks refuse (`--runner local` for a plan with a `network:` section) is refused
//! the same way, naming the flag.

use std::collections::BTreeMap;
use std::time::Duration;
use testbed_contract::plan::{Plan, RunnerKind, Telemetry, Traces};

#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Parameter values (`--set name=value`, a bench's matrix cell).
    pub params: BTreeMap<String, serde_json::Value>,
    /// The runner instead of the plan's `runner:` (`--runner`).
    pub runner: Option<RunnerChoice>,
    pub telemetry: TelemetryOverrides,
}

impl Overrides {
    /// Only parameter values.
    pub fn params(params: BTreeMap<String, serde_json::Value>) -> Overrides {
        Overrides {
            params,
            ..Overrides::default()
        }
    }

    /// Applies the runner and telemetry overrides to a parsed plan (parameters are
    /// substituted in the text before parsing).
    pub fn apply(&self, plan: &mut Plan) {
        if let Some(kind) = self.runner.and_then(RunnerChoice::kind) {
            plan.runner = kind;
        }
        self.telemetry.apply(&mut plan.telemetry);
    }

    /// How the plan's runner was chosen, for messages: `` `runner: netns` `` or
    /// `` `--runner local` ``.
    pub fn runner_words(&self, plan: &Plan) -> String {
        match self.runner {
            Some(c) => format!("`--runner {}`", c.as_str()),
            None => format!("`runner: {}`", runner_name(plan.runner)),
        }
    }

    /// The flag that set a field of the plan (`telemetry.sample_ratio` → `--sample-ratio`).
    pub fn flag_of(&self, field: &str) -> Option<&'static str> {
        let t = &self.telemetry;
        let set = |on: bool, flag: &'static str| on.then_some(flag);
        match field {
            "runner" => set(self.runner.is_some(), "--runner"),
            "telemetry.traces" => set(t.traces.is_some(), "--traces"),
            "telemetry.sample_ratio" => set(t.sample_ratio.is_some(), "--sample-ratio"),
            "telemetry.otlp_endpoint" => set(t.otlp_endpoint.is_some(), "--otlp-endpoint"),
            "telemetry.metrics_listen" => set(t.metrics_listen.is_some(), "--metrics-listen"),
            "telemetry.metrics_linger" => set(t.metrics_linger.is_some(), "--metrics-linger"),
            _ => None,
        }
    }
}

fn runner_name(kind: RunnerKind) -> &'static str {
    match kind {
        RunnerKind::Local => "local",
        RunnerKind::Netns => "netns",
        RunnerKind::K8s => "k8s",
    }
}

/// Which runner starts the nodes, as `orchestrator run --runner` names it: the plan's kinds,
/// plus `external`, which starts nothing (the nodes are started elsewhere, e.g. as the pods of
/// a Kubernetes Indexed Job, and connect to `--control-listen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunnerChoice {
    Local,
    Netns,
    K8s,
    External,
}

impl RunnerChoice {
    /// The plan's runner kind this choice stands for; `None` for `external`.
    pub fn kind(self) -> Option<RunnerKind> {
        match self {
            RunnerChoice::Local => Some(RunnerKind::Local),
            RunnerChoice::Netns => Some(RunnerKind::Netns),
            RunnerChoice::K8s => Some(RunnerKind::K8s),
            RunnerChoice::External => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunnerChoice::External => "external",
            other => other.kind().map_or("external", runner_name),
        }
    }
}

/// Command-line overrides of the plan's `telemetry:` section (`orchestrator run` flags).
#[derive(Debug, Clone, Default)]
pub struct TelemetryOverrides {
    pub traces: Option<Traces>,
    pub sample_ratio: Option<f64>,
    pub otlp_endpoint: Option<String>,
    pub metrics_listen: Option<String>,
    pub metrics_linger: Option<Duration>,
}

impl TelemetryOverrides {
    /// An external endpoint turns traces on unless `--traces` says otherwise.
    pub fn apply(&self, t: &mut Telemetry) {
        if let Some(tr) = self.traces {
            t.traces = tr;
        }
        if let Some(r) = self.sample_ratio {
            t.sample_ratio = r;
        }
        if let Some(e) = &self.otlp_endpoint {
            t.otlp_endpoint = Some(e.clone());
            if self.traces.is_none() {
                t.traces = Traces::On;
            }
        }
        if let Some(m) = &self.metrics_listen {
            t.metrics_listen = Some(m.clone());
        }
        if let Some(d) = self.metrics_linger {
            t.metrics_linger = d;
        }
    }
}
