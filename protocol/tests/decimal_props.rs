//! Property tests of the exact decimals: formatting and parsing are
//! inverse at every scale, grids hold, and malformed text never parses.

use bourse_protocol::decimal::{
    canonical_scale, format, parse, parse_on_grid, DecimalError, SCALE_MAX,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_inverts_format(v in any::<u64>(), scale in 0u32..=19) {
        let s = format(v, scale);
        prop_assert_eq!(parse(&s, scale), Ok(v));
        // Exactly `scale` fractional digits, no point at scale 0.
        match s.split_once('.') {
            Some((int, frac)) => {
                prop_assert_eq!(frac.len(), scale as usize);
                prop_assert!(!int.is_empty());
            }
            None => prop_assert_eq!(scale, 0),
        }
    }

    #[test]
    fn fewer_digits_parse_at_a_larger_scale(v in 0u64..1_000_000_000, scale in 0u32..=6, extra in 0u32..=6) {
        let s = format(v, scale);
        prop_assert_eq!(parse(&s, scale + extra), Ok(v * 10u64.pow(extra)));
        if scale > 0 {
            prop_assert_eq!(parse(&s, scale - 1), Err(DecimalError::TooPrecise));
        }
    }

    #[test]
    fn canonical_scale_ignores_trailing_zeros(v in 1u64..1_000_000_000, scale in 0u32..=SCALE_MAX) {
        let s = format(v, scale);
        let c = canonical_scale(&s).unwrap();
        prop_assert!(c <= scale);
        // The canonical scale is the smallest one the trimmed text parses at.
        let trimmed = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s.as_str() };
        prop_assert_eq!(parse(trimmed, c).map(|x| x * 10u64.pow(scale - c)), Ok(v));
        if c > 0 {
            prop_assert_eq!(parse(trimmed, c - 1), Err(DecimalError::TooPrecise));
        }
    }

    #[test]
    fn grid_steps(steps in 0u64..1_000_000_000, step in 1u64..10_000, scale in 0u32..=8, off in 1u64..10_000) {
        let v = steps * step;
        prop_assert_eq!(parse_on_grid(&format(v, scale), scale, step), Ok(steps));
        let off = off % step;
        if off != 0 {
            prop_assert_eq!(parse_on_grid(&format(v + off, scale), scale, step), Err(DecimalError::OffGrid));
        }
    }

    #[test]
    fn malformed_never_parses(s in "[0-9.eE+\\- ,_a-z]{0,12}") {
        let b = s.as_bytes();
        let well_formed = !s.is_empty()
            && b.iter().all(|c| c.is_ascii_digit() || *c == b'.')
            && b.iter().filter(|c| **c == b'.').count() <= 1
            && b[0] != b'.'
            && b[b.len() - 1] != b'.';
        if !well_formed {
            prop_assert_eq!(parse(&s, 8), Err(DecimalError::Malformed));
            prop_assert_eq!(canonical_scale(&s), Err(DecimalError::Malformed));
        } else {
            prop_assert_ne!(parse(&s, 12), Err(DecimalError::Malformed));
        }
    }

    #[test]
    fn signs_and_exponents_are_malformed(v in any::<u32>(), e in 0u32..20) {
        for s in [format!("-{v}"), format!("+{v}"), format!("{v}e{e}"), format!("{v}E-{e}"), format!(" {v}"), format!("{v}\n")] {
            prop_assert_eq!(parse(&s, 4), Err(DecimalError::Malformed), "{}", s);
        }
    }
}
