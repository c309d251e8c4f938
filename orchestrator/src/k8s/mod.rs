//! Kubernetes (cargo feature `k8s`): the same plan on a cluster instead of this machine.
//!
//! - [`render`]: plan → every object of a run (pure; `orchestrator k8s render`);
//! - [`names`]: valid names and labels;
//! - [`pods`]: a pod's status in words (OOMKilled, ImagePullBackOff, …);
//! - [`run`]: the kube runner behind `orchestrator k8s run` (create, watch, fetch, delete);
//! - [`sweep`]: namespaces that runs whose launcher was killed left behind;
//! - [`coordinate`] and [`results`]: what the coordinator pod runs in the cluster;
//! - [`cli`]: the `orchestrator k8s …` subcommands.
//!
//! docs/kubernetes.md walks through a run on kind and on a real cluster.

pub mod cli;
pub mod coordinate;
pub mod names;
pub mod pods;
pub mod render;
pub mod results;
pub mod run;
pub mod sweep;
