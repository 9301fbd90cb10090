//! Responses: exactly one per request, `{"id","ok","res"|"err","ts_in","ts_out"}`,
//! and the typed result object of every op (PROTOCOL.md sections 2, 3, 5, 7).
//!
//! A [`Response`] is generic over its result so the server encodes a typed
//! result directly, while a client decodes `Response` (result as a
//! [`serde_json::Value`]) and then reads the result type it expects for the
//! op it sent with [`Response::res_as`]. `OrderView`, `FillView`,
//! `BalanceView` and `InstrumentView` are the shared objects `order`, `fill`,
//! balance and instrument of sections 5 and 6.

use super::{
    CancelReason, InstrumentState, Liquidity, OrderStatus, OrderType, ReqId, Role, Side, Tif,
};
use crate::error::ErrorBody;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer to one request. `id` is `null` only when the request's id
/// could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response<R = Value> {
    pub id: Option<ReqId>,
    pub ok: bool,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub res: Option<R>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<ErrorBody>,
    /// When the server read the request (microseconds since the epoch).
    #[serde(default)]
    pub ts_in: u64,
    /// When the server sent the answer.
    #[serde(default)]
    pub ts_out: u64,
}

fn none<R>() -> Option<R> {
    None
}

impl<R> Response<R> {
    /// A successful answer.
    pub fn ok(id: ReqId, res: R, ts_in: u64, ts_out: u64) -> Response<R> {
        Response {
            id: Some(id),
            ok: true,
            res: Some(res),
            err: None,
            ts_in,
            ts_out,
        }
    }

    /// A refusal.
    pub fn err(id: Option<ReqId>, err: ErrorBody, ts_in: u64, ts_out: u64) -> Response<R> {
        Response {
            id,
            ok: false,
            res: None,
            err: Some(err),
            ts_in,
            ts_out,
        }
    }

    /// The result or the error, as a `Result`.
    pub fn into_result(self) -> Result<R, ErrorBody> {
        match (self.ok, self.res, self.err) {
            (true, Some(r), _) => Ok(r),
            (_, _, Some(e)) => Err(e),
            _ => Err(ErrorBody::bad_request(
                "response carries neither res nor err",
            )),
        }
    }
}

impl Response<Value> {
    /// Reads the result as the type the op answers with.
    pub fn res_as<T: DeserializeOwned>(&self) -> Result<T, ErrorBody> {
        match (&self.res, &self.err) {
            (Some(r), _) if self.ok => T::deserialize(r).map_err(|e| {
                ErrorBody::new(
                    crate::error::ErrorCode::Internal,
                    format!("unexpected result: {e}"),
                )
            }),
            (_, Some(e)) => Err(e.clone()),
            _ => Err(ErrorBody::bad_request(
                "response carries neither res nor err",
            )),
        }
    }
}

impl<R: Serialize> Response<R> {
    /// The same response with its result as a generic value.
    pub fn into_value(self) -> Response<Value> {
        Response {
            id: self.id,
            ok: self.ok,
            res: self
                .res
                .map(|r| serde_json::to_value(r).expect("results always serialize")),
            err: self.err,
            ts_in: self.ts_in,
            ts_out: self.ts_out,
        }
    }
}

/// The empty result `{}` (`unsubscribe`, `logout`, `admin.asset.create`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `ping` result: the server clock, usable for signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingRes {
    pub ts: u64,
}

/// `auth` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRes {
    pub user: String,
    pub role: Role,
    pub session: SessionInfo,
}

/// A session: its id and the token `session.resume` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    pub token: String,
}

/// `subscribe` and `session.resume` result: one entry per stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeRes {
    pub subs: Vec<SubResult>,
}

/// How one stream started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubResult {
    /// The stream key.
    pub sub: String,
    pub mode: SubMode,
    /// The seq of the first replayed event (`resumed` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<u64>,
    /// Why a resume fell back to a snapshot ([`REASON_RESUME_UNAVAILABLE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The `reason` of a resume that had to start from a snapshot.
pub const REASON_RESUME_UNAVAILABLE: &str = "resume_unavailable";

/// Whether a stream starts with a snapshot or replays from a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubMode {
    Snapshot,
    Resumed,
}

/// `order.place` result (and each successful `order.batch` item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceRes {
    pub order_id: u64,
    pub cl_id: String,
    pub status: OrderStatus,
    pub cum_qty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CancelReason>,
    /// True when this `cl_id` was seen before: the original result, no new order.
    pub dup: bool,
}

/// `order.cancel` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRes {
    pub order_id: u64,
    pub status: OrderStatus,
}

/// `order.amend` result: the same order id and its status after the amend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendRes {
    pub order_id: u64,
    pub status: OrderStatus,
}

/// `order.cancel_all` and `admin.cancel_all` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAllRes {
    pub cancelled: u64,
}

/// `order.batch` result: one item per order, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRes {
    pub results: Vec<BatchItem>,
}

/// One `order.batch` item: `{"ok":true,"res":...}` or `{"ok":false,"err":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub res: Option<PlaceRes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<ErrorBody>,
}

impl BatchItem {
    pub fn ok(res: PlaceRes) -> BatchItem {
        BatchItem {
            ok: true,
            res: Some(res),
            err: None,
        }
    }

    pub fn err(err: ErrorBody) -> BatchItem {
        BatchItem {
            ok: false,
            res: None,
            err: Some(err),
        }
    }
}

impl From<Result<PlaceRes, ErrorBody>> for BatchItem {
    fn from(r: Result<PlaceRes, ErrorBody>) -> BatchItem {
        match r {
            Ok(res) => BatchItem::ok(res),
            Err(e) => BatchItem::err(e),
        }
    }
}

/// `order.cancel_after` result: when the switch fires (microseconds since
/// the epoch), 0 when disarmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAfterRes {
    pub at: u64,
}

/// A balance of one asset: `{"asset","available","held"}` at the asset's scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    pub asset: String,
    pub available: String,
    pub held: String,
}

/// `account.balances` and `admin.balances` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancesRes {
    pub balances: Vec<BalanceView>,
}

/// An `order` object (PROTOCOL.md section 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: u64,
    pub cl_id: String,
    pub sym: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub tif: Tif,
    pub post_only: bool,
    /// Limit price; `null` for a market order.
    pub px: Option<String>,
    /// Total quantity. For a `quote_qty` market buy, what it bought.
    pub qty: String,
    /// Market buys by budget only: the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_qty: Option<String>,
    pub cum_qty: String,
    pub leaves_qty: String,
    pub status: OrderStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CancelReason>,
    /// When the order was accepted (microseconds since the epoch).
    pub ts: u64,
}

/// `account.orders` result: the open orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersRes {
    pub orders: Vec<OrderView>,
}

/// A `fill` object (PROTOCOL.md section 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillView {
    /// Increases per account.
    pub fill_id: u64,
    pub trade_id: u64,
    pub order_id: u64,
    pub cl_id: String,
    pub sym: String,
    pub side: Side,
    pub px: String,
    pub qty: String,
    pub fee: String,
    pub fee_asset: String,
    pub liq: Liquidity,
    pub ts: u64,
}

/// `account.fills` result, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillsRes {
    pub fills: Vec<FillView>,
}

/// An instrument (the `instruments` items, `admin.instrument.create`
/// result, `status` channel payloads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentView {
    pub sym: String,
    pub base: String,
    pub quote: String,
    pub tick: String,
    pub lot: String,
    pub min_qty: String,
    /// Decimals of `tick`.
    pub price_scale: u32,
    /// Decimals of `lot`.
    pub qty_scale: u32,
    pub band_pct: u32,
    pub maker_fee_bps: u32,
    pub taker_fee_bps: u32,
    pub state: InstrumentState,
}

/// `instruments` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentsRes {
    pub instruments: Vec<InstrumentView>,
}

/// `admin.instrument.halt` / `.resume` / `.cancel_only` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRes {
    pub state: InstrumentState,
}

/// `admin.user.create` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRes {
    pub user: String,
}

/// `admin.apikey.create` result; `secret` (hmac-sha256 only) is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRes {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `admin.deposit` / `admin.withdraw` result: the balance now available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableRes {
    pub available: String,
}
