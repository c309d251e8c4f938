//! Whether a node is alive between its messages: the kernel's view of a local process
//! (`/proc/PID/stat` state `T` or `t` — stopped, e.g. by SIGSTOP — for [`STOPPED_GRACE`] names it) and
//! `ping`/`pong` on the control channel (a node that answers no ping for [`PING_SILENCE`]
//! while its process exists is hung). Ping ids stay below 2^62; ids with bit 62 set are
//! the clock offsets' (`clock_sync`).

use std::time::Duration;

/// How often the fleet looks: each look reads every local node's `/proc/PID/stat`, so at
/// 1000 nodes once a second (a stopped node is still named within STOPPED_GRACE + 1 s).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a process must stay stopped before it is called hung: a debugger's or a test's
/// short pause (SIGSTOP, then SIGCONT) is a slow node, not a hung one.
pub const STOPPED_GRACE: Duration = Duration::from_millis(2500);
/// How often a node is pinged: six pings fit the silence below, and 1000 nodes answer 200
/// pongs a second, not 1000.
pub const PING_EVERY: Duration = Duration::from_secs(5);
/// Silence after which a node whose process still runs is called hung. Generous: a node on
/// an overloaded machine may be slow for seconds and still be working.
pub const PING_SILENCE: Duration = Duration::from_secs(30);
/// The highest ping id this module uses.
pub const MAX_PING_ID: u64 = (1 << 62) - 1;

/// A process's scheduling state from `/proc/PID/stat` (`R`, `S`, `D`, `T`, `t`, `Z` …);
/// None when the process is gone or the file cannot be read.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_state(&stat)
}

/// The state field of a `/proc/PID/stat` line: the first field after the command name,
/// which is in parentheses and may itself hold `)` and spaces.
pub fn parse_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Whether `pid` is `ancestor` or runs below it (a wrapper's child), from `/proc`'s parent
/// pids; a few levels at most.
pub fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut p = pid;
    for _ in 0..8 {
        if p == ancestor {
            return true;
        }
        let Some(parent) = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            })
        else {
            return false;
        };
        if parent <= 1 {
            return false;
        }
        p = parent;
    }
    false
}

/// Stopped by a signal or a tracer.
pub fn is_stopped(state: char) -> bool {
    matches!(state, 'T' | 't')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_read_after_the_last_parenthesis() {
        assert_eq!(parse_state("42 (node) S 1 2 3"), Some('S'));
        assert_eq!(parse_state("42 (a) b) T 1"), Some('T'));
        assert_eq!(parse_state("garbage"), None);
        assert!(is_stopped('T') && is_stopped('t') && !is_stopped('S'));
    }

    #[test]
    fn a_child_descends_from_this_process_and_not_the_reverse() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert!(descends_from(child.id(), me));
        assert!(!descends_from(me, child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn this_process_runs_and_a_stopped_child_is_seen_stopped() {
        let me = std::process::id();
        assert!(matches!(proc_state(me), Some('R' | 'S')));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // SAFETY: kill(2) of the child just started.
        unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
        let mut seen = None;
        for _ in 0..200 {
            seen = proc_state(child.id());
            if seen.is_some_and(is_stopped) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen.is_some_and(is_stopped), "state {seen:?}");
    }
}
