//! `drillbook-qdrant-engine`: Qdrant Edge serving one drill over stdin/stdout, in the child
//! process drillbook starts for a Qdrant restore (`adapters/src/qdrant/engine.rs`). A program
//! of its own, installed beside `drillbook`: the engine's code (most of a drillbook build) is
//! then neither mapped nor relocated by the daemon, and the child maps only the engine.
//! No runtime, no config: it answers until its input ends, and whatever happens to it (a
//! panic, a signal on a damaged segment) happens to this child only.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os().len() > 1 {
        eprintln!(
            "drillbook-qdrant-engine takes no arguments: drillbook starts it for a Qdrant restore and speaks to it \
             over stdin/stdout"
        );
        return ExitCode::from(2);
    }
    match drillbook_qdrant_engine::serve(std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the Qdrant engine's stdin or stdout failed: {e}");
            ExitCode::from(1)
        }
    }
}
