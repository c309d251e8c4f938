//! Plain processes on this machine, listening on 127.0.0.1. Every node gets a parent-death
//! signal (so even `kill -9` of the orchestrator takes the fleet down) and its own process
//! group (so a terminal's Ctrl-C reaches the orchestrator, which then ends the run in order).

use super::{ExitSender, NodeExit, NodeLaunch, Runner, RunnerError, StopMode};
use async_trait::async_trait;
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::watch;

pub struct LocalRunner {
    exits: ExitSender,
    /// pid and a "reaped" flag per running node.
    running: HashMap<u32, (u32, watch::Receiver<bool>)>,
}

impl LocalRunner {
    pub fn new(exits: ExitSender) -> Self {
        LocalRunner {
            exits,
            running: HashMap::new(),
        }
    }
}

/// Builds the command for a node: log file, environment, death signal, own process group.
/// Shared with runners that wrap it (network namespaces add their own `pre_exec`).
pub fn node_command(node: &NodeLaunch) -> Result<Command, RunnerError> {
    let log = std::fs::File::create(&node.log_path).map_err(|source| RunnerError::Log {
        path: node.log_path.clone(),
        source,
    })?;
    let log2 = log.try_clone().map_err(|source| RunnerError::Log {
        path: node.log_path.clone(),
        source,
    })?;
    let mut cmd = Command::new(&node.program.path);
    cmd.args(&node.program.args)
        .envs(node.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .kill_on_drop(true);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Die with the thread that spawned us (a tokio worker, which lives as long as the
            // orchestrator's runtime): no orphans even after `kill -9` of the orchestrator.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The parent died before prctl took effect (compared with the pid, not with 1:
                // the orchestrator may itself be PID 1 in a container).
                libc::_exit(1);
            }
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    Ok(cmd)
}

/// Spawns `cmd` and reports its exit on `exits`; returns the pid and a reaped flag.
pub fn spawn_watched(
    mut cmd: Command,
    node: &NodeLaunch,
    exits: &ExitSender,
) -> Result<(u32, watch::Receiver<bool>), RunnerError> {
    let mut child = cmd.spawn().map_err(|source| RunnerError::Spawn {
        index: node.index,
        program: node.program.to_string(),
        source,
    })?;
    let pid = child.id().unwrap_or(0);
    let (reaped_tx, reaped_rx) = watch::channel(false);
    let exits = exits.clone();
    let index = node.index;
    tokio::spawn(async move {
        let status = child.wait().await;
        let (code, signal) = match status {
            Ok(s) => (s.code(), s.signal()),
            Err(_) => (None, None),
        };
        let _ = reaped_tx.send(true);
        let _ = exits.send(NodeExit {
            index,
            code,
            signal,
        });
    });
    Ok((pid, reaped_rx))
}

pub fn send_signal(pid: u32, mode: StopMode) {
    let sig = match mode {
        StopMode::Graceful => libc::SIGTERM,
        StopMode::Kill => libc::SIGKILL,
    };
    // SAFETY: plain syscall on a pid we spawned and have not reaped yet.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// SIGTERM to all, wait up to `grace`, SIGKILL the rest, wait until every one is reaped.
pub async fn shutdown_all(
    running: &mut HashMap<u32, (u32, watch::Receiver<bool>)>,
    grace: Duration,
) {
    let alive = |r: &HashMap<u32, (u32, watch::Receiver<bool>)>| {
        r.values()
            .filter(|(_, rx)| !*rx.borrow())
            .map(|(pid, _)| *pid)
            .collect::<Vec<_>>()
    };
    for pid in alive(running) {
        send_signal(pid, StopMode::Graceful);
    }
    let deadline = tokio::time::Instant::now() + grace;
    for (_, rx) in running.values_mut() {
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|r| *r)).await;
    }
    for pid in alive(running) {
        send_signal(pid, StopMode::Kill);
    }
    for (_, rx) in running.values_mut() {
        let _ = rx.wait_for(|r| *r).await;
    }
    running.clear();
}

#[async_trait]
impl Runner for LocalRunner {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn launch(&mut self, node: NodeLaunch) -> Result<Option<u32>, RunnerError> {
        let cmd = node_command(&node)?;
        let (pid, reaped) = spawn_watched(cmd, &node, &self.exits)?;
        self.running.insert(node.index, (pid, reaped));
        Ok(Some(pid))
    }

    async fn stop(&mut self, index: u32, mode: StopMode) -> Result<(), RunnerError> {
        let (pid, reaped) = self
            .running
            .get(&index)
            .ok_or(RunnerError::NotRunning(index))?;
        if !*reaped.borrow() {
            send_signal(*pid, mode);
        }
        Ok(())
    }

    async fn shutdown(&mut self, grace: Duration) {
        shutdown_all(&mut self.running, grace).await;
    }
}
