//! End-to-end tests: the real `drillbook` binary against real backups and real servers.
#![allow(clippy::disallowed_methods)] // tests start real tools and servers; drillbook itself uses process::command

mod support;

mod age;
mod bad_input;
mod checks;
mod chroma;
mod cli;
mod daemon;
mod deploy;
mod email;
mod evidence;
mod faults;
mod history_store;
mod hostile;
mod init;
mod inventory;
mod keep;
mod mariadb;
mod package;
mod pick;
mod postgres;
mod qdrant;
mod quickstart;
mod redis;
mod reliability;
mod restic;
mod s3;
mod servers;
mod stack;
mod timestamp;
mod tls;
mod tutorial;
