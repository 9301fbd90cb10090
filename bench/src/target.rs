//! Where the exchange under test is, and a server process the bench runs
//! itself.
//!
//! A [`Target`] is a WebSocket URL, the operator's password (needed to make
//! bench accounts) and, when known, the server's process id (for its CPU
//! time and resident memory). A [`ServerProcess`] is a `bourse` binary
//! started by the bench on a fresh data directory and a free loopback port,
//! configured by a [`ServerSpec`] (environment overrides such as
//! `BOURSE_DURABLE=false`), and stopped with SIGTERM by its process id.

use anyhow::{anyhow, bail, Context as _};
use bourse_protocol::Encoding;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a started server may take to answer `/readyz`.
pub const SERVER_START_MS_MAX: u64 = 60_000;
/// How long a server may take to stop after SIGTERM before it is killed.
pub const SERVER_STOP_MS_MAX: u64 = 30_000;

/// The environment every server the bench starts gets before the spec's
/// own overrides: no demo market maker (the bench makes its own flow), and
/// rate limits high enough that they do not decide a throughput figure.
/// A spec can set them back (`BOURSE_LIMITS__CONN_MSGS_PER_SEC=2000`).
pub const SERVER_ENV_DEFAULTS: [(&str, &str); 3] = [
    ("BOURSE_DEMO__MARKET_MAKER", "false"),
    ("BOURSE_LIMITS__CONN_MSGS_PER_SEC", "10000000"),
    ("BOURSE_LIMITS__ACCOUNT_ORDERS_PER_SEC", "10000000"),
];

/// The exchange under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ws://HOST:PORT/ws`.
    pub ws_url: String,
    /// The operator `admin`'s password; bench accounts need it.
    pub admin_password: Option<String>,
    /// The server's process id, for its CPU time and memory.
    pub server_pid: Option<u32>,
}

impl Target {
    /// The operator password, or an error saying how to give it.
    pub fn admin_password(&self) -> anyhow::Result<&str> {
        self.admin_password.as_deref().ok_or_else(|| {
            anyhow!("the operator password is needed: --admin-password or BOURSE_ADMIN_PASSWORD")
        })
    }
}

/// One server configuration of a run or of one side of `--compare`:
/// `KEY=VALUE` items separated by commas. Keys starting `BOURSE_` are the
/// server's environment; `encoding=json|msgpack` is the bench's encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSpec {
    /// As written, for reports.
    pub label: String,
    pub env: Vec<(String, String)>,
    pub encoding: Option<Encoding>,
}

impl ServerSpec {
    pub fn parse(s: &str) -> anyhow::Result<ServerSpec> {
        let mut spec = ServerSpec {
            label: s.to_owned(),
            ..ServerSpec::default()
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| anyhow!("{item:?} is not KEY=VALUE"))?;
            if k.starts_with("BOURSE_") {
                spec.env.push((k.to_owned(), v.to_owned()));
            } else if k == "encoding" {
                spec.encoding = Some(match v {
                    "json" => Encoding::Json,
                    "msgpack" => Encoding::MsgPack,
                    _ => bail!("encoding is json or msgpack, not {v:?}"),
                });
            } else {
                bail!("{k:?}: a spec item is BOURSE_*=VALUE or encoding=json|msgpack");
            }
        }
        Ok(spec)
    }
}

/// A `bourse` server started by the bench.
pub struct ServerProcess {
    child: tokio::process::Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub admin_password: String,
}

static SERVERS_STARTED: AtomicU64 = AtomicU64::new(0);

impl ServerProcess {
    /// Starts `bin --data-dir FRESH --listen 127.0.0.1:FREE` with
    /// [`SERVER_ENV_DEFAULTS`], a generated operator password and the
    /// spec's environment, in the current directory (so `./config.toml`
    /// applies as it does for `bourse`), and waits until `/readyz` is 200.
    pub async fn start(bin: &Path, spec: &ServerSpec) -> anyhow::Result<ServerProcess> {
        let n = SERVERS_STARTED.fetch_add(1, Ordering::Relaxed);
        let tag = format!(
            "{}-{n}-{}",
            std::process::id(),
            crate::machine::now_us() % 1_000_000_000
        );
        let data_dir = std::env::temp_dir().join(format!("bourse-bench-{tag}"));
        let log_path = std::env::temp_dir().join(format!("bourse-bench-{tag}.log"));
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
            l.local_addr()?.port()
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let admin_password = random_hex(16)?;
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(addr.to_string())
            .env("BOURSE_ADMIN_PASSWORD", &admin_password)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in SERVER_ENV_DEFAULTS {
            cmd.env(k, v);
        }
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the server exited at once"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("the server exited with {status} before it was ready:\n{log}");
            }
            if ready(addr).await {
                break;
            }
            if started.elapsed() > Duration::from_millis(SERVER_START_MS_MAX) {
                let _ = child.kill().await;
                bail!("the server was not ready in {SERVER_START_MS_MAX} ms");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(ServerProcess {
            child,
            pid,
            addr,
            data_dir,
            log_path,
            admin_password,
        })
    }

    pub fn target(&self) -> Target {
        Target {
            ws_url: format!("ws://{}/ws", self.addr),
            admin_password: Some(self.admin_password.clone()),
            server_pid: Some(self.pid),
        }
    }

    /// Stops the server with SIGTERM (by its process id), waits for it,
    /// and removes its data directory. Its log stays at `log_path`.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        let stopped =
            tokio::time::timeout(Duration::from_millis(SERVER_STOP_MS_MAX), self.child.wait())
                .await;
        let result = match stopped {
            Ok(Ok(s)) if s.success() => Ok(()),
            Ok(Ok(s)) => Err(anyhow!("the server stopped with {s}")),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(anyhow!(
                    "the server did not stop in {SERVER_STOP_MS_MAX} ms"
                ))
            }
        };
        let _ = std::fs::remove_dir_all(&self.data_dir);
        result
    }
}

/// Whether `GET /readyz` answers 200.
async fn ready(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> anyhow::Result<String> {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow!("no system randomness"))?;
    Ok(hex::encode(b))
}

/// The process id of the only running process named `bourse`, if there is
/// exactly one (for `--server-pid` left out).
pub fn find_server_pid() -> Option<u32> {
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "bourse" {
            if found.is_some() {
                return None;
            }
            found = Some(pid);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_split_server_env_from_bench_options() {
        let s = ServerSpec::parse("BOURSE_DURABLE=false, encoding=json").unwrap();
        assert_eq!(s.env, vec![("BOURSE_DURABLE".into(), "false".into())]);
        assert_eq!(s.encoding, Some(Encoding::Json));
        assert_eq!(s.label, "BOURSE_DURABLE=false, encoding=json");
        assert!(ServerSpec::parse("durable").is_err());
        assert!(ServerSpec::parse("PATH=/x").is_err());
        assert!(ServerSpec::parse("encoding=xml").is_err());
        assert_eq!(ServerSpec::parse("").unwrap().env, vec![]);
    }
}
