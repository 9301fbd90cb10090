//! Time-based one-time passwords (RFC 6238) for the optional `otp` field of a
//! password login: HOTP (RFC 4226) over ring's HMAC, with the counter taken
//! from the Unix time in steps of 30 s.
//!
//! Like the rest of this module it reads no clock: the caller passes the time.
//! A code is accepted in its own step and up to `skew_steps` steps either
//! side, to forgive a client clock a little off; remembering used codes (so
//! one cannot be replayed within its step) is the caller's job.

use ring::hmac;

/// The usual time step (RFC 6238 section 5.2).
pub const STEP_S_DEFAULT: u64 = 30;
/// The usual code length.
pub const DIGITS_DEFAULT: u32 = 6;
/// Longest code length supported: 10^9 still fits the 31-bit truncated value's range.
pub const DIGITS_MAX: u32 = 9;
/// Most steps of clock skew ever tolerated either side.
pub const SKEW_STEPS_MAX: u64 = 10;

/// The HMAC behind the codes; authenticator apps use SHA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpAlg {
    /// HMAC-SHA1, the RFC 4226 default and what authenticator apps expect.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl TotpAlg {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            TotpAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            TotpAlg::Sha256 => hmac::HMAC_SHA256,
            TotpAlg::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// The HOTP value of `counter` (RFC 4226 section 5.3): dynamic truncation of
/// the HMAC, modulo 10^`digits`.
pub fn hotp(secret: &[u8], counter: u64, digits: u32, alg: TotpAlg) -> u32 {
    assert!(
        (1..=DIGITS_MAX).contains(&digits),
        "1 to {DIGITS_MAX} digits"
    );
    let key = hmac::Key::new(alg.hmac(), secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let word = [
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ];
    let truncated = u32::from_be_bytes(word) & 0x7fff_ffff;
    truncated % 10u32.pow(digits)
}

/// The TOTP value at `unix_s` (RFC 6238 section 4): HOTP of `unix_s / step_s`.
pub fn totp(secret: &[u8], unix_s: u64, step_s: u64, digits: u32, alg: TotpAlg) -> u32 {
    assert!(step_s > 0, "a time step must be positive");
    hotp(secret, unix_s / step_s, digits, alg)
}

/// The code as a client types it: zero-padded to `digits`.
pub fn format_code(code: u32, digits: u32) -> String {
    format!("{code:0width$}", width = digits as usize)
}

/// Whether `code` (exactly [`DIGITS_DEFAULT`] decimal digits) is the SHA-1
/// TOTP of `secret` at `unix_s` with 30 s steps, allowing `skew_steps` steps
/// of clock difference either side. Every candidate step is computed and
/// compared without early exit, so the time taken does not depend on which
/// step matched.
pub fn verify_totp(secret: &[u8], code: &str, unix_s: u64, skew_steps: u64) -> bool {
    let digits = DIGITS_DEFAULT;
    if code.len() != digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let skew_steps = skew_steps.min(SKEW_STEPS_MAX);
    let step = unix_s / STEP_S_DEFAULT;
    let first = step.saturating_sub(skew_steps);
    let last = step.saturating_add(skew_steps);
    let mut matched = false;
    for counter in first..=last {
        let expected = format_code(hotp(secret, counter, digits, TotpAlg::Sha1), digits);
        matched |= constant_time_eq(expected.as_bytes(), code.as_bytes());
    }
    matched
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B seeds: the ASCII digits repeated to the hash's length.
    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let vectors: [(u64, u32, u32, u32); 6] = [
            (59, 94_287_082, 46_119_246, 90_693_936),
            (1_111_111_109, 7_081_804, 68_084_774, 25_091_201),
            (1_111_111_111, 14_050_471, 67_062_674, 99_943_326),
            (1_234_567_890, 89_005_924, 91_819_424, 93_441_116),
            (2_000_000_000, 69_279_037, 90_698_825, 38_618_901),
            (20_000_000_000, 65_353_130, 77_737_706, 47_863_826),
        ];
        for (time, sha1, sha256, sha512) in vectors {
            assert_eq!(
                totp(SEED_SHA1, time, 30, 8, TotpAlg::Sha1),
                sha1,
                "sha1 at {time}"
            );
            assert_eq!(
                totp(SEED_SHA256, time, 30, 8, TotpAlg::Sha256),
                sha256,
                "sha256 at {time}"
            );
            assert_eq!(
                totp(SEED_SHA512, time, 30, 8, TotpAlg::Sha512),
                sha512,
                "sha512 at {time}"
            );
        }
        assert_eq!(format_code(7_081_804, 8), "07081804");
    }

    #[test]
    fn rfc4226_appendix_d_hotp_vectors() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(SEED_SHA1, counter as u64, 6, TotpAlg::Sha1),
                code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn verify_accepts_the_current_code_within_skew_only() {
        let now = 1_111_111_111;
        let code = |t: u64| format_code(totp(SEED_SHA1, t, 30, 6, TotpAlg::Sha1), 6);
        assert!(verify_totp(SEED_SHA1, &code(now), now, 0));
        assert!(verify_totp(SEED_SHA1, &code(now - 30), now, 1));
        assert!(verify_totp(SEED_SHA1, &code(now + 30), now, 1));
        assert!(!verify_totp(SEED_SHA1, &code(now - 30), now, 0));
        assert!(!verify_totp(SEED_SHA1, &code(now - 90), now, 1));
        assert!(!verify_totp(b"another secret......", &code(now), now, 1));
    }

    #[test]
    fn verify_refuses_malformed_codes() {
        let now = 59;
        let good = format_code(totp(SEED_SHA1, now, 30, 6, TotpAlg::Sha1), 6);
        assert!(verify_totp(SEED_SHA1, &good, now, 0));
        assert!(!verify_totp(SEED_SHA1, &good[..5], now, 0));
        assert!(!verify_totp(SEED_SHA1, &format!("{good}0"), now, 0));
        assert!(!verify_totp(SEED_SHA1, "12a456", now, 0));
        assert!(!verify_totp(SEED_SHA1, "", now, 0));
        assert!(!verify_totp(SEED_SHA1, &format!(" {}", &good[1..]), now, 0));
    }
}
