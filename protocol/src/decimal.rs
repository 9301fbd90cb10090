//! Exact fixed-scale decimals: the only way a price, quantity, balance or fee
//! crosses the wire.
//!
//! On the wire a decimal is a string of digits with at most one point
//! (`"30001.50"`). Inside the exchange it is a `u64` count of raw units at a
//! fixed scale: `"30001.5"` at scale 2 is `3000150`. This module owns the
//! conversion in both directions and the grid check (tick, lot), and never
//! touches floating point.
//!
//! Input rules (PROTOCOL.md section 1): digits, then optionally a point and
//! more digits. At least one digit before the point and, when a point is
//! present, at least one after it (`"5"`, `"0.5"` are valid; `".5"`, `"5."`
//! are not). No sign, exponent, whitespace or separators. Fewer fractional
//! digits than the scale are fine; more are [`DecimalError::TooPrecise`],
//! even when the extra digits are zeros, because the wire scale is exact.

use crate::error::ErrorCode;

/// The largest scale an asset or instrument may use: one whole unit at this
/// scale (10^18 raw units) still leaves room in a `u64` for 18 whole units,
/// and 10^19 would not fit at all.
pub const SCALE_MAX: u32 = 18;

/// The longest decimal string accepted. A `u64` has at most 20 digits; the
/// extra room covers the point and leading zeros, and bounds the work spent
/// on hostile input before overflow is detected.
pub const DECIMAL_LEN_MAX: usize = 64;

/// Why a decimal string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not digits with at most one point (sign, exponent, whitespace, empty, ...).
    #[error("malformed decimal")]
    Malformed,
    /// More fractional digits than the scale allows.
    #[error("more decimals than the scale allows")]
    TooPrecise,
    /// The value does not fit in 64 bits of raw units.
    #[error("decimal out of range")]
    Overflow,
    /// The value is not a whole multiple of the step (tick or lot).
    #[error("value is not a multiple of the step")]
    OffGrid,
}

impl DecimalError {
    /// The error code for a bad price: precision and grid problems are
    /// `price_tick`, anything else `bad_request`.
    pub fn code_for_price(self) -> ErrorCode {
        match self {
            DecimalError::TooPrecise | DecimalError::OffGrid => ErrorCode::PriceTick,
            DecimalError::Malformed | DecimalError::Overflow => ErrorCode::BadRequest,
        }
    }

    /// The error code for a bad quantity: precision and grid problems are
    /// `lot_size`, anything else `bad_request`.
    pub fn code_for_qty(self) -> ErrorCode {
        match self {
            DecimalError::TooPrecise | DecimalError::OffGrid => ErrorCode::LotSize,
            DecimalError::Malformed | DecimalError::Overflow => ErrorCode::BadRequest,
        }
    }

    /// The error code for a bad asset amount (deposit, withdrawal,
    /// `quote_qty`): always `bad_request`.
    pub fn code_for_amount(self) -> ErrorCode {
        ErrorCode::BadRequest
    }
}

/// Splits a decimal string into its integer and fractional digit runs,
/// checking the syntax only.
fn split(s: &str) -> Result<(&[u8], &[u8]), DecimalError> {
    if s.is_empty() || s.len() > DECIMAL_LEN_MAX {
        return Err(DecimalError::Malformed);
    }
    let b = s.as_bytes();
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(p) => {
            let frac = &b[p + 1..];
            if frac.is_empty() {
                return Err(DecimalError::Malformed);
            }
            (&b[..p], frac)
        }
        None => (b, &b[..0]),
    };
    if int.is_empty() || !int.iter().all(u8::is_ascii_digit) || !frac.iter().all(u8::is_ascii_digit)
    {
        // A second point lands in `frac` and fails the digit check.
        return Err(DecimalError::Malformed);
    }
    Ok((int, frac))
}

/// Parses a wire decimal into raw units at `scale`.
///
/// `parse("30001.5", 2) == Ok(3000150)`, `parse("7", 4) == Ok(70000)`.
pub fn parse(s: &str, scale: u32) -> Result<u64, DecimalError> {
    let (int, frac) = split(s)?;
    if frac.len() > scale as usize {
        return Err(DecimalError::TooPrecise);
    }
    let mut v: u64 = 0;
    for &c in int.iter().chain(frac) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(DecimalError::Overflow)?;
    }
    // `frac.len() <= scale`, so this pads the missing fractional digits.
    for _ in frac.len()..scale as usize {
        if v == 0 {
            break;
        }
        v = v.checked_mul(10).ok_or(DecimalError::Overflow)?;
    }
    Ok(v)
}

/// Formats raw units at `scale` with exactly `scale` fractional digits
/// (`format(2500, 4) == "0.2500"`), and no point at scale 0.
pub fn format(v: u64, scale: u32) -> String {
    let digits = v.to_string();
    let scale = scale as usize;
    if scale == 0 {
        return digits;
    }
    let mut out = String::with_capacity(digits.len().max(scale + 1) + 1);
    if digits.len() <= scale {
        out.push_str("0.");
        out.push_str(&"0".repeat(scale - digits.len()));
        out.push_str(&digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// The number of fractional digits of a decimal once trailing zeros are
/// removed: `"0.50"` is scale 1, `"5.000"` scale 0. Instruments read their
/// `tick` and `lot` this way to get `price_scale` and `qty_scale`.
pub fn canonical_scale(s: &str) -> Result<u32, DecimalError> {
    let (_, frac) = split(s)?;
    let significant = frac.iter().rposition(|&c| c != b'0').map_or(0, |p| p + 1);
    u32::try_from(significant).map_err(|_| DecimalError::Overflow)
}

/// Parses a decimal at `scale` and returns it as a whole number of steps of
/// `step_raw` raw units (a price in ticks, a quantity in lots).
///
/// `parse_on_grid("30001.50", 2, 50) == Ok(60003)` (tick 0.50). A value that
/// is not a multiple of the step is [`DecimalError::OffGrid`].
///
/// # Panics
/// When `step_raw` is zero: a step comes from a validated instrument, so a
/// zero step is a broken invariant, not bad input.
pub fn parse_on_grid(s: &str, scale: u32, step_raw: u64) -> Result<u64, DecimalError> {
    assert!(step_raw > 0, "a grid step is never zero");
    let v = parse(s, scale)?;
    if v % step_raw != 0 {
        return Err(DecimalError::OffGrid);
    }
    Ok(v / step_raw)
}

/// Formats a whole number of steps (ticks, lots) back to a wire decimal;
/// `None` when `steps * step_raw` overflows.
pub fn format_on_grid(steps: u64, step_raw: u64, scale: u32) -> Option<String> {
    steps.checked_mul(step_raw).map(|v| format(v, scale))
}

/// `10^scale`, the raw units in one whole unit; `None` above [`SCALE_MAX`]+1.
pub fn unit(scale: u32) -> Option<u64> {
    10u64.checked_pow(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_values() {
        assert_eq!(parse("30001.5", 2), Ok(3_000_150));
        assert_eq!(parse("30001.50", 2), Ok(3_000_150));
        assert_eq!(parse("0.25", 4), Ok(2_500));
        assert_eq!(parse("5", 0), Ok(5));
        assert_eq!(parse("5", 3), Ok(5_000));
        assert_eq!(parse("0", 18), Ok(0));
        assert_eq!(parse("000.000", 3), Ok(0));
        assert_eq!(parse("007.1", 1), Ok(71));
        assert_eq!(parse("18446744073709551615", 0), Ok(u64::MAX));
        assert_eq!(parse("18446744073.709551615", 9), Ok(u64::MAX));
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "", ".", ".5", "5.", "-1", "+1", "1e5", "1E5", " 1", "1 ", "1.2.3", "1,5", "0x10", "١",
            "NaN", "inf", "1..2", "1_000",
        ] {
            assert_eq!(parse(s, 4), Err(DecimalError::Malformed), "{s:?}");
            assert_eq!(canonical_scale(s), Err(DecimalError::Malformed), "{s:?}");
        }
        let long = "1".repeat(DECIMAL_LEN_MAX + 1);
        assert_eq!(parse(&long, 0), Err(DecimalError::Malformed));
    }

    #[test]
    fn rejects_too_precise_even_with_zeros() {
        assert_eq!(parse("1.234", 2), Err(DecimalError::TooPrecise));
        assert_eq!(parse("1.230", 2), Err(DecimalError::TooPrecise));
        assert_eq!(parse("1.0", 0), Err(DecimalError::TooPrecise));
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(
            parse("18446744073709551616", 0),
            Err(DecimalError::Overflow)
        );
        assert_eq!(
            parse("18446744073709551615", 1),
            Err(DecimalError::Overflow)
        );
        assert_eq!(
            parse("99999999999999999999999", 0),
            Err(DecimalError::Overflow)
        );
        assert_eq!(parse("1", 20), Err(DecimalError::Overflow));
    }

    #[test]
    fn formats_with_exact_scale() {
        assert_eq!(format(3_000_150, 2), "30001.50");
        assert_eq!(format(2_500, 4), "0.2500");
        assert_eq!(format(0, 4), "0.0000");
        assert_eq!(format(0, 0), "0");
        assert_eq!(format(7, 0), "7");
        assert_eq!(format(7, 3), "0.007");
        assert_eq!(format(1_000, 3), "1.000");
        assert_eq!(format(u64::MAX, 19), "1.8446744073709551615");
        assert_eq!(format(1, 25), "0.0000000000000000000000001");
    }

    #[test]
    fn canonical_scale_strips_trailing_zeros() {
        assert_eq!(canonical_scale("0.50"), Ok(1));
        assert_eq!(canonical_scale("0.01"), Ok(2));
        assert_eq!(canonical_scale("5.000"), Ok(0));
        assert_eq!(canonical_scale("5"), Ok(0));
        assert_eq!(canonical_scale("0.0001"), Ok(4));
        assert_eq!(canonical_scale("10"), Ok(0));
    }

    #[test]
    fn grid() {
        assert_eq!(parse_on_grid("30001.50", 2, 50), Ok(60_003));
        assert_eq!(parse_on_grid("30001.5", 2, 50), Ok(60_003));
        assert_eq!(parse_on_grid("30001.25", 2, 50), Err(DecimalError::OffGrid));
        assert_eq!(parse_on_grid("0", 2, 50), Ok(0));
        assert_eq!(parse_on_grid("1.005", 2, 1), Err(DecimalError::TooPrecise));
        assert_eq!(format_on_grid(60_003, 50, 2).as_deref(), Some("30001.50"));
        assert_eq!(format_on_grid(u64::MAX, 2, 2), None);
    }

    #[test]
    fn error_codes_by_field() {
        assert_eq!(DecimalError::OffGrid.code_for_price(), ErrorCode::PriceTick);
        assert_eq!(
            DecimalError::TooPrecise.code_for_price(),
            ErrorCode::PriceTick
        );
        assert_eq!(
            DecimalError::Malformed.code_for_price(),
            ErrorCode::BadRequest
        );
        assert_eq!(DecimalError::OffGrid.code_for_qty(), ErrorCode::LotSize);
        assert_eq!(DecimalError::TooPrecise.code_for_qty(), ErrorCode::LotSize);
        assert_eq!(DecimalError::Overflow.code_for_qty(), ErrorCode::BadRequest);
        assert_eq!(
            DecimalError::OffGrid.code_for_amount(),
            ErrorCode::BadRequest
        );
        assert_eq!(
            DecimalError::TooPrecise.code_for_amount(),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn unit_sizes() {
        assert_eq!(unit(0), Some(1));
        assert_eq!(unit(SCALE_MAX), Some(1_000_000_000_000_000_000));
        assert_eq!(unit(20), None);
    }
}
