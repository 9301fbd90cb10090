//! The exchange's configuration: what one TOML file (plus `BOURSE_*`
//! environment variables) says. Parsed once at start by the binary, checked
//! by `validate`, then handed to the node.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP/WebSocket listener.
    pub listen: String,
    /// Where the event log, snapshots and the initial admin password live.
    pub data_dir: PathBuf,
    /// `true`: every acknowledged change is fsync'd first. `false` keeps the
    /// log in memory only (tests and demos that do not need durability).
    pub durable: bool,
    /// Folder of the browser client served at `/`.
    pub web_root: PathBuf,
    pub log_format: LogFormat,
    pub limits: Limits,
    pub assets: Vec<AssetConf>,
    pub instruments: Vec<InstrumentConf>,
    /// Users created at first start (demo traders, market maker).
    pub users: Vec<UserConf>,
    pub demo: DemoConf,
    /// Snapshots and log retention (used when `durable`).
    pub durability: DurabilityConf,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open WebSocket connections.
    pub connections_max: usize,
    /// Messages per second one connection may send.
    pub conn_msgs_per_sec: u32,
    /// Orders per second one account may place or amend (a batch counts
    /// each of its orders; cancels are not counted).
    pub account_orders_per_sec: u32,
    /// Capacity of each instrument's mailbox; a full one answers `overloaded`.
    pub instrument_mailbox_max: usize,
    /// Capacity of the ledger's mailbox.
    pub ledger_mailbox_max: usize,
    /// Outbound messages queued per connection before `on_lag` applies.
    pub outbound_msgs_max: usize,
    /// Outbound bytes queued per connection before `on_lag` applies.
    pub outbound_bytes_max: usize,
    /// Subscriptions per connection.
    pub subscriptions_max: usize,
    /// Events in one group commit.
    pub commit_events_max: usize,
    /// Kernel send buffer of each client socket (SO_SNDBUF); 0 leaves the
    /// kernel's autotuning (which may buffer megabytes per slow client).
    pub socket_send_buffer_bytes: usize,
    /// Threads that run the sessions and write to the sockets; 0 picks half
    /// the machine's cores, at least one (the market data, the ledger, the
    /// instruments and the journal have threads of their own).
    pub session_threads: usize,
    /// Threads that write market data to subscribers' sockets, the
    /// market-data actor's own included; 0 picks one more than the
    /// machine's cores.
    pub fanout_threads: usize,
}

/// The most threads `limits.session_threads` or `limits.fanout_threads`
/// may ask for: more than the cores only adds switching, and a typo of a
/// few digits must not start thousands of threads.
pub const THREADS_MAX: usize = 256;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: 20_000,
            conn_msgs_per_sec: 2_000,
            account_orders_per_sec: 5_000,
            instrument_mailbox_max: 4_096,
            ledger_mailbox_max: 16_384,
            outbound_msgs_max: 4_096,
            outbound_bytes_max: 4 << 20,
            subscriptions_max: 64,
            commit_events_max: 8_192,
            socket_send_buffer_bytes: 256 * 1024,
            session_threads: 0,
            fanout_threads: 0,
        }
    }
}

/// When snapshots are written and how much log history is kept.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DurabilityConf {
    /// A snapshot is written once this many events were committed since the last one.
    pub snapshot_every_events: u64,
    /// ... or once this many seconds passed with at least one new event.
    pub snapshot_every_secs: u64,
    /// Events of log history kept before the newest snapshot (the audit
    /// trail, and older snapshots to fall back on); older whole log
    /// segments, and the snapshots they lead up to, are removed.
    pub log_retention_events: u64,
    /// Size at which a log segment is closed and the next one started (the
    /// step in which retention frees disk space).
    pub segment_bytes_max: u64,
}

impl Default for DurabilityConf {
    fn default() -> Self {
        DurabilityConf {
            snapshot_every_events: 1_000_000,
            snapshot_every_secs: 600,
            log_retention_events: 10_000_000,
            segment_bytes_max: 64 << 20,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetConf {
    pub asset: String,
    pub scale: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentConf {
    pub sym: String,
    pub base: String,
    pub quote: String,
    /// Decimal strings, as on the wire.
    pub tick: String,
    pub lot: String,
    pub min_qty: String,
    pub ref_px: Option<String>,
    #[serde(default = "default_band")]
    pub band_pct: u32,
    #[serde(default)]
    pub maker_fee_bps: u32,
    #[serde(default)]
    pub taker_fee_bps: u32,
}

/// The price band of an instrument that names none: ±10%.
pub const BAND_PCT_DEFAULT: u32 = 10;

fn default_band() -> u32 {
    BAND_PCT_DEFAULT
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConf {
    pub user: String,
    pub password: String,
    #[serde(default = "default_role")]
    pub role: String,
    /// Asset name -> decimal amount deposited at first start.
    #[serde(default)]
    pub deposits: BTreeMap<String, String>,
}

fn default_role() -> String {
    "trader".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConf {
    /// Runs the demo market maker (a client of the exchange like any other).
    pub market_maker: bool,
    /// The market maker's user (must be among `users`).
    pub user: String,
    pub password: String,
    /// Milliseconds between its quote refreshes.
    pub interval_ms: u64,
}

impl Default for DemoConf {
    fn default() -> Self {
        DemoConf { market_maker: false, user: "mm".into(), password: String::new(), interval_ms: 500 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            durable: true,
            web_root: PathBuf::from("web-client"),
            log_format: LogFormat::Text,
            limits: Limits::default(),
            assets: Vec::new(),
            instruments: Vec::new(),
            users: Vec::new(),
            demo: DemoConf::default(),
            durability: DurabilityConf::default(),
        }
    }
}

impl Config {
    /// Checks what the types cannot: names resolve, decimals parse, limits are positive.
    pub fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        for (name, v) in [
            ("connections_max", l.connections_max),
            ("instrument_mailbox_max", l.instrument_mailbox_max),
            ("ledger_mailbox_max", l.ledger_mailbox_max),
            ("outbound_msgs_max", l.outbound_msgs_max),
            ("outbound_bytes_max", l.outbound_bytes_max),
            ("subscriptions_max", l.subscriptions_max),
            ("commit_events_max", l.commit_events_max),
        ] {
            if v == 0 {
                return Err(format!("limits.{name} must be positive"));
            }
        }
        if l.conn_msgs_per_sec == 0 || l.account_orders_per_sec == 0 {
            return Err("rate limits must be positive".into());
        }
        for (name, v) in [("session_threads", l.session_threads), ("fanout_threads", l.fanout_threads)] {
            if v > THREADS_MAX {
                return Err(format!("limits.{name} must be at most {THREADS_MAX} (0 picks one from the machine's cores)"));
            }
        }
        let d = &self.durability;
        if d.snapshot_every_events == 0 || d.snapshot_every_secs == 0 {
            return Err("durability.snapshot_every_events and snapshot_every_secs must be positive".into());
        }
        if d.segment_bytes_max < 4096 {
            return Err("durability.segment_bytes_max must be at least 4096".into());
        }
        let mut assets = BTreeMap::new();
        for a in &self.assets {
            if assets.insert(a.asset.clone(), a.scale).is_some() {
                return Err(format!("asset {} is listed twice", a.asset));
            }
            if a.scale > 18 {
                return Err(format!("asset {}: scale is at most 18", a.asset));
            }
        }
        for i in &self.instruments {
            for side in [&i.base, &i.quote] {
                if !assets.contains_key(side) {
                    return Err(format!("instrument {}: unknown asset {side}", i.sym));
                }
            }
            for (what, v) in [("tick", &i.tick), ("lot", &i.lot), ("min_qty", &i.min_qty)] {
                if bourse_protocol::decimal::canonical_scale(v).is_err() {
                    return Err(format!("instrument {}: {what} {v:?} is not a decimal", i.sym));
                }
            }
        }
        for u in &self.users {
            if !["trader", "operator", "viewer"].contains(&u.role.as_str()) {
                return Err(format!("user {}: role must be trader, operator or viewer", u.user));
            }
            for (a, v) in &u.deposits {
                let Some(scale) = assets.get(a) else {
                    return Err(format!("user {}: deposit in unknown asset {a}", u.user));
                };
                if bourse_protocol::decimal::parse(v, *scale).is_err() {
                    return Err(format!("user {}: deposit {v:?} is not an amount of {a}", u.user));
                }
            }
        }
        if self.demo.market_maker && !self.users.iter().any(|u| u.user == self.demo.user) {
            return Err(format!("demo.user {} is not among users", self.demo.user));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_past_the_bound_are_refused_with_the_setting_named() {
        let mut c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        c.limits.fanout_threads = THREADS_MAX;
        c.limits.session_threads = THREADS_MAX;
        assert_eq!(c.validate(), Ok(()));
        c.limits.fanout_threads = 10_000;
        let e = c.validate().unwrap_err();
        assert!(e.contains("limits.fanout_threads") && e.contains("256"), "{e}");
        c.limits.fanout_threads = 0;
        c.limits.session_threads = THREADS_MAX + 1;
        assert!(c.validate().unwrap_err().contains("limits.session_threads"));
    }
}
