//! One running exchange process: the node (its actors) and the listener in
//! front of it, inside one actix `System`, from start to a clean stop.
//!
//! Start: the node recovers or bootstraps its state, then the listener
//! accepts connections, then (in the demo) the market maker connects to it
//! like any client. Stop, when the shutdown token is cancelled (SIGINT or
//! SIGTERM in the binary): the listener stops accepting, the node sends
//! `notice shutdown` to every session, finishes the journal and closes the
//! sessions, then open HTTP responses finish.
//!
//! [`spawn_server_for_tests`] runs all of this on a thread of its own, on
//! `127.0.0.1:0`, so tests talk to a real server over real sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::http::{self, HttpState};
use crate::{demo, Node};
use bourse_actors::node::AdminSecret;

/// How far ahead of closing the sessions the `notice shutdown` announces it.
pub const SHUTDOWN_NOTICE_MS: u64 = 1_000;
/// The same for a [`TestServer`], whose clients need no time to react.
pub const TEST_SHUTDOWN_NOTICE_MS: u64 = 50;

/// Runs the exchange on `listener` until `shutdown` is cancelled, then stops
/// it cleanly. Call inside an actix `System` (the node's actors start there).
pub async fn serve(
    cfg: Config,
    admin_password: AdminSecret,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_inner(
        cfg,
        admin_password,
        listener,
        shutdown,
        SHUTDOWN_NOTICE_MS,
        None,
    )
    .await
}

/// [`serve`], announcing shutdown `notice_ms` ahead, and telling `started`
/// once the node is up and the listener is accepting.
async fn serve_inner(
    cfg: Config,
    admin_password: AdminSecret,
    listener: TcpListener,
    shutdown: CancellationToken,
    notice_ms: u64,
    started: Option<oneshot::Sender<()>>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("listener address")?;
    let sockets_max = crate::fds::raise_and_budget().map_err(anyhow::Error::msg)?;
    let node = Node::start(cfg.clone(), admin_password)
        .await
        .context("starting the node")?;
    let state = Arc::new(HttpState {
        node: node.clone(),
        web_root: cfg.web_root.clone(),
        ws_open: Arc::new(AtomicUsize::new(0)),
        ws_max: crate::fds::websockets_max(cfg.limits.connections_max, sockets_max),
        sockets_max,
        shutdown: shutdown.clone(),
    });
    let listening = tokio::spawn(http::run(listener, state, shutdown.clone()));
    info!(%addr, "listening");

    let market_maker = cfg.demo.market_maker.then(|| {
        let stop = shutdown.child_token();
        tokio::spawn(demo::run(cfg.clone(), connect_addr(addr), stop))
    });
    if let Some(tx) = started {
        let _ = tx.send(());
    }

    shutdown.cancelled().await;
    info!("shutting down: no new connections");
    if let Some(mm) = market_maker {
        if let Err(e) = mm.await {
            warn!(error = %e, "the demo market maker ended abnormally");
        }
    }
    node.shutdown(notice_ms).await;
    info!("node stopped");
    listening.await.context("the listener task")?;
    Ok(())
}

/// The address a client on this machine reaches a listener bound to `addr`
/// at: the loopback address when bound to all interfaces.
pub fn connect_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Cancels `token` on SIGINT or SIGTERM. A second signal ends the process
/// at once (exit code 130) for an operator who will not wait.
pub async fn cancel_on_signal(token: CancellationToken) {
    wait_for_signal().await;
    info!("signal received: stopping (a second signal exits at once)");
    token.cancel();
    wait_for_signal().await;
    warn!("second signal: exiting without a clean stop");
    std::process::exit(130);
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `fut` as the whole life of a new actix `System` on this thread and
/// stops the system (and the arbiters the node started) when it ends.
pub fn run_in_system<F, T>(fut: F) -> T
where
    F: std::future::Future<Output = T>,
{
    let sys = actix_rt::System::new();
    let stopped = sys.stop_future();
    sys.block_on(async move {
        let out = fut.await;
        actix_rt::System::current().stop();
        let _ = stopped.await;
        out
    })
}

// ------------------------------------------------------------ tests

/// Prefix of the data directories [`test_config`] creates (and
/// [`TestServer`] removes).
pub const TEST_DATA_DIR_PREFIX: &str = "bourse-test-";

static TEST_DIRS: AtomicU64 = AtomicU64::new(0);

/// The demo configuration, made for a server inside a test: not durable,
/// a fresh data directory under the system's temporary folder, no demo
/// market maker, the repository's `web-client` as web root, and a listener
/// on `127.0.0.1:0`.
pub fn test_config() -> Config {
    let figment =
        figment::Figment::from(figment::providers::Serialized::defaults(Config::default())).merge(
            <figment::providers::Toml as figment::providers::Format>::string(
                crate::config::EMBEDDED_CONFIG,
            ),
        );
    let mut cfg: Config = figment
        .extract()
        .expect("the embedded config.toml is valid");
    cfg.listen = "127.0.0.1:0".into();
    cfg.durable = false;
    cfg.demo.market_maker = false;
    cfg.web_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web-client");
    let n = TEST_DIRS.fetch_add(1, Ordering::Relaxed);
    let tag = crate::admin::generate(8).expect("random tag");
    cfg.data_dir = std::env::temp_dir().join(format!(
        "{TEST_DATA_DIR_PREFIX}{}-{n}-{tag}",
        std::process::id()
    ));
    cfg
}

/// A server running in this process on its own thread and actix `System`.
/// Dropping it stops it.
pub struct TestServer {
    /// Where it listens (`127.0.0.1`, a free port).
    pub addr: SocketAddr,
    /// The bootstrap operator's password (user `admin`).
    pub admin_password: String,
    /// The configuration it runs with (`listen` is the real address).
    pub config: Config,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://ADDR/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops the server as SIGTERM would and waits for it.
    ///
    /// # Panics
    /// When the server did not stop cleanly (the test should fail).
    pub fn stop(mut self) {
        if let Err(e) = self.stop_inner() {
            panic!("the test server stopped with an error: {e:#}");
        }
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let result = match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the server thread panicked"))?,
            None => Ok(()),
        };
        let dir = &self.config.data_dir;
        let ours = dir.starts_with(std::env::temp_dir())
            && dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(TEST_DATA_DIR_PREFIX));
        if ours {
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.stop_inner() {
                eprintln!("test server stopped with an error: {e:#}");
            }
        }
    }
}

/// Starts a server with `cfg` (start from [`test_config`]) on
/// `127.0.0.1:0`, in its own thread and actix `System`, and returns once it
/// accepts connections.
///
/// # Panics
/// When the server cannot start: the test cannot go on.
pub fn spawn_server_for_tests(mut cfg: Config) -> TestServer {
    init_test_logging();
    let admin_password =
        crate::admin::generate(crate::admin::GENERATED_LEN).expect("random password");
    let shutdown = CancellationToken::new();
    let (tx, rx) = std::sync::mpsc::sync_channel::<anyhow::Result<(SocketAddr, Config)>>(1);
    let thread = {
        let admin_password = admin_password.clone();
        let shutdown = shutdown.clone();
        std::thread::Builder::new()
            .name("bourse-test-server".into())
            .spawn(move || {
                run_in_system(async move {
                    let listener = match TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let e = anyhow::anyhow!("bind 127.0.0.1:0: {e}");
                            let _ = tx.send(Err(anyhow::anyhow!("{e:#}")));
                            return Err(e);
                        }
                    };
                    let addr = listener.local_addr()?;
                    cfg.listen = addr.to_string();
                    let (started_tx, started_rx) = oneshot::channel();
                    let serving = serve_inner(
                        cfg.clone(),
                        AdminSecret { password: admin_password, given: false, generated: None },
                        listener,
                        shutdown,
                        TEST_SHUTDOWN_NOTICE_MS,
                        Some(started_tx),
                    );
                    tokio::pin!(serving);
                    tokio::select! {
                        r = &mut serving => {
                            let e = match &r {
                                Ok(()) => anyhow::anyhow!("the server stopped before it started"),
                                Err(e) => anyhow::anyhow!("{e:#}"),
                            };
                            let _ = tx.send(Err(e));
                            r
                        }
                        _ = started_rx => {
                            let _ = tx.send(Ok((addr, cfg)));
                            serving.await
                        }
                    }
                })
            })
            .expect("spawn the server thread")
    };
    match rx.recv() {
        Ok(Ok((addr, config))) => TestServer {
            addr,
            admin_password,
            config,
            shutdown,
            thread: Some(thread),
        },
        Ok(Err(e)) => {
            let _ = thread.join();
            panic!("test server failed to start: {e:#}");
        }
        Err(_) => {
            let outcome = thread.join();
            panic!(
                "test server thread ended before starting: {:?}",
                outcome.err()
            );
        }
    }
}

/// Sends the server's logs to the test harness's captured output, at the
/// level `RUST_LOG` gives (default `warn`). Only the first call takes effect.
fn init_test_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
