//! End-to-end tests: the real `drillbook` binary against real backups and real servers.

mod support;

mod bad_input;
mod checks;
mod cli;
mod daemon;
mod email;
mod evidence;
mod history_store;
mod inventory;
mod postgres;
mod quickstart;
mod s3;
mod servers;
