//! Progress of long steps, reported by the pipeline and drawn (or not) by the runner.

/// Receives byte counts of a long step. The runner draws bars on a terminal and
/// ignores them in pipes; the adapters do not know which.
pub trait Progress: Send + Sync {
    fn start(&self, step: &str, total_bytes: Option<u64>);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
