//! Typed messages of the wire contract, with the field names of PROTOCOL.md.
//!
//! * [`mod@request`]: what a client sends, `{"op","id","args"}`, decoded in two
//!   steps (envelope, then the op's typed arguments) so that every refusal
//!   can name the request it refuses.
//! * [`mod@response`]: the one answer to each request and the result
//!   object of every op.
//! * [`mod@event`]: unsolicited stream events, gaps, heartbeats and notices.
//! * [`ServerMessage`]: any frame a client can receive, for decoding.
//!
//! This file holds the vocabulary they share: correlation ids, sides,
//! order types, channels, intervals, roles and stream keys.

pub mod event;
pub mod request;
pub mod response;
mod server;

pub use event::*;
pub use request::*;
pub use response::*;
pub use server::ServerMessage;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The longest string correlation id a client may use.
pub const REQ_ID_LEN_MAX: usize = 36;
/// The longest client order id.
pub const CL_ID_LEN_MAX: usize = 36;
/// The most orders one `order.batch` may carry.
pub const BATCH_ORDERS_MAX: usize = 20;
/// `account.fills` page size when the request gives no `limit`.
pub const FILLS_LIMIT_DEFAULT: u32 = 100;
/// The largest `account.fills` page.
pub const FILLS_LIMIT_MAX: u32 = 1000;
/// `book.l2` depth when the subscription gives none.
pub const DEPTH_DEFAULT: u32 = 50;
/// The `book.l2` depths a client may subscribe to; 0 is the full book.
pub const DEPTHS_ALLOWED: [u32; 4] = [10, 50, 200, 0];
/// The most recent trades a `trades` snapshot carries, oldest first.
pub const TRADES_SNAPSHOT_MAX: usize = 50;
/// The most recent candles a `candles` snapshot carries, oldest first.
pub const CANDLES_SNAPSHOT_MAX: usize = 100;
/// WebSocket close code after a frame over [`crate::codec::FRAME_BYTES_MAX`].
pub const CLOSE_FRAME_TOO_LARGE: u16 = 1009;
/// WebSocket close code after too many abusive refusals.
pub const CLOSE_POLICY: u16 = 1008;
/// WebSocket close code for a subscriber that lagged with `on_lag:"disconnect"`.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;

/// A client's correlation id: an unsigned integer or a string of at most
/// [`REQ_ID_LEN_MAX`] characters, echoed back exactly and never interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReqId {
    Num(u64),
    Str(String),
}

impl Serialize for ReqId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ReqId::Num(n) => s.serialize_u64(*n),
            ReqId::Str(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for ReqId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ReqId, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ReqId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "an unsigned integer or a string of at most {REQ_ID_LEN_MAX} characters"
                )
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ReqId, E> {
                Ok(ReqId::Num(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ReqId, E> {
                u64::try_from(v)
                    .map(ReqId::Num)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ReqId, E> {
                if v.chars().count() > REQ_ID_LEN_MAX {
                    return Err(E::invalid_length(v.chars().count(), &self));
                }
                Ok(ReqId::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl From<u64> for ReqId {
    fn from(v: u64) -> ReqId {
        ReqId::Num(v)
    }
}

impl From<&str> for ReqId {
    fn from(v: &str) -> ReqId {
        ReqId::Str(v.to_owned())
    }
}

impl fmt::Display for ReqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReqId::Num(n) => write!(f, "{n}"),
            ReqId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// Whether `s` is a valid client order id: 1 to [`CL_ID_LEN_MAX`] characters
/// of `[A-Za-z0-9_-]`.
pub fn valid_cl_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= CL_ID_LEN_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Order side; also the taker side of a public trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

/// Order type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    Limit,
    Market,
}

/// Time in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tif {
    Gtc,
    Ioc,
    Fok,
}

impl Tif {
    /// The time in force an order of this type gets when it names none:
    /// `gtc` for limit orders, `ioc` for market orders.
    pub fn default_for(ty: OrderType) -> Tif {
        match ty {
            OrderType::Limit => Tif::Gtc,
            OrderType::Market => Tif::Ioc,
        }
    }
}

/// Self-trade prevention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stp {
    #[default]
    CancelNewest,
    CancelOldest,
    CancelBoth,
}

/// Cancel-on-disconnect mode chosen at `auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cod {
    #[default]
    Off,
    Connection,
    Account,
}

/// What happens when a subscriber falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLag {
    Conflate,
    Resync,
    Disconnect,
}

impl OnLag {
    /// The policy of a subscription that names none: `resync` for trades
    /// (and the private stream, which must never merge events), `conflate`
    /// for the others.
    pub fn default_for(ch: Channel) -> OnLag {
        match ch {
            Channel::Trades | Channel::Account | Channel::Status => OnLag::Resync,
            Channel::BookL2 | Channel::BookL1 | Channel::Candles | Channel::Ticker => {
                OnLag::Conflate
            }
        }
    }
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Trader,
    Operator,
    Viewer,
}

/// API-key signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigAlg {
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "ed25519")]
    Ed25519,
}

/// Order status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Cancelled,
}

impl OrderStatus {
    /// Whether an order in this status rests on the book.
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::New | OrderStatus::PartiallyFilled)
    }
}

/// Why an order ended `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The unfilled rest of an `ioc` order.
    Ioc,
    /// A market order that found no more liquidity.
    Market,
    /// Self-trade prevention.
    SelfTrade,
    /// A market order stopped at the band edge.
    PriceBand,
    /// `order.cancel` by the owner.
    User,
    /// `order.cancel_all` by the owner.
    CancelAll,
    /// Cancel-on-disconnect.
    Disconnect,
    /// The `order.cancel_after` dead-man switch fired.
    CancelAfter,
    /// An operator's `admin.cancel_all`.
    Admin,
}

/// Maker or taker side of a fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liquidity {
    Maker,
    Taker,
}

/// Trading state of an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentState {
    Trading,
    CancelOnly,
    Halted,
}

/// A stream channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Channel {
    #[serde(rename = "book.l2")]
    BookL2,
    #[serde(rename = "book.l1")]
    BookL1,
    #[serde(rename = "trades")]
    Trades,
    #[serde(rename = "candles")]
    Candles,
    #[serde(rename = "ticker")]
    Ticker,
    #[serde(rename = "status")]
    Status,
    #[serde(rename = "account")]
    Account,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::BookL2,
        Channel::BookL1,
        Channel::Trades,
        Channel::Candles,
        Channel::Ticker,
        Channel::Status,
        Channel::Account,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::BookL2 => "book.l2",
            Channel::BookL1 => "book.l1",
            Channel::Trades => "trades",
            Channel::Candles => "candles",
            Channel::Ticker => "ticker",
            Channel::Status => "status",
            Channel::Account => "account",
        }
    }

    /// The channel with this wire name.
    pub fn from_name(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether streams of this channel are per instrument (take `sym`).
    pub const fn has_sym(self) -> bool {
        !matches!(self, Channel::Status | Channel::Account)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Candle interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Interval {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "1d")]
    D1,
}

impl Interval {
    pub const ALL: [Interval; 5] = [
        Interval::M1,
        Interval::M5,
        Interval::M15,
        Interval::H1,
        Interval::D1,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::H1 => "1h",
            Interval::D1 => "1d",
        }
    }

    /// The interval with this wire name.
    pub fn from_name(s: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// The interval's length in microseconds (the unit of `ts`).
    pub const fn micros(self) -> u64 {
        const MINUTE: u64 = 60_000_000;
        match self {
            Interval::M1 => MINUTE,
            Interval::M5 => 5 * MINUTE,
            Interval::M15 => 15 * MINUTE,
            Interval::H1 => 60 * MINUTE,
            Interval::D1 => 24 * 60 * MINUTE,
        }
    }

    /// The start of the candle containing `ts` (UTC-aligned).
    pub const fn start_of(self, ts: u64) -> u64 {
        ts - ts % self.micros()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many levels per side a `book.l2` checksum covers at this subscribed
/// depth: 25, or fewer when the depth is smaller (0 is the full book).
pub const fn cksum_levels(depth: u32) -> usize {
    const CKSUM_LEVELS_MAX: u32 = crate::checksum::CKSUM_LEVELS_MAX as u32;
    if depth == 0 || depth >= CKSUM_LEVELS_MAX {
        CKSUM_LEVELS_MAX as usize
    } else {
        depth as usize
    }
}

/// The identity of one stream, written as its stream key
/// (`book.l2:BTC-USD:50`, `candles:BTC-USD:1m`, `account`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKey {
    BookL2 { sym: String, depth: u32 },
    BookL1 { sym: String },
    Trades { sym: String },
    Candles { sym: String, interval: Interval },
    Ticker { sym: String },
    Status,
    Account,
}

impl StreamKey {
    /// The stream of channel `ch` for `sym` (ignored by `status` and
    /// `account`, required by the others); `depth` defaults to
    /// [`DEPTH_DEFAULT`]; `interval` is required for `candles`.
    pub fn new(
        ch: Channel,
        sym: Option<&str>,
        depth: Option<u32>,
        interval: Option<Interval>,
    ) -> Option<StreamKey> {
        let sym = || sym.map(str::to_owned);
        Some(match ch {
            Channel::BookL2 => StreamKey::BookL2 {
                sym: sym()?,
                depth: depth.unwrap_or(DEPTH_DEFAULT),
            },
            Channel::BookL1 => StreamKey::BookL1 { sym: sym()? },
            Channel::Trades => StreamKey::Trades { sym: sym()? },
            Channel::Candles => StreamKey::Candles {
                sym: sym()?,
                interval: interval?,
            },
            Channel::Ticker => StreamKey::Ticker { sym: sym()? },
            Channel::Status => StreamKey::Status,
            Channel::Account => StreamKey::Account,
        })
    }

    /// Reads a stream key; `None` when it is not one.
    pub fn parse(s: &str) -> Option<StreamKey> {
        let mut parts = s.split(':');
        let ch = Channel::from_name(parts.next()?)?;
        let sym = parts.next();
        if ch.has_sym() && !matches!(sym, Some(s) if !s.is_empty()) {
            return None;
        }
        let key = match ch {
            Channel::BookL2 => {
                let depth: u32 = parts.next()?.parse().ok()?;
                StreamKey::new(ch, sym, Some(depth), None)?
            }
            Channel::Candles => {
                StreamKey::new(ch, sym, None, Some(Interval::from_name(parts.next()?)?))?
            }
            Channel::Status | Channel::Account => {
                if sym.is_some() {
                    return None;
                }
                StreamKey::new(ch, None, None, None)?
            }
            _ => StreamKey::new(ch, sym, None, None)?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(key)
    }

    /// The stream's channel.
    pub fn channel(&self) -> Channel {
        match self {
            StreamKey::BookL2 { .. } => Channel::BookL2,
            StreamKey::BookL1 { .. } => Channel::BookL1,
            StreamKey::Trades { .. } => Channel::Trades,
            StreamKey::Candles { .. } => Channel::Candles,
            StreamKey::Ticker { .. } => Channel::Ticker,
            StreamKey::Status => Channel::Status,
            StreamKey::Account => Channel::Account,
        }
    }

    /// The stream's instrument, if it is per instrument.
    pub fn sym(&self) -> Option<&str> {
        match self {
            StreamKey::BookL2 { sym, .. }
            | StreamKey::BookL1 { sym }
            | StreamKey::Trades { sym }
            | StreamKey::Candles { sym, .. }
            | StreamKey::Ticker { sym } => Some(sym),
            StreamKey::Status | StreamKey::Account => None,
        }
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamKey::BookL2 { sym, depth } => write!(f, "book.l2:{sym}:{depth}"),
            StreamKey::BookL1 { sym } => write!(f, "book.l1:{sym}"),
            StreamKey::Trades { sym } => write!(f, "trades:{sym}"),
            StreamKey::Candles { sym, interval } => write!(f, "candles:{sym}:{interval}"),
            StreamKey::Ticker { sym } => write!(f, "ticker:{sym}"),
            StreamKey::Status => f.write_str("status"),
            StreamKey::Account => f.write_str("account"),
        }
    }
}

/// The stream key string of channel `ch` (see [`StreamKey::new`]); `None`
/// when a required part is missing.
pub fn stream_key(
    ch: Channel,
    sym: Option<&str>,
    depth: Option<u32>,
    interval: Option<Interval>,
) -> Option<String> {
    StreamKey::new(ch, sym, depth, interval).map(|k| k.to_string())
}

/// A stream position a client holds: the `epoch` and the last `seq` it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub epoch: u64,
    pub seq: u64,
}

/// A `[px, qty]` price level, both as exact wire strings.
pub type Level = (String, String);

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
