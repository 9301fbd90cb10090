//! Request decoding: valid forms accepted, every refusal precise and
//! carrying the request id whenever it could be read, in both encodings.

mod common;

use bourse_protocol::codec::{decode_request, FRAME_BYTES_MAX};
use bourse_protocol::error::{ErrorCode, Outcome};
use bourse_protocol::msg::*;
use common::*;
use serde_json::{json, Value};

fn json_req(v: &Value) -> Result<Request, RequestError> {
    decode_request(v.to_string().as_bytes(), false)
}

fn pack_req(v: &Value) -> Result<Request, RequestError> {
    decode_request(&rmp_serde::to_vec_named(v).unwrap(), true)
}

#[test]
fn invalid_requests_are_refused_with_their_code_and_id() {
    for (name, raw, code, id_kept) in invalid_requests() {
        for (enc, r) in [("json", json_req(&raw)), ("msgpack", pack_req(&raw))] {
            let e = r.expect_err(name);
            assert_eq!(e.body.code, code, "{name} ({enc}): {}", e.body.msg);
            assert_eq!(e.body.num, code.num());
            assert_eq!(e.body.outcome, Outcome::Rejected);
            assert!(!e.body.retryable);
            assert_eq!(e.id.is_some(), id_kept, "{name} ({enc})");
            if id_kept {
                assert_eq!(e.id, Some(ReqId::Num(1)));
            }
        }
    }
}

#[test]
fn messages_name_the_problem() {
    let msg = |v: Value| json_req(&v).unwrap_err().body.msg;
    assert_eq!(
        msg(
            json!({"id":1,"op":"order.place","args":{"cl_id":"a1","sym":"X","side":"buy","type":"limit","px":"1"}})
        ),
        "a limit order needs qty"
    );
    let m = msg(
        json!({"id":1,"op":"order.place","args":{"cl_id":"a1","sym":"X","side":"buy","type":"limit","px":30000.5,"qty":"1"}}),
    );
    assert!(m.contains("\"px\""), "{m}");
    assert!(m.contains("expected a string"), "{m}");
    let m = msg(
        json!({"id":1,"op":"order.place","args":{"cl_id":"a1","sym":"X","side":"long","type":"limit","px":"1","qty":"1"}}),
    );
    assert!(
        m.contains("unknown variant `long`") && m.contains("\"side\""),
        "{m}"
    );
    let m = msg(json!({"id":1,"op":"order.cancel","args":{"sym":"X"}}));
    assert_eq!(m, "give exactly one of order_id and cl_id");
    let m = msg(json!({"id":1,"op":"order.batch","args":{"orders":{}}}));
    assert!(
        m.starts_with("args: invalid type: map, expected a sequence at \"orders\""),
        "{m}"
    );
    let m = msg(json!({"id":1,"op":"order.teleport"}));
    assert_eq!(m, "unknown op \"order.teleport\"");
}

#[test]
fn missing_field_message_is_plain() {
    let e = json_req(&json!({"id":1,"op":"order.cancel_after","args":{}})).unwrap_err();
    assert_eq!(e.body.msg, "args: missing field `timeout_ms`");
}

#[test]
fn ops_without_args_accept_none_null_or_empty() {
    for raw in [
        json!({"op":"ping","id":3}),
        json!({"op":"ping","id":3,"args":null}),
        json!({"op":"ping","id":3,"args":{}}),
    ] {
        assert_eq!(json_req(&raw).unwrap(), Request::new(3, Op::Ping));
        assert_eq!(pack_req(&raw).unwrap(), Request::new(3, Op::Ping));
    }
    let r = json_req(&json!({"op":"account.orders","id":"q"})).unwrap();
    assert_eq!(r.op, Op::AccountOrders(OrdersArgs { sym: None }));
}

#[test]
fn unknown_fields_are_ignored() {
    let r = json_req(&json!({"op":"order.cancel_all","id":9,"args":{"sym":"BTC-USD","colour":"blue"},"extra":true}))
        .unwrap();
    assert_eq!(
        r.op,
        Op::OrderCancelAll(CancelAllArgs {
            sym: Some(s("BTC-USD")),
            side: None
        })
    );
}

#[test]
fn ids_are_echoed_exactly() {
    let long = "x".repeat(REQ_ID_LEN_MAX);
    for id in [
        json!(0),
        json!(u64::MAX),
        json!("a"),
        json!(""),
        json!(long),
    ] {
        let r = json_req(&json!({"op":"ping","id":id})).unwrap();
        assert_eq!(serde_json::to_value(&r.id).unwrap(), id);
        let resp: Response<Value> = Response::ok(r.id, json!({"ts":1}), 1, 2);
        assert_eq!(serde_json::to_value(&resp).unwrap()["id"], id);
    }
    // A string id of 36 multi-byte characters is 36 characters, not bytes.
    let r = json_req(&json!({"op":"ping","id":"é".repeat(36)})).unwrap();
    assert_eq!(r.id, ReqId::Str("é".repeat(36)));
}

#[test]
fn unparseable_frames_are_bad_request_without_id() {
    for (bytes, binary) in [
        (&b"{\"op\":"[..], false),
        (&b"\xff\xfe"[..], false),
        (&b"\xc1"[..], true),
        (&b""[..], false),
    ] {
        let e = decode_request(bytes, binary).unwrap_err();
        assert_eq!(e.body.code, ErrorCode::BadRequest);
        assert_eq!(e.id, None);
    }
}

#[test]
fn oversized_frames_are_frame_too_large() {
    let pad = "x".repeat(FRAME_BYTES_MAX);
    let raw = json!({"op":"ping","id":1,"args":{"pad":pad}});
    let e = json_req(&raw).unwrap_err();
    assert_eq!(e.body.code, ErrorCode::FrameTooLarge);
    assert_eq!(e.body.num, 1004);
    // Just under the limit is fine.
    let fill = FRAME_BYTES_MAX
        - json!({"op":"ping","id":1,"args":{"pad":""}})
            .to_string()
            .len();
    let ok = json!({"op":"ping","id":1,"args":{"pad":"x".repeat(fill)}}).to_string();
    assert_eq!(ok.len(), FRAME_BYTES_MAX);
    assert!(decode_request(ok.as_bytes(), false).is_ok());
}

#[test]
fn batch_limit_is_twenty() {
    let order =
        json!({"cl_id":"a1","sym":"BTC-USD","side":"buy","type":"limit","px":"1.00","qty":"1"});
    let twenty: Vec<Value> = (0..BATCH_ORDERS_MAX).map(|_| order.clone()).collect();
    let r = json_req(&json!({"op":"order.batch","id":1,"args":{"orders":twenty}})).unwrap();
    let Op::OrderBatch(b) = r.op else { panic!() };
    assert_eq!(b.orders.len(), 20);
    // Item-level problems are answered per item, not for the whole batch.
    let mut items = vec![order.clone(); 2];
    items[1]["cl_id"] = json!("bad id!");
    let r = json_req(&json!({"op":"order.batch","id":1,"args":{"orders":items}})).unwrap();
    let Op::OrderBatch(b) = r.op else { panic!() };
    assert!(b.orders[0].validate().is_ok());
    assert_eq!(
        b.orders[1].validate().unwrap_err().code,
        ErrorCode::BadRequest
    );
}

#[test]
fn auth_forms() {
    let r = json_req(&json!({"op":"auth","id":1,"args":{"user":"alice","password":"pw"}})).unwrap();
    let Op::Auth(a) = r.op else { panic!() };
    assert_eq!(a.cod(), Cod::Off);
    assert!(matches!(a, AuthArgs::Password(_)));
    let r = json_req(&json!({"op":"auth","id":1,"args":{"key":"k","ts":5,"nonce":"n","sig":"00","alg":"ed25519","cod":"account"}}))
        .unwrap();
    let Op::Auth(AuthArgs::Key(k)) = r.op else {
        panic!()
    };
    assert_eq!(k.alg, SigAlg::Ed25519);
    assert_eq!(k.cod, Some(Cod::Account));
    assert_eq!(k.signed_payload(), "5\nn\nauth\nk");
    let e = json_req(
        &json!({"op":"auth","id":1,"args":{"key":"k","ts":5,"nonce":"n","sig":"00","alg":"rsa"}}),
    )
    .unwrap_err();
    assert_eq!(e.body.code, ErrorCode::BadRequest);
    assert!(e.body.msg.contains("rsa"), "{}", e.body.msg);
}

#[test]
fn order_defaults() {
    let r = json_req(&json!({"op":"order.place","id":1,"args":{"cl_id":"a_1-Z","sym":"BTC-USD","side":"sell","type":"market","qty":"1"}}))
        .unwrap();
    let Op::OrderPlace(p) = r.op else { panic!() };
    assert_eq!(p.tif(), Tif::Ioc);
    assert_eq!(p.stp(), Stp::CancelNewest);
    assert!(!p.post_only);
    let limit = PlaceArgs::limit("a1", "BTC-USD", Side::Buy, "1", "1");
    assert_eq!(limit.tif(), Tif::Gtc);
    let fok = PlaceArgs {
        tif: Some(Tif::Fok),
        ..PlaceArgs::market("a1", "BTC-USD", Side::Buy, "1")
    };
    assert!(fok.validate().is_ok());
}

#[test]
fn subscribe_defaults_and_resume() {
    let r = json_req(&json!({"op":"subscribe","id":1,"args":{"ch":"book.l2","sym":["BTC-USD"],"resume":{"BTC-USD":{"epoch":1,"seq":9}}}}))
        .unwrap();
    let Op::Subscribe(a) = r.op else { panic!() };
    assert_eq!(a.depth(), DEPTH_DEFAULT);
    assert_eq!(a.on_lag(), OnLag::Conflate);
    assert!(!a.cksum);
    assert_eq!(
        a.resume_for(Some("BTC-USD")),
        Some(Position { epoch: 1, seq: 9 })
    );
    assert_eq!(a.resume_for(Some("ETH-USD")), None);
    let r = json_req(&json!({"op":"subscribe","id":1,"args":{"ch":"trades","sym":["BTC-USD"]}}))
        .unwrap();
    let Op::Subscribe(a) = r.op else { panic!() };
    assert_eq!(a.on_lag(), OnLag::Resync);
    let r = json_req(
        &json!({"op":"subscribe","id":1,"args":{"ch":"account","resume":{"epoch":2,"seq":7}}}),
    )
    .unwrap();
    let Op::Subscribe(a) = r.op else { panic!() };
    assert_eq!(a.resume_for(None), Some(Position { epoch: 2, seq: 7 }));
    let e = json_req(&json!({"op":"subscribe","id":1,"args":{"ch":"account","resume":{"BTC-USD":{"epoch":2,"seq":7}}}}))
        .unwrap_err();
    assert_eq!(e.body.code, ErrorCode::BadRequest);
    // An instrument listed twice would be subscribed, and sent its snapshot, twice.
    for op in ["subscribe", "unsubscribe"] {
        let e = json_req(&json!({"op":op,"id":1,"args":{"ch":"trades","sym":["BTC-USD","ETH-USD","BTC-USD"]}}))
            .unwrap_err();
        assert_eq!(e.body.code, ErrorCode::BadRequest, "{op}");
        assert!(e.body.msg.contains("BTC-USD twice"), "{op}: {}", e.body.msg);
    }
}

#[test]
fn cl_id_rule() {
    assert!(valid_cl_id("a"));
    assert!(valid_cl_id("A-z_09"));
    assert!(valid_cl_id(&"x".repeat(36)));
    assert!(!valid_cl_id(""));
    assert!(!valid_cl_id(&"x".repeat(37)));
    for bad in ["a b", "a.b", "é", "a/b", "a:b"] {
        assert!(!valid_cl_id(bad), "{bad}");
    }
}

#[test]
fn op_classes() {
    let reqs = requests();
    for (_, r) in &reqs {
        assert_eq!(r.op.is_admin(), r.op.name().starts_with("admin."));
    }
    assert!(Op::OrderPlace(PlaceArgs::limit("a", "X", Side::Buy, "1", "1")).is_write());
    assert!(!Op::Ping.is_write());
    assert!(!Op::AdminBalances(UserArgs { user: s("u") }).is_write());
    assert!(Op::AdminDeposit(AmountArgs {
        user: s("u"),
        asset: s("USD"),
        amount: s("1")
    })
    .is_write());
}
