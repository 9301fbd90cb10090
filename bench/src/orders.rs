//! The `orders` scenario: order entry as trading firms load it. C
//! connections (one funded account each unless told otherwise) send the
//! realistic mix of [`crate::flow`] over several instruments, open loop at
//! R orders/s or closed loop with W outstanding per connection; the report
//! is the ack latency (p50 to max), the achieved throughput, refusals by
//! code, and what the run cost the server and the client in CPU.

use crate::flow::{self, FlowOpts, FlowReport};
use crate::machine;
use crate::setup;
use crate::target::Target;
use serde::Serialize;
use std::collections::BTreeMap;

/// What the `orders` scenario does.
#[derive(Debug, Clone, Default)]
pub struct OrdersOpts {
    pub flow: FlowOpts,
    /// Funded accounts; 0 means one per connection.
    pub accounts: usize,
    /// Instruments to trade; empty means every trading one.
    pub instruments: Vec<String>,
    /// Bench instruments to list first (`BX1-USD`..).
    pub extra_instruments: usize,
    /// Mid prices by symbol, for instruments with an empty book.
    pub mids: BTreeMap<String, String>,
}

/// The result of an `orders` run.
#[derive(Debug, Clone, Serialize)]
pub struct OrdersReport {
    pub flow: FlowReport,
    /// Server resident memory at the end, KiB.
    pub server_rss_kib: Option<u64>,
}

impl OrdersReport {
    pub fn line(&self) -> String {
        let f = &self.flow;
        let pace = match (f.target_rate_per_s, f.window) {
            (Some(r), _) => format!("open-loop rate={r}/s"),
            (None, Some(w)) => format!("closed-loop window={w}"),
            _ => String::new(),
        };
        format!(
            "orders: {pace} conns={} accounts={} instruments={} enc={} | answers={:.0}/s accepted={:.0}/s ack {} | sent={} answered={} unanswered={} overruns={} rejects: {} | cpu: server={} bench={} machine={} | server threads: {}",
            f.connections,
            f.accounts,
            f.instruments.join(","),
            f.encoding,
            f.throughput_per_s,
            f.accepted_per_s,
            f.latency.line(),
            f.sent,
            f.answered,
            f.unanswered,
            f.overruns,
            f.rejects.line(),
            pct(f.server_cpu_pct),
            pct(f.client_cpu_pct),
            pct(f.machine_cpu_pct),
            crate::machine::threads_line(&f.server_threads),
        )
    }
}

/// `42%` or `?`.
pub fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "?".into(), |p| format!("{p:.0}%"))
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, opts: &OrdersOpts) -> anyhow::Result<OrdersReport> {
    let n_accounts = if opts.accounts == 0 {
        opts.flow.connections
    } else {
        opts.accounts
    };
    let prep = setup::prepare(
        target,
        "bench-",
        n_accounts,
        &opts.instruments,
        opts.extra_instruments,
        &opts.mids,
    )
    .await?;
    let sockets = flow::connect_traders(
        &target.ws_url,
        opts.flow.encoding,
        &prep.accounts,
        opts.flow.connections,
    )
    .await?;
    let report = flow::run_on(
        sockets,
        prep.accounts.len(),
        &prep.instruments,
        &opts.flow,
        target.server_pid,
    )
    .await?;
    Ok(OrdersReport {
        flow: report,
        server_rss_kib: target.server_pid.and_then(machine::rss_kib),
    })
}
