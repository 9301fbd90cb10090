//! The Bourse load generator: benchmark scenarios that see the exchange
//! exactly as clients do, over the WebSocket and PROTOCOL.md, through the
//! `bourse-protocol` crate and nothing else of the server.
//!
//! Layout:
//!
//! * [`machine`]: the machine a run is on (cores, CPU model, memory), the
//!   date, and the CPU time and resident memory of a process from `/proc`.
//! * [`stats`]: latency histograms (hdrhistogram, microseconds) and their
//!   summaries, counters by name.
//! * [`wire`]: one connection: the handshake with a subprotocol, requests
//!   encoded from the protocol's argument types, a cheap reader for the hot
//!   path ([`wire::Incoming`]) and a full one for set-up calls.
//! * [`target`]: where the exchange is (a URL, the operator's password, the
//!   server's process id) and a server process the bench starts itself.
//! * [`setup`]: bench accounts (users, API keys, deposits), extra
//!   instruments, and what the bench knows of each instrument's grid and mid.
//! * [`scrape`]: a histogram of the server's `/metrics`, before and after a
//!   run, for the server's own share of a latency.
//! * [`flow`]: the order-flow engine every scenario uses: a mix of places,
//!   cancels, amends and marketable orders, open loop (paced arrivals,
//!   latency from the intended send time) or closed loop (a window of
//!   outstanding requests per connection).
//! * Scenarios: [`orders`], [`fanout`], [`connections`], [`crowd`]; each has
//!   an options struct, an async `run` and a serializable report.
//! * [`cli`]: the `bourse-bench` command line, `--out` JSON results and
//!   `--compare` of two server configurations.
//!
//! Rates, ratios and percentiles here are measurements, not money: this
//! crate alone in the workspace uses floating point, for them.

#![allow(clippy::float_arithmetic)]

pub mod cli;
pub mod connections;
pub mod crowd;
pub mod fanout;
pub mod floor;
pub mod flow;
pub mod frames;
pub mod machine;
pub mod orders;
pub mod setup;
pub mod scrape;
pub mod stats;
pub mod target;
pub mod wire;

pub use target::{ServerProcess, ServerSpec, Target};
