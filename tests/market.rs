//! Market data over a real WebSocket: books rebuilt from snapshot and deltas
//! equal the exchange's, trades are gapless, candles agree with trades,
//! streams resume without gaps, slow clients get what their policy says.

mod support;

use std::collections::BTreeMap;

use bourse_protocol::checksum::book_checksum;
use bourse_protocol::msg::cksum_levels;
use serde_json::{json, Value};
use support::{test_config, Client};

/// One side's levels as the wire gives them: (price, quantity) strings.
type Levels = Vec<(String, String)>;

/// A client-side book: price (as an integer at the price scale) -> qty string.
#[derive(Default, Debug, Clone, PartialEq)]
struct Book {
    bids: BTreeMap<u64, (String, String)>,
    asks: BTreeMap<u64, (String, String)>,
    seq: u64,
}

fn px_key(s: &str) -> u64 {
    bourse_protocol::decimal::parse(s, 1).expect("price at scale 1")
}

impl Book {
    fn apply_levels(&mut self, v: &Value) {
        for (side, map) in [("bids", &mut self.bids), ("asks", &mut self.asks)] {
            for l in v[side].as_array().unwrap() {
                let (px, qty) = (l[0].as_str().unwrap().to_string(), l[1].as_str().unwrap().to_string());
                if bourse_protocol::decimal::parse(&qty, 2).unwrap() == 0 {
                    map.remove(&px_key(&px));
                } else {
                    map.insert(px_key(&px), (px, qty));
                }
            }
        }
    }

    fn snapshot(v: &Value) -> Book {
        let mut b = Book { seq: v["seq"].as_u64().unwrap(), ..Default::default() };
        b.apply_levels(v);
        b
    }

    fn levels(&self, depth: usize) -> (Levels, Levels) {
        let n = if depth == 0 { usize::MAX } else { depth };
        (self.bids.values().rev().take(n).cloned().collect(), self.asks.values().take(n).cloned().collect())
    }

    /// Applies a delta by the client rule; panics on a gap.
    fn delta(&mut self, v: &Value, depth: u32) {
        assert_eq!(v["prev"].as_u64().unwrap(), self.seq, "delta chains on the last seq: {v}");
        self.apply_levels(v);
        self.seq = v["seq"].as_u64().unwrap();
        if let Some(c) = v.get("cksum") {
            let (b, a) = self.levels(cksum_levels(depth));
            assert_eq!(book_checksum(&b, &a, cksum_levels(depth)) as u64, c.as_u64().unwrap(), "checksum after {v}");
        }
    }
}

/// A small deterministic generator (xorshift), seeded and printed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn random_flow(a: &mut Client, b: &mut Client, rng: &mut Rng, n: usize, tag: &str) {
    for k in 0..n {
        let c = if rng.below(2) == 0 { &mut *a } else { &mut *b };
        let side = if rng.below(2) == 0 { "buy" } else { "sell" };
        let px = 29_900 + rng.below(400) / 2; // 29900..30099, whole numbers
        let qty = (1 + rng.below(5)) * 2; // lots of 0.02
        match rng.below(10) {
            0..=6 => {
                let r = c
                    .request("order.place", json!({"cl_id": format!("{tag}{k}"), "sym": "BTC-USD", "side": side, "type": "limit",
                        "px": format!("{px}.{}", if rng.below(2) == 0 { 0 } else { 5 }), "qty": format!("0.{qty:02}")}))
                    .await;
                assert!(r["ok"] == true || r["err"]["code"] == "price_band", "{r}");
            }
            7 | 8 => {
                let open = c.ok("account.orders", json!({"sym": "BTC-USD"})).await;
                if let Some(o) = open["orders"].as_array().unwrap().first() {
                    c.ok("order.cancel", json!({"sym": "BTC-USD", "order_id": o["order_id"]})).await;
                }
            }
            _ => {
                c.request("order.place", json!({"cl_id": format!("{tag}{k}"), "sym": "BTC-USD", "side": side, "type": "market", "qty": "0.04"}))
                    .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn books_rebuilt_from_deltas_equal_fresh_snapshots_at_every_depth() {
    let seed = std::env::var("BOURSE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_1234_u64);
    println!("seed {seed}");
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut a = Client::connect(srv.addr).await;
    a.login("alice", "alice-pass").await;
    let mut b = Client::connect(srv.addr).await;
    b.login("bob", "bob-pass-1").await;
    let depths = [10u32, 50, 200, 0];
    let mut watchers = Vec::new();
    for d in depths {
        let mut w = Client::connect(srv.addr).await;
        w.ok("subscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": d, "cksum": true})).await;
        let snap = w.event(|v| v["ch"] == "book.l2" && v["type"] == "snapshot").await;
        watchers.push((d, w, Book::snapshot(&snap)));
    }
    let mut trades = Client::connect(srv.addr).await;
    trades.ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"]})).await;
    let tsnap = trades.event(|v| v["ch"] == "trades" && v["type"] == "snapshot").await;
    let mut rng = Rng(seed | 1);
    for round in 0..3 {
        random_flow(&mut a, &mut b, &mut rng, 60, &format!("r{round}-")).await;
        // Every watcher catches up to the current book and compares with a fresh snapshot.
        let mut fresh = Client::connect(srv.addr).await;
        for (d, w, book) in watchers.iter_mut() {
            fresh.ok("subscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": *d})).await;
            let snap = fresh.event(|v| v["ch"] == "book.l2" && v["type"] == "snapshot").await;
            let target = Book::snapshot(&snap);
            while book.seq < target.seq {
                let v = w.event(|v| v["ch"] == "book.l2").await;
                book.delta(&v, *d);
            }
            assert_eq!(book.seq, target.seq);
            let n = if *d == 0 { usize::MAX } else { *d as usize };
            assert_eq!(book.levels(n), target.levels(n), "depth {d} after round {round}");
            fresh.ok("unsubscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": *d})).await;
        }
    }
    // Trades: gapless ids, equal to the fills the traders got.
    let mut last = tsnap["seq"].as_u64().unwrap();
    let fills_a = a.ok("account.fills", json!({"limit": 1000})).await["fills"].as_array().unwrap().len();
    let fills_b = b.ok("account.fills", json!({"limit": 1000})).await["fills"].as_array().unwrap().len();
    let mut seen = 0;
    let mut qty_sum = 0u64;
    while seen < (fills_a + fills_b) / 2 {
        let v = trades.event(|v| v["ch"] == "trades" && v["type"] != "snapshot").await;
        assert_eq!(v["prev"].as_u64().unwrap(), last, "trades chain: {v}");
        for t in v["data"].as_array().unwrap() {
            last += 1;
            assert_eq!(t["id"].as_u64().unwrap(), last, "trade ids are gapless");
            qty_sum += bourse_protocol::decimal::parse(t["qty"].as_str().unwrap(), 2).unwrap();
            seen += 1;
        }
        assert_eq!(v["seq"].as_u64().unwrap(), last);
    }
    // Every trade is two fills (maker and taker, never the same account).
    assert_eq!(seen * 2, fills_a + fills_b);
    // Candles agree with the trades: volume over all candles equals traded quantity.
    let mut c = Client::connect(srv.addr).await;
    c.ok("subscribe", json!({"ch": "candles", "sym": ["BTC-USD"], "interval": "1d"})).await;
    let snap = c.event(|v| v["ch"] == "candles" && v["type"] == "snapshot").await;
    let vol: u64 = snap["data"].as_array().unwrap().iter().map(|k| bourse_protocol::decimal::parse(k["v"].as_str().unwrap(), 2).unwrap()).sum();
    let n: u64 = snap["data"].as_array().unwrap().iter().map(|k| k["n"].as_u64().unwrap()).sum();
    assert_eq!((vol, n), (qty_sum, seen as u64));
    c.ok("subscribe", json!({"ch": "ticker", "sym": ["BTC-USD"]})).await;
    let t = c.event(|v| v["ch"] == "ticker").await;
    assert_eq!(bourse_protocol::decimal::parse(t["data"]["volume_24h"].as_str().unwrap(), 2).unwrap(), qty_sum);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_without_gap_or_duplicate_and_falls_back_to_a_snapshot() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut a = Client::connect(srv.addr).await;
    let auth = a.login("alice", "alice-pass").await;
    let token = auth["session"]["token"].as_str().unwrap().to_string();
    let mut b = Client::connect(srv.addr).await;
    b.login("bob", "bob-pass-1").await;
    let mut w = Client::connect(srv.addr).await;
    w.ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"]})).await;
    let snap = w.event(|v| v["ch"] == "trades").await;
    let mut last = snap["seq"].as_u64().unwrap();
    let epoch = snap["epoch"].as_u64().unwrap();
    a.ok("order.place", json!({"cl_id": "m1", "sym": "BTC-USD", "side": "sell", "type": "limit", "px": "30000", "qty": "1"})).await;
    b.ok("order.place", json!({"cl_id": "t1", "sym": "BTC-USD", "side": "buy", "type": "market", "qty": "0.1"})).await;
    let v = w.event(|v| v["ch"] == "trades").await;
    last = v["seq"].as_u64().unwrap().max(last);
    drop(w);
    // Trades while disconnected.
    for k in 0..3 {
        b.ok("order.place", json!({"cl_id": format!("t{}", k + 2), "sym": "BTC-USD", "side": "buy", "type": "market", "qty": "0.02"})).await;
    }
    let mut w = Client::connect(srv.addr).await;
    let r = w.ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"], "resume": {"BTC-USD": {"epoch": epoch, "seq": last}}})).await;
    assert_eq!(r["subs"][0]["mode"], "resumed", "{r}");
    assert_eq!(r["subs"][0]["from_seq"].as_u64().unwrap(), last + 1);
    let mut got = Vec::new();
    while got.len() < 3 {
        let v = w.event(|v| v["ch"] == "trades").await;
        assert_eq!(v["prev"].as_u64().unwrap(), last);
        for t in v["data"].as_array().unwrap() {
            got.push(t["id"].as_u64().unwrap());
        }
        last = v["seq"].as_u64().unwrap();
    }
    assert_eq!(got, vec![got[0], got[0] + 1, got[0] + 2]);
    // A quiet stream: the heartbeat names the last seq sent, so loss at the tail shows.
    let hb = loop {
        let v = w.recv().await.unwrap();
        if v["ch"] == "hb" {
            break v;
        }
    };
    assert_eq!(hb["last"]["trades:BTC-USD"].as_u64().unwrap(), last, "{hb}");
    // A position the ring no longer has, or another epoch: a snapshot with the reason.
    let mut x = Client::connect(srv.addr).await;
    let r = x.ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"], "resume": {"BTC-USD": {"epoch": epoch + 1, "seq": 1}}})).await;
    assert_eq!(r["subs"][0]["mode"], "snapshot");
    assert_eq!(r["subs"][0]["reason"], "resume_unavailable");

    // The account stream: contiguous seq, resumable across a reconnect with session.resume.
    let mut acc = Client::connect(srv.addr).await;
    acc.ok("session.resume", json!({"token": token, "streams": {}})).await;
    acc.ok("subscribe", json!({"ch": "account"})).await;
    let snap = acc.event(|v| v["ch"] == "account" && v["type"] == "snapshot").await;
    let mut seq = snap["seq"].as_u64().unwrap();
    acc.ok("order.place", json!({"cl_id": "acc1", "sym": "BTC-USD", "side": "buy", "type": "limit", "px": "29000", "qty": "0.1"})).await;
    let v = acc.event(|v| v["ch"] == "account" && v["type"] == "order").await;
    assert!(v["seq"].as_u64().unwrap() > seq);
    seq = v["seq"].as_u64().unwrap();
    drop(acc);
    a.ok("order.place", json!({"cl_id": "acc2", "sym": "BTC-USD", "side": "buy", "type": "limit", "px": "29001", "qty": "0.1"})).await;
    let mut acc = Client::connect(srv.addr).await;
    let r = acc.ok("session.resume", json!({"token": token, "streams": {"account": {"epoch": 1, "seq": seq}}})).await;
    assert_eq!(r["subs"][0]["mode"], "resumed", "{r}");
    let mut next = seq;
    loop {
        let v = acc.event(|v| v["ch"] == "account").await;
        assert_eq!(v["prev"].as_u64().unwrap(), next, "account stream is contiguous: {v}");
        next = v["seq"].as_u64().unwrap();
        if v["type"] == "order" && v["data"]["cl_id"] == "acc2" {
            break;
        }
    }
    // session.resume restores the login too.
    assert!(acc.ok("account.orders", json!({})).await["orders"].as_array().unwrap().len() >= 2);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_gets_conflation_a_gap_or_a_close_and_slows_nobody() {
    let mut cfg = test_config();
    cfg.limits.outbound_msgs_max = 64;
    cfg.limits.socket_send_buffer_bytes = 8192;
    cfg.users[0].deposits.insert("BTC".into(), "100".into());
    cfg.limits.conn_msgs_per_sec = 1_000_000;
    cfg.limits.account_orders_per_sec = 1_000_000;
    let srv = bourse::spawn_server_for_tests(cfg);
    let mut a = Client::connect(srv.addr).await;
    a.login("alice", "alice-pass").await;
    let mut b = Client::connect(srv.addr).await;
    b.login("bob", "bob-pass-1").await;
    // Three slow clients, one per policy, and one fast watcher. The two
    // trades clients follow the book as well. Whether a client that does
    // not read falls behind depends on how many messages reach it, and the
    // commits' batching sets that. 1,500 orders gave about 100 trades
    // messages and about 110 book messages (about 45 KB each stream, read
    // by a fast client), and the queue's high-water mark (48 frames here)
    // with the socket buffers (some tens of KB) holds, by estimate, about
    // as many: a slow run's larger batches left the trades clients in step
    // once. 2,400 orders and the book's deltas on the same connection send
    // them, by the same estimate, some three times what they hold.
    let mut slow_book = Client::connect_slow(srv.addr).await;
    slow_book.ok("subscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": 0, "cksum": true})).await;
    let mut slow_trades = Client::connect_slow(srv.addr).await;
    slow_trades.ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"]})).await;
    slow_trades.ok("subscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": 0})).await;
    let mut slow_close = Client::connect_slow(srv.addr).await;
    slow_close.ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"], "on_lag": "disconnect"})).await;
    slow_close.ok("subscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": 0})).await;
    let mut fast = Client::connect(srv.addr).await;
    fast.ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"]})).await;
    let fsnap = fast.event(|v| v["ch"] == "trades").await;
    // The fast watcher reads all along, in its own task: it must see a gapless chain.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(u64::MAX);
    let fast_task = tokio::spawn(async move {
        let mut last = fsnap["seq"].as_u64().unwrap();
        while last < *stop_rx.borrow() {
            tokio::select! {
                _ = stop_rx.changed() => {}
                v = fast.event(|v| v["ch"] == "trades") => {
                    assert_eq!(v["prev"].as_u64().unwrap(), last, "fast watcher chain: {v}");
                    last = v["seq"].as_u64().unwrap();
                }
            }
        }
        last
    });
    // Thousands of updates: resting orders and trades, while the slow ones do not read.
    let n = 2400u64;
    let chunk = 25u64;
    let started = std::time::Instant::now();
    for c0 in (0..n).step_by(chunk as usize) {
        let mut b_sent = 0;
        for i in c0..c0 + chunk {
            a.send_raw(tokio_tungstenite::tungstenite::Message::Text(
                json!({"op": "order.place", "id": 1_000_000 + i, "args": {"cl_id": format!("s{i}"), "sym": "BTC-USD", "side": "sell", "type": "limit",
                       "px": format!("{}", 30_000 + (i % 50)), "qty": "0.02"}})
                .to_string()
                .into(),
            ))
            .await;
            if i % 3 == 0 {
                b_sent += 1;
                b.send_raw(tokio_tungstenite::tungstenite::Message::Text(
                    json!({"op": "order.place", "id": 2_000_000 + i, "args": {"cl_id": format!("k{i}"), "sym": "BTC-USD", "side": "buy", "type": "market", "qty": "0.02"}})
                        .to_string()
                        .into(),
                ))
                .await;
            }
        }
        // Order entry keeps its pace: every request answered, successfully.
        for (c, k) in [(&mut a, chunk), (&mut b, b_sent)] {
            let mut answered = 0;
            while answered < k {
                let v = c.recv().await.unwrap();
                if v.get("id").is_some() {
                    assert_eq!(v["ok"], true, "{v}");
                    answered += 1;
                }
            }
        }
    }
    println!("order entry: {n} orders in {:?} while three clients did not read", started.elapsed());
    let mut probe = Client::connect(srv.addr).await;
    probe.ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"]})).await;
    let final_trade = probe.event(|v| v["ch"] == "trades").await["seq"].as_u64().unwrap();
    stop_tx.send(final_trade).unwrap();
    let last = fast_task.await.expect("fast watcher");
    assert_eq!(last, final_trade);
    println!("{final_trade} trades");
    // The book client, read late, sees a valid (conflated) chain with good checksums.
    let snap = slow_book.event(|v| v["ch"] == "book.l2" && v["type"] == "snapshot").await;
    let mut book = Book::snapshot(&snap);
    let mut fresh = Client::connect(srv.addr).await;
    fresh.ok("subscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": 0})).await;
    let target = Book::snapshot(&fresh.event(|v| v["ch"] == "book.l2").await);
    let mut deltas = 0;
    while book.seq < target.seq {
        let v = slow_book.event(|v| v["ch"] == "book.l2").await;
        book.delta(&v, 0);
        deltas += 1;
    }
    assert_eq!(book.levels(0), target.levels(0));
    println!("book: {deltas} deltas for {} versions", target.seq - snap["seq"].as_u64().unwrap());
    // The trades client with resync: a gap, then a fresh snapshot; or (if it kept up) a clean chain.
    let mut tlast = slow_trades.event(|v| v["ch"] == "trades" && v["type"] == "snapshot").await["seq"].as_u64().unwrap();
    let mut saw_gap = false;
    while tlast < last {
        let v = slow_trades.event(|v| v["ch"] == "trades").await;
        if v["type"] == "gap" {
            saw_gap = true;
            let lost = v["lost"].as_array().unwrap();
            assert_eq!(lost[0].as_u64().unwrap(), tlast + 1, "the gap starts right after what was delivered");
            let s = slow_trades.event(|v| v["ch"] == "trades").await;
            assert_eq!(s["type"], "snapshot");
            tlast = s["seq"].as_u64().unwrap();
        } else {
            assert_eq!(v["prev"].as_u64().unwrap(), tlast);
            tlast = v["seq"].as_u64().unwrap();
        }
    }
    // The disconnect client: the notice then the close, if it fell behind.
    let mut notice = false;
    while let Some(v) = slow_close.recv().await {
        if v["op"] == "notice" {
            assert_eq!(v["code"], "slow_consumer");
            notice = true;
        }
        if v["ch"] == "trades" && v["seq"].as_u64() == Some(last) {
            break; // it kept up after all
        }
    }
    if notice {
        assert!(slow_close.recv().await.is_none(), "closed after the notice");
    }
    println!("resync gap: {saw_gap}, slow_consumer notice: {notice}");
    assert!(deltas < target.seq - snap["seq"].as_u64().unwrap(), "the book client was conflated");
    assert!(saw_gap, "the resync client got a gap");
    assert!(notice, "the disconnect client got the notice");
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_resume_refuses_bad_stream_keys_and_keeps_the_connection() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut a = Client::connect(srv.addr).await;
    let token = a.login("alice", "alice-pass").await["session"]["token"].as_str().unwrap().to_string();
    let mut c = Client::connect(srv.addr).await;
    let pos = json!({"epoch": 1, "seq": 0});
    for (key, code) in [
        ("book.l2:BTC-USD:7", "bad_request"),
        ("book.l2:NOPE-USD:50", "unknown_instrument"),
        ("candles:BTC-USD:2m", "bad_request"),
        ("nonsense", "bad_request"),
    ] {
        let r = c.request("session.resume", json!({"token": token, "streams": {key: pos}})).await;
        assert_eq!(r["err"]["code"], code, "{key}: {r}");
    }
    // The connection still works, and no refused stream lingers in heartbeats.
    let r = c.ok("session.resume", json!({"token": token, "streams": {"trades:BTC-USD": pos}})).await;
    assert_eq!(r["subs"].as_array().unwrap().len(), 1);
    let hb = loop {
        let v = c.recv().await.unwrap();
        if v["ch"] == "hb" {
            break v;
        }
    };
    assert_eq!(hb["last"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["trades:BTC-USD"]);
    srv.stop();
}

/// PROTOCOL.md's `unsubscribe` names a channel and instruments only: it
/// ends the instrument's book subscriptions of every depth and its candle
/// subscriptions of every interval; the extensions `depth` and `interval`
/// narrow it to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_without_depth_or_interval_ends_every_one() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut c = Client::connect(srv.addr).await;
    for d in [10, 50, 200] {
        c.ok("subscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": d})).await;
    }
    for i in ["1m", "5m"] {
        c.ok("subscribe", json!({"ch": "candles", "sym": ["BTC-USD", "ETH-USD"], "interval": i})).await;
    }
    c.ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"]})).await;
    c.ok("unsubscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"], "depth": 200})).await;
    c.ok("unsubscribe", json!({"ch": "candles", "sym": ["ETH-USD"], "interval": "5m"})).await;
    let last = |hb: &Value| hb["last"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let hb = c.event(|v| v["ch"] == "hb").await;
    assert_eq!(
        last(&hb),
        ["book.l2:BTC-USD:10", "book.l2:BTC-USD:50", "candles:BTC-USD:1m", "candles:BTC-USD:5m", "candles:ETH-USD:1m", "trades:BTC-USD"]
    );
    c.ok("unsubscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"]})).await;
    c.ok("unsubscribe", json!({"ch": "candles", "sym": ["BTC-USD", "ETH-USD"]})).await;
    c.events.clear();
    let hb = c.event(|v| v["ch"] == "hb").await;
    assert_eq!(last(&hb), ["trades:BTC-USD"]);
    srv.stop();
}
