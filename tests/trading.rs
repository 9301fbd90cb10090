//! Order entry over a real WebSocket against a real server on 127.0.0.1:0.

mod support;

use serde_json::json;
use support::{test_config, Client};
use tokio_tungstenite::tungstenite::Message;

async fn two_traders(addr: std::net::SocketAddr) -> (Client, Client) {
    let mut a = Client::connect(addr).await;
    a.login("alice", "alice-pass").await;
    let mut b = Client::connect(addr).await;
    b.login("bob", "bob-pass-1").await;
    (a, b)
}

fn limit(cl: &str, side: &str, px: &str, qty: &str) -> serde_json::Value {
    json!({"cl_id": cl, "sym": "BTC-USD", "side": side, "type": "limit", "px": px, "qty": qty})
}

/// Asks `c` for its account's open orders until there are `n`, for about 5 s
/// at most; the last count seen.
async fn open_orders_become(c: &mut Client, n: usize) -> usize {
    let mut seen = usize::MAX;
    for _ in 0..250 {
        seen = c.ok("account.orders", json!({})).await["orders"].as_array().unwrap().len();
        if seen == n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    seen
}

/// `user`'s BTC held, as the operator `op` sees it.
async fn btc_held(op: &mut Client, user: &str) -> String {
    let r = op.ok("admin.balances", json!({"user": user})).await;
    r["balances"].as_array().unwrap().iter().find(|b| b["asset"] == "BTC").unwrap()["held"].as_str().unwrap().to_string()
}

/// Asks the operator `op` for `user`'s BTC held until none is, for about 5 s at
/// most: an operator's view, which opens no connection of `user`'s (one would
/// change what cancel-on-disconnect `account` sees).
async fn btc_released(op: &mut Client, user: &str) -> bool {
    for _ in 0..250 {
        if btc_held(op, user).await == "0.00000000" {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// The test configuration with books that take 4 commands at once and no
/// rate limit in the way.
fn small_books_config() -> bourse_actors::config::Config {
    let mut cfg = test_config();
    cfg.limits.instrument_mailbox_max = 4;
    cfg.limits.account_orders_per_sec = 1_000_000;
    cfg.limits.conn_msgs_per_sec = 1_000_000;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_cross_partial_fill_cancel_and_balances() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let (mut a, mut b) = two_traders(srv.addr).await;
    a.ok("subscribe", json!({"ch": "account"})).await;
    b.ok("subscribe", json!({"ch": "account"})).await;

    // Alice rests a bid of 1.00 BTC at 30000.0: holds 30000.00 + 20 bps worst-case fee = 30060.00.
    let r = a.ok("order.place", limit("a1", "buy", "30000", "1")).await;
    assert_eq!(r["status"], "new");
    assert_eq!(r["dup"], false);
    let oid = r["order_id"].as_u64().unwrap();
    assert_eq!(a.balance("USD").await, ("969940.00".to_string(), "30060.00".to_string()));

    // The place response comes before any account event about the order.
    let ev = a.event(|v| v["ch"] == "account" && v["type"] == "order" && v["data"]["order_id"] == oid).await;
    assert_eq!(ev["data"]["status"], "new");

    // A repeated cl_id returns the original, no second order.
    let dup = a.ok("order.place", limit("a1", "buy", "29000", "5")).await;
    assert_eq!((dup["order_id"].as_u64().unwrap(), dup["dup"].as_bool().unwrap()), (oid, true));
    assert_eq!(a.ok("account.orders", json!({})).await["orders"].as_array().unwrap().len(), 1);

    // Bob sells 0.40 into it: a partial fill at the maker's price.
    let r = b.ok("order.place", limit("b1", "sell", "29900", "0.4")).await;
    assert_eq!(r["status"], "filled");
    assert_eq!(r["cum_qty"], "0.40");
    let fill = a.event(|v| v["ch"] == "account" && v["type"] == "fill").await;
    assert_eq!(fill["data"]["px"], "30000.0");
    assert_eq!(fill["data"]["qty"], "0.40");
    assert_eq!(fill["data"]["liq"], "maker");
    assert_eq!(fill["data"]["status"], "partially_filled");
    assert_eq!(fill["data"]["fee"], "12.00"); // 12000.00 x 10 bps
    let bfill = b.event(|v| v["ch"] == "account" && v["type"] == "fill").await;
    assert_eq!(bfill["data"]["liq"], "taker");
    assert_eq!(bfill["data"]["fee"], "24.00"); // 12000.00 x 20 bps

    // Balances on both sides: Bob received 12000 - 24 USD and gave 0.4 BTC.
    assert_eq!(b.balance("USD").await.0, "1011976.00");
    assert_eq!(b.balance("BTC").await.0, "9.60000000");
    assert_eq!(a.balance("BTC").await.0, "10.40000000");

    // Fills history for both.
    let f = a.ok("account.fills", json!({})).await;
    assert_eq!(f["fills"].as_array().unwrap().len(), 1);
    let f = b.ok("account.fills", json!({"sym": "BTC-USD"})).await;
    assert_eq!(f["fills"][0]["cl_id"], "b1");

    // Cancel the rest: everything held is released.
    let c = a.ok("order.cancel", json!({"sym": "BTC-USD", "order_id": oid})).await;
    assert_eq!(c["status"], "cancelled");
    let (avail, held) = a.balance("USD").await;
    assert_eq!(held, "0.00");
    assert_eq!(avail, "987988.00"); // 1,000,000 - 12,000 - 12 fee
    // Cancelling again, or a never-issued order, is unknown_order.
    assert_eq!(a.err("order.cancel", json!({"sym": "BTC-USD", "order_id": oid})).await, "unknown_order");
    assert_eq!(a.err("order.cancel", json!({"sym": "BTC-USD", "order_id": 999999})).await, "unknown_order");
    // Another account's order is unknown too.
    let r = b.ok("order.place", limit("b2", "sell", "31000", "0.2")).await;
    let bob_order = r["order_id"].as_u64().unwrap();
    assert_eq!(a.err("order.cancel", json!({"sym": "BTC-USD", "order_id": bob_order})).await, "unknown_order");
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amend_cancel_all_batch_and_refusals() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let (mut a, mut b) = two_traders(srv.addr).await;
    let r = a.ok("order.place", limit("x1", "buy", "29000", "1")).await;
    let oid = r["order_id"].as_u64().unwrap();
    // Amend by cl_id: qty down keeps the order, new qty reported.
    let r = a.ok("order.amend", json!({"sym": "BTC-USD", "cl_id": "x1", "qty": "0.5"})).await;
    assert_eq!((r["order_id"].as_u64().unwrap(), r["status"].as_str().unwrap()), (oid, "new"));
    // An amend that crosses trades at once at the resting price.
    b.ok("order.place", limit("y1", "sell", "29500", "0.2")).await;
    let r = a.ok("order.amend", json!({"sym": "BTC-USD", "order_id": oid, "px": "29600"})).await;
    assert_eq!(r["status"], "partially_filled");
    let orders = a.ok("account.orders", json!({})).await;
    assert_eq!(orders["orders"][0]["cum_qty"], "0.20");
    assert_eq!(orders["orders"][0]["px"], "29600.0");
    // Amending to at most what filled is invalid_amend.
    assert_eq!(a.err("order.amend", json!({"sym": "BTC-USD", "order_id": oid, "qty": "0.2"})).await, "invalid_amend");

    // Batch: results in request order, errors in place.
    let r = a
        .ok(
            "order.batch",
            json!({"orders": [limit("b1", "buy", "28000", "0.1"), limit("b2", "buy", "28000.3", "0.1"), limit("b3", "buy", "28000", "0.03"), limit("b4", "buy", "27000", "0.1")]}),
        )
        .await;
    let res = r["results"].as_array().unwrap();
    assert_eq!(res.len(), 4);
    assert_eq!(res[0]["ok"], true);
    assert_eq!(res[1]["err"]["code"], "price_tick");
    assert_eq!(res[2]["err"]["code"], "lot_size");
    assert_eq!(res[3]["res"]["cl_id"], "b4");
    // An empty batch is answered at once, with no results (heartbeats
    // would keep a client waiting for a missing answer forever).
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), a.ok("order.batch", json!({"orders": []})))
        .await
        .expect("an empty batch is answered");
    assert_eq!(r["results"], json!([]));

    // cancel_all by side.
    let r = a.ok("order.cancel_all", json!({"sym": "BTC-USD", "side": "buy"})).await;
    assert_eq!(r["cancelled"], 3);
    assert!(a.ok("account.orders", json!({})).await["orders"].as_array().unwrap().is_empty());

    // insufficient_funds leaves balances unchanged.
    let mut c = Client::connect(srv.addr).await;
    c.login("carol", "carol-pass").await;
    let before = c.balance("USD").await;
    let r = c.request("order.place", limit("c1", "buy", "30000", "1")).await;
    assert_eq!(r["err"]["code"], "insufficient_funds", "{r}");
    assert_eq!(r["err"]["num"], 3002);
    assert_eq!(r["err"]["outcome"], "rejected");
    assert_eq!(c.balance("USD").await, before);
    // The refused order did not use up its cl_id.
    let r = c.ok("order.place", limit("c1", "buy", "30000", "0.02")).await;
    assert_eq!(r["dup"], false);

    // Price band, min qty, post-only, FOK.
    assert_eq!(a.err("order.place", limit("p1", "buy", "40000", "0.1")).await, "price_band");
    assert_eq!(a.err("order.place", limit("p2", "buy", "29000", "0")).await, "min_qty");
    b.ok("order.place", limit("s9", "sell", "30500", "0.1")).await;
    let mut po = limit("p3", "buy", "30500", "0.1");
    po["post_only"] = json!(true);
    assert_eq!(a.err("order.place", po).await, "post_only_would_take");
    let mut fok = limit("p4", "buy", "30500", "1");
    fok["tif"] = json!("fok");
    assert_eq!(a.err("order.place", fok).await, "fok_unfilled");
    let mut ioc = limit("p5", "buy", "30500", "1");
    ioc["tif"] = json!("ioc");
    let r = a.ok("order.place", ioc).await;
    assert_eq!((r["status"].as_str().unwrap(), r["reason"].as_str().unwrap(), r["cum_qty"].as_str().unwrap()), ("cancelled", "ioc", "0.10"));
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_roles_and_operator_ops() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut x = Client::connect(srv.addr).await;
    assert_eq!(x.err("order.place", limit("z", "buy", "30000", "1")).await, "auth_required");
    assert_eq!(x.err("auth", json!({"user": "alice", "password": "wrong"})).await, "bad_credentials");
    assert_eq!(x.err("auth", json!({"user": "nobody", "password": "wrong"})).await, "bad_credentials");
    assert_eq!(x.err("auth", json!({"user": "fees", "password": "x"})).await, "bad_credentials");
    let res = x.login("alice", "alice-pass").await;
    assert_eq!(res["role"], "trader");
    assert!(res["session"]["token"].as_str().unwrap().len() >= 32);
    assert_eq!(x.err("auth", json!({"user": "alice", "password": "alice-pass"})).await, "bad_request");
    assert_eq!(x.err("admin.deposit", json!({"user": "alice", "asset": "USD", "amount": "1.00"})).await, "permission_denied");

    let mut op = Client::connect(srv.addr).await;
    op.login("admin", &srv.admin_password).await;
    assert_eq!(op.err("order.place", limit("o", "buy", "30000", "1")).await, "permission_denied");
    // Operator ops: user, deposit, withdraw, key, instrument, halt.
    op.ok("admin.user.create", json!({"user": "dave", "password": "dave-pass", "role": "trader"})).await;
    let r = op.ok("admin.deposit", json!({"user": "dave", "asset": "USD", "amount": "500.00"})).await;
    assert_eq!(r["available"], "500.00");
    assert_eq!(op.err("admin.withdraw", json!({"user": "dave", "asset": "USD", "amount": "600.00"})).await, "insufficient_funds");
    assert_eq!(op.err("admin.deposit", json!({"user": "dave", "asset": "XYZ", "amount": "1"})).await, "unknown_asset");
    let r = op.ok("admin.withdraw", json!({"user": "dave", "asset": "USD", "amount": "100.00"})).await;
    assert_eq!(r["available"], "400.00");
    let key = op.ok("admin.apikey.create", json!({"user": "dave", "alg": "hmac-sha256"})).await;
    let (kid, secret) = (key["key"].as_str().unwrap().to_string(), key["secret"].as_str().unwrap().to_string());
    assert_eq!(secret.len(), 64);

    // API-key auth with HMAC-SHA256; a replayed signature is refused.
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let payload = format!("{ts}\nn-1\nauth\n{kid}");
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = hex::encode(ring::hmac::sign(&k, payload.as_bytes()).as_ref());
    let args = json!({"key": kid, "ts": ts, "nonce": "n-1", "sig": sig, "alg": "hmac-sha256"});
    let mut d = Client::connect(srv.addr).await;
    assert_eq!(d.ok("auth", args.clone()).await["user"], "dave");
    let mut d2 = Client::connect(srv.addr).await;
    assert_eq!(d2.err("auth", args).await, "nonce_reused");
    let bad = json!({"key": kid, "ts": ts, "nonce": "n-2", "sig": "00".repeat(32), "alg": "hmac-sha256"});
    assert_eq!(d2.err("auth", bad).await, "bad_signature");
    let old = ts - 10_000_000;
    let payload = format!("{old}\nn-3\nauth\n{kid}");
    let sig = hex::encode(ring::hmac::sign(&k, payload.as_bytes()).as_ref());
    assert_eq!(d2.err("auth", json!({"key": kid, "ts": old, "nonce": "n-3", "sig": sig, "alg": "hmac-sha256"})).await, "ts_outside_window");

    // Halt: orders refused with market_closed; resume trades again.
    assert_eq!(op.ok("admin.instrument.halt", json!({"sym": "BTC-USD"})).await["state"], "halted");
    assert_eq!(x.err("order.place", limit("h1", "buy", "30000", "0.1")).await, "market_closed");
    op.ok("admin.instrument.resume", json!({"sym": "BTC-USD"})).await;
    x.ok("order.place", limit("h2", "buy", "30000", "0.1")).await;
    let r = op.ok("admin.cancel_all", json!({"user": "alice"})).await;
    assert_eq!(r["cancelled"], 1);
    let fees = op.ok("admin.balances", json!({"user": "fees"})).await;
    assert!(fees["balances"].is_array());
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_keeps_the_connection_and_msgpack_behaves_like_json() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut c = Client::connect(srv.addr).await;
    c.send_raw(Message::Text("{not json".into())).await;
    let r = c.recv().await.unwrap();
    assert_eq!(r["err"]["code"], "bad_request");
    assert_eq!(c.err("no.such.op", json!({})).await, "unknown_op");
    assert!(c.ok("ping", json!({})).await["ts"].as_u64().is_some());
    // Twenty more protocol errors within 10 s close the connection (1008).
    for _ in 0..18 {
        c.send_raw(Message::Text("[]".into())).await;
        assert_eq!(c.recv().await.unwrap()["ok"], false);
    }
    c.send_raw(Message::Text("[]".into())).await;
    let mut closed = false;
    for _ in 0..3 {
        match c.recv().await {
            None => {
                closed = true;
                break;
            }
            Some(_) => continue,
        }
    }
    assert!(closed, "the 21st protocol error closes the connection");

    // An oversized frame: frame_too_large, then close.
    let mut big = Client::connect(srv.addr).await;
    big.send_raw(Message::Text("x".repeat(70_000).into())).await;
    let r = big.recv().await;
    if let Some(r) = r {
        assert_eq!(r["err"]["code"], "frame_too_large");
    }

    // MessagePack: the same session as JSON.
    let mut m = Client::connect_msgpack(srv.addr).await;
    m.login("alice", "alice-pass").await;
    let r = m.ok("order.place", limit("m1", "buy", "29000", "0.1")).await;
    assert_eq!(r["status"], "new");
    assert_eq!(m.err("order.place", limit("m2", "buy", "29000.3", "0.1")).await, "price_tick");
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_disconnect_and_cancel_after() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut a = Client::connect(srv.addr).await;
    a.ok("auth", json!({"user": "alice", "password": "alice-pass", "cod": "connection"})).await;
    a.ok("order.place", limit("d1", "buy", "29000", "0.1")).await;
    // Orders placed in a batch are the connection's too.
    let r = a.ok("order.batch", json!({"orders": [limit("d1b", "buy", "28990", "0.1"), limit("d1c", "buy", "28980", "0.1")]})).await;
    assert_eq!(r["results"].as_array().unwrap().iter().filter(|x| x["ok"] == true).count(), 2);
    drop(a);
    let mut watch = Client::connect(srv.addr).await;
    watch.login("alice", "alice-pass").await;
    assert_eq!(open_orders_become(&mut watch, 0).await, 0, "cancel-on-disconnect cancelled the order");

    // A logout ends the login's cancel-on-disconnect: a later login on the
    // same connection, here bob's, does not cancel by the cl_ids alice
    // placed through it.
    let mut b = Client::connect(srv.addr).await;
    b.login("bob", "bob-pass-1").await;
    b.ok("order.place", limit("l1", "sell", "31000", "0.1")).await;
    let mut x = Client::connect(srv.addr).await;
    x.ok("auth", json!({"user": "alice", "password": "alice-pass", "cod": "connection"})).await;
    x.ok("order.place", limit("l1", "buy", "29000", "0.1")).await;
    x.ok("logout", json!({})).await;
    x.ok("auth", json!({"user": "bob", "password": "bob-pass-1", "cod": "connection"})).await;
    drop(x);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let open = b.ok("account.orders", json!({})).await;
    assert_eq!(open["orders"].as_array().unwrap().len(), 1, "bob's l1 was not placed through that login: {open}");
    assert_eq!(watch.ok("account.orders", json!({})).await["orders"].as_array().unwrap().len(), 1, "a logout cancels nothing");
    watch.ok("order.cancel_all", json!({})).await;
    b.ok("order.cancel_all", json!({})).await;

    // A session resumed on a connection that logged out before is the
    // resumed login's, cancel-on-disconnect included.
    let mut y = Client::connect(srv.addr).await;
    let token = y.ok("auth", json!({"user": "bob", "password": "bob-pass-1", "cod": "account"})).await["session"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut z = Client::connect(srv.addr).await;
    z.login("bob", "bob-pass-1").await;
    z.ok("logout", json!({})).await;
    z.ok("session.resume", json!({"token": token, "streams": {}})).await;
    z.ok("order.place", limit("r1", "sell", "31000", "0.1")).await;
    drop(y);
    drop(b);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut op = Client::connect(srv.addr).await;
    op.login("admin", &srv.admin_password).await;
    assert_ne!(btc_held(&mut op, "bob").await, "0.00000000", "the resumed connection is still open");
    drop(z);
    assert!(btc_released(&mut op, "bob").await, "the resumed login's cod account cancelled bob's orders with its last connection");

    // Dead-man switch.
    watch.ok("order.place", limit("d2", "buy", "29000", "0.1")).await;
    let r = watch.ok("order.cancel_after", json!({"timeout_ms": 200})).await;
    assert!(r["at"].as_u64().unwrap() > 0);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(watch.ok("account.orders", json!({})).await["orders"].as_array().unwrap().is_empty());

    // The switch is the account's, not the connection's: it fires after the
    // connection that armed it is gone (what a dead-man switch is for).
    let mut d = Client::connect(srv.addr).await;
    d.login("alice", "alice-pass").await;
    d.ok("order.place", limit("d3", "buy", "29000", "0.1")).await;
    d.ok("order.cancel_after", json!({"timeout_ms": 300})).await;
    drop(d);
    assert_eq!(open_orders_become(&mut watch, 0).await, 0, "the switch fired with the connection that armed it gone");
    // Another connection of the account disarms it.
    let mut e = Client::connect(srv.addr).await;
    e.login("alice", "alice-pass").await;
    e.ok("order.place", limit("d4", "buy", "29000", "0.1")).await;
    e.ok("order.cancel_after", json!({"timeout_ms": 300})).await;
    assert_eq!(watch.ok("order.cancel_after", json!({"timeout_ms": 0})).await["at"], 0);
    drop(e);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(watch.ok("account.orders", json!({})).await["orders"].as_array().unwrap().len(), 1, "disarmed from another connection");
    srv.stop();
}

/// Cancel-on-disconnect acts for a client that is gone, so it waits out
/// load rather than dropping a cancel: a closing `cod: connection` session
/// with more open orders on a book than the book takes commands at once
/// (4 here) still cancels every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_disconnect_cancels_every_order_past_a_books_load_limit() {
    let srv = bourse::spawn_server_for_tests(small_books_config());
    let mut a = Client::connect(srv.addr).await;
    a.ok("auth", json!({"user": "alice", "password": "alice-pass", "cod": "connection"})).await;
    let n = 60;
    for i in 0..n {
        a.ok("order.place", limit(&format!("k{i}"), "buy", "29000", "0.02")).await;
    }
    let mut watch = Client::connect(srv.addr).await;
    watch.login("alice", "alice-pass").await;
    assert_eq!(watch.ok("account.orders", json!({})).await["orders"].as_array().unwrap().len(), n);
    drop(a);
    assert_eq!(open_orders_become(&mut watch, 0).await, 0, "every order placed through the closed connection was cancelled");
    srv.stop();
}

/// Over the wire, through the ledger and instrument actors: an amend that
/// lowers a buy's price or a sell's quantity gives back the funds it no
/// longer needs, on `account.balances` and on the account stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amend_down_gives_back_what_the_order_no_longer_needs() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let (mut a, _b) = two_traders(srv.addr).await;
    a.ok("order.place", limit("ab", "buy", "29000", "0.1")).await;
    // 0.1 BTC at 29000: 2900.00 USD, and at most 20 bps of fee, 5.80.
    assert_eq!(a.balance("USD").await.1, "2905.80");
    a.ok("order.amend", json!({"sym": "BTC-USD", "cl_id": "ab", "px": "28000"})).await;
    assert_eq!(a.balance("USD").await.1, "2805.60");
    a.ok("subscribe", json!({"ch": "account"})).await;
    a.ok("order.amend", json!({"sym": "BTC-USD", "cl_id": "ab", "qty": "0.04"})).await;
    let m = a.event(|v| v["ch"] == "account" && v["type"] == "balance" && v["data"]["asset"] == "USD").await;
    assert_eq!(m["data"]["held"], "1122.24", "{m}");
    assert_eq!(a.balance("USD").await, ("998877.76".to_string(), "1122.24".to_string()));
    a.ok("order.place", limit("as", "sell", "31000", "0.1")).await;
    assert_eq!(a.balance("BTC").await.1, "0.10000000");
    a.ok("order.amend", json!({"sym": "BTC-USD", "cl_id": "as", "qty": "0.06"})).await;
    assert_eq!(a.balance("BTC").await, ("9.94000000".to_string(), "0.06000000".to_string()));
    srv.stop();
}

/// A buy that takes at a better price than its own and rests the rest
/// holds only what the rest can need: the price improvement is given back
/// at once, not when the order ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taker_that_rests_keeps_only_what_its_rest_needs() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let (mut a, mut b) = two_traders(srv.addr).await;
    b.ok("order.place", limit("bs", "sell", "28900", "0.02")).await;
    let r = a.ok("order.place", limit("ab", "buy", "29000", "0.1")).await;
    assert_eq!((r["status"].as_str(), r["cum_qty"].as_str()), (Some("partially_filled"), Some("0.02")), "{r}");
    // 0.08 left at 29000: 2320.00, and the worst-case fee still to pay on
    // the whole order (5.80) less the 1.16 the fill paid.
    assert_eq!(a.balance("USD").await.1, "2324.64");
    a.ok("order.cancel", json!({"sym": "BTC-USD", "cl_id": "ab"})).await;
    assert_eq!(a.balance("USD").await, ("999420.84".to_string(), "0.00".to_string()));
    srv.stop();
}

/// `admin.user.password` (an extension): an operator sets a trader's
/// password; the old one no longer logs in, the new one does, the
/// trader's session tokens from before are refused by `session.resume`,
/// and a connection logged in with the old one is told and logged out.
/// Only operators may, for users that exist, with a valid password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_a_password_and_the_old_logins_end() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut a = Client::connect(srv.addr).await;
    let token = a.login("alice", "alice-pass").await["session"]["token"].as_str().unwrap().to_string();
    assert_eq!(a.err("admin.user.password", json!({"user": "alice", "password": "mine-now-1"})).await, "permission_denied");
    let mut op = Client::connect(srv.addr).await;
    op.login("admin", &srv.admin_password).await;
    assert_eq!(op.err("admin.user.password", json!({"user": "nobody", "password": "whatever-1"})).await, "bad_request");
    assert_eq!(op.err("admin.user.password", json!({"user": "alice", "password": "short"})).await, "bad_request");
    let r = op.ok("admin.user.password", json!({"user": "alice", "password": "alice-new-pass"})).await;
    assert_eq!(r, json!({"user": "alice"}));
    let n = a.event(|v| v["op"] == "notice").await;
    assert_eq!((n["code"].as_str(), n["reason"].as_str()), (Some("logged_out"), Some("password_set")), "{n}");
    assert_eq!(a.err("account.orders", json!({})).await, "auth_required");
    a.login("alice", "alice-new-pass").await;
    a.ok("account.orders", json!({})).await;
    let mut c = Client::connect(srv.addr).await;
    assert_eq!(c.err("auth", json!({"user": "alice", "password": "alice-pass"})).await, "bad_credentials");
    c.login("alice", "alice-new-pass").await;
    let mut d = Client::connect(srv.addr).await;
    assert_eq!(d.err("session.resume", json!({"token": token, "streams": {}})).await, "token_expired");
    // Bob's login is untouched.
    let mut b = Client::connect(srv.addr).await;
    b.login("bob", "bob-pass-1").await;
    srv.stop();
}

/// A user changes its own password with the current one: every login made
/// with the old one ends (the one that changed it too), the new one logs
/// in, and other users are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_changes_its_own_password_and_its_logins_end() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut nobody = Client::connect(srv.addr).await;
    let change = |old: &str, new: &str| json!({"password": old, "new_password": new});
    assert_eq!(nobody.err("account.password", change("alice-pass", "alice-own-pass")).await, "auth_required");
    let (mut a, mut b) = two_traders(srv.addr).await;
    let mut a2 = Client::connect(srv.addr).await;
    a2.login("alice", "alice-pass").await;
    assert_eq!(a.err("account.password", change("not-it-at-all", "alice-own-pass")).await, "bad_credentials");
    assert_eq!(a.err("account.password", change("alice-pass", "short")).await, "bad_request");
    a.ok("account.orders", json!({})).await;
    let r = a.ok("account.password", change("alice-pass", "alice-own-pass")).await;
    assert_eq!(r, json!({"user": "alice"}));
    let n = a2.event(|v| v["op"] == "notice").await;
    assert_eq!((n["code"].as_str(), n["reason"].as_str()), (Some("logged_out"), Some("password_set")), "{n}");
    assert_eq!(a2.err("account.orders", json!({})).await, "auth_required");
    let mut ended = false;
    for _ in 0..250 {
        if a.request("account.orders", json!({})).await["err"]["code"] == "auth_required" {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ended, "the connection that changed the password is logged out too");
    assert_eq!(nobody.err("auth", json!({"user": "alice", "password": "alice-pass"})).await, "bad_credentials");
    nobody.login("alice", "alice-own-pass").await;
    nobody.ok("account.orders", json!({})).await;
    b.ok("account.orders", json!({})).await;
    srv.stop();
}

/// Requests sent right behind `auth`, before its answer, are handled after
/// it: as logged in when it succeeds, as not logged in when it fails, and a
/// second `auth` behind a first finds the connection logged in. An
/// operator's requests behind a new password's hash follow it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sent_behind_auth_are_handled_after_it() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let send = |op: &str, id: u64, args: serde_json::Value| Message::Text(json!({"op": op, "id": id, "args": args}).to_string().into());
    // The answers to requests 1..=n, by id, in whatever order they come.
    async fn answers(c: &mut Client, n: u64) -> Vec<serde_json::Value> {
        let mut got = vec![serde_json::Value::Null; n as usize];
        while got.iter().any(serde_json::Value::is_null) {
            let v = c.recv().await.expect("connection open");
            if let Some(id) = v.get("id").and_then(serde_json::Value::as_u64) {
                got[id as usize - 1] = v;
            }
        }
        got
    }

    let mut a = Client::connect(srv.addr).await;
    a.send_raw(send("auth", 1, json!({"user": "alice", "password": "alice-pass"}))).await;
    a.send_raw(send("account.balances", 2, json!({}))).await;
    a.send_raw(send("order.place", 3, limit("behind-auth", "buy", "30000", "0.1"))).await;
    a.send_raw(send("auth", 4, json!({"user": "alice", "password": "alice-pass"}))).await;
    let r = answers(&mut a, 4).await;
    for (i, r) in r.iter().enumerate().take(3) {
        assert_eq!(r["ok"], true, "request {}: {r}", i + 1);
    }
    assert_eq!(r[3]["err"]["code"], "bad_request", "{}", r[3]);
    a.next_id = 5;
    assert_eq!(a.ok("account.orders", json!({})).await["orders"].as_array().unwrap().len(), 1);

    let mut x = Client::connect(srv.addr).await;
    x.send_raw(send("auth", 1, json!({"user": "alice", "password": "wrong-one"}))).await;
    x.send_raw(send("account.balances", 2, json!({}))).await;
    x.send_raw(send("auth", 3, json!({"user": "bob", "password": "bob-pass-1"}))).await;
    x.send_raw(send("account.balances", 4, json!({}))).await;
    let r = answers(&mut x, 4).await;
    assert_eq!(r[0]["err"]["code"], "bad_credentials", "{}", r[0]);
    assert_eq!(r[1]["err"]["code"], "auth_required", "{}", r[1]);
    assert_eq!(r[2]["res"]["user"], "bob", "{}", r[2]);
    assert_eq!(r[3]["ok"], true, "{}", r[3]);

    // An operator's requests behind a new user's password hash follow it.
    let mut op = Client::connect(srv.addr).await;
    op.login("admin", &srv.admin_password).await;
    op.next_id = 1;
    op.send_raw(send("admin.user.create", 1, json!({"user": "erin", "password": "erin-pass-1", "role": "trader"}))).await;
    op.send_raw(send("admin.deposit", 2, json!({"user": "erin", "asset": "USD", "amount": "10.00"}))).await;
    op.send_raw(send("admin.user.password", 3, json!({"user": "erin", "password": "erin-pass-2"}))).await;
    op.send_raw(send("admin.deposit", 4, json!({"user": "erin", "asset": "USD", "amount": "5.00"}))).await;
    let r = answers(&mut op, 4).await;
    for r in &r {
        assert_eq!(r["ok"], true, "{r}");
    }
    assert_eq!(r[3]["res"]["available"], "15.00");
    let mut e = Client::connect(srv.addr).await;
    e.login("erin", "erin-pass-2").await;
    srv.stop();
}

/// Amends sent back to back, each before the last is answered, hold what
/// their combined result needs: a quantity raised, then a price raised
/// (decided while the first was still on its way to the book) leave the
/// order holding enough for both, so a fill of all of it settles, and the
/// exchange keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_amends_hold_what_their_combined_result_needs() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let (mut a, mut b) = two_traders(srv.addr).await;
    let n = 40;
    for k in 0..n {
        a.ok("order.place", limit(&format!("pa{k}"), "buy", "29000", "0.02")).await;
    }
    // Every order's two amends go out back to back, none waiting: the
    // ledger decides most of the second ones before the first ones'
    // books have answered.
    let mut id = 9000;
    for k in 0..n {
        for args in [json!({"sym": "BTC-USD", "cl_id": format!("pa{k}"), "qty": "0.1"}), json!({"sym": "BTC-USD", "cl_id": format!("pa{k}"), "px": "29500"})] {
            let m = json!({"op": "order.amend", "id": id, "args": args});
            a.send_raw(Message::Text(m.to_string().into())).await;
            id += 1;
        }
    }
    // Bounded: a ledger that stopped would leave only heartbeats to read.
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        for i in 9000..id {
            assert_eq!(a.response(i).await["ok"], true);
        }
        // Each order is 0.1 at 29500: 2950.00 and a worst-case fee of 5.90.
        assert_eq!(a.balance("USD").await.1, "118236.00", "40 orders, each 2955.90");
        let r = b.ok("order.place", json!({"cl_id": "pb", "sym": "BTC-USD", "side": "sell", "type": "limit", "px": "29500", "qty": "4.00", "tif": "ioc"})).await;
        assert_eq!(r["status"], "filled", "{r}");
        assert_eq!(a.balance("USD").await.1, "0.00", "nothing is left held");
    })
    .await
    .expect("the exchange answers");
    srv.stop();
}

/// Cancel-on-disconnect `connection` cancels the orders its places made,
/// named by their order ids: never an order of another connection that
/// reuses a `cl_id` this one's refused place left free, and also the
/// places still unanswered when the connection drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_disconnect_cancels_the_orders_it_placed_and_no_other() {
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut a = Client::connect(srv.addr).await;
    a.ok("auth", json!({"user": "alice", "password": "alice-pass", "cod": "connection"})).await;
    // Refused by the book (outside the price band): no order, and the
    // cl_id stays free.
    assert_eq!(a.err("order.place", limit("z", "buy", "1000", "0.1")).await, "price_band");
    a.ok("order.place", limit("mine", "buy", "29000", "0.1")).await;
    let mut watch = Client::connect(srv.addr).await;
    watch.login("alice", "alice-pass").await;
    let other = watch.ok("order.place", limit("z", "buy", "28000", "0.1")).await;
    drop(a);
    assert_eq!(open_orders_become(&mut watch, 1).await, 1, "the order placed through the closed connection was cancelled");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let open = watch.ok("account.orders", json!({})).await;
    let ids: Vec<u64> = open["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [other["order_id"].as_u64().unwrap()], "the other connection's z stays: {open}");

    // Places sent back to back, the connection dropped after the first
    // answer: those answered later, or never, are cancelled too.
    let mut b = Client::connect(srv.addr).await;
    b.ok("auth", json!({"user": "alice", "password": "alice-pass", "cod": "connection"})).await;
    for i in 0..40 {
        let m = json!({"op": "order.place", "id": 1000 + i, "args": limit(&format!("f{i}"), "buy", "27000", "0.02")});
        b.send_raw(Message::Text(m.to_string().into())).await;
    }
    assert_eq!(b.response(1000).await["ok"], true);
    drop(b);
    assert_eq!(open_orders_become(&mut watch, 1).await, 1, "every order of the dropped connection was cancelled");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(watch.ok("account.orders", json!({})).await["orders"].as_array().unwrap().len(), 1);
    srv.stop();
}

/// A `cod: connection` session that places more orders than it keeps
/// before asking the ledger which are still open (`COD_PRUNE_MIN`, 4,096)
/// forgets the ended ones and still cancels, when it closes, the ones
/// open from before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_disconnect_keeps_its_open_orders_past_thousands_of_ended_ones() {
    let mut cfg = test_config();
    cfg.limits.account_orders_per_sec = 1_000_000;
    cfg.limits.conn_msgs_per_sec = 1_000_000;
    let srv = bourse::spawn_server_for_tests(cfg);
    let mut watch = Client::connect(srv.addr).await;
    watch.login("alice", "alice-pass").await;
    watch.ok("order.place", limit("w", "buy", "28500", "0.02")).await;
    let mut a = Client::connect(srv.addr).await;
    a.ok("auth", json!({"user": "alice", "password": "alice-pass", "cod": "connection"})).await;
    for i in 0..3 {
        a.ok("order.place", limit(&format!("early{i}"), "buy", "29000", "0.02")).await;
    }
    // IOC buys into an empty ask side: each is placed and ends at once.
    for b in 0..215 {
        let orders: Vec<_> = (0..20)
            .map(|i| json!({"cl_id": format!("ioc{b}x{i}"), "sym": "BTC-USD", "side": "buy", "type": "limit", "px": "27000", "qty": "0.02", "tif": "ioc"}))
            .collect();
        let r = a.ok("order.batch", json!({"orders": orders})).await;
        assert!(r["results"].as_array().unwrap().iter().all(|x| x["ok"] == true), "{r}");
    }
    for i in 0..2 {
        a.ok("order.place", limit(&format!("late{i}"), "buy", "29000", "0.02")).await;
    }
    assert_eq!(watch.ok("account.orders", json!({})).await["orders"].as_array().unwrap().len(), 6);
    drop(a);
    assert_eq!(open_orders_become(&mut watch, 1).await, 1, "the early and the late orders were cancelled");
    let open = watch.ok("account.orders", json!({})).await;
    assert_eq!(open["orders"][0]["cl_id"], "w", "{open}");
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_instrument_answers_overloaded_while_another_trades() {
    let srv = bourse::spawn_server_for_tests(small_books_config());
    let (mut a, mut b) = two_traders(srv.addr).await;
    // Flood BTC-USD without waiting for answers.
    let n = 1500u64;
    for i in 0..n {
        let msg = json!({"op": "order.place", "id": 100_000 + i, "args": limit(&format!("f{i}"), "buy", "29000", "0.02")});
        a.send_raw(Message::Text(msg.to_string().into())).await;
    }
    // ETH-USD still trades for another account meanwhile.
    let eth = json!({"cl_id": "e1", "sym": "ETH-USD", "side": "buy", "type": "limit", "px": "2000", "qty": "0.02"});
    let r = b.ok("order.place", eth).await;
    assert_eq!(r["status"], "new");
    let (mut ok, mut overloaded) = (0, 0);
    for _ in 0..n {
        let v = loop {
            let v = a.recv().await.unwrap();
            if v.get("id").is_some() {
                break v;
            }
        };
        if v["ok"] == true {
            ok += 1;
        } else {
            assert_eq!(v["err"]["code"], "overloaded", "{v}");
            assert_eq!(v["err"]["retryable"], true);
            overloaded += 1;
        }
    }
    assert!(overloaded > 0, "a flood past the mailbox gets overloaded answers ({ok} ok)");
    assert!(ok > 0);
    // Nothing accepted was lost: every ok order is open.
    let open = a.ok("account.orders", json!({"sym": "BTC-USD"})).await;
    assert_eq!(open["orders"].as_array().unwrap().len(), ok);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_with_retry_after_and_the_session_stays() {
    let mut cfg = test_config();
    cfg.limits.conn_msgs_per_sec = 5;
    let srv = bourse::spawn_server_for_tests(cfg);
    let mut c = Client::connect(srv.addr).await;
    let mut limited = None;
    for _ in 0..30 {
        let r = c.request("ping", json!({})).await;
        if r["ok"] == false {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("a burst past the quota is limited");
    assert_eq!(r["err"]["code"], "rate_limited");
    assert_eq!(r["err"]["retryable"], true);
    let wait = r["err"]["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(wait > 0);
    tokio::time::sleep(std::time::Duration::from_millis(wait + 50)).await;
    assert!(c.ok("ping", json!({})).await["ts"].is_u64(), "the session stays open");
    srv.stop();
}

/// The account's order limit counts every order of a batch, and lets
/// cancels through: an account at its limit can still pull its orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_limit_counts_batched_orders_and_lets_cancels_through() {
    let mut cfg = test_config();
    cfg.limits.account_orders_per_sec = 5;
    let srv = bourse::spawn_server_for_tests(cfg);
    let mut a = Client::connect(srv.addr).await;
    a.login("alice", "alice-pass").await;
    let batch = |p: &str, n: usize| json!({"orders": (0..n).map(|i| limit(&format!("{p}{i}"), "buy", "29000", "0.02")).collect::<Vec<_>>()});
    // A batch of six is more than the account may place at once.
    let r = a.request("order.batch", batch("six", 6)).await;
    assert_eq!(r["err"]["code"], "rate_limited", "{r}");
    // A batch of two, then orders one by one until the limit is reached.
    let r = a.ok("order.batch", batch("b", 2)).await;
    assert!(r["results"].as_array().unwrap().iter().all(|x| x["ok"] == true), "{r}");
    let mut placed = 2;
    let limited = loop {
        let r = a.request("order.place", limit(&format!("p{placed}"), "buy", "29000", "0.02")).await;
        if r["ok"] == false {
            break r;
        }
        placed += 1;
        assert!(placed < 50, "the limit was never reached");
    };
    assert_eq!(limited["err"]["code"], "rate_limited", "{limited}");
    assert!(limited["err"]["retry_after_ms"].as_u64().unwrap() > 0);
    // Cancels still pass.
    assert_eq!(a.ok("order.cancel", json!({"sym": "BTC-USD", "cl_id": "b0"})).await["status"], "cancelled");
    a.ok("order.cancel_after", json!({"timeout_ms": 0})).await;
    assert_eq!(a.ok("order.cancel_all", json!({})).await["cancelled"], placed - 1);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_keys_expired_tokens_and_account_wide_cancel_on_disconnect() {
    use ring::signature::KeyPair;
    let srv = bourse::spawn_server_for_tests(test_config());
    let mut op = Client::connect(srv.addr).await;
    op.login("admin", &srv.admin_password).await;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let kp = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let pk = b64.encode(kp.public_key().as_ref());
    let r = op.ok("admin.apikey.create", json!({"user": "bob", "alg": "ed25519", "public_key": pk})).await;
    assert!(r.get("secret").is_none(), "no secret for an Ed25519 key");
    let kid = r["key"].as_str().unwrap().to_string();
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let sig = b64.encode(kp.sign(format!("{ts}\nz-1\nauth\n{kid}").as_bytes()).as_ref());
    let mut c = Client::connect(srv.addr).await;
    let res = c.ok("auth", json!({"key": kid, "ts": ts, "nonce": "z-1", "sig": sig, "alg": "ed25519", "cod": "account"})).await;
    assert_eq!(res["user"], "bob");

    // An unknown or revoked token is token_expired.
    let mut t = Client::connect(srv.addr).await;
    assert_eq!(t.err("session.resume", json!({"token": "00".repeat(32), "streams": {}})).await, "token_expired");
    let mut l = Client::connect(srv.addr).await;
    let token = l.login("alice", "alice-pass").await["session"]["token"].as_str().unwrap().to_string();
    l.ok("logout", json!({})).await;
    assert_eq!(t.err("session.resume", json!({"token": token, "streams": {}})).await, "token_expired");

    // cod account: a second connection keeps the orders; closing the last one cancels them.
    let mut c2 = Client::connect(srv.addr).await;
    c2.login("bob", "bob-pass-1").await;
    c.ok("order.place", limit("ca1", "sell", "31000", "0.1")).await;
    drop(c2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut check = Client::connect(srv.addr).await;
    check.login("bob", "bob-pass-1").await;
    assert_eq!(check.ok("account.orders", json!({})).await["orders"].as_array().unwrap().len(), 1, "another connection is still open");
    drop(check);
    drop(c);
    assert!(btc_released(&mut op, "bob").await, "the account's orders were cancelled when its last connection closed");

    // session.resume restores the login's cancel-on-disconnect: a bot that
    // logged in with cod account and resumed on a new connection is still
    // protected when that connection closes.
    let mut first = Client::connect(srv.addr).await;
    let res = first.ok("auth", json!({"user": "alice", "password": "alice-pass", "cod": "account"})).await;
    let token = res["session"]["token"].as_str().unwrap().to_string();
    first.ok("order.place", limit("cr1", "sell", "31000", "0.1")).await;
    let mut resumed = Client::connect(srv.addr).await;
    resumed.ok("session.resume", json!({"token": token, "streams": {}})).await;
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_ne!(btc_held(&mut op, "alice").await, "0.00000000", "the resumed connection is still open");
    drop(resumed);
    assert!(btc_released(&mut op, "alice").await, "closing the resumed connection, the account's last, cancelled its orders");
    srv.stop();
}
