//! The `bourse-bench` command line: one subcommand per scenario, the same
//! target options on each (`--url` of a running exchange, or
//! `--server-bin` to start one per run), `--out FILE` for the JSON result
//! and `--compare A B` to run the scenario against two server
//! configurations in one invocation and print the ratio B/A of its key
//! figures. Every run first prints the one-line machine summary.

use crate::connections::{self, ConnectionsOpts, ConnectionsReport};
use crate::crowd::{self, CrowdOpts, CrowdReport};
use crate::fanout::{self, FanoutOpts, FanoutReport};
use crate::flow::{FlowOpts, Mix, Pace};
use crate::machine::Machine;
use crate::orders::{self, OrdersOpts, OrdersReport};
use crate::target::{self, ServerProcess, ServerSpec, Target};
use anyhow::{anyhow, bail, Context as _};
use bourse_protocol::Encoding;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "bourse-bench",
    version,
    about = "Load generator and benchmarks for the Bourse exchange, over the wire"
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// Order entry: ack latency and throughput, open or closed loop.
    Orders(OrdersArgs),
    /// Market data to many subscribers while orders flow: delivery latency, gaps.
    Fanout(FanoutArgs),
    /// Many connections held open on heartbeats: memory per connection.
    Connections(ConnectionsArgs),
    /// Many users who mostly watch and sometimes trade: requests/s, p50, p99.
    Crowd(CrowdArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EncodingArg {
    Json,
    Msgpack,
}

impl From<EncodingArg> for Encoding {
    fn from(e: EncodingArg) -> Encoding {
        match e {
            EncodingArg::Json => Encoding::Json,
            EncodingArg::Msgpack => Encoding::MsgPack,
        }
    }
}

/// Where the exchange is and what to write; the same on every scenario.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// WebSocket URL of a running exchange (unless --server-bin).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// The operator admin's password (bench accounts are made with it).
    #[arg(long, env = "BOURSE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Process id of the running server, for its CPU and memory [default: the only process named bourse].
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Start this server binary per run (fresh data directory, free port) instead of using --url.
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// Server configuration with --server-bin: KEY=VALUE,... (BOURSE_* environment, encoding=json|msgpack).
    #[arg(long, default_value = "", value_name = "SPEC")]
    pub server_env: String,
    /// Run twice, with server configurations A and B (each a --server-env SPEC), and print B/A.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub compare: Option<Vec<String>>,
    /// Encoding of the bench's connections.
    #[arg(long, value_enum, default_value = "msgpack")]
    pub encoding: EncodingArg,
    /// Write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Seed of every random choice of the run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Mid price of an instrument whose book is empty, SYM=PRICE (repeatable).
    #[arg(long = "mid", value_name = "SYM=PRICE")]
    pub mids: Vec<String>,
    /// Worker threads of the bench's runtime. One leaves the other core of
    /// a 2-core machine to the server and wakes fewer threads per request.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
}

#[derive(Debug, Clone, Args)]
pub struct OrdersArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections sending orders.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Open loop: orders per second in total.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Poisson arrivals instead of evenly spaced ones (open loop).
    #[arg(long)]
    pub poisson: bool,
    /// Closed loop (maximum throughput) instead of open loop.
    #[arg(long)]
    pub closed_loop: bool,
    /// Closed loop: outstanding requests per connection.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Seconds of sending, warm-up included.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Seconds at the start whose answers are not measured.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Weights of place,cancel,amend,marketable,market.
    #[arg(long, default_value = "45,30,10,10,5")]
    pub mix: String,
    /// Funded accounts [default: one per connection].
    #[arg(long, default_value_t = 0)]
    pub accounts: usize,
    /// Instruments to trade, comma separated [default: every trading one].
    #[arg(long, value_delimiter = ',')]
    pub instruments: Vec<String>,
    /// Bench instruments to list first (BX1-USD, BX2-USD, ...).
    #[arg(long, default_value_t = 0)]
    pub extra_instruments: usize,
    /// How far from the mid resting orders go, basis points.
    #[arg(long, default_value_t = 50)]
    pub offset_bps: u64,
    /// Open orders per connection before places turn into cancels.
    #[arg(long, default_value_t = 500)]
    pub open_orders_max: usize,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscriber connections.
    #[arg(long, default_value_t = 1_000)]
    pub subscribers: usize,
    /// Instrument [default: the first trading one].
    #[arg(long)]
    pub sym: Option<String>,
    /// book.l2 depth subscribed (10, 50, 200 or 0).
    #[arg(long, default_value_t = 50)]
    pub depth: u32,
    /// Order flow on the instrument, orders per second (open loop).
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Connections of the order flow.
    #[arg(long, default_value_t = 4)]
    pub flow_connections: usize,
    /// Seconds of order flow.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Resting orders within this many ticks of the mid.
    #[arg(long, default_value_t = 20)]
    pub offset_ticks: u64,
    /// Weights of place,cancel,amend,marketable,market of the flow.
    #[arg(long, default_value = "45,30,10,10,5")]
    pub mix: String,
    /// Milliseconds subscribers keep reading after the flow.
    #[arg(long, default_value_t = 2_500)]
    pub grace_ms: u64,
    /// Threads reading the subscribers' sockets (each waits on its share
    /// with epoll, apart from the runtime that sends the order flow).
    #[arg(long, default_value_t = 2)]
    pub readers: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Seconds to hold them once all are open.
    #[arg(long, default_value_t = 30.0)]
    pub hold: f64,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub parallel: usize,
}

#[derive(Debug, Clone, Args)]
pub struct CrowdArgs {
    #[command(flatten)]
    pub common: Common,
    /// Simulated users.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Seconds over which users arrive.
    #[arg(long, default_value_t = 60.0)]
    pub ramp: f64,
    /// Seconds all users stay after the ramp.
    #[arg(long, default_value_t = 60.0)]
    pub hold: f64,
    /// Mean think time between two actions of a user, milliseconds.
    #[arg(long, default_value_t = 2_000)]
    pub think_ms: u64,
    /// Percent of users who log in and trade.
    #[arg(long, default_value_t = 10)]
    pub traders_pct: u32,
    /// Accounts the trading users share.
    #[arg(long, default_value_t = 20)]
    pub trader_accounts: usize,
    /// Background order flow, orders per second (0: none).
    #[arg(long, default_value_t = 200)]
    pub flow_rate: u64,
    /// Connections of the background flow.
    #[arg(long, default_value_t = 2)]
    pub flow_connections: usize,
}

impl Scenario {
    pub fn common(&self) -> &Common {
        match self {
            Scenario::Orders(a) => &a.common,
            Scenario::Fanout(a) => &a.common,
            Scenario::Connections(a) => &a.common,
            Scenario::Crowd(a) => &a.common,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Orders(_) => "orders",
            Scenario::Fanout(_) => "fanout",
            Scenario::Connections(_) => "connections",
            Scenario::Crowd(_) => "crowd",
        }
    }
}

/// Any scenario's result.
// One report per run: the size of the largest is no cost worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Report {
    Orders(OrdersReport),
    Fanout(FanoutReport),
    Connections(ConnectionsReport),
    Crowd(CrowdReport),
}

impl Report {
    /// The one-line human summary.
    pub fn line(&self) -> String {
        match self {
            Report::Orders(r) => r.line(),
            Report::Fanout(r) => r.line(),
            Report::Connections(r) => r.line(),
            Report::Crowd(r) => r.line(),
        }
    }

    /// The figures `--compare` sets side by side.
    pub fn key_figures(&self) -> Vec<(&'static str, f64)> {
        match self {
            Report::Orders(r) => {
                let f = &r.flow;
                vec![
                    ("throughput_per_s", f.throughput_per_s),
                    ("accepted_per_s", f.accepted_per_s),
                    ("ack_p50_us", f.latency.p50_us as f64),
                    ("ack_p99_us", f.latency.p99_us as f64),
                    ("ack_p999_us", f.latency.p999_us as f64),
                    ("ack_max_us", f.latency.max_us as f64),
                    ("server_cpu_pct", f.server_cpu_pct.unwrap_or(0.0)),
                ]
            }
            Report::Fanout(r) => vec![
                ("delivery_p50_us", r.delivery.p50_us as f64),
                ("delivery_p99_us", r.delivery.p99_us as f64),
                ("messages_per_s", r.messages_per_s),
                ("book_versions_per_s", r.book_versions_per_s),
                ("unannounced_gaps", r.unannounced_gaps as f64),
            ],
            Report::Connections(r) => vec![
                ("held", r.held as f64),
                (
                    "rss_per_connection_kib",
                    r.server_rss_per_connection_kib.unwrap_or(0.0),
                ),
                ("ping_p99_us", r.ping.p99_us as f64),
            ],
            Report::Crowd(r) => vec![
                ("requests_per_s_hold", r.requests_per_s_hold),
                ("latency_p50_us", r.latency.p50_us as f64),
                ("latency_p99_us", r.latency.p99_us as f64),
                ("failures", r.failures.total() as f64),
            ],
        }
    }
}

/// One run of a scenario in the JSON result.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The server: its spec with --server-bin, else the URL.
    pub server: String,
    pub report: Report,
}

/// The JSON result of an invocation.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub scenario: String,
    pub command: String,
    pub machine: Machine,
    pub runs: Vec<Run>,
    /// `--compare`: each key figure of B over A.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ratios: BTreeMap<String, f64>,
}

fn secs(s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow!("{s} is not a number of seconds"))
}

fn mids(common: &Common) -> anyhow::Result<BTreeMap<String, String>> {
    common
        .mids
        .iter()
        .map(|m| {
            m.split_once('=')
                .map(|(s, p)| (s.to_owned(), p.to_owned()))
                .ok_or_else(|| anyhow!("--mid takes SYM=PRICE, not {m:?}"))
        })
        .collect()
}

/// Runs `scenario` once against `target` with encoding `enc`.
pub async fn run_once(
    scenario: &Scenario,
    target: &Target,
    enc: Encoding,
) -> anyhow::Result<Report> {
    let common = scenario.common();
    let mids = mids(common)?;
    Ok(match scenario {
        Scenario::Orders(a) => {
            let pace = if a.closed_loop {
                Pace::Closed { window: a.window }
            } else {
                Pace::Open {
                    rate: a.rate,
                    poisson: a.poisson,
                }
            };
            let opts = OrdersOpts {
                flow: FlowOpts {
                    connections: a.connections,
                    pace,
                    duration: secs(a.duration)?,
                    warmup: secs(a.warmup)?,
                    mix: Mix::parse(&a.mix)?,
                    offset_bps_max: a.offset_bps,
                    open_orders_max: a.open_orders_max,
                    seed: common.seed,
                    encoding: enc,
                    ..FlowOpts::default()
                },
                accounts: a.accounts,
                instruments: a.instruments.clone(),
                extra_instruments: a.extra_instruments,
                mids,
            };
            Report::Orders(orders::run(target, &opts).await?)
        }
        Scenario::Fanout(a) => {
            let opts = FanoutOpts {
                subscribers: a.subscribers,
                sym: a.sym.clone(),
                depth: a.depth,
                flow: FlowOpts {
                    connections: a.flow_connections,
                    pace: Pace::Open {
                        rate: a.rate,
                        poisson: false,
                    },
                    duration: secs(a.duration)?,
                    warmup: Duration::ZERO,
                    mix: Mix::parse(&a.mix)?,
                    offset_ticks_max: Some(a.offset_ticks),
                    seed: common.seed,
                    encoding: enc,
                    ..FlowOpts::default()
                },
                accounts: 0,
                grace: Duration::from_millis(a.grace_ms),
                readers: a.readers.max(1),
                mids,
            };
            Report::Fanout(fanout::run(target, &opts).await?)
        }
        Scenario::Connections(a) => {
            let opts = ConnectionsOpts {
                connections: a.connections,
                hold: secs(a.hold)?,
                parallel: a.parallel,
                encoding: enc,
            };
            Report::Connections(connections::run(target, &opts).await?)
        }
        Scenario::Crowd(a) => {
            let opts = CrowdOpts {
                users: a.users,
                ramp: secs(a.ramp)?,
                hold: secs(a.hold)?,
                think_mean: Duration::from_millis(a.think_ms),
                traders_pct: a.traders_pct,
                trader_accounts: a.trader_accounts,
                flow_rate: a.flow_rate,
                flow_connections: a.flow_connections,
                encoding: enc,
                seed: common.seed,
                mids,
            };
            Report::Crowd(crowd::run(target, &opts).await?)
        }
    })
}

/// Starts a server with `spec`, runs the scenario, stops the server.
async fn run_with_server(
    scenario: &Scenario,
    bin: &std::path::Path,
    spec: &ServerSpec,
) -> anyhow::Result<Report> {
    let common = scenario.common();
    let server = ServerProcess::start(bin, spec)
        .await
        .with_context(|| format!("start the server with [{}]", spec.label))?;
    eprintln!(
        "server: {} pid={} on {} with [{}], log {}",
        bin.display(),
        server.pid,
        server.addr,
        spec.label,
        server.log_path.display()
    );
    let enc = spec.encoding.unwrap_or_else(|| common.encoding.into());
    let result = run_once(scenario, &server.target(), enc).await;
    let stopped = server.stop().await;
    let report = result?;
    stopped.context("stop the server")?;
    Ok(report)
}

/// Runs the command line: one run, or two with `--compare`.
pub async fn run(scenario: Scenario, command: String) -> anyhow::Result<Output> {
    let machine = Machine::detect();
    println!("{}", machine.line());
    let common = scenario.common().clone();
    let mut runs = Vec::new();
    let mut ratios = BTreeMap::new();
    if let Some(specs) = &common.compare {
        let bin = common
            .server_bin
            .as_ref()
            .ok_or_else(|| anyhow!("--compare starts the server itself: give --server-bin"))?;
        let [a, b] = &specs[..] else {
            bail!("--compare takes two specs");
        };
        for s in [a, b] {
            let spec = ServerSpec::parse(s)?;
            let report = run_with_server(&scenario, bin, &spec).await?;
            println!("[{}] {}", spec.label, report.line());
            runs.push(Run {
                server: spec.label.clone(),
                report,
            });
        }
        let fa = runs[0].report.key_figures();
        let fb = runs[1].report.key_figures();
        let mut line = format!("ratio B/A ([{b}] over [{a}]):");
        for ((name, va), (_, vb)) in fa.iter().zip(&fb) {
            let r = if *va == 0.0 { f64::NAN } else { vb / va };
            line.push_str(&format!(" {name}={r:.3}"));
            if r.is_finite() {
                ratios.insert((*name).to_owned(), r);
            }
        }
        println!("{line}");
    } else if let Some(bin) = &common.server_bin {
        let spec = ServerSpec::parse(&common.server_env)?;
        let report = run_with_server(&scenario, bin, &spec).await?;
        println!("{}", report.line());
        runs.push(Run {
            server: format!("{} [{}]", bin.display(), spec.label),
            report,
        });
    } else {
        let target = Target {
            ws_url: common.url.clone(),
            admin_password: common.admin_password.clone(),
            server_pid: common.server_pid.or_else(target::find_server_pid),
        };
        let report = run_once(&scenario, &target, common.encoding.into()).await?;
        println!("{}", report.line());
        runs.push(Run {
            server: common.url.clone(),
            report,
        });
    }
    let output = Output {
        scenario: scenario.name().into(),
        command,
        machine,
        runs,
        ratios,
    };
    if let Some(path) = &common.out {
        let json = serde_json::to_string_pretty(&output)?;
        std::fs::write(path, json + "\n").with_context(|| format!("write {}", path.display()))?;
        println!("result: {}", path.display());
    }
    Ok(output)
}

/// The binary's entry: parses arguments, builds the runtime, runs.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.worker_threads(cli.scenario.common().client_threads.max(1));
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bourse-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.scenario, command)) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bourse-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
