//! The sections of a run's report, one file each, in the order [`super::run::build`] adds
//! them. Each reads the record (a typed section of run.json where it has one) and adds
//! headings, text, tables and charts to the document; nothing when it has nothing to say.

pub mod charts;
pub mod churn;
pub mod clock;
pub mod groups;
pub mod head;
pub mod hops;
pub mod host_load;
pub mod implementations;
pub mod lockstep;
pub mod loop_lag;
pub mod network;
pub mod nodes;
pub mod over_time;
pub mod phases;
pub mod receive_time;
pub mod summary;
pub mod traces;
pub mod witness;
