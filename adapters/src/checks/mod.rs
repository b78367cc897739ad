//! Checks that do not depend on the store: they read the restored tree or run a script.

use drillbook_runbooks::CheckKind;

pub mod command;
pub mod config;
pub mod files;

pub fn is_store_independent(check: &CheckKind) -> bool {
    matches!(check, CheckKind::Command(_) | CheckKind::Files(_) | CheckKind::ConfigParse(_))
}
