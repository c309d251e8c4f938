//! Process exit codes, for runners and scripts.

/// Finished, or aborted by the orchestrator; the result was sent.
pub const OK: u8 = 0;
/// The node failed; a result with `exit: error` was sent if the channel was up.
pub const FAILED: u8 = 1;
/// The environment is incomplete or invalid (see stderr).
pub const USAGE: u8 = 2;
/// The control channel could not be opened, or the orchestrator went away.
pub const CONTROL: u8 = 3;
/// Stopped by a signal (128 + signal number, as shells report it).
pub const SIGINT: u8 = 130;
pub const SIGTERM: u8 = 143;
