//! The drillbook runbook language (version 1): types, YAML parsing with `file:line:col`
//! errors, validation and the JSON Schema.
//!
//! **Invariant:** this crate does no I/O and never reads the clock. Callers hand it text
//! and get back a [`Runbook`] that is valid by construction, or every [`Issue`] at once.

mod issue;
mod model;
mod parse;
mod schema;
mod validate;
mod values;

pub use issue::{Issue, Issues, Pos, nearest};
pub use model::*;
pub use parse::{CHECK_KINDS, adapter_kinds, parse_yaml};
pub use schema::runbook_schema;
pub use values::{
    ByteSize, CmpOp, DurationSpec, Expect, Glob, Name, Operand, Parsed, Percent, Schedule, SecretRef, Timezone,
};
