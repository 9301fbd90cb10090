//! A WebSocket client for tests: requests by id, stream events kept aside.

#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub next_id: u64,
    pub events: Vec<Value>,
    pub msgpack: bool,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.expect("connect");
        Client { ws, next_id: 1, events: Vec::new(), msgpack: false }
    }

    /// A client whose socket buffers little, so a client that does not read
    /// backs data up into the server quickly (a slow consumer).
    pub async fn connect_slow(addr: std::net::SocketAddr) -> Client {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("rcvbuf");
        let stream = sock.connect(addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), MaybeTlsStream::Plain(stream)).await.expect("handshake");
        Client { ws, next_id: 1, events: Vec::new(), msgpack: false }
    }

    pub async fn connect_msgpack(addr: std::net::SocketAddr) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{addr}/ws").into_client_request().expect("request");
        req.headers_mut().insert("Sec-WebSocket-Protocol", "bourse.v1.msgpack".parse().expect("header"));
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.expect("connect");
        assert_eq!(resp.headers().get("Sec-WebSocket-Protocol").map(|v| v.to_str().unwrap()), Some("bourse.v1.msgpack"));
        Client { ws, next_id: 1, events: Vec::new(), msgpack: true }
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    /// The next message from the server, decoded, or None when closed.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next()).await.expect("server answers in time")?;
            match m {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).expect("json")),
                Ok(Message::Binary(b)) => return Some(rmp_serde::from_slice(&b).expect("msgpack")),
                Ok(Message::Close(_)) => return None,
                Err(e) => {
                    eprintln!("connection ended: {e}");
                    return None;
                }
                Ok(_) => continue,
            }
        }
    }

    pub async fn request(&mut self, op: &str, args: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"op": op, "id": id, "args": args});
        if self.msgpack {
            self.send_raw(Message::Binary(rmp_serde::to_vec_named(&msg).unwrap().into())).await;
        } else {
            self.send_raw(Message::Text(msg.to_string().into())).await;
        }
        self.response(id).await
    }

    /// Waits for the response to `id`, keeping stream events.
    pub async fn response(&mut self, id: u64) -> Value {
        loop {
            let v = self.recv().await.expect("connection open");
            if v.get("id").and_then(Value::as_u64) == Some(id) {
                return v;
            }
            if v.get("ch").is_some_and(|c| c != "hb") {
                self.events.push(v);
            }
        }
    }

    pub async fn ok(&mut self, op: &str, args: Value) -> Value {
        let r = self.request(op, args.clone()).await;
        assert_eq!(r["ok"], true, "{op} {args} -> {r}");
        r["res"].clone()
    }

    pub async fn err(&mut self, op: &str, args: Value) -> String {
        let r = self.request(op, args.clone()).await;
        assert_eq!(r["ok"], false, "{op} {args} should fail -> {r}");
        r["err"]["code"].as_str().unwrap().to_string()
    }

    pub async fn login(&mut self, user: &str, password: &str) -> Value {
        self.ok("auth", json!({"user": user, "password": password})).await
    }

    /// Waits for a stream event matching `pred`, looking at kept events first.
    pub async fn event(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.remove(i);
        }
        loop {
            let v = self.recv().await.expect("connection open");
            if pred(&v) {
                return v;
            }
            if v.get("ch").is_some_and(|c| c != "hb") {
                self.events.push(v);
            }
        }
    }

    pub async fn balance(&mut self, asset: &str) -> (String, String) {
        let r = self.ok("account.balances", json!({})).await;
        let b = r["balances"].as_array().unwrap().iter().find(|b| b["asset"] == asset).cloned().unwrap();
        (b["available"].as_str().unwrap().to_string(), b["held"].as_str().unwrap().to_string())
    }
}

/// A small exchange for tests: USD and BTC, BTC-USD and ETH-USD, two funded traders.
pub fn test_config() -> bourse_actors::config::Config {
    let toml = r#"
        durable = false
        [[assets]]
        asset = "USD"
        scale = 2
        [[assets]]
        asset = "BTC"
        scale = 8
        [[assets]]
        asset = "ETH"
        scale = 8
        [[instruments]]
        sym = "BTC-USD"
        base = "BTC"
        quote = "USD"
        tick = "0.5"
        lot = "0.02"
        min_qty = "0.02"
        ref_px = "30000"
        maker_fee_bps = 10
        taker_fee_bps = 20
        [[instruments]]
        sym = "ETH-USD"
        base = "ETH"
        quote = "USD"
        tick = "0.5"
        lot = "0.02"
        min_qty = "0.02"
        ref_px = "2000"
        [[users]]
        user = "alice"
        password = "alice-pass"
        deposits = { USD = "1000000.00", BTC = "10", ETH = "100" }
        [[users]]
        user = "bob"
        password = "bob-pass-1"
        deposits = { USD = "1000000.00", BTC = "10", ETH = "100" }
        [[users]]
        user = "carol"
        password = "carol-pass"
        deposits = { USD = "1000.00" }
    "#;
    use figment::providers::{Format, Serialized, Toml};
    figment::Figment::from(Serialized::defaults(bourse_actors::config::Config::default()))
        .merge(Toml::string(toml))
        .extract()
        .expect("test config")
}
