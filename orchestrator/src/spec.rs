//! The spec of a run: everything decided before anything starts, resolved once from the
//! loaded plan (its overrides applied and validated with it, see [`crate::plan::overrides`])
//! and the run's options, and read-only from then on — the runner, every node's program,
//! config and environment, the dial plan and the churn schedule. A missing node program or a
//! runner `orchestrator run` cannot use is an error here, before a file is written.
//!
//! What only exists once the run has started — the control server's address, the trace
//! collector, the results folder — is the [`Wiring`]; with it and the runner's listen
//! address, a [`NodeSpec`] becomes a launch. The initial fleet and the peers a churn phase
//! adds later go through the same [`Wiring::launch`].

use crate::churn::schedule::{self as churn_schedule, Prepared};
use crate::plan::Issue;
use crate::plan::locate::{FieldPath, SourceTree};
use crate::plan::{LoadedPlan, RunnerChoice};
use crate::record::store::node_log;
use crate::runner::NodeLaunch;
use crate::runner::program::{NodeProgram, ProgramError, Programs};
use crate::topology::{dial_plan, witness_dials};
use std::collections::BTreeMap;
use std::path::PathBuf;
use testbed_contract::env;
use testbed_contract::plan::{Implementation, Phase, Plan, PublishMode, RunnerKind};
use testbed_contract::protocol::{NodeConfig, TracingConfig};

/// The group name witnesses carry in the control channel and run.json.
pub const WITNESS_GROUP: &str = "witness";

/// How to run, beyond the plan itself.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub results_root: PathBuf,
    pub programs: Programs,
    /// The command line, recorded in run.json.
    pub command: Vec<String>,
    pub quiet: bool,
    /// Fixed run id (tests, resumable benches); default: a timestamp.
    pub run_id: Option<String>,
    /// The runner the plan was loaded for with `--runner` (its overrides); `External`
    /// starts no node itself.
    pub runner: Option<RunnerChoice>,
    /// TCP address the control server binds (`--control-listen`); default `127.0.0.1:0`.
    pub control_listen: Option<String>,
}

/// Which runner starts the nodes of this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerSel {
    Local,
    Netns,
    /// Nodes started elsewhere (the pods of a Kubernetes Job) dial the control server.
    External,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(
        "runner `k8s` runs from `orchestrator k8s run PLAN`; `orchestrator run` runs fleets on this machine"
    )]
    K8sRunner,
    #[error(
        "the plan was loaded for runner `{loaded}`, but the run asks for `--runner {asked}`: load it with that override so it is validated for it"
    )]
    RunnerNotValidated { loaded: String, asked: String },
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error("{0}")]
    Churn(String),
    /// A witness that cannot run, located in the plan (`file:line:column: field …`).
    #[error("{0}")]
    Witness(String),
    #[error(
        "run id `{0}` is not usable: use letters, digits, `-`, `_` or `.`, starting with a letter or digit, at most 100 characters (it names a folder under the results folder)"
    )]
    RunId(String),
}

/// One node as the spec has it: what runs and what it is told, before the wiring.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub index: u32,
    pub group: String,
    pub implementation: Implementation,
    pub program: NodeProgram,
    /// Its welcome, without the tracing (the collector is part of the wiring).
    pub config: NodeConfig,
}

/// Everything about a run decided before it starts. Built by [`RunSpec::resolve`] only, and
/// passed by shared reference: nothing changes it once the run has begun.
#[derive(Debug)]
pub struct RunSpec {
    /// The plan as validated, overrides applied.
    pub plan: Plan,
    pub plan_file: PathBuf,
    /// The plan text after substitution (saved beside the results).
    pub plan_text: String,
    pub run_id: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub runner: RunnerSel,
    /// The initial fleet, in index order.
    pub nodes: Vec<NodeSpec>,
    /// The plan's witnesses (`witness:`): listen-only nodes whose indices follow the fleet's,
    /// never part of the fleet's figures.
    pub witnesses: Vec<NodeSpec>,
    /// `witness_dials[k]`: the fleet nodes witness `k` dials once it has subscribed.
    pub witness_dials: Vec<Vec<u32>>,
    /// Every topic the fleet subscribes to: what the witnesses subscribe to.
    pub witness_topics: Vec<String>,
    /// `dials[i]`: the nodes node `i` dials at the start.
    pub dials: Vec<Vec<u32>>,
    /// The plan's churn phase with its schedule.
    pub churn: Option<Prepared>,
    pub results_root: PathBuf,
    pub command: Vec<String>,
    pub quiet: bool,
    /// TCP address the control server binds.
    pub control_listen: String,
    /// Group index of every node index the run may have (initial and added).
    origin_groups: Vec<u16>,
    programs: BTreeMap<(Implementation, Option<String>), NodeProgram>,
}

impl RunSpec {
    pub fn resolve(loaded: &LoadedPlan, opts: &RunOptions) -> Result<RunSpec, SpecError> {
        let plan = &loaded.plan;
        let started_at = chrono::Utc::now();
        let run_id = opts
            .run_id
            .clone()
            .unwrap_or_else(|| started_at.format("%Y%m%d-%H%M%S-%3f").to_string());
        // Results never leave the results folder: `../x` or `.` is refused here.
        if !crate::plan::validate::is_path_name(&run_id) {
            return Err(SpecError::RunId(run_id));
        }
        let runner = runner_of(plan, opts.runner)?;
        // Every node program is resolved before anything is written: a missing Go binary is
        // an error with a fix, not a crash of node 37.
        let mut programs = BTreeMap::new();
        for g in &plan.groups {
            let key = (g.implementation, g.impl_version.clone());
            if let std::collections::btree_map::Entry::Vacant(slot) = programs.entry(key) {
                slot.insert(
                    opts.programs
                        .resolve(g.implementation, g.impl_version.as_deref())?,
                );
            }
        }
        // A churn phase's schedule is computed up front: nodes must know every origin's
        // group, including the peers it will add.
        let churn = churn_schedule::prepare(plan);
        let origin_groups = churn
            .as_ref()
            .map_or_else(|| plan.group_of_index(), |c| c.origin_groups(plan));
        let mut spec = RunSpec {
            plan: plan.clone(),
            plan_file: loaded.path.clone(),
            plan_text: loaded.text.clone(),
            run_id,
            started_at,
            runner,
            nodes: Vec::new(),
            witnesses: Vec::new(),
            witness_dials: Vec::new(),
            witness_topics: Vec::new(),
            dials: dial_plan(&plan.topology, plan.node_count(), plan.seed),
            churn,
            results_root: opts.results_root.clone(),
            command: opts.command.clone(),
            quiet: opts.quiet,
            control_listen: opts
                .control_listen
                .clone()
                .unwrap_or_else(|| "127.0.0.1:0".into()),
            origin_groups,
            programs,
        };
        let mut index = 0;
        for g in &plan.groups {
            for _ in 0..g.count {
                spec.nodes.push(spec.node(index, &g.id)?);
                index += 1;
            }
        }
        spec.add_witnesses(loaded, &opts.programs)?;
        Ok(spec)
    }

    /// The plan's witnesses, after the fleet: the first group's protocol, no publishing, no
    /// traces or delivery events. A witness program that is not built is an error located at
    /// `witness.implementation`, naming the command that builds it.
    fn add_witnesses(&mut self, loaded: &LoadedPlan, programs: &Programs) -> Result<(), SpecError> {
        let plan = &loaded.plan;
        let (Some(w), Some(g)) = (&plan.witness, plan.groups.first()) else {
            return Ok(());
        };
        let program = programs
            .resolve(w.implementation, w.impl_version.as_deref())
            .map_err(|e| {
                let field = FieldPath::default().key("witness").key("implementation");
                let at = SourceTree::parse(&loaded.text).locate(&field);
                let issue = Issue {
                    line: at.map(|a| a.0),
                    column: at.map(|a| a.1),
                    field: field.to_string(),
                    message: e.0,
                };
                SpecError::Witness(issue.to_string_in(&loaded.path))
            })?;
        let first = plan.node_count();
        for k in 0..w.count {
            let index = first + k;
            self.witnesses.push(NodeSpec {
                index,
                group: WITNESS_GROUP.into(),
                implementation: w.implementation,
                program: program.clone(),
                config: NodeConfig {
                    run_id: self.run_id.clone(),
                    index,
                    group: WITNESS_GROUP.into(),
                    variant: g.variant,
                    gossipsub: g.gossipsub.clone(),
                    seed: node_seed(plan.seed, index),
                    snapshot_interval_ms: plan.telemetry.snapshot_interval.as_millis() as u64,
                    origin_groups: self.origin_groups.clone(),
                    tracing: None,
                    node_metrics: false,
                    security: g.security,
                    report_deliveries: false,
                },
            });
        }
        self.witness_dials = witness_dials(first, w.count, w.peers, plan.seed);
        self.witness_topics = crate::plan::validate::witness::topics(plan);
        Ok(())
    }

    /// Whether node `index` is one of the witnesses (which follow the fleet's indices).
    pub fn is_witness(&self, index: u32) -> bool {
        self.witnesses.first().is_some_and(|w| index >= w.index)
    }

    /// Node `index` of `group`: one of the initial fleet, or a peer a churn phase adds.
    pub fn node(&self, index: u32, group: &str) -> Result<NodeSpec, SpecError> {
        let g = self
            .plan
            .groups
            .iter()
            .find(|g| g.id == group)
            .ok_or_else(|| SpecError::Churn(format!("the plan has no group `{group}`")))?;
        let program = self.programs[&(g.implementation, g.impl_version.clone())].clone();
        Ok(NodeSpec {
            index,
            group: g.id.clone(),
            implementation: g.implementation,
            program,
            config: NodeConfig {
                run_id: self.run_id.clone(),
                index,
                group: g.id.clone(),
                variant: g.variant,
                gossipsub: g.gossipsub.clone(),
                seed: node_seed(self.plan.seed, index),
                snapshot_interval_ms: self.plan.telemetry.snapshot_interval.as_millis() as u64,
                origin_groups: self.origin_groups.clone(),
                tracing: None,
                node_metrics: self.plan.telemetry.node_metrics,
                security: g.security,
                // Only lock-step publishing waits on deliveries; otherwise the events would
                // only add control traffic.
                report_deliveries: self
                    .plan
                    .workload
                    .iter()
                    .any(|p| matches!(p, Phase::Publish(pb) if pb.mode == PublishMode::Lockstep)),
            },
        })
    }

    /// Whether the nodes run in network namespaces of their own (their loopback is not the
    /// orchestrator's).
    pub fn nodes_in_namespaces(&self) -> bool {
        self.runner == RunnerSel::Netns
    }
}

/// `--runner` when given, else the plan's `runner:`; the plan must have been loaded with the
/// same override, so that it was validated for the runner it runs with.
fn runner_of(plan: &Plan, choice: Option<RunnerChoice>) -> Result<RunnerSel, SpecError> {
    if let Some(c) = choice
        && let Some(kind) = c.kind()
        && kind != plan.runner
    {
        return Err(SpecError::RunnerNotValidated {
            loaded: format!("{:?}", plan.runner).to_lowercase(),
            asked: c.as_str().into(),
        });
    }
    match (choice, plan.runner) {
        (Some(RunnerChoice::External), _) => Ok(RunnerSel::External),
        (_, RunnerKind::Local) => Ok(RunnerSel::Local),
        (_, RunnerKind::Netns) => Ok(RunnerSel::Netns),
        (_, RunnerKind::K8s) => Err(SpecError::K8sRunner),
    }
}

/// The seed of node `index`, derived from the plan's seed.
pub fn node_seed(plan_seed: u64, index: u32) -> u64 {
    plan_seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(index as u64)
}

/// What a node is told that only exists once the run has started.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Where the node's control channel goes (TCP address or Unix socket path, as the
    /// runner's nodes reach it).
    pub control_addr: String,
    /// The trace collector, when traces are on.
    pub tracing: Option<TracingConfig>,
    /// The run's results folder (node logs go to `logs/node-NNNN.log`).
    pub results_dir: PathBuf,
    /// The run's secret, handed to every node in its environment (never on a command line)
    /// and checked in its hello.
    pub secret: String,
}

impl Wiring {
    /// The launch of `node` listening on `listen_ip`, and its welcome.
    pub fn launch(&self, node: &NodeSpec, listen_ip: String) -> (NodeLaunch, NodeConfig) {
        let i = node.index;
        let launch = NodeLaunch {
            index: i,
            group: node.group.clone(),
            implementation: node.implementation,
            program: node.program.clone(),
            env: vec![
                (env::CONTROL_ADDR.into(), self.control_addr.clone()),
                (env::NODE_INDEX.into(), i.to_string()),
                (env::RUN_ID.into(), node.config.run_id.clone()),
                (env::GROUP.into(), node.group.clone()),
                (env::LISTEN_IP.into(), listen_ip),
                (env::RUN_SECRET.into(), self.secret.clone()),
            ],
            log_path: self.results_dir.join(node_log(i)),
        };
        let config = NodeConfig {
            // The service name is left to the node (`node-0007` from its index).
            tracing: self.tracing.clone(),
            ..node.config.clone()
        };
        (launch, config)
    }
}
