//! The operations files under `ops/`, checked against the exchange itself:
//!
//! * the alert rules load, each has a summary and a runbook, and each passes
//!   its `promtool test rules` unit tests;
//! * every Grafana panel's PromQL, turned into a recording rule
//!   (`ops/prometheus/dashboard_rules.yml`, generated here), passes
//!   `promtool check rules`, and names only metrics the exchange exports;
//! * a real scrape of `/metrics` passes `promtool check metrics`;
//! * a real Prometheus on 127.0.0.1 scrapes a running exchange under a
//!   little load, evaluates the alerts and the dashboard's rules, and its
//!   HTTP API finds the key series with sensible values.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package,
//! which `scripts/test-all.sh` installs. Without them these tests print why
//! and pass, except under CI (`CI=true`), where a missing tool fails them.
//! `BOURSE_UPDATE_OPS=1` rewrites the generated recording rules.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bourse_actors::telemetry::{self, Kind};
use serde_json::{json, Value};
use support::{test_config, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

fn ops() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ops")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(ops().join(rel)).unwrap_or_else(|e| panic!("ops/{rel}: {e}"))
}

/// The alerts the exchange's operators need first, by name.
const REQUIRED_ALERTS: [&str; 8] = [
    "BourseDown",
    "BourseAckLatencyHigh",
    "BourseJournalFlushSlow",
    "BourseMailboxBackingUp",
    "BourseSlowConsumersRising",
    "BourseRejectRateSpike",
    "BourseDiskFilling",
    "BourseInstrumentNoTrades",
];

// ------------------------------------------------------------ tools

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The tool's path; `None` (after saying so) when it is missing outside CI.
fn tool(name: &str) -> Option<PathBuf> {
    match on_path(name) {
        Some(p) => Some(p),
        None if in_ci() => panic!(
            "{name} is not installed; scripts/test-all.sh installs Debian's prometheus package"
        ),
        None => {
            eprintln!(
                "SKIPPED: {name} is not installed (apt-get install prometheus, or run ./scripts/test-all.sh)"
            );
            None
        }
    }
}

/// Runs a tool to completion, with `stdin` fed in; panics with its output
/// unless it succeeds.
fn run(mut cmd: Command, stdin: Option<&[u8]>, what: &str) -> String {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut input = child.stdin.take().expect("stdin piped");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("tool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// A fresh directory under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p =
            std::env::temp_dir().join(format!("bourse-ops-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------------ metric names

/// Metric names a PromQL expression mentions that this project owns
/// (`bourse_...`), with histogram series suffixes removed.
fn bourse_metrics(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("bourse_") {
        let start = i + at;
        let boundary = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |n| start + n);
        if boundary {
            let name = &expr[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| telemetry::spec(b).is_some_and(|m| m.kind == Kind::Histogram))
                .unwrap_or(name);
            out.insert(base.to_string());
        }
        i = end;
    }
    out
}

fn assert_known_metrics(expr: &str, context: &str) {
    for name in bourse_metrics(expr) {
        assert!(
            telemetry::spec(&name).is_some(),
            "{context}: {name} is not a metric the exchange exports (telemetry::METRICS)"
        );
    }
}

// ------------------------------------------------------------ alert rules

/// `(alert name, its block of alerts.yml)`, in file order.
fn alert_blocks(yaml: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in yaml.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- alert:") {
            out.push((name.trim().to_string(), String::new()));
        } else if let Some((_, block)) = out.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    out
}

#[test]
fn every_alert_has_a_summary_a_runbook_and_unit_tests() {
    let alerts = read("prometheus/alerts.yml");
    let tests = read("prometheus/alerts_test.yml");
    let blocks = alert_blocks(&alerts);
    let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    for required in REQUIRED_ALERTS {
        assert!(
            names.contains(&required),
            "alerts.yml has no {required}: {names:?}"
        );
    }
    for (name, block) in &blocks {
        for field in ["expr:", "severity:", "summary:", "runbook:"] {
            assert!(block.contains(field), "{name} has no {field}");
        }
        assert_known_metrics(block, name);
        // A firing case and a quiet case, each with the alert's annotations.
        let cases = tests.matches(&format!("alertname: {name}\n")).count();
        assert!(
            cases >= 2,
            "alerts_test.yml tests {name} {cases} times; want a firing and a quiet case"
        );
    }
}

#[test]
fn alert_rules_and_scrape_config_pass_promtool() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = ops().join("prometheus");
    let mut c = Command::new(&promtool);
    c.current_dir(&dir).args(["check", "rules", "alerts.yml"]);
    run(c, None, "promtool check rules alerts.yml");
    let mut c = Command::new(&promtool);
    c.current_dir(&dir)
        .args(["check", "config", "prometheus.yml"]);
    run(c, None, "promtool check config prometheus.yml");
    let mut c = Command::new(&promtool);
    c.current_dir(&dir)
        .args(["test", "rules", "alerts_test.yml"]);
    let out = run(c, None, "promtool test rules alerts_test.yml");
    assert!(out.contains("SUCCESS"), "{out}");
}

// ------------------------------------------------------------ dashboard

/// A panel with queries: `(id, title, [(refId, expr)])`.
type Panel = (u64, String, Vec<(String, String)>);

/// Every panel with queries, rows' nested panels included.
fn dashboard_panels(dash: &Value) -> Vec<Panel> {
    fn walk(panels: &[Value], out: &mut Vec<Panel>) {
        for p in panels {
            if let Some(inner) = p["panels"].as_array() {
                walk(inner, out);
            }
            let Some(targets) = p["targets"].as_array() else {
                continue;
            };
            let exprs = targets
                .iter()
                .map(|t| {
                    (
                        t["refId"].as_str().expect("refId").to_string(),
                        t["expr"].as_str().expect("expr").to_string(),
                    )
                })
                .collect();
            out.push((
                p["id"].as_u64().expect("panel id"),
                p["title"].as_str().expect("title").to_string(),
                exprs,
            ));
        }
    }
    let mut out = Vec::new();
    walk(dash["panels"].as_array().expect("panels"), &mut out);
    out
}

/// A panel's PromQL with the dashboard's variables given values Prometheus
/// itself accepts: every instance and instrument, a one-minute rate window.
fn concrete(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$instance", ".*")
        .replace("$sym", ".*")
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings encode")
}

/// The recording-rules file made from every panel's PromQL.
fn dashboard_rules(dash: &Value) -> String {
    let mut y = String::from(
        "# Generated by tests/ops.rs from ops/grafana/dashboards/bourse.json: every\n\
         # panel's PromQL as a recording rule ($instance and $sym read .*,\n\
         # $__rate_interval 1m), so `promtool check rules` parses each one and a\n\
         # test Prometheus evaluates them. Regenerate with\n\
         # BOURSE_UPDATE_OPS=1 cargo test --test ops.\n\
         groups:\n  - name: bourse-dashboard\n    rules:\n",
    );
    for (id, title, targets) in dashboard_panels(dash) {
        for (ref_id, expr) in targets {
            y.push_str(&format!(
                "      - record: dashboard:panel{id}_{}\n        expr: {}\n        labels:\n          panel: {}\n",
                ref_id.to_ascii_lowercase(),
                quoted(&concrete(&expr)),
                quoted(&title),
            ));
        }
    }
    y
}

#[test]
fn dashboard_is_provisioned_and_its_panels_are_recording_rules() {
    let dash: Value =
        serde_json::from_str(&read("grafana/dashboards/bourse.json")).expect("dashboard JSON");
    assert_eq!(dash["uid"], "bourse-exchange");
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "instance", "sym"]);

    // The sections operators look for, as rows.
    let rows: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for section in [
        "Order flow and latency",
        "Journal",
        "Market-data fan-out",
        "Connections",
        "Errors",
        "Per-instrument activity",
    ] {
        assert!(rows.contains(&section), "no row {section:?}: {rows:?}");
    }

    let panels = dashboard_panels(&dash);
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut boxes: Vec<(u64, [u64; 4])> = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "panel id {} twice",
            p["id"]
        );
        let g = ["x", "y", "w", "h"].map(|k| {
            p["gridPos"][k]
                .as_u64()
                .unwrap_or_else(|| panic!("panel {} has no gridPos.{k}", p["id"]))
        });
        assert!(
            g[0] + g[2] <= 24,
            "panel {} is wider than the grid",
            p["id"]
        );
        for (other, o) in &boxes {
            let apart = g[0] + g[2] <= o[0]
                || o[0] + o[2] <= g[0]
                || g[1] + g[3] <= o[1]
                || o[1] + o[3] <= g[1];
            assert!(apart, "panels {} and {other} overlap", p["id"]);
        }
        boxes.push((p["id"].as_u64().unwrap(), g));
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {}", p["id"]);
        }
    }
    for (id, title, targets) in &panels {
        assert!(!targets.is_empty(), "panel {id} {title:?} has no query");
        for (_, expr) in targets {
            assert_known_metrics(expr, title);
            used.extend(bourse_metrics(expr));
        }
    }
    // Every metric the exchange exports is on the dashboard somewhere.
    for m in telemetry::METRICS {
        assert!(used.contains(m.name), "no panel shows {}", m.name);
    }

    let rules = dashboard_rules(&dash);
    let path = ops().join("prometheus/dashboard_rules.yml");
    if std::env::var_os("BOURSE_UPDATE_OPS").is_some() {
        std::fs::write(&path, &rules).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rules,
        "ops/prometheus/dashboard_rules.yml is not what the dashboard gives; \
         regenerate with BOURSE_UPDATE_OPS=1 cargo test --test ops"
    );

    let Some(promtool) = tool("promtool") else {
        return;
    };
    let mut c = Command::new(promtool);
    c.arg("check").arg("rules").arg(&path);
    let out = run(c, None, "promtool check rules dashboard_rules.yml");
    let n: usize = panels.iter().map(|p| p.2.len()).sum();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}

// ------------------------------------------------------------ HTTP

/// One GET over a fresh connection; `(status, body)`. HTTP/1.0 so the
/// body is never chunked.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no answer in time"))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ------------------------------------------------------------ load

/// Alice sells and Bob buys one lot at 30000, `n` times (`n` trades on
/// BTC-USD), with one order refused by the price band and one resting on
/// ETH-USD; a third client watches trades and the book.
async fn trade(a: &mut Client, b: &mut Client, n: usize, tag: &str) {
    for i in 0..n {
        let px = "30000";
        a.ok("order.place", json!({"cl_id": format!("{tag}s{i}"), "sym": "BTC-USD", "side": "sell", "type": "limit", "px": px, "qty": "0.02"}))
            .await;
        let r = b
            .ok("order.place", json!({"cl_id": format!("{tag}b{i}"), "sym": "BTC-USD", "side": "buy", "type": "limit", "px": px, "qty": "0.02"}))
            .await;
        assert_eq!(r["status"], "filled", "{r}");
    }
    let code = a
        .err("order.place", json!({"cl_id": format!("{tag}band"), "sym": "BTC-USD", "side": "buy", "type": "limit", "px": "45000", "qty": "0.02"}))
        .await;
    assert_eq!(code, "price_band");
    a.ok("order.place", json!({"cl_id": format!("{tag}eth"), "sym": "ETH-USD", "side": "buy", "type": "limit", "px": "1990", "qty": "0.02"}))
        .await;
}

async fn traders(addr: SocketAddr) -> (Client, Client, Client) {
    let mut a = Client::connect(addr).await;
    a.login("alice", "alice-pass").await;
    let mut b = Client::connect(addr).await;
    b.login("bob", "bob-pass-1").await;
    let mut watcher = Client::connect(addr).await;
    watcher
        .ok("subscribe", json!({"ch": "trades", "sym": ["BTC-USD"]}))
        .await;
    watcher
        .ok("subscribe", json!({"ch": "book.l2", "sym": ["BTC-USD"]}))
        .await;
    (a, b, watcher)
}

/// The value of the sample `name{labels}` in exposition text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_scrape_passes_promtool_check_metrics() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let srv = bourse::spawn_server_for_tests(test_config());
    let (mut a, mut b, _w) = traders(srv.addr).await;
    trade(&mut a, &mut b, 3, "scrape").await;

    let (status, text) = http_get(srv.addr, "/metrics").await.expect("scrape");
    assert_eq!(status, 200);
    let mut c = Command::new(promtool);
    c.args(["check", "metrics"]);
    let out = run(c, Some(text.as_bytes()), "promtool check metrics");
    assert!(
        out.trim().is_empty(),
        "promtool check metrics found problems:\n{out}"
    );

    // Histograms are histograms, every exported metric has help, and the
    // series of this load are there.
    assert!(
        !text.contains("quantile="),
        "a histogram is exported as a summary"
    );
    for m in telemetry::METRICS {
        if text.contains(&format!("\n{} ", m.name)) || text.contains(&format!("\n{}{{", m.name)) {
            assert!(
                text.contains(&format!("# HELP {} ", m.name)),
                "{} has no help",
                m.name
            );
        }
    }
    assert!(
        sample(&text, "bourse_trades_total{sym=\"BTC-USD\"}").unwrap() >= 3.0,
        "{text}"
    );
    assert!(
        sample(&text, "bourse_ready").is_some_and(|v| v == 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "bourse_ws_connections{role=\"trader\"}").unwrap() >= 2.0,
        "{text}"
    );
    assert!(
        text.contains("bourse_order_ack_seconds_bucket{result=\"ok\",le=\"0.001\"}"),
        "{text}"
    );
    assert!(text.contains("process_cpu_seconds_total "), "{text}");
    // The ETH-USD bid rests; its book's size is exported. The gauges are
    // set by the market-data actor after the answer, and every server of
    // this test process shares them (another one starting sets them to its
    // empty books for a moment): scraped again for up to 5 s.
    let sized = |text: &str| {
        sample(text, "bourse_book_orders{sym=\"ETH-USD\"}").is_some_and(|v| v >= 1.0)
            && sample(text, "bourse_book_levels{sym=\"ETH-USD\",side=\"buy\"}").is_some_and(|v| v >= 1.0)
    };
    let mut text = text;
    for _ in 0..100 {
        if sized(&text) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        text = http_get(srv.addr, "/metrics").await.expect("scrape").1;
    }
    assert!(sized(&text), "{text}");
    srv.stop();
}

// ------------------------------------------------------------ Prometheus

/// A Prometheus server run by this test; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `data.result` of an instant query.
    async fn query(&self, q: &str) -> Vec<Value> {
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={}", url_encode(q)))
            .await
            .expect("Prometheus answers");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{q}: {e}: {body}"));
        assert_eq!(
            (status, &v["status"]),
            (200, &json!("success")),
            "{q}: {body}"
        );
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of an instant query, if it has one.
    async fn value(&self, q: &str) -> Option<f64> {
        let r = self.query(q).await;
        r.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `q` has a value satisfying `ok`, and returns it.
    async fn wait_for(&self, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.value(q).await;
            if let Some(v) = v.filter(|v| ok(*v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{q} is {v:?} after {WAIT:?}\nPrometheus log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Prometheus on 127.0.0.1 scraping `target` every second, with the
/// shipped alerts and the dashboard's recording rules, storage in `dir`.
async fn start_prometheus(bin: &Path, dir: &Path, target: SocketAddr) -> Prometheus {
    let rules = ops().join("prometheus");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n  - {}\n\
         scrape_configs:\n  - job_name: bourse\n    static_configs:\n      - targets: [{}]\n",
        quoted(&rules.join("alerts.yml").display().to_string()),
        quoted(&rules.join("dashboard_rules.yml").display().to_string()),
        quoted(&target.to_string()),
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    // A port taken between choosing and binding makes Prometheus exit: try again.
    for _ in 0..3 {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join(format!("prometheus-{}.log", addr.port()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start prometheus");
        let mut p = Prometheus { child, addr, log };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = p.child.try_wait().unwrap() {
                eprintln!("prometheus exited ({status}):\n{}", p.log());
                break;
            }
            if let Ok((200, _)) = http_get(addr, "/-/ready").await {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready after {WAIT:?}:\n{}",
                p.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(p);
    }
    panic!("Prometheus did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_running_exchange_under_load() {
    let Some(bin) = tool("prometheus") else {
        return;
    };
    let dir = TempDir::new("prometheus");
    let srv = bourse::spawn_server_for_tests(test_config());
    let prom = start_prometheus(&bin, &dir.0, srv.addr).await;
    let (mut a, mut b, mut watcher) = traders(srv.addr).await;

    // A little load over a few scrapes.
    let trades = 20;
    for round in 0..4 {
        trade(&mut a, &mut b, trades / 4, &format!("p{round}")).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let seen = watcher
        .event(|v| v["ch"] == "trades" && v["type"] != "snapshot")
        .await;
    assert_eq!(seen["sym"], "BTC-USD");

    let inst = format!("instance=\"{}\"", srv.addr);
    let sel = |m: &str, extra: &str| {
        if extra.is_empty() {
            format!("{m}{{job=\"bourse\",{inst}}}")
        } else {
            format!("{m}{{job=\"bourse\",{inst},{extra}}}")
        }
    };
    let n = trades as f64;

    // Scraped, ready, this build.
    prom.wait_for(&sel("up", ""), |v| v == 1.0).await;
    prom.wait_for(&sel("bourse_ready", ""), |v| v == 1.0).await;
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    prom.wait_for(&sel("bourse_build_info", &version), |v| v == 1.0)
        .await;

    // Order flow: the counters include this load once a scrape after it is in.
    prom.wait_for(
        &format!("sum({})", sel("bourse_trades_total", "sym=\"BTC-USD\"")),
        |v| v >= n,
    )
    .await;
    prom.wait_for(
        &format!(
            "sum({})",
            sel("bourse_traded_lots_total", "sym=\"BTC-USD\"")
        ),
        |v| v >= n,
    )
    .await;
    prom.wait_for(
        &format!(
            "sum({})",
            sel("bourse_orders_total", "op=\"place\",result=\"accepted\"")
        ),
        |v| v >= 2.0 * n + 1.0,
    )
    .await;
    prom.wait_for(
        &format!(
            "sum({})",
            sel(
                "bourse_orders_total",
                "op=\"place\",result=\"rejected\",code=\"price_band\""
            )
        ),
        |v| v >= 4.0,
    )
    .await;
    prom.wait_for(&sel("bourse_instrument_trading", "sym=\"BTC-USD\""), |v| {
        v == 1.0
    })
    .await;
    // Gauges are the last value any node in this test process set (other
    // tests run servers too): only that they are there and positive.
    prom.wait_for(&sel("bourse_md_seq", "sym=\"BTC-USD\""), |v| v > 0.0)
        .await;

    // Latency: every answered order is in the ack histogram, and its p99 is
    // a real duration under a second on loopback.
    prom.wait_for(
        &format!("sum({})", sel("bourse_order_ack_seconds_count", "")),
        |v| v >= 2.0 * n + 5.0,
    )
    .await;
    let p99 = prom
        .wait_for(
            &format!(
                "histogram_quantile(0.99, sum by (le) ({}))",
                sel("bourse_order_ack_seconds_bucket", "")
            ),
            f64::is_finite,
        )
        .await;
    assert!(p99 > 0.0 && p99 < 1.0, "ack p99 {p99}");
    for stage in telemetry::STAGES {
        prom.wait_for(
            &sel("bourse_stage_seconds_count", &format!("stage=\"{stage}\"")),
            |v| v > 0.0,
        )
        .await;
    }

    // Journal, connections, fan-out, process.
    prom.wait_for(&sel("bourse_journal_flush_seconds_count", ""), |v| v > 0.0)
        .await;
    prom.wait_for(&sel("bourse_journal_events_total", ""), |v| v >= 2.0 * n)
        .await;
    prom.wait_for(&sel("bourse_log_entries", ""), |v| v > 0.0)
        .await;
    prom.wait_for(&sel("bourse_ws_connections", "role=\"trader\""), |v| {
        v >= 2.0
    })
    .await;
    prom.wait_for(
        &sel("bourse_ws_messages_out_total", "channel=\"trades\""),
        |v| v >= 1.0,
    )
    .await;
    prom.wait_for(
        &sel("bourse_ws_bytes_out_total", "channel=\"response\""),
        |v| v > 0.0,
    )
    .await;
    prom.wait_for(
        &sel("bourse_ws_messages_in_total", "channel=\"request\""),
        |v| v >= 2.0 * n,
    )
    .await;
    prom.wait_for(
        &sel(
            "bourse_mailbox_depth",
            "actor=\"instrument\",sym=\"BTC-USD\"",
        ),
        |v| v >= 0.0,
    )
    .await;
    // Every commit the market-data actor was sent has been handled: its
    // depth (counted up by the node's publisher, down by the actor) is back
    // to 0 once trading stops, not the number of commits so far.
    prom.wait_for(&sel("bourse_mailbox_depth", "actor=\"market\""), |v| {
        v == 0.0
    })
    .await;
    prom.wait_for(&sel("process_resident_memory_bytes", ""), |v| v > 1e6)
        .await;
    prom.wait_for(&sel("process_open_fds", ""), |v| v > 0.0)
        .await;
    prom.wait_for(&sel("process_cpu_seconds_total", ""), |v| v > 0.0)
        .await;

    // The dashboard's panels, evaluated by Prometheus as recording rules,
    // have data for this exchange.
    for panel in [
        "Trades per instrument",
        "Order operations by result",
        "Order ack latency (read to answer)",
        "Resident memory",
    ] {
        let q = format!("count({{__name__=~\"dashboard:.+\",panel=\"{panel}\"}})");
        prom.wait_for(&q, |v| v >= 1.0).await;
    }

    // Every rule loaded and evaluates without error; the exchange is not
    // reported down.
    let (status, body) = http_get(prom.addr, "/api/v1/rules").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let rules: Value = serde_json::from_str(&body).unwrap();
    let groups = rules["data"]["groups"].as_array().unwrap();
    let mut names = BTreeSet::new();
    for g in groups {
        for r in g["rules"].as_array().unwrap() {
            names.insert(r["name"].as_str().unwrap().to_string());
            assert_eq!(
                r["health"], "ok",
                "rule {} in {}: {}",
                r["name"], g["name"], r["lastError"]
            );
        }
    }
    for alert in REQUIRED_ALERTS {
        assert!(names.contains(alert), "Prometheus did not load {alert}");
    }
    let firing = prom
        .query("ALERTS{alertname=~\"BourseDown|BourseNotReady\"}")
        .await;
    assert!(firing.is_empty(), "{firing:?}");
    drop(prom);
    srv.stop();
}
