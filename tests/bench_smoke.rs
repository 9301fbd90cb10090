//! The load generator's scenarios, each run for a couple of seconds with
//! small numbers against a real server on 127.0.0.1 (the embedded demo
//! configuration, not durable): the tool itself is tested, the figures are
//! not (real runs are by hand, in release, and go to BENCHMARKS.md).

use bourse_bench::connections::{self, ConnectionsOpts};
use bourse_bench::crowd::{self, CrowdOpts};
use bourse_bench::fanout::{self, FanoutOpts};
use bourse_bench::flow::{FlowOpts, Pace};
use bourse_bench::orders::{self, OrdersOpts};
use bourse_bench::Target;
use bourse_protocol::Encoding;
use std::time::Duration;

fn target(srv: &bourse::TestServer) -> Target {
    Target {
        ws_url: srv.ws_url(),
        admin_password: Some(srv.admin_password.clone()),
        // The server runs in this process: its memory and CPU are ours.
        server_pid: Some(std::process::id()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_a_real_server() {
    let mut cfg = bourse::test_config();
    cfg.limits.conn_msgs_per_sec = 100_000;
    cfg.limits.account_orders_per_sec = 100_000;
    let srv = bourse::spawn_server_for_tests(cfg);
    let t = target(&srv);

    // Open loop, JSON, two instruments plus one the bench lists itself.
    let open = OrdersOpts {
        flow: FlowOpts {
            connections: 3,
            pace: Pace::Open {
                rate: 300,
                poisson: true,
            },
            duration: Duration::from_millis(2_000),
            warmup: Duration::from_millis(500),
            encoding: Encoding::Json,
            ..FlowOpts::default()
        },
        extra_instruments: 1,
        ..OrdersOpts::default()
    };
    let r = orders::run(&t, &open).await.expect("open-loop orders run");
    let f = &r.flow;
    assert_eq!(f.instruments, ["BTC-USD", "ETH-USD", "BX1-USD"]);
    assert!(f.sent >= 500, "{f:?}");
    assert_eq!(f.unanswered, 0, "{f:?}");
    assert_eq!(f.answered, f.sent);
    assert!(f.measured > 0 && f.latency.count == f.measured, "{f:?}");
    assert!(
        f.connection_errors.0.is_empty(),
        "{:?}",
        f.connection_errors
    );
    assert!(f.ok_by_status.0.get("new").is_some_and(|n| *n > 0), "{f:?}");
    assert!(f.send_lag.is_some());
    assert!(
        f.reject_share() < 0.5,
        "most orders of the mix are valid: {:?}",
        f.rejects
    );

    // Closed loop, MessagePack.
    let closed = OrdersOpts {
        flow: FlowOpts {
            connections: 2,
            pace: Pace::Closed { window: 8 },
            duration: Duration::from_millis(1_500),
            warmup: Duration::from_millis(300),
            ..FlowOpts::default()
        },
        instruments: vec!["BTC-USD".into()],
        ..OrdersOpts::default()
    };
    let r = orders::run(&t, &closed)
        .await
        .expect("closed-loop orders run");
    assert!(r.flow.throughput_per_s > 0.0, "{:?}", r.flow);
    assert_eq!(r.flow.unanswered, 0);
    assert!(
        r.flow.ok_by_status.0.get("filled").is_some_and(|n| *n > 0),
        "{:?}",
        r.flow
    );

    // Fan-out: every stream checked, no unannounced gap, heartbeats seen.
    let fo = FanoutOpts {
        subscribers: 12,
        sym: Some("BTC-USD".into()),
        flow: FlowOpts {
            connections: 2,
            pace: Pace::Open {
                rate: 200,
                poisson: false,
            },
            duration: Duration::from_millis(2_000),
            warmup: Duration::ZERO,
            offset_ticks_max: Some(10),
            ..FlowOpts::default()
        },
        grace: Duration::from_millis(1_800),
        ..FanoutOpts::default()
    };
    let r = fanout::run(&t, &fo).await.expect("fanout run");
    assert_eq!(r.subscribed, 12, "{r:?}");
    assert_eq!(r.unannounced_gaps, 0, "{r:?}");
    assert!(r.failures.0.is_empty(), "{:?}", r.failures);
    assert!(r.book_events >= 12, "{r:?}");
    assert!(r.trade_events > 0, "{r:?}");
    assert_eq!(r.snapshots, 24, "one snapshot per stream: {r:?}");
    assert!(r.heartbeats_checked > 0, "{r:?}");
    assert!(r.delivery.count > 0 && r.book_versions_per_s > 0.0, "{r:?}");

    // Connections held on heartbeats.
    let co = ConnectionsOpts {
        connections: 40,
        hold: Duration::from_millis(2_500),
        ..ConnectionsOpts::default()
    };
    let r = connections::run(&t, &co).await.expect("connections run");
    assert_eq!((r.opened, r.held), (40, 40), "{r:?}");
    assert!(r.heartbeats >= 40, "{r:?}");
    assert!(r.ping.count > 0, "{r:?}");
    assert!(r.server_rss_after_kib.is_some());

    // A small crowd.
    let cr = CrowdOpts {
        users: 30,
        ramp: Duration::from_millis(1_000),
        hold: Duration::from_millis(2_000),
        think_mean: Duration::from_millis(150),
        traders_pct: 30,
        trader_accounts: 3,
        flow_rate: 50,
        flow_connections: 1,
        ..CrowdOpts::default()
    };
    let r = crowd::run(&t, &cr).await.expect("crowd run");
    assert_eq!(r.connected, 30, "{r:?}");
    assert_eq!(r.failures.total(), 0, "{:?}", r.failures);
    assert!(r.requests > 100, "{r:?}");
    assert!(r.latency_by_op.contains_key("market.watch"), "{r:?}");
    assert!(r.events > 0, "{r:?}");

    srv.stop();
}
