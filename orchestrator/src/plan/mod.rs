//! Reading a plan: parameter substitution and parsing (`load`), field positions (`locate`),
//! semantic checks (`validate`), and the error a person reads (`error`).

pub mod error;
pub mod load;
pub mod locate;
pub mod validate;

pub use error::{Issue, PlanError};
pub use load::{LoadedPlan, load, load_text, parse_override};
