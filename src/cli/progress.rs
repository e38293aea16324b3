//! Progress of a copy on stderr: bars when stderr is a terminal; one plain line per step
//! otherwise (as skopeo prints, so CI logs keep a trace); nothing but warnings and errors with
//! `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use ferry::Digest;
use ferry::{BlobAction, Progress, ProgressEvent};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

enum Output {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

/// Shows a copy's progress on stderr.
pub struct TerminalProgress {
    output: Output,
    active: Mutex<HashMap<Digest, ProgressBar>>,
}

impl TerminalProgress {
    /// Bars on a terminal, plain lines elsewhere; `quiet` shows warnings only.
    pub fn new(quiet: bool) -> TerminalProgress {
        let output = if quiet {
            Output::Quiet
        } else if std::io::stderr().is_terminal() {
            Output::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Output::Lines
        };
        TerminalProgress {
            output,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// A line of progress (not shown with `--quiet`).
    pub fn line(&self, msg: &str) {
        match &self.output {
            Output::Bars(m) => {
                let _ = m.println(msg);
            }
            Output::Lines => eprintln!("{msg}"),
            Output::Quiet => {}
        }
    }

    fn warning(&self, msg: &str) {
        match &self.output {
            Output::Bars(m) => {
                let _ = m.println(msg);
            }
            Output::Lines | Output::Quiet => eprintln!("{msg}"),
        }
    }
}

fn short(d: &Digest) -> String {
    format!(
        "{}:{}",
        d.algorithm().name(),
        &d.hex()[..12.min(d.hex().len())]
    )
}

fn phase_line(p: &str) -> String {
    match p {
        "reading manifest" => "Getting image source manifest".into(),
        "checking signatures" => "Getting image source signatures".into(),
        "copying blobs" => "Copying blobs".into(),
        "writing manifest" => "Writing manifest to image destination".into(),
        other => {
            let mut c = other.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        }
    }
}

impl Progress for TerminalProgress {
    fn event(&self, event: ProgressEvent) {
        match event {
            ProgressEvent::Warning(w) => self.warning(&format!("ferry: warning: {w}")),
            ProgressEvent::Phase(p) => self.line(&phase_line(&p)),
            ProgressEvent::SignaturesWritten { count, .. } => {
                self.line(&format!("Storing signatures ({count})"))
            }
            ProgressEvent::BlobStarted { digest, size } => match &self.output {
                Output::Bars(bars) => {
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
                Output::Lines => eprintln!("Copying blob {} ({size} bytes)", short(&digest)),
                Output::Quiet => {}
            },
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
                    (None, BlobAction::Reused) => self.line(&format!(
                        "Skipping blob {} (already present)",
                        short(&digest)
                    )),
                    (None, BlobAction::Copied) => {
                        self.line(&format!("Copying blob {} done", short(&digest)))
                    }
                }
            }
            _ => {}
        }
    }
}
