//! The control channel: a listener the nodes connect to (`server`) and the sync service's
//! barriers (`barrier`).

pub mod barrier;
pub mod server;

pub use server::{ConnId, ControlEndpoints, ControlEvent, ControlServer};
