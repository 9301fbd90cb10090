//! Password hashing: Argon2id PHC strings with a 16-byte salt from the
//! operating system's generator (`ring::rand::SystemRandom`).
//!
//! The exchange never stores a password, only the PHC string
//! (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), which carries its own cost
//! parameters, so hashes made under an older cost still verify after the cost
//! is raised. The default cost is the argon2 crate's (19 MiB, t=2, p=1, the
//! OWASP recommendation), about 50 ms of one core: callers on an async
//! runtime run it on a blocking thread. Tests use [`PasswordParams::fast_for_tests`].

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};

/// Salt length in bytes (the argon2 crate's and RFC 9106's recommendation).
pub const SALT_LEN: usize = 16;

/// The cost of one Argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordParams {
    params: Params,
}

impl PasswordParams {
    /// A cost of `m_cost_kib` KiB of memory, `t_cost` passes and `p_cost` lanes.
    /// Fails when argon2 refuses the combination (for example less than 8 KiB per lane).
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, argon2::Error> {
        Ok(Self {
            params: Params::new(m_cost_kib, t_cost, p_cost, None)?,
        })
    }

    /// The smallest cost argon2 accepts (8 KiB, one pass, one lane): well
    /// under a millisecond, for tests that hash many times. Never for production.
    pub fn fast_for_tests() -> Self {
        Self::new(Params::MIN_M_COST, Params::MIN_T_COST, Params::MIN_P_COST)
            .expect("argon2's own minimum parameters are valid")
    }

    /// Memory cost in KiB.
    pub fn m_cost_kib(&self) -> u32 {
        self.params.m_cost()
    }

    /// Number of passes.
    pub fn t_cost(&self) -> u32 {
        self.params.t_cost()
    }

    /// Degree of parallelism (lanes).
    pub fn p_cost(&self) -> u32 {
        self.params.p_cost()
    }

    fn hasher(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

impl Default for PasswordParams {
    /// The argon2 crate's defaults: 19 MiB, t=2, p=1.
    fn default() -> Self {
        Self {
            params: Params::DEFAULT,
        }
    }
}

/// Hashes `pw` at the default cost into a PHC string.
pub fn hash_password(pw: &str) -> String {
    hash_password_with(pw, &PasswordParams::default())
}

/// Hashes `pw` at the given cost into a PHC string, with a fresh random salt.
pub fn hash_password_with(pw: &str, params: &PasswordParams) -> String {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .expect("the operating system's random generator must work");
    let salt =
        SaltString::encode_b64(&salt).expect("a 16-byte salt is within argon2's salt limits");
    params
        .hasher()
        .hash_password(pw.as_bytes(), &salt)
        .expect("validated parameters and a valid salt always hash")
        .to_string()
}

/// Whether `pw` matches the PHC string `phc`. A malformed PHC string, or one
/// for an algorithm other than Argon2, never matches. The cost is the one
/// recorded in `phc`; the final comparison is constant time.
pub fn verify_password(phc: &str, pw: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if Algorithm::try_from(parsed.algorithm).is_err() {
        return false;
    }
    Argon2::default()
        .verify_password(pw.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_and_wrong_password_does_not() {
        let fast = PasswordParams::fast_for_tests();
        let phc = hash_password_with("correct horse", &fast);
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "correct hors"));
        assert!(!verify_password(&phc, ""));
    }

    #[test]
    fn salts_differ_so_equal_passwords_give_different_hashes() {
        let fast = PasswordParams::fast_for_tests();
        let a = hash_password_with("same", &fast);
        let b = hash_password_with("same", &fast);
        assert_ne!(a, b);
        assert!(verify_password(&a, "same") && verify_password(&b, "same"));
    }

    #[test]
    fn default_cost_is_argon2id_19mib_t2_p1() {
        let phc = hash_password("pw");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, "pw"));
        let fast = PasswordParams::fast_for_tests();
        let default = PasswordParams::default();
        assert_eq!(
            (default.m_cost_kib(), default.t_cost(), default.p_cost()),
            (19456, 2, 1)
        );
        assert_eq!((fast.m_cost_kib(), fast.t_cost(), fast.p_cost()), (8, 1, 1));
    }

    #[test]
    fn salt_is_16_bytes() {
        let phc = hash_password_with("pw", &PasswordParams::fast_for_tests());
        let parsed = PasswordHash::new(&phc).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(
            parsed.salt.unwrap().decode_b64(&mut buf).unwrap().len(),
            SALT_LEN
        );
    }

    #[test]
    fn malformed_or_foreign_hashes_never_match() {
        assert!(!verify_password("", "pw"));
        assert!(!verify_password("not a phc string", "pw"));
        assert!(!verify_password("$argon2id$v=19$m=8,t=1,p=1$", "pw"));
        // A well-formed PHC string of another algorithm.
        assert!(!verify_password(
            "$scrypt$ln=1,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "pw"
        ));
    }

    #[test]
    fn invalid_cost_is_refused() {
        assert!(PasswordParams::new(1, 1, 1).is_err());
        assert!(PasswordParams::new(64, 0, 1).is_err());
    }
}
