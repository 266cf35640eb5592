//! Logs of the long-running commands: `tracing` on stderr, with the `log`
//! records of every crate (librdkafka's included) bridged into it. Human
//! lines on a terminal, one JSON object per line otherwise, or as
//! `--log-format` says. `CARDLINK_LOG` sets the level (error, warn, info,
//! debug, trace, off; info by default) or any `tracing` filter directive
//! such as `info,cardlink_kafka=debug`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human lines on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// Human-readable lines.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Sets the format before [`init`] (from the command line).
pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// Installs the subscriber once; later calls do nothing.
pub fn init() {
    let directive = std::env::var("CARDLINK_LOG").ok().filter(|v| !v.trim().is_empty());
    let filter =
        directive.as_deref().and_then(|d| EnvFilter::try_new(d).ok()).unwrap_or_else(|| EnvFilter::new("info"));
    let json = match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    // `try_init` also routes the `log` crate's records into tracing.
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}
