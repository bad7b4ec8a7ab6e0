//! Progress for long commands: a status line on stderr every two seconds, however long one
//! unit of work (a trace, a benchmark run) takes, printed by a thread of its own that reads
//! the status the work updates.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the status is printed, like `insync check`.
pub const PERIOD: Duration = Duration::from_secs(2);

/// Prints the shared status every [`PERIOD`] until dropped.
pub struct Ticker {
    status: Arc<Mutex<String>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts printing `what: <status>`; a quiet ticker prints nothing (`--json` runs).
    pub fn start(what: &'static str, quiet: bool) -> Ticker {
        let status = Arc::new(Mutex::new(String::from("starting")));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(&status);
        let thread = (!quiet).then(|| {
            std::thread::spawn(move || {
                let started = Instant::now();
                // Wakes on the period or on the stop signal, whichever comes first.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PERIOD) {
                    let line = shared.lock().expect("status lock").clone();
                    eprintln!("  {what} {:.0}s: {line}", started.elapsed().as_secs_f64());
                }
            })
        });
        Ticker {
            status,
            stop: Some(stop),
            thread,
        }
    }

    /// Replaces the status line.
    pub fn set(&self, line: String) {
        *self.status.lock().expect("status lock") = line;
    }

    /// The status line, for work running on other threads or tasks.
    pub fn status(&self) -> Arc<Mutex<String>> {
        Arc::clone(&self.status)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
