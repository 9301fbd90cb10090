//! The pure, deterministic core of Bourse.
//!
//! No async, no clock, no I/O: time and identifiers come in with the
//! commands, and the same commands give the same events on every machine.
//!
//! * `types`: domain newtypes (`Price` in ticks, `Qty` in lots, `Amount` in
//!   an asset's smallest unit) and enums.
//! * `spec`: assets and instruments, and the integer arithmetic of notional,
//!   fees, holds and price bands.
//! * `book`: one instrument's order book and matching (decide, then apply).
//! * `clids`: the `cl_id` idempotency tables: every account's `cl_id`s in
//!   one log in the order used, and each account's index into it.
//! * `ledger`: balances, holds, settlement, orders, `cl_id` idempotency,
//!   fills, users and API keys, private-stream versions.
//! * `dense`: maps over small integer keys (accounts, assets) kept in vectors.
//! * `orders`: the ledger's order table, by order id.
//! * `openset`: each account's open orders.
//! * `event`: the events every decision is recorded as.
//! * `exchange`: ledger and books driven together by commands; snapshots and
//!   the state hash; `Exchange::prefetch` and `prefetch_next`, for a caller
//!   holding a batch, ask for a command's reads a command or two before it
//!   runs.
//! * `ahead`: the hints to the processor behind it (and the tables' writes).

mod ahead;
pub mod book;
pub mod clids;
pub mod dense;
pub mod event;
pub mod exchange;
pub mod fills;
pub mod lazy;
pub mod ledger;
pub mod openset;
pub mod orders;
pub mod spec;
pub mod types;

pub use book::OrderBook;
pub use event::{Credential, Event, EventBody, NewOrder, Trade};
pub use exchange::{Command, Exchange, Listing, OrderRef, Outcome, Reply};
pub use ledger::{AccountUpdate, Balance, Fill, Ledger, OrderState, PlaceCmd};
pub use types::*;
