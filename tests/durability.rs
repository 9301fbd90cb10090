//! Durability end to end: a durable server on 127.0.0.1:0 writes snapshots
//! and purges its log while trading; it restarts from them; the binary's
//! `verify`, `backup`, `restore` and `audit` work on what it left, a
//! restored node serves the same state in a new epoch, and damaged logs or
//! backups are refused with the first bad index.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bourse_actors::config::{Config, DurabilityConf};
use serde_json::{json, Value};
use support::Client;

const BIN: &str = env!("CARGO_BIN_EXE_bourse");

/// A directory under the temporary folder, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("bourse-durability-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn durable(data_dir: &Path) -> Config {
    let mut c = support::test_config();
    c.durable = true;
    c.data_dir = data_dir.to_path_buf();
    c.durability = DurabilityConf {
        snapshot_every_events: 40,
        snapshot_every_secs: 1,
        log_retention_events: 60,
        segment_bytes_max: 4096,
    };
    c
}

/// Runs the binary with `args`, without any `BOURSE_*` variable but `env`.
fn bourse(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BOURSE_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON expected ({e}); stdout {}; stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Starts a server on `cfg`, waiting while a previous one on the same data
/// directory still holds it.
fn spawn(cfg: &Config) -> bourse::TestServer {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let cfg = cfg.clone();
        match std::panic::catch_unwind(move || bourse::spawn_server_for_tests(cfg)) {
            Ok(srv) => return srv,
            Err(e) if Instant::now() < deadline => {
                drop(e);
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => std::panic::resume_unwind(e),
        }
    }
}

/// Waits until a stopped in-process server's threads have let go of the
/// data directory (its journal and snapshotter end shortly after the stop;
/// a stopped process lets go at once).
fn wait_released(data: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if bourse_actors::storage::SledSnapshotStore::open(data.join("snapshots")).is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the data directory is still held"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a trader can see of their account.
async fn account_view(c: &mut Client) -> Value {
    let mut orders = c.ok("account.orders", json!({})).await["orders"].clone();
    orders
        .as_array_mut()
        .unwrap()
        .sort_by_key(|o| o["order_id"].as_u64());
    json!({
        "balances": c.ok("account.balances", json!({})).await["balances"],
        "orders": orders,
        "fills": c.ok("account.fills", json!({"limit": 1000})).await["fills"],
    })
}

async fn views(addr: std::net::SocketAddr) -> Vec<Value> {
    let mut out = Vec::new();
    for (u, p) in [
        ("alice", "alice-pass"),
        ("bob", "bob-pass-1"),
        ("carol", "carol-pass"),
    ] {
        let mut c = Client::connect(addr).await;
        c.login(u, p).await;
        out.push(account_view(&mut c).await);
    }
    out
}

/// Trades between alice and bob (fills on both sides) and leaves resting
/// orders; the operator deposits to carol.
async fn trade(srv: &bourse::TestServer, rounds: u32) {
    let mut a = Client::connect(srv.addr).await;
    a.login("alice", "alice-pass").await;
    let mut b = Client::connect(srv.addr).await;
    b.login("bob", "bob-pass-1").await;
    for i in 0..rounds {
        let px = format!("{}", 30_000 + (i % 7));
        a.ok("order.place", json!({"cl_id": format!("a{i}"), "sym": "BTC-USD", "side": "buy", "type": "limit", "px": px, "qty": "0.04"}))
            .await;
        b.ok("order.place", json!({"cl_id": format!("b{i}"), "sym": "BTC-USD", "side": "sell", "type": "limit", "px": px, "qty": "0.02"}))
            .await;
        if i % 5 == 0 {
            b.ok("order.place", json!({"cl_id": format!("r{i}"), "sym": "ETH-USD", "side": "sell", "type": "limit", "px": "2100", "qty": "0.1"}))
                .await;
        }
    }
    let mut admin = Client::connect(srv.addr).await;
    admin.login("admin", &srv.admin_password).await;
    admin
        .ok(
            "admin.deposit",
            json!({"user": "carol", "asset": "USD", "amount": "123.45"}),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_restart_backup_restore_and_audit() {
    let dir = TempDir::new("main");
    let files = TempDir::new("files");
    std::fs::create_dir_all(files.path()).unwrap();
    let data = dir.path().join("data");
    let cfg = durable(&data);

    let srv = spawn(&cfg);
    trade(&srv, 60).await;
    let before = views(srv.addr).await;
    // The snapshotter writes within a second of the last event.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    srv.stop();
    wait_released(&data);

    // Offline: snapshots were written from the log, and retention purged it.
    let v = json_of(&bourse(&["verify", "--json", "--data-dir", s(&data)], &[]));
    assert_eq!(v["ok"], true, "{v}");
    assert!(!v["snapshots"].as_array().unwrap().is_empty(), "{v}");
    assert!(
        v["log"]["first_index"].as_u64().unwrap() > 1,
        "the log before the anchor snapshot was purged: {v}"
    );
    assert_eq!(v["epoch"], 1);
    let hash = v["state_hash"].as_str().unwrap().to_string();

    // A restart recovers from the newest snapshot to the same state.
    let srv = spawn(&cfg);
    assert_eq!(
        views(srv.addr).await,
        before,
        "the same accounts after a restart"
    );
    srv.stop();
    wait_released(&data);

    // Backup, verify it, restore it elsewhere: same state, new epoch.
    let file = files.path().join("node.bbk");
    let b = json_of(&bourse(
        &[
            "backup",
            "--json",
            "--data-dir",
            s(&data),
            "--out",
            s(&file),
        ],
        &[],
    ));
    assert_eq!(b["ok"], true, "{b}");
    assert!(
        b["snapshot_index"].as_u64().is_some(),
        "the backup holds a snapshot: {b}"
    );
    let vb = json_of(&bourse(&["verify", "--json", "--backup", s(&file)], &[]));
    assert_eq!(vb["state_hash"], hash.as_str(), "{vb}");
    let restored = dir.path().join("restored");
    let r = json_of(&bourse(
        &[
            "restore",
            "--json",
            "--from",
            s(&file),
            "--data-dir",
            s(&restored),
        ],
        &[],
    ));
    assert_eq!(
        (r["ok"].clone(), r["state_hash"].clone(), r["epoch"].clone()),
        (json!(true), json!(hash), json!(2)),
        "{r}"
    );
    let again = bourse(
        &["restore", "--from", s(&file), "--data-dir", s(&restored)],
        &[],
    );
    assert_eq!(
        again.status.code(),
        Some(1),
        "a restore never overwrites a data directory"
    );

    // Point in time: exactly the index asked for.
    let last = v["last_index"].as_u64().unwrap();
    let first_restorable = b["first_index"].as_u64().unwrap();
    let at = (first_restorable + last) / 2;
    let pit = dir.path().join("pit");
    let r = json_of(&bourse(
        &[
            "restore",
            "--json",
            "--from",
            s(&file),
            "--data-dir",
            s(&pit),
            "--until-index",
            &at.to_string(),
        ],
        &[],
    ));
    assert_eq!(r["last_index"], at, "{r}");
    let vp = json_of(&bourse(&["verify", "--json", "--data-dir", s(&pit)], &[]));
    assert_eq!(
        (vp["last_index"].clone(), vp["epoch"].clone()),
        (json!(at), json!(2))
    );
    assert_eq!(vp["state_hash"], r["state_hash"]);

    // The audit trail: the operator's deposit, by name.
    let out = bourse(&["audit", "--data-dir", s(&data)], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains(" admin ") && l.ends_with("deposited 123.45 USD to carol")),
        "audit:\n{text}"
    );

    // A node on the restored directory serves the same accounts, in epoch 2.
    let srv = spawn(&durable(&restored));
    assert_eq!(
        views(srv.addr).await,
        before,
        "the same accounts after a restore"
    );
    let mut c = Client::connect(srv.addr).await;
    c.login("alice", "alice-pass").await;
    c.ok("subscribe", json!({"ch": "account"})).await;
    let snap = c
        .event(|v| v["ch"] == "account" && v["type"] == "snapshot")
        .await;
    assert_eq!(snap["epoch"], 2, "a restore starts a new epoch: {snap}");
    srv.stop();
}

fn segments(log: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_is_refused_with_the_first_bad_index() {
    let dir = TempDir::new("damage");
    let data = dir.path().join("data");
    let mut cfg = durable(&data);
    cfg.durability.log_retention_events = 1_000_000;
    let srv = spawn(&cfg);
    trade(&srv, 30).await;
    srv.stop();
    wait_released(&data);

    // Backups: plain and encrypted; the encrypted one needs its key.
    let plain = dir.path().join("plain.bbk");
    assert_eq!(
        bourse(&["backup", "--data-dir", s(&data), "--out", s(&plain)], &[])
            .status
            .code(),
        Some(0)
    );
    let key = "4f".repeat(32);
    let sealed = dir.path().join("sealed.bbk");
    let out = bourse(
        &[
            "backup",
            "--json",
            "--data-dir",
            s(&data),
            "--out",
            s(&sealed),
        ],
        &[("BOURSE_BACKUP_KEY", &key)],
    );
    assert_eq!(json_of(&out)["encrypted"], true);
    assert_eq!(
        bourse(&["verify", "--backup", s(&sealed)], &[])
            .status
            .code(),
        Some(1),
        "no key"
    );
    assert_eq!(
        bourse(
            &["verify", "--backup", s(&sealed)],
            &[("BOURSE_BACKUP_KEY", &"50".repeat(32))]
        )
        .status
        .code(),
        Some(1),
        "wrong key"
    );
    assert_eq!(
        bourse(
            &["verify", "--backup", s(&sealed)],
            &[("BOURSE_BACKUP_KEY", &key)]
        )
        .status
        .code(),
        Some(0)
    );
    let key_file = dir.path().join("backup.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let target = dir.path().join("from-sealed");
    let out = bourse(
        &[
            "restore",
            "--json",
            "--from",
            s(&sealed),
            "--key-file",
            s(&key_file),
            "--data-dir",
            s(&target),
        ],
        &[],
    );
    assert_eq!(json_of(&out)["ok"], true);

    // A changed byte in a backup: refused by verify and by restore.
    let tampered = dir.path().join("tampered.bbk");
    std::fs::copy(&plain, &tampered).unwrap();
    let len = std::fs::metadata(&tampered).unwrap().len() as usize;
    flip(&tampered, len / 2);
    let out = bourse(&["verify", "--backup", s(&tampered)], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("damaged"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = dir.path().join("from-tampered");
    assert_eq!(
        bourse(
            &["restore", "--from", s(&tampered), "--data-dir", s(&target)],
            &[]
        )
        .status
        .code(),
        Some(1)
    );
    assert!(
        !target.join("log").exists(),
        "nothing restored from a damaged backup"
    );

    // A torn tail (an unfinished last batch) is cut at start, with a log line.
    let torn = dir.path().join("torn");
    copy_dir(&data, &torn);
    let last = segments(&torn.join("log")).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[90, 0, 0, 0, 1, 2, 3, 4, 5]);
    std::fs::write(&last, bytes).unwrap();
    let v = json_of(&bourse(&["verify", "--json", "--data-dir", s(&torn)], &[]));
    assert_eq!(v["ok"], true, "a torn tail is not damage: {v}");
    assert!(v["log"]["torn_tail"].is_object(), "{v}");
    let mut tcfg = durable(&torn);
    tcfg.durability.log_retention_events = 1_000_000;
    let srv = spawn(&tcfg);
    srv.stop();
    wait_released(&torn);
    let v2 = json_of(&bourse(&["verify", "--json", "--data-dir", s(&torn)], &[]));
    assert!(v2["log"]["torn_tail"].is_null(), "cut at start: {v2}");
    assert_eq!(v2["state_hash"], v["state_hash"]);

    // A changed byte in the middle of the log: verify names the batch, the
    // server will not start on it, and no backup is taken from it.
    let segs = segments(&data.join("log"));
    assert!(segs.len() >= 3, "{segs:?}");
    let first_of_second: u64 = segs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let first_of_third: u64 = segs[2]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let seg_len = std::fs::metadata(&segs[1]).unwrap().len() as usize;
    flip(&segs[1], seg_len / 2);
    let out = bourse(&["verify", "--data-dir", s(&data)], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v = json_of(&bourse(&["verify", "--json", "--data-dir", s(&data)], &[]));
    let bad = v["first_bad_index"].as_u64().unwrap();
    assert!((first_of_second..first_of_third).contains(&bad), "{v}");
    assert!(text.contains(&format!("first bad index {bad}")), "{text}");

    let out = bourse(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", s(&data)],
        &[("BOURSE_DEMO__MARKET_MAKER", "false")],
    );
    assert_eq!(out.status.code(), Some(1), "no start on a corrupt log");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt") && err.contains("bourse verify") && err.contains("bourse restore"),
        "{err}"
    );
    let out = bourse(
        &[
            "backup",
            "--data-dir",
            s(&data),
            "--out",
            s(&dir.path().join("x.bbk")),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "no backup of a corrupt log");
}

/// A restart makes what the configuration gained since the exchange was
/// made (an asset, an instrument on it, a user with deposits), once: a
/// second restart on the same configuration makes nothing twice. A
/// changed setting of an existing instrument is not applied (the
/// exchange's stands), and a new instrument the exchange refuses stops
/// the start with nothing of that configuration written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_makes_what_the_configuration_added_once() {
    use bourse_actors::config::{AssetConf, UserConf};
    let dir = TempDir::new("additions");
    let data = dir.path().join("data");
    let cfg = durable(&data);
    let srv = spawn(&cfg);
    let mut a = Client::connect(srv.addr).await;
    a.login("alice", "alice-pass").await;
    a.ok("order.place", json!({"cl_id": "a1", "sym": "BTC-USD", "side": "buy", "type": "limit", "px": "29000", "qty": "0.1"})).await;
    let alice = account_view(&mut a).await;
    srv.stop();
    wait_released(&data);

    let mut more = cfg.clone();
    more.assets.push(AssetConf { asset: "SOL".into(), scale: 6 });
    let mut sol = more.instruments[0].clone();
    (sol.sym, sol.base, sol.tick, sol.lot, sol.min_qty, sol.ref_px) =
        ("SOL-USD".into(), "SOL".into(), "0.1".into(), "0.1".into(), "0.1".into(), Some("150".into()));
    more.instruments.push(sol);
    more.users.push(UserConf {
        user: "dave".into(),
        password: "dave-pass".into(),
        role: "trader".into(),
        deposits: [("USD".to_string(), "500.00".to_string()), ("SOL".to_string(), "3".to_string())].into(),
    });
    more.instruments[0].taker_fee_bps = 99;
    let symbols = |v: &Value| -> Vec<(String, u64)> {
        v["instruments"].as_array().unwrap().iter().map(|i| (i["sym"].as_str().unwrap().to_string(), i["taker_fee_bps"].as_u64().unwrap())).collect()
    };
    let want_symbols = [("BTC-USD".to_string(), 20), ("ETH-USD".to_string(), 0), ("SOL-USD".to_string(), 20)];
    let want_dave = json!([{"asset": "SOL", "available": "3.000000", "held": "0.000000"}, {"asset": "USD", "available": "500.00", "held": "0.00"}]);
    for round in 0..2 {
        let srv = spawn(&more);
        let mut d = Client::connect(srv.addr).await;
        d.login("dave", "dave-pass").await;
        let mut bal = d.ok("account.balances", json!({})).await["balances"].clone();
        bal.as_array_mut().unwrap().retain(|b| b["asset"] == "SOL" || b["asset"] == "USD");
        bal.as_array_mut().unwrap().sort_by_key(|b| b["asset"].as_str().unwrap().to_string());
        assert_eq!(bal, want_dave, "round {round}");
        assert_eq!(symbols(&d.ok("instruments", json!({})).await), want_symbols, "round {round}");
        d.ok("order.place", json!({"cl_id": format!("s{round}"), "sym": "SOL-USD", "side": "sell", "type": "limit", "px": "151.5", "qty": "0.1"})).await;
        d.ok("order.cancel_all", json!({})).await;
        let mut a = Client::connect(srv.addr).await;
        a.login("alice", "alice-pass").await;
        let mut view = account_view(&mut a).await;
        let sol = view["balances"].as_array().unwrap().iter().find(|b| b["asset"] == "SOL").cloned();
        assert_eq!(sol, Some(json!({"asset": "SOL", "available": "0.000000", "held": "0.000000"})));
        view["balances"].as_array_mut().unwrap().retain(|b| b["asset"] != "SOL");
        assert_eq!(view, alice, "round {round}: alice's account is as it was, with a SOL balance of nothing");
        srv.stop();
        wait_released(&data);
    }

    let mut bad = more.clone();
    let mut x = bad.instruments[0].clone();
    x.sym = "X:Y".into();
    bad.instruments.push(x);
    bad.users.push(UserConf { user: "erin".into(), password: "erin-pass".into(), role: "trader".into(), deposits: Default::default() });
    let Err(refused) = std::panic::catch_unwind(|| bourse::spawn_server_for_tests(bad)) else { panic!("the start is refused") };
    let msg = refused.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("instrument X:Y"), "{msg}");
    wait_released(&data);
    let srv = spawn(&more);
    let mut e = Client::connect(srv.addr).await;
    assert_eq!(e.err("auth", json!({"user": "erin", "password": "erin-pass"})).await, "bad_credentials", "nothing of the refused configuration was made");
    assert_eq!(symbols(&e.ok("instruments", json!({})).await), want_symbols);
    srv.stop();
}

/// Every event of the log under `data`, in order.
fn logged_events(data: &Path) -> Vec<bourse_engine::Event> {
    use bourse_actors::storage::log::{EventLog, FileLog, FileLogOptions};
    let (log, _) = FileLog::open(bourse_actors::durability::log_dir(data), FileLogOptions::default()).expect("log opens");
    let entries = log.read(log.first_index()..=log.last_index()).expect("log reads");
    entries
        .iter()
        .flat_map(|e| e.events.iter())
        .map(|b| bourse_actors::durability::decode_event(b).expect("event decodes"))
        .collect()
}

/// Event times never go back. A node whose log ends later than its wall
/// clock reads (a clock stepped back since, data moved to a host that is
/// behind) stamps what it records next no earlier than the log's end: the
/// users its configuration adds at this start, the operator's new
/// password, a trader's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_times_go_on_from_the_log_when_the_clock_is_behind_it() {
    use bourse_actors::durability::{encode_event, log_dir, workload::Workload};
    use bourse_actors::storage::log::{EventLog, FileLog, FileLogOptions};
    let dir = TempDir::new("clock");
    let data = dir.path();
    // A history whose last event is an hour ahead of this machine's clock.
    let ahead = bourse_actors::reply::now_us() + 3_600_000_000;
    {
        let (mut log, _) = FileLog::open(log_dir(data), FileLogOptions::default()).expect("log opens");
        let mut w = Workload::new(7, 2, ahead);
        for _ in 0..40 {
            let batch: Vec<Vec<u8>> = w.next_batch().iter().map(encode_event).collect();
            log.append(&batch).expect("appends");
        }
        log.sync().expect("syncs");
    }
    let history = logged_events(data);
    let end = history.last().expect("a history").ts;
    assert!(end > ahead, "the history runs ahead of the clock");

    let mut cfg = durable(data);
    cfg.durability = DurabilityConf::default();
    let srv = spawn(&cfg);
    let trading = async {
        let mut alice = Client::connect(srv.addr).await;
        alice.login("alice", "alice-pass").await;
        // The history's BTC-USD: whole dollars, lots of 0.01.
        alice
            .ok("order.place", json!({"cl_id": "late-1", "sym": "BTC-USD", "side": "buy", "type": "limit", "px": "59000", "qty": "0.01"}))
            .await;
    };
    // A ledger whose checks find its `cl_id` log out of time order stops
    // the node (debug builds check after every message): no answer comes.
    tokio::time::timeout(Duration::from_secs(30), trading)
        .await
        .expect("alice logs in and places an order within 30 s");
    srv.stop();
    wait_released(data);

    let events = logged_events(data);
    let added = &events[history.len()..];
    assert!(
        added.iter().any(|e| matches!(&e.body, bourse_engine::EventBody::UserCreated { user, .. } if user == "alice")),
        "this start added the configuration's users"
    );
    assert!(
        added.iter().any(|e| matches!(e.body, bourse_engine::EventBody::OrderAccepted { .. })),
        "alice's order is in the log"
    );
    for e in added {
        assert!(e.ts >= end, "an event stamped {} after a history ending at {end}: {:?}", e.ts, e.body);
    }
    for pair in events.windows(2) {
        assert!(pair[1].ts >= pair[0].ts, "event times went back: {} then {}", pair[0].ts, pair[1].ts);
    }
}
