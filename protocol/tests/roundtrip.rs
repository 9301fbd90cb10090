//! Every message type survives both encodings unchanged, and the
//! MessagePack form carries exactly the JSON schema.

mod common;

use bourse_protocol::codec::{decode, decode_request, encode, Encoding, Frame};
use bourse_protocol::msg::*;
use common::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Debug;

/// Encodes in both encodings, decodes back, and checks the MessagePack
/// form decodes to the same generic value as the JSON form.
fn both<T: Serialize + DeserializeOwned + PartialEq + Debug>(x: &T) {
    let json = encode(Encoding::Json, x);
    let pack = encode(Encoding::MsgPack, x);
    assert!(matches!(json, Frame::Text(_)));
    assert!(matches!(pack, Frame::Binary(_)));
    let from_json: T = json.decode().unwrap();
    let from_pack: T = pack.decode().unwrap();
    assert_eq!(&from_json, x);
    assert_eq!(&from_pack, x);
    let vj: Value = json.decode().unwrap();
    let vp: Value = pack.decode().unwrap();
    // Equal generic values also prove the MessagePack form uses string-keyed
    // maps: a struct written as an array, or a map with integer keys, would
    // read back differently.
    assert_eq!(vj, vp, "MessagePack and JSON differ for {x:?}");
}

#[test]
fn requests_round_trip() {
    let reqs = requests();
    let mut ops: Vec<&str> = reqs.iter().map(|(_, r)| r.op.name()).collect();
    ops.sort_unstable();
    ops.dedup();
    let mut all = OP_NAMES.to_vec();
    all.sort_unstable();
    assert_eq!(ops, all, "a sample for every op");
    for (name, req) in &reqs {
        both(req);
        for enc in Encoding::ALL {
            let f = encode(enc, req);
            let back = decode_request(f.as_bytes(), f.is_binary())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&back, req, "{name}");
        }
    }
}

#[test]
fn responses_round_trip() {
    for (name, op, resp) in responses() {
        both(&resp);
        let sm = ServerMessage::Response(resp.clone());
        both(&sm);
        if let Some(res) = &resp.res {
            assert_eq!(
                &retype(op, res),
                res,
                "{name}: the typed result keeps every field"
            );
        }
    }
}

#[test]
fn typed_results_round_trip() {
    both(&Response::ok(ReqId::Num(17), place_res(), TS, TS + 1));
    both(&Response::<PlaceRes>::err(
        None,
        bourse_protocol::ErrorBody::bad_request("x"),
        TS,
        TS,
    ));
    both(&PingRes { ts: TS });
    both(&Empty {});
    both(&order_view());
    both(&market_order_view());
    both(&fill_view());
    both(&instrument_view());
    both(&place_res());
    both(&BatchItem::err(bourse_protocol::ErrorBody::rate_limited(
        10,
    )));
    both(&bourse_protocol::ErrorBody::new(
        bourse_protocol::ErrorCode::Internal,
        "journal write failed",
    ));
}

#[test]
fn events_round_trip() {
    for (name, msg) in events() {
        both(&msg);
        match &msg {
            ServerMessage::Event(e) => both(e),
            ServerMessage::Gap(g) => both(g),
            ServerMessage::Heartbeat(h) => both(h),
            ServerMessage::Notice(n) => both(n),
            other => panic!("{name}: unexpected sample {other:?}"),
        }
    }
}

#[test]
fn empty_result_is_an_empty_map() {
    assert_eq!(serde_json::to_string(&Empty {}).unwrap(), "{}");
    assert_eq!(rmp_serde::to_vec_named(&Empty {}).unwrap(), vec![0x80]);
}

#[test]
fn msgpack_uses_string_keys() {
    // fixmap with the string key "ts" then a uint64 timestamp.
    let bytes = encode(Encoding::MsgPack, &PingRes { ts: TS }).into_bytes();
    assert_eq!(bytes[0], 0x81);
    assert_eq!(&bytes[1..4], &[0xa2, b't', b's']);
    assert_eq!(bytes[4], 0xcf);
}

#[test]
fn binary_frames_are_msgpack_whatever_was_negotiated() {
    let req = Request::new(5, Op::Ping);
    let pack = rmp_serde::to_vec_named(&req).unwrap();
    assert_eq!(decode_request(&pack, true).unwrap(), req);
    assert!(decode_request(&pack, false).is_err());
    let text = serde_json::to_vec(&req).unwrap();
    assert!(decode::<Value>(&text, true).is_err());
}

#[test]
fn stream_keys() {
    let cases = [
        (
            StreamKey::BookL2 {
                sym: s("BTC-USD"),
                depth: 50,
            },
            "book.l2:BTC-USD:50",
        ),
        (
            StreamKey::BookL2 {
                sym: s("BTC-USD"),
                depth: 0,
            },
            "book.l2:BTC-USD:0",
        ),
        (StreamKey::BookL1 { sym: s("BTC-USD") }, "book.l1:BTC-USD"),
        (StreamKey::Trades { sym: s("BTC-USD") }, "trades:BTC-USD"),
        (
            StreamKey::Candles {
                sym: s("BTC-USD"),
                interval: Interval::H1,
            },
            "candles:BTC-USD:1h",
        ),
        (StreamKey::Ticker { sym: s("BTC-USD") }, "ticker:BTC-USD"),
        (StreamKey::Status, "status"),
        (StreamKey::Account, "account"),
    ];
    for (key, text) in cases {
        assert_eq!(key.to_string(), text);
        assert_eq!(StreamKey::parse(text), Some(key.clone()));
        assert_eq!(
            stream_key(
                key.channel(),
                key.sym(),
                match &key {
                    StreamKey::BookL2 { depth, .. } => Some(*depth),
                    _ => None,
                },
                match &key {
                    StreamKey::Candles { interval, .. } => Some(*interval),
                    _ => None,
                }
            )
            .as_deref(),
            Some(text)
        );
    }
    assert_eq!(
        stream_key(Channel::BookL2, Some("BTC-USD"), None, None).as_deref(),
        Some("book.l2:BTC-USD:50")
    );
    assert_eq!(
        stream_key(Channel::Candles, Some("BTC-USD"), None, None),
        None
    );
    assert_eq!(stream_key(Channel::Trades, None, None, None), None);
    for bad in [
        "",
        "book.l2:BTC-USD",
        "book.l2:BTC-USD:x",
        "trades",
        "trades:",
        "candles:BTC-USD:2m",
        "account:x",
        "book.l3:X",
        "ticker:A:B",
    ] {
        assert_eq!(StreamKey::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn events_name_their_streams() {
    for (name, msg) in events() {
        if let ServerMessage::Event(e) = msg {
            let key = e.stream_key().unwrap_or_else(|| panic!("{name}"));
            assert_eq!(key.channel(), e.channel());
        }
    }
    let gap = Gap::new(
        &StreamKey::Candles {
            sym: s("BTC-USD"),
            interval: Interval::M15,
        },
        3,
        10,
        12,
    );
    assert_eq!(gap.stream_key().unwrap().to_string(), "candles:BTC-USD:15m");
}
