//! Stream events, gaps, heartbeats and notices: everything the server sends
//! without being asked (PROTOCOL.md sections 2, 4 and 6).
//!
//! Every stream event carries `ch`, `sym` (per-instrument channels), `type`,
//! `epoch`, `seq`, `ts` and, where the stream is a chain, `prev`.
//! `book.l2` puts `bids`, `asks`, `depth` and `cksum` at the top level;
//! every other channel puts its payload in `data`. Event `type`s per channel:
//!
//! | ch | type |
//! |---|---|
//! | `book.l2` | `snapshot`, `delta` |
//! | `book.l1`, `ticker`, `trades`, `candles` | `snapshot`, `update` |
//! | `status` | `snapshot` (`{"instruments"}`), `update` (`{"instrument"}`) |
//! | `account` | `snapshot`, `order`, `fill`, `balance` |
//!
//! A `trades` or `candles` event without `type` reads as `update`.
//! Gaps (`type:"gap"`), heartbeats (`ch:"hb"`) and notices (`op:"notice"`)
//! are separate messages; [`super::ServerMessage`] tells them apart.

use super::{
    BalanceView, Channel, InstrumentView, Interval, Level, Liquidity, OrderStatus, OrderView, Side,
    StreamKey,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A sequenced stream event, tagged by `ch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ch")]
pub enum StreamEvent {
    #[serde(rename = "book.l2")]
    BookL2(BookL2),
    #[serde(rename = "book.l1")]
    BookL1(BookL1),
    #[serde(rename = "trades")]
    Trades(Trades),
    #[serde(rename = "candles")]
    Candles(Candles),
    #[serde(rename = "ticker")]
    Ticker(Ticker),
    #[serde(rename = "status")]
    Status(Status),
    #[serde(rename = "account")]
    Account(Account),
}

impl StreamEvent {
    pub fn channel(&self) -> Channel {
        match self {
            StreamEvent::BookL2(_) => Channel::BookL2,
            StreamEvent::BookL1(_) => Channel::BookL1,
            StreamEvent::Trades(_) => Channel::Trades,
            StreamEvent::Candles(_) => Channel::Candles,
            StreamEvent::Ticker(_) => Channel::Ticker,
            StreamEvent::Status(_) => Channel::Status,
            StreamEvent::Account(_) => Channel::Account,
        }
    }

    /// `(epoch, prev, seq)` of the event; `prev` is `None` for snapshots and
    /// latest-wins channels.
    pub fn position(&self) -> (u64, Option<u64>, u64) {
        match self {
            StreamEvent::BookL2(e) => (e.epoch, e.prev, e.seq),
            StreamEvent::BookL1(e) => (e.epoch, None, e.seq),
            StreamEvent::Trades(e) => (e.epoch, e.prev, e.seq),
            StreamEvent::Candles(e) => (e.epoch, e.prev, e.seq),
            StreamEvent::Ticker(e) => (e.epoch, None, e.seq),
            StreamEvent::Status(e) => (e.epoch, e.prev, e.seq),
            StreamEvent::Account(e) => (e.epoch, e.prev, e.seq),
        }
    }

    /// Whether the event is the stream's in-band snapshot.
    pub fn is_snapshot(&self) -> bool {
        match self {
            StreamEvent::BookL2(e) => e.kind == BookKind::Snapshot,
            StreamEvent::BookL1(e) => e.kind == UpdateKind::Snapshot,
            StreamEvent::Trades(e) => e.kind == UpdateKind::Snapshot,
            StreamEvent::Candles(e) => matches!(e.body, CandlesBody::Snapshot(_)),
            StreamEvent::Ticker(e) => e.kind == UpdateKind::Snapshot,
            StreamEvent::Status(e) => matches!(e.body, StatusBody::Snapshot(_)),
            StreamEvent::Account(e) => matches!(e.body, AccountBody::Snapshot(_)),
        }
    }

    /// The stream key; `None` only for a `book.l2` event without `depth`.
    pub fn stream_key(&self) -> Option<StreamKey> {
        let (ch, sym, depth, interval) = match self {
            StreamEvent::BookL2(e) => (Channel::BookL2, Some(e.sym.as_str()), Some(e.depth?), None),
            StreamEvent::BookL1(e) => (Channel::BookL1, Some(e.sym.as_str()), None, None),
            StreamEvent::Trades(e) => (Channel::Trades, Some(e.sym.as_str()), None, None),
            StreamEvent::Candles(e) => (
                Channel::Candles,
                Some(e.sym.as_str()),
                None,
                Some(e.interval),
            ),
            StreamEvent::Ticker(e) => (Channel::Ticker, Some(e.sym.as_str()), None, None),
            StreamEvent::Status(_) => (Channel::Status, None, None, None),
            StreamEvent::Account(_) => (Channel::Account, None, None, None),
        };
        StreamKey::new(ch, sym, depth, interval)
    }
}

/// `type` of a `book.l2` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookKind {
    Snapshot,
    Delta,
}

/// `type` of a `book.l1`, `ticker` or `trades` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateKind {
    Snapshot,
    #[default]
    Update,
}

/// `book.l2`: aggregated levels to the subscribed depth; deltas carry
/// absolute quantities and `"0"` removes a level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookL2 {
    pub sym: String,
    #[serde(rename = "type")]
    pub kind: BookKind,
    pub epoch: u64,
    /// Required on deltas; on a snapshot, the version it replaces if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u64>,
    pub seq: u64,
    pub ts: u64,
    /// The subscribed depth. Always on snapshots; the server also puts it on
    /// deltas so every event names its stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Best first (highest price).
    pub bids: Vec<Level>,
    /// Best first (lowest price).
    pub asks: Vec<Level>,
    /// Only when the subscription asked for it: see [`crate::checksum`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cksum: Option<u32>,
}

impl BookL2 {
    #[allow(clippy::too_many_arguments)]
    pub fn snapshot(
        sym: &str,
        epoch: u64,
        seq: u64,
        ts: u64,
        depth: u32,
        bids: Vec<Level>,
        asks: Vec<Level>,
    ) -> BookL2 {
        BookL2 {
            sym: sym.to_owned(),
            kind: BookKind::Snapshot,
            epoch,
            prev: None,
            seq,
            ts,
            depth: Some(depth),
            bids,
            asks,
            cksum: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn delta(
        sym: &str,
        epoch: u64,
        prev: u64,
        seq: u64,
        ts: u64,
        depth: u32,
        bids: Vec<Level>,
        asks: Vec<Level>,
    ) -> BookL2 {
        BookL2 {
            kind: BookKind::Delta,
            prev: Some(prev),
            ..BookL2::snapshot(sym, epoch, seq, ts, depth, bids, asks)
        }
    }
}

/// `book.l1`: best bid and ask, latest wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookL1 {
    pub sym: String,
    #[serde(rename = "type", default)]
    pub kind: UpdateKind,
    pub epoch: u64,
    pub seq: u64,
    pub ts: u64,
    pub data: TopOfBook,
}

/// `{"bid":[px,qty] or null,"ask":[px,qty] or null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopOfBook {
    pub bid: Option<Level>,
    pub ask: Option<Level>,
}

/// `trades`: public trades; `seq` is the last trade id. A snapshot carries
/// the last (up to 50) trades, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trades {
    pub sym: String,
    #[serde(rename = "type", default)]
    pub kind: UpdateKind,
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u64>,
    pub seq: u64,
    pub ts: u64,
    pub data: Vec<Trade>,
}

/// One public trade; `id` is gapless per instrument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub id: u64,
    pub px: String,
    pub qty: String,
    /// The side of the incoming (taking) order.
    pub taker: Side,
    pub ts: u64,
}

/// `candles`: a snapshot of the last (up to 100) candles, oldest first, then
/// one candle per update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candles {
    pub sym: String,
    pub interval: Interval,
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u64>,
    pub seq: u64,
    pub ts: u64,
    #[serde(flatten)]
    pub body: CandlesBody,
}

/// `type` and `data` of a `candles` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum CandlesBody {
    Snapshot(Vec<Candle>),
    Update(Candle),
}

/// One OHLCV candle; `closed` marks its final update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Start of the interval (microseconds since the epoch).
    pub start: u64,
    pub o: String,
    pub h: String,
    pub l: String,
    pub c: String,
    /// Volume at the quantity scale.
    pub v: String,
    /// Number of trades.
    pub n: u64,
    pub closed: bool,
}

/// `ticker`: 24 h statistics, latest wins; `null` where there is none yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticker {
    pub sym: String,
    #[serde(rename = "type", default)]
    pub kind: UpdateKind,
    pub epoch: u64,
    pub seq: u64,
    pub ts: u64,
    pub data: TickerData,
}

/// The `ticker` payload: prices as price strings, volume at the qty scale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerData {
    pub last: Option<String>,
    pub bid: Option<String>,
    pub ask: Option<String>,
    pub open_24h: Option<String>,
    pub high_24h: Option<String>,
    pub low_24h: Option<String>,
    pub volume_24h: Option<String>,
}

/// `status`: every instrument, then one instrument per change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u64>,
    pub seq: u64,
    pub ts: u64,
    #[serde(flatten)]
    pub body: StatusBody,
}

/// `type` and `data` of a `status` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum StatusBody {
    Snapshot(StatusSnapshot),
    Update(StatusUpdate),
}

/// `{"instruments":[instrument]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub instruments: Vec<InstrumentView>,
}

/// `{"instrument":{...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub instrument: InstrumentView,
}

/// `account`: the private stream of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u64>,
    pub seq: u64,
    pub ts: u64,
    #[serde(flatten)]
    pub body: AccountBody,
}

/// `type` and `data` of an `account` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum AccountBody {
    Snapshot(AccountSnapshot),
    /// On every order state change, and after an amend.
    Order(OrderView),
    Fill(AccountFill),
    Balance(BalanceView),
}

/// `{"balances":[...],"orders":[order]}`: the account when the stream starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub balances: Vec<BalanceView>,
    pub orders: Vec<OrderView>,
}

/// The `data` of an `account` fill event: the fill and the order's state after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFill {
    pub order_id: u64,
    pub cl_id: String,
    pub sym: String,
    pub side: Side,
    pub px: String,
    pub qty: String,
    pub fee: String,
    pub fee_asset: String,
    pub liq: Liquidity,
    pub trade_id: u64,
    pub cum_qty: String,
    pub leaves_qty: String,
    pub status: OrderStatus,
    /// The account's fill id, as in `account.fills`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_id: Option<u64>,
}

/// The constant `type:"gap"` of a [`Gap`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GapTag {
    #[default]
    #[serde(rename = "gap")]
    Gap,
}

/// Events a lagging subscriber with `on_lag:"resync"` did not receive:
/// seqs `lost[0]..=lost[1]`. A fresh snapshot (or the resumed events)
/// follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub ch: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sym: Option<String>,
    /// `book.l2` only: which depth's stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// `candles` only: which interval's stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    #[serde(rename = "type")]
    pub kind: GapTag,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// First and last lost seq, inclusive.
    pub lost: [u64; 2],
}

impl Gap {
    /// The gap on stream `key` losing seqs `first..=last`.
    pub fn new(key: &StreamKey, epoch: u64, first: u64, last: u64) -> Gap {
        let (depth, interval) = match key {
            StreamKey::BookL2 { depth, .. } => (Some(*depth), None),
            StreamKey::Candles { interval, .. } => (None, Some(*interval)),
            _ => (None, None),
        };
        Gap {
            ch: key.channel(),
            sym: key.sym().map(str::to_owned),
            depth,
            interval,
            kind: GapTag::Gap,
            epoch: Some(epoch),
            lost: [first, last],
        }
    }

    /// The stream key, when the gap names its stream fully.
    pub fn stream_key(&self) -> Option<StreamKey> {
        StreamKey::new(self.ch, self.sym.as_deref(), self.depth, self.interval)
    }
}

/// The constant `ch:"hb"` of a [`Heartbeat`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HbTag {
    #[default]
    #[serde(rename = "hb")]
    Hb,
}

/// Sent after 1 s without any other message: the last seq sent on every
/// subscribed stream, by stream key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub ch: HbTag,
    pub ts: u64,
    pub last: BTreeMap<String, u64>,
}

impl Heartbeat {
    pub fn new(ts: u64, last: BTreeMap<String, u64>) -> Heartbeat {
        Heartbeat {
            ch: HbTag::Hb,
            ts,
            last,
        }
    }
}

/// The constant `op:"notice"` of a [`Notice`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NoticeTag {
    #[default]
    #[serde(rename = "notice")]
    Notice,
}

/// What a notice announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeCode {
    /// A planned shutdown in `in_ms`; `reconnect` says whether to come back.
    Shutdown,
    /// The subscriber lagged with `on_lag:"disconnect"`; close 4008 follows.
    SlowConsumer,
}

/// `{"op":"notice","code",...}`: a connection-level announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub op: NoticeTag,
    pub code: NoticeCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<bool>,
    /// The stream that lagged (`slow_consumer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

impl Notice {
    pub fn shutdown(in_ms: u64, reconnect: bool) -> Notice {
        Notice {
            op: NoticeTag::Notice,
            code: NoticeCode::Shutdown,
            in_ms: Some(in_ms),
            reconnect: Some(reconnect),
            sub: None,
        }
    }

    pub fn slow_consumer(sub: Option<String>) -> Notice {
        Notice {
            op: NoticeTag::Notice,
            code: NoticeCode::SlowConsumer,
            in_ms: None,
            reconnect: None,
            sub,
        }
    }
}
