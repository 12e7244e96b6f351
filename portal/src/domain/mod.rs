//! Parsed, validated values: once a value has one of these types it is known to be well formed.
//! Pure: no I/O, no clock, no configuration lookups (allowed domains are passed in).

mod account;
pub mod audit;
pub mod coursework;
pub mod custom_domain;
mod env;
pub mod grade_export;
pub mod permissions;
pub mod roster;
pub mod scaling;
pub mod webhooks;

pub use account::{DisplayName, DomainPolicy, EmailAddress, Language, NewPassword, Role, StudentNumber, ValidationError};
pub use env::{check_env_value, EnvVarName, MAX_ENV_VALUE_BYTES};
pub use permissions::{Action, GroupRole, ProjectRole};
