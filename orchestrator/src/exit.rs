//! The exit codes of `orchestrator` that are not a run's status
//! ([`crate::record::Status::exit_code`] has those): 0 passed, 1 assertion failed, 2 node
//! failed, 3 timeout, 4 error, 64 invalid plan or usage, 130 interrupted.

/// An invalid plan or command line.
pub const EXIT_INVALID: u8 = 64;
/// Stopped by SIGINT or SIGTERM.
pub const EXIT_INTERRUPTED: u8 = 130;
