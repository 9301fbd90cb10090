//! The exchange's one listener: HTTP/1.1 on a TCP socket, serving
//!
//! * `GET /ws`: the WebSocket endpoint (PROTOCOL.md section 1). The
//!   subprotocol picks the encoding (`bourse.v1.json`, `bourse.v1.msgpack`;
//!   none means JSON); an offer naming neither is refused with HTTP 400, and
//!   a connection over `limits.connections_max` with HTTP 503, both before
//!   upgrading. The upgraded socket, with frames and messages capped at
//!   [`FRAME_BYTES_MAX`], goes to the node, which runs its session.
//! * `GET /healthz` (the process answers), `GET /readyz` (the node accepts
//!   orders), `GET /metrics` (Prometheus text: `bourse_actors::telemetry`,
//!   with `bourse_ready` saying what `/readyz` would answer).
//! * everything else: the browser client's files from `web_root`.
//!
//! The accept loop owns a bounded number of HTTP connections
//! ([`HTTP_CONNECTIONS_MAX`]); upgraded WebSockets are counted separately,
//! each holding a [`ConnectionSlot`] until its socket is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bourse_actors::telemetry;
use bourse_protocol::{Encoding, FRAME_BYTES_MAX};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::Node;

/// HTTP connections served at once (page loads, probes, scrapes, WebSocket
/// handshakes in progress). At the limit the accept loop waits, so further
/// clients queue in the kernel's backlog instead of in memory.
pub const HTTP_CONNECTIONS_MAX: usize = 4_096;
/// How long a client may take to send its request headers (slow clients
/// would otherwise hold one of [`HTTP_CONNECTIONS_MAX`] forever).
pub const HEADER_READ_TIMEOUT_MS_MAX: u64 = 10_000;
/// The largest static file served; the biggest in the client is its chart
/// library (a few hundred KiB).
pub const STATIC_FILE_BYTES_MAX: u64 = 16 << 20;
/// How long shutdown waits for open HTTP connections to finish their
/// current response.
pub const HTTP_DRAIN_MS_MAX: u64 = 5_000;
/// Pause after a failed `accept` (for example no file descriptors left),
/// so the loop does not spin while the condition lasts.
pub const ACCEPT_ERROR_PAUSE_MS: u64 = 100;

/// The body of every response: the server only ever sends whole, small bodies.
pub type Body = Full<Bytes>;

/// What every request handler shares.
pub struct HttpState {
    pub node: Node,
    pub web_root: PathBuf,
    /// Upgraded WebSockets open now.
    pub ws_open: Arc<AtomicUsize>,
    /// `limits.connections_max`, lowered to `sockets_max` if above it.
    pub ws_max: usize,
    /// Sockets (WebSockets and plain HTTP connections) held at once at
    /// most: what the open-file limit leaves (`crate::fds`).
    pub sockets_max: usize,
    /// Cancelled when the process stops accepting work.
    pub shutdown: CancellationToken,
}

/// The WebSocket configuration of every session: frames and reassembled
/// messages at most [`FRAME_BYTES_MAX`] (larger ones are a protocol error
/// the session answers with `frame_too_large` and close code 1009).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(FRAME_BYTES_MAX))
        .max_frame_size(Some(FRAME_BYTES_MAX))
        // The library's 128 KiB read buffer is zero-filled before every read:
        // most of an idle server's CPU with 10,000 connections, and 128 KiB of
        // memory each. Requests are small; a larger message still reassembles.
        .read_buffer_size(WS_READ_BUFFER_BYTES)
}

/// Read buffer of each WebSocket connection.
pub const WS_READ_BUFFER_BYTES: usize = 8 * 1024;

/// Accepts connections until `shutdown` is cancelled, then waits (at most
/// [`HTTP_DRAIN_MS_MAX`]) for the open ones to finish their response.
/// Upgraded WebSockets are the node's and are not waited for here.
pub async fn run(listener: TcpListener, state: Arc<HttpState>, shutdown: CancellationToken) {
    telemetry::install();
    let permits = Arc::new(Semaphore::new(HTTP_CONNECTIONS_MAX));
    let mut budget_warned: Option<std::time::Instant> = None;
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        // No socket past the open-file budget: the node's own files (its
        // next log segment) must always open. Those waiting stay in the
        // kernel's backlog until connections close.
        while state.ws_open.load(Ordering::Acquire) + (HTTP_CONNECTIONS_MAX - permits.available_permits()) > state.sockets_max {
            if budget_warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                warn!(sockets_max = state.sockets_max, "the open-file limit's sockets are all held: new connections wait until some close");
                budget_warned = Some(std::time::Instant::now());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let sndbuf = state.node.shared.cfg.limits.socket_send_buffer_bytes;
        if sndbuf > 0 {
            // A fixed kernel send buffer bounds the memory a slow reader can
            // pin, and lets the session's own queue see the lag (on_lag).
            if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(sndbuf) {
                warn!(error = %e, "setting the socket send buffer failed");
            }
        }
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, state, shutdown).await;
            drop(permit);
        });
    }
    drop(listener);
    info!("listener closed");
    let all = u32::try_from(HTTP_CONNECTIONS_MAX).expect("HTTP_CONNECTIONS_MAX fits in u32");
    let drained = tokio::time::timeout(
        Duration::from_millis(HTTP_DRAIN_MS_MAX),
        permits.acquire_many(all),
    )
    .await;
    if drained.is_err() {
        warn!(
            open = HTTP_CONNECTIONS_MAX - permits.available_permits(),
            "HTTP connections still open after the drain period"
        );
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<HttpState>,
    shutdown: CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "set_nodelay failed");
    }
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, req, peer).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS_MAX));
    let conn = builder
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// Routes one request.
pub async fn handle(state: &HttpState, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    match req.uri().path() {
        "/ws" => websocket(state, req, peer),
        "/healthz" => only_get(&req).unwrap_or_else(|| text(StatusCode::OK, "ok\n")),
        "/readyz" => only_get(&req).unwrap_or_else(|| {
            if ready(state) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }),
        "/metrics" => only_get(&req).unwrap_or_else(|| {
            telemetry::set_ready(ready(state));
            let mut r = Response::new(Body::from(state.node.metrics_text()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }),
        _ => match only_get(&req) {
            Some(refusal) => refusal,
            None => static_file(&state.web_root, req.uri().path()).await,
        },
    }
}

/// Whether the node accepts orders (what `/readyz` answers).
fn ready(state: &HttpState) -> bool {
    state.node.ready() && !state.shutdown.is_cancelled()
}

/// `Some(405)` unless the request is a GET or HEAD.
fn only_get(req: &Request<Incoming>) -> Option<Response<Body>> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return None;
    }
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(r)
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

// ------------------------------------------------------------ WebSocket

/// The subprotocol outcome of a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiated {
    /// No subprotocol offered: JSON, and no `Sec-WebSocket-Protocol` in the reply.
    Default,
    /// The first offered subprotocol this server speaks.
    Chosen(Encoding),
    /// Subprotocols were offered and none is ours: the handshake is refused.
    Unsupported(String),
}

impl Negotiated {
    /// The encoding the session answers in, unless refused.
    pub fn encoding(&self) -> Option<Encoding> {
        match self {
            Negotiated::Default => Some(Encoding::Json),
            Negotiated::Chosen(e) => Some(*e),
            Negotiated::Unsupported(_) => None,
        }
    }
}

/// Reads every `Sec-WebSocket-Protocol` header (each a comma-separated
/// list) and picks the first name the client offered that this server
/// speaks.
pub fn negotiate(headers: &HeaderMap) -> Negotiated {
    let mut offered = Vec::new();
    for v in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let Ok(v) = v.to_str() else {
            return Negotiated::Unsupported(String::from_utf8_lossy(v.as_bytes()).into_owned());
        };
        offered.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()));
    }
    if offered.is_empty() {
        return Negotiated::Default;
    }
    match offered.iter().find_map(|p| Encoding::from_subprotocol(p)) {
        Some(e) => Negotiated::Chosen(e),
        None => Negotiated::Unsupported(offered.join(", ")),
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The WebSocket handshake. A refused one (anything but 101) also closes
/// the connection: a client whose upgrade failed starts over anyway.
fn websocket(state: &HttpState, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let mut r = handshake(state, req, peer);
    if r.status() != StatusCode::SWITCHING_PROTOCOLS {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

fn handshake(state: &HttpState, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    if req.method() != Method::GET {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the WebSocket endpoint takes GET with an upgrade\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let headers = req.headers();
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return text(
            StatusCode::BAD_REQUEST,
            "this endpoint is a WebSocket: send an upgrade request\n",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut r = text(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket version 13 is required\n",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let negotiated = negotiate(headers);
    let Some(encoding) = negotiated.encoding() else {
        debug!(%peer, ?negotiated, "refused a WebSocket with no known subprotocol");
        return text(
            StatusCode::BAD_REQUEST,
            concat!(
                "unsupported WebSocket subprotocol; this server speaks ",
                "bourse.v1.json (text frames) and bourse.v1.msgpack (binary frames)\n"
            ),
        );
    };
    if state.shutdown.is_cancelled() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    let Some(slot) = ConnectionSlot::take(&state.ws_open, state.ws_max) else {
        metrics::counter!(telemetry::WS_REFUSED_TOTAL, "reason" => "connections_max").increment(1);
        let mut r = text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections, retry later\n",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };

    let on_upgrade = hyper::upgrade::on(&mut req);
    let node = state.node.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                debug!(%peer, error = %e, "WebSocket upgrade did not complete");
                return;
            }
        };
        // The session's writer writes whole frames straight to the socket,
        // so the connection leaves hyper here as the TCP stream it is.
        let parts = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(p) => p,
            Err(_) => {
                warn!(%peer, "an upgraded connection is not a TCP stream");
                return;
            }
        };
        let socket = match parts.io.into_inner().into_std() {
            Ok(s) => s,
            Err(e) => {
                debug!(%peer, error = %e, "an upgraded connection could not be handed over");
                return;
            }
        };
        if let Err(refused) = node.accept(socket, parts.read_buf, Box::new(slot), ws_config(), encoding, peer) {
            metrics::counter!(telemetry::WS_REFUSED_TOTAL, "reason" => "node").increment(1);
            info!(%peer, reason = %refused, "the node refused a WebSocket");
        }
    });

    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    if let Negotiated::Chosen(e) = negotiated {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(e.subprotocol()),
        );
    }
    r
}

/// One of the `limits.connections_max` WebSocket places, given back when dropped.
pub struct ConnectionSlot(Arc<AtomicUsize>);

impl ConnectionSlot {
    /// Takes a place if fewer than `max` are taken.
    pub fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<ConnectionSlot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()?;
        // Sessions are counted (by role) in `bourse_ws_connections` by the node.
        Some(ConnectionSlot(open.clone()))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

// ------------------------------------------------------------ static files

/// The content type of a file served from `web_root`, by extension.
pub fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// The file under `root` that a URL path names, or why none may be: the
/// path is percent-decoded, and any `..` segment, backslash or NUL is
/// refused, so no request reaches outside `root`. A path ending in `/`
/// names that folder's `index.html`.
pub fn resolve(root: &Path, url_path: &str) -> Result<PathBuf, StatusCode> {
    let decoded = percent_decode(url_path).ok_or(StatusCode::BAD_REQUEST)?;
    let mut out = root.to_path_buf();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(StatusCode::BAD_REQUEST),
            s if s.contains(['\\', '\0']) => return Err(StatusCode::BAD_REQUEST),
            s => out.push(s),
        }
    }
    if decoded.is_empty() || decoded.ends_with('/') {
        out.push("index.html");
    }
    Ok(out)
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn static_file(root: &Path, url_path: &str) -> Response<Body> {
    let mut path = match resolve(root, url_path) {
        Ok(p) => p,
        Err(status) => return text(status, "bad path\n"),
    };
    let mut meta = match tokio::fs::metadata(&path).await {
        Ok(m) => m,
        Err(_) => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    if meta.is_dir() {
        path.push("index.html");
        meta = match tokio::fs::metadata(&path).await {
            Ok(m) => m,
            Err(_) => return text(StatusCode::NOT_FOUND, "not found\n"),
        };
    }
    if !meta.is_file() {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if meta.len() > STATIC_FILE_BYTES_MAX {
        warn!(path = %path.display(), "static file over STATIC_FILE_BYTES_MAX");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "file too large\n");
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut r = Response::new(Body::from(bytes));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&path)),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read static file");
            text(StatusCode::NOT_FOUND, "not found\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_protocol::codec::{SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};

    fn offer(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn negotiation_picks_the_first_known_offer() {
        assert_eq!(negotiate(&offer(&[])), Negotiated::Default);
        assert_eq!(
            negotiate(&offer(&[SUBPROTOCOL_JSON])),
            Negotiated::Chosen(Encoding::Json)
        );
        assert_eq!(
            negotiate(&offer(&[SUBPROTOCOL_MSGPACK])),
            Negotiated::Chosen(Encoding::MsgPack)
        );
        assert_eq!(
            negotiate(&offer(&["chat, bourse.v1.msgpack , bourse.v1.json"])),
            Negotiated::Chosen(Encoding::MsgPack)
        );
        assert_eq!(
            negotiate(&offer(&["chat", "bourse.v1.json"])),
            Negotiated::Chosen(Encoding::Json)
        );
        assert_eq!(
            negotiate(&offer(&["bourse.v2.json, chat"])),
            Negotiated::Unsupported("bourse.v2.json, chat".into())
        );
        assert_eq!(negotiate(&offer(&["BOURSE.V1.JSON"])).encoding(), None);
        assert_eq!(negotiate(&offer(&[" , "])), Negotiated::Default);
    }

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/srv/web");
        assert_eq!(resolve(root, "/"), Ok(PathBuf::from("/srv/web/index.html")));
        assert_eq!(
            resolve(root, "/lib/"),
            Ok(PathBuf::from("/srv/web/lib/index.html"))
        );
        assert_eq!(
            resolve(root, "/app.js"),
            Ok(PathBuf::from("/srv/web/app.js"))
        );
        assert_eq!(
            resolve(root, "/node_modules/lightweight-charts/dist/x.mjs"),
            Ok(PathBuf::from(
                "/srv/web/node_modules/lightweight-charts/dist/x.mjs"
            ))
        );
        assert_eq!(
            resolve(root, "/a%20b.css"),
            Ok(PathBuf::from("/srv/web/a b.css"))
        );
        assert_eq!(
            resolve(root, "/./lib//x.js"),
            Ok(PathBuf::from("/srv/web/lib/x.js"))
        );
        for bad in [
            "/../etc/passwd",
            "/lib/../../x",
            "/%2e%2e/etc/passwd",
            "/a%5c..%5cb",
            "/a%00b",
            "/%zz",
            "/%ff",
        ] {
            assert_eq!(resolve(root, bad), Err(StatusCode::BAD_REQUEST), "{bad}");
        }
    }

    #[test]
    fn content_types() {
        for (f, t) in [
            ("index.html", "text/html; charset=utf-8"),
            ("a.js", "text/javascript; charset=utf-8"),
            ("a.mjs", "text/javascript; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("a.json", "application/json"),
            ("a.js.map", "application/json"),
            ("a.svg", "image/svg+xml"),
            ("a.PNG", "image/png"),
            ("LICENSE", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(f)), t, "{f}");
        }
    }

    #[test]
    fn connection_slots_are_bounded_and_given_back() {
        let open = Arc::new(AtomicUsize::new(0));
        let a = ConnectionSlot::take(&open, 2).unwrap();
        let b = ConnectionSlot::take(&open, 2).unwrap();
        assert!(ConnectionSlot::take(&open, 2).is_none());
        drop(a);
        assert_eq!(open.load(Ordering::Acquire), 1);
        let _c = ConnectionSlot::take(&open, 2).unwrap();
        drop(b);
        assert_eq!(open.load(Ordering::Acquire), 1);
    }
}
