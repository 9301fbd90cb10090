//! Golden JSON fixtures in `tests/fixtures/`: the exact wire form of every
//! message family, shared with the browser client's tests. Each fixture
//! decodes into the typed messages and re-encodes to exactly the same JSON,
//! in JSON and through MessagePack, and matches the samples the other tests
//! use. `BOURSE_WRITE_FIXTURES=1 cargo test -p bourse-protocol --test
//! fixtures` rewrites the files from the samples (review the diff).

mod common;

use bourse_protocol::checksum::book_checksum;
use bourse_protocol::codec::{decode, decode_request, encode, Encoding};
use bourse_protocol::error::ErrorCode;
use bourse_protocol::msg::*;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

fn path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file)
}

fn writing() -> bool {
    std::env::var_os("BOURSE_WRITE_FIXTURES").is_some_and(|v| v == "1")
}

/// Returns the fixture, first writing `generated` to it in write mode.
fn fixture(file: &str, generated: Value) -> Value {
    let p = path(file);
    if writing() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, serde_json::to_string_pretty(&generated).unwrap() + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v, generated, "{file} differs from the samples");
    v
}

/// The JSON value of a message, and the same message sent through MessagePack.
fn wire_values<T: serde::Serialize>(msg: &T) -> (Value, Value) {
    let j: Value = encode(Encoding::Json, msg).decode().unwrap();
    let f = encode(Encoding::MsgPack, msg);
    let p: Value = decode(f.as_bytes(), true).unwrap();
    (j, p)
}

fn cases(v: &Value, key: &str) -> Vec<(String, Value)> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is a list"))
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

#[test]
fn requests_fixture() {
    let generated = json!({
        "valid": requests().iter().map(|(n, r)| json!({"name": n, "msg": r})).collect::<Vec<_>>(),
        "invalid": invalid_requests().iter().map(|(n, raw, code, id_kept)| {
            json!({"name": n, "msg": raw, "code": code, "id_kept": id_kept})
        }).collect::<Vec<_>>(),
    });
    let v = fixture("requests.json", generated);
    for (name, case) in cases(&v, "valid") {
        let msg = &case["msg"];
        let req = decode_request(msg.to_string().as_bytes(), false)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (j, p) = wire_values(&req);
        assert_eq!(&j, msg, "{name}: re-encoded JSON");
        assert_eq!(&p, msg, "{name}: through MessagePack");
        let packed = rmp_serde::to_vec_named(msg).unwrap();
        assert_eq!(decode_request(&packed, true).unwrap(), req, "{name}");
    }
    for (name, case) in cases(&v, "invalid") {
        let e = decode_request(case["msg"].to_string().as_bytes(), false).expect_err(&name);
        let code: ErrorCode = serde_json::from_value(case["code"].clone()).unwrap();
        assert_eq!(e.body.code, code, "{name}");
        assert_eq!(e.id.is_some(), case["id_kept"].as_bool().unwrap(), "{name}");
    }
}

#[test]
fn responses_fixture() {
    let generated = json!({
        "responses": responses().iter().map(|(n, op, r)| json!({"name": n, "op": op, "msg": r})).collect::<Vec<_>>(),
    });
    let v = fixture("responses.json", generated);
    for (name, case) in cases(&v, "responses") {
        let msg = &case["msg"];
        let ServerMessage::Response(resp) = ServerMessage::from_value(msg.clone()).unwrap() else {
            panic!("{name}: not a response")
        };
        let (j, p) = wire_values(&resp);
        assert_eq!(&j, msg, "{name}: re-encoded JSON");
        assert_eq!(&p, msg, "{name}: through MessagePack");
        assert_eq!(resp.ok, resp.err.is_none(), "{name}");
        if let Some(res) = &resp.res {
            assert_eq!(
                &retype(case["op"].as_str().unwrap(), res),
                res,
                "{name}: typed result"
            );
        }
    }
}

#[test]
fn events_fixture() {
    // Messages exactly as PROTOCOL.md prints them (no `type` on trades and
    // candles updates, no `depth` on a delta): they must decode; the server
    // writes the fuller form of `events`.
    let spec_examples = json!([
        {"name": "trades as in PROTOCOL.md", "msg": {"ch":"trades","sym":"BTC-USD","epoch":1,"prev":88120,"seq":88121,"ts":TS,
            "data":[{"id":88121,"px":"30001.80","qty":"0.0100","taker":"buy","ts":TS}]}},
        {"name": "book.l2 delta as in PROTOCOL.md", "msg": {"ch":"book.l2","sym":"BTC-USD","type":"delta","epoch":1,"prev":1042,"seq":1043,"ts":TS,
            "bids":[["30001.50","0"]],"asks":[["30001.80","0.0500"]],"cksum":2_606_946_132_u32}},
        {"name": "account fill as in PROTOCOL.md", "msg": {"ch":"account","epoch":1,"prev":5520,"seq":5521,"ts":TS,"type":"fill",
            "data":{"order_id":9912,"cl_id":"a1","sym":"BTC-USD","side":"buy","px":"30000.00","qty":"0.0100",
                "fee":"0.03","fee_asset":"USD","liq":"maker","trade_id":88121,"cum_qty":"0.0100","leaves_qty":"0.4900","status":"partially_filled"}}},
        {"name": "error as in PROTOCOL.md", "msg": {"id":18,"ok":false,"err":{"code":"insufficient_funds","num":3002,
            "msg":"needs 150.00 USD, 120.00 available","retryable":false,"outcome":"rejected"}}},
        {"name": "unknown message kind", "msg": {"ch":"news","headline":"ignored"}},
    ]);
    let generated = json!({
        "events": events().iter().map(|(n, m)| json!({"name": n, "msg": m})).collect::<Vec<_>>(),
        "decode_only": spec_examples,
    });
    let v = fixture("events.json", generated);
    for (name, case) in cases(&v, "events") {
        let msg = &case["msg"];
        let sm = ServerMessage::from_value(msg.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !matches!(sm, ServerMessage::Unknown(_) | ServerMessage::Response(_)),
            "{name}"
        );
        let (j, p) = wire_values(&sm);
        assert_eq!(&j, msg, "{name}: re-encoded JSON");
        assert_eq!(&p, msg, "{name}: through MessagePack");
    }
    for (name, case) in cases(&v, "decode_only") {
        let sm = ServerMessage::from_value(case["msg"].clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        match (name.as_str(), sm) {
            ("trades as in PROTOCOL.md", ServerMessage::Event(StreamEvent::Trades(t))) => {
                assert_eq!(t.kind, UpdateKind::Update);
                assert_eq!(t.data[0].id, 88121);
            }
            ("book.l2 delta as in PROTOCOL.md", ServerMessage::Event(StreamEvent::BookL2(b))) => {
                assert_eq!(
                    (b.kind, b.prev, b.depth, b.cksum),
                    (BookKind::Delta, Some(1042), None, Some(2_606_946_132))
                );
            }
            ("account fill as in PROTOCOL.md", ServerMessage::Event(StreamEvent::Account(a))) => {
                let AccountBody::Fill(f) = a.body else {
                    panic!("{name}")
                };
                assert_eq!(
                    (f.trade_id, f.status, f.fill_id),
                    (88121, OrderStatus::PartiallyFilled, None)
                );
            }
            ("error as in PROTOCOL.md", ServerMessage::Response(r)) => {
                let e = r.into_result().unwrap_err();
                assert_eq!((e.code, e.num), (ErrorCode::InsufficientFunds, 3002));
            }
            ("unknown message kind", ServerMessage::Unknown(_)) => {}
            (n, other) => panic!("{n}: decoded as {other:?}"),
        }
    }
}

fn levels(
    side_px: impl Fn(usize) -> String,
    n: usize,
    qty: impl Fn(usize) -> String,
) -> Vec<Level> {
    (0..n).map(|i| (side_px(i), qty(i))).collect()
}

#[test]
fn checksum_vectors_fixture() {
    let spec_bids = vec![lv("30001.50", "0.2500"), lv("30001.00", "1.1000")];
    let spec_asks = vec![lv("30002.00", "0.4000")];
    let deep_bids = levels(
        |i| decimal_px(3_000_000 - 50 * i as u64),
        30,
        |i| format!("{}.{:04}", i % 3, i * 7),
    );
    let deep_asks = levels(
        |i| decimal_px(3_000_100 + 50 * i as u64),
        30,
        |i| format!("{}.{:04}", 1 + i % 2, i * 11),
    );
    let raw: Vec<(&str, u32, Vec<Level>, Vec<Level>)> = vec![
        (
            "PROTOCOL.md snapshot",
            50,
            spec_bids.clone(),
            spec_asks.clone(),
        ),
        (
            "PROTOCOL.md after the delta",
            50,
            vec![lv("30001.00", "1.1000")],
            vec![lv("30001.80", "0.0500"), lv("30002.00", "0.4000")],
        ),
        ("empty book", 50, vec![], vec![]),
        ("bids only", 10, vec![lv("99.5", "3")], vec![]),
        ("asks only", 200, vec![], vec![lv("0.0001", "1000000")]),
        (
            "30 levels a side at depth 50: top 25 count",
            50,
            deep_bids.clone(),
            deep_asks.clone(),
        ),
        (
            "15 levels a side at depth 10: top 10 count",
            10,
            deep_bids[..15].to_vec(),
            deep_asks[..15].to_vec(),
        ),
        ("full book (depth 0): top 25 count", 0, deep_bids, deep_asks),
    ];
    let generated: Vec<Value> = raw
        .iter()
        .map(|(name, depth, bids, asks)| {
            json!({"name": name, "depth": depth, "bids": bids, "asks": asks,
                "cksum": book_checksum(bids, asks, cksum_levels(*depth))})
        })
        .collect();
    let v = fixture("checksum_vectors.json", json!(generated));
    let list = v.as_array().unwrap();
    assert_eq!(list[0]["cksum"], 283_928_291);
    assert_eq!(list[1]["cksum"], 2_606_946_132_u32);
    for case in list {
        let bids: Vec<Level> = serde_json::from_value(case["bids"].clone()).unwrap();
        let asks: Vec<Level> = serde_json::from_value(case["asks"].clone()).unwrap();
        let depth = case["depth"].as_u64().unwrap() as u32;
        assert_eq!(
            json!(book_checksum(&bids, &asks, cksum_levels(depth))),
            case["cksum"],
            "{}",
            case["name"]
        );
    }
}

fn decimal_px(raw: u64) -> String {
    bourse_protocol::decimal::format(raw, 2)
}
