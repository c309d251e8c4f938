//! The results folder of one run: `results/<plan>/<run-id>/` with the plan as run
//! (`plan.yaml`, `plan.resolved.json`), `run.json`, the reports and `logs/node-NNNN.log`.

use crate::record::RunRecord;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use testbed_contract::plan::Plan;

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(root: &Path, plan: &str, run_id: &str) -> Result<RunDir> {
        let path = root.join(plan).join(run_id);
        std::fs::create_dir_all(path.join("logs"))
            .with_context(|| format!("creating results folder {}", path.display()))?;
        Ok(RunDir { path })
    }

    pub fn write_plan(&self, text: &str, plan: &Plan) -> Result<()> {
        std::fs::write(self.path.join("plan.yaml"), text)?;
        std::fs::write(
            self.path.join("plan.resolved.json"),
            serde_json::to_vec_pretty(plan)?,
        )?;
        Ok(())
    }

    pub fn node_log(&self, index: u32) -> PathBuf {
        self.path.join(self.node_log_relative(index))
    }

    pub fn node_log_relative(&self, index: u32) -> String {
        format!("logs/node-{index:04}.log")
    }

    pub fn write_record(&self, record: &RunRecord) -> Result<()> {
        write_json(&self.path.join("run.json"), record)
    }
}

/// Writes JSON atomically (temp file + rename), so a crash never leaves half a file.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn read_record(dir: &Path) -> Result<RunRecord> {
    let path = dir.join("run.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a run record", path.display()))
}
