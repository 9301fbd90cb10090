//! The listener, end to end: a real server on `127.0.0.1:0` (in this
//! process, or the `bourse` binary itself), spoken to over real sockets.
//! Health and readiness, static files and path traversal, the WebSocket
//! handshake and subprotocol negotiation, the connection limit, `ping`
//! through the node, the demo market maker's quotes and trades, and a clean
//! stop on SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request written byte for byte (so paths such as `/../x`
/// reach the server unnormalised), answer read to the end.
async fn raw_http(addr: SocketAddr, request_head: &str) -> HttpReply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request_head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(buf[..split].to_vec()).unwrap();
    let body = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    HttpReply {
        status,
        headers,
        body,
    }
}

async fn get(addr: SocketAddr, path: &str) -> HttpReply {
    raw_http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
    .await
}

fn upgrade_head(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// Opens a WebSocket offering `protocols` (none: no header).
async fn ws_connect(
    addr: SocketAddr,
    protocols: Option<&str>,
) -> Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error> {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake in time")
}

/// Sends `{"op","id","args"}` in the frame type of `msgpack` and returns the
/// answer with that id (stream events are passed over).
async fn call(ws: &mut Ws, msgpack: bool, id: u64, op: &str, args: Value) -> Value {
    let req = json!({"op": op, "id": id, "args": args});
    let msg = if msgpack {
        Message::Binary(rmp_serde::to_vec_named(&req).unwrap().into())
    } else {
        Message::Text(req.to_string().into())
    };
    ws.send(msg).await.unwrap();
    loop {
        let v = next_value(ws).await.expect("connection open");
        if v.get("id") == Some(&json!(id)) {
            return v;
        }
    }
}

/// The next data frame, decoded by its type; `None` once closed.
async fn next_value(ws: &mut Ws) -> Option<Value> {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")?;
        match m {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Message::Binary(b)) => return Some(rmp_serde::from_slice(&b).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

fn server() -> bourse::TestServer {
    bourse::spawn_server_for_tests(bourse::test_config())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let srv = server();
    let r = get(srv.addr, "/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok\n");

    let deadline = Instant::now() + WAIT;
    loop {
        let r = get(srv.addr, "/readyz").await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "readyz is 200 or 503");
        assert!(Instant::now() < deadline, "the node never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let r = get(srv.addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );

    let r = raw_http(
        srv.addr,
        "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 405);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_and_path_traversal() {
    let srv = server();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web-client");
    if root.join("index.html").is_file() {
        let r = get(srv.addr, "/").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.body, std::fs::read(root.join("index.html")).unwrap());
        let r = get(srv.addr, "/index.html").await;
        assert_eq!(r.status, 200);
    }
    let charts =
        "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.mjs";
    if root.join(charts).is_file() {
        let r = get(srv.addr, &format!("/{charts}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            r.body.len() as u64,
            std::fs::metadata(root.join(charts)).unwrap().len()
        );
    }

    // `web-client/../Cargo.toml` exists: none of these may reach it.
    for path in [
        "/../Cargo.toml",
        "/lib/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/..%5cCargo.toml",
    ] {
        let r = get(srv.addr, path).await;
        assert_eq!(r.status, 400, "{path}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("[workspace]"),
            "{path}"
        );
    }
    assert_eq!(get(srv.addr, "/no-such-file.js").await.status, 404);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_endpoint_refuses_plain_requests() {
    let srv = server();
    assert_eq!(get(srv.addr, "/ws").await.status, 400);
    // Upgrade with a WebSocket version other than 13.
    let r = raw_http(
        srv.addr,
        &upgrade_head("/ws", "").replace("Version: 13", "Version: 8"),
    )
    .await;
    assert_eq!(r.status, 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    // A raw handshake offering only unknown subprotocols: 400 and no upgrade.
    let r = raw_http(
        srv.addr,
        &upgrade_head("/ws", "Sec-WebSocket-Protocol: chat, bourse.v2.json\r\n"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("bourse.v1.json"));
    assert!(r.header("upgrade").is_none());
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_negotiation() {
    let srv = server();

    let (mut ws, resp) = ws_connect(srv.addr, Some("bourse.v1.json")).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "bourse.v1.json"
    );
    ws.close(None).await.unwrap();

    let (mut ws, resp) = ws_connect(srv.addr, Some("bourse.v1.msgpack"))
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "bourse.v1.msgpack"
    );
    ws.close(None).await.unwrap();

    // The first known offer wins, whatever else is offered.
    let (mut ws, resp) = ws_connect(srv.addr, Some("chat, bourse.v1.msgpack, bourse.v1.json"))
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "bourse.v1.msgpack"
    );
    ws.close(None).await.unwrap();

    // No offer: JSON, and no protocol header in the reply.
    let (mut ws, resp) = ws_connect(srv.addr, None).await.unwrap();
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
    ws.close(None).await.unwrap();

    // Only unknown offers: the handshake fails with HTTP 400.
    match ws_connect(srv.addr, Some("bourse.v2.json")).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        Err(e) => panic!("expected HTTP 400, got {e}"),
        Ok(_) => panic!("an unknown subprotocol was accepted"),
    }
    srv.stop();
}

/// Needs the node's session to answer ops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_over_json_and_msgpack() {
    let srv = server();
    let (mut ws, _) = ws_connect(srv.addr, Some("bourse.v1.json")).await.unwrap();
    let r = call(&mut ws, false, 7, "ping", json!({})).await;
    assert_eq!(r["id"], 7);
    assert_eq!(r["ok"], true);
    let ts = r["res"]["ts"].as_u64().expect("res.ts is an integer");
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(
        ts.abs_diff(now_us) < 60_000_000,
        "ts is microseconds since the epoch: {ts}"
    );

    let (mut ws, _) = ws_connect(srv.addr, Some("bourse.v1.msgpack"))
        .await
        .unwrap();
    let req = json!({"op": "ping", "id": "p-1"});
    ws.send(Message::Binary(
        rmp_serde::to_vec_named(&req).unwrap().into(),
    ))
    .await
    .unwrap();
    let frame = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Binary(b) = frame else {
        panic!("a msgpack connection answers in binary frames: {frame:?}")
    };
    let r: Value = rmp_serde::from_slice(&b).unwrap();
    assert_eq!(r["id"], "p-1");
    assert_eq!(r["ok"], true);
    assert!(r["res"]["ts"].as_u64().is_some());
    srv.stop();
}

/// The session writes its own frames straight to the socket; tungstenite's
/// answers to the client's control frames go through the same queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_frames_are_answered_and_a_client_close_is_returned() {
    let srv = server();
    let (mut ws, _) = ws_connect(srv.addr, None).await.unwrap();
    ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
    let r = call(&mut ws, false, 1, "ping", json!({})).await;
    assert_eq!(r["ok"], true);
    // The first pong came while `call` waited for its answer, which passes
    // over control frames; the second is read here.
    ws.send(Message::Ping(b"again".to_vec().into())).await.unwrap();
    let pong = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Pong(p))) => break p,
            Some(Ok(_)) => continue,
            other => panic!("no pong: {other:?}"),
        }
    };
    assert_eq!(&pong[..], b"again");
    // A close from the client is answered with a close, then the stream ends.
    ws.send(Message::Close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let mut answered = false;
    while let Some(m) = tokio::time::timeout(WAIT, ws.next()).await.expect("the server closes in time") {
        match m {
            Ok(Message::Close(_)) => answered = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(answered, "the server answers a close with a close");
    srv.stop();
}

/// A request sent in the same packet as the upgrade, before the 101 is read,
/// is served: bytes the HTTP server read past the upgrade go to the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_with_the_upgrade_is_answered() {
    let srv = server();
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    // A masked text frame, as a client must send it.
    let payload = br#"{"op":"ping","id":"early"}"#;
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    let mut bytes = upgrade_head("/ws", "").into_bytes();
    bytes.extend_from_slice(&frame);
    tcp.write_all(&bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    let answer = loop {
        assert!(Instant::now() < deadline, "no answer: {}", String::from_utf8_lossy(&got));
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let rest = &got[end + 4..];
        // An unmasked server text frame with a short payload.
        if rest.len() >= 2 && rest.len() >= 2 + usize::from(rest[1]) {
            assert_eq!(rest[0], 0x81);
            break serde_json::from_slice::<Value>(&rest[2..2 + usize::from(rest[1])]).unwrap();
        }
    };
    assert!(got.starts_with(b"HTTP/1.1 101"));
    assert_eq!(answer["id"], "early");
    assert_eq!(answer["ok"], true);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503_before_upgrading() {
    let mut cfg = bourse::test_config();
    cfg.limits.connections_max = 2;
    let srv = bourse::spawn_server_for_tests(cfg);
    let (mut a, _) = ws_connect(srv.addr, None).await.unwrap();
    let (_b, _) = ws_connect(srv.addr, None).await.unwrap();
    match ws_connect(srv.addr, None).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        Err(e) => panic!("expected HTTP 503, got {e}"),
        Ok(_) => panic!("a third connection was accepted with connections_max = 2"),
    }
    // A closed connection frees its place.
    a.close(None).await.unwrap();
    while next_value(&mut a).await.is_some() {}
    let deadline = Instant::now() + WAIT;
    loop {
        match ws_connect(srv.addr, None).await {
            Ok(_) => break,
            Err(tungstenite::Error::Http(resp)) if resp.status() == 503 => {
                assert!(
                    Instant::now() < deadline,
                    "the closed connection's place never came back"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    srv.stop();
}

/// Needs the node: sessions, orders, market data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_market_maker_quotes_and_trades() {
    let mut cfg = bourse::test_config();
    cfg.demo.market_maker = true;
    cfg.demo.interval_ms = 50;
    let srv = bourse::spawn_server_for_tests(cfg);
    let (mut ws, _) = ws_connect(srv.addr, None).await.unwrap();
    let r = call(
        &mut ws,
        false,
        1,
        "subscribe",
        json!({"ch": "book.l1", "sym": ["BTC-USD", "ETH-USD"]}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let r = call(
        &mut ws,
        false,
        2,
        "subscribe",
        json!({"ch": "trades", "sym": ["BTC-USD"]}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");

    // Once an instrument has both sides, every later top of book has both
    // too: a refresh places the new quotes before it cancels the old ones.
    let mut two_sided = std::collections::BTreeSet::new();
    let mut traded = false;
    let mut later_l1 = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while (two_sided.len() < 2 || !traded || later_l1 < 60) && Instant::now() < deadline {
        let Some(v) = next_value(&mut ws).await else {
            panic!("connection closed")
        };
        match v["ch"].as_str() {
            Some("book.l1") => {
                let sym = v["sym"].as_str().unwrap().to_owned();
                let (bid, ask) = (&v["data"]["bid"], &v["data"]["ask"]);
                if bid.is_array() && ask.is_array() {
                    let px = |l: &Value| {
                        bourse_protocol::decimal::parse(l[0].as_str().unwrap(), 8).unwrap()
                    };
                    assert!(px(bid) < px(ask), "the demo book is not crossed: {v}");
                    if !two_sided.insert(sym) {
                        later_l1 += 1;
                    }
                } else {
                    assert!(
                        !two_sided.contains(&sym),
                        "the demo book lost a side between refreshes: {v}"
                    );
                }
            }
            Some("trades") if v["type"] != "snapshot" => traded = true,
            Some("trades") => traded |= v["data"].as_array().is_some_and(|t| !t.is_empty()),
            _ => {}
        }
    }
    assert!(later_l1 >= 60, "the top of book kept changing: {later_l1} updates");
    assert_eq!(two_sided.len(), 2, "both instruments get a bid and an ask");
    assert!(
        traded,
        "the flow account's market orders trade with the quotes"
    );
    srv.stop();
}

/// Needs the node's shutdown notice, which goes to every session,
/// subscribed to a stream or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sends_notice_shutdown_then_closes() {
    let srv = server();
    let addr = srv.addr;
    let (mut subscribed, _) = ws_connect(addr, None).await.unwrap();
    let r = call(
        &mut subscribed,
        false,
        1,
        "subscribe",
        json!({"ch": "status"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let (mut quiet, _) = ws_connect(addr, None).await.unwrap();
    assert_eq!(
        call(&mut quiet, false, 1, "ping", json!({})).await["ok"],
        true
    );

    let stopping = tokio::task::spawn_blocking(move || srv.stop());
    for (name, ws) in [
        ("subscribed", &mut subscribed),
        ("unsubscribed", &mut quiet),
    ] {
        let mut notice = None;
        while let Some(v) = next_value(ws).await {
            if v["op"] == "notice" {
                notice = Some(v);
                break;
            }
        }
        let notice = notice.unwrap_or_else(|| {
            panic!("the {name} session got no notice before its connection closed")
        });
        assert_eq!(notice["code"], "shutdown", "{notice}");
        assert!(notice["in_ms"].as_u64().is_some(), "{notice}");
    }
    stopping.await.unwrap();
    assert!(get_fails(addr).await, "the listener is closed after stop");
}

async fn get_fails(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return true;
    };
    let _ = s
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    matches!(
        tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// The binary: configuration errors exit with 2; SIGTERM stops it cleanly with 0.
#[test]
fn binary_exit_codes_and_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let bin = env!("CARGO_BIN_EXE_bourse");
    let dir = std::env::temp_dir().join(format!("bourse-test-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let out = Command::new(bin)
        .args(["serve", "--listen", "not-an-address"])
        .env("BOURSE_DURABLE", "false")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
    let out = Command::new(bin)
        .env("BOURSE_LIMITS__CONNECTIONS_MAX", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("BOURSE_DURABLE", "false")
        .env("BOURSE_DEMO__MARKET_MAKER", "false")
        .env("RUST_LOG", "info")
        .env_remove("BOURSE_ADMIN_PASSWORD")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("the server logs its address").unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening") {
            let at = line.find("127.0.0.1:").unwrap();
            let end = line[at..]
                .find(|c: char| c.is_whitespace())
                .map_or(line.len(), |e| at + e);
            // The text format may colour the value; keep the address characters.
            let raw: String = line[at..end]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            break raw.parse().unwrap();
        }
    };
    let password_file = dir.join("initial-admin-password");
    let password = std::fs::read_to_string(&password_file).expect("a generated admin password");
    assert_eq!(password.trim().len(), 24);
    assert!(
        !log.contains(password.trim()),
        "the admin password is never logged"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(get(addr, "/healthz"));
    assert_eq!(r.status, 200);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "a clean stop exits 0");
    let _ = std::fs::remove_dir_all(&dir);
}
