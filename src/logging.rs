//! The process's log output: `tracing` events to stderr, as text or as one
//! JSON object per line (`log_format = "json"`), filtered by `RUST_LOG`
//! (default `info`).
//!
//! One line per significant event: the configuration summary (no secrets)
//! and `listening` at start, state recovered from the event log, slow
//! consumers (info), refused requests (debug). Lines about a client request
//! carry `conn` (the connection's number) and `req` (the client's request
//! `id`), which tie them to what the client sent and got back. In JSON, an
//! event's fields are top-level keys beside `timestamp`, `level`, `target`
//! and `message`, and the span it happened in (if any) is under `span`.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter when `RUST_LOG` is unset or unreadable.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber. Later calls (tests, subcommands that
/// run twice) leave the first in place.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = match format {
        LogFormat::Text => text_subscriber(filter, std::io::stderr).try_init(),
        LogFormat::Json => json_subscriber(filter, std::io::stderr).try_init(),
    };
}

/// Human-readable lines.
pub fn text_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

/// One JSON object per line, event fields flattened to the top level, the
/// current span's fields under `span`.
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn json(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    fn capture(filter: &str, f: impl FnOnce()) -> Vec<serde_json::Value> {
        let lines = Lines::default();
        let w = lines.clone();
        let sub = json_subscriber(EnvFilter::new(filter), move || w.clone());
        tracing::subscriber::with_default(sub, f);
        lines.json()
    }

    #[test]
    fn a_refused_request_is_one_json_line_with_its_connection_and_request_id() {
        let r = bourse_protocol::Response {
            id: Some(bourse_protocol::ReqId::Str("bot-17".into())),
            ok: false,
            res: None,
            err: Some(bourse_protocol::ErrorBody::new(
                bourse_protocol::ErrorCode::InsufficientFunds,
                "not enough USD",
            )),
            ts_in: 1,
            ts_out: 2,
        };
        let lines = capture("debug", || {
            bourse_actors::telemetry::response_sent(42, &r, 100);
        });
        let line = lines
            .iter()
            .find(|l| l["message"] == "request refused")
            .unwrap_or_else(|| panic!("{lines:?}"));
        assert_eq!(line["level"], "DEBUG");
        assert_eq!(line["conn"], 42);
        assert_eq!(line["req"], "bot-17");
        assert_eq!(line["code"], "insufficient_funds");
        assert!(line["timestamp"].is_string());

        // At the default level, refusals are not logged.
        let lines = capture(DEFAULT_FILTER, || {
            bourse_actors::telemetry::response_sent(42, &r, 100);
        });
        assert!(lines.is_empty(), "{lines:?}");
    }

    #[test]
    fn json_lines_carry_the_current_span() {
        let lines = capture("info", || {
            let span = tracing::info_span!("session", conn = 9);
            let _in = span.enter();
            tracing::info!(action = "disconnect", "slow consumer");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["message"], "slow consumer");
        assert_eq!(lines[0]["action"], "disconnect");
        assert_eq!(lines[0]["span"]["name"], "session");
        assert_eq!(lines[0]["span"]["conn"], 9);
    }
}
