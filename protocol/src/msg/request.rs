//! Requests: `{"op","id","args"}` from client to server (PROTOCOL.md
//! sections 2, 3, 5 and 7).
//!
//! Decoding is two steps so that every refusal is precise and names the
//! request: first the envelope (`id`, then `op`), then the op's typed
//! arguments. An unknown op is `unknown_op`; anything wrong with the envelope
//! or the arguments is `bad_request` with a message saying what. Both carry
//! the request `id` whenever it could be read. Unknown fields in `args` are
//! ignored. Decimal fields stay strings here: only the instrument knows their
//! scale and grid, so the server checks them with [`crate::decimal`].

use super::{
    valid_cl_id, Channel, Cod, Interval, OnLag, OrderType, Position, ReqId, Role, Side, SigAlg,
    Stp, Tif, BATCH_ORDERS_MAX, CL_ID_LEN_MAX, DEPTHS_ALLOWED, FILLS_LIMIT_DEFAULT,
    FILLS_LIMIT_MAX,
};
use crate::error::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One request: the client's correlation `id` and the operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: ReqId,
    pub op: Op,
}

/// A request that could not be decoded: the `id` when it could be read,
/// and the error to answer with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("request {id:?} refused: {body}")]
pub struct RequestError {
    pub id: Option<ReqId>,
    pub body: ErrorBody,
}

impl RequestError {
    pub(crate) fn bad(id: Option<ReqId>, msg: impl Into<String>) -> RequestError {
        RequestError {
            id,
            body: ErrorBody::bad_request(msg),
        }
    }
}

/// Every operation with its typed arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Ping,
    Auth(AuthArgs),
    SessionResume(ResumeArgs),
    Subscribe(SubscribeArgs),
    Unsubscribe(UnsubscribeArgs),
    Logout,
    OrderPlace(PlaceArgs),
    OrderCancel(CancelArgs),
    OrderAmend(AmendArgs),
    OrderCancelAll(CancelAllArgs),
    OrderBatch(BatchArgs),
    OrderCancelAfter(CancelAfterArgs),
    AccountBalances,
    AccountOrders(OrdersArgs),
    AccountFills(FillsArgs),
    /// An extension: a logged-in user changes its own password.
    AccountPassword(PasswordChangeArgs),
    Instruments,
    AdminAssetCreate(AssetCreateArgs),
    AdminInstrumentCreate(InstrumentCreateArgs),
    AdminInstrumentHalt(SymArgs),
    AdminInstrumentResume(SymArgs),
    AdminInstrumentCancelOnly(SymArgs),
    AdminUserCreate(UserCreateArgs),
    /// An extension: an operator sets a user's password.
    AdminUserPassword(UserPasswordArgs),
    AdminApikeyCreate(ApiKeyCreateArgs),
    AdminDeposit(AmountArgs),
    AdminWithdraw(AmountArgs),
    AdminCancelAll(AdminCancelAllArgs),
    AdminBalances(UserArgs),
}

/// Every op name, as written on the wire.
pub const OP_NAMES: [&str; 29] = [
    "ping",
    "auth",
    "session.resume",
    "subscribe",
    "unsubscribe",
    "logout",
    "order.place",
    "order.cancel",
    "order.amend",
    "order.cancel_all",
    "order.batch",
    "order.cancel_after",
    "account.balances",
    "account.orders",
    "account.fills",
    "account.password",
    "instruments",
    "admin.asset.create",
    "admin.instrument.create",
    "admin.instrument.halt",
    "admin.instrument.resume",
    "admin.instrument.cancel_only",
    "admin.user.create",
    "admin.user.password",
    "admin.apikey.create",
    "admin.deposit",
    "admin.withdraw",
    "admin.cancel_all",
    "admin.balances",
];

impl Op {
    /// The op name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Auth(_) => "auth",
            Op::SessionResume(_) => "session.resume",
            Op::Subscribe(_) => "subscribe",
            Op::Unsubscribe(_) => "unsubscribe",
            Op::Logout => "logout",
            Op::OrderPlace(_) => "order.place",
            Op::OrderCancel(_) => "order.cancel",
            Op::OrderAmend(_) => "order.amend",
            Op::OrderCancelAll(_) => "order.cancel_all",
            Op::OrderBatch(_) => "order.batch",
            Op::OrderCancelAfter(_) => "order.cancel_after",
            Op::AccountBalances => "account.balances",
            Op::AccountOrders(_) => "account.orders",
            Op::AccountFills(_) => "account.fills",
            Op::AccountPassword(_) => "account.password",
            Op::Instruments => "instruments",
            Op::AdminAssetCreate(_) => "admin.asset.create",
            Op::AdminInstrumentCreate(_) => "admin.instrument.create",
            Op::AdminInstrumentHalt(_) => "admin.instrument.halt",
            Op::AdminInstrumentResume(_) => "admin.instrument.resume",
            Op::AdminInstrumentCancelOnly(_) => "admin.instrument.cancel_only",
            Op::AdminUserCreate(_) => "admin.user.create",
            Op::AdminUserPassword(_) => "admin.user.password",
            Op::AdminApikeyCreate(_) => "admin.apikey.create",
            Op::AdminDeposit(_) => "admin.deposit",
            Op::AdminWithdraw(_) => "admin.withdraw",
            Op::AdminCancelAll(_) => "admin.cancel_all",
            Op::AdminBalances(_) => "admin.balances",
        }
    }

    /// Whether the op is an `admin.*` operation (role `operator` only).
    pub fn is_admin(&self) -> bool {
        self.name().starts_with("admin.")
    }

    /// Whether the op changes state (trading or admin), so its answer waits
    /// for durability.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Op::OrderPlace(_)
                | Op::OrderCancel(_)
                | Op::OrderAmend(_)
                | Op::OrderCancelAll(_)
                | Op::OrderBatch(_)
                | Op::OrderCancelAfter(_)
        ) || self.is_admin() && !matches!(self, Op::AdminBalances(_))
    }

    /// The operation's arguments as a JSON object (`{}` when it takes none).
    pub fn args_value(&self) -> Value {
        fn v<T: Serialize>(t: &T) -> Value {
            serde_json::to_value(t).expect("request arguments always serialize")
        }
        match self {
            Op::Ping | Op::Logout | Op::AccountBalances | Op::Instruments => {
                Value::Object(Map::new())
            }
            Op::Auth(a) => v(a),
            Op::SessionResume(a) => v(a),
            Op::Subscribe(a) => v(a),
            Op::Unsubscribe(a) => v(a),
            Op::OrderPlace(a) => v(a),
            Op::OrderCancel(a) => v(a),
            Op::OrderAmend(a) => v(a),
            Op::OrderCancelAll(a) => v(a),
            Op::OrderBatch(a) => v(a),
            Op::OrderCancelAfter(a) => v(a),
            Op::AccountOrders(a) => v(a),
            Op::AccountFills(a) => v(a),
            Op::AccountPassword(a) => v(a),
            Op::AdminAssetCreate(a) => v(a),
            Op::AdminInstrumentCreate(a) => v(a),
            Op::AdminInstrumentHalt(a)
            | Op::AdminInstrumentResume(a)
            | Op::AdminInstrumentCancelOnly(a) => v(a),
            Op::AdminUserCreate(a) => v(a),
            Op::AdminUserPassword(a) => v(a),
            Op::AdminApikeyCreate(a) => v(a),
            Op::AdminDeposit(a) | Op::AdminWithdraw(a) => v(a),
            Op::AdminCancelAll(a) => v(a),
            Op::AdminBalances(a) => v(a),
        }
    }

    /// Decodes the typed arguments of op `name`. `args` is `None` when the
    /// request had no `args` (or `null`), which ops without arguments accept.
    pub fn from_parts(name: &str, args: Option<Value>) -> Result<Op, ErrorBody> {
        let args = match args {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(a @ Value::Object(_)) => a,
            Some(_) => return Err(ErrorBody::bad_request("args must be an object")),
        };
        let op = match name {
            "ping" => Op::Ping,
            "auth" => Op::Auth(typed(args)?),
            "session.resume" => Op::SessionResume(typed(args)?),
            "subscribe" => Op::Subscribe(typed(args)?),
            "unsubscribe" => Op::Unsubscribe(typed(args)?),
            "logout" => Op::Logout,
            "order.place" => Op::OrderPlace(typed(args)?),
            "order.cancel" => Op::OrderCancel(typed(args)?),
            "order.amend" => Op::OrderAmend(typed(args)?),
            "order.cancel_all" => Op::OrderCancelAll(typed(args)?),
            "order.batch" => Op::OrderBatch(typed(args)?),
            "order.cancel_after" => Op::OrderCancelAfter(typed(args)?),
            "account.balances" => Op::AccountBalances,
            "account.orders" => Op::AccountOrders(typed(args)?),
            "account.fills" => Op::AccountFills(typed(args)?),
            "account.password" => Op::AccountPassword(typed(args)?),
            "instruments" => Op::Instruments,
            "admin.asset.create" => Op::AdminAssetCreate(typed(args)?),
            "admin.instrument.create" => Op::AdminInstrumentCreate(typed(args)?),
            "admin.instrument.halt" => Op::AdminInstrumentHalt(typed(args)?),
            "admin.instrument.resume" => Op::AdminInstrumentResume(typed(args)?),
            "admin.instrument.cancel_only" => Op::AdminInstrumentCancelOnly(typed(args)?),
            "admin.user.create" => Op::AdminUserCreate(typed(args)?),
            "admin.user.password" => Op::AdminUserPassword(typed(args)?),
            "admin.apikey.create" => Op::AdminApikeyCreate(typed(args)?),
            "admin.deposit" => Op::AdminDeposit(typed(args)?),
            "admin.withdraw" => Op::AdminWithdraw(typed(args)?),
            "admin.cancel_all" => Op::AdminCancelAll(typed(args)?),
            "admin.balances" => Op::AdminBalances(typed(args)?),
            _ => {
                return Err(ErrorBody::new(
                    ErrorCode::UnknownOp,
                    format!("unknown op {name:?}"),
                ))
            }
        };
        op.validate()?;
        Ok(op)
    }

    /// Checks the rules the types alone do not express (lengths, one of two
    /// fields, allowed values). Typed decoding already runs it.
    pub fn validate(&self) -> Result<(), ErrorBody> {
        match self {
            Op::Subscribe(a) => a.validate(),
            Op::Unsubscribe(a) => check_syms(a.ch, &a.sym),
            Op::OrderPlace(a) => a.validate(),
            Op::OrderCancel(a) => a.order_ref().map(|_| ()),
            Op::OrderAmend(a) => a.validate(),
            Op::OrderBatch(a) => a.validate(),
            Op::AccountFills(a) => a.validate(),
            Op::AdminApikeyCreate(a) => a.validate(),
            _ => Ok(()),
        }
    }
}

/// Decodes op arguments, turning serde's message into a precise
/// `bad_request` that names the offending field where it can.
fn typed<T: DeserializeOwned>(args: Value) -> Result<T, ErrorBody> {
    T::deserialize(&args)
        .map_err(|e| ErrorBody::bad_request(format!("args: {}", describe_error::<T>(&e, &args))))
}

/// serde's messages say what was wrong but not where for type errors;
/// re-reading the arguments as pretty JSON (one field per line) gives a line
/// number that points at the offending field. Only on the error path.
fn describe_error<T: DeserializeOwned>(e: &serde_json::Error, args: &Value) -> String {
    let msg = e.to_string();
    if msg.starts_with("missing field") {
        return msg;
    }
    let Ok(pretty) = serde_json::to_string_pretty(args) else {
        return msg;
    };
    let Err(e2) = serde_json::from_str::<T>(&pretty) else {
        return msg;
    };
    let text = e2.to_string();
    let bare = text
        .rfind(" at line ")
        .map_or(text.as_str(), |p| &text[..p]);
    let src = pretty
        .lines()
        .nth(e2.line().saturating_sub(1))
        .unwrap_or("")
        .trim()
        .trim_end_matches(',');
    if src.starts_with('"') && src.contains("\":") {
        format!("{bare} at {src}")
    } else {
        bare.to_owned()
    }
}

fn check_cl_id(cl_id: &str) -> Result<(), ErrorBody> {
    if valid_cl_id(cl_id) {
        Ok(())
    } else {
        Err(ErrorBody::bad_request(format!(
            "cl_id must be 1 to {CL_ID_LEN_MAX} characters of [A-Za-z0-9_-]"
        )))
    }
}

fn check_syms(ch: Channel, sym: &[String]) -> Result<(), ErrorBody> {
    if ch.has_sym() && sym.is_empty() {
        return Err(ErrorBody::bad_request(format!(
            "{ch} needs sym: a list of instruments"
        )));
    }
    if !ch.has_sym() && !sym.is_empty() {
        return Err(ErrorBody::bad_request(format!("{ch} takes no sym")));
    }
    // One stream, one subscription: a repeated instrument would be sent its
    // snapshot twice.
    for (i, a) in sym.iter().enumerate() {
        if sym[..i].contains(a) {
            return Err(ErrorBody::bad_request(format!("sym lists {a} twice")));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- session

/// `auth` arguments: a password login or an API-key signature. The key form
/// is recognised by the presence of `key`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AuthArgs {
    Password(PasswordAuth),
    Key(KeyAuth),
}

impl AuthArgs {
    /// The cancel-on-disconnect mode asked for (default `off`).
    pub fn cod(&self) -> Cod {
        match self {
            AuthArgs::Password(p) => p.cod,
            AuthArgs::Key(k) => k.cod,
        }
        .unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for AuthArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AuthArgs, D::Error> {
        let v = Value::deserialize(d)?;
        let is_key = v.get("key").is_some();
        let r = if is_key {
            serde_json::from_value(v).map(AuthArgs::Key)
        } else {
            serde_json::from_value(v).map(AuthArgs::Password)
        };
        r.map_err(serde::de::Error::custom)
    }
}

/// `auth` with user name and password (and a TOTP code when MFA is on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordAuth {
    pub user: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cod: Option<Cod>,
}

/// `auth` with an API key: `sig` signs `ts + "\n" + nonce + "\n" + "auth" + "\n" + key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAuth {
    pub key: String,
    /// Microseconds since the epoch, within 5 s of the server clock.
    pub ts: u64,
    pub nonce: String,
    pub sig: String,
    pub alg: SigAlg,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cod: Option<Cod>,
}

impl KeyAuth {
    /// The exact string the signature covers.
    pub fn signed_payload(&self) -> String {
        auth_payload(self.ts, &self.nonce, &self.key)
    }
}

/// The string an API-key `auth` signs: `ts + "\n" + nonce + "\n" + "auth" + "\n" + key`.
pub fn auth_payload(ts: u64, nonce: &str, key: &str) -> String {
    format!("{ts}\n{nonce}\nauth\n{key}")
}

/// `session.resume` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeArgs {
    pub token: String,
    /// Stream key to the last position the client applied.
    #[serde(default)]
    pub streams: BTreeMap<String, Position>,
}

/// `subscribe` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeArgs {
    pub ch: Channel,
    /// Instruments; empty (absent) for `account` and `status`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sym: Vec<String>,
    /// `book.l2` only: 10, 50 (default), 200 or 0 (full book).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// `candles` only (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// `book.l2` only: add `cksum` to every message.
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub cksum: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_lag: Option<OnLag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

impl SubscribeArgs {
    /// The lag policy in force: the one asked for, or the channel's default.
    pub fn on_lag(&self) -> OnLag {
        self.on_lag.unwrap_or_else(|| OnLag::default_for(self.ch))
    }

    /// The `book.l2` depth in force.
    pub fn depth(&self) -> u32 {
        self.depth.unwrap_or(super::DEPTH_DEFAULT)
    }

    /// The position to resume `sym` from, if the client gave one.
    pub fn resume_for(&self, sym: Option<&str>) -> Option<Position> {
        match (&self.resume, sym) {
            (Some(Resume::Stream(p)), None) => Some(*p),
            (Some(Resume::BySym(m)), Some(s)) => m.get(s).copied(),
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), ErrorBody> {
        check_syms(self.ch, &self.sym)?;
        if let Some(d) = self.depth {
            if self.ch != Channel::BookL2 {
                return Err(ErrorBody::bad_request("depth applies to book.l2 only"));
            }
            if !DEPTHS_ALLOWED.contains(&d) {
                return Err(ErrorBody::bad_request("depth must be 10, 50, 200 or 0"));
            }
        }
        match (self.ch, self.interval) {
            (Channel::Candles, None) => {
                return Err(ErrorBody::bad_request("candles needs an interval"))
            }
            (Channel::Candles, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err(ErrorBody::bad_request("interval applies to candles only")),
        }
        if self.cksum && self.ch != Channel::BookL2 {
            return Err(ErrorBody::bad_request("cksum applies to book.l2 only"));
        }
        match (&self.resume, self.ch.has_sym()) {
            (Some(Resume::Stream(_)), true) => Err(ErrorBody::bad_request(
                "resume for a per-instrument channel is {\"SYM\":{\"epoch\",\"seq\"}}",
            )),
            (Some(Resume::BySym(_)), false) => Err(ErrorBody::bad_request(format!(
                "resume for {} is {{\"epoch\",\"seq\"}}",
                self.ch
            ))),
            _ => Ok(()),
        }
    }
}

/// Where a subscription resumes: per instrument for market channels, one
/// position for `account` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Resume {
    Stream(Position),
    BySym(BTreeMap<String, Position>),
}

impl<'de> Deserialize<'de> for Resume {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Resume, D::Error> {
        let v = Value::deserialize(d)?;
        let one = v.get("epoch").is_some() || v.get("seq").is_some();
        let r = if one {
            serde_json::from_value(v).map(Resume::Stream)
        } else {
            serde_json::from_value(v).map(Resume::BySym)
        };
        r.map_err(serde::de::Error::custom)
    }
}

/// `unsubscribe` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsubscribeArgs {
    pub ch: Channel,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sym: Vec<String>,
    /// `book.l2` only: which depth's subscription (an extension; without
    /// it, every depth's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// `candles` only: which interval's subscription (an extension; without
    /// it, every interval's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

// ---------------------------------------------------------------- orders

/// `order.place` arguments (also each item of `order.batch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceArgs {
    pub cl_id: String,
    pub sym: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    /// Limit price; required for limit orders, refused on market orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub px: Option<String>,
    /// Quantity; required except for a market buy given `quote_qty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<String>,
    /// Market buys only: spend at most this much quote asset, fee included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_qty: Option<String>,
    /// Default `gtc` for limit, `ioc` for market: see [`PlaceArgs::tif`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tif: Option<Tif>,
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub post_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stp: Option<Stp>,
}

impl PlaceArgs {
    /// A limit order.
    pub fn limit(cl_id: &str, sym: &str, side: Side, px: &str, qty: &str) -> PlaceArgs {
        PlaceArgs {
            cl_id: cl_id.to_owned(),
            sym: sym.to_owned(),
            side,
            order_type: OrderType::Limit,
            px: Some(px.to_owned()),
            qty: Some(qty.to_owned()),
            quote_qty: None,
            tif: None,
            post_only: false,
            stp: None,
        }
    }

    /// A market order for a quantity.
    pub fn market(cl_id: &str, sym: &str, side: Side, qty: &str) -> PlaceArgs {
        PlaceArgs {
            order_type: OrderType::Market,
            px: None,
            ..PlaceArgs::limit(cl_id, sym, side, "", qty)
        }
    }

    /// The time in force in effect.
    pub fn tif(&self) -> Tif {
        self.tif
            .unwrap_or_else(|| Tif::default_for(self.order_type))
    }

    /// The self-trade prevention in effect.
    pub fn stp(&self) -> Stp {
        self.stp.unwrap_or_default()
    }

    /// Checks the shape of the order (not its decimals, which need the
    /// instrument): cl_id, price presence, quantity presence, tif by type.
    pub fn validate(&self) -> Result<(), ErrorBody> {
        check_cl_id(&self.cl_id)?;
        match self.order_type {
            OrderType::Limit => {
                if self.px.is_none() {
                    return Err(ErrorBody::bad_request("a limit order needs px"));
                }
                if self.qty.is_none() {
                    return Err(ErrorBody::bad_request("a limit order needs qty"));
                }
                if self.quote_qty.is_some() {
                    return Err(ErrorBody::bad_request(
                        "quote_qty applies to market buys only",
                    ));
                }
            }
            OrderType::Market => {
                if self.px.is_some() {
                    return Err(ErrorBody::bad_request("a market order takes no px"));
                }
                if self.tif == Some(Tif::Gtc) {
                    return Err(ErrorBody::bad_request(
                        "a market order is ioc or fok, not gtc",
                    ));
                }
                if self.post_only {
                    return Err(ErrorBody::bad_request("a market order cannot be post_only"));
                }
                match (self.side, &self.qty, &self.quote_qty) {
                    (_, Some(_), Some(_)) => {
                        return Err(ErrorBody::bad_request("give qty or quote_qty, not both"));
                    }
                    (Side::Sell, _, Some(_)) => {
                        return Err(ErrorBody::bad_request(
                            "quote_qty applies to market buys only",
                        ));
                    }
                    (_, None, None) => {
                        return Err(ErrorBody::bad_request(
                            "a market order needs qty or quote_qty",
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Which order a cancel or amend targets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderRef {
    Id(u64),
    ClId(String),
}

fn order_ref(order_id: Option<u64>, cl_id: &Option<String>) -> Result<OrderRef, ErrorBody> {
    match (order_id, cl_id) {
        (Some(id), None) => Ok(OrderRef::Id(id)),
        (None, Some(c)) => check_cl_id(c).map(|_| OrderRef::ClId(c.clone())),
        _ => Err(ErrorBody::bad_request(
            "give exactly one of order_id and cl_id",
        )),
    }
}

/// `order.cancel` arguments: `sym` and exactly one of `order_id`, `cl_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelArgs {
    pub sym: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cl_id: Option<String>,
}

impl CancelArgs {
    /// The targeted order; `bad_request` unless exactly one id is given.
    pub fn order_ref(&self) -> Result<OrderRef, ErrorBody> {
        order_ref(self.order_id, &self.cl_id)
    }
}

/// `order.amend` arguments: the order, and a new total `qty` and/or `px`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendArgs {
    pub sym: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cl_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub px: Option<String>,
}

impl AmendArgs {
    /// The targeted order; `bad_request` unless exactly one id is given.
    pub fn order_ref(&self) -> Result<OrderRef, ErrorBody> {
        order_ref(self.order_id, &self.cl_id)
    }

    fn validate(&self) -> Result<(), ErrorBody> {
        self.order_ref()?;
        if self.qty.is_none() && self.px.is_none() {
            return Err(ErrorBody::bad_request("an amend needs qty, px or both"));
        }
        Ok(())
    }
}

/// `order.cancel_all` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAllArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sym: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
}

/// `order.batch` arguments: up to [`BATCH_ORDERS_MAX`] orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchArgs {
    pub orders: Vec<PlaceArgs>,
}

impl BatchArgs {
    /// Checks the batch size only: each order's own shape is answered per
    /// item (see [`PlaceArgs::validate`]), so one bad order does not refuse
    /// the others.
    fn validate(&self) -> Result<(), ErrorBody> {
        if self.orders.len() > BATCH_ORDERS_MAX {
            return Err(ErrorBody::bad_request(format!(
                "a batch holds at most {BATCH_ORDERS_MAX} orders, got {}",
                self.orders.len()
            )));
        }
        Ok(())
    }
}

/// `order.cancel_after` arguments; 0 disarms the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAfterArgs {
    pub timeout_ms: u64,
}

/// `account.orders` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sym: Option<String>,
}

/// `account.fills` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillsArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sym: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// A `fill_id`: return fills older than it (the next page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
}

impl FillsArgs {
    /// The page size in effect.
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(FILLS_LIMIT_DEFAULT)
    }

    fn validate(&self) -> Result<(), ErrorBody> {
        match self.limit {
            Some(l) if l == 0 || l > FILLS_LIMIT_MAX => Err(ErrorBody::bad_request(format!(
                "limit must be 1 to {FILLS_LIMIT_MAX}"
            ))),
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------- admin

/// `admin.asset.create` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetCreateArgs {
    pub asset: String,
    /// Decimal places of the asset (at most [`crate::decimal::SCALE_MAX`]).
    pub scale: u32,
}

/// `admin.instrument.create` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentCreateArgs {
    pub sym: String,
    pub base: String,
    pub quote: String,
    pub tick: String,
    pub lot: String,
    pub min_qty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_px: Option<String>,
    /// Price band in whole percent around the reference price (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_pct: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maker_fee_bps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taker_fee_bps: Option<u32>,
}

/// The default price band, in percent.
pub const BAND_PCT_DEFAULT: u32 = 10;

/// Arguments naming one instrument (`admin.instrument.halt`, `.resume`, `.cancel_only`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymArgs {
    pub sym: String,
}

/// `admin.user.create` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreateArgs {
    pub user: String,
    pub password: String,
    pub role: Role,
}

/// `account.password` arguments (an extension): the user's current
/// password and the new one. Every login of the user ends with the old
/// password, the one that changed it included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChangeArgs {
    pub password: String,
    pub new_password: String,
}

/// `admin.user.password` arguments (an extension): the user and the new
/// password. The user's session tokens end with the old password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPasswordArgs {
    pub user: String,
    pub password: String,
}

/// `admin.apikey.create` arguments; `public_key` (standard base64 of 32
/// bytes) is required for `ed25519` and refused for `hmac-sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyCreateArgs {
    pub user: String,
    pub alg: SigAlg,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl ApiKeyCreateArgs {
    fn validate(&self) -> Result<(), ErrorBody> {
        match (self.alg, &self.public_key) {
            (SigAlg::Ed25519, None) => Err(ErrorBody::bad_request("ed25519 keys need public_key")),
            (SigAlg::HmacSha256, Some(_)) => Err(ErrorBody::bad_request(
                "hmac-sha256 keys take no public_key",
            )),
            _ => Ok(()),
        }
    }
}

/// `admin.deposit` / `admin.withdraw` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountArgs {
    pub user: String,
    pub asset: String,
    pub amount: String,
}

/// `admin.cancel_all` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminCancelAllArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sym: Option<String>,
}

/// Arguments naming one user (`admin.balances`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserArgs {
    pub user: String,
}

// ---------------------------------------------------------------- envelope

impl Request {
    pub fn new(id: impl Into<ReqId>, op: Op) -> Request {
        Request { id: id.into(), op }
    }

    /// Decodes a request from a generic value (the frame already parsed as
    /// JSON or MessagePack). See the module documentation for the steps.
    pub fn from_value(v: Value) -> Result<Request, RequestError> {
        let Value::Object(mut obj) = v else {
            return Err(RequestError::bad(
                None,
                "a request is an object {\"op\",\"id\",\"args\"}",
            ));
        };
        let id = match obj.remove("id") {
            None | Some(Value::Null) => return Err(RequestError::bad(None, "missing id")),
            Some(raw) => {
                ReqId::deserialize(raw).map_err(|e| RequestError::bad(None, format!("id: {e}")))?
            }
        };
        let name = match obj.remove("op") {
            Some(Value::String(s)) => s,
            None => return Err(RequestError::bad(Some(id), "missing op")),
            Some(_) => return Err(RequestError::bad(Some(id), "op must be a string")),
        };
        match Op::from_parts(&name, obj.remove("args")) {
            Ok(op) => Ok(Request { id, op }),
            Err(body) => Err(RequestError { id: Some(id), body }),
        }
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("op", self.op.name())?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("args", &self.op.args_value())?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Request, D::Error> {
        let v = Value::deserialize(d)?;
        Request::from_value(v).map_err(|e| serde::de::Error::custom(e.body.msg))
    }
}
