//! `orchestrator`: runs pubsub-testbed plans. See `orchestrator --help`.

fn main() -> std::process::ExitCode {
    orchestrator::cli::main()
}
