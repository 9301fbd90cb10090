//! The `crowd` scenario: a web shop's load test, on an exchange. U users
//! arrive evenly over a ramp and stay; each opens a connection, watches a
//! market (`book.l1` and `trades` of one instrument), and every so often
//! (exponential think time) does something: opens or closes the order
//! book, reloads the instrument list, switches market, or (the share of
//! users who trade, logged in with an API key) reads balances, orders and
//! fills, places an order away from the mid or cancels one. A background
//! order flow keeps the market moving. The report is requests per second,
//! request latency (p50, p99), and failures: connections refused or lost,
//! requests unanswered in time, error answers by code.

use crate::flow::{self, FlowOpts, FlowReport, Pace, Rng};
use crate::machine::{CpuMeter, ThreadCpu, ThreadMeter};
use crate::setup::{self, Account, InstrumentInfo};
use crate::stats::{Counts, Latency, LatencySummary};
use crate::target::Target;
use crate::wire::{self, Ws};
use bourse_protocol::msg::{
    CancelArgs, Channel, Cod, Empty, FillsArgs, OrdersArgs, PlaceArgs, Side, SubscribeArgs,
    UnsubscribeArgs,
};
use bourse_protocol::Encoding;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// How long a user waits for an answer before counting a failure and
/// leaving.
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 10_000;
/// Open orders one trading user keeps; past it, it cancels.
pub const USER_OPEN_ORDERS_MAX: usize = 5;
/// How far from the mid a user's order rests, in basis points (it rarely
/// trades, as most retail limit orders).
pub const USER_ORDER_BPS: u64 = 200;
/// Books a watcher opens at depth 10, the size of a trading page's book.
pub const BOOK_DEPTH: u32 = 10;

/// What the `crowd` scenario does.
#[derive(Debug, Clone)]
pub struct CrowdOpts {
    pub users: usize,
    /// Users arrive evenly over this time.
    pub ramp: Duration,
    /// How long all users stay after the ramp.
    pub hold: Duration,
    /// Mean think time between two actions of one user.
    pub think_mean: Duration,
    /// Percent of users who log in and trade.
    pub traders_pct: u32,
    /// Accounts the trading users share.
    pub trader_accounts: usize,
    /// Background order flow, orders/s (0: none).
    pub flow_rate: u64,
    pub flow_connections: usize,
    pub encoding: Encoding,
    pub seed: u64,
    pub mids: BTreeMap<String, String>,
}

impl Default for CrowdOpts {
    fn default() -> Self {
        CrowdOpts {
            users: 1_000,
            ramp: Duration::from_secs(30),
            hold: Duration::from_secs(30),
            think_mean: Duration::from_secs(2),
            traders_pct: 10,
            trader_accounts: 20,
            flow_rate: 200,
            flow_connections: 2,
            encoding: Encoding::MsgPack,
            seed: 1,
            mids: BTreeMap::new(),
        }
    }
}

/// The result of a `crowd` run.
#[derive(Debug, Clone, Serialize)]
pub struct CrowdReport {
    pub users: usize,
    pub traders_pct: u32,
    pub think_mean_ms: u64,
    pub ramp_s: f64,
    pub hold_s: f64,
    /// Users who connected.
    pub connected: usize,
    pub requests: u64,
    /// Answered requests per second over the whole run.
    pub requests_per_s: f64,
    /// Answered requests per second while every user was on.
    pub requests_per_s_hold: f64,
    pub latency: LatencySummary,
    pub latency_by_op: BTreeMap<String, LatencySummary>,
    pub connect: LatencySummary,
    /// Connection failures, timeouts, lost connections (by cause).
    pub failures: Counts,
    /// Error answers by code (an order refusal is one, too).
    pub errors: Counts,
    /// Market-data messages the users received.
    pub events: u64,
    pub flow: Option<FlowReport>,
    pub server_cpu_pct: Option<f64>,
    pub client_cpu_pct: Option<f64>,
    /// The whole machine's CPU over the same time (see [`crate::flow::FlowReport`]).
    pub machine_cpu_pct: Option<f64>,
    /// The server's busiest threads over the same time.
    pub server_threads: Vec<ThreadCpu>,
}

impl CrowdReport {
    pub fn line(&self) -> String {
        format!(
            "crowd: users={} connected={} traders={}% think={}ms ramp={:.0}s hold={:.0}s | {:.0} req/s ({:.0} req/s at full crowd) latency {} | failures={} ({}) errors: {} | events={} | cpu: server={} bench={} machine={} | server threads: {}",
            self.users,
            self.connected,
            self.traders_pct,
            self.think_mean_ms,
            self.ramp_s,
            self.hold_s,
            self.requests_per_s,
            self.requests_per_s_hold,
            self.latency.line(),
            self.failures.total(),
            self.failures.line(),
            self.errors.line(),
            self.events,
            crate::orders::pct(self.server_cpu_pct),
            crate::orders::pct(self.client_cpu_pct),
            crate::orders::pct(self.machine_cpu_pct),
            crate::machine::threads_line(&self.server_threads),
        )
    }
}

/// What one user did.
#[derive(Default)]
struct UserStats {
    connected: bool,
    connect_us: Option<u64>,
    requests: u64,
    requests_hold: u64,
    latency: Latency,
    by_op: BTreeMap<&'static str, Latency>,
    failures: Counts,
    errors: Counts,
    events: u64,
}

/// The run's shared facts.
struct Crowd {
    url: String,
    enc: Encoding,
    start: tokio::time::Instant,
    hold_start: tokio::time::Instant,
    end: tokio::time::Instant,
    think_mean_ms: f64,
    instruments: Vec<InstrumentInfo>,
    accounts: Vec<Account>,
    tag: String,
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, opts: &CrowdOpts) -> anyhow::Result<CrowdReport> {
    let traders = opts.traders_pct > 0;
    let accounts_n = if traders || opts.flow_rate > 0 {
        opts.trader_accounts.max(opts.flow_connections).max(1)
    } else {
        0
    };
    let prep = setup::prepare(target, "crowd-", accounts_n, &[], 0, &opts.mids).await?;
    let now = tokio::time::Instant::now();
    let crowd = Arc::new(Crowd {
        url: target.ws_url.clone(),
        enc: opts.encoding,
        start: now,
        hold_start: now + opts.ramp,
        end: now + opts.ramp + opts.hold,
        think_mean_ms: opts.think_mean.as_secs_f64() * 1e3,
        instruments: prep.instruments.clone(),
        accounts: prep.accounts.clone(),
        tag: format!("c{}", crate::machine::now_us() % 1_000_000_000),
    });
    let server_cpu = target.server_pid.map(CpuMeter::start);
    let client_cpu = CpuMeter::start(std::process::id());
    let machine_cpu = CpuMeter::machine();
    let threads = target.server_pid.map(ThreadMeter::start);
    let flow_task = (opts.flow_rate > 0).then(|| {
        let url = target.ws_url.clone();
        let accounts = prep.accounts.clone();
        let instruments = prep.instruments.clone();
        let fo = FlowOpts {
            connections: opts.flow_connections.max(1),
            pace: Pace::Open {
                rate: opts.flow_rate,
                poisson: true,
            },
            duration: opts.ramp + opts.hold,
            warmup: Duration::ZERO,
            encoding: opts.encoding,
            seed: opts.seed,
            ..FlowOpts::default()
        };
        tokio::spawn(async move { flow::run(&url, &accounts, &instruments, &fo, None).await })
    });
    let mut users = Vec::with_capacity(opts.users);
    let mut rng = Rng::new(opts.seed ^ 0xc0ffee);
    for i in 0..opts.users {
        let arrive = crowd.start + opts.ramp.mul_f64(i as f64 / opts.users.max(1) as f64);
        let trader = traders && rng.below(100) < u64::from(opts.traders_pct);
        let crowd = crowd.clone();
        let seed = rng.next_u64();
        users.push(tokio::spawn(async move {
            tokio::time::sleep_until(arrive).await;
            user(&crowd, i, trader, seed).await
        }));
    }
    let mut all = UserStats::default();
    let mut connect = Latency::new();
    let mut connected = 0;
    for u in users {
        let u = u.await?;
        connected += usize::from(u.connected);
        if let Some(c) = u.connect_us {
            connect.record_us(c);
        }
        all.requests += u.requests;
        all.requests_hold += u.requests_hold;
        all.latency.merge(&u.latency);
        for (op, h) in &u.by_op {
            all.by_op.entry(op).or_default().merge(h);
        }
        all.failures.merge(&u.failures);
        all.errors.merge(&u.errors);
        all.events += u.events;
    }
    let server_cpu_pct = server_cpu.and_then(|m| m.percent());
    let client_cpu_pct = client_cpu.percent();
    let machine_cpu_pct = machine_cpu.percent();
    let server_threads = threads.map(|t| t.top()).unwrap_or_default();
    let flow = match flow_task {
        Some(t) => Some(t.await??),
        None => None,
    };
    let total_s = (opts.ramp + opts.hold).as_secs_f64();
    Ok(CrowdReport {
        users: opts.users,
        traders_pct: opts.traders_pct,
        think_mean_ms: u64::try_from(opts.think_mean.as_millis()).unwrap_or(u64::MAX),
        ramp_s: opts.ramp.as_secs_f64(),
        hold_s: opts.hold.as_secs_f64(),
        connected,
        requests: all.requests,
        requests_per_s: all.requests as f64 / total_s.max(1e-9),
        requests_per_s_hold: all.requests_hold as f64 / opts.hold.as_secs_f64().max(1e-9),
        latency: all.latency.summary(),
        latency_by_op: all
            .by_op
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.summary()))
            .collect(),
        connect: connect.summary(),
        failures: all.failures,
        errors: all.errors,
        events: all.events,
        flow,
        server_cpu_pct,
        client_cpu_pct,
        machine_cpu_pct,
        server_threads,
    })
}

/// One user's connection and what it has open.
struct Session<'a> {
    crowd: &'a Crowd,
    ws: Ws,
    next_id: u64,
    st: UserStats,
    rng: Rng,
    /// The instrument watched.
    sym: usize,
    book_open: bool,
    /// `cl_id`s of this user's resting orders.
    orders: Vec<(usize, String)>,
    placed: u64,
    user: usize,
}

/// Why a user stopped early.
struct Gone(String);

impl Session<'_> {
    /// Sends one request and reads until its answer (stream events meanwhile
    /// are counted), timing it.
    async fn request<A: Serialize>(
        &mut self,
        name: &'static str,
        op: &str,
        args: &A,
    ) -> Result<bool, Gone> {
        self.next_id += 1;
        let id = self.next_id;
        let t = Instant::now();
        self.ws
            .send(wire::request(self.crowd.enc, op, id, args))
            .await
            .map_err(|e| Gone(format!("send: {e}")))?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(REQUEST_TIMEOUT_MS_MAX);
        loop {
            let m = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => {
                    return Err(Gone(format!(
                        "{op}: no answer in {REQUEST_TIMEOUT_MS_MAX} ms"
                    )))
                }
                Ok(m) => m,
            };
            let m = lost(m)?;
            let Some((bytes, binary)) = wire::payload(&m) else {
                continue;
            };
            let Ok(inc) = wire::decode_incoming(bytes, binary) else {
                continue;
            };
            if !inc.is_response() {
                self.st.events += 1;
                continue;
            }
            if inc.response_id() != Some(id) {
                continue;
            }
            let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.st.requests += 1;
            if tokio::time::Instant::now() >= self.crowd.hold_start {
                self.st.requests_hold += 1;
            }
            self.st.latency.record_us(us);
            self.st.by_op.entry(name).or_default().record_us(us);
            if inc.ok == Some(true) {
                return Ok(true);
            }
            let code = inc
                .err
                .map_or_else(|| "no_error_code".to_owned(), |e| e.code.into_owned());
            self.st.errors.add(&code, 1);
            return Ok(false);
        }
    }

    /// Reads market data until `until`.
    async fn watch(&mut self, until: tokio::time::Instant) -> Result<(), Gone> {
        loop {
            match tokio::time::timeout_at(until, self.ws.next()).await {
                Err(_) => return Ok(()),
                Ok(m) => {
                    lost(m)?;
                    self.st.events += 1;
                }
            }
        }
    }

    fn sub(&self, ch: Channel, sym: usize) -> SubscribeArgs {
        SubscribeArgs {
            ch,
            sym: vec![self.crowd.instruments[sym].sym.clone()],
            depth: (ch == Channel::BookL2).then_some(BOOK_DEPTH),
            interval: None,
            cksum: false,
            on_lag: None,
            resume: None,
        }
    }

    fn unsub(&self, ch: Channel, sym: usize) -> UnsubscribeArgs {
        UnsubscribeArgs {
            ch,
            sym: vec![self.crowd.instruments[sym].sym.clone()],
            depth: (ch == Channel::BookL2).then_some(BOOK_DEPTH),
            interval: None,
        }
    }

    /// A viewer's action.
    async fn look(&mut self) -> Result<(), Gone> {
        match self.rng.below(100) {
            0..=34 => {
                if self.book_open {
                    let a = self.unsub(Channel::BookL2, self.sym);
                    self.request("book.close", "unsubscribe", &a).await?;
                } else {
                    let a = self.sub(Channel::BookL2, self.sym);
                    self.request("book.open", "subscribe", &a).await?;
                }
                self.book_open = !self.book_open;
            }
            35..=59 => {
                self.request("instruments", "instruments", &Empty {})
                    .await?;
            }
            60..=79 => {
                let n = self.crowd.instruments.len() as u64;
                let next = self.rng.below(n) as usize;
                for ch in [Channel::BookL1, Channel::Trades] {
                    let a = self.unsub(ch, self.sym);
                    self.request("market.leave", "unsubscribe", &a).await?;
                    let a = self.sub(ch, next);
                    self.request("market.watch", "subscribe", &a).await?;
                }
                if self.book_open {
                    let a = self.unsub(Channel::BookL2, self.sym);
                    self.request("book.close", "unsubscribe", &a).await?;
                    self.book_open = false;
                }
                self.sym = next;
            }
            _ => {
                self.request("ping", "ping", &Empty {}).await?;
            }
        }
        Ok(())
    }

    /// A trading user's action.
    async fn trade(&mut self) -> Result<(), Gone> {
        match self.rng.below(100) {
            0..=24 => {
                self.request("account.balances", "account.balances", &Empty {})
                    .await?;
            }
            25..=39 => {
                self.request(
                    "account.orders",
                    "account.orders",
                    &OrdersArgs { sym: None },
                )
                .await?;
            }
            40..=49 => {
                let a = FillsArgs {
                    sym: None,
                    limit: Some(20),
                    before: None,
                };
                self.request("account.fills", "account.fills", &a).await?;
            }
            r => {
                if r >= 85 || self.orders.len() >= USER_OPEN_ORDERS_MAX {
                    if let Some((inst, cl_id)) = self.orders.pop() {
                        let a = CancelArgs {
                            sym: self.crowd.instruments[inst].sym.clone(),
                            order_id: None,
                            cl_id: Some(cl_id),
                        };
                        self.request("order.cancel", "order.cancel", &a).await?;
                        return Ok(());
                    }
                }
                let i = self.sym;
                let inst = &self.crowd.instruments[i];
                let off = inst.bps_ticks(USER_ORDER_BPS) + self.rng.below(inst.bps_ticks(100));
                let (side, px) = if self.rng.below(2) == 0 {
                    (Side::Buy, inst.mid_ticks.saturating_sub(off).max(1))
                } else {
                    (Side::Sell, inst.mid_ticks + off)
                };
                self.placed += 1;
                let cl_id = format!("{}u{:x}x{:x}", self.crowd.tag, self.user, self.placed);
                let a = PlaceArgs::limit(
                    &cl_id,
                    &inst.sym,
                    side,
                    &inst.px(px),
                    &inst.qty(inst.min_qty_lots),
                );
                if self.request("order.place", "order.place", &a).await? {
                    self.orders.push((i, cl_id));
                }
            }
        }
        Ok(())
    }
}

/// A message read, or why the connection is gone.
fn lost(
    m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Message, Gone> {
    match m {
        None => Err(Gone("closed by the server".into())),
        Some(Err(e)) => Err(Gone(format!("receive: {e}"))),
        Some(Ok(Message::Close(c))) => Err(Gone(format!("closed by the server: {c:?}"))),
        Some(Ok(m)) => Ok(m),
    }
}

async fn user(crowd: &Crowd, i: usize, trader: bool, seed: u64) -> UserStats {
    let mut st = UserStats::default();
    let t = Instant::now();
    let ws = match wire::connect(&crowd.url, crowd.enc, true).await {
        Ok(ws) => ws,
        Err(e) => {
            st.failures.add(&format!("connect: {e:#}"), 1);
            return st;
        }
    };
    st.connected = true;
    st.connect_us = Some(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
    let mut rng = Rng::new(seed);
    let sym = rng.below(crowd.instruments.len() as u64) as usize;
    let mut s = Session {
        crowd,
        ws,
        next_id: 0,
        st,
        rng,
        sym,
        book_open: false,
        orders: Vec::new(),
        placed: 0,
        user: i,
    };
    if let Err(Gone(why)) = session(&mut s, trader).await {
        s.st.failures.add(&why, 1);
    }
    let _ = s.ws.close(None).await;
    s.st
}

async fn session(s: &mut Session<'_>, trader: bool) -> Result<(), Gone> {
    let trader = trader && !s.crowd.accounts.is_empty();
    if trader {
        let account = &s.crowd.accounts[s.user % s.crowd.accounts.len()];
        let a = account.auth_args(Cod::Connection);
        if !s.request("auth", "auth", &a).await? {
            // Its code is counted with the errors; without a login the
            // user's trading requests would only be auth_required.
            return Err(Gone("auth refused".into()));
        }
    }
    for ch in [Channel::BookL1, Channel::Trades] {
        let a = s.sub(ch, s.sym);
        s.request("market.watch", "subscribe", &a).await?;
    }
    loop {
        let think = Duration::from_secs_f64(s.rng.exp(s.crowd.think_mean_ms) / 1e3);
        let until = tokio::time::Instant::now() + think;
        if until >= s.crowd.end {
            s.watch(s.crowd.end).await?;
            return Ok(());
        }
        s.watch(until).await?;
        if trader && s.rng.below(2) == 0 {
            s.trade().await?;
        } else {
            s.look().await?;
        }
    }
}
