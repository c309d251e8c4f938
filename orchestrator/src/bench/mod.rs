//! Benchmarks: a plan's `matrix:` swept cell by cell, every iteration a fresh fleet, and the
//! variants compared side by side.
//!
//! Follow a bench from [`runner::run_bench`]: [`matrix`] expands the cells and the schedule,
//! each run goes through [`crate::run::run_plan`], [`store`] saves it to `bench.json` at
//! once, and [`render`] writes the reports: [`view`] builds the document from [`compare`]'s
//! per-cell [`stats`] for the [`metric`]s, and the charts come from [`crate::chart`].

pub mod cli;
pub mod compare;
pub mod matrix;
pub mod metric;
pub mod reference;
pub mod render;
pub mod runner;
pub mod stats;
pub mod store;
pub mod view;

pub use runner::{BenchOptions, BenchOutput, run_bench};
pub use store::BenchRecord;

use std::path::Path;

/// Whether `dir` is a bench folder (holds `bench.json`).
pub fn is_bench_dir(dir: &Path) -> bool {
    dir.join(store::BENCH_FILE).is_file()
}

/// Re-renders every report of a bench folder from its `bench.json`.
pub fn rerender(dir: &Path) -> anyhow::Result<()> {
    let rec = BenchRecord::load(dir)?;
    render::write_all(dir, &rec)
}
