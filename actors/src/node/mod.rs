//! The node: starts and wires the actors (ledger, instruments, journal,
//! market data), recovers state from the event log or bootstraps it from the
//! configuration, and hands WebSocket connections to session actors.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use actix::prelude::*;
use bourse_engine::spec::{AssetSpec, InstrumentSpec};
use bourse_engine::{AccountId, AssetId, Command, EventBody, Exchange};
use bourse_protocol::Encoding;
use dashmap::DashMap;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::auth::{self, limits::AccountLimiter, Directory, NonceCache, PasswordParams, RateQuotas, TokenStore};
use crate::config::Config;
use crate::durability::{self, snapshotter::Snapshotter, SharedLog};
use crate::journal::{self, JournalHandle, Publisher};
use crate::ledger::{EventClock, LedgerActor, Shape, Submit};
use crate::market::{Committed, MarketData};
use crate::reply::{Deliver, Responder};
use crate::session::queue::Queue;
use crate::session::{writer, Outbox, Session};
use crate::storage::log::{EventLog, MemLog};
use crate::wire;

pub mod setup;

/// Arbiters (threads) the instrument actors are spread over.
pub const INSTRUMENT_ARBITERS: usize = 2;
/// Session tokens live this long: 24 h.
pub const TOKEN_TTL_US: u64 = 24 * 3600 * 1_000_000;
/// Session tokens remembered at once.
pub const TOKENS_MAX: usize = 1_000_000;
/// Nonces remembered for replay protection.
pub const NONCES_MAX: usize = 1_000_000;

/// Lookups many actors read; nothing here decides.
pub struct Shared {
    pub cfg: Config,
    pub instruments: DashMap<String, InstrumentSpec>,
    pub assets: DashMap<String, AssetSpec>,
    pub asset_scales: DashMap<AssetId, u32>,
    pub accounts: DashMap<String, AccountId>,
    pub open_connections: DashMap<AccountId, i64>,
    pub directory: Directory,
    pub tokens: TokenStore,
    pub nonces: NonceCache,
    pub account_limiter: AccountLimiter,
    pub password_params: PasswordParams,
    pub connections: AtomicUsize,
    pub shutting_down: AtomicBool,
    pub ready: AtomicBool,
    pub ledger: OnceLock<Addr<LedgerActor>>,
    pub market: Addr<MarketData>,
    /// Commits sent to `market` and not yet handled (its mailbox depth).
    pub market_waiting: Arc<AtomicUsize>,
    pub journal_stopped: Arc<AtomicBool>,
    /// Every open session, for notices to all (shutdown).
    pub sessions: DashMap<usize, actix::Recipient<Deliver>>,
    pub next_session: AtomicUsize,
    /// The epoch of every market-data and account stream: persisted in the
    /// data directory, bumped by `bourse restore` (1 when not durable).
    pub epoch: u64,
    /// Every account's `order.cancel_after` switch.
    pub cancel_after: crate::session::cancel_after::Switches,
    /// The slow password hashes, a few at a time.
    pub password_checks: Arc<crate::session::hashing::PasswordChecks>,
}

impl Shared {
    pub fn ledger(&self) -> &Addr<LedgerActor> {
        self.ledger.get().expect("ledger started")
    }
    pub fn stopping(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire) || self.journal_stopped.load(Ordering::Acquire)
    }
    pub fn asset_scale(&self, a: AssetId) -> u32 {
        self.asset_scales.get(&a).map_or(0, |s| *s)
    }
    /// Counts an account's authenticated connections; returns how many remain.
    pub fn connected(&self, account: AccountId, delta: i64) -> i64 {
        let mut e = self.open_connections.entry(account).or_insert(0);
        *e += delta;
        *e
    }
    pub fn hash_password(&self, pw: &str) -> String {
        auth::password::hash_password_with(pw, &self.password_params)
    }

    /// Keeps the lookups in step with committed events.
    fn learn(&self, body: &EventBody, ledger_names: &dyn Fn(AccountId) -> Option<String>) {
        match body {
            EventBody::AssetCreated { asset, .. } => {
                self.assets.insert(asset.name.clone(), asset.clone());
                self.asset_scales.insert(asset.id, asset.scale);
            }
            EventBody::InstrumentCreated { spec, .. } => {
                self.instruments.insert(spec.sym.clone(), (**spec).clone());
            }
            EventBody::InstrumentStateSet { inst, state, .. } => {
                for mut s in self.instruments.iter_mut() {
                    if s.id == *inst {
                        s.state = *state;
                    }
                }
            }
            EventBody::UserCreated { account, user, role, password_hash, .. } => {
                self.accounts.insert(user.clone(), *account);
                let _ = self.directory.add_user(user, wire::role_out(*role), password_hash);
            }
            EventBody::PasswordSet { user, password_hash, .. } => {
                // The old password's logins end with it: tokens, and the
                // connections logged in with them.
                let _ = self.directory.set_password(user, password_hash);
                self.tokens.revoke_user(user);
                for s in self.sessions.iter() {
                    s.do_send(Deliver::PasswordSet { user: user.clone() });
                }
            }
            EventBody::ApiKeyCreated { account, key, credential, .. } => {
                if let Some(user) = ledger_names(*account) {
                    let c = match credential {
                        bourse_engine::Credential::Hmac { secret } => auth::Credential::Hmac { secret: secret.clone() },
                        bourse_engine::Credential::Ed25519 { public_key } => {
                            auth::Credential::Ed25519 { public_key_b64: public_key.clone() }
                        }
                    };
                    let _ = self.directory.add_api_key(&user, key, c);
                }
            }
            _ => {}
        }
    }
}

/// Publishes committed events: lookups first, then market data.
struct NodePublisher {
    shared: Arc<Shared>,
    names: DashMap<AccountId, String>,
}

impl Publisher for NodePublisher {
    fn learn(&mut self, events: &[bourse_engine::Event]) {
        for e in events {
            if let EventBody::UserCreated { account, user, .. } = &e.body {
                self.names.insert(*account, user.clone());
            }
            let names = &self.names;
            self.shared.learn(&e.body, &|a| names.get(&a).map(|n| n.clone()));
        }
    }

    fn publish(&mut self, _index: u64, events: Arc<Vec<bourse_engine::Event>>, account: Vec<(u64, u64, serde_json::Value)>) {
        self.shared.market_waiting.fetch_add(1, Ordering::Relaxed);
        let committed_us = crate::reply::now_us();
        self.shared.market.do_send(Committed { events, account, committed_us });
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection limit reached")]
pub struct Refused;

#[derive(Clone)]
pub struct Node {
    pub shared: Arc<Shared>,
    journal: JournalHandle,
    session_arbiters: Arc<Vec<ArbiterHandle>>,
    next: Arc<AtomicUsize>,
}

/// The file in the data directory holding the first start's admin
/// password, when it was generated (or an operator's, written there).
pub const ADMIN_PASSWORD_FILE: &str = "initial-admin-password";
/// The longest admin password file read (a generated password is 24
/// bytes; this leaves room for an operator's own).
pub const ADMIN_PASSWORD_FILE_BYTES_MAX: u64 = 1024;

/// Removes the admin password file at `path` when the password in it no
/// longer logs in: the admin's password was set since (through
/// `BOURSE_ADMIN_PASSWORD`, when `stored` is `None` and `now` is the
/// password set, or in-band, when `stored` is the admin's hash).
fn remove_stale_password_file(path: &std::path::Path, now: &str, stored: Option<&str>) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if meta.len() > ADMIN_PASSWORD_FILE_BYTES_MAX {
        return;
    }
    let Ok(text) = std::fs::read_to_string(path) else { return };
    let in_file = text.trim_end_matches(['\n', '\r']);
    let logs_in = match stored {
        None => in_file == now,
        Some(hash) => auth::password::verify_password(hash, in_file),
    };
    if logs_in {
        return;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed the admin password file: the admin's password was set since, and the one in it no longer logs in"),
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "the admin password in this file no longer logs in, and it could not be removed"),
    }
}

/// The operator `admin`'s password, and whether the operator gave it
/// (`BOURSE_ADMIN_PASSWORD`) rather than the node keeping one it made: a
/// given one is set again at a later start when it differs from the one
/// the exchange holds (how an operator who lost it resets it).
///
/// `generated` names the file a password made for this start was written
/// to: a node whose exchange already exists removes it (the admin keeps
/// the password it has; the file would name one that does not log in).
#[derive(Clone)]
pub struct AdminSecret {
    pub password: String,
    pub given: bool,
    pub generated: Option<std::path::PathBuf>,
}

impl Node {
    /// Starts the node inside the current actix System.
    pub async fn start(cfg: Config, admin: AdminSecret) -> anyhow::Result<Node> {
        let admin_password = admin.password.clone();
        cfg.validate().map_err(anyhow::Error::msg)?;
        // Recover: the newest snapshot plus the log after it, replayed by
        // the same `apply`; orders a crash left between the ledger and their
        // book are closed first. The snapshotter gets its own copy of the
        // replayed state and follows the log from there (the orphans' batch
        // is the first it reads).
        // Event times go on from the log's last one, whatever the wall clock
        // reads now (`EventClock`).
        let (mut exchange, log, snapshots, epoch, account_tail, sessions, clock): (Exchange, Box<dyn EventLogSend>, _, u64, _, _, EventClock) = if cfg.durable {
            let mut r = durability::recover(&cfg.data_dir, &cfg.durability).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (replayed, at) = (r.state.exchange.clone(), r.state.position);
            r.settle_orphans(crate::reply::now_us()).map_err(|e| anyhow::anyhow!("{e}"))?;
            let clock = EventClock::after(r.state.position.last_ts);
            let log = SharedLog::new(r.log);
            let sessions = r.store.sessions().map_err(|e| anyhow::anyhow!("{e}"))?;
            let follow = (log.downgrade(), r.store, replayed, at);
            (r.state.exchange, Box::new(log), Some(follow), r.epoch, r.state.account_tail, Some(sessions), clock)
        } else {
            (Exchange::new(), Box::new(MemLog::new()), None, durability::EPOCH_FIRST, Default::default(), None, EventClock::default())
        };
        let fresh = log.last_index() == 0;

        let market_arbiter = Arbiter::new();
        let ledger_arbiter = Arbiter::new();
        let arbiters: Vec<ArbiterHandle> = (0..INSTRUMENT_ARBITERS).map(|_| Arbiter::new().handle()).collect();
        let session_arbiters: Vec<ArbiterHandle> =
            (0..session_threads(cfg.limits.session_threads)).map(|_| Arbiter::new().handle()).collect();

        let password_params = if cfg!(debug_assertions) || std::env::var_os("BOURSE_FAST_PASSWORD_HASH").is_some() {
            PasswordParams::fast_for_tests()
        } else {
            PasswordParams::default()
        };
        // A later start makes what the configuration gained since the
        // exchange was made (`setup`), decided before anything is written.
        let additions = if fresh {
            Vec::new()
        } else {
            for d in setup::differences(&cfg, &exchange.ledger) {
                tracing::warn!("configuration differs from the exchange, which keeps its own: {d}");
            }
            let mut cmds = setup::additions(&cfg, &exchange.ledger, &|pw: &str| auth::password::hash_password_with(pw, &password_params))
                .map_err(anyhow::Error::msg)?;
            if let Some(path) = &admin.generated {
                match std::fs::remove_file(path) {
                    Ok(()) => tracing::info!(
                        path = %path.display(),
                        "the exchange exists, so its admin keeps the password it has: removed the one generated for this start"
                    ),
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not remove a generated admin password the exchange does not use"),
                }
            }
            let stored = exchange.ledger.users.get(setup::ADMIN).map(|u| u.password_hash.as_str());
            let reset = admin.given && stored.is_some_and(|h| !auth::password::verify_password(h, &admin.password));
            if reset {
                tracing::info!("setting the password of {} from {}", setup::ADMIN, "BOURSE_ADMIN_PASSWORD");
                let password_hash = auth::password::hash_password_with(&admin.password, &password_params);
                cmds.push(Command::SetPassword { user: setup::ADMIN.into(), password_hash, by: AccountId(0) });
            }
            if cfg.durable {
                let admin_pw = if reset { None } else { stored };
                remove_stale_password_file(&cfg.data_dir.join(ADMIN_PASSWORD_FILE), &admin.password, admin_pw);
            }
            cmds
        };
        let quotas = RateQuotas {
            orders_per_s_per_account: std::num::NonZeroU32::new(cfg.limits.account_orders_per_sec).expect("validated"),
            messages_per_s_per_connection: std::num::NonZeroU32::new(cfg.limits.conn_msgs_per_sec).expect("validated"),
            ..Default::default()
        };
        // Market data starts from the recovered books.
        let books: Vec<bourse_engine::OrderBook> = exchange.books.clone();
        let views: Vec<serde_json::Value> = exchange
            .ledger
            .instruments
            .values()
            .map(|s| serde_json::to_value(wire::instrument_view(&exchange.ledger, s)).expect("encodes"))
            .collect();

        // The ledger starts first, on its own thread, and waits there for
        // the journal handle (the journal needs the market data, which needs
        // the ledger's address).
        let ledger_state = exchange.ledger.clone();
        let mut recovered_books = std::mem::take(&mut exchange.books);
        let limits = cfg.limits.clone();
        let (init_tx, init_rx) = std::sync::mpsc::channel::<(JournalHandle, Arc<Shared>)>();
        let arbs = arbiters.clone();
        let ledger_addr = LedgerActor::start_in_arbiter(&ledger_arbiter.handle(), move |ctx: &mut Context<LedgerActor>| {
            let (journal, shared) = init_rx.recv().expect("node sends the journal");
            let mut actor = LedgerActor {
                ledger: ledger_state,
                books: Vec::new(),
                journal,
                shared,
                arbiters: arbs,
                mailbox_max: limits.ledger_mailbox_max,
                instrument_inflight_max: limits.instrument_mailbox_max,
                pending: Default::default(),
                flush_scheduled: false,
                amending: Default::default(),
                clock,
            };
            for b in recovered_books.drain(..) {
                actor.spawn_book(b, ctx.address());
            }
            actor
        });
        let l2 = ledger_addr.clone();
        let status_seq = exchange.ledger.status_version;
        let account_seqs: Vec<(AccountId, u64)> = exchange.ledger.accounts.iter().map(|(a, s)| (*a, s.seq)).collect();
        // What the replayed batches told each account, made again as it was
        // sent, so that its stream resumes across the restart.
        let account_messages: Vec<(u64, u64, serde_json::Value)> = account_tail
            .accounts
            .into_values()
            .flatten()
            .map(|(ts, u)| crate::ledger::account_message(&exchange.ledger, epoch, ts, u))
            .collect();
        // Recent trades, candles and the ticker window come back from the trades in the log.
        let trades = recent_trades(&*log);
        let fanout_threads = cfg.limits.fanout_threads;
        let market_waiting = Arc::new(AtomicUsize::new(0));
        crate::telemetry::watch_mailbox(crate::telemetry::ACTOR_MARKET, None, &market_waiting);
        let waiting = Arc::clone(&market_waiting);
        let market = MarketData::start_in_arbiter(&market_arbiter.handle(), move |_| {
            let mut md = MarketData::new(l2, books, views, status_seq, account_seqs, waiting);
            md.set_fanout_threads(crate::market::writers::fanout_threads(fanout_threads));
            md.epoch = epoch;
            md.warm(&trades);
            md.warm_accounts(account_messages);
            md
        });

        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            instruments: DashMap::new(),
            assets: DashMap::new(),
            asset_scales: DashMap::new(),
            accounts: DashMap::new(),
            open_connections: DashMap::new(),
            directory: Directory::new(&password_params),
            tokens: match sessions {
                // A durable node's logins outlive it (see `auth::token`).
                Some(tree) => TokenStore::new(TOKEN_TTL_US, TOKENS_MAX).keep_in(tree, crate::reply::now_us()),
                None => TokenStore::new(TOKEN_TTL_US, TOKENS_MAX),
            },
            nonces: NonceCache::new(5_000_000, NONCES_MAX),
            account_limiter: AccountLimiter::new(&quotas),
            password_params,
            connections: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            ledger: OnceLock::new(),
            market: market.clone(),
            market_waiting,
            journal_stopped: Arc::new(AtomicBool::new(false)),
            sessions: DashMap::new(),
            next_session: AtomicUsize::new(1),
            epoch,
            cancel_after: Default::default(),
            password_checks: crate::session::hashing::PasswordChecks::for_this_machine(),
        });
        let _ = shared.ledger.set(ledger_addr.clone());
        learn_recovered(&shared, &exchange);
        let names = DashMap::new();
        for u in exchange.ledger.users.values() {
            names.insert(u.account, u.name.clone());
        }
        let publisher = NodePublisher { shared: shared.clone(), names };
        // A journal that cannot write stops the node from acknowledging anything.
        let journal = journal::start(
            BoxedLog(log),
            cfg.durable,
            cfg.limits.commit_events_max,
            Box::new(publisher),
            shared.journal_stopped.clone(),
        );
        if let Some((log, store, state, position)) = snapshots {
            Snapshotter::new(log, store, journal.committed.clone(), journal.stopped.clone(), state, position, cfg.durability.clone())
                .spawn();
        }

        init_tx.send((journal.clone(), shared.clone())).expect("ledger thread alive");

        let node = Node { shared: shared.clone(), journal, session_arbiters: Arc::new(session_arbiters), next: Arc::new(AtomicUsize::new(0)) };
        if fresh {
            node.bootstrap(&admin_password).await?;
        } else if !additions.is_empty() {
            let n = additions.len();
            for cmd in additions {
                node.submit(cmd, Shape::Empty).await?;
            }
            tracing::info!(commands = n, "made what the configuration added to the exchange (and the admin password given, if it changed)");
        }
        shared.ready.store(true, Ordering::Release);
        std::mem::forget(market_arbiter);
        std::mem::forget(ledger_arbiter);
        Ok(node)
    }

    async fn submit(&self, cmd: Command, shape: Shape) -> anyhow::Result<serde_json::Value> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared
            .ledger()
            .send(Submit { cmd, to: Responder::Channel(tx), shape })
            .await
            .map_err(|e| anyhow::anyhow!("ledger: {e}"))?;
        rx.await?.map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.msg))
    }

    /// First start: the operator, the assets, instruments and users of the
    /// configuration, each checked before any is written (`setup::plan`).
    async fn bootstrap(&self, admin_password: &str) -> anyhow::Result<()> {
        let cfg = &self.shared.cfg;
        let hash = |pw: &str| self.shared.hash_password(pw);
        for cmd in setup::plan(cfg, admin_password, &hash).map_err(anyhow::Error::msg)? {
            self.submit(cmd, Shape::Empty).await?;
        }
        tracing::info!(assets = cfg.assets.len(), instruments = cfg.instruments.len(), users = cfg.users.len(), "bootstrapped a new exchange");
        Ok(())
    }

    pub fn ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire) && !self.shared.stopping()
    }

    pub fn metrics_text(&self) -> String {
        crate::metrics_text()
    }

    /// Hands an upgraded connection to a new session actor on one of the
    /// session threads: `socket` is its TCP stream, `early` what was read
    /// past the upgrade request, and `guard` lives as long as the connection.
    pub fn accept(
        &self,
        socket: std::net::TcpStream,
        early: bytes::Bytes,
        guard: Box<dyn Send + Sync>,
        config: WebSocketConfig,
        encoding: Encoding,
        peer: SocketAddr,
    ) -> Result<(), Refused> {
        let n = self.shared.connections.fetch_add(1, Ordering::AcqRel);
        if n >= self.shared.cfg.limits.connections_max || self.shared.shutting_down.load(Ordering::Acquire) {
            self.shared.connections.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused);
        }
        let shared = self.shared.clone();
        let outbound_max = shared.cfg.limits.outbound_msgs_max;
        let arb = &self.session_arbiters[self.next.fetch_add(1, Ordering::Relaxed) % self.session_arbiters.len()];
        arb.spawn(async move {
            // Registered with this thread's reactor: its reads and writes
            // wake tasks here, not on another thread.
            let socket = match tokio::net::TcpStream::from_std(socket) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "a connection could not be registered");
                    shared.connections.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
            };
            let (rd, wr) = socket.into_split();
            // Two producers: the session's outbox and tungstenite's answers.
            let queue = Arc::new(Queue::new(outbound_max, shared.cfg.limits.outbound_bytes_max, 2));
            let conn = shared.next_session.fetch_add(1, Ordering::Relaxed);
            actix::spawn(writer::run(queue.clone(), wr, writer::WRITE_STALL_MAX, conn));
            let inbound = writer::Inbound::new(early, rd, queue.clone(), guard);
            let stream = WebSocketStream::from_raw_socket(inbound, Role::Server, Some(config)).await;
            Session::create(move |ctx| {
                ctx.add_stream(stream);
                let out = Outbox::new(conn, encoding, queue, ctx.address().recipient());
                Session::new(shared, Arc::new(out), peer)
            });
        });
        Ok(())
    }

    /// Planned shutdown: tell every session, stop taking orders, let the journal finish.
    pub async fn shutdown(&self, in_ms: u64) {
        self.shared.shutting_down.store(true, Ordering::Release);
        let _ = &self.journal;
        for s in self.shared.sessions.iter() {
            s.value().do_send(Deliver::Notice { code: "shutdown", in_ms: Some(in_ms), close: None });
        }
        tokio::time::sleep(std::time::Duration::from_millis(in_ms.min(5_000))).await;
    }
}

/// The lookups a recovered state implies: what `Shared::learn` of every
/// event that led to it gives.
fn learn_recovered(shared: &Shared, state: &Exchange) {
    let l = &state.ledger;
    for a in l.assets.values() {
        shared.assets.insert(a.name.clone(), a.clone());
        shared.asset_scales.insert(a.id, a.scale);
    }
    for s in l.instruments.values() {
        shared.instruments.insert(s.sym.clone(), s.clone());
    }
    for u in l.users.values() {
        shared.accounts.insert(u.name.clone(), u.account);
        let _ = shared.directory.add_user(&u.name, wire::role_out(u.role), &u.password_hash);
    }
    let names: std::collections::HashMap<AccountId, &str> = l.users.values().map(|u| (u.account, u.name.as_str())).collect();
    for (key, (account, credential)) in &l.api_keys {
        if let Some(user) = names.get(account) {
            let c = match credential {
                bourse_engine::Credential::Hmac { secret } => auth::Credential::Hmac { secret: secret.clone() },
                bourse_engine::Credential::Ed25519 { public_key } => auth::Credential::Ed25519 { public_key_b64: public_key.clone() },
            };
            let _ = shared.directory.add_api_key(user, key, c);
        }
    }
}

/// The session threads to run: `configured`, or with 0 half the machine's
/// cores, at least one. On two cores one session thread delivers market
/// data with less CPU than two and, on average, less delay: the
/// market-data thread, the journal and the session threads then share the
/// cores with fewer switches between them (BENCHMARKS.md, Fan-out).
pub fn session_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / 2).max(1)
}


/// Log entries read back at start to rebuild recent trades and candles.
pub const WARM_ENTRIES_MAX: u64 = 20_000;

fn recent_trades(log: &dyn EventLogSend) -> Vec<bourse_engine::Event> {
    let (first, last) = (log.first_index(), log.last_index());
    if last == 0 || last < first {
        return Vec::new();
    }
    let from = first.max(last.saturating_sub(WARM_ENTRIES_MAX) + 1);
    let Ok(entries) = log.read(from..=last) else { return Vec::new() };
    entries
        .into_iter()
        .flat_map(|e| e.events)
        .filter_map(|b| rmp_serde::from_slice::<bourse_engine::Event>(&b).ok())
        .filter(|e| matches!(e.body, EventBody::Traded(_)))
        .collect()
}

/// An event log the journal thread can own.
pub trait EventLogSend: EventLog + Send {}
impl<T: EventLog + Send> EventLogSend for T {}

struct BoxedLog(Box<dyn EventLogSend>);

impl EventLog for BoxedLog {
    fn append(&mut self, batch: &[Vec<u8>]) -> Result<u64, crate::storage::log::LogError> {
        self.0.append(batch)
    }
    fn sync(&mut self) -> Result<(), crate::storage::log::LogError> {
        self.0.sync()
    }
    fn read(&self, range: std::ops::RangeInclusive<u64>) -> Result<Vec<crate::storage::log::Entry>, crate::storage::log::LogError> {
        self.0.read(range)
    }
    fn truncate_after(&mut self, index: u64) -> Result<(), crate::storage::log::LogError> {
        self.0.truncate_after(index)
    }
    fn purge_before(&mut self, index: u64) -> Result<(), crate::storage::log::LogError> {
        self.0.purge_before(index)
    }
    fn reset_to(&mut self, base_index: u64, base_hash: crate::storage::log::Hash) -> Result<(), crate::storage::log::LogError> {
        self.0.reset_to(base_index, base_hash)
    }
    fn first_index(&self) -> u64 {
        self.0.first_index()
    }
    fn last_index(&self) -> u64 {
        self.0.last_index()
    }
    fn last_hash(&self) -> crate::storage::log::Hash {
        self.0.last_hash()
    }
}

#[cfg(test)]
mod tests {
    use super::session_threads;

    #[test]
    fn session_threads_are_as_configured_or_half_the_cores() {
        assert_eq!(session_threads(3), 3);
        assert_eq!(session_threads(1), 1);
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(session_threads(0), (cores / 2).max(1));
    }
}
