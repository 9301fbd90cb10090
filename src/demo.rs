//! The demo market maker: a client of the exchange, over the WebSocket like
//! any other, that keeps the demo's books alive.
//!
//! Every `demo.interval_ms` it moves each instrument's mid price a few ticks
//! (a seeded random walk that reverts toward where it started, inside half
//! the price band), places [`LEVELS_PER_SIDE`] bids and asks around the mid
//! in one `order.batch`, then cancels the quotes of the refresh before. New
//! quotes go in first so the book always has both sides: a market-data
//! subscriber never sees the demo book empty between two refreshes. They
//! carry `stp: cancel_oldest`, so a new quote that would meet one of the old
//! ones (the mid moved by more than the spread) takes that old one off the
//! book instead of being refused. The first refresh of a connection starts
//! with an `order.cancel_all` for quotes left by an earlier process.
//! Trades need a second account (its own marketable orders would only meet
//! its own quotes, which self-trade prevention cancels), so when the
//! configuration has a user named [`FLOW_USER`], a second connection logged
//! in as that user sends a small market order now and then, and trades and
//! candles happen.
//!
//! Prices are whole ticks and quantities whole lots (`u64`); the wire
//! strings are made with the protocol's decimal functions. The market maker
//! logs in with cancel-on-disconnect, so its quotes leave the book with its
//! connection; it reconnects with backoff and stops with the server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bourse_protocol::codec::{self, SUBPROTOCOL_JSON};
use bourse_protocol::decimal;
use bourse_protocol::msg::{
    AuthArgs, AuthRes, BatchArgs, BatchRes, CancelAllArgs, CancelAllRes, CancelArgs, CancelRes,
    Cod, FillsArgs, FillsRes, InstrumentState, InstrumentView, InstrumentsRes, PasswordAuth,
    PlaceArgs, PlaceRes, Side, Stp,
};
use bourse_protocol::{Encoding, ErrorBody, ErrorCode, Frame, Op, ReqId, Request, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Config;

/// Bid levels, and ask levels, quoted per instrument.
pub const LEVELS_PER_SIDE: usize = 3;
const _: () = assert!(2 * LEVELS_PER_SIDE <= bourse_protocol::msg::BATCH_ORDERS_MAX);
/// Half the spread, and the distance between levels, in basis points of
/// the mid (at least one tick).
pub const SPREAD_BPS: u64 = 1;
/// The largest move of the mid per refresh, in basis points (at least one tick).
pub const STEP_BPS_MAX: u64 = 2;
/// One refresh in this many sends a flow order per instrument.
pub const FLOW_ONE_IN: u64 = 3;
/// Lots of the largest flow order, in minimum order sizes.
pub const FLOW_SIZE_MAX: u64 = 3;
/// The user whose connection sends the market orders that make trades.
pub const FLOW_USER: &str = "flow";
/// How long one request may wait for its answer before the connection is
/// given up and made again.
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 5_000;
/// Frames read while waiting for one answer (stream events, heartbeats)
/// before the connection is treated as broken.
pub const FRAMES_PER_ANSWER_MAX: usize = 10_000;
/// First and largest pause between reconnection attempts.
pub const RECONNECT_BACKOFF_MS_MIN: u64 = 100;
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 5_000;
/// The shortest refresh interval honoured, whatever the configuration says.
pub const INTERVAL_MS_MIN: u64 = 50;
/// Refreshes between two reloads of the instrument list (new listings,
/// halts, resumptions).
pub const INSTRUMENTS_RELOAD_ROUNDS: u64 = 120;

/// A small seeded generator (SplitMix64): enough for a demo's prices and
/// sizes, and reproducible from the seed in the log.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value");
        self.next_u64() % n
    }
}

/// One instrument as the market maker sees it: its grid and its mid, in ticks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Market {
    pub sym: String,
    /// Raw units (at `price_scale`) in one tick.
    pub tick_raw: u64,
    /// Raw units (at `qty_scale`) in one lot.
    pub lot_raw: u64,
    pub price_scale: u32,
    pub qty_scale: u32,
    /// The smallest order, in lots.
    pub min_lots: u64,
    pub band_pct: u32,
    /// Where the walk started; it reverts toward it.
    pub anchor: u64,
    pub mid: u64,
}

impl Market {
    /// The market of an instrument, starting at `start_px` (a price string:
    /// the last trade, else the configured reference price). `None` when
    /// there is no start price or the grid cannot be read.
    pub fn new(view: &InstrumentView, start_px: Option<&str>) -> Option<Market> {
        let tick_raw = decimal::parse(&view.tick, view.price_scale)
            .ok()
            .filter(|&t| t > 0)?;
        let lot_raw = decimal::parse(&view.lot, view.qty_scale)
            .ok()
            .filter(|&l| l > 0)?;
        let min_raw = decimal::parse(&view.min_qty, view.qty_scale).ok()?;
        let min_lots = min_raw.div_ceil(lot_raw).max(1);
        let mid = decimal::parse(start_px?, view.price_scale).ok()? / tick_raw;
        if mid < 2 {
            return None;
        }
        Some(Market {
            sym: view.sym.clone(),
            tick_raw,
            lot_raw,
            price_scale: view.price_scale,
            qty_scale: view.qty_scale,
            min_lots,
            band_pct: view.band_pct,
            anchor: mid,
            mid,
        })
    }

    fn px(&self, ticks: u64) -> String {
        decimal::format_on_grid(ticks, self.tick_raw, self.price_scale)
            .expect("prices near the mid fit in u64")
    }

    fn qty(&self, lots: u64) -> String {
        decimal::format_on_grid(lots, self.lot_raw, self.qty_scale).expect("demo sizes fit in u64")
    }
}

/// `bps` basis points of `v`, at least 1.
fn bps_of(v: u64, bps: u64) -> u64 {
    (v / 10_000).saturating_mul(bps).max(1)
}

/// The next mid: a step of up to [`STEP_BPS_MAX`] either way, always back
/// toward `anchor` once the mid is more than half the band away from it.
pub fn step_mid(mid: u64, anchor: u64, band_pct: u32, rng: &mut Rng) -> u64 {
    let step_max = bps_of(mid, STEP_BPS_MAX);
    let step = rng.below(step_max + 1);
    let up = rng.below(2) == 0;
    let drift_max = anchor / 200 * u64::from(band_pct);
    let up = if mid > anchor.saturating_add(drift_max) {
        false
    } else if mid < anchor.saturating_sub(drift_max) {
        true
    } else {
        up
    };
    if up {
        mid.saturating_add(step)
    } else {
        mid.saturating_sub(step).max(1)
    }
}

/// One order of the ladder, in ticks and lots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub side: Side,
    pub px: u64,
    pub lots: u64,
}

/// The bids and asks around `mid`: [`LEVELS_PER_SIDE`] per side, the best
/// ones [`SPREAD_BPS`] from the mid and [`SPREAD_BPS`] apart, deeper levels
/// larger. Bids that would be at or below zero are left out.
pub fn ladder(mid: u64, min_lots: u64, rng: &mut Rng) -> Vec<Quote> {
    let gap = bps_of(mid, SPREAD_BPS);
    let mut out = Vec::with_capacity(2 * LEVELS_PER_SIDE);
    for level in 0..LEVELS_PER_SIDE as u64 {
        let offset = gap + level * gap;
        let size = |rng: &mut Rng| min_lots * (1 + rng.below(4)) * (level + 1);
        if let Some(px) = mid.checked_sub(offset).filter(|&p| p > 0) {
            out.push(Quote {
                side: Side::Buy,
                px,
                lots: size(rng),
            });
        }
        out.push(Quote {
            side: Side::Sell,
            px: mid + offset,
            lots: size(rng),
        });
    }
    out
}

/// Runs the market maker against the server at `addr` until `stop` is cancelled.
pub async fn run(cfg: Config, addr: SocketAddr, stop: CancellationToken) {
    let seed = random_u64();
    let mut mm = MarketMaker {
        cfg,
        addr,
        rng: Rng::new(seed),
        markets: BTreeMap::new(),
        quoted: BTreeMap::new(),
        nonce: random_u64() as u32,
        orders_sent: 0,
        backoff_ms: RECONNECT_BACKOFF_MS_MIN,
    };
    info!(seed, user = %mm.cfg.demo.user, "demo market maker starting");
    loop {
        let outcome = tokio::select! {
            r = mm.session() => r,
            _ = stop.cancelled() => break,
        };
        let e = match outcome {
            Ok(never) => match never {},
            Err(e) => e,
        };
        warn!(error = %format!("{e:#}"), retry_ms = mm.backoff_ms, "demo market maker disconnected");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(mm.backoff_ms)) => {}
            _ = stop.cancelled() => break,
        }
        mm.backoff_ms = (mm.backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
    }
    info!("demo market maker stopped");
}

fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the OS random generator works");
    u64::from_le_bytes(b)
}

enum Never {}

struct MarketMaker {
    cfg: Config,
    addr: SocketAddr,
    rng: Rng,
    /// Kept across reconnections so the walk continues where it was.
    markets: BTreeMap<String, Market>,
    /// Per instrument, the ids of this connection's quotes still open after
    /// the last refresh: the next refresh cancels them once its own quotes
    /// are in. Empty at the start of a connection.
    quoted: BTreeMap<String, Vec<u64>>,
    /// Makes this process's `cl_id`s differ from an earlier run's.
    nonce: u32,
    orders_sent: u64,
    backoff_ms: u64,
}

impl MarketMaker {
    /// One connection's life: log in, learn the instruments, quote until
    /// something fails.
    async fn session(&mut self) -> anyhow::Result<Never> {
        let demo = &self.cfg.demo;
        // The last connection's quotes went with it (cancel-on-disconnect).
        self.quoted.clear();
        let mut quoter = Client::login(self.addr, &demo.user, &demo.password).await?;
        let mut flow = match self.cfg.users.iter().find(|u| u.user == FLOW_USER) {
            Some(u) => match Client::login(self.addr, &u.user, &u.password).await {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "demo flow account cannot log in: quoting without trades");
                    None
                }
            },
            None => None,
        };
        self.load_instruments(&mut quoter).await?;
        info!(
            instruments = self.markets.len(),
            flow = flow.is_some(),
            "demo market maker quoting"
        );

        let period = Duration::from_millis(self.cfg.demo.interval_ms.max(INTERVAL_MS_MIN));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut round: u64 = 0;
        loop {
            ticker.tick().await;
            round += 1;
            if round.is_multiple_of(INSTRUMENTS_RELOAD_ROUNDS) {
                self.load_instruments(&mut quoter).await?;
            }
            let syms: Vec<String> = self.markets.keys().cloned().collect();
            for sym in &syms {
                self.requote(&mut quoter, sym).await?;
            }
            if let Some(flow) = flow.as_mut() {
                for sym in &syms {
                    if self.rng.below(FLOW_ONE_IN) == 0 {
                        self.flow_order(flow, sym).await?;
                    }
                }
            }
            self.backoff_ms = RECONNECT_BACKOFF_MS_MIN;
        }
    }

    /// Quotes every trading instrument; keeps the mid of those already known.
    async fn load_instruments(&mut self, c: &mut Client) -> anyhow::Result<()> {
        let res: InstrumentsRes = c
            .call(Op::Instruments)
            .await?
            .map_err(refusal("instruments"))?;
        let mut markets = BTreeMap::new();
        for view in res
            .instruments
            .into_iter()
            .filter(|v| v.state == InstrumentState::Trading)
        {
            if let Some(m) = self.markets.remove(&view.sym) {
                markets.insert(view.sym.clone(), m);
                continue;
            }
            let last = c
                .call::<FillsRes>(Op::AccountFills(FillsArgs {
                    sym: Some(view.sym.clone()),
                    limit: Some(1),
                    before: None,
                }))
                .await?
                .ok()
                .and_then(|f| f.fills.into_iter().next().map(|f| f.px));
            let configured = self
                .cfg
                .instruments
                .iter()
                .find(|i| i.sym == view.sym)
                .and_then(|i| i.ref_px.clone());
            match Market::new(&view, last.as_deref().or(configured.as_deref())) {
                Some(m) => {
                    info!(sym = %m.sym, mid = %m.px(m.mid), "demo market maker starts quoting");
                    markets.insert(view.sym.clone(), m);
                }
                None => {
                    debug!(sym = %view.sym, "no reference price: not quoted by the demo market maker")
                }
            }
        }
        self.markets = markets;
        Ok(())
    }

    fn next_cl_id(&mut self, prefix: &str) -> String {
        self.orders_sent += 1;
        format!("{prefix}-{:08x}-{}", self.nonce, self.orders_sent)
    }

    async fn requote(&mut self, c: &mut Client, sym: &str) -> anyhow::Result<()> {
        let Some(m) = self.markets.get_mut(sym) else {
            return Ok(());
        };
        m.mid = step_mid(m.mid, m.anchor, m.band_pct, &mut self.rng);
        let m = m.clone();
        let quotes = ladder(m.mid, m.min_lots, &mut self.rng);

        let old = self.quoted.remove(sym).unwrap_or_default();
        if old.is_empty() {
            // The connection's first refresh, or the last one placed
            // nothing: sweep whatever an earlier process left.
            let cancel = CancelAllArgs {
                sym: Some(sym.to_owned()),
                side: None,
            };
            if let Err(e) = c.call::<CancelAllRes>(Op::OrderCancelAll(cancel)).await? {
                debug!(sym, code = ?e.code, msg = %e.msg, "demo cancel-all refused; skipping this refresh");
                return Ok(());
            }
        }
        let orders = quotes
            .iter()
            .map(|q| PlaceArgs {
                stp: Some(Stp::CancelOldest),
                ..PlaceArgs::limit(
                    &self.next_cl_id("mm"),
                    sym,
                    q.side,
                    &m.px(q.px),
                    &m.qty(q.lots),
                )
            })
            .collect();
        let mut open = Vec::with_capacity(quotes.len() + old.len());
        match c
            .call::<BatchRes>(Op::OrderBatch(BatchArgs { orders }))
            .await?
        {
            Ok(res) => {
                if let Some(e) = res.results.iter().find_map(|r| r.err.as_ref()) {
                    debug!(sym, code = ?e.code, msg = %e.msg, "some demo quotes were refused");
                }
                open.extend(
                    res.results
                        .iter()
                        .filter_map(|r| r.res.as_ref())
                        .filter(|r| r.status.is_open())
                        .map(|r| r.order_id),
                );
            }
            Err(e) => debug!(sym, code = ?e.code, msg = %e.msg, "demo quotes refused"),
        }
        let cancels = old
            .iter()
            .map(|&id| {
                Op::OrderCancel(CancelArgs {
                    sym: sym.to_owned(),
                    order_id: Some(id),
                    cl_id: None,
                })
            })
            .collect();
        for (id, answer) in old.iter().zip(c.call_all::<CancelRes>(cancels).await?) {
            match answer {
                Ok(_) => {}
                // Filled by the flow, or taken off by a new quote's
                // self-trade prevention.
                Err(e) if e.code == ErrorCode::UnknownOrder => {}
                // Still open (a busy or halted book): cancelled next time.
                Err(e) => {
                    debug!(sym, order_id = id, code = ?e.code, "demo cancel refused; trying again next refresh");
                    open.push(*id);
                }
            }
        }
        self.quoted.insert(sym.to_owned(), open);
        Ok(())
    }

    async fn flow_order(&mut self, c: &mut Client, sym: &str) -> anyhow::Result<()> {
        let Some(m) = self.markets.get(sym).cloned() else {
            return Ok(());
        };
        let side = if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let lots = m.min_lots * (1 + self.rng.below(FLOW_SIZE_MAX));
        let order = PlaceArgs::market(&self.next_cl_id("flow"), sym, side, &m.qty(lots));
        if let Err(e) = c.call::<PlaceRes>(Op::OrderPlace(order)).await? {
            debug!(sym, code = ?e.code, msg = %e.msg, "demo flow order refused");
        }
        Ok(())
    }
}

fn refusal(what: &'static str) -> impl Fn(ErrorBody) -> anyhow::Error {
    move |e| anyhow!("{what} refused: {:?} {}", e.code, e.msg)
}

/// A WebSocket connection speaking JSON, one request at a time.
struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Client {
    /// Connects and logs in as `user`, with cancel-on-disconnect per connection.
    async fn login(addr: SocketAddr, user: &str, password: &str) -> anyhow::Result<Client> {
        let mut req = format!("ws://{addr}/ws").into_client_request()?;
        req.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL_JSON),
        );
        let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS_MAX);
        let connecting = tokio_tungstenite::connect_async_with_config(
            req,
            Some(crate::http::ws_config()),
            false,
        );
        let (ws, _) = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| anyhow!("no WebSocket handshake within {REQUEST_TIMEOUT_MS_MAX} ms"))?
            .with_context(|| format!("connecting to {addr}"))?;
        let mut c = Client { ws, next_id: 1 };
        let auth = AuthArgs::Password(PasswordAuth {
            user: user.to_owned(),
            password: password.to_owned(),
            otp: None,
            cod: Some(Cod::Connection),
        });
        c.call::<AuthRes>(Op::Auth(auth))
            .await?
            .map_err(|e| anyhow!("auth as {user}: {:?} {}", e.code, e.msg))?;
        Ok(c)
    }

    /// Sends one request and waits for its answer, passing over stream
    /// events. The outer error is the connection's; the inner one is the
    /// exchange's refusal.
    async fn call<R: DeserializeOwned>(&mut self, op: Op) -> anyhow::Result<Result<R, ErrorBody>> {
        let mut answers = self.call_all(vec![op]).await?;
        Ok(answers.pop().expect("one answer for one request"))
    }

    /// Sends the requests back to back, then waits for all their answers:
    /// one round trip for them all. The answers come in request order.
    async fn call_all<R: DeserializeOwned>(
        &mut self,
        ops: Vec<Op>,
    ) -> anyhow::Result<Vec<Result<R, ErrorBody>>> {
        let first = self.next_id;
        let n = ops.len();
        for op in ops {
            let id = self.next_id;
            self.next_id += 1;
            let msg = match codec::encode(Encoding::Json, &Request::new(id, op)) {
                Frame::Text(t) => Message::text(t),
                Frame::Binary(b) => Message::binary(b),
            };
            self.ws.feed(msg).await.context("sending a request")?;
        }
        self.ws.flush().await.context("sending a request")?;
        let mut answers: Vec<Option<Result<R, ErrorBody>>> = (0..n).map(|_| None).collect();
        let mut missing = n;
        let deadline = Instant::now() + Duration::from_millis(REQUEST_TIMEOUT_MS_MAX);
        for _ in 0..FRAMES_PER_ANSWER_MAX * n.max(1) {
            if missing == 0 {
                break;
            }
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("no answer within {REQUEST_TIMEOUT_MS_MAX} ms"))?;
            let msg = next
                .ok_or_else(|| anyhow!("connection closed"))?
                .context("reading")?;
            let parsed: ServerMessage = match &msg {
                Message::Text(t) => codec::decode(t.as_bytes(), false)?,
                Message::Binary(b) => codec::decode(b, true)?,
                Message::Close(f) => bail!("closed by the server: {f:?}"),
                _ => continue,
            };
            match parsed {
                ServerMessage::Response(r) => {
                    let Some(ReqId::Num(id)) = r.id else { continue };
                    let Some(slot) = id
                        .checked_sub(first)
                        .and_then(|i| answers.get_mut(usize::try_from(i).ok()?))
                    else {
                        continue;
                    };
                    if slot.is_none() {
                        missing -= 1;
                    }
                    *slot = Some(r.res_as::<R>());
                }
                ServerMessage::Notice(n) => debug!(code = ?n.code, "notice"),
                _ => {}
            }
        }
        if missing > 0 {
            bail!("no answer among {FRAMES_PER_ANSWER_MAX} frames a request");
        }
        Ok(answers.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_protocol::msg::InstrumentState;

    fn view(
        tick: &str,
        lot: &str,
        min_qty: &str,
        price_scale: u32,
        qty_scale: u32,
    ) -> InstrumentView {
        InstrumentView {
            sym: "BTC-USD".into(),
            base: "BTC".into(),
            quote: "USD".into(),
            tick: tick.into(),
            lot: lot.into(),
            min_qty: min_qty.into(),
            price_scale,
            qty_scale,
            band_pct: 10,
            maker_fee_bps: 5,
            taker_fee_bps: 10,
            state: InstrumentState::Trading,
        }
    }

    #[test]
    fn the_generator_is_reproducible() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..5)
            .scan(Rng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn market_reads_the_grid() {
        let m = Market::new(&view("0.5", "0.02", "0.04", 1, 2), Some("60000.5")).unwrap();
        assert_eq!((m.tick_raw, m.lot_raw, m.min_lots), (5, 2, 2));
        assert_eq!(m.mid, 120_001);
        assert_eq!(m.px(m.mid), "60000.5");
        assert_eq!(m.qty(3), "0.06");
        // A start price between ticks rounds down onto the grid.
        assert_eq!(
            Market::new(&view("0.5", "0.02", "0.02", 1, 2), Some("60000.7"))
                .unwrap()
                .mid,
            120_001
        );
        assert!(Market::new(&view("0.5", "0.02", "0.02", 1, 2), None).is_none());
        assert!(Market::new(&view("0.5", "0.02", "0.02", 1, 2), Some("1.234")).is_none());
    }

    #[test]
    fn the_walk_stays_inside_half_the_band() {
        let mut rng = Rng::new(42);
        let anchor = 60_000;
        let mut mid = anchor;
        let (mut lo, mut hi) = (mid, mid);
        for _ in 0..200_000 {
            let next = step_mid(mid, anchor, 10, &mut rng);
            assert!(next.abs_diff(mid) <= bps_of(mid, STEP_BPS_MAX));
            mid = next;
            lo = lo.min(mid);
            hi = hi.max(mid);
        }
        let drift_max = anchor / 200 * 10;
        let step_max = bps_of(hi, STEP_BPS_MAX);
        assert!(hi <= anchor + drift_max + step_max, "{hi}");
        assert!(lo + drift_max + step_max >= anchor, "{lo}");
        assert!(
            hi > anchor + 100 && lo < anchor - 100,
            "the walk moves: {lo}..{hi}"
        );
    }

    #[test]
    fn the_ladder_brackets_the_mid() {
        let mut rng = Rng::new(1);
        let q = ladder(60_000, 2, &mut rng);
        assert_eq!(q.len(), 2 * LEVELS_PER_SIDE);
        let bids: Vec<&Quote> = q.iter().filter(|q| q.side == Side::Buy).collect();
        let asks: Vec<&Quote> = q.iter().filter(|q| q.side == Side::Sell).collect();
        assert_eq!(
            bids.iter().map(|q| q.px).collect::<Vec<_>>(),
            vec![59_994, 59_988, 59_982]
        );
        assert_eq!(
            asks.iter().map(|q| q.px).collect::<Vec<_>>(),
            vec![60_006, 60_012, 60_018]
        );
        assert!(q.iter().all(|q| q.lots >= 2 && q.lots % 2 == 0));
        // Tiny prices keep one tick of spread and drop bids at zero.
        let q = ladder(2, 1, &mut rng);
        assert!(q.iter().filter(|q| q.side == Side::Buy).all(|q| q.px >= 1));
        assert_eq!(q.iter().filter(|q| q.side == Side::Buy).count(), 1);
        assert_eq!(
            q.iter()
                .filter(|q| q.side == Side::Sell)
                .map(|q| q.px)
                .collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
    }
}
