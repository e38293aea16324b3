//! The `ferry` command: parse the command line, run the library, print; nothing else.
//!
//! Exit status: 0 done (or accepted), 1 rejected by the policy or the signatures, 2 bad usage,
//! 3 any other failure (unreachable, IO, corrupt data), so a script can tell "not trusted"
//! from "could not check". Invoked as `skopeo` (a link, or `FERRY_COMPAT=skopeo`), every failure
//! exits 1 as skopeo's do (`cli/compat.rs`).

/// `println!` for command output: through [`cli::output::stdout_write`], so a reader that
/// goes away does not panic ferry.
macro_rules! outln {
    () => {
        $crate::cli::output::stdout_write(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::output::stdout_write(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

/// `print!` for command output (see [`outln`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::stdout_write(format!($($arg)*).as_bytes())
    };
}

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    cli::compat::init(&raw);
    if cli::compat::is_skopeo() && cli::compat::asks_for_version(raw.get(1..).unwrap_or_default()) {
        outln!("{}", cli::compat::version_line());
        return ExitCode::SUCCESS;
    }
    let args = cli::skopeo_root_flags(cli::go_switches(raw));
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print and succeed; anything else is bad usage.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(cli::compat::exit_status(cli::EXIT_USAGE))
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(if cli.debug {
        cli.verbose.max(2)
    } else {
        cli.verbose
    });
    let style = cli.command.flag_style();
    let deadline = cli.command_timeout;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            return ExitCode::from(cli::compat::exit_status(cli::EXIT_FAILURE));
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = cli::run(cli) => Ok(r),
            (signal, code) = interrupted() => {
                // An interrupted copy leaves nothing behind: its temporaries go now, before
                // the process ends (a kill -9 leaves them to the next copy's cleanup).
                ferry::remove_live_temporaries();
                eprintln!("ferry: interrupted by {signal}; removed this command's temporary files");
                Err(code)
            }
            limit = timed_out(deadline) => {
                ferry::remove_live_temporaries();
                eprintln!(
                    "ferry: the command did not finish within {limit:?} (--command-timeout); \
                     stopped it and removed its temporary files"
                );
                Err(cli::compat::exit_status(cli::EXIT_FAILURE))
            }
        }
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(code) => return ExitCode::from(code),
    };
    match outcome {
        Ok(code) => cli::compat::exit_code(code),
        Err(e) => {
            if cli::compat::is_skopeo() {
                // skopeo's logrus.Fatal line, which scripts grep, last; ferry's own account of
                // a rejection before it.
                let chain = cli::errors::chain(&e);
                let message = cli::compat::fatal_message(&e, &chain);
                if message != chain {
                    eprintln!("ferry: {chain}");
                }
                eprintln!("{}", cli::compat::log_line("fatal", &message, &[]));
            } else {
                eprintln!("ferry: {}", cli::errors::chain(&e));
            }
            if let Some(hint) = cli::errors::hint_text(&e, style) {
                eprintln!("{hint}");
            }
            ExitCode::from(cli::compat::exit_status(cli::errors::exit_code(&e)))
        }
    }
}

/// Waits for SIGINT or SIGTERM; the signal's name and the exit status a shell reports for it
/// (128 + the signal's number).
async fn interrupted() -> (&'static str, u8) {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => ("SIGINT", 130),
            _ = term.recv() => ("SIGTERM", 143),
        },
        // Without signal handlers the default actions apply; never report an interruption.
        _ => std::future::pending().await,
    }
}

/// Waits out `--command-timeout`, if given, and says how long that was.
async fn timed_out(limit: Option<std::time::Duration>) -> std::time::Duration {
    match limit {
        Some(d) => {
            tokio::time::sleep(d).await;
            d
        }
        None => std::future::pending().await,
    }
}

fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    // rustls-platform-verifier logs every failed verification at ERROR; ferry reports the
    // failure itself, in words, so those lines only show with -v.
    let default = match verbose {
        0 => "warn,rustls_platform_verifier=off",
        1 => "info,ferry=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal, and never with NO_COLOR: logs go to files and CI.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::cli::Cli::command().debug_assert();
    }
}
