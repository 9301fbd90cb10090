//! Assets and instruments: their scales and grids, and the integer arithmetic
//! that turns ticks and lots into amounts (notional, fees, holds, band edges).
//!
//! An instrument's price is counted in ticks and its quantity in lots. The
//! instrument is only listed when `tick x lot` is exact at the quote asset's
//! scale and `lot` is exact at the base asset's scale, so a notional is an
//! integer number of quote units and is never rounded; only fees round, up.

use serde::{Deserialize, Serialize};

use crate::types::{Amount, AssetId, InstrumentId, InstrumentState, Price, Qty, Side};

/// Basis points in one whole.
pub const BPS_ONE: u64 = 10_000;
/// The highest fee an instrument may charge: 10%.
pub const FEE_BPS_MAX: u32 = 1_000;
/// The widest price band: 100% (a band of 100% still keeps prices above zero).
pub const BAND_PCT_MAX: u32 = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetSpec {
    pub id: AssetId,
    pub name: String,
    /// Digits after the point of the asset's amounts (2 for USD cents).
    pub scale: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentSpec {
    pub id: InstrumentId,
    pub sym: String,
    pub base: AssetId,
    pub quote: AssetId,
    /// The tick, in units of `10^-price_scale` of the quote asset.
    pub tick_raw: u64,
    /// The lot, in units of `10^-qty_scale` of the base asset.
    pub lot_raw: u64,
    pub price_scale: u32,
    pub qty_scale: u32,
    /// The smallest order, in lots.
    pub min_qty: Qty,
    /// Reference price before the first trade; no band while there is none.
    pub ref_px: Option<Price>,
    /// Width of the price band around the reference price, in percent.
    pub band_pct: u32,
    pub maker_fee_bps: u32,
    pub taker_fee_bps: u32,
    /// Quote units (at the quote asset's scale) of one tick times one lot.
    pub quote_per_tick_lot: u64,
    /// Base units (at the base asset's scale) in one lot.
    pub base_per_lot: u64,
    pub state: InstrumentState,
}

/// 10^n, checked.
pub fn pow10(n: u32) -> Option<u64> {
    10u64.checked_pow(n)
}

impl InstrumentSpec {
    /// Builds a spec, checking that the grids are exact at the assets' scales.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: InstrumentId,
        sym: &str,
        base: &AssetSpec,
        quote: &AssetSpec,
        tick_raw: u64,
        price_scale: u32,
        lot_raw: u64,
        qty_scale: u32,
        min_qty: Qty,
        ref_px: Option<Price>,
        band_pct: u32,
        maker_fee_bps: u32,
        taker_fee_bps: u32,
    ) -> Result<Self, String> {
        if tick_raw == 0 || lot_raw == 0 {
            return Err("tick and lot must be positive".into());
        }
        if min_qty.0 == 0 {
            return Err("min_qty must be at least one lot".into());
        }
        if maker_fee_bps > FEE_BPS_MAX || taker_fee_bps > FEE_BPS_MAX {
            return Err(format!("fees above {FEE_BPS_MAX} bps are not allowed"));
        }
        if ref_px == Some(Price(0)) {
            return Err("ref_px must be positive".into());
        }
        if band_pct == 0 || band_pct > BAND_PCT_MAX {
            return Err(format!("band_pct must be 1..={BAND_PCT_MAX}"));
        }
        if price_scale > quote.scale {
            return Err(format!(
                "tick has {price_scale} decimals, more than {} allows ({})",
                quote.name, quote.scale
            ));
        }
        if qty_scale > base.scale {
            return Err(format!(
                "lot has {qty_scale} decimals, more than {} allows ({})",
                base.name, base.scale
            ));
        }
        let base_per_lot = pow10(base.scale - qty_scale)
            .and_then(|p| p.checked_mul(lot_raw))
            .ok_or("lot overflows the base asset's range")?;
        // tick x lot in quote units: tick_raw * lot_raw * 10^(quote.scale - price_scale - qty_scale).
        let prod = (tick_raw as u128) * (lot_raw as u128);
        let shift = quote.scale as i64 - price_scale as i64 - qty_scale as i64;
        let quote_per_tick_lot = if shift >= 0 {
            prod.checked_mul(10u128.pow(shift as u32))
        } else {
            let d = 10u128.pow((-shift) as u32);
            if !prod.is_multiple_of(d) {
                return Err(format!(
                    "tick x lot is not exact at {}'s scale of {}",
                    quote.name, quote.scale
                ));
            }
            Some(prod / d)
        };
        let quote_per_tick_lot = quote_per_tick_lot
            .and_then(|v| u64::try_from(v).ok())
            .ok_or("tick x lot overflows")?;
        Ok(InstrumentSpec {
            id,
            sym: sym.to_string(),
            base: base.id,
            quote: quote.id,
            tick_raw,
            lot_raw,
            price_scale,
            qty_scale,
            min_qty,
            ref_px,
            band_pct,
            maker_fee_bps,
            taker_fee_bps,
            quote_per_tick_lot,
            base_per_lot,
            state: InstrumentState::Trading,
        })
    }

    /// Quote amount of `qty` lots at `px` ticks; `None` on overflow.
    pub fn notional(&self, px: Price, qty: Qty) -> Option<Amount> {
        let v = (px.0 as u128).checked_mul(qty.0 as u128)?.checked_mul(self.quote_per_tick_lot as u128)?;
        u64::try_from(v).ok().map(Amount)
    }

    /// Base amount of `qty` lots; `None` on overflow.
    pub fn base_amount(&self, qty: Qty) -> Option<Amount> {
        qty.0.checked_mul(self.base_per_lot).map(Amount)
    }

    /// The larger of the two fee rates: what a buy reserves for.
    pub fn fee_bps_max(&self) -> u32 {
        self.maker_fee_bps.max(self.taker_fee_bps)
    }

    /// The band `[low, high]` around `reference`, in ticks (low at least one tick).
    pub fn band(&self, reference: Price) -> (Price, Price) {
        let pct = self.band_pct as u64;
        // In 64 bits when both products fit (band_pct is at most 100).
        if let (Some(lo), Some(hi)) = (reference.0.checked_mul(100 - pct), reference.0.checked_mul(100 + pct)) {
            return (Price(lo.div_ceil(100).max(1)), Price(hi / 100));
        }
        let r = reference.0 as u128;
        let pct = self.band_pct as u128;
        let low = (r * (100 - pct)).div_ceil(100);
        let high = r * (100 + pct) / 100;
        (
            Price(low.max(1) as u64),
            Price(u64::try_from(high).unwrap_or(u64::MAX)),
        )
    }

    /// What an order on `side` at `px` with `leaves` lots and fee account
    /// `acc` can still need: for a buy, [`InstrumentSpec::buy_need`]; for a
    /// sell, its leaves in the base asset. A resting order holds at least
    /// this; holds are added and released against it.
    pub fn hold_need(&self, side: Side, px: Price, leaves: Qty, acc: FeeAcc) -> Option<Amount> {
        match side {
            Side::Sell => self.base_amount(leaves),
            Side::Buy => self.buy_need(px, leaves, acc),
        }
    }

    /// Quote needed to buy `qty` at `px` with a fee account `acc` at the
    /// worst-case rate: the notional plus what the fees could still add.
    pub fn buy_need(&self, px: Price, qty: Qty, acc: FeeAcc) -> Option<Amount> {
        let n = self.notional(px, qty)?;
        let more = acc.with(n, self.fee_bps_max())?;
        n.0.checked_add(more.0).map(Amount)
    }
}

/// Fees accumulated by one order. An order's fills are charged so that its
/// total fee is its total notional x bps / 10000 rounded up once: each fill
/// pays the difference. A fill therefore never pays more than its own
/// notional x bps / 10000 rounded up, and a buy's reservation (made at the
/// worst-case rate on the whole quantity) always covers what it will pay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeAcc {
    /// Sum over fills of notional x bps.
    pub numer: u128,
    /// Fees charged so far.
    pub paid: u64,
}

impl FeeAcc {
    /// The fee a fill of `notional` at `bps` pays, and the accumulator after it.
    pub fn charge(self, notional: Amount, bps: u32) -> Option<(Amount, FeeAcc)> {
        let numer = self
            .numer
            .checked_add((notional.0 as u128) * (bps as u128))?;
        // A 64-bit division when the sum fits (the 128-bit one is a call).
        let total = match u64::try_from(numer) {
            Ok(n) => n.div_ceil(BPS_ONE),
            Err(_) => u64::try_from(numer.div_ceil(BPS_ONE as u128)).ok()?,
        };
        let fee = total.checked_sub(self.paid)?;
        Some((Amount(fee), FeeAcc { numer, paid: total }))
    }

    /// What a further `notional` at `bps` could add in fees.
    pub fn with(self, notional: Amount, bps: u32) -> Option<Amount> {
        self.charge(notional, bps).map(|(f, _)| f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> AssetSpec {
        AssetSpec { id: AssetId(1), name: "USD".into(), scale: 2 }
    }
    fn btc() -> AssetSpec {
        AssetSpec { id: AssetId(2), name: "BTC".into(), scale: 8 }
    }

    #[test]
    fn grid_exactness_is_checked() {
        // tick 0.50 USD (scale 1 -> 5), lot 0.0001 BTC (scale 4 -> 1): 0.00005 USD is not exact in cents.
        let e = InstrumentSpec::new(InstrumentId(1), "BTC-USD", &btc(), &usd(), 5, 1, 1, 4, Qty(1), None, 10, 0, 0);
        assert!(e.is_err());
        // tick 0.01 USD, lot 1 BTC: 1 cent per tick-lot.
        let s = InstrumentSpec::new(InstrumentId(1), "BTC-USD", &btc(), &usd(), 1, 2, 1, 0, Qty(1), None, 10, 0, 0).unwrap();
        assert_eq!(s.quote_per_tick_lot, 1);
        assert_eq!(s.base_per_lot, 100_000_000);
        // lot with more decimals than the base asset.
        assert!(InstrumentSpec::new(InstrumentId(1), "X", &usd(), &usd(), 1, 2, 1, 3, Qty(1), None, 10, 0, 0).is_err());
    }

    #[test]
    fn fees_round_up_once_per_order() {
        let acc = FeeAcc::default();
        // 1 unit at 10 bps -> 0.001 rounds up to 1.
        let (f1, acc) = acc.charge(Amount(1), 10).unwrap();
        assert_eq!(f1, Amount(1));
        // Another 1 unit: total numer 20 -> ceil(0.002) = 1, so this fill pays 0.
        let (f2, acc) = acc.charge(Amount(1), 10).unwrap();
        assert_eq!(f2, Amount(0));
        let (f3, _) = acc.charge(Amount(10_000), 10).unwrap();
        assert_eq!(f3, Amount(10));
    }

    #[test]
    fn band_edges() {
        let s = InstrumentSpec::new(InstrumentId(1), "BTC-USD", &btc(), &usd(), 1, 2, 1, 0, Qty(1), Some(Price(1000)), 10, 0, 0).unwrap();
        assert_eq!(s.band(Price(1000)), (Price(900), Price(1100)));
        assert_eq!(s.band(Price(15)), (Price(14), Price(16)));
        assert_eq!(s.band(Price(1)), (Price(1), Price(1)));
        // References whose products pass 64 bits take the 128-bit path.
        for r in [u64::MAX / 90, u64::MAX / 110, u64::MAX / 110 + 1, u64::MAX / 2, u64::MAX] {
            let (lo, hi) = s.band(Price(r));
            let r = r as u128;
            assert_eq!(lo.0 as u128, (r * 90).div_ceil(100));
            assert_eq!(hi.0 as u128, (r * 110 / 100).min(u64::MAX as u128));
        }
    }

    #[test]
    fn fees_past_64_bits_round_the_same() {
        // Sums of notional x bps past u64 take the 128-bit division.
        let big = Amount(u64::MAX / 3);
        let (f1, acc) = FeeAcc::default().charge(big, 1_000).unwrap();
        assert_eq!(f1.0 as u128, ((big.0 as u128) * 1_000).div_ceil(10_000));
        assert!(acc.numer > u64::MAX as u128);
        let (f2, acc2) = acc.charge(Amount(7), 1_000).unwrap();
        assert_eq!(f2.0 as u128 + f1.0 as u128, (acc.numer + 7_000).div_ceil(10_000));
        assert_eq!(acc2.paid, f1.0 + f2.0);
        // Just below: the 64-bit path.
        let (f, _) = FeeAcc::default().charge(Amount(12_345), 7).unwrap();
        assert_eq!(f, Amount((12_345u64 * 7).div_ceil(10_000)));
    }
}
