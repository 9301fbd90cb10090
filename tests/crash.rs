//! Crash test: real order flow over WebSocket against the real binary
//! (durable, on a temporary data directory), killed with SIGKILL at random
//! moments and restarted on the same directory each time.
//!
//! After every restart:
//! * recovery is exactly an offline replay of the log: the state hash the
//!   node logs when it recovers equals the one `bourse verify` computes
//!   from the directory the killed process left;
//! * every acknowledged place is there: placing it again with its `cl_id`
//!   answers `dup` with the same order id, so no order exists twice; its
//!   status and filled quantity never went back (an acknowledged cancel is
//!   `cancelled`, an acknowledged amend's quantity holds), and its fills
//!   add up to its filled quantity;
//! * balances are conserved per asset: the users' and the fee account's
//!   balances add up to the deposits;
//! * the book the market data serves equals the open orders of the ledger;
//! * account and book sequence numbers continue, in the same epoch: the
//!   snapshot after the restart is at or past every number seen before.
//!
//! Seeded: the seed is printed; `BOURSE_CRASH_SEED=N` runs the same choices
//! again (the timing of the kills relative to the traffic still varies).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::Client;
use tokio_tungstenite::tungstenite::Message;

/// Kills (and restarts) per run.
const KILLS: usize = 5;
/// Traffic before a kill: between these many milliseconds.
const RUN_MS_MIN: u64 = 300;
const RUN_MS_MAX: u64 = 1_300;
/// Acknowledged places of earlier rounds re-checked after each restart
/// (those of the round just killed are all checked).
const OLDER_PLACES_CHECKED_MAX: usize = 150;
/// How long a start may take before the test fails.
const START_WAIT: Duration = Duration::from_secs(60);
const ADMIN_PASSWORD: &str = "crash-admin-pass";
/// Runs the same choices again (not passed on to the server, whose
/// configuration refuses unknown `BOURSE_*` variables).
const SEED_ENV: &str = "BOURSE_CRASH_SEED";
const TRADERS: [(&str, &str); 2] = [("alice", "alice-pass"), ("bob", "bob-pass-1")];
/// Every account the conservation check sums (the fee account is `fees`).
const ACCOUNTS: [&str; 4] = ["alice", "bob", "carol", "fees"];
/// Deposits per asset at first start, in smallest units (USD cents, satoshis).
const DEPOSITS: [(&str, u128); 2] = [("USD", 3 * 100_000_000), ("BTC", 2 * 100 * 100_000_000)];

fn config(data_dir: &Path) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "{}"
durable = true
log_format = "text"

[limits]
conn_msgs_per_sec = 100000
account_orders_per_sec = 100000

[durability]
snapshot_every_events = 300
snapshot_every_secs = 1
log_retention_events = 600
segment_bytes_max = 16384

[[assets]]
asset = "USD"
scale = 2
[[assets]]
asset = "BTC"
scale = 8

[[instruments]]
sym = "BTC-USD"
base = "BTC"
quote = "USD"
tick = "1"
lot = "0.01"
min_qty = "0.01"
ref_px = "30000"
maker_fee_bps = 10
taker_fee_bps = 20

[[users]]
user = "alice"
password = "alice-pass"
deposits = {{ USD = "1000000.00", BTC = "100" }}
[[users]]
user = "bob"
password = "bob-pass-1"
deposits = {{ USD = "1000000.00", BTC = "100" }}
[[users]]
user = "carol"
password = "carol-pass"
deposits = {{ USD = "1000000.00" }}

[demo]
market_maker = false
"#,
        data_dir.display()
    )
}

/// xorshift64*: the test's only source of choices.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A decimal string as an integer number of units at `scale` decimals.
fn units(s: &str, scale: u32) -> u128 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(
        frac.len() <= scale as usize,
        "{s} has more than {scale} decimals"
    );
    let frac = format!("{frac:0<width$}", width = scale as usize);
    int.parse::<u128>().unwrap() * 10u128.pow(scale)
        + if frac.is_empty() {
            0
        } else {
            frac.parse::<u128>().unwrap()
        }
}

fn lots(qty: &Value) -> u64 {
    units(qty.as_str().expect("qty string"), 2) as u64
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One run of the binary.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// `(state hash, index)` of the state recovery replayed, as logged.
    recovered: (String, u64),
    log: Arc<Mutex<Vec<String>>>,
}

fn start(bin: &str, cfg: &Path) -> Server {
    start_with(bin, cfg, &[])
}

/// [`start`] with more environment variables (which may replace the
/// admin password's).
fn start_with(bin: &str, cfg: &Path, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "info")
        .env("BOURSE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .envs(env.iter().copied())
        .env_remove(SEED_ENV)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + START_WAIT;
    let (mut recovered, mut addr) = (None, None);
    // The snapshotter logs the recovered state's hash, possibly after the
    // listener's line.
    while recovered.is_none() || addr.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server did not start; its log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        const MARK: &str = "recovered state at index ";
        if let Some(at) = line.find(MARK) {
            let rest = &line[at + MARK.len()..];
            let (index, rest) = rest.split_once(": state_hash=").expect("index and hash");
            recovered = Some((rest[..64].to_string(), index.parse::<u64>().unwrap()));
        }
        if line.contains("listening") {
            let at = line.find("127.0.0.1:").expect("listen address in the log");
            let raw: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            addr = Some(raw.parse::<SocketAddr>().unwrap());
        }
    }
    let (addr, recovered) = (addr.unwrap(), recovered.unwrap());
    Server {
        child,
        addr,
        recovered,
        log,
    }
}

/// A failed test leaves no server behind.
impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The test's directory, removed however the test ends.
struct Dir(PathBuf);

/// A new directory for one test (removed when the `Dir` drops), its
/// configuration file written by `config` from the data directory's path,
/// and a runtime for the test's clients.
fn scratch(tag: &str, config: impl FnOnce(&Path) -> String) -> (Dir, PathBuf, tokio::runtime::Runtime) {
    let base: PathBuf = std::env::temp_dir().join(format!("bourse-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let cfg = base.join("config.toml");
    std::fs::write(&cfg, config(&base.join("data"))).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    (Dir(base), cfg, rt)
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    /// Waits (20 s at most) for the process to stop by abort (SIGABRT), as
    /// the fail-stop does after `why`; its log.
    fn aborted(&mut self, why: &str) -> String {
        use std::os::unix::process::ExitStatusExt;
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the process still runs after {why}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self.log.lock().unwrap().join("\n");
        assert_eq!(status.signal(), Some(6), "stopped by abort (SIGABRT): {status:?}; log:\n{log}");
        log
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited");
    }

    fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert_eq!(
                    s.code(),
                    Some(0),
                    "a clean stop; log:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
                return;
            }
            assert!(Instant::now() < deadline, "no stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `bourse verify --json` of the data directory.
fn verify(bin: &str, cfg: &Path) -> Value {
    let out = Command::new(bin)
        .args(["verify", "--json", "--config"])
        .arg(cfg)
        .env_remove(SEED_ENV)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify prints JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(out.status.code(), Some(0), "verify after a kill: {v}");
    v
}

/// An acknowledged place.
#[derive(Clone, Debug)]
struct Placed {
    user: usize,
    order_id: u64,
    args: Value,
    cum_lots: u64,
    round: usize,
}

/// What the traffic was told, and what it saw.
#[derive(Default)]
struct Acked {
    places: BTreeMap<String, Placed>,
    /// Orders whose cancel was acknowledged.
    cancelled: BTreeSet<u64>,
    /// The last acknowledged amend quantity of an order, in lots.
    amended: BTreeMap<u64, u64>,
    /// Orders with an operation sent and never answered (outcome unknown).
    unsure: BTreeSet<u64>,
    /// Highest account-stream seq seen per user, and book seq.
    account_seq: BTreeMap<usize, u64>,
    book_seq: u64,
    /// Epochs seen on every stream.
    epochs: BTreeSet<u64>,
    ops: u64,
}

/// A connection of the traffic: requests whose answer may never come.
struct Conn {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Conn {
    async fn open(addr: SocketAddr, user: &str, pw: &str) -> Option<Conn> {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .ok()?;
        let mut c = Conn { ws, next_id: 1 };
        let r = c
            .request("auth", json!({"user": user, "password": pw}), &mut |_| {})
            .await?;
        assert_eq!(r["ok"], true, "{r}");
        Some(c)
    }

    /// The response to the request, or `None` if the connection went away;
    /// stream messages go to `seen`.
    async fn request(
        &mut self,
        op: &str,
        args: Value,
        seen: &mut (dyn FnMut(&Value) + Send),
    ) -> Option<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.ws
            .send(Message::Text(
                json!({"op": op, "id": id, "args": args}).to_string().into(),
            ))
            .await
            .ok()?;
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .ok()??
                .ok()?;
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v.get("id").and_then(Value::as_u64) == Some(id) {
                return Some(v);
            }
            seen(&v);
        }
    }
}

fn note_stream(acked: &Mutex<Acked>, user: usize, v: &Value) {
    let ch = v["ch"].as_str().unwrap_or("");
    if ch != "account" && ch != "book.l2" {
        return;
    }
    let mut a = acked.lock().unwrap();
    if let Some(e) = v["epoch"].as_u64() {
        a.epochs.insert(e);
    }
    let seq = v["seq"].as_u64().unwrap_or(0);
    if ch == "account" {
        let m = a.account_seq.entry(user).or_default();
        *m = (*m).max(seq);
    } else {
        a.book_seq = a.book_seq.max(seq);
    }
}

/// One trader's flow until the connection dies: places (some crossing),
/// cancels and amends of its own open orders.
async fn trade(
    addr: SocketAddr,
    user: usize,
    mut rng: Rng,
    round: usize,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
) {
    let (name, pw) = TRADERS[user];
    let Some(mut c) = Conn::open(addr, name, pw).await else {
        return;
    };
    let mut seen = |v: &Value| note_stream(&acked, user, v);
    for sub in [
        json!({"ch": "account"}),
        json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": 10}),
    ] {
        if c.request("subscribe", sub, &mut seen).await.is_none() {
            return;
        }
    }
    let mut open: Vec<u64> = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let roll = rng.below(100);
        if roll < 25 && !open.is_empty() {
            let order = open.swap_remove(rng.below(open.len() as u64) as usize);
            acked.lock().unwrap().unsure.insert(order);
            let Some(r) = c
                .request(
                    "order.cancel",
                    json!({"sym": "BTC-USD", "order_id": order}),
                    &mut seen,
                )
                .await
            else {
                return;
            };
            let mut a = acked.lock().unwrap();
            a.unsure.remove(&order);
            a.ops += 1;
            if r["ok"] == true {
                assert_eq!(r["res"]["status"], "cancelled", "{r}");
                a.cancelled.insert(order);
            }
            continue;
        }
        if roll < 35 && !open.is_empty() {
            let order = open[rng.below(open.len() as u64) as usize];
            let qty = 1 + rng.below(10);
            acked.lock().unwrap().unsure.insert(order);
            let args = json!({"sym": "BTC-USD", "order_id": order, "qty": format!("0.{qty:02}")});
            let Some(r) = c.request("order.amend", args, &mut seen).await else {
                return;
            };
            let mut a = acked.lock().unwrap();
            a.unsure.remove(&order);
            a.ops += 1;
            if r["ok"] == true {
                a.amended.insert(order, qty);
                if r["res"]["status"] == "filled" || r["res"]["status"] == "cancelled" {
                    open.retain(|o| *o != order);
                }
            }
            continue;
        }
        let side = if rng.below(2) == 0 { "buy" } else { "sell" };
        let px = 29_950 + rng.below(101);
        let qty = 1 + rng.below(10);
        let cl_id = format!("r{round}u{user}n{n}");
        let args = json!({"cl_id": cl_id, "sym": "BTC-USD", "side": side, "type": "limit",
                          "px": px.to_string(), "qty": format!("0.{qty:02}")});
        let Some(r) = c.request("order.place", args.clone(), &mut seen).await else {
            return;
        };
        let mut a = acked.lock().unwrap();
        a.ops += 1;
        if r["ok"] == true {
            let res = &r["res"];
            assert_eq!(res["dup"], false, "{r}");
            let order_id = res["order_id"].as_u64().unwrap();
            if res["status"] == "new" || res["status"] == "partially_filled" {
                open.push(order_id);
            }
            a.places.insert(
                cl_id,
                Placed {
                    user,
                    order_id,
                    args,
                    cum_lots: lots(&res["cum_qty"]),
                    round,
                },
            );
        }
    }
}

/// Everything the module docs promise, checked against a restarted server.
async fn check(addr: SocketAddr, acked: &Mutex<Acked>, round: usize, rng: &mut Rng) {
    let a = {
        let g = acked.lock().unwrap();
        Acked {
            places: g.places.clone(),
            cancelled: g.cancelled.clone(),
            amended: g.amended.clone(),
            unsure: g.unsure.clone(),
            account_seq: g.account_seq.clone(),
            book_seq: g.book_seq,
            epochs: g.epochs.clone(),
            ops: g.ops,
        }
    };
    assert!(
        a.epochs.len() <= 1,
        "one epoch across restarts: {:?}",
        a.epochs
    );
    let epoch = a.epochs.iter().next().copied().unwrap_or(1);
    let mut book_from_orders: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for (user, (name, pw)) in TRADERS.iter().enumerate() {
        let mut c = Client::connect(addr).await;
        c.login(name, pw).await;

        // Sequence numbers continue: the snapshot is at or past what was seen.
        c.ok("subscribe", json!({"ch": "account"})).await;
        let snap = c
            .event(|v| v["ch"] == "account" && v["type"] == "snapshot")
            .await;
        assert_eq!(snap["epoch"].as_u64(), Some(epoch), "account epoch");
        let seen = a.account_seq.get(&user).copied().unwrap_or(0);
        assert!(
            snap["seq"].as_u64().unwrap() >= seen,
            "{name}: account seq {} after a restart, {seen} seen before",
            snap["seq"]
        );

        // Open orders: no cl_id twice.
        let orders = c.ok("account.orders", json!({})).await["orders"]
            .as_array()
            .unwrap()
            .clone();
        let mut cl_ids = BTreeSet::new();
        let mut open: BTreeMap<u64, Value> = BTreeMap::new();
        for o in &orders {
            assert!(
                cl_ids.insert(o["cl_id"].as_str().unwrap().to_string()),
                "{name}: cl_id twice: {o}"
            );
            let side = o["side"].as_str().unwrap().to_string();
            *book_from_orders
                .entry((side, units(o["px"].as_str().unwrap(), 0) as u64))
                .or_default() += lots(&o["leaves_qty"]);
            open.insert(o["order_id"].as_u64().unwrap(), o.clone());
        }

        // Fills, all pages: fill ids unique, quantity per order.
        let mut fills: BTreeMap<u64, u64> = BTreeMap::new();
        let mut fill_ids = BTreeSet::new();
        let mut before: Option<u64> = None;
        loop {
            let mut args = json!({"limit": 1000});
            if let Some(b) = before {
                args["before"] = json!(b);
            }
            let page = c.ok("account.fills", args).await["fills"]
                .as_array()
                .unwrap()
                .clone();
            for f in &page {
                assert!(
                    fill_ids.insert(f["fill_id"].as_u64().unwrap()),
                    "fill twice: {f}"
                );
                *fills.entry(f["order_id"].as_u64().unwrap()).or_default() += lots(&f["qty"]);
            }
            match page.last() {
                Some(f) if page.len() == 1000 => before = f["fill_id"].as_u64(),
                _ => break,
            }
        }

        // Every acknowledged place of the round just killed, and a sample of
        // older ones: placing it again is a duplicate of the same order.
        let mine: Vec<(&String, &Placed)> =
            a.places.iter().filter(|(_, p)| p.user == user).collect();
        let (recent, older): (Vec<_>, Vec<_>) =
            mine.into_iter().partition(|(_, p)| p.round + 1 == round);
        let mut to_check = recent;
        for _ in 0..OLDER_PLACES_CHECKED_MAX.min(older.len()) {
            to_check.push(older[rng.below(older.len() as u64) as usize]);
        }
        for (cl_id, p) in to_check {
            let r = c.ok("order.place", p.args.clone()).await;
            assert_eq!(
                r["dup"], true,
                "{name} {cl_id}: acknowledged, then lost: {r}"
            );
            assert_eq!(
                r["order_id"].as_u64(),
                Some(p.order_id),
                "{name} {cl_id}: another order under its cl_id"
            );
            let cum = lots(&r["cum_qty"]);
            assert!(
                cum >= p.cum_lots,
                "{name} {cl_id}: filled {cum} lots, {} acknowledged",
                p.cum_lots
            );
            assert_eq!(
                fills.get(&p.order_id).copied().unwrap_or(0),
                cum,
                "{name} {cl_id}: fills add up to the filled quantity"
            );
            let status = r["status"].as_str().unwrap();
            let is_open = status == "new" || status == "partially_filled";
            assert_eq!(
                open.contains_key(&p.order_id),
                is_open,
                "{name} {cl_id}: status {status}"
            );
            if a.cancelled.contains(&p.order_id) {
                assert_eq!(
                    status, "cancelled",
                    "{name} {cl_id}: acknowledged cancel lost"
                );
            }
            if let (Some(q), Some(o)) = (a.amended.get(&p.order_id), open.get(&p.order_id)) {
                if !a.unsure.contains(&p.order_id) {
                    assert_eq!(
                        lots(&o["qty"]),
                        *q,
                        "{name} {cl_id}: acknowledged amend lost"
                    );
                }
            }
        }
    }

    // The book served by market data equals the ledger's open orders, and
    // its version did not go back.
    let mut c = Client::connect(addr).await;
    c.login("carol", "carol-pass").await;
    c.ok(
        "subscribe",
        json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": 0}),
    )
    .await;
    let snap = c
        .event(|v| v["ch"] == "book.l2" && v["type"] == "snapshot")
        .await;
    assert_eq!(snap["epoch"].as_u64(), Some(epoch), "book epoch");
    assert!(
        snap["seq"].as_u64().unwrap() >= a.book_seq,
        "book seq {} after a restart, {} seen before",
        snap["seq"],
        a.book_seq
    );
    let mut book: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for (side, key) in [("buy", "bids"), ("sell", "asks")] {
        for l in snap[key].as_array().unwrap() {
            book.insert(
                (side.to_string(), units(l[0].as_str().unwrap(), 0) as u64),
                lots(&l[1]),
            );
        }
    }
    assert_eq!(book, book_from_orders, "market-data book vs open orders");

    // Conservation per asset: users plus fee account equal deposits.
    let mut admin = Client::connect(addr).await;
    admin.login("admin", ADMIN_PASSWORD).await;
    let mut sums: BTreeMap<String, u128> = BTreeMap::new();
    for user in ACCOUNTS {
        let r = admin.ok("admin.balances", json!({"user": user})).await;
        for b in r["balances"].as_array().unwrap() {
            let asset = b["asset"].as_str().unwrap();
            let scale = if asset == "USD" { 2 } else { 8 };
            *sums.entry(asset.to_string()).or_default() +=
                units(b["available"].as_str().unwrap(), scale)
                    + units(b["held"].as_str().unwrap(), scale);
        }
    }
    for (asset, total) in DEPOSITS {
        assert_eq!(
            sums.get(asset).copied().unwrap_or(0),
            total,
            "{asset} is conserved"
        );
    }
}

#[test]
fn killed_at_random_moments_the_exchange_keeps_every_acknowledgement() {
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test seed: {seed} (rerun with BOURSE_CRASH_SEED={seed})");
    eprintln!("crash test seed: {seed} (rerun with BOURSE_CRASH_SEED={seed})");
    let mut rng = Rng(seed);

    let bin = env!("CARGO_BIN_EXE_bourse");
    let base: PathBuf =
        std::env::temp_dir().join(format!("bourse-crash-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let _cleanup = Dir(base.clone());
    let cfg = base.join("config.toml");
    std::fs::write(&cfg, config(&base.join("data"))).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let started = Instant::now();
    let mut server = start(bin, &cfg);
    assert_eq!(server.recovered.1, 0, "a new data directory");
    let mut snapshots_seen = 0usize;
    for round in 1..=KILLS {
        // Traffic, then SIGKILL at a random moment in the middle of it.
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..TRADERS.len())
            .map(|u| {
                let r = Rng(rng.next() | 1);
                rt.spawn(trade(server.addr, u, r, round, acked.clone(), stop.clone()))
            })
            .collect();
        let run_ms = RUN_MS_MIN + rng.below(RUN_MS_MAX - RUN_MS_MIN);
        std::thread::sleep(Duration::from_millis(run_ms));
        let ops_before = acked.lock().unwrap().ops;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            rt.block_on(t).unwrap();
        }
        let ops = acked.lock().unwrap().ops;
        assert!(ops_before > 0, "round {round}: traffic ran before the kill");

        // Offline: the log and snapshots check out, and replay to a state.
        let v = verify(bin, &cfg);
        let (hash, index) = (
            v["state_hash"].as_str().unwrap().to_string(),
            v["last_index"].as_u64().unwrap(),
        );
        snapshots_seen = snapshots_seen.max(v["snapshots"].as_array().map_or(0, Vec::len));

        // Restart on the same directory: recovery is that same replay.
        server = start(bin, &cfg);
        assert_eq!(
            server.recovered,
            (hash.clone(), index),
            "round {round}: recovered state vs offline replay"
        );
        let orphans = server
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("rejected orders a crash left"))
            .count();
        println!(
            "round {round}: killed after {run_ms} ms and {ops} acknowledged operations in all; recovered index {index}, \
             state {}, snapshots stored {}, log from batch {}, in-flight places rejected at start: {}",
            &hash[..16],
            v["snapshots"].as_array().map_or(0, Vec::len),
            v["log"]["first_index"],
            if orphans > 0 { "yes" } else { "no" }
        );
        rt.block_on(check(server.addr, &acked, round + 1, &mut rng));
    }
    server.stop();
    assert!(snapshots_seen > 0, "recoveries started from snapshots");
    println!("crash test: {KILLS} kills in {:?}", started.elapsed());
}

/// A panic on the ledger's thread (a broken invariant, injected here with
/// `BOURSE_FAULT`, which debug builds read) stops the whole process rather
/// than leaving a node that accepts connections and answers nothing; started
/// again on its directory, it has every order it acknowledged.
#[test]
fn a_panic_in_the_ledger_stops_the_process_and_a_restart_keeps_what_it_acknowledged() {
    let bin = env!("CARGO_BIN_EXE_bourse");
    let (_cleanup, cfg, rt) = scratch("failstop", config);

    // The ledger takes three placements from sessions, and panics on the fourth.
    let mut server = start_with(bin, &cfg, &[("BOURSE_FAULT", "ledger-place:3")]);
    let place = |k: usize| json!({"cl_id": format!("fs-{k}"), "sym": "BTC-USD", "side": "buy", "type": "limit", "px": format!("{}", 29_000 + k), "qty": "0.01"});
    let acked: Vec<u64> = rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        a.login("alice", "alice-pass").await;
        let mut ids = Vec::new();
        for k in 0..3 {
            ids.push(a.ok("order.place", place(k)).await["order_id"].as_u64().expect("an order id"));
        }
        // The fourth is never answered: the connection ends with the process.
        let id = a.next_id;
        a.send_raw(Message::Text(json!({"op": "order.place", "id": id, "args": place(3)}).to_string().into())).await;
        let end = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(end, a.ws.next()).await.expect("the connection ends in time") {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_ne!(v["id"].as_u64(), Some(id), "the fourth placement was answered: {v}");
                }
                Some(Ok(_)) => {}
            }
        }
        ids
    });
    let log = server.aborted("its ledger panicked");
    assert!(log.contains("the process stops"), "the stop is logged:\n{log}");
    assert!(log.contains("fault injected at ledger-place"), "the panic is reported:\n{log}");
    drop(server);

    // Started again (no fault): the three acknowledged orders are open,
    // each once, under the ids it was given.
    server = start(bin, &cfg);
    rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        a.login("alice", "alice-pass").await;
        let open = open_orders(&mut a).await;
        let want: Vec<(String, u64)> = acked.iter().enumerate().map(|(k, id)| (format!("fs-{k}"), *id)).collect();
        assert_eq!(open, want, "every acknowledged order, and nothing else");
    });
    server.stop();
}

/// The account's open orders as `(cl_id, order id)`, sorted.
async fn open_orders(a: &mut Client) -> Vec<(String, u64)> {
    let orders = a.ok("account.orders", json!({})).await["orders"].as_array().unwrap().clone();
    let mut open: Vec<(String, u64)> =
        orders.iter().map(|o| (o["cl_id"].as_str().unwrap().to_string(), o["order_id"].as_u64().unwrap())).collect();
    open.sort();
    open
}

/// A disk that fails the journal's `fdatasync` (injected with
/// `BOURSE_FAULT=journal-sync:N`, as a full or failing disk would) stops
/// the node: the order whose batch failed is answered `internal` with
/// outcome `unknown` (or its connection ends with the process), never
/// `ok`; the process aborts rather than serving a state that ran ahead of
/// its log. Started again, every acknowledged order is there, and the
/// unknown one is reconciled by its `cl_id`: placed again, it exists once.
#[test]
fn a_failed_journal_sync_stops_the_process_and_its_order_is_reconciled_by_cl_id() {
    let bin = env!("CARGO_BIN_EXE_bourse");
    let (_cleanup, cfg, rt) = scratch("syncfail", config);
    // The first start writes the configuration's setup; the fault counts
    // the syncs of the second: its fourth fails.
    start(bin, &cfg).stop();
    let mut server = start_with(bin, &cfg, &[("BOURSE_FAULT", "journal-sync:3")]);
    let place = |k: usize| json!({"cl_id": format!("sf-{k}"), "sym": "BTC-USD", "side": "buy", "type": "limit", "px": format!("{}", 29_000 + k), "qty": "0.01"});
    // Orders one at a time until one is not acknowledged (an order's
    // acceptance and its book's outcome take one or two syncs).
    let (acked, unknown): (Vec<u64>, usize) = rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        a.login("alice", "alice-pass").await;
        let mut ids = Vec::new();
        for k in 0..10 {
            let id = a.next_id;
            a.next_id += 1;
            a.send_raw(Message::Text(json!({"op": "order.place", "id": id, "args": place(k)}).to_string().into())).await;
            let end = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                match tokio::time::timeout_at(end, a.ws.next()).await.expect("an answer or the end of the connection in time") {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return (ids, k),
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        if v["id"].as_u64() != Some(id) {
                            continue;
                        }
                        if v["ok"] == json!(true) {
                            ids.push(v["res"]["order_id"].as_u64().expect("an order id"));
                            break;
                        }
                        assert_eq!(v["err"]["code"], json!("internal"), "{v}");
                        assert_eq!(v["err"]["outcome"], json!("unknown"), "{v}");
                        return (ids, k);
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
        panic!("ten orders were acknowledged: no sync failed");
    });
    assert!(acked.len() <= 3, "no more than the syncs before the fault: {acked:?}");
    let log = server.aborted("its journal failed");
    assert!(log.contains("event log sync failed"), "the failure is logged:\n{log}");
    assert!(log.contains("answered with outcome unknown"), "what waited was answered:\n{log}");
    drop(server);

    server = start(bin, &cfg);
    rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        a.login("alice", "alice-pass").await;
        // The unknown order, placed again by its cl_id: new or a duplicate
        // of the one the log kept, never a second order.
        let again = a.ok("order.place", place(unknown)).await;
        let again_id = again["order_id"].as_u64().expect("an order id");
        let open = open_orders(&mut a).await;
        let mut want: Vec<(String, u64)> = acked.iter().enumerate().map(|(k, id)| (format!("sf-{k}"), *id)).collect();
        want.push((format!("sf-{unknown}"), again_id));
        want.sort();
        assert_eq!(open, want, "every acknowledged order, and the reconciled one once");
    });
    server.stop();
}

/// A flood of connections cannot take the file descriptors the node needs
/// for itself. Under an open-file limit of 350 (`ulimit -n`, soft and hard)
/// the server holds at most 350 - `FDS_RESERVED` sockets: of 400 clients
/// connecting at once beside a trader, those past that wait in the
/// kernel's backlog. The trader's orders meanwhile roll the event log over
/// several new segment files and snapshots, every one acknowledged, and the
/// node stays up; once the flood closes, new connections are taken again.
#[test]
fn a_connection_flood_leaves_the_node_the_files_it_needs() {
    use std::os::unix::fs::PermissionsExt;
    const LIMIT: u64 = 350;
    const FLOOD: usize = 400;
    let bin = env!("CARGO_BIN_EXE_bourse");
    let (dir, cfg, rt) = scratch("fdflood", config);
    let limited = dir.0.join("bourse-limited.sh");
    std::fs::write(&limited, format!("#!/bin/sh\nulimit -n {LIMIT} || exit 97\nexec '{bin}' \"$@\"\n")).unwrap();
    std::fs::set_permissions(&limited, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = start(limited.to_str().unwrap(), &cfg);
    let sockets_max = (LIMIT - bourse::fds::FDS_RESERVED) as usize;
    rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        a.login("alice", "alice-pass").await;
        let url = format!("ws://{}/ws", server.addr);
        let attempts = (0..FLOOD).map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(url)).await.ok().and_then(Result::ok)
            })
        });
        let mut held = Vec::new();
        for t in futures_util::future::join_all(attempts).await {
            if let Some((ws, _)) = t.unwrap() {
                held.push(ws);
            }
        }
        assert!(!held.is_empty() && held.len() < sockets_max, "{} of {FLOOD} connected; at most {sockets_max} sockets", held.len());
        // Enough events to close several 16 KiB log segments and write
        // snapshots while every socket the budget allows is held.
        for k in 0..300 {
            let o = a.ok("order.place", json!({"cl_id": format!("fd-{k}"), "sym": "BTC-USD", "side": "buy", "type": "limit", "px": "29000", "qty": "0.01"})).await;
            a.ok("order.cancel", json!({"sym": "BTC-USD", "order_id": o["order_id"]})).await;
        }
        drop(held);
        // Accepting again once the flood is gone.
        let again = tokio::time::timeout(Duration::from_secs(10), Client::connect(server.addr)).await;
        assert!(again.is_ok(), "a new connection is taken once the flood has closed");
    });
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains(&format!("open_files_max={LIMIT}")), "the limit is read:\n{log}");
    assert!(log.contains("limits.connections_max is above what the open-file limit leaves"), "connections_max is lowered:\n{log}");
    assert!(!log.contains("Too many open files"), "no file failed to open:\n{log}");
    server.stop();
}

/// The account stream resumes across a kill: PROTOCOL.md section 6 makes
/// every private event "resumable from the persisted account log". Alice
/// sees her stream up to some version; the process is killed; on a new
/// connection she resumes from an earlier version and is sent exactly the
/// messages she had been sent after it, byte for byte as before (ts
/// included), then the live ones, chained. A client already at the last
/// version resumes with nothing to replay. A `trades` subscriber resumes
/// across the kill without losing a trade. (Snapshots are rare in this
/// configuration, so the restart replays every batch; a version older than
/// what replay met gets a snapshot, as for any ring.)
#[test]
fn account_and_trades_streams_resume_across_a_kill() {
    let bin = env!("CARGO_BIN_EXE_bourse");
    let rare = |data: &Path| {
        config(data)
            .replace("snapshot_every_events = 300", "snapshot_every_events = 1000000")
            .replace("snapshot_every_secs = 1", "snapshot_every_secs = 3600")
            .replace("log_retention_events = 600", "log_retention_events = 1000000")
    };
    let (_cleanup, cfg, rt) = scratch("account-resume", rare);
    let server = start(bin, &cfg);
    let place = |cl: &str, side: &str, px: u32| json!({"cl_id": cl, "sym": "BTC-USD", "side": side, "type": "limit", "px": px.to_string(), "qty": "0.02"});
    // Every message of alice's stream after its snapshot, in order.
    let seen: Vec<Value> = rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        a.login("alice", "alice-pass").await;
        let mut b = Client::connect(server.addr).await;
        b.login("bob", "bob-pass-1").await;
        a.ok("subscribe", json!({"ch": "account"})).await;
        let snap = within(a.event(|v| v["ch"] == "account" && v["type"] == "snapshot")).await;
        let mut last = snap["seq"].as_u64().unwrap();
        // Orders that rest, fill (both sides) and are cancelled.
        for k in 0..4u32 {
            a.ok("order.place", place(&format!("r{k}"), "buy", 29_990 + k)).await;
        }
        b.ok("order.place", place("x0", "sell", 29_990)).await;
        a.ok("order.cancel", json!({"sym": "BTC-USD", "cl_id": "r1"})).await;
        let want = last + 1;
        let mut seen = Vec::new();
        // Wait for the messages of the cancel's release (the last command).
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < end {
            let v = match tokio::time::timeout(Duration::from_millis(500), a.event(|v| v["ch"] == "account")).await {
                Ok(v) => v,
                Err(_) => break,
            };
            assert_eq!(v["prev"].as_u64(), Some(last), "chained: {v}");
            last = v["seq"].as_u64().unwrap();
            seen.push(v);
        }
        assert!(seen.len() >= 10, "orders, fills and balances: {} messages from {want}", seen.len());
        assert!(seen.iter().any(|v| v["type"] == "fill"), "a fill among them");
        seen
    });
    let epoch = seen[0]["epoch"].as_u64().unwrap();
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();
    server.kill();

    let server = start(bin, &cfg);
    rt.block_on(async {
        // From the middle: what came after it, exactly as sent before.
        let from = seen[seen.len() / 2 - 1]["seq"].as_u64().unwrap();
        let mut a = Client::connect(server.addr).await;
        a.login("alice", "alice-pass").await;
        let r = a.ok("subscribe", json!({"ch": "account", "resume": {"epoch": epoch, "seq": from}})).await;
        assert_eq!(r["subs"][0]["mode"], "resumed", "{r}");
        assert_eq!(r["subs"][0]["from_seq"].as_u64(), Some(from + 1), "{r}");
        let expected: Vec<&Value> = seen.iter().filter(|v| v["seq"].as_u64().unwrap() > from).collect();
        for want in expected {
            let got = within(a.event(|v| v["ch"] == "account")).await;
            assert_eq!(&got, want, "replayed as it was first sent");
        }
        // Then live ones, chained on: bob's sell fills alice's best bid (r2).
        let mut b = Client::connect(server.addr).await;
        b.login("bob", "bob-pass-1").await;
        b.ok("order.place", place("x1", "sell", 29_990)).await;
        let next = within(a.event(|v| v["ch"] == "account")).await;
        assert_eq!(next["prev"].as_u64(), Some(last), "{next}");
        assert_eq!(next["epoch"].as_u64(), Some(epoch), "{next}");

        // The trades stream resumes too: the trade before the kill (alice's
        // r3 filled by bob's x0, trade 1) is replayed, then bob's x1.
        let mut v = Client::connect(server.addr).await;
        let r = v.ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"], "resume": {"BTC-USD": {"epoch": epoch, "seq": 0}}})).await;
        assert_eq!(r["subs"][0]["mode"], "resumed", "{r}");
        let t = within(v.event(|v| v["ch"] == "trades")).await;
        assert_eq!((t["prev"].as_u64(), t["seq"].as_u64()), (Some(0), Some(1)), "{t}");
        assert_eq!((&t["data"][0]["px"], &t["data"][0]["qty"], &t["data"][0]["taker"]), (&json!("29993"), &json!("0.02"), &json!("sell")), "{t}");
        let t = within(v.event(|v| v["ch"] == "trades")).await;
        assert_eq!((t["prev"].as_u64(), t["seq"].as_u64()), (Some(1), Some(2)), "{t}");

        // At the last version before the kill: nothing to replay, then live.
        let mut c = Client::connect(server.addr).await;
        c.login("alice", "alice-pass").await;
        let now = next["seq"].as_u64().unwrap();
        let mut upto = now;
        while let Ok(v) = tokio::time::timeout(Duration::from_millis(300), a.event(|v| v["ch"] == "account")).await {
            upto = v["seq"].as_u64().unwrap();
        }
        let r = c.ok("subscribe", json!({"ch": "account", "resume": {"epoch": epoch, "seq": upto}})).await;
        assert_eq!(r["subs"][0]["mode"], "resumed", "{r}");
        assert!(r["subs"][0].get("from_seq").is_none(), "nothing to replay: {r}");
        c.ok("order.cancel", json!({"sym": "BTC-USD", "cl_id": "r0"})).await;
        let v = within(c.event(|v| v["ch"] == "account")).await;
        assert_eq!(v["prev"].as_u64(), Some(upto), "{v}");
    });
    server.stop();
}

/// `f`'s value, or a failed test after 10 s (a stream's heartbeats keep a
/// client's wait for an event from timing out by itself).
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("an account message within 10 s")
}

/// A login outlives a kill: `session.resume` with a token from before a
/// `kill -9` logs the client back in on the restarted node, and a token
/// whose session logged out stays refused. (The node writes its tokens out
/// every 500 ms; the test waits past that before the kill.)
#[test]
fn a_login_outlives_a_kill_and_a_logout_stays_ended() {
    let bin = env!("CARGO_BIN_EXE_bourse");
    let (_cleanup, cfg, rt) = scratch("token-kill", config);
    let server = start(bin, &cfg);
    let (alice, bob) = rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        let alice = a.login("alice", "alice-pass").await["session"]["token"].as_str().unwrap().to_string();
        let mut b = Client::connect(server.addr).await;
        let bob = b.login("bob", "bob-pass-1").await["session"]["token"].as_str().unwrap().to_string();
        b.ok("logout", json!({})).await;
        (alice, bob)
    });
    std::thread::sleep(Duration::from_millis(1_500));
    server.kill();

    let server = start(bin, &cfg);
    rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        a.ok("session.resume", json!({"token": alice, "streams": {}})).await;
        let orders = a.ok("account.orders", json!({})).await;
        assert!(orders["orders"].is_array(), "logged in again as alice: {orders}");
        let mut b = Client::connect(server.addr).await;
        assert_eq!(b.err("session.resume", json!({"token": bob, "streams": {}})).await, "token_expired");
        assert_eq!(b.err("account.orders", json!({})).await, "auth_required");
    });
    server.stop();
}

/// A password change ends the old tokens for good: `kill -9` right after
/// its answer, and the restarted node refuses a token from before it (its
/// revocation is written out at once, not within sled's 500 ms).
#[test]
fn a_password_change_ends_the_old_tokens_across_a_kill() {
    let bin = env!("CARGO_BIN_EXE_bourse");
    let (_cleanup, cfg, rt) = scratch("password-kill", config);
    let server = start(bin, &cfg);
    let token = rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        a.login("alice", "alice-pass").await["session"]["token"].as_str().unwrap().to_string()
    });
    // The login is written out.
    std::thread::sleep(Duration::from_millis(1_500));
    rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        a.login("alice", "alice-pass").await;
        a.ok("account.password", json!({"password": "alice-pass", "new_password": "alice-after-kill"})).await;
    });
    server.kill();

    let server = start(bin, &cfg);
    rt.block_on(async {
        let mut a = Client::connect(server.addr).await;
        assert_eq!(a.err("session.resume", json!({"token": token, "streams": {}})).await, "token_expired");
        assert_eq!(a.err("auth", json!({"user": "alice", "password": "alice-pass"})).await, "bad_credentials");
        a.login("alice", "alice-after-kill").await;
    });
    server.stop();
}

/// An operator who lost the admin password sets a new one by starting the
/// node with it in `BOURSE_ADMIN_PASSWORD`: the old one stops working, and
/// a later start with the same one changes nothing. A start with none
/// given (and no password file) leaves no generated password file behind,
/// since the admin keeps the password it has.
#[test]
fn a_restart_with_another_admin_password_sets_it() {
    let bin = env!("CARGO_BIN_EXE_bourse");
    let (_cleanup, cfg, rt) = scratch("admin-reset", config);
    let login = |addr: SocketAddr, pw: &'static str| async move {
        let mut c = Client::connect(addr).await;
        let r = c.request("auth", json!({"user": "admin", "password": pw})).await;
        r["ok"] == true
    };
    let server = start(bin, &cfg);
    assert!(rt.block_on(login(server.addr, ADMIN_PASSWORD)));
    server.kill();

    let server = start_with(bin, &cfg, &[("BOURSE_ADMIN_PASSWORD", "a-new-admin-pass")]);
    assert!(server.log.lock().unwrap().iter().any(|l| l.contains("setting the password of admin")));
    assert!(rt.block_on(login(server.addr, "a-new-admin-pass")));
    assert!(!rt.block_on(login(server.addr, ADMIN_PASSWORD)), "the old password no longer logs in");
    server.kill();

    let server = start_with(bin, &cfg, &[("BOURSE_ADMIN_PASSWORD", "a-new-admin-pass")]);
    assert!(!server.log.lock().unwrap().iter().any(|l| l.contains("setting the password of admin")), "the same password is not set again");
    assert!(rt.block_on(login(server.addr, "a-new-admin-pass")));
    server.stop();

    // An empty variable counts as unset: a password is generated for the
    // start, and removed once the node finds its exchange.
    let server = start_with(bin, &cfg, &[("BOURSE_ADMIN_PASSWORD", "")]);
    assert!(server.log.lock().unwrap().iter().any(|l| l.contains("removed the one generated for this start")));
    let file = cfg.parent().unwrap().join("data").join("initial-admin-password");
    assert!(!file.exists(), "no password file names a password that does not log in");
    assert!(rt.block_on(login(server.addr, "a-new-admin-pass")));
    server.stop();

    // A password file that still logs in stays; one the admin's password
    // was set past (here by the variable) is removed.
    std::fs::write(&file, "a-new-admin-pass\n").unwrap();
    let server = start_with(bin, &cfg, &[("BOURSE_ADMIN_PASSWORD", "")]);
    assert!(file.exists(), "the file's password logs in");
    server.stop();
    let server = start_with(bin, &cfg, &[("BOURSE_ADMIN_PASSWORD", "a-third-admin-pass")]);
    assert!(!file.exists(), "the file's password was set past");
    assert!(server.log.lock().unwrap().iter().any(|l| l.contains("removed the admin password file")));
    assert!(rt.block_on(login(server.addr, "a-third-admin-pass")));
    server.stop();
    // A file written with an old password, read as the password's source.
    std::fs::write(&file, ADMIN_PASSWORD).unwrap();
    let server = start_with(bin, &cfg, &[("BOURSE_ADMIN_PASSWORD", "")]);
    assert!(!file.exists(), "the file's password does not log in");
    assert!(rt.block_on(login(server.addr, "a-third-admin-pass")));
    server.stop();
}

