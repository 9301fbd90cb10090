//! The order rules of PROTOCOL.md section 5, one test per rule, on the test
//! instrument BTC-USD (one tick x one lot = one cent; maker 10 bps, taker 20 bps).
//! Every command of these tests is followed by the exchange's invariant checks
//! and a replay of its events (see `common`).

mod common;

use bourse_engine::*;
use common::*;

use Side::{Buy, Sell};

/// $1,000,000 in cents.
const USD: u64 = 100_000_000;
/// 1,000 BTC in satoshis.
const BTC: u64 = 100_000_000_000;

fn two_traders() -> (Harness, AccountId, AccountId) {
    let mut h = Harness::new();
    let a = h.trader("alice", USD, BTC);
    let b = h.trader("bob", USD, BTC);
    (h, a, b)
}

fn fee(notional: u64, bps: u64) -> u64 {
    (notional * bps).div_ceil(10_000)
}

// ---- limit orders, holds and settlement -----------------------------------

#[test]
fn limit_buy_rests_and_holds_notional_plus_worst_case_fee() {
    let (mut h, a, _) = two_traders();
    let id = h.limit(a, Buy, 1000, 10);
    let hold = 10 * 1000 + fee(10 * 1000, 20);
    assert_eq!(hold, 10_020);
    assert_eq!(h.usd(a), Balance { available: USD - hold, held: hold });
    assert_eq!(h.order(id).hold, Amount(hold));
    assert_eq!(h.order(id).status, OrderStatus::New);
    assert_eq!(h.best_bid(), Some((1000, 10)));
    assert_eq!(h.best_ask(), None);
    h.verify_replay();
}

#[test]
fn buy_hold_uses_the_larger_fee_rate() {
    let mut h = Harness::with_listing(|l| {
        l.maker_fee_bps = 30;
        l.taker_fee_bps = 5;
    });
    let a = h.trader("alice", USD, 0);
    let id = h.limit(a, Buy, 1000, 10);
    assert_eq!(h.order(id).hold, Amount(10_000 + 30));
}

#[test]
fn limit_sell_holds_the_base_quantity() {
    let (mut h, a, _) = two_traders();
    h.limit(a, Sell, 1000, 7);
    assert_eq!(h.btc(a), Balance { available: BTC - 7 * SATS_PER_LOT, held: 7 * SATS_PER_LOT });
    assert_eq!(h.usd(a), Balance { available: USD, held: 0 });
}

#[test]
fn a_cross_settles_both_sides_and_credits_fees_to_the_fee_account() {
    let (mut h, seller, buyer) = two_traders();
    let s = h.limit(seller, Sell, 1000, 10);
    let out = h.submit(lim(buyer, Buy, 1000, 10));
    let b = placed(&out);
    assert_eq!(prints(&out), vec![(1000, 10, s)]);
    let t = &trades(&out)[0];
    assert_eq!((t.maker_fee, t.taker_fee), (Amount(10), Amount(20)));
    assert_eq!(t.taker_side, Buy);
    assert_eq!(h.usd(buyer), Balance { available: USD - 10_020, held: 0 });
    assert_eq!(h.btc(buyer), Balance { available: BTC + 10 * SATS_PER_LOT, held: 0 });
    assert_eq!(h.usd(seller), Balance { available: USD + 10_000 - 10, held: 0 });
    assert_eq!(h.btc(seller), Balance { available: BTC - 10 * SATS_PER_LOT, held: 0 });
    assert_eq!(h.fees(), 30);
    assert_eq!(h.order(s).status, OrderStatus::Filled);
    assert_eq!(h.order(b).status, OrderStatus::Filled);
    assert_eq!(h.order(b).hold, Amount(0));
    assert_eq!((h.best_bid(), h.best_ask()), (None, None));
    // The fills history records both sides with their liquidity.
    let fb = h.ex.ledger.fills(buyer, None, None, 10);
    let fs = h.ex.ledger.fills(seller, None, None, 10);
    assert_eq!((fb.len(), fs.len()), (1, 1));
    assert_eq!((fb[0].fee, fs[0].fee), (Amount(20), Amount(10)));
    assert_eq!(fb[0].liq, bourse_engine::ledger::Liquidity::Taker);
    assert_eq!(fs[0].liq, bourse_engine::ledger::Liquidity::Maker);
    h.verify_replay();
}

#[test]
fn fees_round_up_and_are_charged_on_both_sides() {
    let (mut h, seller, buyer) = two_traders();
    // 1 lot at 1 tick: a notional of 1 cent; both fees round up to 1 cent.
    h.limit(seller, Sell, 1, 1);
    let out = h.submit(lim(buyer, Buy, 1, 1));
    let t = &trades(&out)[0];
    assert_eq!((t.maker_fee, t.taker_fee), (Amount(1), Amount(1)));
    assert_eq!(h.usd(seller).available, USD + 1 - 1);
    assert_eq!(h.usd(buyer).available, USD - 2);
    assert_eq!(h.fees(), 2);
}

#[test]
fn an_order_pays_its_rounded_fee_once_across_fills() {
    let (mut h, seller, buyer) = two_traders();
    // Ten 1-lot fills of 100 cents at 20 bps: 0.2 cent each, 2 cents in all.
    for _ in 0..10 {
        h.limit(seller, Sell, 100, 1);
    }
    let out = h.submit(lim(buyer, Buy, 100, 10));
    let taker_fees: u64 = trades(&out).iter().map(|t| t.taker_fee.0).sum();
    let maker_fees: u64 = trades(&out).iter().map(|t| t.maker_fee.0).sum();
    assert_eq!(taker_fees, 2);
    // Each maker is its own order: 0.1 cent rounds up to 1 cent each.
    assert_eq!(maker_fees, 10);
    assert_eq!(h.fees(), 12);
    assert_eq!(h.usd(buyer).available, USD - 1000 - 2);
}

#[test]
fn a_better_priced_taker_gets_the_makers_price_and_its_excess_hold_back() {
    let (mut h, seller, buyer) = two_traders();
    let s = h.limit(seller, Sell, 1000, 10);
    let out = h.submit(lim(buyer, Buy, 1050, 10));
    assert_eq!(prints(&out), vec![(1000, 10, s)]);
    assert_eq!(h.usd(buyer), Balance { available: USD - 10_000 - 20, held: 0 });
}

#[test]
fn trades_print_at_the_makers_price_in_both_directions() {
    let (mut h, a, b) = two_traders();
    let ask = h.limit(a, Sell, 1000, 5);
    let out = h.submit(lim(b, Buy, 1010, 5));
    assert_eq!(prints(&out), vec![(1000, 5, ask)]);
    let bid = h.limit(a, Buy, 990, 5);
    let out = h.submit(lim(b, Sell, 950, 5));
    assert_eq!(prints(&out), vec![(990, 5, bid)]);
    assert_eq!(trades(&out)[0].taker_side, Sell);
    h.verify_replay();
}

#[test]
fn a_partially_filled_maker_keeps_the_front_of_its_queue() {
    let (mut h, a, b) = two_traders();
    let c = h.trader("carol", USD, BTC);
    let first = h.limit(a, Sell, 1000, 10);
    let second = h.limit(c, Sell, 1000, 10);
    let out = h.submit(lim(b, Buy, 1000, 3));
    assert_eq!(prints(&out), vec![(1000, 3, first)]);
    assert_eq!(h.queue(Sell, 1000), vec![first, second]);
    assert_eq!(h.order(first).status, OrderStatus::PartiallyFilled);
    assert_eq!(h.book().get(first).unwrap().leaves, Qty(7));
    let out = h.submit(lim(b, Buy, 1000, 8));
    assert_eq!(prints(&out), vec![(1000, 7, first), (1000, 1, second)]);
    assert_eq!(h.queue(Sell, 1000), vec![second]);
    h.verify_replay();
}

#[test]
fn a_marketable_limit_stops_at_its_own_limit_and_rests_the_rest() {
    let (mut h, a, b) = two_traders();
    let x = h.limit(a, Sell, 1000, 2);
    let y = h.limit(a, Sell, 1001, 2);
    h.limit(a, Sell, 1002, 2);
    let out = h.submit(lim(b, Buy, 1001, 10));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(1000, 2, x), (1001, 2, y)]);
    assert_eq!(h.best_bid(), Some((1001, 6)));
    assert_eq!(h.best_ask(), Some((1002, 2)));
    let o = h.order(id);
    assert_eq!((o.status, o.cum), (OrderStatus::PartiallyFilled, Qty(4)));
    assert_eq!(h.book().get(id).unwrap().leaves, Qty(6));
    h.verify_replay();
}

#[test]
fn a_sweep_ending_exactly_on_a_level_boundary_leaves_the_next_level_whole() {
    let (mut h, a, b) = two_traders();
    let x = h.limit(a, Sell, 1000, 2);
    let y = h.limit(a, Sell, 1001, 3);
    let z = h.limit(a, Sell, 1002, 4);
    let out = h.submit(lim(b, Buy, 1002, 5));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(1000, 2, x), (1001, 3, y)]);
    assert_eq!(h.order(id).status, OrderStatus::Filled);
    assert_eq!(h.best_ask(), Some((1002, 4)));
    assert_eq!(h.best_bid(), None);
    assert_eq!(h.book().levels(Sell, 0), vec![(Price(1002), Qty(4))]);
    // And a sweep that takes every level exactly empties the side.
    let out = h.submit(lim(b, Buy, 1002, 4));
    assert_eq!(prints(&out), vec![(1002, 4, z)]);
    assert_eq!((h.best_bid(), h.best_ask()), (None, None));
    assert_eq!(h.book().order_count(), 0);
    h.verify_replay();
}

#[test]
fn no_phantom_best_price_after_the_best_level_empties() {
    let (mut h, a, b) = two_traders();
    h.limit(a, Sell, 1000, 1);
    let far = h.limit(a, Sell, 1005, 1);
    h.submit(lim(b, Buy, 1000, 1));
    assert_eq!(h.best_ask(), Some((1005, 1)));
    assert_eq!(h.book().level_qty(Sell, Price(1000)), Qty(0));
    assert!(h.cancel(a, far).result.is_ok());
    assert_eq!(h.best_ask(), None);
    assert!(h.book().levels(Sell, 0).is_empty());

    let top = h.limit(b, Buy, 1000, 1);
    h.limit(b, Buy, 999, 2);
    assert!(h.cancel(b, top).result.is_ok());
    assert_eq!(h.best_bid(), Some((999, 2)));
    // A sell at the old best price rests instead of trading with a ghost.
    let out = h.submit(lim(a, Sell, 1000, 1));
    assert!(trades(&out).is_empty());
    assert_eq!(h.best_ask(), Some((1000, 1)));
    h.verify_replay();
}

// ---- market orders --------------------------------------------------------

#[test]
fn a_market_sell_sweeps_the_bids_and_ends_cancelled_market_when_they_run_out() {
    let (mut h, a, b) = two_traders();
    let x = h.limit(a, Buy, 1000, 2);
    let y = h.limit(a, Buy, 990, 3);
    let out = h.submit(mkt(b, Sell, 10));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(1000, 2, x), (990, 3, y)]);
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::Market))));
    let o = h.order(id);
    assert_eq!((o.cum, o.hold), (Qty(5), Amount(0)));
    assert_eq!(h.btc(b), Balance { available: BTC - 5 * SATS_PER_LOT, held: 0 });
    assert_eq!(h.best_bid(), None);
    h.verify_replay();
}

#[test]
fn a_market_order_on_an_empty_book_is_accepted_and_cancelled() {
    let (mut h, _, b) = two_traders();
    let out = h.submit(mkt(b, Sell, 1));
    let id = placed(&out);
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::Market))));
    assert_eq!(h.btc(b), Balance { available: BTC, held: 0 });
}

#[test]
fn market_orders_are_ioc_or_fok_and_take_no_px() {
    let (mut h, a, _) = two_traders();
    h.place_refused(with_tif(mkt(a, Sell, 1), Tif::Gtc), RejectCode::BadRequest);
    let mut c = mkt(a, Sell, 1);
    c.px = Some(Price(1000));
    h.place_refused(c, RejectCode::BadRequest);
    h.place_refused(post_only(mkt(a, Sell, 1)), RejectCode::BadRequest);
    // quote_qty is for market buys only, and instead of qty.
    let mut c = mkt(a, Sell, 1);
    c.quote_qty = Some(Amount(100));
    h.place_refused(c, RejectCode::BadRequest);
    let mut c = mkt_quote(a, 100);
    c.qty = Some(Qty(1));
    h.place_refused(c, RejectCode::BadRequest);
    let mut c = lim(a, Buy, 1000, 1);
    c.quote_qty = Some(Amount(100));
    h.place_refused(c, RejectCode::BadRequest);
    // A limit order needs a positive px.
    let mut c = lim(a, Buy, 1000, 1);
    c.px = None;
    h.place_refused(c, RejectCode::BadRequest);
    h.place_refused(lim(a, Buy, 0, 1), RejectCode::BadRequest);
    // Quantity is required and positive.
    let mut c = lim(a, Buy, 1000, 1);
    c.qty = None;
    h.place_refused(c, RejectCode::BadRequest);
    h.place_refused(lim(a, Buy, 1000, 0), RejectCode::MinQty);
    h.place_refused(mkt_quote(a, 0), RejectCode::BadRequest);
}

#[test]
fn a_market_buy_by_qty_needs_a_reference_price() {
    let (mut h, a, b) = two_traders();
    h.limit(a, Sell, 1000, 5);
    // No ref_px and no trade yet: no band, so nothing to reserve at.
    h.place_refused(mkt(b, Buy, 1), RejectCode::BadRequest);
}

#[test]
fn a_market_buy_by_qty_reserves_at_the_band_edge_and_never_trades_beyond_it() {
    let mut h = Harness::with_listing(|l| l.ref_px = Some(Price(1000)));
    let s = h.trader("seller", USD, BTC);
    let b = h.trader("buyer", USD, BTC);
    // Move the reference so that an ask beyond today's band can rest.
    h.limit(s, Sell, 1100, 1);
    h.submit(lim(b, Buy, 1100, 1)); // last 1100: band 990..=1210
    let far = h.limit(s, Sell, 1200, 2);
    h.limit(s, Sell, 1000, 1);
    h.submit(lim(b, Buy, 1000, 1)); // last 1000: band 900..=1100
    let near = h.limit(s, Sell, 1050, 1);

    let before = h.usd(b).available;
    let out = h.submit(mkt(b, Buy, 3));
    let id = placed(&out);
    let EventBody::OrderAccepted { order } = &out.events[0].body else { panic!("accepted first") };
    assert_eq!(order.reserve_px, Some(Price(1100)));
    assert_eq!(order.hold, Amount(3 * 1100 + fee(3 * 1100, 20)));
    assert_eq!(prints(&out), vec![(1050, 1, near)]);
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::PriceBand))));
    assert_eq!(h.usd(b).available, before - 1050 - fee(1050, 20));
    assert_eq!(h.usd(b).held, 0);
    assert_eq!(h.queue(Sell, 1200), vec![far]);
    h.verify_replay();
}

#[test]
fn a_market_sell_stops_at_the_lower_band_edge() {
    let mut h = Harness::with_listing(|l| l.ref_px = Some(Price(1000)));
    let s = h.trader("seller", USD, BTC);
    let b = h.trader("buyer", USD, BTC);
    h.limit(b, Buy, 900, 1);
    h.submit(lim(s, Sell, 900, 1)); // last 900: band 810..=990
    let low = h.limit(b, Buy, 820, 1);
    h.limit(b, Buy, 990, 1);
    h.submit(lim(s, Sell, 990, 1)); // last 990: band 891..=1089
    let near = h.limit(b, Buy, 950, 2);
    let out = h.submit(mkt(s, Sell, 5));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(950, 2, near)]);
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::PriceBand))));
    assert_eq!(h.queue(Buy, 820), vec![low]);
    assert_eq!(h.btc(s).held, 0);
}

#[test]
fn a_quote_qty_buy_ends_filled_when_its_budget_cannot_buy_one_more_lot() {
    let (mut h, s, b) = two_traders();
    let ask = h.limit(s, Sell, 1000, 10);
    // 3 lots cost 3000 + 6 fee; 494 left cannot buy a 1000-cent lot.
    let out = h.submit(mkt_quote(b, 3500));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(1000, 3, ask)]);
    assert_eq!(closed(&out, id), Some((OrderStatus::Filled, None)));
    assert_eq!(h.usd(b), Balance { available: USD - 3006, held: 0 });
    assert_eq!(h.btc(b).available, BTC + 3 * SATS_PER_LOT);
    assert_eq!(h.best_ask(), Some((1000, 7)));
    h.verify_replay();
}

#[test]
fn a_quote_qty_buy_ends_filled_across_makers_and_levels() {
    let (mut h, s, b) = two_traders();
    let x = h.limit(s, Sell, 1000, 1);
    let y = h.limit(s, Sell, 1000, 1);
    let z = h.limit(s, Sell, 1001, 5);
    // 1000+2, then 1000+2, then 1001+3 (the order's rounded fee total), then 1001 more does not fit.
    let out = h.submit(mkt_quote(b, 3010));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(1000, 1, x), (1000, 1, y), (1001, 1, z)]);
    assert_eq!(closed(&out, id), Some((OrderStatus::Filled, None)));
    let paid: u64 = 3001 + fee(3001, 20);
    assert_eq!(h.usd(b), Balance { available: USD - paid, held: 0 });
}

#[test]
fn a_quote_qty_buy_counts_fees_already_rounded_up_by_its_earlier_fills() {
    let (mut h, s, b) = two_traders();
    // Two 1-lot asks of 100 cents. The first fill pays 100 + 1 (0.2 rounded
    // up); the order's fee total after two lots is still 1 (0.4 rounded up),
    // so the second lot costs exactly 100: a budget of 201 buys both.
    let x = h.limit(s, Sell, 100, 1);
    let y = h.limit(s, Sell, 100, 1);
    h.limit(s, Sell, 200, 1);
    let out = h.submit(mkt_quote(b, 201));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(100, 1, x), (100, 1, y)]);
    assert_eq!(closed(&out, id), Some((OrderStatus::Filled, None)));
    assert_eq!(h.usd(b), Balance { available: USD - 201, held: 0 });
}

#[test]
fn a_quote_qty_buy_ends_cancelled_market_when_the_asks_run_out() {
    let (mut h, s, b) = two_traders();
    h.limit(s, Sell, 1000, 2);
    let out = h.submit(mkt_quote(b, 10_000));
    let id = placed(&out);
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::Market))));
    assert_eq!(h.order(id).cum, Qty(2));
    assert_eq!(h.usd(b), Balance { available: USD - 2000 - 4, held: 0 });
    assert_eq!(h.best_ask(), None);
}

#[test]
fn a_quote_qty_buy_that_cannot_buy_one_lot_is_refused_and_keeps_its_cl_id() {
    let (mut h, s, b) = two_traders();
    h.limit(s, Sell, 1000, 2);
    h.place_refused(with_cl(mkt_quote(b, 1001), "q1"), RejectCode::InsufficientFunds);
    let out = h.submit(with_cl(mkt_quote(b, 1002), "q1"));
    assert!(matches!(out.result, Ok(Reply::Placed { dup: false, .. })));
    assert_eq!(trades(&out).len(), 1);
}

#[test]
fn a_quote_qty_buy_is_limited_to_the_band() {
    let mut h = Harness::with_listing(|l| l.ref_px = Some(Price(1000)));
    let s = h.trader("seller", USD, BTC);
    let b = h.trader("buyer", USD, BTC);
    h.limit(s, Sell, 1100, 1);
    h.submit(lim(b, Buy, 1100, 1)); // band 990..=1210
    h.limit(s, Sell, 1200, 1);
    h.limit(s, Sell, 1000, 1);
    h.submit(lim(b, Buy, 1000, 1)); // band 900..=1100
    let near = h.limit(s, Sell, 1050, 1);
    let out = h.submit(mkt_quote(b, 100_000));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(1050, 1, near)]);
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::PriceBand))));
}

// ---- time in force and post-only ------------------------------------------

#[test]
fn ioc_trades_what_it_can_and_cancels_the_rest_without_resting() {
    let (mut h, s, b) = two_traders();
    let ask = h.limit(s, Sell, 1000, 5);
    let out = h.submit(with_tif(lim(b, Buy, 1000, 8), Tif::Ioc));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(1000, 5, ask)]);
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::Ioc))));
    assert!(!out.events.iter().any(|e| matches!(e.body, EventBody::OrderOpened { .. })));
    assert_eq!(h.best_bid(), None);
    assert_eq!(h.usd(b), Balance { available: USD - 5000 - 10, held: 0 });
    let o = h.order(id);
    assert_eq!((o.cum, o.status, o.hold), (Qty(5), OrderStatus::Cancelled, Amount(0)));
    // An IOC that meets nothing is accepted and cancelled at once.
    let out = h.submit(with_tif(lim(b, Buy, 900, 1), Tif::Ioc));
    let id = placed(&out);
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::Ioc))));
    assert_eq!(h.usd(b).held, 0);
    h.verify_replay();
}

#[test]
fn fok_fills_entirely_across_levels() {
    let (mut h, s, b) = two_traders();
    let x = h.limit(s, Sell, 1000, 3);
    let y = h.limit(s, Sell, 1001, 4);
    let z = h.limit(s, Sell, 1002, 5);
    let out = h.submit(with_tif(lim(b, Buy, 1002, 12), Tif::Fok));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(1000, 3, x), (1001, 4, y), (1002, 5, z)]);
    assert_eq!(h.order(id).status, OrderStatus::Filled);
    assert_eq!(h.best_ask(), None);
}

#[test]
fn fok_that_cannot_fill_entirely_is_refused_with_nothing_changed() {
    let (mut h, s, b) = two_traders();
    h.limit(s, Sell, 1000, 3);
    h.limit(s, Sell, 1001, 4);
    h.limit(s, Sell, 1002, 5);
    // One lot more than the book has.
    h.place_refused(with_tif(lim(b, Buy, 1002, 13), Tif::Fok), RejectCode::FokUnfilled);
    // Enough lots, but not within the limit.
    h.place_refused(with_tif(lim(b, Buy, 1001, 8), Tif::Fok), RejectCode::FokUnfilled);
    // A market FOK too.
    h.place_refused(with_tif(mkt(b, Sell, 1), Tif::Fok), RejectCode::FokUnfilled);
    assert_eq!(h.book().levels(Sell, 0), vec![(Price(1000), Qty(3)), (Price(1001), Qty(4)), (Price(1002), Qty(5))]);
    assert_eq!(h.book().trade_id, 0);
    h.verify_replay();
}

#[test]
fn fok_by_quote_qty_fills_when_it_spends_its_budget() {
    let (mut h, s, b) = two_traders();
    h.limit(s, Sell, 1000, 10);
    let out = h.submit(with_tif(mkt_quote(b, 3500), Tif::Fok));
    let id = placed(&out);
    assert_eq!(closed(&out, id), Some((OrderStatus::Filled, None)));
    assert_eq!(h.order(id).cum, Qty(3));
    // A budget the book cannot absorb is not filled: refused, nothing changed.
    h.place_refused(with_tif(mkt_quote(b, 100_000), Tif::Fok), RejectCode::FokUnfilled);
    assert_eq!(h.best_ask(), Some((1000, 7)));
}

#[test]
fn post_only_that_would_take_is_refused_and_one_that_would_not_rests() {
    let (mut h, s, b) = two_traders();
    h.limit(s, Sell, 1000, 5);
    h.place_refused(post_only(lim(b, Buy, 1000, 1)), RejectCode::PostOnlyWouldTake);
    h.place_refused(post_only(lim(b, Buy, 1200, 1)), RejectCode::PostOnlyWouldTake);
    let id = h.place(post_only(lim(b, Buy, 999, 1)));
    assert_eq!(h.book().get(id).map(|o| o.post_only), Some(true));
    assert_eq!(h.best_bid(), Some((999, 1)));
}

// ---- cancel ---------------------------------------------------------------

#[test]
fn cancel_by_id_and_by_cl_id_releases_the_hold() {
    let (mut h, a, _) = two_traders();
    let x = h.limit(a, Buy, 1000, 10);
    let y = h.place(with_cl(lim(a, Sell, 1100, 3), "my-sell"));
    let out = h.cancel(a, x);
    assert_eq!(out.result, Ok(Reply::Cancelled { order: x }));
    assert_eq!(closed(&out, x), Some((OrderStatus::Cancelled, Some(CancelReason::User))));
    assert_eq!(h.usd(a), Balance { available: USD, held: 0 });
    let out = h.cancel_cl(a, "my-sell");
    assert_eq!(out.result, Ok(Reply::Cancelled { order: y }));
    assert_eq!(h.btc(a), Balance { available: BTC, held: 0 });
    assert_eq!(h.book().order_count(), 0);
    h.verify_replay();
}

#[test]
fn cancel_or_amend_of_a_filled_closed_foreign_or_never_issued_order_is_unknown_order() {
    let (mut h, a, b) = two_traders();
    let filled = h.limit(a, Sell, 1000, 1);
    h.submit(lim(b, Buy, 1000, 1));
    let cancelled = h.limit(a, Sell, 1000, 1);
    h.cancel(a, cancelled);
    let foreign = h.limit(b, Buy, 900, 1);
    for id in [filled, cancelled, foreign, OrderId(999_999)] {
        h.refused(Command::Cancel { account: a, inst: h.inst, order: OrderRef::Id(id) }, RejectCode::UnknownOrder);
        h.refused(
            Command::Amend { account: a, inst: h.inst, order: OrderRef::Id(id), qty: Some(Qty(5)), px: None },
            RejectCode::UnknownOrder,
        );
    }
    h.refused(Command::Cancel { account: a, inst: h.inst, order: OrderRef::ClId("nope".into()) }, RejectCode::UnknownOrder);
    // The right order in the wrong instrument.
    h.refused(Command::Cancel { account: b, inst: InstrumentId(7), order: OrderRef::Id(foreign) }, RejectCode::UnknownOrder);
    assert_eq!(h.queue(Buy, 900), vec![foreign]);
}

#[test]
fn cancelling_the_head_or_middle_of_a_queue_keeps_the_rest_in_order() {
    let (mut h, a, b) = two_traders();
    let ids: Vec<OrderId> = (0..5).map(|_| h.limit(a, Sell, 1000, 1)).collect();
    h.cancel(a, ids[2]);
    assert_eq!(h.queue(Sell, 1000), vec![ids[0], ids[1], ids[3], ids[4]]);
    h.cancel(a, ids[0]);
    assert_eq!(h.queue(Sell, 1000), vec![ids[1], ids[3], ids[4]]);
    h.cancel(a, ids[4]);
    assert_eq!(h.queue(Sell, 1000), vec![ids[1], ids[3]]);
    let late = h.limit(a, Sell, 1000, 1);
    let out = h.submit(lim(b, Buy, 1000, 3));
    assert_eq!(prints(&out), vec![(1000, 1, ids[1]), (1000, 1, ids[3]), (1000, 1, late)]);
    assert_eq!(h.best_ask(), None);
    h.verify_replay();
}

#[test]
fn cancel_all_per_account_and_side() {
    let (mut h, a, b) = two_traders();
    let ab1 = h.limit(a, Buy, 900, 1);
    let ab2 = h.limit(a, Buy, 901, 1);
    let as1 = h.limit(a, Sell, 1100, 1);
    let bb = h.limit(b, Buy, 905, 1);
    let out = h.cancel_all(a, Some(Buy));
    assert_eq!(out.result, Ok(Reply::CancelledAll { n: 2 }));
    assert_eq!(closed(&out, ab1), Some((OrderStatus::Cancelled, Some(CancelReason::User))));
    assert!(closed(&out, ab2).is_some());
    assert!(h.book().get(as1).is_some() && h.book().get(bb).is_some());
    assert_eq!(h.usd(a), Balance { available: USD, held: 0 });
    let out = h.cancel_all(a, None);
    assert_eq!(out.result, Ok(Reply::CancelledAll { n: 1 }));
    assert_eq!(h.book().orders().iter().map(|o| o.id).collect::<Vec<_>>(), vec![bb]);
    let out = h.cancel_all(a, None);
    assert_eq!(out.result, Ok(Reply::CancelledAll { n: 0 }));
    // Every instrument when none is named.
    let out = h.exec(Command::CancelAll { account: Some(b), inst: None, side: None, admin: false });
    assert_eq!(out.result, Ok(Reply::CancelledAll { n: 1 }));
    h.refused(Command::CancelAll { account: Some(b), inst: Some(InstrumentId(9)), side: None, admin: false }, RejectCode::UnknownInstrument);
    h.verify_replay();
}

// ---- amend ----------------------------------------------------------------

fn amended(out: &Outcome) -> Vec<(u64, u64, bool)> {
    out.events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::OrderAmended { px, qty, keep_priority, .. } => Some((px.0, qty.0, *keep_priority)),
            _ => None,
        })
        .collect()
}

#[test]
fn amend_qty_down_keeps_priority() {
    let (mut h, a, b) = two_traders();
    let x = h.limit(a, Buy, 1000, 10);
    let y = h.limit(b, Buy, 1000, 10);
    let out = h.amend(a, x, Some(6), None);
    assert_eq!(out.result, Ok(Reply::Amended { order: x }));
    assert_eq!(amended(&out), vec![(1000, 6, true)]);
    assert_eq!(h.queue(Buy, 1000), vec![x, y]);
    assert_eq!(h.best_bid(), Some((1000, 16)));
    assert_eq!(h.order(x).qty, Some(Qty(6)));
    h.verify_replay();
}

#[test]
fn amend_qty_up_or_a_new_price_loses_priority() {
    let (mut h, a, b) = two_traders();
    let x = h.limit(a, Buy, 1000, 10);
    let y = h.limit(b, Buy, 1000, 10);
    let out = h.amend(a, x, Some(12), None);
    assert_eq!(amended(&out), vec![(1000, 12, false)]);
    assert_eq!(h.queue(Buy, 1000), vec![y, x]);
    // The extra quantity is held.
    assert_eq!(h.usd(a).held, 12 * 1000 + fee(12 * 1000, 20));
    let out = h.amend(b, y, None, Some(999));
    assert_eq!(amended(&out), vec![(999, 10, false)]);
    h.amend(b, y, None, Some(1000));
    assert_eq!(h.queue(Buy, 1000), vec![x, y]);
    // Same qty and same price keeps its place.
    let out = h.amend(a, x, Some(12), Some(1000));
    assert_eq!(amended(&out), vec![(1000, 12, true)]);
    assert_eq!(h.queue(Buy, 1000), vec![x, y]);
    h.verify_replay();
}

#[test]
fn an_amend_that_crosses_trades_at_the_makers_prices() {
    let (mut h, a, b) = two_traders();
    let s1 = h.limit(a, Sell, 1005, 3);
    let s2 = h.limit(a, Sell, 1006, 4);
    h.limit(a, Sell, 1010, 4);
    let x = h.limit(b, Buy, 1000, 10);
    let out = h.amend(b, x, None, Some(1006));
    assert_eq!(out.result, Ok(Reply::Amended { order: x }));
    assert_eq!(prints(&out), vec![(1005, 3, s1), (1006, 4, s2)]);
    assert!(trades(&out).iter().all(|t| t.taker == x && t.taker_side == Buy));
    assert_eq!(h.best_bid(), Some((1006, 3)));
    assert_eq!(h.best_ask(), Some((1010, 4)));
    let o = h.order(x);
    assert_eq!((o.status, o.cum, o.qty, o.px), (OrderStatus::PartiallyFilled, Qty(7), Some(Qty(10)), Some(Price(1006))));
    // The taker paid its fee rounded up once over both fills.
    let taker_fees: u64 = trades(&out).iter().map(|t| t.taker_fee.0).sum();
    assert_eq!(taker_fees, fee(3 * 1005 + 4 * 1006, 20));
    h.verify_replay();
}

#[test]
fn an_amend_to_a_crossing_price_can_fill_the_order() {
    let (mut h, a, b) = two_traders();
    h.limit(a, Sell, 1005, 10);
    let x = h.limit(b, Buy, 1000, 4);
    h.submit(lim(a, Sell, 1000, 1)); // x now has 1 lot filled
    let out = h.amend(b, x, None, Some(1005));
    assert_eq!(prints(&out).iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(), vec![(1005, 3)]);
    assert_eq!(closed(&out, x), Some((OrderStatus::Filled, None)));
    assert_eq!(h.order(x).status, OrderStatus::Filled);
    assert_eq!(h.usd(b).held, 0);
    assert!(h.book().get(x).is_none());
    h.verify_replay();
}

#[test]
fn amend_qty_at_or_below_filled_is_invalid_amend() {
    let (mut h, a, b) = two_traders();
    let x = h.limit(a, Buy, 1000, 10);
    h.submit(lim(b, Sell, 1000, 4));
    for q in [0, 3, 4] {
        h.refused(
            Command::Amend { account: a, inst: h.inst, order: OrderRef::Id(x), qty: Some(Qty(q)), px: None },
            RejectCode::InvalidAmend,
        );
    }
    let out = h.amend(a, x, Some(5), None);
    assert_eq!(amended(&out), vec![(1000, 5, true)]);
    assert_eq!(h.book().get(x).unwrap().leaves, Qty(1));
    assert_eq!(h.order(x).leaves(), Qty(1));
    h.verify_replay();
}

#[test]
fn amend_needs_qty_or_px_and_a_positive_px() {
    let (mut h, a, _) = two_traders();
    let x = h.limit(a, Buy, 1000, 10);
    let y = h.limit(a, Sell, 1100, 10);
    h.refused(Command::Amend { account: a, inst: h.inst, order: OrderRef::Id(x), qty: None, px: None }, RejectCode::BadRequest);
    for id in [x, y] {
        h.refused(
            Command::Amend { account: a, inst: h.inst, order: OrderRef::Id(id), qty: None, px: Some(Price(0)) },
            RejectCode::BadRequest,
        );
    }
}

#[test]
fn amend_by_cl_id() {
    let (mut h, a, _) = two_traders();
    let x = h.place(with_cl(lim(a, Buy, 1000, 10), "mine"));
    let out = h.exec(Command::Amend { account: a, inst: h.inst, order: OrderRef::ClId("mine".into()), qty: Some(Qty(4)), px: None });
    assert_eq!(out.result, Ok(Reply::Amended { order: x }));
    assert_eq!(h.order(x).qty, Some(Qty(4)));
}

#[test]
fn an_amend_without_the_funds_is_refused_with_nothing_changed() {
    let mut h = Harness::new();
    let a = h.trader("alice", 20_000, 0);
    let x = h.limit(a, Buy, 1000, 10);
    h.refused(
        Command::Amend { account: a, inst: h.inst, order: OrderRef::Id(x), qty: Some(Qty(20)), px: None },
        RejectCode::InsufficientFunds,
    );
    h.refused(
        Command::Amend { account: a, inst: h.inst, order: OrderRef::Id(x), qty: None, px: Some(Price(2000)) },
        RejectCode::InsufficientFunds,
    );
    assert_eq!(h.usd(a).held, 10_020);
}

#[test]
fn a_post_only_amend_that_would_take_is_refused() {
    let (mut h, a, b) = two_traders();
    h.limit(a, Sell, 1005, 3);
    let x = h.place(post_only(lim(b, Buy, 1000, 1)));
    h.refused(
        Command::Amend { account: b, inst: h.inst, order: OrderRef::Id(x), qty: None, px: Some(Price(1005)) },
        RejectCode::PostOnlyWouldTake,
    );
    assert_eq!(h.queue(Buy, 1000), vec![x]);
}

#[test]
fn an_amend_outside_the_band_is_refused() {
    let mut h = Harness::with_listing(|l| l.ref_px = Some(Price(1000)));
    let a = h.trader("alice", USD, BTC);
    let x = h.limit(a, Buy, 1000, 1);
    h.refused(
        Command::Amend { account: a, inst: h.inst, order: OrderRef::Id(x), qty: None, px: Some(Price(899)) },
        RejectCode::PriceBand,
    );
}

// ---- self-trade prevention ------------------------------------------------

#[test]
fn stp_cancel_newest_cancels_the_taker_and_keeps_the_maker() {
    let (mut h, a, b) = two_traders();
    let other = h.limit(b, Sell, 1000, 3);
    let own = h.limit(a, Sell, 1000, 5);
    let out = h.submit(lim(a, Buy, 1000, 10));
    let id = placed(&out);
    assert_eq!(prints(&out), vec![(1000, 3, other)]);
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::SelfTrade))));
    assert_eq!(h.order(id).cum, Qty(3));
    assert_eq!(h.queue(Sell, 1000), vec![own]);
    assert_eq!(h.best_bid(), None);
    h.verify_replay();
}

#[test]
fn stp_cancel_oldest_cancels_the_resting_order_and_the_taker_goes_on() {
    let (mut h, a, b) = two_traders();
    let own = h.limit(a, Sell, 1000, 5);
    let other = h.limit(b, Sell, 1001, 3);
    let out = h.submit(with_stp(lim(a, Buy, 1001, 5), Stp::CancelOldest));
    let id = placed(&out);
    assert_eq!(closed(&out, own), Some((OrderStatus::Cancelled, Some(CancelReason::SelfTrade))));
    assert_eq!(prints(&out), vec![(1001, 3, other)]);
    assert_eq!(h.best_bid(), Some((1001, 2)));
    assert_eq!(h.best_ask(), None);
    assert_eq!(h.order(id).status, OrderStatus::PartiallyFilled);
    assert_eq!(h.btc(a).held, 0);
    h.verify_replay();
}

#[test]
fn stp_cancel_both_cancels_the_taker_and_the_resting_order() {
    let (mut h, a, b) = two_traders();
    let own = h.limit(a, Sell, 1000, 5);
    let other = h.limit(b, Sell, 1000, 3);
    let out = h.submit(with_stp(lim(a, Buy, 1000, 5), Stp::CancelBoth));
    let id = placed(&out);
    assert_eq!(closed(&out, own), Some((OrderStatus::Cancelled, Some(CancelReason::SelfTrade))));
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::SelfTrade))));
    assert!(trades(&out).is_empty());
    assert_eq!(h.queue(Sell, 1000), vec![other]);
    assert_eq!((h.usd(a).held, h.btc(a).held), (0, 0));
    h.verify_replay();
}

// ---- min qty, price band, instrument states -------------------------------

#[test]
fn orders_below_min_qty_are_refused() {
    let mut h = Harness::with_listing(|l| l.min_qty = Qty(5));
    let a = h.trader("alice", USD, BTC);
    h.place_refused(lim(a, Buy, 1000, 4), RejectCode::MinQty);
    h.place_refused(mkt(a, Sell, 1), RejectCode::MinQty);
    h.limit(a, Buy, 1000, 5);
}

#[test]
fn no_band_without_a_reference_price() {
    let (mut h, a, _) = two_traders();
    h.limit(a, Buy, 1, 1);
    h.limit(a, Buy, 50_000, 1);
    h.limit(a, Sell, 1_000_000_000, 1);
}

#[test]
fn the_band_is_around_ref_px_before_the_first_trade() {
    let mut h = Harness::with_listing(|l| l.ref_px = Some(Price(1000)));
    let a = h.trader("alice", USD, BTC);
    h.place_refused(lim(a, Buy, 899, 1), RejectCode::PriceBand);
    h.place_refused(lim(a, Sell, 1101, 1), RejectCode::PriceBand);
    h.limit(a, Buy, 900, 1);
    h.limit(a, Sell, 1100, 1);
}

#[test]
fn the_band_follows_the_last_trade() {
    let mut h = Harness::with_listing(|l| l.ref_px = Some(Price(1000)));
    let a = h.trader("alice", USD, BTC);
    let b = h.trader("bob", USD, BTC);
    h.limit(a, Sell, 1050, 1);
    h.submit(lim(b, Buy, 1050, 1));
    // 1050 +- 10%: 945..=1155.
    h.place_refused(lim(a, Buy, 944, 1), RejectCode::PriceBand);
    h.place_refused(lim(a, Sell, 1156, 1), RejectCode::PriceBand);
    h.limit(a, Buy, 945, 1);
    h.limit(a, Sell, 1155, 1);
}

#[test]
fn the_first_trade_sets_the_band_when_there_is_no_ref_px() {
    let (mut h, a, b) = two_traders();
    h.limit(a, Sell, 1000, 1);
    h.submit(lim(b, Buy, 1000, 1));
    h.place_refused(lim(a, Buy, 899, 1), RejectCode::PriceBand);
    h.place_refused(lim(a, Sell, 1101, 1), RejectCode::PriceBand);
    // A band-edge market buy by qty is now possible.
    h.limit(a, Sell, 1100, 1);
    let out = h.submit(mkt(b, Buy, 1));
    assert_eq!(prints(&out).len(), 1);
}

#[test]
fn cancel_only_refuses_new_orders_and_amends_and_accepts_cancels() {
    let (mut h, a, _) = two_traders();
    let x = h.limit(a, Buy, 1000, 10);
    let y = h.limit(a, Buy, 999, 10);
    h.set_state(InstrumentState::CancelOnly);
    h.place_refused(lim(a, Buy, 1000, 1), RejectCode::MarketClosed);
    h.place_refused(mkt(a, Sell, 1), RejectCode::MarketClosed);
    h.refused(
        Command::Amend { account: a, inst: h.inst, order: OrderRef::Id(x), qty: Some(Qty(5)), px: None },
        RejectCode::MarketClosed,
    );
    assert_eq!(h.cancel(a, x).result, Ok(Reply::Cancelled { order: x }));
    assert_eq!(h.cancel_all(a, None).result, Ok(Reply::CancelledAll { n: 1 }));
    assert!(h.book().get(y).is_none());
    h.set_state(InstrumentState::Trading);
    h.limit(a, Buy, 1000, 1);
    h.verify_replay();
}

#[test]
fn halted_refuses_everything_client_cancel_all_passes_over_it_and_admin_clears_it() {
    let (mut h, a, b) = two_traders();
    let x = h.limit(a, Buy, 1000, 10);
    let y = h.limit(b, Sell, 1100, 10);
    h.set_state(InstrumentState::Halted);
    h.place_refused(lim(a, Buy, 1000, 1), RejectCode::MarketClosed);
    h.refused(Command::Cancel { account: a, inst: h.inst, order: OrderRef::Id(x) }, RejectCode::MarketClosed);
    h.refused(
        Command::Amend { account: a, inst: h.inst, order: OrderRef::Id(x), qty: Some(Qty(5)), px: None },
        RejectCode::MarketClosed,
    );
    // A client's cancel-all passes over the halted book.
    let out = h.cancel_all(a, None);
    assert_eq!(out.result, Ok(Reply::CancelledAll { n: 0 }));
    assert!(h.book().get(x).is_some());
    // The operator's clears it.
    let out = h.admin_cancel_all();
    assert_eq!(out.result, Ok(Reply::CancelledAll { n: 2 }));
    assert_eq!(closed(&out, x), Some((OrderStatus::Cancelled, Some(CancelReason::Admin))));
    assert_eq!(closed(&out, y), Some((OrderStatus::Cancelled, Some(CancelReason::Admin))));
    assert_eq!(h.book().order_count(), 0);
    assert_eq!((h.usd(a).held, h.btc(b).held), (0, 0));
    h.set_state(InstrumentState::Trading);
    h.limit(a, Buy, 1000, 1);
    h.verify_replay();
}

// ---- funds ----------------------------------------------------------------

#[test]
fn insufficient_funds_leaves_balances_unchanged_and_keeps_the_cl_id() {
    let mut h = Harness::new();
    let a = h.trader("alice", 10_019, 2 * SATS_PER_LOT);
    let e = h.place_refused(with_cl(lim(a, Buy, 1000, 10), "b1"), RejectCode::InsufficientFunds);
    assert!(e.msg.contains("100.20"), "{}", e.msg);
    h.place_refused(lim(a, Sell, 1000, 3), RejectCode::InsufficientFunds);
    assert_eq!(h.usd(a), Balance { available: 10_019, held: 0 });
    h.deposit(a, h.usd, 1);
    let out = h.submit(with_cl(lim(a, Buy, 1000, 10), "b1"));
    assert!(matches!(out.result, Ok(Reply::Placed { dup: false, .. })));
    assert_eq!(h.usd(a), Balance { available: 0, held: 10_020 });
    // Funds already held are not available to another order.
    h.place_refused(lim(a, Buy, 1, 1), RejectCode::InsufficientFunds);
}

#[test]
fn deposits_and_withdrawals() {
    let mut h = Harness::new();
    let a = h.trader("alice", 0, 0);
    assert!(h.deposit(a, h.usd, 5_000).result.is_ok());
    assert_eq!(h.usd(a), Balance { available: 5_000, held: 0 });
    assert!(h.withdraw(a, h.usd, 1_000).result.is_ok());
    assert_eq!(h.usd(a).available, 4_000);
    assert_eq!(h.ex.ledger.net_deposits[&h.usd], 4_000);
    h.refused(Command::Withdraw { account: a, asset: h.usd, amount: Amount(4_001), by: OPS }, RejectCode::InsufficientFunds);
    h.refused(Command::Withdraw { account: a, asset: h.usd, amount: Amount(0), by: OPS }, RejectCode::BadRequest);
    h.refused(Command::Deposit { account: a, asset: h.usd, amount: Amount(0), by: OPS }, RejectCode::BadRequest);
    h.refused(Command::Deposit { account: a, asset: AssetId(99), amount: Amount(1), by: OPS }, RejectCode::UnknownAsset);
    h.refused(Command::Withdraw { account: a, asset: AssetId(99), amount: Amount(1), by: OPS }, RejectCode::UnknownAsset);
    // Held funds cannot be withdrawn.
    h.limit(a, Buy, 1000, 3); // holds 3006
    h.refused(Command::Withdraw { account: a, asset: h.usd, amount: Amount(1_000), by: OPS }, RejectCode::InsufficientFunds);
    assert!(h.withdraw(a, h.usd, 994).result.is_ok());
    assert_eq!(h.usd(a), Balance { available: 0, held: 3_006 });
    h.verify_replay();
}

#[test]
fn a_deposit_that_would_overflow_is_refused() {
    let mut h = Harness::new();
    let a = h.trader("alice", 0, 0);
    let b = h.trader("bob", 0, 0);
    assert!(h.deposit(a, h.usd, u64::MAX - 10).result.is_ok());
    h.refused(Command::Deposit { account: a, asset: h.usd, amount: Amount(11), by: OPS }, RejectCode::BadRequest);
    // The asset's total across accounts must fit too.
    h.refused(Command::Deposit { account: b, asset: h.usd, amount: Amount(11), by: OPS }, RejectCode::BadRequest);
    assert!(h.deposit(b, h.usd, 10).result.is_ok());
    assert_eq!(h.usd(a).available, u64::MAX - 10);
}

// ---- cl_id idempotency ----------------------------------------------------

#[test]
fn a_repeated_cl_id_returns_the_original_order_and_creates_nothing() {
    let (mut h, a, b) = two_traders();
    let x = h.place(with_cl(lim(a, Buy, 1000, 10), "same"));
    let before = h.visible();
    let out = h.submit(with_cl(lim(a, Sell, 2000, 1), "same"));
    assert_eq!(out.result, Ok(Reply::Placed { order: x, dup: true }));
    assert!(out.events.is_empty());
    assert_eq!(h.visible(), before);
    // Still a duplicate once the original is closed.
    h.cancel(a, x);
    let out = h.submit(with_cl(lim(a, Buy, 1000, 10), "same"));
    assert_eq!(out.result, Ok(Reply::Placed { order: x, dup: true }));
    assert_eq!(h.book().order_count(), 0);
    // cl_ids are per account.
    let out = h.submit(with_cl(lim(b, Buy, 1000, 10), "same"));
    assert!(matches!(out.result, Ok(Reply::Placed { dup: false, .. })));
    // A repeated cl_id is answered even when the instrument is not trading.
    h.set_state(InstrumentState::Halted);
    let out = h.submit(with_cl(lim(a, Buy, 1000, 10), "same"));
    assert_eq!(out.result, Ok(Reply::Placed { order: x, dup: true }));
}

#[test]
fn a_refused_order_does_not_use_up_its_cl_id() {
    let (mut h, a, b) = two_traders();
    h.limit(b, Sell, 1000, 5);
    // Refused by the book after the ledger accepted it.
    h.place_refused(with_cl(post_only(lim(a, Buy, 1000, 1)), "p1"), RejectCode::PostOnlyWouldTake);
    h.place_refused(with_cl(with_tif(lim(a, Buy, 1000, 6), Tif::Fok), "p1"), RejectCode::FokUnfilled);
    // Refused by the ledger.
    h.place_refused(with_cl(lim(a, Buy, 1000, 1_000_000), "p1"), RejectCode::InsufficientFunds);
    let out = h.submit(with_cl(lim(a, Buy, 999, 1), "p1"));
    let id = placed(&out);
    assert_eq!(out.result, Ok(Reply::Placed { order: id, dup: false }));
    assert_eq!(h.ex.ledger.order_by_cl_id(a, "p1"), Some(id));
    h.verify_replay();
}

/// Every account's `cl_id`s are forgotten in the order used once the
/// window has passed, whichever account's order comes next: an idle
/// account's closed orders leave the ledger, its open order stays (named
/// by its id only), and replay and a snapshot round trip agree.
#[test]
fn the_window_forgets_every_accounts_cl_ids_in_the_order_used() {
    let (mut h, a, b) = two_traders();
    let open = h.place(with_cl(lim(a, Buy, 1000, 1), "a1"));
    let gone = h.place(with_cl(lim(a, Buy, 999, 1), "a2"));
    h.cancel(a, gone).result.expect("cancelled");
    h.ts += 10;
    let kept = h.place(with_cl(lim(a, Buy, 998, 1), "a3"));
    assert_eq!(h.ex.ledger.order_by_cl_id(a, "a2"), Some(gone), "remembered while closed");
    // Past the window for a1 and a2, not for a3 (10 us younger).
    h.ts += bourse_engine::ledger::CL_ID_WINDOW_US - 5;
    h.place(with_cl(lim(b, Sell, 2000, 1), "b1"));
    assert_eq!(h.ex.ledger.order_by_cl_id(a, "a1"), None);
    assert_eq!(h.ex.ledger.order_by_cl_id(a, "a2"), None);
    assert!(h.ex.ledger.order(gone).is_none(), "a closed order leaves with its cl_id");
    assert!(h.ex.ledger.order(open).is_some_and(|o| o.status.is_open()), "an open one stays");
    assert_eq!(h.ex.ledger.order_by_cl_id(a, "a3"), Some(kept));
    h.refused(Command::Cancel { account: a, inst: h.inst, order: OrderRef::ClId("a1".into()) }, RejectCode::UnknownOrder);
    // Its cl_id is free again; the old order is still cancelled by id.
    let again = h.place(with_cl(lim(a, Buy, 997, 1), "a1"));
    assert_ne!(again, open);
    h.ex.check();
    h.verify_replay();
    h.cancel(a, open).result.expect("cancelled by id");
    h.verify_replay();
}

/// An order open for longer than the `cl_id` window can no longer be named
/// by its `cl_id` once that is forgotten; the `cl_id` may then name a new
/// order, which a cancel by `cl_id` finds, also after a snapshot round trip.
#[test]
fn a_cl_id_forgotten_while_its_order_is_open_names_only_a_new_order() {
    let (mut h, a, _) = two_traders();
    let old = h.place(with_cl(lim(a, Buy, 1000, 1), "keep"));
    h.ts += bourse_engine::ledger::CL_ID_WINDOW_US + 1;
    // Forgotten when the account's next order is accepted.
    h.place(with_cl(lim(a, Buy, 999, 1), "next"));
    let by_cl = |h: &Harness| Command::Cancel { account: a, inst: h.inst, order: OrderRef::ClId("keep".into()) };
    h.refused(by_cl(&h), RejectCode::UnknownOrder);
    let new = h.place(with_cl(lim(a, Buy, 998, 1), "keep"));
    assert_ne!(new, old);
    let back = Exchange::decode_snapshot(&h.ex.encode_snapshot()).expect("snapshot decodes");
    back.check();
    assert_eq!(back.ledger.open_order_by_cl_id(a, "keep"), Some(new));
    let out = h.cancel_cl(a, "keep");
    assert_eq!(out.result, Ok(Reply::Cancelled { order: new }));
    assert!(h.book().get(old).is_some(), "the old order still rests");
    h.refused(by_cl(&h), RejectCode::UnknownOrder);
    h.verify_replay();
}

/// An account with more open orders than its record holds is looked up
/// by `cl_id` too, and again once it is back below that.
#[test]
fn cancel_by_cl_id_with_more_open_orders_than_the_account_record_holds() {
    let (mut h, a, _) = two_traders();
    let n = bourse_engine::openset::OPEN_INLINE_MAX as u64 + 8;
    let ids: Vec<OrderId> = (0..n).map(|k| h.place(with_cl(lim(a, Buy, 900 + k, 1), &format!("m{k}")))).collect();
    let out = h.cancel_cl(a, "m3");
    assert_eq!(out.result, Ok(Reply::Cancelled { order: ids[3] }));
    for id in &ids[4..30] {
        h.cancel(a, *id);
    }
    let out = h.cancel_cl(a, &format!("m{}", n - 1));
    assert_eq!(out.result, Ok(Reply::Cancelled { order: ids[n as usize - 1] }));
    let out = h.cancel_cl(a, "m1");
    assert_eq!(out.result, Ok(Reply::Cancelled { order: ids[1] }));
    h.verify_replay();
}

#[test]
fn a_malformed_cl_id_is_bad_request() {
    let (mut h, a, _) = two_traders();
    h.place_refused(with_cl(lim(a, Buy, 1000, 1), "has space"), RejectCode::BadRequest);
    // A cl_id too long to hold reaches the engine empty, and is refused.
    assert!(ClId::new(&"x".repeat(37)).is_none());
    h.refused(Command::Place(lim(a, Buy, 1000, 1)), RejectCode::BadRequest);
    h.place(with_cl(lim(a, Buy, 1000, 1), &"x".repeat(36)));
}

#[test]
fn an_unknown_instrument_is_refused() {
    let (mut h, a, _) = two_traders();
    let mut c = lim(a, Buy, 1000, 1);
    c.inst = InstrumentId(5);
    h.place_refused(c.clone(), RejectCode::UnknownInstrument);
    c.inst = InstrumentId(0);
    h.place_refused(c, RejectCode::UnknownInstrument);
}

// ---- scale ----------------------------------------------------------------

#[test]
fn a_sweep_of_5000_fills_at_one_price() {
    let mut h = Harness::new();
    h.hash_every_command = false;
    h.check_every = 1_000;
    let m = h.trader("maker", 0, 5_000 * SATS_PER_LOT);
    let t = h.trader("taker", USD, 0);
    let makers: Vec<OrderId> = (0..5_000).map(|_| h.limit(m, Sell, 1000, 1)).collect();
    h.check_every = 1;
    assert_eq!(h.best_ask(), Some((1000, 5_000)));
    let out = h.submit(lim(t, Buy, 1000, 5_000));
    let id = placed(&out);
    let tr = trades(&out);
    assert_eq!(tr.len(), 5_000);
    assert_eq!(tr.iter().map(|t| t.maker).collect::<Vec<_>>(), makers);
    assert_eq!(tr.iter().map(|t| t.trade_id).collect::<Vec<_>>(), (1..=5_000).collect::<Vec<u64>>());
    assert!(tr.iter().all(|t| t.px == Price(1000) && t.qty == Qty(1)));
    assert_eq!(h.order(id).status, OrderStatus::Filled);
    assert_eq!((h.best_bid(), h.best_ask()), (None, None));
    // Each maker pays 0.1 cent rounded up; the taker 0.2 cent per lot, rounded once.
    assert_eq!(tr.iter().map(|t| t.maker_fee.0).sum::<u64>(), 5_000);
    assert_eq!(tr.iter().map(|t| t.taker_fee.0).sum::<u64>(), 10_000);
    assert_eq!(h.fees(), 15_000);
    assert_eq!(h.usd(t), Balance { available: USD - 5_000_000 - 10_000, held: 0 });
    assert_eq!(h.usd(m), Balance { available: 5_000_000 - 5_000, held: 0 });
    assert_eq!(h.btc(t).available, 5_000 * SATS_PER_LOT);
    h.verify_replay();
}

#[test]
fn values_near_the_integer_ceiling_are_exact_or_refused_never_wrapped() {
    let mut h = Harness::new();
    let whale = h.trader("whale", u64::MAX / 2, u64::MAX / 2);
    let other = h.trader("other", u64::MAX / 4, u64::MAX / 4);
    // Notionals that do not fit in u64 are refused.
    h.place_refused(lim(whale, Buy, 1 << 63, 2), RejectCode::BadRequest);
    h.place_refused(lim(whale, Buy, 1 << 32, 1 << 32), RejectCode::BadRequest);
    // A notional that fits but whose worst-case fee pushes the hold past u64.
    h.place_refused(lim(whale, Buy, u64::MAX, 1), RejectCode::BadRequest);
    h.place_refused(lim(whale, Buy, u64::MAX - 1, 1), RejectCode::BadRequest);
    // Base amounts that do not fit are refused.
    h.place_refused(lim(whale, Sell, 1000, u64::MAX), RejectCode::BadRequest);
    h.place_refused(mkt(whale, Sell, u64::MAX / SATS_PER_LOT + 1), RejectCode::BadRequest);

    // A sell at the top price rests (no band yet); no budget buys a lot of it.
    let top = h.limit(other, Sell, u64::MAX, 1);
    assert_eq!(h.best_ask(), Some((u64::MAX, 1)));
    h.place_refused(mkt_quote(whale, u64::MAX / 4), RejectCode::InsufficientFunds);

    // Large values that fit trade exactly: 2^31 lots at 2^31 ticks = 2^62 cents.
    let (px, qty) = (1u64 << 31, 1u64 << 31);
    let notional = px * qty;
    let ask = h.limit(other, Sell, px, qty);
    let out = h.submit(lim(whale, Buy, px, qty));
    let t = &trades(&out)[0];
    assert_eq!((t.maker, t.px.0, t.qty.0), (ask, px, qty));
    assert_eq!(t.maker_fee.0, fee128(notional, 10));
    assert_eq!(t.taker_fee.0, fee128(notional, 20));
    assert_eq!(h.usd(other).available, u64::MAX / 4 + notional - fee128(notional, 10));
    assert_eq!(h.usd(whale), Balance { available: u64::MAX / 2 - notional - fee128(notional, 20), held: 0 });
    assert_eq!(h.btc(whale).available, u64::MAX / 2 + qty * SATS_PER_LOT);
    assert_eq!(h.fees(), fee128(notional, 10) + fee128(notional, 20));
    assert_eq!(h.best_ask(), Some((u64::MAX, 1)));

    // The top ask is now outside the band: a quote buy stops at the band edge.
    let out = h.submit(mkt_quote(whale, u64::MAX / 8));
    let id = placed(&out);
    assert_eq!(closed(&out, id), Some((OrderStatus::Cancelled, Some(CancelReason::PriceBand))));
    assert_eq!(h.queue(Sell, u64::MAX), vec![top]);

    // Amending to a quantity whose value overflows is refused.
    let bid = h.limit(whale, Buy, px, 1);
    h.refused(
        Command::Amend { account: whale, inst: h.inst, order: OrderRef::Id(bid), qty: Some(Qty(u64::MAX)), px: None },
        RejectCode::BadRequest,
    );
    let sell = h.limit(other, Sell, px + 1, 1);
    h.refused(
        Command::Amend { account: other, inst: h.inst, order: OrderRef::Id(sell), qty: Some(Qty(u64::MAX)), px: None },
        RejectCode::BadRequest,
    );
    h.verify_replay();
}

fn fee128(notional: u64, bps: u128) -> u64 {
    ((notional as u128 * bps).div_ceil(10_000)) as u64
}
