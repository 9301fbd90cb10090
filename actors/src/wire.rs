//! Translation between the engine's integers (ticks, lots, smallest units)
//! and the wire's exact decimal strings and enums. The engine never sees a
//! string; clients never see a tick.

use bourse_engine::ledger::{Fill, Ledger, Liquidity, OrderState};
use bourse_engine::spec::InstrumentSpec;
use bourse_engine::{self as eng, Amount, Price, Qty, Reject, RejectCode};
use bourse_protocol::decimal;
use bourse_protocol::msg as p;
use bourse_protocol::{ErrorBody, ErrorCode};

pub fn px(spec: &InstrumentSpec, s: &str) -> Result<Price, ErrorBody> {
    decimal::parse_on_grid(s, spec.price_scale, spec.tick_raw)
        .map(Price)
        .map_err(|e| ErrorBody::new(e.code_for_price(), format!("px {s:?}: {e} (tick {})", fmt_tick(spec))))
}

pub fn qty(spec: &InstrumentSpec, s: &str) -> Result<Qty, ErrorBody> {
    decimal::parse_on_grid(s, spec.qty_scale, spec.lot_raw)
        .map(Qty)
        .map_err(|e| ErrorBody::new(e.code_for_qty(), format!("qty {s:?}: {e} (lot {})", fmt_lot(spec))))
}

pub fn amount(scale: u32, s: &str) -> Result<Amount, ErrorBody> {
    decimal::parse(s, scale)
        .map(Amount)
        .map_err(|e| ErrorBody::new(e.code_for_amount(), format!("amount {s:?}: {e}")))
}

pub fn fmt_px(spec: &InstrumentSpec, p: Price) -> String {
    decimal::format(p.0.saturating_mul(spec.tick_raw), spec.price_scale)
}

pub fn fmt_qty(spec: &InstrumentSpec, q: Qty) -> String {
    decimal::format(q.0.saturating_mul(spec.lot_raw), spec.qty_scale)
}

pub fn fmt_tick(spec: &InstrumentSpec) -> String {
    decimal::format(spec.tick_raw, spec.price_scale)
}

pub fn fmt_lot(spec: &InstrumentSpec) -> String {
    decimal::format(spec.lot_raw, spec.qty_scale)
}

pub fn fmt_amount(ledger: &Ledger, asset: eng::AssetId, a: u64) -> String {
    let scale = ledger.assets.get(&asset).map_or(0, |a| a.scale);
    decimal::format(a, scale)
}

pub fn side(s: p::Side) -> eng::Side {
    match s {
        p::Side::Buy => eng::Side::Buy,
        p::Side::Sell => eng::Side::Sell,
    }
}

pub fn side_out(s: eng::Side) -> p::Side {
    match s {
        eng::Side::Buy => p::Side::Buy,
        eng::Side::Sell => p::Side::Sell,
    }
}

pub fn kind(t: p::OrderType) -> eng::OrderType {
    match t {
        p::OrderType::Limit => eng::OrderType::Limit,
        p::OrderType::Market => eng::OrderType::Market,
    }
}

pub fn tif(t: p::Tif) -> eng::Tif {
    match t {
        p::Tif::Gtc => eng::Tif::Gtc,
        p::Tif::Ioc => eng::Tif::Ioc,
        p::Tif::Fok => eng::Tif::Fok,
    }
}

pub fn stp(s: p::Stp) -> eng::Stp {
    match s {
        p::Stp::CancelNewest => eng::Stp::CancelNewest,
        p::Stp::CancelOldest => eng::Stp::CancelOldest,
        p::Stp::CancelBoth => eng::Stp::CancelBoth,
    }
}

pub fn role(r: p::Role) -> eng::Role {
    match r {
        p::Role::Trader => eng::Role::Trader,
        p::Role::Operator => eng::Role::Operator,
        p::Role::Viewer => eng::Role::Viewer,
    }
}

pub fn role_out(r: eng::Role) -> p::Role {
    match r {
        eng::Role::Trader => p::Role::Trader,
        eng::Role::Operator => p::Role::Operator,
        eng::Role::Viewer => p::Role::Viewer,
    }
}

pub fn status(s: eng::OrderStatus) -> p::OrderStatus {
    match s {
        eng::OrderStatus::New => p::OrderStatus::New,
        eng::OrderStatus::PartiallyFilled => p::OrderStatus::PartiallyFilled,
        eng::OrderStatus::Filled => p::OrderStatus::Filled,
        eng::OrderStatus::Cancelled => p::OrderStatus::Cancelled,
    }
}

pub fn reason(r: eng::CancelReason) -> p::CancelReason {
    match r {
        eng::CancelReason::User => p::CancelReason::User,
        eng::CancelReason::Admin => p::CancelReason::Admin,
        eng::CancelReason::Ioc => p::CancelReason::Ioc,
        eng::CancelReason::Market => p::CancelReason::Market,
        eng::CancelReason::PriceBand => p::CancelReason::PriceBand,
        eng::CancelReason::SelfTrade => p::CancelReason::SelfTrade,
    }
}

pub fn state_out(s: eng::InstrumentState) -> p::InstrumentState {
    match s {
        eng::InstrumentState::Trading => p::InstrumentState::Trading,
        eng::InstrumentState::CancelOnly => p::InstrumentState::CancelOnly,
        eng::InstrumentState::Halted => p::InstrumentState::Halted,
    }
}

pub fn code(c: RejectCode) -> ErrorCode {
    match c {
        RejectCode::BadRequest => ErrorCode::BadRequest,
        RejectCode::UnknownInstrument => ErrorCode::UnknownInstrument,
        RejectCode::UnknownAsset => ErrorCode::UnknownAsset,
        RejectCode::AlreadyExists => ErrorCode::AlreadyExists,
        RejectCode::InsufficientFunds => ErrorCode::InsufficientFunds,
        RejectCode::PriceTick => ErrorCode::PriceTick,
        RejectCode::LotSize => ErrorCode::LotSize,
        RejectCode::MinQty => ErrorCode::MinQty,
        RejectCode::PriceBand => ErrorCode::PriceBand,
        RejectCode::PostOnlyWouldTake => ErrorCode::PostOnlyWouldTake,
        RejectCode::FokUnfilled => ErrorCode::FokUnfilled,
        RejectCode::MarketClosed => ErrorCode::MarketClosed,
        RejectCode::UnknownOrder => ErrorCode::UnknownOrder,
        RejectCode::InvalidAmend => ErrorCode::InvalidAmend,
        RejectCode::TooManyOpenOrders => ErrorCode::TooManyOpenOrders,
    }
}

pub fn reject(r: &Reject) -> ErrorBody {
    ErrorBody::new(code(r.code), r.msg.clone())
}

pub fn order_view(ledger: &Ledger, o: &OrderState) -> p::OrderView {
    let spec = &ledger.instruments[&o.inst];
    let qty = o.qty.unwrap_or(o.cum);
    p::OrderView {
        order_id: o.id.0,
        cl_id: o.cl_id.to_string(),
        sym: spec.sym.clone(),
        side: side_out(o.side),
        order_type: match o.kind {
            eng::OrderType::Limit => p::OrderType::Limit,
            eng::OrderType::Market => p::OrderType::Market,
        },
        tif: match o.tif {
            eng::Tif::Gtc => p::Tif::Gtc,
            eng::Tif::Ioc => p::Tif::Ioc,
            eng::Tif::Fok => p::Tif::Fok,
        },
        post_only: o.post_only,
        px: o.px.map(|x| fmt_px(spec, x)),
        qty: fmt_qty(spec, qty),
        quote_qty: None,
        cum_qty: fmt_qty(spec, o.cum),
        leaves_qty: fmt_qty(spec, o.leaves()),
        status: status(o.status),
        reason: o.reason.map(reason),
        ts: o.ts,
    }
}

pub fn fill_view(ledger: &Ledger, f: &Fill, cl_id: &str) -> p::FillView {
    let spec = &ledger.instruments[&f.inst];
    p::FillView {
        fill_id: f.fill_id,
        trade_id: f.trade_id,
        order_id: f.order.0,
        cl_id: cl_id.to_string(),
        sym: spec.sym.clone(),
        side: side_out(f.side),
        px: fmt_px(spec, f.px),
        qty: fmt_qty(spec, f.qty),
        fee: fmt_amount(ledger, spec.quote, f.fee.0),
        fee_asset: ledger.assets[&spec.quote].name.clone(),
        liq: match f.liq {
            Liquidity::Maker => p::Liquidity::Maker,
            Liquidity::Taker => p::Liquidity::Taker,
        },
        ts: f.ts,
    }
}

pub fn instrument_view(ledger: &Ledger, spec: &InstrumentSpec) -> p::InstrumentView {
    p::InstrumentView {
        sym: spec.sym.clone(),
        base: ledger.assets[&spec.base].name.clone(),
        quote: ledger.assets[&spec.quote].name.clone(),
        tick: fmt_tick(spec),
        lot: fmt_lot(spec),
        min_qty: fmt_qty(spec, spec.min_qty),
        price_scale: spec.price_scale,
        qty_scale: spec.qty_scale,
        band_pct: spec.band_pct,
        maker_fee_bps: spec.maker_fee_bps,
        taker_fee_bps: spec.taker_fee_bps,
        state: state_out(spec.state),
    }
}

pub fn balances(ledger: &Ledger, account: eng::AccountId) -> Vec<p::BalanceView> {
    ledger
        .assets
        .values()
        .map(|a| {
            let b = ledger.balance(account, a.id);
            p::BalanceView {
                asset: a.name.clone(),
                available: decimal::format(b.available, a.scale),
                held: decimal::format(b.held, a.scale),
            }
        })
        .collect()
}
