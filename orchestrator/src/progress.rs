//! What a person sees while the orchestrator works, on stderr: for a run ([`Progress`]) one
//! bar that names the stage and one line per finished phase; for a bench ([`RunsProgress`])
//! one bar over all its runs with an ETA. Silent with `--quiet`; without a terminal, lines
//! only.

use crate::record::PhaseRecord;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// A bar on stderr when it is a terminal.
fn bar(template: &'static str, len: u64, hz: u8) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(hz));
        b.set_style(
            ProgressStyle::with_template(template)
                .expect("static template")
                .progress_chars("=> "),
        );
        b
    })
}

/// A line above the bar, or on stderr without one.
fn line(bar: &Option<ProgressBar>, s: String) {
    match bar {
        Some(b) => b.println(s),
        None => eprintln!("{s}"),
    }
}

pub struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
}

impl Progress {
    pub fn new(quiet: bool, plan: &str, run_id: &str) -> Progress {
        if quiet {
            return Progress {
                bar: None,
                lines: false,
            };
        }
        eprintln!("run {plan}/{run_id}");
        let bar = bar(
            "{spinner} {elapsed_precise} {msg:<28} [{bar:30}] {pos}/{len}",
            0,
            5,
        );
        Progress { bar, lines: true }
    }

    pub fn stage(&self, name: &str, total: u64) {
        if let Some(b) = &self.bar {
            b.set_message(name.to_string());
            b.set_length(total);
            b.set_position(0);
        }
    }

    pub fn set(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
    }

    pub fn phase_done(&self, p: &PhaseRecord) {
        if !self.lines {
            return;
        }
        let text = format!(
            "  {:<11} {:>9.1} ms  {}{}",
            p.kind,
            p.duration_ms,
            if p.ok { "ok" } else { "FAILED" },
            p.note
                .as_ref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
        line(&self.bar, text);
    }

    /// A line on stdout (the churn phase's live view), printed above the progress bar.
    /// Silent with `--quiet`.
    pub fn stdout_line(&self, line: &str) {
        if !self.lines {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// One bar over all runs of a bench with an ETA; without a terminal, a line every 5%.
pub struct RunsProgress {
    bar: Option<ProgressBar>,
    quiet: bool,
    total: u64,
    pos: std::cell::Cell<u64>,
    started: Instant,
}

impl RunsProgress {
    /// `done` of `total` runs are done already (a resumed bench).
    pub fn new(quiet: bool, total: u64, done: u64) -> RunsProgress {
        let bar = if quiet {
            None
        } else {
            bar(
                "{elapsed_precise} [{bar:32}] {pos}/{len} runs  ETA {eta}  {msg}",
                total,
                4,
            )
        };
        if let Some(b) = &bar {
            b.set_position(done);
            b.reset_eta();
        }
        RunsProgress {
            bar,
            quiet,
            total,
            pos: std::cell::Cell::new(done),
            started: Instant::now(),
        }
    }

    pub fn line(&self, s: String) {
        if !self.quiet {
            line(&self.bar, s);
        }
    }

    /// Names the run under way.
    pub fn current(&self, what: &str) {
        if let Some(b) = &self.bar {
            b.set_message(what.to_string());
        }
    }

    pub fn advance(&self) {
        let pos = self.pos.get() + 1;
        self.pos.set(pos);
        if let Some(b) = &self.bar {
            b.set_position(pos);
        } else if !self.quiet {
            let step = (self.total / 20).max(1);
            if pos.is_multiple_of(step) || pos == self.total {
                eprintln!(
                    "  {pos}/{} runs, {:.0} s",
                    self.total,
                    self.started.elapsed().as_secs_f64()
                );
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
