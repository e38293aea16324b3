//! Progress on the terminal: bars with indicatif when stderr is a terminal; nothing with
//! `--quiet` or when stderr is not a terminal. Warnings always go to stderr.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use ferry::copy::{BlobAction, Progress, ProgressEvent};
use ferry::digest::Digest;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws a copy's progress on stderr.
pub struct TerminalProgress {
    bars: Option<MultiProgress>,
    active: Mutex<HashMap<Digest, ProgressBar>>,
}

impl TerminalProgress {
    /// Bars on a terminal; `quiet` (or no terminal) shows warnings only.
    pub fn new(quiet: bool) -> TerminalProgress {
        let tty = std::io::stderr().is_terminal();
        TerminalProgress {
            bars: (tty && !quiet)
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            active: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, msg: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }
}

fn short(d: &Digest) -> String {
    format!("{}:{}", d.algorithm().name(), &d.hex()[..12])
}

impl Progress for TerminalProgress {
    fn event(&self, event: ProgressEvent) {
        if let ProgressEvent::Warning(w) = &event {
            self.line(&format!("ferry: warning: {w}"));
            return;
        }
        // Progress is drawn only on a terminal; with -q or when stderr is a pipe or a file,
        // only warnings and errors are written.
        let Some(bars) = &self.bars else { return };
        match event {
            ProgressEvent::Warning(_) => {}
            ProgressEvent::Phase(p) => {
                let _ = bars.println(format!("{}{}", p[..1].to_uppercase(), &p[1..]));
            }
            ProgressEvent::BlobStarted { digest, size } => {
                let bar = bars.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("Copying blob {}", short(&digest)));
                if let Ok(mut a) = self.active.lock() {
                    a.insert(digest, bar);
                }
            }
            ProgressEvent::BlobBytes { digest, bytes } => {
                if let Ok(a) = self.active.lock()
                    && let Some(bar) = a.get(&digest)
                {
                    bar.inc(bytes);
                }
            }
            ProgressEvent::BlobDone { digest, action } => {
                let bar = self.active.lock().ok().and_then(|mut a| a.remove(&digest));
                match (bar, action) {
                    (Some(bar), _) => bar.finish(),
                    (None, BlobAction::Reused) => {
                        let _ = bars.println(format!(
                            "Skipping blob {} (already present)",
                            short(&digest)
                        ));
                    }
                    (None, BlobAction::Copied) => {}
                }
            }
        }
    }
}
