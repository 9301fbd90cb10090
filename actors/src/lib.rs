//! The actors of Bourse and what they stand on.
//!
//! * `node`: starts and wires everything; recovery and first-start bootstrap.
//! * `session`: one actor per WebSocket connection.
//! * `ledger`: the sequencer: balances, holds, settlement, the event order.
//! * `instrument`: one actor per instrument, owning its order book.
//! * `journal`: group commit of event batches; releases answers and market data.
//! * `market`: market-data and account streams, fed with committed events.
//! * `reply`: where answers go, and the messages sessions receive.
//! * `wire`: engine integers to wire decimals and back.
//! * `config`: the configuration file's shape and validation.
//! * `auth`: password hashes, API-key signatures, nonces, session tokens, rate limits.
//! * `storage`: the fsync'd event log and the sled snapshot store (the only module touching disk).
//! * `durability`: snapshots from the log, recovery, and the backup, restore, verify and audit tools.
//! * `telemetry`: every exported metric, its buckets, and the Prometheus recorder.
//! * `failstop`: a panic on a thread the node cannot run without stops the process.

pub mod auth;
pub mod config;
pub mod durability;
pub mod failstop;
pub mod instrument;
pub mod journal;
pub mod ledger;
pub mod market;
pub mod node;
pub mod reply;
pub mod session;
pub mod storage;
pub mod telemetry;
pub mod wire;

/// Installs the Prometheus recorder once per process (see [`telemetry::install`]).
pub fn install_metrics() {
    telemetry::install();
}

/// The Prometheus exposition text of every metric (see [`telemetry::render`]).
pub fn metrics_text() -> String {
    telemetry::render()
}
