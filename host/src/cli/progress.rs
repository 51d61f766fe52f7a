//! A spinner on stderr while a run waits, shown only on a terminal so logs
//! and `--json` output stay clean.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::recovery::Progress;

pub struct Spinner {
    phase: Arc<Mutex<Option<(String, Instant)>>>,
    enabled: bool,
}

impl Spinner {
    /// A spinner when stderr is a terminal and `quiet` is false.
    pub fn new(quiet: bool) -> Self {
        let enabled = !quiet && std::io::stderr().is_terminal();
        let phase: Arc<Mutex<Option<(String, Instant)>>> = Arc::new(Mutex::new(None));
        if enabled {
            let shared = phase.clone();
            std::thread::spawn(move || {
                const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
                for frame in FRAMES.iter().cycle() {
                    std::thread::sleep(Duration::from_millis(100));
                    let guard = shared.lock().unwrap();
                    if let Some((text, since)) = &*guard {
                        // A terminal that went away is no reason to panic.
                        let mut err = std::io::stderr().lock();
                        let _ = write!(
                            err,
                            "\r\x1b[2K{frame} {} ({:.1}s)",
                            crate::recovery::report::escape_control(text),
                            since.elapsed().as_secs_f64()
                        );
                        let _ = err.flush();
                    }
                }
            });
        }
        Self { phase, enabled }
    }
}

impl Progress for Spinner {
    fn phase(&self, text: &str) {
        if self.enabled {
            *self.phase.lock().unwrap() = Some((text.to_string(), Instant::now()));
        }
    }

    fn done(&self) {
        if self.enabled {
            *self.phase.lock().unwrap() = None;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
