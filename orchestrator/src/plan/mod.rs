//! Reading a plan: parameter substitution and parsing (`load`), the command line's
//! overrides (`overrides`), field positions (`locate`), semantic checks of the whole
//! (`validate`), and the error a person reads (`error`).

pub mod error;
pub mod load;
pub mod locate;
pub mod overrides;
pub mod validate;

pub use error::{Issue, PlanError};
pub use load::{LoadedPlan, load, load_text, load_text_with, load_with, parse_override};
pub use overrides::{Overrides, RunnerChoice, TelemetryOverrides};
