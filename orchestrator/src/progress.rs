//! What a person sees while a run goes: one progress bar that names the stage, and one line
//! per finished phase. Silent with `--quiet`; without a terminal, only the phase lines.

use crate::record::PhaseRecord;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

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
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(5));
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} {msg:<28} [{bar:30}] {pos}/{len}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            b
        });
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
        let line = format!(
            "  {:<11} {:>9.1} ms  {}{}",
            p.kind,
            p.duration_ms,
            if p.ok { "ok" } else { "FAILED" },
            p.note
                .as_ref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
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
