//! Bourse, the process: configuration, the HTTP/WebSocket listener, the
//! command line, start-up and shutdown. The exchange itself (sessions,
//! ledger, instruments, journal, market data) is `bourse-actors`; this
//! crate puts a node of it behind a socket.
//!
//! * [`config`]: the configuration types and where they are read from
//!   (defaults, TOML file, `BOURSE_*` environment, flags), validated once.
//! * [`admin`]: the bootstrap operator's password.
//! * [`http`]: the listener: WebSocket upgrade with subprotocol
//!   negotiation, health, readiness, metrics, the browser client's files.
//! * [`server`]: one running exchange ([`serve`]) inside an actix `System`,
//!   its signals and clean stop, and [`spawn_server_for_tests`].
//! * [`demo`]: the demo market maker, a WebSocket client of the server.
//! * [`cli`]: the `bourse` command line; [`logging`]: log output.
//! * [`tools`]: `verify`, `backup`, `restore` and `audit` of a data directory.

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod fds;
pub mod http;
pub mod logging;
pub mod server;
pub mod webdeps;
pub mod tools;

pub use bourse_actors::node::Node;
pub use server::{serve, spawn_server_for_tests, test_config, TestServer};
