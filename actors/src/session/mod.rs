//! The session actor: one per WebSocket connection. It decodes frames,
//! authenticates, enforces roles and rate limits, turns requests into
//! engine commands for the ledger, answers queries, keeps the connection's
//! subscriptions, and owns the bounded outbound queue to the socket.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bourse_engine::{self as eng, AccountId, Command, InstrumentId, OrderRef, PlaceCmd};
use bourse_protocol::codec::{self, Encoding};
use bourse_protocol::msg::{self as p, Op, Request, Role};
use bourse_protocol::{ErrorBody, ErrorCode, ReqId, Response};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::auth::{self, limits::ConnectionLimiter, RateQuotas};
use crate::ledger::{Query, Shape, Submit};
use crate::market::{Subscribe as MdSubscribe, Unsubscribe as MdUnsubscribe};
use crate::node::Shared;
use crate::reply::{now_us, Batch, Deliver, PlaceAnswered, Responder};
use crate::wire;

pub mod cancel_after;
pub mod frame;
pub mod hashing;
pub mod outbox;
pub mod queue;
pub mod writer;

/// The stream key of the account stream.
pub const ACCOUNT_STREAM: &str = "account";
pub use outbox::{Admitted, Flushed, Follower, Offered, Outbox, Refused};

/// Protocol errors tolerated within `ERRORS_WINDOW`; the next one closes (1008).
pub const PROTOCOL_ERRORS_MAX: usize = 20;
pub const ERRORS_WINDOW: Duration = Duration::from_secs(10);
/// WebSocket pings are sent this often.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// A connection silent (no pong, no frame) this long is closed.
pub const IDLE_MAX: Duration = Duration::from_secs(60);
/// Heartbeat after this long without sending anything.
pub const HEARTBEAT_AFTER: Duration = Duration::from_secs(1);
/// A `cod: connection` session asks the ledger which of the orders it
/// placed are still open, and forgets the others, once it remembers this
/// many (and after that, each time the number it keeps has doubled): what
/// it keeps stays within twice the account's open orders.
pub const COD_PRUNE_MIN: usize = 4_096;
/// Longest `order.cancel_after` timeout: one day.
pub const CANCEL_AFTER_MS_MAX: u64 = 86_400_000;

#[derive(Clone, Debug)]
pub struct Authed {
    pub user: String,
    pub account: AccountId,
    pub role: Role,
    pub token: String,
    pub session_id: u64,
    pub cod: p::Cod,
}

pub struct Session {
    pub shared: Arc<Shared>,
    pub enc: Encoding,
    /// The connection's outbound queue, shared with the market-data actor.
    pub out: Arc<Outbox>,
    pub peer: std::net::SocketAddr,
    pub auth: Option<Authed>,
    pub errors: VecDeque<Instant>,
    pub limiter: ConnectionLimiter,
    /// Cancel-on-disconnect `connection`: the orders placed through this
    /// connection, by order id (from their answers), and the places not yet
    /// answered, by `cl_id` (how many of each in flight).
    pub placed: HashMap<u64, InstrumentId>,
    pub placing: HashMap<String, (InstrumentId, u32)>,
    /// `placed` is pruned when it reaches this size (`COD_PRUNE_MIN`).
    pub prune_at: usize,
    pub pruning: bool,
    /// Stream keys subscribed, with the last seq sent on each.
    pub streams: std::collections::BTreeMap<String, StreamState>,
    /// The account stream, which this session delivers itself (after the
    /// answers that caused its events).
    pub account_stream: Option<Follower>,
    /// A retry of what lag held back on the account stream is scheduled.
    pub flush_scheduled: bool,
    pub last_seen: Instant,
    pub logged_out: bool,
    /// This session's place in `Shared::sessions`.
    pub slot: usize,
}

impl Session {
    pub fn new(shared: Arc<Shared>, out: Arc<Outbox>, peer: std::net::SocketAddr) -> Self {
        let q = RateQuotas {
            orders_per_s_per_account: std::num::NonZeroU32::new(shared.cfg.limits.account_orders_per_sec).expect("validated"),
            messages_per_s_per_connection: std::num::NonZeroU32::new(shared.cfg.limits.conn_msgs_per_sec).expect("validated"),
            ..Default::default()
        };
        Session {
            limiter: ConnectionLimiter::with_clock(&q, governor::clock::DefaultClock::default()),
            shared,
            enc: out.enc,
            slot: out.conn,
            out,
            peer,
            auth: None,
            errors: VecDeque::new(),
            placed: HashMap::new(),
            placing: HashMap::new(),
            prune_at: COD_PRUNE_MIN,
            pruning: false,
            streams: Default::default(),
            account_stream: None,
            flush_scheduled: false,
            last_seen: Instant::now(),
            logged_out: false,
        }
    }

    fn send_frame(&mut self, f: codec::Frame, ctx: &mut Context<Self>) {
        self.push(frame::message(&f), ctx);
    }

    fn push(&mut self, m: bytes::Bytes, ctx: &mut Context<Self>) {
        match self.out.push(m) {
            Ok(()) => {}
            // The client does not read: it is told, then closed. Nothing is dropped silently.
            Err(Refused::Full) => {
                self.out.slow_consumer(None);
                ctx.stop();
            }
            Err(Refused::Closed) => ctx.stop(),
        }
    }

    fn respond(&mut self, id: Option<ReqId>, ts_in: u64, a: Result<Value, ErrorBody>, ctx: &mut Context<Self>) {
        let r = match a {
            Ok(v) => Response { id, ok: true, res: Some(v), err: None, ts_in, ts_out: now_us() },
            Err(e) => Response { id, ok: false, res: None, err: Some(e), ts_in, ts_out: now_us() },
        };
        self.send_response(r, ctx);
    }

    fn send_response(&mut self, r: Response<Value>, ctx: &mut Context<Self>) {
        if let Some(e) = &r.err {
            if matches!(
                e.code,
                ErrorCode::BadRequest | ErrorCode::UnknownOp | ErrorCode::UnknownInstrument | ErrorCode::TooManySubscriptions
            ) {
                self.count_error(ctx);
            }
        }
        let f = codec::encode(self.enc, &r);
        crate::telemetry::response_sent(self.slot, &r, f.as_bytes().len());
        self.send_frame(f, ctx);
    }

    fn count_error(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while self.errors.front().is_some_and(|t| now.duration_since(*t) > ERRORS_WINDOW) {
            self.errors.pop_front();
        }
        self.errors.push_back(now);
        if self.errors.len() > PROTOCOL_ERRORS_MAX {
            self.close(1008, "too many protocol errors", ctx);
        }
    }

    fn close(&mut self, code: u16, reason: &str, ctx: &mut Context<Self>) {
        self.out.close(code, reason);
        ctx.stop();
    }

    fn submit(&mut self, cmd: Command, to: Responder, shape: Shape) {
        if self.shared.stopping() {
            to.send(Err(ErrorBody::new(ErrorCode::ShuttingDown, "the exchange is shutting down")));
            return;
        }
        match self.shared.ledger().try_send(Submit { cmd, to, shape }) {
            Ok(()) => crate::telemetry::LEDGER_MAILBOX.enqueued(),
            Err(SendError::Full(s)) | Err(SendError::Closed(s)) => {
                metrics::counter!("bourse_overloaded_total", "actor" => "ledger").increment(1);
                s.to.send(Err(ErrorBody::new(ErrorCode::Overloaded, "the ledger is overloaded; retry shortly")));
            }
        }
    }

    fn responder(&self, id: Option<ReqId>, ts_in: u64, ctx: &Context<Self>) -> Responder {
        Responder::Session { to: ctx.address().recipient(), id, ts_in }
    }

    fn trader(&self) -> Result<&Authed, ErrorBody> {
        match &self.auth {
            None => Err(ErrorBody::new(ErrorCode::AuthRequired, "log in first")),
            Some(a) if a.role != Role::Trader => Err(ErrorBody::new(ErrorCode::PermissionDenied, "traders only")),
            Some(a) => Ok(a),
        }
    }

    fn operator(&self) -> Result<&Authed, ErrorBody> {
        match &self.auth {
            None => Err(ErrorBody::new(ErrorCode::AuthRequired, "log in first")),
            Some(a) if a.role != Role::Operator => Err(ErrorBody::new(ErrorCode::PermissionDenied, "operators only")),
            Some(a) => Ok(a),
        }
    }

    fn spec(&self, sym: &str) -> Result<eng::spec::InstrumentSpec, ErrorBody> {
        self.shared
            .instruments
            .get(sym)
            .map(|s| s.clone())
            .ok_or_else(|| ErrorBody::new(ErrorCode::UnknownInstrument, format!("unknown instrument {sym:?}")))
    }

    fn place_cmd(&self, account: AccountId, a: &p::PlaceArgs) -> Result<PlaceCmd, ErrorBody> {
        let spec = self.spec(&a.sym)?;
        let px = a.px.as_deref().map(|s| wire::px(&spec, s)).transpose()?;
        let qty = a.qty.as_deref().map(|s| wire::qty(&spec, s)).transpose()?;
        let quote_scale = self.shared.asset_scale(spec.quote);
        let quote_qty = a.quote_qty.as_deref().map(|s| wire::amount(quote_scale, s)).transpose()?;
        Ok(PlaceCmd {
            account,
            inst: spec.id,
            // One too long to hold goes as the empty cl_id, which the ledger refuses.
            cl_id: eng::ClId::new(&a.cl_id).unwrap_or_default(),
            side: wire::side(a.side),
            kind: wire::kind(a.order_type),
            tif: a.tif.map(wire::tif),
            px,
            qty,
            quote_qty,
            post_only: a.post_only,
            stp: wire::stp(a.stp()),
        })
    }

    fn account_of(&self, user: &str) -> Result<AccountId, ErrorBody> {
        self.shared
            .accounts
            .get(user)
            .map(|a| *a)
            .ok_or_else(|| ErrorBody::bad_request(format!("unknown user {user:?}")))
    }

    fn asset_of(&self, name: &str) -> Result<eng::spec::AssetSpec, ErrorBody> {
        self.shared
            .assets
            .get(name)
            .map(|a| a.clone())
            .ok_or_else(|| ErrorBody::new(ErrorCode::UnknownAsset, format!("unknown asset {name:?}")))
    }

    fn ask(&self, q: Query, id: Option<ReqId>, ts_in: u64, ctx: &mut Context<Self>) {
        let fut = self.shared.ledger().send(q);
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            let a = r.unwrap_or_else(|_| Err(ErrorBody::new(ErrorCode::Internal, "ledger unavailable")));
            act.respond(id, ts_in, a, ctx);
        }));
    }

    fn authed(&mut self, user: String, role: Role, cod: p::Cod, id: Option<ReqId>, ts_in: u64, ctx: &mut Context<Self>) {
        let Some(account) = self.shared.accounts.get(&user).map(|a| *a) else {
            self.respond(id, ts_in, Err(ErrorBody::new(ErrorCode::BadCredentials, "bad credentials")), ctx);
            return;
        };
        let (session_id, token) = self.shared.tokens.issue(&user, role, cod, now_us());
        self.shared.connected(account, 1);
        self.auth = Some(Authed { user: user.clone(), account, role, token: token.clone(), session_id, cod });
        crate::telemetry::ws_role_changed(None, Some(role));
        self.logged_out = false;
        tracing::debug!(conn = self.slot, user = %user, peer = %self.peer, "authenticated");
        let res = p::AuthRes { user, role, session: p::SessionInfo { id: session_id.to_string(), token } };
        self.respond(id, ts_in, Ok(serde_json::to_value(res).expect("encodes")), ctx);
    }

    fn handle_request(&mut self, req: Request, ts_in: u64, ctx: &mut Context<Self>) {
        let id = Some(req.id.clone());
        if let Err(e) = self.limiter.check() {
            metrics::counter!("bourse_rate_limited_total", "scope" => "connection").increment(1);
            self.respond(id, ts_in, Err(ErrorBody::rate_limited(e.0)), ctx);
            return;
        }
        let op = req.op;
        // Orders count against the account's limit, a batch by its orders;
        // cancels do not (see `auth::limits`).
        let orders = match &op {
            Op::OrderPlace(_) | Op::OrderAmend(_) => 1,
            Op::OrderBatch(b) => b.orders.len().clamp(1, p::BATCH_ORDERS_MAX) as u32,
            _ => 0,
        };
        if let Some(n) = std::num::NonZeroU32::new(orders) {
            if let Some(a) = &self.auth {
                if let Err(e) = self.shared.account_limiter.check_n(&a.user, n) {
                    metrics::counter!("bourse_rate_limited_total", "scope" => "account").increment(1);
                    self.respond(id, ts_in, Err(ErrorBody::rate_limited(e.0)), ctx);
                    return;
                }
            }
        }
        let r = self.dispatch(op, id.clone(), ts_in, ctx);
        if let Err(e) = r {
            self.respond(id, ts_in, Err(e), ctx);
        }
    }

    /// Handles one op; an `Err` is answered at once, an `Ok` has arranged its own answer.
    fn dispatch(&mut self, op: Op, id: Option<ReqId>, ts_in: u64, ctx: &mut Context<Self>) -> Result<(), ErrorBody> {
        match op {
            Op::Ping => {
                self.respond(id, ts_in, Ok(json!({"ts": now_us()})), ctx);
            }
            Op::Auth(args) => {
                if self.auth.is_some() {
                    return Err(ErrorBody::bad_request("already authenticated; logout first"));
                }
                let cod = args.cod();
                match args {
                    p::AuthArgs::Password(pw) => {
                        // The slow hash runs off the actor's thread, and the
                        // session reads nothing more until it is done: a
                        // request sent right behind `auth` is handled as
                        // logged in (or not), in order, and one connection
                        // has one hash running at a time.
                        let shared = self.shared.clone();
                        let fut = self.shared.password_checks.run(move || {
                            auth::authenticate_password(&shared.directory, &pw.user, &pw.password)
                        }).map_err(|_| checks_busy())?;
                        ctx.wait(fut.into_actor(self).map(move |r, act, ctx| match r {
                            Some(Ok((user, role))) => act.authed(user, role, cod, id, ts_in, ctx),
                            Some(Err(e)) => {
                                metrics::counter!("bourse_auth_failures_total", "code" => e.code_str()).increment(1);
                                act.respond(id, ts_in, Err(auth_error(e)), ctx)
                            }
                            None => act.respond(id, ts_in, Err(ErrorBody::new(ErrorCode::Internal, "auth failed")), ctx),
                        }));
                    }
                    p::AuthArgs::Key(k) => {
                        let req = auth::KeyAuth::from(&k);
                        match auth::authenticate_key(&self.shared.directory, &self.shared.nonces, &req, now_us()) {
                            Ok((user, role)) => self.authed(user, role, cod, id, ts_in, ctx),
                            Err(e) => {
                                metrics::counter!("bourse_auth_failures_total", "code" => e.code_str()).increment(1);
                                return Err(auth_error(e));
                            }
                        }
                    }
                }
            }
            Op::Logout => {
                self.end_login(ctx);
                self.respond(id, ts_in, Ok(json!({})), ctx);
            }
            Op::SessionResume(args) => {
                let info = self.shared.tokens.validate(&args.token, now_us()).map_err(auth_error)?;
                if self.auth.is_none() {
                    let account = self.account_of(&info.user)?;
                    crate::telemetry::ws_role_changed(None, Some(info.role));
                    self.shared.connected(account, 1);
                    self.auth = Some(Authed {
                        user: info.user.clone(),
                        account,
                        role: info.role,
                        token: args.token.clone(),
                        session_id: info.session_id,
                        // The login's cancel-on-disconnect, as `auth` set it.
                        cod: info.cod,
                    });
                    self.logged_out = false;
                }
                let mut subs = Vec::new();
                for (key, pos) in &args.streams {
                    let sub = self.subscription_from_key(key)?;
                    subs.push((sub, Some(*pos)));
                }
                self.subscribe_many(subs, id, ts_in, ctx)?;
            }
            Op::Subscribe(args) => {
                let depth = args.depth();
                let mut subs = Vec::new();
                if args.ch.has_sym() {
                    for s in &args.sym {
                        self.spec(s)?;
                        let key = stream_key(args.ch, Some(s), depth, args.interval).ok_or_else(|| ErrorBody::bad_request("incomplete stream"))?;
                        subs.push((Sub { key, ch: args.ch, sym: Some(s.clone()), depth, interval: args.interval, cksum: args.cksum, on_lag: args.on_lag() }, args.resume_for(Some(s))));
                    }
                } else {
                    if args.ch == p::Channel::Account && self.auth.is_none() {
                        return Err(ErrorBody::new(ErrorCode::AuthRequired, "log in to subscribe to account"));
                    }
                    let key = stream_key(args.ch, None, depth, None).ok_or_else(|| ErrorBody::bad_request("incomplete stream"))?;
                    subs.push((Sub { key, ch: args.ch, sym: None, depth, interval: None, cksum: false, on_lag: args.on_lag() }, args.resume_for(None)));
                }
                self.subscribe_many(subs, id, ts_in, ctx)?;
            }
            Op::Unsubscribe(args) => {
                // PROTOCOL.md's unsubscribe names a channel and instruments
                // only: without a `depth` (or `interval`) every book (or
                // candle) subscription of the instrument goes; with one,
                // only that one.
                let gone: Vec<String> = self
                    .streams
                    .keys()
                    .filter(|key| {
                        let Some(k) = p::StreamKey::parse(key) else { return false };
                        k.channel() == args.ch
                            && k.sym().is_none_or(|s| args.sym.iter().any(|x| x == s))
                            && match &k {
                                p::StreamKey::BookL2 { depth, .. } => args.depth.is_none_or(|d| d == *depth),
                                p::StreamKey::Candles { interval, .. } => args.interval.is_none_or(|i| i == *interval),
                                _ => true,
                            }
                    })
                    .cloned()
                    .collect();
                for key in gone {
                    self.streams.remove(&key);
                    if key == ACCOUNT_STREAM {
                        self.account_stream = None;
                    }
                    self.shared.market.do_send(MdUnsubscribe { key, conn: self.slot });
                }
                self.respond(id, ts_in, Ok(json!({})), ctx);
            }
            Op::OrderPlace(a) => {
                let account = self.trader()?.account;
                let cmd = self.place_cmd(account, &a)?;
                let to = self.responder(id, ts_in, ctx);
                let to = self.track_cod(&cmd, to, ctx);
                self.submit(Command::Place(cmd), to, Shape::Empty);
            }
            Op::OrderBatch(b) => {
                let account = self.trader()?.account;
                // Its size was checked with its shape (`BatchArgs`).
                let batch = Batch::new(b.orders.len(), self.responder(id, ts_in, ctx));
                for (i, a) in b.orders.iter().enumerate() {
                    let slot = Responder::Slot { batch: batch.clone(), index: i };
                    match a.validate().and_then(|_| self.place_cmd(account, a)) {
                        Ok(cmd) => {
                            let slot = self.track_cod(&cmd, slot, ctx);
                            self.submit(Command::Place(cmd), slot, Shape::Empty)
                        }
                        Err(e) => slot.send(Err(e)),
                    }
                }
            }
            Op::OrderCancel(a) => {
                let account = self.trader()?.account;
                let spec = self.spec(&a.sym)?;
                let order = match a.order_ref()? {
                    p::OrderRef::Id(i) => OrderRef::Id(eng::OrderId(i)),
                    p::OrderRef::ClId(c) => OrderRef::ClId(c),
                };
                let to = self.responder(id, ts_in, ctx);
                self.submit(Command::Cancel { account, inst: spec.id, order }, to, Shape::Empty);
            }
            Op::OrderAmend(a) => {
                let account = self.trader()?.account;
                let spec = self.spec(&a.sym)?;
                let order = match a.order_ref()? {
                    p::OrderRef::Id(i) => OrderRef::Id(eng::OrderId(i)),
                    p::OrderRef::ClId(c) => OrderRef::ClId(c),
                };
                let qty = a.qty.as_deref().map(|s| wire::qty(&spec, s)).transpose()?;
                let px = a.px.as_deref().map(|s| wire::px(&spec, s)).transpose()?;
                let to = self.responder(id, ts_in, ctx);
                self.submit(Command::Amend { account, inst: spec.id, order, qty, px }, to, Shape::Empty);
            }
            Op::OrderCancelAll(a) => {
                let account = self.trader()?.account;
                let inst = a.sym.as_deref().map(|s| self.spec(s).map(|s| s.id)).transpose()?;
                let to = self.responder(id, ts_in, ctx);
                self.submit(Command::CancelAll { account: Some(account), inst, side: a.side.map(wire::side), admin: false }, to, Shape::Empty);
            }
            Op::OrderCancelAfter(a) => {
                let account = self.trader()?.account;
                if a.timeout_ms > CANCEL_AFTER_MS_MAX {
                    return Err(ErrorBody::bad_request(format!("timeout_ms is at most {CANCEL_AFTER_MS_MAX}")));
                }
                let at = if a.timeout_ms == 0 {
                    self.shared.cancel_after.disarm(account);
                    0
                } else {
                    cancel_after::Switches::arm(&self.shared, account, Duration::from_millis(a.timeout_ms));
                    now_us() + a.timeout_ms * 1000
                };
                self.respond(id, ts_in, Ok(json!({"at": at})), ctx);
            }
            Op::AccountBalances => {
                let account = self.any_auth()?;
                self.ask(Query::Balances(account), id, ts_in, ctx);
            }
            Op::AccountOrders(a) => {
                let account = self.any_auth()?;
                let inst = a.sym.as_deref().map(|s| self.spec(s).map(|s| s.id)).transpose()?;
                self.ask(Query::Orders { account, inst }, id, ts_in, ctx);
            }
            Op::AccountFills(a) => {
                let account = self.any_auth()?;
                let inst = a.sym.as_deref().map(|s| self.spec(s).map(|s| s.id)).transpose()?;
                let limit = a.limit.unwrap_or(100).min(1000) as usize;
                self.ask(Query::Fills { account, inst, before: a.before, limit }, id, ts_in, ctx);
            }
            Op::AccountPassword(a) => {
                let me = self.auth.clone().ok_or_else(|| ErrorBody::new(ErrorCode::AuthRequired, "log in first"))?;
                check_password(&a.new_password)?;
                // The current password is checked, and the new one hashed,
                // off the session's thread; as for `auth`, the session reads
                // nothing more until then.
                let shared = self.shared.clone();
                let user = me.user.clone();
                let fut = self.shared.password_checks.run(move || {
                    auth::authenticate_password(&shared.directory, &user, &a.password)
                        .map(|_| shared.hash_password(&a.new_password))
                }).map_err(|_| checks_busy())?;
                ctx.wait(fut.into_actor(self).map(move |r, act, ctx| match r {
                    Some(Ok(password_hash)) => {
                        let cmd = Command::SetPassword { user: me.user.clone(), password_hash, by: me.account };
                        let to = act.responder(id, ts_in, ctx);
                        act.submit(cmd, to, Shape::User(me.user));
                    }
                    Some(Err(e)) => {
                        metrics::counter!("bourse_auth_failures_total", "code" => e.code_str()).increment(1);
                        act.respond(id, ts_in, Err(auth_error(e)), ctx)
                    }
                    None => act.respond(id, ts_in, Err(ErrorBody::new(ErrorCode::Internal, "password change failed")), ctx),
                }));
            }
            Op::Instruments => self.ask(Query::Instruments, id, ts_in, ctx),
            Op::AdminBalances(a) => {
                self.operator()?;
                let account = if a.user == eng::FEE_USER { eng::FEE_ACCOUNT } else { self.account_of(&a.user)? };
                self.ask(Query::Balances(account), id, ts_in, ctx);
            }
            Op::AdminUserCreate(_) | Op::AdminUserPassword(_) => {
                // A new password's hash, like a login's check, runs through
                // the node's password checks rather than on this thread
                // (which other sessions share), and the session reads
                // nothing more until it is made.
                let by = self.operator()?.account;
                let (user, password, role) = match op {
                    Op::AdminUserCreate(a) => (a.user, a.password, Some(a.role)),
                    Op::AdminUserPassword(a) => (a.user, a.password, None),
                    _ => unreachable!("matched above"),
                };
                check_password(&password)?;
                let shared = self.shared.clone();
                let fut = self.shared.password_checks.run(move || shared.hash_password(&password)).map_err(|_| checks_busy())?;
                ctx.wait(fut.into_actor(self).map(move |r, act, ctx| {
                    let Some(password_hash) = r else {
                        return act.respond(id, ts_in, Err(ErrorBody::new(ErrorCode::Internal, "hashing the password failed")), ctx);
                    };
                    let cmd = match role {
                        Some(role) => Command::CreateUser { user: user.clone(), role: wire::role(role), password_hash, by },
                        None => Command::SetPassword { user: user.clone(), password_hash, by },
                    };
                    let to = act.responder(id, ts_in, ctx);
                    act.submit(cmd, to, Shape::User(user));
                }));
            }
            admin => {
                let by = self.operator()?.account;
                let (cmd, shape) = self.admin_command(admin, by)?;
                let to = self.responder(id, ts_in, ctx);
                self.submit(cmd, to, shape);
            }
        }
        Ok(())
    }

    /// A stream named by its key (`session.resume`): the key must parse, name
    /// a listed instrument and an allowed depth.
    fn subscription_from_key(&self, key: &str) -> Result<Sub, ErrorBody> {
        let k = p::StreamKey::parse(key).ok_or_else(|| ErrorBody::bad_request(format!("unknown stream key {key:?}")))?;
        if let Some(sym) = k.sym() {
            self.spec(sym)?;
        }
        let (depth, interval) = match &k {
            p::StreamKey::BookL2 { depth, .. } if !p::DEPTHS_ALLOWED.contains(depth) => {
                return Err(ErrorBody::bad_request("depth must be 10, 50, 200 or 0"));
            }
            p::StreamKey::BookL2 { depth, .. } => (*depth, None),
            p::StreamKey::Candles { interval, .. } => (p::DEPTH_DEFAULT, Some(*interval)),
            _ => (p::DEPTH_DEFAULT, None),
        };
        let ch = k.channel();
        if ch == p::Channel::Account && self.auth.is_none() {
            return Err(ErrorBody::new(ErrorCode::AuthRequired, "log in to subscribe to account"));
        }
        Ok(Sub {
            key: key.to_string(),
            ch,
            sym: k.sym().map(str::to_string),
            depth,
            interval,
            cksum: ch == p::Channel::BookL2,
            on_lag: p::OnLag::default_for(ch),
        })
    }

    /// Ends this connection's login, as `logout` does: its token is
    /// revoked, its orders stay (a logout cancels nothing, and a later login
    /// on this connection does not inherit them), its account stream ends;
    /// the connection stays, unauthenticated.
    fn end_login(&mut self, ctx: &mut Context<Self>) {
        if let Some(a) = self.auth.take() {
            self.shared.tokens.revoke(&a.token);
            self.shared.connected(a.account, -1);
            self.logged_out = true;
            self.placed.clear();
            self.placing.clear();
            crate::telemetry::ws_role_changed(Some(a.role), None);
            self.drop_account_stream(&a, ctx);
        }
    }

    /// Follows an order placed through this connection when it is to be
    /// cancelled with it (`cod: connection`): by `cl_id` until its answer
    /// comes, then by the order id the answer gives (`PlaceAnswered`).
    fn track_cod(&mut self, cmd: &PlaceCmd, to: Responder, ctx: &Context<Self>) -> Responder {
        if !self.auth.as_ref().is_some_and(|x| x.cod == p::Cod::Connection) {
            return to;
        }
        let cl_id = cmd.cl_id.as_str().to_owned();
        self.placing.entry(cl_id.clone()).or_insert((cmd.inst, 0)).1 += 1;
        Responder::Noted { inner: Box::new(to), note: ctx.address().recipient(), cl_id }
    }

    /// Forgets the orders of `placed` that have ended, by asking the ledger
    /// for the account's open ones. Orders answered while the question is
    /// out were open at its answer or are newer than it: only the ids known
    /// when it was asked are dropped.
    fn prune_placed(&mut self, account: AccountId, ctx: &mut Context<Self>) {
        self.pruning = true;
        let asked: Vec<u64> = self.placed.keys().copied().collect();
        let fut = self.shared.ledger().send(Query::OpenIds(account));
        ctx.spawn(fut.into_actor(self).map(move |r, act, _ctx| {
            act.pruning = false;
            if let Ok(Ok(open)) = r {
                let open: std::collections::HashSet<u64> = open["ids"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
                for id in asked.into_iter().filter(|id| !open.contains(id)) {
                    act.placed.remove(&id);
                }
            }
            act.prune_at = (2 * act.placed.len()).max(COD_PRUNE_MIN);
        }));
    }

    fn any_auth(&self) -> Result<AccountId, ErrorBody> {
        self.auth.as_ref().map(|a| a.account).ok_or_else(|| ErrorBody::new(ErrorCode::AuthRequired, "log in first"))
    }

    fn admin_command(&self, op: Op, by: AccountId) -> Result<(Command, Shape), ErrorBody> {
        Ok(match op {
            Op::AdminAssetCreate(a) => (Command::CreateAsset { name: a.asset, scale: a.scale, by }, Shape::Empty),
            Op::AdminInstrumentCreate(a) => {
                let conf = crate::config::InstrumentConf {
                    sym: a.sym,
                    base: a.base,
                    quote: a.quote,
                    tick: a.tick,
                    lot: a.lot,
                    min_qty: a.min_qty,
                    ref_px: a.ref_px,
                    band_pct: a.band_pct.unwrap_or(crate::config::BAND_PCT_DEFAULT),
                    maker_fee_bps: a.maker_fee_bps.unwrap_or(0),
                    taker_fee_bps: a.taker_fee_bps.unwrap_or(0),
                };
                let listing = listing_from_conf(&self.shared, &conf)?;
                (Command::CreateInstrument { listing, by }, Shape::Instrument)
            }
            Op::AdminInstrumentHalt(a) => self.state_cmd(&a.sym, eng::InstrumentState::Halted, by)?,
            Op::AdminInstrumentResume(a) => self.state_cmd(&a.sym, eng::InstrumentState::Trading, by)?,
            Op::AdminInstrumentCancelOnly(a) => self.state_cmd(&a.sym, eng::InstrumentState::CancelOnly, by)?,
            Op::AdminApikeyCreate(a) => {
                let account = self.account_of(&a.user)?;
                let key = auth::signature::generate_key_id();
                let (credential, secret) = match a.alg {
                    p::SigAlg::HmacSha256 => {
                        let s = auth::signature::generate_hmac_secret();
                        (eng::Credential::Hmac { secret: s.clone() }, Some(s))
                    }
                    p::SigAlg::Ed25519 => {
                        let pk = a.public_key.clone().unwrap_or_default();
                        if !auth::signature::validate_ed25519_public_key(&pk) {
                            return Err(ErrorBody::bad_request("public_key must be standard base64 of 32 bytes"));
                        }
                        (eng::Credential::Ed25519 { public_key: pk }, None)
                    }
                };
                (Command::CreateApiKey { account, key: key.clone(), credential, by }, Shape::ApiKey { key, secret })
            }
            Op::AdminDeposit(a) => {
                let account = self.account_of(&a.user)?;
                let asset = self.asset_of(&a.asset)?;
                let amount = wire::amount(asset.scale, &a.amount)?;
                (Command::Deposit { account, asset: asset.id, amount, by }, Shape::Available { account, asset: asset.id })
            }
            Op::AdminWithdraw(a) => {
                let account = self.account_of(&a.user)?;
                let asset = self.asset_of(&a.asset)?;
                let amount = wire::amount(asset.scale, &a.amount)?;
                (Command::Withdraw { account, asset: asset.id, amount, by }, Shape::Available { account, asset: asset.id })
            }
            Op::AdminCancelAll(a) => {
                let account = a.user.as_deref().map(|u| self.account_of(u)).transpose()?;
                let inst = a.sym.as_deref().map(|s| self.spec(s).map(|s| s.id)).transpose()?;
                (Command::CancelAll { account, inst, side: None, admin: true }, Shape::Empty)
            }
            other => return Err(ErrorBody::new(ErrorCode::UnknownOp, format!("{} is not handled here", other.name()))),
        })
    }

    fn state_cmd(&self, sym: &str, state: eng::InstrumentState, by: AccountId) -> Result<(Command, Shape), ErrorBody> {
        let spec = self.spec(sym)?;
        Ok((Command::SetState { inst: spec.id, state, by }, Shape::State(state)))
    }

    fn subscribe_many(&mut self, subs: Vec<(Sub, Option<p::Position>)>, id: Option<ReqId>, ts_in: u64, ctx: &mut Context<Self>) -> Result<(), ErrorBody> {
        let new = subs.iter().filter(|(s, _)| !self.streams.contains_key(&s.key)).count();
        if self.streams.len() + new > self.shared.cfg.limits.subscriptions_max {
            return Err(ErrorBody::new(ErrorCode::TooManySubscriptions, format!("at most {} subscriptions", self.shared.cfg.limits.subscriptions_max)));
        }
        let account = self.auth.as_ref().map(|a| a.account);
        let mut results = Vec::new();
        let mut futs = Vec::new();
        let mut added = Vec::new();
        for (sub, resume) in subs {
            let st = StreamState::new(sub.clone());
            let last = st.last.clone();
            if sub.ch == p::Channel::Account {
                self.account_stream = Some(Follower::new(self.out.clone(), sub.clone(), last.clone()));
            }
            if self.streams.insert(sub.key.clone(), st).is_none() {
                added.push(sub.key.clone());
            }
            futs.push(self.shared.market.send(MdSubscribe { sub, resume, account, out: self.out.clone(), last }));
        }
        // Answer after every stream registered: the answer lists each one, and
        // each stream's snapshot follows its registration in the mailbox order.
        let fut = async move {
            for f in futs {
                match f.await {
                    Ok(Ok(r)) => results.push(r),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(ErrorBody::new(ErrorCode::Internal, "market data unavailable")),
                }
            }
            Ok(results)
        };
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            if r.is_err() {
                // A refused subscription leaves nothing behind.
                for key in added {
                    act.streams.remove(&key);
                    if key == ACCOUNT_STREAM {
                        act.account_stream = None;
                    }
                    act.shared.market.do_send(MdUnsubscribe { key, conn: act.slot });
                }
            }
            let a = r.map(|subs| json!({"subs": subs}));
            act.respond(id, ts_in, a, ctx);
        }));
        Ok(())
    }

    fn drop_account_stream(&mut self, _a: &Authed, _ctx: &mut Context<Self>) {
        if self.streams.remove(ACCOUNT_STREAM).is_some() {
            self.account_stream = None;
            self.shared.market.do_send(MdUnsubscribe { key: ACCOUNT_STREAM.into(), conn: self.slot });
        }
    }
}

/// An instrument to list, from the configuration or `admin.instrument.create`:
/// its decimal grids parsed and checked.
pub fn listing_from_conf(shared: &Shared, c: &crate::config::InstrumentConf) -> Result<eng::Listing, ErrorBody> {
    listing_with(&|name| shared.assets.get(name).map(|a| a.id), c)
}

/// [`listing_from_conf`] with the assets found by `asset`.
pub fn listing_with(asset: &dyn Fn(&str) -> Option<eng::AssetId>, c: &crate::config::InstrumentConf) -> Result<eng::Listing, ErrorBody> {
    let (sym, base, quote) = (c.sym.as_str(), c.base.as_str(), c.quote.as_str());
    let (tick, lot, min_qty, ref_px) = (c.tick.as_str(), c.lot.as_str(), c.min_qty.as_str(), c.ref_px.as_deref());
    use bourse_protocol::decimal;
    let b = asset(base).ok_or_else(|| ErrorBody::new(ErrorCode::UnknownAsset, format!("unknown asset {base:?}")))?;
    let q = asset(quote).ok_or_else(|| ErrorBody::new(ErrorCode::UnknownAsset, format!("unknown asset {quote:?}")))?;
    let grid = |what: &str, s: &str| -> Result<(u64, u32), ErrorBody> {
        let scale = decimal::canonical_scale(s).map_err(|e| ErrorBody::bad_request(format!("{what} {s:?}: {e}")))?;
        let raw = decimal::parse(s, scale).map_err(|e| ErrorBody::bad_request(format!("{what} {s:?}: {e}")))?;
        if raw == 0 {
            return Err(ErrorBody::bad_request(format!("{what} must be positive")));
        }
        Ok((raw, scale))
    };
    let (tick_raw, price_scale) = grid("tick", tick)?;
    let (lot_raw, qty_scale) = grid("lot", lot)?;
    let min = decimal::parse_on_grid(min_qty, qty_scale, lot_raw).map_err(|e| ErrorBody::bad_request(format!("min_qty {min_qty:?}: {e}")))?;
    let ref_px = ref_px
        .map(|s| decimal::parse_on_grid(s, price_scale, tick_raw).map(eng::Price).map_err(|e| ErrorBody::bad_request(format!("ref_px {s:?}: {e}"))))
        .transpose()?;
    Ok(eng::Listing {
        sym: sym.to_string(),
        base: b,
        quote: q,
        tick_raw,
        price_scale,
        lot_raw,
        qty_scale,
        min_qty: eng::Qty(min.max(1)),
        ref_px,
        band_pct: c.band_pct,
        maker_fee_bps: c.maker_fee_bps,
        taker_fee_bps: c.taker_fee_bps,
    })
}


/// The answer when every password check slot is taken and the queue is full.
fn checks_busy() -> ErrorBody {
    metrics::counter!(crate::telemetry::OVERLOADED_TOTAL, "actor" => crate::telemetry::ACTOR_PASSWORD_CHECKS).increment(1);
    ErrorBody::new(ErrorCode::Overloaded, "too many password checks at once; retry shortly")
}

/// A new password's length: 8 to `PASSWORD_LEN_MAX` bytes.
fn check_password(pw: &str) -> Result<(), ErrorBody> {
    if pw.len() < 8 || pw.len() > auth::users::PASSWORD_LEN_MAX {
        return Err(ErrorBody::bad_request("passwords are 8 to 1024 characters"));
    }
    Ok(())
}

fn auth_error(e: auth::AuthError) -> ErrorBody {
    let code = ErrorCode::from_str_code(e.code_str()).unwrap_or(ErrorCode::BadCredentials);
    ErrorBody::new(code, e.to_string())
}

/// One subscription as the market-data side needs it.
#[derive(Clone, Debug)]
pub struct Sub {
    pub key: String,
    pub ch: p::Channel,
    pub sym: Option<String>,
    pub depth: u32,
    pub interval: Option<p::Interval>,
    pub cksum: bool,
    pub on_lag: p::OnLag,
}

/// The stream key of a subscription (PROTOCOL.md section 2), from the
/// protocol crate's one definition; `None` when a required part is missing.
pub fn stream_key(ch: p::Channel, sym: Option<&str>, depth: u32, interval: Option<p::Interval>) -> Option<String> {
    p::stream_key(ch, sym, Some(depth), interval)
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        crate::telemetry::ws_opened();
        self.shared.sessions.insert(self.slot, ctx.address().recipient());
        ctx.run_interval(Duration::from_millis(250), |act, ctx| {
            if act.last_seen.elapsed() > IDLE_MAX {
                act.close(1001, "idle", ctx);
                return;
            }
            if now_us().saturating_sub(act.out.last_sent_us()) >= HEARTBEAT_AFTER.as_micros() as u64 {
                let last: std::collections::BTreeMap<&String, u64> =
                    act.streams.iter().map(|(k, s)| (k, s.last.load(std::sync::atomic::Ordering::Acquire))).collect();
                let hb = json!({"ch": "hb", "ts": now_us(), "last": last});
                let f = codec::encode(act.enc, &hb);
                crate::telemetry::ws_out(crate::telemetry::CHANNEL_HB, f.as_bytes().len());
                act.send_frame(f, ctx);
            }
        });
        ctx.run_interval(PING_EVERY, |act, ctx| act.push(frame::ping(), ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        crate::telemetry::ws_closed(self.slot, self.auth.as_ref().map(|a| a.role));
        self.shared.sessions.remove(&self.slot);
        self.shared.connections.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if !self.streams.is_empty() {
            self.shared.market.do_send(crate::market::Gone { conn: self.slot });
        }
        let Some(a) = self.auth.take() else { return };
        let others = self.shared.connected(a.account, -1);
        if self.logged_out {
            return;
        }
        match a.cod {
            p::Cod::Off => {}
            p::Cod::Connection => {
                let placed = std::mem::take(&mut self.placed).into_iter().map(|(id, inst)| (inst, id)).collect();
                let placing = std::mem::take(&mut self.placing).into_iter().map(|(cl_id, (inst, _))| (inst, cl_id)).collect();
                actix::spawn(cancel_after::cancel_placed(self.shared.clone(), a.account, placed, placing));
            }
            p::Cod::Account if others == 0 => {
                let shared = self.shared.clone();
                actix::spawn(async move { cancel_after::cancel_all_of(&shared, a.account).await });
            }
            p::Cod::Account => {}
        }
    }
}

impl StreamHandler<Result<Message, tungstenite::Error>> for Session {
    fn handle(&mut self, item: Result<Message, tungstenite::Error>, ctx: &mut Context<Self>) {
        self.last_seen = Instant::now();
        let ts_in = now_us();
        let (bytes, binary): (Vec<u8>, bool) = match item {
            Ok(Message::Text(t)) => (t.as_bytes().to_vec(), false),
            Ok(Message::Binary(b)) => (b.to_vec(), true),
            Ok(Message::Close(c)) => {
                // The closing handshake: the client's code is echoed, then
                // the writer ends the TCP stream.
                let code = c.map_or(1000, |f| u16::from(f.code));
                let code = if matches!(code, 1005 | 1006 | 1015) { 1000 } else { code };
                self.close(code, "", ctx);
                return;
            }
            Ok(_) => return,
            Err(tungstenite::Error::Capacity(_)) => {
                self.respond(None, ts_in, Err(ErrorBody::new(ErrorCode::FrameTooLarge, "messages are at most 64 KiB")), ctx);
                self.close(1009, "message too large", ctx);
                return;
            }
            Err(_) => {
                ctx.stop();
                return;
            }
        };
        crate::telemetry::ws_in(bytes.len());
        match crate::telemetry::stage(crate::telemetry::STAGE_DECODE, || codec::decode_request(&bytes, binary)) {
            Ok(req) => self.handle_request(req, ts_in, ctx),
            Err(e) => self.respond(e.id, ts_in, Err(e.body), ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<PlaceAnswered> for Session {
    type Result = ();

    fn handle(&mut self, m: PlaceAnswered, ctx: &mut Context<Self>) {
        let Some((inst, n)) = self.placing.get_mut(&m.cl_id).map(|e| {
            e.1 -= 1;
            *e
        }) else {
            return;
        };
        if n == 0 {
            self.placing.remove(&m.cl_id);
        }
        // A logout in between cleared `placing`: the answer is not followed.
        let Some(order) = m.order else { return };
        self.placed.insert(order, inst);
        if self.placed.len() >= self.prune_at && !self.pruning {
            if let Some(a) = self.auth.as_ref() {
                self.prune_placed(a.account, ctx);
            }
        }
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, d: Deliver, ctx: &mut Context<Self>) {
        match d {
            Deliver::Response(r) => {
                crate::telemetry::order_acked(&r);
                self.send_response(r, ctx);
            }
            Deliver::Stream(e) => self.stream_message(e, ctx),
            Deliver::Stop => ctx.stop(),
            Deliver::PasswordSet { user } => {
                // A login made with the old password ends, as by `logout`.
                if self.auth.as_ref().is_some_and(|a| a.user == user) {
                    self.end_login(ctx);
                    let n = json!({"op": "notice", "code": "logged_out", "reason": "password_set"});
                    let f = codec::encode(self.enc, &n);
                    crate::telemetry::ws_out(crate::telemetry::CHANNEL_NOTICE, f.as_bytes().len());
                    self.send_frame(f, ctx);
                }
            }
            Deliver::Notice { code, in_ms, close } => {
                let mut n = json!({"op": "notice", "code": code});
                if let Some(ms) = in_ms {
                    n["in_ms"] = json!(ms);
                    n["reconnect"] = json!(true);
                }
                let f = codec::encode(self.enc, &n);
                crate::telemetry::ws_out(crate::telemetry::CHANNEL_NOTICE, f.as_bytes().len());
                self.send_frame(f, ctx);
                if let Some(c) = close {
                    self.close(c, code, ctx);
                }
            }
        }
    }
}

/// One subscription of this connection.
#[derive(Debug)]
pub struct StreamState {
    pub sub: Sub,
    /// Seq of the last message queued on this stream, by whoever queued it
    /// (the market-data actor for public streams).
    pub last: Arc<AtomicU64>,
}

impl StreamState {
    pub fn new(sub: Sub) -> Self {
        StreamState { sub, last: Arc::new(AtomicU64::new(0)) }
    }
}

/// How often held-back account-stream messages are retried while the client lags.
pub const LAG_FLUSH_EVERY: Duration = Duration::from_millis(20);

impl Session {
    /// Sends an account-stream message, or applies its `on_lag` policy.
    fn stream_message(&mut self, e: Arc<crate::reply::Encoded>, ctx: &mut Context<Self>) {
        let Some(f) = self.account_stream.as_mut().filter(|f| f.sub.key == e.key) else { return };
        match f.offer(&e) {
            Offered::Sent => {}
            Offered::Held => self.schedule_flush(ctx),
            Offered::Closed => ctx.stop(),
        }
    }

    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(LAG_FLUSH_EVERY, |act, ctx| {
                act.flush_scheduled = false;
                act.flush_lagged(ctx);
            });
        }
    }

    /// Sends what lag held back on the account stream once the client has
    /// caught up: a `gap`, then a fresh snapshot asked of the market-data actor.
    fn flush_lagged(&mut self, ctx: &mut Context<Self>) {
        let Some(f) = self.account_stream.as_mut() else { return };
        if f.flush() == Flushed::NeedSnapshot {
            let sub = f.sub.clone();
            let last = f.last.clone();
            let account = self.auth.as_ref().map(|a| a.account);
            self.shared.market.do_send(MdSubscribe { sub, resume: None, account, out: self.out.clone(), last });
        }
        if self.account_stream.as_ref().is_some_and(Follower::holds) {
            self.schedule_flush(ctx);
        }
    }
}
