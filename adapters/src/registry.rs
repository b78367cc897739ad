//! The whole list of stores, one line each. The compiler checks that every
//! `AdapterOptions` variant has an adapter.

use drillbook_runbooks::AdapterOptions;

use crate::Adapter;

/// The adapter for a runbook's `restore` options.
pub fn build(options: &AdapterOptions) -> Box<dyn Adapter> {
    match options {
        AdapterOptions::Postgres(o) => Box::new(crate::postgres::Postgres::new(o.clone())),
        AdapterOptions::Sqlite(o) => Box::new(crate::sqlite::Sqlite::new(o.clone())),
        AdapterOptions::Files(o) => Box::new(crate::files::Files::new(o.clone())),
        AdapterOptions::Redis(o) => Box::new(crate::redis::Redis::new(o.clone())),
        AdapterOptions::Mariadb(o) => Box::new(crate::mariadb::Mariadb::new(o.clone())),
        AdapterOptions::Chroma(o) => Box::new(crate::chroma::Chroma::new(o.clone())),
        AdapterOptions::Qdrant(o) => Box::new(crate::qdrant::Qdrant::new(o.clone())),
    }
}
