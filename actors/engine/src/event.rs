//! Events: the record of every decision. A command is decided once, into
//! events; `apply` of an event only updates state and never decides. The
//! event log, snapshots, replicas and market data all rest on this.

use serde::{Deserialize, Serialize};

use crate::spec::{AssetSpec, FeeAcc, InstrumentSpec};
use crate::types::*;

/// One event with the time (microseconds since the Unix epoch) of the
/// command that produced it. Time is an input: the engine never reads a clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub ts: u64,
    pub body: EventBody,
}

/// An API-key credential: an HMAC secret or an Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credential {
    Hmac { secret: String },
    Ed25519 { public_key: String },
}

/// An order as the ledger accepted it, with the funds it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub id: OrderId,
    pub account: AccountId,
    pub inst: InstrumentId,
    pub cl_id: ClId,
    pub side: Side,
    pub kind: OrderType,
    pub tif: Tif,
    pub post_only: bool,
    pub stp: Stp,
    /// The limit price of a limit order.
    pub px: Option<Price>,
    /// Total quantity; `None` for a market buy by `quote_qty`.
    pub qty: Option<Qty>,
    /// Budget of a market buy by `quote_qty` (fee included).
    pub quote_qty: Option<Amount>,
    /// The price a market buy by `qty` reserved at (the band's upper edge
    /// when accepted); it never trades above it.
    pub reserve_px: Option<Price>,
    pub hold_asset: AssetId,
    pub hold: Amount,
}

/// A trade between a resting maker and an incoming taker, at the maker's price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub inst: InstrumentId,
    /// Gapless per instrument.
    pub trade_id: u64,
    pub px: Price,
    pub qty: Qty,
    pub maker: OrderId,
    pub taker: OrderId,
    pub maker_account: AccountId,
    pub taker_account: AccountId,
    pub taker_side: Side,
    pub maker_fee: Amount,
    pub taker_fee: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventBody {
    // Operator actions; `by` is the operator's account, for the audit trail.
    AssetCreated { asset: AssetSpec, by: AccountId },
    InstrumentCreated { spec: Box<InstrumentSpec>, by: AccountId },
    InstrumentStateSet { inst: InstrumentId, state: InstrumentState, by: AccountId },
    UserCreated { account: AccountId, user: String, role: Role, password_hash: String, by: AccountId },
    ApiKeyCreated { account: AccountId, key: String, credential: Credential, by: AccountId },
    Deposited { account: AccountId, asset: AssetId, amount: Amount, by: AccountId },
    Withdrawn { account: AccountId, asset: AssetId, amount: Amount, by: AccountId },

    // The ledger: funds held before the order reaches its book.
    OrderAccepted { order: Box<NewOrder> },
    /// More funds held for an amend that may need them.
    HoldAdded { order: OrderId, amount: Amount },

    // The book's outcomes.
    Traded(Trade),
    /// The order (or its rest) entered the book with `leaves` lots at `px`.
    OrderOpened {
        inst: InstrumentId,
        order: OrderId,
        account: AccountId,
        side: Side,
        px: Price,
        qty: Qty,
        leaves: Qty,
        post_only: bool,
        stp: Stp,
        fee: FeeAcc,
    },
    /// The order ended; what it still holds is released.
    OrderClosed { inst: InstrumentId, order: OrderId, status: OrderStatus, reason: Option<CancelReason> },
    /// Refused by its book before it could trade: everything it held is released.
    OrderRejected { inst: InstrumentId, order: OrderId, code: RejectCode },
    /// New total quantity and price. With `keep_priority` the order stays in
    /// place; otherwise it leaves the book and re-enters as if new (it may trade).
    OrderAmended { inst: InstrumentId, order: OrderId, px: Price, qty: Qty, keep_priority: bool },
    /// An amend the book refused; the extra funds held for it are released.
    AmendRejected { inst: InstrumentId, order: OrderId, code: RejectCode, release: Amount },
    /// What an order holds beyond what it can still need is released: after
    /// an amend the book made (a lower price, a smaller quantity), or when a
    /// new order rests after trading at better prices than its own.
    HoldReleased { order: OrderId, amount: Amount },
    /// An operator set a user's password (its stored hash).
    PasswordSet { account: AccountId, user: String, password_hash: String, by: AccountId },
}

impl EventBody {
    /// The instrument whose book this event changes, if any.
    pub fn book(&self) -> Option<InstrumentId> {
        match self {
            EventBody::Traded(t) => Some(t.inst),
            EventBody::OrderOpened { inst, .. }
            | EventBody::OrderClosed { inst, .. }
            | EventBody::OrderAmended { inst, .. } => Some(*inst),
            _ => None,
        }
    }

    /// The operator behind an admin event, for the audit trail.
    pub fn admin_actor(&self) -> Option<AccountId> {
        match self {
            EventBody::AssetCreated { by, .. }
            | EventBody::InstrumentCreated { by, .. }
            | EventBody::InstrumentStateSet { by, .. }
            | EventBody::UserCreated { by, .. }
            | EventBody::ApiKeyCreated { by, .. }
            | EventBody::Deposited { by, .. }
            | EventBody::Withdrawn { by, .. }
            | EventBody::PasswordSet { by, .. } => Some(*by),
            _ => None,
        }
    }
}
