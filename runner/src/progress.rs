//! Progress on a terminal, silence in pipes.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use drillbook_adapters::{NoProgress, Progress};
use indicatif::{ProgressBar, ProgressStyle};

struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, step: &str, total: Option<u64>) {
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        let style = ProgressStyle::with_template("{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(step.to_string());
        if let Ok(mut c) = self.current.lock() {
            *c = Some(bar);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Ok(c) = self.current.lock()
            && let Some(b) = c.as_ref()
        {
            b.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Ok(mut c) = self.current.lock()
            && let Some(b) = c.take()
        {
            b.finish_and_clear();
        }
    }
}

/// Bars on stderr when it is a terminal; nothing otherwise.
pub fn for_terminal() -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() { Arc::new(Bars { current: Mutex::new(None) }) } else { Arc::new(NoProgress) }
}
