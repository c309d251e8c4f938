//! `orchestrator conformance`: its flags, and the checklist or JSON it prints.

use super::run::{ConformanceOptions, run};
use crate::runner::program::{NodeProgram, Programs};
use anyhow::Result;
use std::path::PathBuf;
use testbed_contract::plan::Implementation;

/// `orchestrator conformance`: exit 0 when every check passed, 1 when one did not, 4 when the
/// check could not run (e.g. the program is missing).
#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {
    /// The implementation to check: rust, go or js.
    #[arg(long = "impl", value_enum)]
    pub implementation: ImplArg,
    /// Go: the go-libp2p-pubsub version, as a plan's `impl_version` names it (its binary is
    /// interop/go/bin/pubsub-node-go-<version>).
    #[arg(long)]
    pub impl_version: Option<String>,
    /// Check this program instead of the implementation's own (e.g. a wrapper or a work in
    /// progress); arguments after it are passed to it.
    #[arg(long, num_args = 1.., value_name = "PROGRAM [ARGS]", allow_hyphen_values = true)]
    pub program: Option<Vec<String>>,
    /// The Rust node binary, also the reference node (default: pubsub-node beside this
    /// executable, or $PUBSUB_NODE_BIN).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// Folder holding the Go and JS nodes (default: interop).
    #[arg(long)]
    pub interop_dir: Option<PathBuf>,
    /// Write the node logs here (default: a temporary folder, removed when every check passed).
    #[arg(long, value_name = "DIR")]
    pub logs: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of the checklist.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ImplArg {
    Rust,
    Go,
    Js,
}

impl From<ImplArg> for Implementation {
    fn from(a: ImplArg) -> Self {
        match a {
            ImplArg::Rust => Implementation::Rust,
            ImplArg::Go => Implementation::Go,
            ImplArg::Js => Implementation::Js,
        }
    }
}

pub async fn cli(args: ConformanceArgs) -> Result<std::process::ExitCode> {
    let program = args.program.map(|mut v| {
        let path = PathBuf::from(v.remove(0));
        NodeProgram { path, args: v }
    });
    let opts = ConformanceOptions {
        implementation: args.implementation.into(),
        impl_version: args.impl_version,
        programs: Programs::discover(args.node_bin, args.interop_dir),
        program,
        keep_logs: args.logs.is_some(),
        log_dir: args.logs,
    };
    let report = run(&opts).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}
