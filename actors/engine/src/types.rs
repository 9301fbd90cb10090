//! Domain newtypes and small enums shared by the book, the ledger and the events.
//!
//! Every amount is an integer: prices are counted in ticks of the instrument,
//! quantities in lots, balances in the asset's smallest unit. A value never
//! crosses between these units without going through an `InstrumentSpec`.

use serde::{Deserialize, Serialize};

macro_rules! newtype {
    ($(#[$m:meta])* $name:ident($inner:ty)) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);
    };
}

newtype!(
    /// An account (one per user, plus the fee account).
    AccountId(u64)
);
newtype!(
    /// An asset such as USD or BTC.
    AssetId(u32)
);
newtype!(
    /// An instrument such as BTC-USD.
    InstrumentId(u32)
);
newtype!(
    /// An order, unique across the exchange, never reused.
    OrderId(u64)
);
newtype!(
    /// A price in ticks of its instrument.
    Price(u64)
);
newtype!(
    /// A quantity in lots of its instrument.
    Qty(u64)
);
newtype!(
    /// An amount of an asset in its smallest unit (cents for USD at scale 2).
    Amount(u64)
);

/// The fee account: every fee is credited here. It cannot log in.
pub const FEE_ACCOUNT: AccountId = AccountId(0);
/// The user name of the fee account.
pub const FEE_USER: &str = "fees";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderType {
    Limit,
    Market,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Limit => "limit",
            OrderType::Market => "market",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tif {
    Gtc,
    Ioc,
    Fok,
}

impl Tif {
    pub fn as_str(self) -> &'static str {
        match self {
            Tif::Gtc => "gtc",
            Tif::Ioc => "ioc",
            Tif::Fok => "fok",
        }
    }
}

/// Self-trade prevention: what happens when an order would trade with
/// another order of the same account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stp {
    #[default]
    CancelNewest,
    CancelOldest,
    CancelBoth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "new",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
        }
    }
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::New | OrderStatus::PartiallyFilled)
    }
}

/// Why an order ended cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CancelReason {
    /// The owner asked (cancel, cancel-all, cancel-on-disconnect, cancel-after).
    User,
    /// An operator cleared it.
    Admin,
    /// The unfilled rest of an IOC order.
    Ioc,
    /// A market order found no more liquidity (or its `quote_qty` budget ran out).
    Market,
    /// A market order reached the edge of the price band.
    PriceBand,
    /// Self-trade prevention.
    SelfTrade,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::User => "user",
            CancelReason::Admin => "admin",
            CancelReason::Ioc => "ioc",
            CancelReason::Market => "market",
            CancelReason::PriceBand => "price_band",
            CancelReason::SelfTrade => "self_trade",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InstrumentState {
    #[default]
    Trading,
    CancelOnly,
    Halted,
}

impl InstrumentState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstrumentState::Trading => "trading",
            InstrumentState::CancelOnly => "cancel_only",
            InstrumentState::Halted => "halted",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Trader,
    Operator,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Trader => "trader",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

/// Why a command was refused. Each maps to one code of PROTOCOL.md section 8;
/// a refused command changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectCode {
    BadRequest,
    UnknownInstrument,
    UnknownAsset,
    AlreadyExists,
    InsufficientFunds,
    PriceTick,
    LotSize,
    MinQty,
    PriceBand,
    PostOnlyWouldTake,
    FokUnfilled,
    MarketClosed,
    UnknownOrder,
    InvalidAmend,
    /// An order that could rest, from an account with
    /// `OPEN_ORDERS_PER_ACCOUNT_MAX` open orders.
    TooManyOpenOrders,
}

impl RejectCode {
    /// The protocol's code string.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::BadRequest => "bad_request",
            RejectCode::UnknownInstrument => "unknown_instrument",
            RejectCode::UnknownAsset => "unknown_asset",
            RejectCode::AlreadyExists => "already_exists",
            RejectCode::InsufficientFunds => "insufficient_funds",
            RejectCode::PriceTick => "price_tick",
            RejectCode::LotSize => "lot_size",
            RejectCode::MinQty => "min_qty",
            RejectCode::PriceBand => "price_band",
            RejectCode::PostOnlyWouldTake => "post_only_would_take",
            RejectCode::FokUnfilled => "fok_unfilled",
            RejectCode::MarketClosed => "market_closed",
            RejectCode::UnknownOrder => "unknown_order",
            RejectCode::InvalidAmend => "invalid_amend",
            RejectCode::TooManyOpenOrders => "too_many_open_orders",
        }
    }
}

/// A refusal: the code and a message for the client. Most messages are
/// fixed text, kept without a copy (a refusal allocates only when its
/// message names values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub code: RejectCode,
    pub msg: std::borrow::Cow<'static, str>,
}

impl Reject {
    pub fn new(code: RejectCode, msg: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Reject { code, msg: msg.into() }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.msg)
    }
}

impl std::error::Error for Reject {}

/// The longest `cl_id`.
pub const CL_ID_LEN_MAX: usize = 36;

/// A client's order id (`cl_id`): 1 to `CL_ID_LEN_MAX` bytes, kept inline
/// so that an order carries it without a heap allocation. It compares,
/// hashes, prints and serializes as the string it holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClId {
    len: u8,
    /// The string's bytes, zero past `len`.
    bytes: [u8; CL_ID_LEN_MAX],
}

impl ClId {
    /// `s` as a `ClId`, or `None` when it is longer than `CL_ID_LEN_MAX`.
    pub fn new(s: &str) -> Option<ClId> {
        if s.len() > CL_ID_LEN_MAX {
            return None;
        }
        let mut bytes = [0u8; CL_ID_LEN_MAX];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(ClId { len: s.len() as u8, bytes })
    }

    /// The first eight bytes as a little-endian word: the whole `cl_id`,
    /// zero-padded, when it is at most eight bytes long (the bytes past
    /// `len` are zero).
    pub fn first_word(&self) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.bytes[..8]);
        u64::from_le_bytes(w)
    }

    /// The string's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn as_str(&self) -> &str {
        // Built only from a `&str` cut at its own length.
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("a cl_id is built from a str")
    }
}

impl Default for ClId {
    fn default() -> Self {
        ClId { len: 0, bytes: [0; CL_ID_LEN_MAX] }
    }
}

impl std::ops::Deref for ClId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialOrd for ClId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ClId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialEq<str> for ClId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ClId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Debug for ClId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for ClId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ClId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ClId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ClId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a string of at most {CL_ID_LEN_MAX} bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ClId, E> {
                ClId::new(v).ok_or_else(|| E::custom("cl_id too long"))
            }
        }
        d.deserialize_str(V)
    }
}
