//! Sample messages of every kind, shared by the round-trip and fixture tests.
#![allow(dead_code)]

use bourse_protocol::error::{ErrorBody, ErrorCode};
use bourse_protocol::msg::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const TS: u64 = 1_732_051_200_123_456;

pub fn lv(px: &str, qty: &str) -> Level {
    (px.to_owned(), qty.to_owned())
}

pub fn s(x: &str) -> String {
    x.to_owned()
}

pub fn order_view() -> OrderView {
    OrderView {
        order_id: 9912,
        cl_id: s("a1"),
        sym: s("BTC-USD"),
        side: Side::Buy,
        order_type: OrderType::Limit,
        tif: Tif::Gtc,
        post_only: false,
        px: Some(s("30000.00")),
        qty: s("0.5000"),
        quote_qty: None,
        cum_qty: s("0.0100"),
        leaves_qty: s("0.4900"),
        status: OrderStatus::PartiallyFilled,
        reason: None,
        ts: TS,
    }
}

pub fn market_order_view() -> OrderView {
    OrderView {
        order_id: 9913,
        cl_id: s("m-7"),
        side: Side::Buy,
        order_type: OrderType::Market,
        tif: Tif::Ioc,
        px: None,
        qty: s("0.0300"),
        quote_qty: Some(s("1000.00")),
        cum_qty: s("0.0300"),
        leaves_qty: s("0.0000"),
        status: OrderStatus::Cancelled,
        reason: Some(CancelReason::Market),
        ..order_view()
    }
}

pub fn instrument_view() -> InstrumentView {
    InstrumentView {
        sym: s("BTC-USD"),
        base: s("BTC"),
        quote: s("USD"),
        tick: s("0.01"),
        lot: s("0.0001"),
        min_qty: s("0.0010"),
        price_scale: 2,
        qty_scale: 4,
        band_pct: 10,
        maker_fee_bps: 1,
        taker_fee_bps: 5,
        state: InstrumentState::Trading,
    }
}

pub fn balance(asset: &str, available: &str, held: &str) -> BalanceView {
    BalanceView {
        asset: s(asset),
        available: s(available),
        held: s(held),
    }
}

pub fn fill_view() -> FillView {
    FillView {
        fill_id: 311,
        trade_id: 88121,
        order_id: 9912,
        cl_id: s("a1"),
        sym: s("BTC-USD"),
        side: Side::Buy,
        px: s("30000.00"),
        qty: s("0.0100"),
        fee: s("0.03"),
        fee_asset: s("USD"),
        liq: Liquidity::Maker,
        ts: TS,
    }
}

pub fn place_res() -> PlaceRes {
    PlaceRes {
        order_id: 9912,
        cl_id: s("a1"),
        status: OrderStatus::New,
        cum_qty: s("0.0000"),
        reason: None,
        dup: false,
    }
}

/// Every op, as a request (name, request).
pub fn requests() -> Vec<(&'static str, Request)> {
    let place = PlaceArgs {
        tif: Some(Tif::Gtc),
        post_only: true,
        stp: Some(Stp::CancelBoth),
        ..PlaceArgs::limit("a1", "BTC-USD", Side::Buy, "30000.00", "0.5000")
    };
    let mut streams = BTreeMap::new();
    streams.insert(
        s("book.l2:BTC-USD:50"),
        Position {
            epoch: 1,
            seq: 1042,
        },
    );
    streams.insert(
        s("account"),
        Position {
            epoch: 1,
            seq: 5521,
        },
    );
    let mut by_sym = BTreeMap::new();
    by_sym.insert(
        s("BTC-USD"),
        Position {
            epoch: 1,
            seq: 88120,
        },
    );
    vec![
        ("ping", Request::new(1, Op::Ping)),
        (
            "auth password",
            Request::new(
                2,
                Op::Auth(AuthArgs::Password(PasswordAuth {
                    user: s("alice"),
                    password: s("correct horse"),
                    otp: Some(s("123456")),
                    cod: Some(Cod::Connection),
                })),
            ),
        ),
        (
            "auth key",
            Request::new(
                "auth-1",
                Op::Auth(AuthArgs::Key(KeyAuth {
                    key: s("k_3f2a"),
                    ts: TS,
                    nonce: s("n-1"),
                    sig: s("9b1c"),
                    alg: SigAlg::HmacSha256,
                    cod: None,
                })),
            ),
        ),
        (
            "session.resume",
            Request::new(
                3,
                Op::SessionResume(ResumeArgs {
                    token: s("tok"),
                    streams,
                }),
            ),
        ),
        (
            "subscribe book.l2",
            Request::new(
                4,
                Op::Subscribe(SubscribeArgs {
                    ch: Channel::BookL2,
                    sym: vec![s("BTC-USD"), s("ETH-USD")],
                    depth: Some(10),
                    interval: None,
                    cksum: true,
                    on_lag: Some(OnLag::Conflate),
                    resume: None,
                }),
            ),
        ),
        (
            "subscribe trades resume",
            Request::new(
                5,
                Op::Subscribe(SubscribeArgs {
                    ch: Channel::Trades,
                    sym: vec![s("BTC-USD")],
                    depth: None,
                    interval: None,
                    cksum: false,
                    on_lag: Some(OnLag::Resync),
                    resume: Some(Resume::BySym(by_sym)),
                }),
            ),
        ),
        (
            "subscribe candles",
            Request::new(
                6,
                Op::Subscribe(SubscribeArgs {
                    ch: Channel::Candles,
                    sym: vec![s("BTC-USD")],
                    depth: None,
                    interval: Some(Interval::M5),
                    cksum: false,
                    on_lag: None,
                    resume: None,
                }),
            ),
        ),
        (
            "subscribe account resume",
            Request::new(
                7,
                Op::Subscribe(SubscribeArgs {
                    ch: Channel::Account,
                    sym: vec![],
                    depth: None,
                    interval: None,
                    cksum: false,
                    on_lag: Some(OnLag::Disconnect),
                    resume: Some(Resume::Stream(Position {
                        epoch: 1,
                        seq: 5520,
                    })),
                }),
            ),
        ),
        (
            "unsubscribe",
            Request::new(
                8,
                Op::Unsubscribe(UnsubscribeArgs {
                    ch: Channel::BookL2,
                    sym: vec![s("BTC-USD")],
                    depth: Some(10),
                    interval: None,
                }),
            ),
        ),
        ("logout", Request::new(9, Op::Logout)),
        (
            "order.place limit",
            Request::new(17, Op::OrderPlace(place.clone())),
        ),
        (
            "order.place market quote_qty",
            Request::new(
                18,
                Op::OrderPlace(PlaceArgs {
                    qty: None,
                    quote_qty: Some(s("1000.00")),
                    ..PlaceArgs::market("m-7", "BTC-USD", Side::Buy, "")
                }),
            ),
        ),
        (
            "order.cancel by id",
            Request::new(
                19,
                Op::OrderCancel(CancelArgs {
                    sym: s("BTC-USD"),
                    order_id: Some(9912),
                    cl_id: None,
                }),
            ),
        ),
        (
            "order.cancel by cl_id",
            Request::new(
                20,
                Op::OrderCancel(CancelArgs {
                    sym: s("BTC-USD"),
                    order_id: None,
                    cl_id: Some(s("a1")),
                }),
            ),
        ),
        (
            "order.amend",
            Request::new(
                21,
                Op::OrderAmend(AmendArgs {
                    sym: s("BTC-USD"),
                    order_id: Some(9912),
                    cl_id: None,
                    qty: Some(s("0.4000")),
                    px: Some(s("30000.50")),
                }),
            ),
        ),
        (
            "order.cancel_all",
            Request::new(
                22,
                Op::OrderCancelAll(CancelAllArgs {
                    sym: Some(s("BTC-USD")),
                    side: Some(Side::Sell),
                }),
            ),
        ),
        (
            "order.batch",
            Request::new(
                23,
                Op::OrderBatch(BatchArgs {
                    orders: vec![
                        place,
                        PlaceArgs::market("b-2", "BTC-USD", Side::Sell, "0.0100"),
                    ],
                }),
            ),
        ),
        (
            "order.cancel_after",
            Request::new(
                24,
                Op::OrderCancelAfter(CancelAfterArgs { timeout_ms: 30_000 }),
            ),
        ),
        ("account.balances", Request::new(25, Op::AccountBalances)),
        (
            "account.orders",
            Request::new(
                26,
                Op::AccountOrders(OrdersArgs {
                    sym: Some(s("BTC-USD")),
                }),
            ),
        ),
        (
            "account.fills",
            Request::new(
                27,
                Op::AccountFills(FillsArgs {
                    sym: None,
                    limit: Some(500),
                    before: Some(311),
                }),
            ),
        ),
        ("instruments", Request::new(28, Op::Instruments)),
        (
            "admin.asset.create",
            Request::new(
                29,
                Op::AdminAssetCreate(AssetCreateArgs {
                    asset: s("USD"),
                    scale: 2,
                }),
            ),
        ),
        (
            "admin.instrument.create",
            Request::new(
                30,
                Op::AdminInstrumentCreate(InstrumentCreateArgs {
                    sym: s("BTC-USD"),
                    base: s("BTC"),
                    quote: s("USD"),
                    tick: s("0.010"),
                    lot: s("0.0001"),
                    min_qty: s("0.001"),
                    ref_px: Some(s("30000")),
                    band_pct: Some(10),
                    maker_fee_bps: Some(1),
                    taker_fee_bps: Some(5),
                }),
            ),
        ),
        (
            "admin.instrument.halt",
            Request::new(31, Op::AdminInstrumentHalt(SymArgs { sym: s("BTC-USD") })),
        ),
        (
            "admin.instrument.resume",
            Request::new(32, Op::AdminInstrumentResume(SymArgs { sym: s("BTC-USD") })),
        ),
        (
            "admin.instrument.cancel_only",
            Request::new(
                33,
                Op::AdminInstrumentCancelOnly(SymArgs { sym: s("BTC-USD") }),
            ),
        ),
        (
            "admin.user.create",
            Request::new(
                34,
                Op::AdminUserCreate(UserCreateArgs {
                    user: s("bob"),
                    password: s("pw"),
                    role: Role::Trader,
                }),
            ),
        ),
        (
            "account.password",
            Request::new(
                61,
                Op::AccountPassword(PasswordChangeArgs {
                    password: s("the-old-one"),
                    new_password: s("a-new-password"),
                }),
            ),
        ),
        (
            "admin.user.password",
            Request::new(
                60,
                Op::AdminUserPassword(UserPasswordArgs {
                    user: s("bob"),
                    password: s("a-new-password"),
                }),
            ),
        ),
        (
            "admin.apikey.create ed25519",
            Request::new(
                35,
                Op::AdminApikeyCreate(ApiKeyCreateArgs {
                    user: s("bob"),
                    alg: SigAlg::Ed25519,
                    public_key: Some(s("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")),
                }),
            ),
        ),
        (
            "admin.deposit",
            Request::new(
                36,
                Op::AdminDeposit(AmountArgs {
                    user: s("bob"),
                    asset: s("USD"),
                    amount: s("1000.00"),
                }),
            ),
        ),
        (
            "admin.withdraw",
            Request::new(
                37,
                Op::AdminWithdraw(AmountArgs {
                    user: s("bob"),
                    asset: s("USD"),
                    amount: s("5"),
                }),
            ),
        ),
        (
            "admin.cancel_all",
            Request::new(
                38,
                Op::AdminCancelAll(AdminCancelAllArgs {
                    user: Some(s("bob")),
                    sym: None,
                }),
            ),
        ),
        (
            "admin.balances",
            Request::new(39, Op::AdminBalances(UserArgs { user: s("fees") })),
        ),
    ]
}

/// Invalid requests and the code each must be refused with
/// (name, raw JSON, expected code, whether the id survives).
pub fn invalid_requests() -> Vec<(&'static str, Value, ErrorCode, bool)> {
    let order =
        json!({"cl_id":"a1","sym":"BTC-USD","side":"buy","type":"limit","px":"1.00","qty":"1"});
    let orders: Vec<Value> = (0..21).map(|_| order.clone()).collect();
    vec![
        ("not an object", json!([1, 2]), ErrorCode::BadRequest, false),
        (
            "missing id",
            json!({"op":"ping"}),
            ErrorCode::BadRequest,
            false,
        ),
        (
            "negative id",
            json!({"op":"ping","id":-1}),
            ErrorCode::BadRequest,
            false,
        ),
        (
            "id too long",
            json!({"op":"ping","id":"0123456789012345678901234567890123456"}),
            ErrorCode::BadRequest,
            false,
        ),
        (
            "float id",
            json!({"op":"ping","id":1.5}),
            ErrorCode::BadRequest,
            false,
        ),
        ("missing op", json!({"id":1}), ErrorCode::BadRequest, true),
        (
            "op not a string",
            json!({"id":1,"op":7}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "unknown op",
            json!({"id":1,"op":"order.teleport","args":{}}),
            ErrorCode::UnknownOp,
            true,
        ),
        (
            "args not an object",
            json!({"id":1,"op":"ping","args":[]}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "place missing qty",
            json!({"id":1,"op":"order.place","args":{"cl_id":"a1","sym":"BTC-USD","side":"buy","type":"limit","px":"1.00"}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "place bad side",
            json!({"id":1,"op":"order.place","args":{"cl_id":"a1","sym":"BTC-USD","side":"long","type":"limit","px":"1","qty":"1"}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "place bad cl_id",
            json!({"id":1,"op":"order.place","args":{"cl_id":"a 1","sym":"BTC-USD","side":"buy","type":"limit","px":"1","qty":"1"}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "place market gtc",
            json!({"id":1,"op":"order.place","args":{"cl_id":"a1","sym":"BTC-USD","side":"sell","type":"market","qty":"1","tif":"gtc"}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "place px not a string",
            json!({"id":1,"op":"order.place","args":{"cl_id":"a1","sym":"BTC-USD","side":"buy","type":"limit","px":30000.5,"qty":"1"}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "batch of 21",
            json!({"id":1,"op":"order.batch","args":{"orders":orders}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "cancel with both ids",
            json!({"id":1,"op":"order.cancel","args":{"sym":"BTC-USD","order_id":5,"cl_id":"a1"}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "cancel with no id",
            json!({"id":1,"op":"order.cancel","args":{"sym":"BTC-USD"}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "amend with nothing to change",
            json!({"id":1,"op":"order.amend","args":{"sym":"BTC-USD","order_id":5}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "subscribe unknown channel",
            json!({"id":1,"op":"subscribe","args":{"ch":"book.l3","sym":["BTC-USD"]}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "subscribe bad depth",
            json!({"id":1,"op":"subscribe","args":{"ch":"book.l2","sym":["BTC-USD"],"depth":25}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "subscribe candles without interval",
            json!({"id":1,"op":"subscribe","args":{"ch":"candles","sym":["BTC-USD"]}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "subscribe trades without sym",
            json!({"id":1,"op":"subscribe","args":{"ch":"trades"}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "subscribe account with sym",
            json!({"id":1,"op":"subscribe","args":{"ch":"account","sym":["BTC-USD"]}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "fills limit over 1000",
            json!({"id":1,"op":"account.fills","args":{"limit":1001}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "ed25519 key without public_key",
            json!({"id":1,"op":"admin.apikey.create","args":{"user":"bob","alg":"ed25519"}}),
            ErrorCode::BadRequest,
            true,
        ),
        (
            "auth with neither form",
            json!({"id":1,"op":"auth","args":{"user":"alice"}}),
            ErrorCode::BadRequest,
            true,
        ),
    ]
}

/// Every response shape (name, op, response with its typed result as a value).
pub fn responses() -> Vec<(&'static str, &'static str, Response<Value>)> {
    fn ok<T: serde::Serialize>(id: u64, res: T) -> Response<Value> {
        Response::ok(
            ReqId::Num(id),
            serde_json::to_value(res).unwrap(),
            TS,
            TS + 333,
        )
    }
    let insufficient = ErrorBody::new(
        ErrorCode::InsufficientFunds,
        "needs 150.00 USD, 120.00 available",
    );
    vec![
        ("ping", "ping", ok(1, PingRes { ts: TS })),
        (
            "auth",
            "auth",
            Response::ok(
                ReqId::Str(s("auth-1")),
                serde_json::to_value(AuthRes {
                    user: s("alice"),
                    role: Role::Trader,
                    session: SessionInfo {
                        id: s("s-41"),
                        token: s("c2Vzc2lvbg"),
                    },
                })
                .unwrap(),
                TS,
                TS + 50_000,
            ),
        ),
        (
            "subscribe",
            "subscribe",
            ok(
                4,
                SubscribeRes {
                    subs: vec![
                        SubResult {
                            sub: s("book.l2:BTC-USD:10"),
                            mode: SubMode::Snapshot,
                            from_seq: None,
                            reason: None,
                        },
                        SubResult {
                            sub: s("trades:BTC-USD"),
                            mode: SubMode::Resumed,
                            from_seq: Some(88121),
                            reason: None,
                        },
                        SubResult {
                            sub: s("account"),
                            mode: SubMode::Snapshot,
                            from_seq: None,
                            reason: Some(s(REASON_RESUME_UNAVAILABLE)),
                        },
                    ],
                },
            ),
        ),
        ("unsubscribe", "unsubscribe", ok(8, Empty {})),
        ("order.place", "order.place", ok(17, place_res())),
        (
            "order.place ioc cancelled",
            "order.place",
            ok(
                18,
                PlaceRes {
                    status: OrderStatus::Cancelled,
                    cum_qty: s("0.0100"),
                    reason: Some(CancelReason::Ioc),
                    dup: true,
                    ..place_res()
                },
            ),
        ),
        (
            "order.place insufficient_funds",
            "order.place",
            Response::err(Some(ReqId::Num(18)), insufficient.clone(), TS, TS + 120),
        ),
        (
            "rate_limited",
            "order.place",
            Response::err(
                Some(ReqId::Num(19)),
                ErrorBody::rate_limited(250),
                TS,
                TS + 5,
            ),
        ),
        (
            "timeout unknown outcome",
            "order.place",
            Response::err(
                Some(ReqId::Num(20)),
                ErrorBody::new(ErrorCode::Timeout, "no commit within 5000 ms"),
                TS,
                TS + 5_000_000,
            ),
        ),
        (
            "unreadable request",
            "",
            Response::err(
                None,
                ErrorBody::bad_request("invalid JSON: expected value at line 1 column 1"),
                TS,
                TS + 3,
            ),
        ),
        (
            "order.cancel",
            "order.cancel",
            ok(
                19,
                CancelRes {
                    order_id: 9912,
                    status: OrderStatus::Cancelled,
                },
            ),
        ),
        (
            "order.amend",
            "order.amend",
            ok(
                21,
                AmendRes {
                    order_id: 9912,
                    status: OrderStatus::PartiallyFilled,
                },
            ),
        ),
        (
            "order.cancel_all",
            "order.cancel_all",
            ok(22, CancelAllRes { cancelled: 3 }),
        ),
        (
            "order.batch",
            "order.batch",
            ok(
                23,
                BatchRes {
                    results: vec![
                        BatchItem::ok(place_res()),
                        BatchItem::err(ErrorBody::new(
                            ErrorCode::PriceTick,
                            "px 30000.005 has more decimals than the 0.01 tick",
                        )),
                    ],
                },
            ),
        ),
        (
            "order.cancel_after",
            "order.cancel_after",
            ok(
                24,
                CancelAfterRes {
                    at: TS + 30_000_000,
                },
            ),
        ),
        (
            "account.balances",
            "account.balances",
            ok(
                25,
                BalancesRes {
                    balances: vec![
                        balance("BTC", "1.00000000", "0.00000000"),
                        balance("USD", "120.00", "150.03"),
                    ],
                },
            ),
        ),
        (
            "account.orders",
            "account.orders",
            ok(
                26,
                OrdersRes {
                    orders: vec![order_view(), market_order_view()],
                },
            ),
        ),
        (
            "account.fills",
            "account.fills",
            ok(
                27,
                FillsRes {
                    fills: vec![fill_view()],
                },
            ),
        ),
        (
            "instruments",
            "instruments",
            ok(
                28,
                InstrumentsRes {
                    instruments: vec![instrument_view()],
                },
            ),
        ),
        ("admin.asset.create", "admin.asset.create", ok(29, Empty {})),
        (
            "admin.instrument.create",
            "admin.instrument.create",
            ok(30, instrument_view()),
        ),
        (
            "admin.instrument.halt",
            "admin.instrument.halt",
            ok(
                31,
                StateRes {
                    state: InstrumentState::Halted,
                },
            ),
        ),
        (
            "admin.user.create",
            "admin.user.create",
            ok(34, UserRes { user: s("bob") }),
        ),
        (
            "admin.user.password",
            "admin.user.password",
            ok(60, UserRes { user: s("bob") }),
        ),
        (
            "account.password",
            "account.password",
            ok(61, UserRes { user: s("alice") }),
        ),
        (
            "admin.apikey.create hmac",
            "admin.apikey.create",
            ok(
                35,
                ApiKeyRes {
                    key: s("k_3f2a"),
                    secret: Some("ab".repeat(32)),
                },
            ),
        ),
        (
            "admin.apikey.create ed25519",
            "admin.apikey.create",
            ok(
                35,
                ApiKeyRes {
                    key: s("k_9e01"),
                    secret: None,
                },
            ),
        ),
        (
            "admin.deposit",
            "admin.deposit",
            ok(
                36,
                AvailableRes {
                    available: s("1000.00"),
                },
            ),
        ),
        (
            "admin.balances",
            "admin.balances",
            ok(
                39,
                BalancesRes {
                    balances: vec![balance("USD", "0.03", "0.00")],
                },
            ),
        ),
    ]
}

/// Every server-initiated message (name, message).
pub fn events() -> Vec<(&'static str, ServerMessage)> {
    let snapshot = BookL2 {
        cksum: Some(283_928_291),
        ..BookL2::snapshot(
            "BTC-USD",
            1,
            1042,
            TS,
            50,
            vec![lv("30001.50", "0.2500"), lv("30001.00", "1.1000")],
            vec![lv("30002.00", "0.4000")],
        )
    };
    let delta = BookL2 {
        cksum: Some(2_606_946_132),
        ..BookL2::delta(
            "BTC-USD",
            1,
            1042,
            1043,
            TS + 1,
            50,
            vec![lv("30001.50", "0")],
            vec![lv("30001.80", "0.0500")],
        )
    };
    let candle = Candle {
        start: 1_732_051_200_000_000,
        o: s("30000.00"),
        h: s("30002.00"),
        l: s("29999.50"),
        c: s("30001.80"),
        v: s("12.3450"),
        n: 311,
        closed: false,
    };
    let trade = Trade {
        id: 88121,
        px: s("30001.80"),
        qty: s("0.0100"),
        taker: Side::Buy,
        ts: TS,
    };
    let mut last = BTreeMap::new();
    last.insert(s("book.l2:BTC-USD:50"), 1043);
    last.insert(s("trades:BTC-USD"), 88121);
    last.insert(s("account"), 5521);
    let ev = |e: StreamEvent| ServerMessage::Event(e);
    vec![
        ("book.l2 snapshot", ev(StreamEvent::BookL2(snapshot))),
        ("book.l2 delta", ev(StreamEvent::BookL2(delta))),
        (
            "book.l2 snapshot without cksum",
            ev(StreamEvent::BookL2(BookL2::snapshot(
                "ETH-USD",
                2,
                7,
                TS,
                10,
                vec![],
                vec![lv("2000.00", "3.0000")],
            ))),
        ),
        (
            "book.l1",
            ev(StreamEvent::BookL1(BookL1 {
                sym: s("BTC-USD"),
                kind: UpdateKind::Update,
                epoch: 1,
                seq: 1043,
                ts: TS,
                data: TopOfBook {
                    bid: Some(lv("30001.00", "1.1000")),
                    ask: None,
                },
            })),
        ),
        (
            "trades snapshot",
            ev(StreamEvent::Trades(Trades {
                sym: s("BTC-USD"),
                kind: UpdateKind::Snapshot,
                epoch: 1,
                prev: None,
                seq: 88121,
                ts: TS,
                data: vec![
                    Trade {
                        id: 88120,
                        taker: Side::Sell,
                        ..trade.clone()
                    },
                    trade.clone(),
                ],
            })),
        ),
        (
            "trades update",
            ev(StreamEvent::Trades(Trades {
                sym: s("BTC-USD"),
                kind: UpdateKind::Update,
                epoch: 1,
                prev: Some(88120),
                seq: 88121,
                ts: TS,
                data: vec![trade],
            })),
        ),
        (
            "candles snapshot",
            ev(StreamEvent::Candles(Candles {
                sym: s("BTC-USD"),
                interval: Interval::M1,
                epoch: 1,
                prev: None,
                seq: 501,
                ts: TS,
                body: CandlesBody::Snapshot(vec![Candle {
                    closed: true,
                    ..candle.clone()
                }]),
            })),
        ),
        (
            "candles update",
            ev(StreamEvent::Candles(Candles {
                sym: s("BTC-USD"),
                interval: Interval::M1,
                epoch: 1,
                prev: Some(501),
                seq: 502,
                ts: TS,
                body: CandlesBody::Update(candle),
            })),
        ),
        (
            "ticker",
            ev(StreamEvent::Ticker(Ticker {
                sym: s("BTC-USD"),
                kind: UpdateKind::Snapshot,
                epoch: 1,
                seq: 1043,
                ts: TS,
                data: TickerData {
                    last: Some(s("30001.80")),
                    bid: Some(s("30001.00")),
                    ask: Some(s("30001.80")),
                    open_24h: Some(s("29500.00")),
                    high_24h: Some(s("30100.00")),
                    low_24h: Some(s("29400.50")),
                    volume_24h: Some(s("153.2100")),
                },
            })),
        ),
        (
            "ticker before any trade",
            ev(StreamEvent::Ticker(Ticker {
                sym: s("ETH-USD"),
                kind: UpdateKind::Update,
                epoch: 1,
                seq: 2,
                ts: TS,
                data: TickerData {
                    bid: Some(s("1999.00")),
                    ..TickerData::default()
                },
            })),
        ),
        (
            "status snapshot",
            ev(StreamEvent::Status(Status {
                epoch: 1,
                prev: None,
                seq: 12,
                ts: TS,
                body: StatusBody::Snapshot(StatusSnapshot {
                    instruments: vec![instrument_view()],
                }),
            })),
        ),
        (
            "status update",
            ev(StreamEvent::Status(Status {
                epoch: 1,
                prev: Some(12),
                seq: 13,
                ts: TS,
                body: StatusBody::Update(StatusUpdate {
                    instrument: InstrumentView {
                        state: InstrumentState::CancelOnly,
                        ..instrument_view()
                    },
                }),
            })),
        ),
        (
            "account snapshot",
            ev(StreamEvent::Account(Account {
                epoch: 1,
                prev: None,
                seq: 5519,
                ts: TS,
                body: AccountBody::Snapshot(AccountSnapshot {
                    balances: vec![balance("USD", "120.00", "150.03")],
                    orders: vec![order_view()],
                }),
            })),
        ),
        (
            "account order",
            ev(StreamEvent::Account(Account {
                epoch: 1,
                prev: Some(5519),
                seq: 5520,
                ts: TS,
                body: AccountBody::Order(market_order_view()),
            })),
        ),
        (
            "account fill",
            ev(StreamEvent::Account(Account {
                epoch: 1,
                prev: Some(5520),
                seq: 5521,
                ts: TS,
                body: AccountBody::Fill(AccountFill {
                    order_id: 9912,
                    cl_id: s("a1"),
                    sym: s("BTC-USD"),
                    side: Side::Buy,
                    px: s("30000.00"),
                    qty: s("0.0100"),
                    fee: s("0.03"),
                    fee_asset: s("USD"),
                    liq: Liquidity::Maker,
                    trade_id: 88121,
                    cum_qty: s("0.0100"),
                    leaves_qty: s("0.4900"),
                    status: OrderStatus::PartiallyFilled,
                    fill_id: None,
                }),
            })),
        ),
        (
            "account balance",
            ev(StreamEvent::Account(Account {
                epoch: 1,
                prev: Some(5521),
                seq: 5522,
                ts: TS,
                body: AccountBody::Balance(balance("USD", "119.97", "150.03")),
            })),
        ),
        (
            "gap trades",
            ServerMessage::Gap(Gap::new(
                &StreamKey::Trades { sym: s("BTC-USD") },
                1,
                88122,
                88150,
            )),
        ),
        (
            "gap account",
            ServerMessage::Gap(Gap {
                ch: Channel::Account,
                sym: None,
                depth: None,
                interval: None,
                kind: GapTag::Gap,
                epoch: None,
                lost: [5523, 5530],
            }),
        ),
        ("hb", ServerMessage::Heartbeat(Heartbeat::new(TS, last))),
        (
            "notice shutdown",
            ServerMessage::Notice(Notice::shutdown(5000, true)),
        ),
        (
            "notice slow_consumer",
            ServerMessage::Notice(Notice::slow_consumer(Some(s("book.l2:BTC-USD:200")))),
        ),
    ]
}

/// Re-reads a result value as the typed result of `op` and writes it back,
/// so a test can check that the typed form keeps every field.
pub fn retype(op: &str, res: &Value) -> Value {
    fn r<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Value {
        let t: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"));
        serde_json::to_value(t).unwrap()
    }
    match op {
        "ping" => r::<PingRes>(res),
        "auth" => r::<AuthRes>(res),
        "subscribe" | "session.resume" => r::<SubscribeRes>(res),
        "unsubscribe" | "logout" | "admin.asset.create" => r::<Empty>(res),
        "order.place" => r::<PlaceRes>(res),
        "order.cancel" => r::<CancelRes>(res),
        "order.amend" => r::<AmendRes>(res),
        "order.cancel_all" | "admin.cancel_all" => r::<CancelAllRes>(res),
        "order.batch" => r::<BatchRes>(res),
        "order.cancel_after" => r::<CancelAfterRes>(res),
        "account.balances" | "admin.balances" => r::<BalancesRes>(res),
        "account.orders" => r::<OrdersRes>(res),
        "account.fills" => r::<FillsRes>(res),
        "instruments" => r::<InstrumentsRes>(res),
        "admin.instrument.create" => r::<InstrumentView>(res),
        "admin.instrument.halt" | "admin.instrument.resume" | "admin.instrument.cancel_only" => {
            r::<StateRes>(res)
        }
        "admin.user.create" | "admin.user.password" | "account.password" => r::<UserRes>(res),
        "admin.apikey.create" => r::<ApiKeyRes>(res),
        "admin.deposit" | "admin.withdraw" => r::<AvailableRes>(res),
        other => panic!("no result type for op {other:?}"),
    }
}
