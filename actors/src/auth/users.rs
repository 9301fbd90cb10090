//! The directory of users and API keys, and the two login paths built on it.
//!
//! The directory is a read model: the ledger decides `admin.user.create` and
//! `admin.apikey.create`, journals them as events, and applying those events
//! (live or on replay) fills this directory. It therefore enforces only what
//! keeps it consistent (no duplicates, keys belong to existing users, key
//! material has the protocol's shape); limits on how many users or keys may
//! exist belong to the ledger's decisions.
//!
//! [`authenticate_password`] and [`authenticate_key`] turn an `auth` request
//! into `(user, role)` or an [`AuthError`] carrying the protocol code. A
//! password login runs the slow hash even for an unknown user (against a
//! dummy hash of the same cost), so the answer time does not reveal which
//! users exist. The fee account [`FEE_ACCOUNT`] holds balances but never logs in.

use std::fmt;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::nonce::NonceCache;
use super::password::{hash_password_with, verify_password, PasswordParams};
use super::signature::{
    signing_string, validate_ed25519_public_key, validate_hmac_secret, verify_ed25519, verify_hmac,
    SigAlg,
};
use super::{AuthError, Role};

/// The account that collects trading fees (PROTOCOL.md section 7). It cannot log in.
pub const FEE_ACCOUNT: &str = "fees";
/// Longest password checked, in bytes. Longer ones are refused without
/// hashing (the frame limit already caps them at 64 KiB).
pub const PASSWORD_LEN_MAX: usize = 1024;

/// What the exchange keeps to verify an API key's signatures.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `hmac-sha256`: the shared secret, 64 hex characters, used as its UTF-8 bytes.
    Hmac {
        /// The secret shown to the client once at creation.
        secret: String,
    },
    /// `ed25519`: the client's public key, standard base64 of 32 bytes.
    Ed25519 {
        /// The registered public key.
        public_key_b64: String,
    },
}

impl Credential {
    /// The algorithm this key signs with.
    pub fn alg(&self) -> SigAlg {
        match self {
            Credential::Hmac { .. } => SigAlg::HmacSha256,
            Credential::Ed25519 { .. } => SigAlg::Ed25519,
        }
    }

    /// Whether the key material has the protocol's shape.
    pub fn is_well_formed(&self) -> bool {
        match self {
            Credential::Hmac { secret } => validate_hmac_secret(secret),
            Credential::Ed25519 { public_key_b64 } => validate_ed25519_public_key(public_key_b64),
        }
    }

    /// Whether `sig` is this key's signature of `msg`.
    pub fn verify(&self, msg: &str, sig: &str) -> bool {
        match self {
            Credential::Hmac { secret } => verify_hmac(secret, msg, sig),
            Credential::Ed25519 { public_key_b64 } => verify_ed25519(public_key_b64, msg, sig),
        }
    }
}

/// Keeps HMAC secrets out of logs.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Hmac { .. } => f.write_str("Hmac { secret: <redacted> }"),
            Credential::Ed25519 { public_key_b64 } => f
                .debug_struct("Ed25519")
                .field("public_key_b64", public_key_b64)
                .finish(),
        }
    }
}

/// A user as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The account name.
    pub name: String,
    /// The role granted at login.
    pub role: Role,
    /// The Argon2 PHC string of the password.
    pub phc: String,
}

/// An API key as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public key id the client sends as `key`.
    pub key_id: String,
    /// The user the key logs in as.
    pub user: String,
    /// How its signatures are verified.
    pub credential: Credential,
}

/// An event that does not fit the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The user or key id is already present.
    #[error("already exists")]
    AlreadyExists,
    /// An API key names a user the directory does not have.
    #[error("unknown user")]
    UnknownUser,
    /// The key material does not have the protocol's shape.
    #[error("malformed key material")]
    BadCredential,
}

/// The users and API keys, shared by all sessions (`&self` everywhere).
#[derive(Debug)]
pub struct Directory {
    users: DashMap<String, UserRecord>,
    api_keys: DashMap<String, ApiKeyRecord>,
    /// Verified in place of a missing user's hash, at the same cost as real ones.
    dummy_phc: String,
}

impl Directory {
    /// An empty directory whose passwords are hashed at `params` (used for
    /// the dummy hash, so that unknown users cost as much as known ones).
    pub fn new(params: &PasswordParams) -> Self {
        Self {
            users: DashMap::new(),
            api_keys: DashMap::new(),
            dummy_phc: hash_password_with("no user has this password", params),
        }
    }

    /// Adds a user with the PHC hash of its password.
    pub fn add_user(&self, name: &str, role: Role, phc_hash: &str) -> Result<(), DirectoryError> {
        match self.users.entry(name.to_owned()) {
            Entry::Occupied(_) => Err(DirectoryError::AlreadyExists),
            Entry::Vacant(slot) => {
                slot.insert(UserRecord {
                    name: name.to_owned(),
                    role,
                    phc: phc_hash.to_owned(),
                });
                Ok(())
            }
        }
    }

    /// Replaces a user's password hash.
    pub fn set_password(&self, name: &str, phc_hash: &str) -> Result<(), DirectoryError> {
        let mut user = self
            .users
            .get_mut(name)
            .ok_or(DirectoryError::UnknownUser)?;
        user.phc = phc_hash.to_owned();
        Ok(())
    }

    /// Adds an API key for an existing user.
    pub fn add_api_key(
        &self,
        user: &str,
        key_id: &str,
        credential: Credential,
    ) -> Result<(), DirectoryError> {
        if !credential.is_well_formed() {
            return Err(DirectoryError::BadCredential);
        }
        if !self.users.contains_key(user) {
            return Err(DirectoryError::UnknownUser);
        }
        match self.api_keys.entry(key_id.to_owned()) {
            Entry::Occupied(_) => Err(DirectoryError::AlreadyExists),
            Entry::Vacant(slot) => {
                slot.insert(ApiKeyRecord {
                    key_id: key_id.to_owned(),
                    user: user.to_owned(),
                    credential,
                });
                Ok(())
            }
        }
    }

    /// Removes an API key. Returns whether it existed.
    pub fn remove_api_key(&self, key_id: &str) -> bool {
        self.api_keys.remove(key_id).is_some()
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<UserRecord> {
        self.users.get(name).map(|entry| entry.value().clone())
    }

    /// The API key `key_id`.
    pub fn api_key(&self, key_id: &str) -> Option<ApiKeyRecord> {
        self.api_keys.get(key_id).map(|entry| entry.value().clone())
    }

    /// Number of users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of API keys.
    pub fn api_key_count(&self) -> usize {
        self.api_keys.len()
    }
}

/// Password login: `(user, role)` when `pw` is `user`'s password, else
/// `BadCredentials`, the same for an unknown user, a wrong password and the
/// fee account. Slow by design (one Argon2 verification, whatever the
/// outcome): run it off the async threads.
pub fn authenticate_password(
    dir: &Directory,
    user: &str,
    pw: &str,
) -> Result<(String, Role), AuthError> {
    if pw.len() > PASSWORD_LEN_MAX {
        return Err(AuthError::BadCredentials);
    }
    let record = dir.user(user).filter(|record| record.name != FEE_ACCOUNT);
    let phc = record
        .as_ref()
        .map_or(dir.dummy_phc.as_str(), |record| record.phc.as_str());
    // Verify first, decide after: every path pays for one hash.
    let matches = verify_password(phc, pw);
    match record {
        Some(record) if matches => Ok((record.name, record.role)),
        _ => Err(AuthError::BadCredentials),
    }
}

/// The API-key form of `auth`: `{"key","ts","nonce","sig","alg"}`, borrowed
/// (from the protocol's decoded arguments, see the `From` impl).
#[derive(Debug, Clone, Copy)]
pub struct KeyAuth<'a> {
    /// The key id.
    pub key: &'a str,
    /// The signed timestamp, microseconds since the Unix epoch.
    pub ts: u64,
    /// The client's single-use nonce.
    pub nonce: &'a str,
    /// The signature: hex for `hmac-sha256`, standard base64 for `ed25519`.
    pub sig: &'a str,
    /// The algorithm the client signed with.
    pub alg: SigAlg,
}

impl<'a> From<&'a bourse_protocol::msg::KeyAuth> for KeyAuth<'a> {
    fn from(args: &'a bourse_protocol::msg::KeyAuth) -> Self {
        KeyAuth {
            key: &args.key,
            ts: args.ts,
            nonce: &args.nonce,
            sig: &args.sig,
            alg: args.alg,
        }
    }
}

/// API-key login: `(user, role)` when `req.sig` is the key's signature of the
/// signing string, `ts` is within the window of `now_us` and the nonce is
/// fresh for this key. Checked in that order, and the nonce is spent only by
/// a verified signature, so nobody else can burn a client's nonces.
///
/// Errors: `BadCredentials` (unknown key, its user gone, or the fee account),
/// `BadSignature` (does not verify, malformed, or `alg` not the key's),
/// `TsOutsideWindow`, `NonceReused`, and from the nonce memory `BadRequest`
/// (empty or over-long nonce) or `Overloaded`.
pub fn authenticate_key(
    dir: &Directory,
    nonces: &NonceCache,
    req: &KeyAuth<'_>,
    now_us: u64,
) -> Result<(String, Role), AuthError> {
    let key = dir.api_key(req.key).ok_or(AuthError::BadCredentials)?;
    let user = dir
        .user(&key.user)
        .filter(|user| user.name != FEE_ACCOUNT)
        .ok_or(AuthError::BadCredentials)?;
    if req.alg != key.credential.alg() {
        return Err(AuthError::BadSignature);
    }
    let msg = signing_string(req.ts, req.nonce, req.key);
    if !key.credential.verify(&msg, req.sig) {
        return Err(AuthError::BadSignature);
    }
    nonces.accept(req.key, req.nonce, req.ts, now_us)?;
    Ok((user.name, user.role))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::signature::{generate_api_key, generate_key_id, sign_hmac};
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    const NOW: u64 = 1_732_051_200_000_000;

    fn fast() -> PasswordParams {
        PasswordParams::fast_for_tests()
    }

    struct Fixture {
        dir: Directory,
        nonces: NonceCache,
        hmac_key: String,
        hmac_secret: String,
        ed_key: String,
        ed_pair: Ed25519KeyPair,
    }

    fn fixture() -> Fixture {
        let dir = Directory::new(&fast());
        dir.add_user(
            "alice",
            Role::Trader,
            &hash_password_with("alice-pw", &fast()),
        )
        .unwrap();
        dir.add_user(
            "ops",
            Role::Operator,
            &hash_password_with("ops-pw", &fast()),
        )
        .unwrap();
        dir.add_user(
            FEE_ACCOUNT,
            Role::Trader,
            &hash_password_with("fees-pw", &fast()),
        )
        .unwrap();
        let (hmac_key, hmac_secret) = generate_api_key();
        dir.add_api_key(
            "alice",
            &hmac_key,
            Credential::Hmac {
                secret: hmac_secret.clone(),
            },
        )
        .unwrap();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let ed_pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let ed_key = generate_key_id();
        let public_key_b64 = BASE64.encode(ed_pair.public_key().as_ref());
        dir.add_api_key("ops", &ed_key, Credential::Ed25519 { public_key_b64 })
            .unwrap();
        Fixture {
            dir,
            nonces: NonceCache::default(),
            hmac_key,
            hmac_secret,
            ed_key,
            ed_pair,
        }
    }

    impl Fixture {
        fn hmac_sig(&self, ts: u64, nonce: &str) -> String {
            sign_hmac(
                &self.hmac_secret,
                &signing_string(ts, nonce, &self.hmac_key),
            )
        }

        fn ed_sig(&self, ts: u64, nonce: &str) -> String {
            BASE64.encode(
                self.ed_pair
                    .sign(signing_string(ts, nonce, &self.ed_key).as_bytes())
                    .as_ref(),
            )
        }

        fn hmac_login(
            &self,
            ts: u64,
            nonce: &str,
            sig: &str,
            now: u64,
        ) -> Result<(String, Role), AuthError> {
            let req = KeyAuth {
                key: &self.hmac_key,
                ts,
                nonce,
                sig,
                alg: SigAlg::HmacSha256,
            };
            authenticate_key(&self.dir, &self.nonces, &req, now)
        }
    }

    #[test]
    fn password_login_succeeds_with_the_right_password_only() {
        let f = fixture();
        assert_eq!(
            authenticate_password(&f.dir, "alice", "alice-pw"),
            Ok(("alice".into(), Role::Trader))
        );
        assert_eq!(
            authenticate_password(&f.dir, "ops", "ops-pw"),
            Ok(("ops".into(), Role::Operator))
        );
        assert_eq!(
            authenticate_password(&f.dir, "alice", "ops-pw"),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            authenticate_password(&f.dir, "alice", ""),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            authenticate_password(&f.dir, "Alice", "alice-pw"),
            Err(AuthError::BadCredentials)
        );
    }

    #[test]
    fn unknown_user_gets_the_same_answer_as_a_wrong_password() {
        let f = fixture();
        let unknown = authenticate_password(&f.dir, "mallory", "alice-pw");
        let wrong = authenticate_password(&f.dir, "alice", "nope");
        assert_eq!(unknown, Err(AuthError::BadCredentials));
        assert_eq!(unknown, wrong);
        // Even the dummy hash's own password opens nothing.
        assert_eq!(
            authenticate_password(&f.dir, "mallory", "no user has this password"),
            Err(AuthError::BadCredentials)
        );
    }

    #[test]
    fn unknown_user_pays_for_a_hash_like_a_known_one() {
        // At the production cost a verification takes tens of milliseconds; an
        // unknown user must not answer in a fraction of that.
        let params = PasswordParams::default();
        let dir = Directory::new(&params);
        dir.add_user("alice", Role::Trader, &hash_password_with("pw", &params))
            .unwrap();
        // The fastest of a few runs, which a busy machine cannot make faster.
        let time = |user: &str| {
            (0..3)
                .map(|_| {
                    let start = std::time::Instant::now();
                    assert!(authenticate_password(&dir, user, "wrong").is_err());
                    start.elapsed()
                })
                .min()
                .unwrap()
        };
        let known = time("alice");
        let unknown = time("nobody");
        assert!(
            unknown * 2 > known,
            "unknown {unknown:?} vs known {known:?}"
        );
    }

    #[test]
    fn fees_cannot_log_in() {
        let f = fixture();
        assert_eq!(
            authenticate_password(&f.dir, FEE_ACCOUNT, "fees-pw"),
            Err(AuthError::BadCredentials)
        );
        // Not with a key either, had one been recorded for it.
        let (key, secret) = generate_api_key();
        f.dir
            .add_api_key(
                FEE_ACCOUNT,
                &key,
                Credential::Hmac {
                    secret: secret.clone(),
                },
            )
            .unwrap();
        let sig = sign_hmac(&secret, &signing_string(NOW, "n", &key));
        let req = KeyAuth {
            key: &key,
            ts: NOW,
            nonce: "n",
            sig: &sig,
            alg: SigAlg::HmacSha256,
        };
        assert_eq!(
            authenticate_key(&f.dir, &f.nonces, &req, NOW),
            Err(AuthError::BadCredentials)
        );
    }

    #[test]
    fn over_long_password_is_refused() {
        let f = fixture();
        let long = "x".repeat(PASSWORD_LEN_MAX + 1);
        assert_eq!(
            authenticate_password(&f.dir, "alice", &long),
            Err(AuthError::BadCredentials)
        );
    }

    #[test]
    fn hmac_key_login_and_replay() {
        let f = fixture();
        let sig = f.hmac_sig(NOW, "n1");
        assert_eq!(
            f.hmac_login(NOW, "n1", &sig, NOW + 100),
            Ok(("alice".into(), Role::Trader))
        );
        // The same signed request again: a replay.
        assert_eq!(
            f.hmac_login(NOW, "n1", &sig, NOW + 200),
            Err(AuthError::NonceReused)
        );
        assert_eq!(AuthError::NonceReused.code_str(), "nonce_reused");
        // A fresh nonce works.
        let sig2 = f.hmac_sig(NOW, "n2");
        assert!(f.hmac_login(NOW, "n2", &sig2, NOW + 300).is_ok());
    }

    #[test]
    fn wrong_signature_is_refused_and_does_not_spend_the_nonce() {
        let f = fixture();
        let good = f.hmac_sig(NOW, "n1");
        let other_nonce = f.hmac_sig(NOW, "n9");
        let other_ts = f.hmac_sig(NOW + 1, "n1");
        let wrong_secret = sign_hmac(
            &generate_api_key().1,
            &signing_string(NOW, "n1", &f.hmac_key),
        );
        for bad in [
            &other_nonce,
            &other_ts,
            &wrong_secret,
            &"00".repeat(32),
            &String::new(),
            &"zz".to_string(),
        ] {
            assert_eq!(
                f.hmac_login(NOW, "n1", bad, NOW),
                Err(AuthError::BadSignature)
            );
        }
        assert_eq!(
            f.hmac_login(NOW, "n1", &good, NOW),
            Ok(("alice".into(), Role::Trader))
        );
    }

    #[test]
    fn timestamp_just_inside_and_just_outside_the_window() {
        let f = fixture();
        let cases = [
            (NOW - 5_000_000, "a", Ok(())),
            (NOW + 5_000_000, "b", Ok(())),
            (NOW - 5_000_001, "c", Err(AuthError::TsOutsideWindow)),
            (NOW + 5_000_001, "d", Err(AuthError::TsOutsideWindow)),
        ];
        for (ts, nonce, expected) in cases {
            let sig = f.hmac_sig(ts, nonce);
            assert_eq!(
                f.hmac_login(ts, nonce, &sig, NOW).map(|_| ()),
                expected,
                "ts {ts}"
            );
        }
    }

    #[test]
    fn ed25519_key_login_and_its_failures() {
        let f = fixture();
        let sig = f.ed_sig(NOW, "e1");
        let req = KeyAuth {
            key: &f.ed_key,
            ts: NOW,
            nonce: "e1",
            sig: &sig,
            alg: SigAlg::Ed25519,
        };
        assert_eq!(
            authenticate_key(&f.dir, &f.nonces, &req, NOW),
            Ok(("ops".into(), Role::Operator))
        );
        assert_eq!(
            authenticate_key(&f.dir, &f.nonces, &req, NOW),
            Err(AuthError::NonceReused)
        );

        // Signed by another private key.
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let stranger = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let forged = BASE64.encode(
            stranger
                .sign(signing_string(NOW, "e2", &f.ed_key).as_bytes())
                .as_ref(),
        );
        let req = KeyAuth {
            key: &f.ed_key,
            ts: NOW,
            nonce: "e2",
            sig: &forged,
            alg: SigAlg::Ed25519,
        };
        assert_eq!(
            authenticate_key(&f.dir, &f.nonces, &req, NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn alg_must_match_the_keys_registration() {
        let f = fixture();
        let sig = f.hmac_sig(NOW, "n");
        let req = KeyAuth {
            key: &f.hmac_key,
            ts: NOW,
            nonce: "n",
            sig: &sig,
            alg: SigAlg::Ed25519,
        };
        assert_eq!(
            authenticate_key(&f.dir, &f.nonces, &req, NOW),
            Err(AuthError::BadSignature)
        );
        let ed_sig = f.ed_sig(NOW, "n");
        let req = KeyAuth {
            key: &f.ed_key,
            ts: NOW,
            nonce: "n",
            sig: &ed_sig,
            alg: SigAlg::HmacSha256,
        };
        assert_eq!(
            authenticate_key(&f.dir, &f.nonces, &req, NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn unknown_or_removed_key_is_bad_credentials() {
        let f = fixture();
        let sig = f.hmac_sig(NOW, "n");
        let req = KeyAuth {
            key: "nokey",
            ts: NOW,
            nonce: "n",
            sig: &sig,
            alg: SigAlg::HmacSha256,
        };
        assert_eq!(
            authenticate_key(&f.dir, &f.nonces, &req, NOW),
            Err(AuthError::BadCredentials)
        );
        assert!(f.dir.remove_api_key(&f.hmac_key));
        assert_eq!(
            f.hmac_login(NOW, "n", &sig, NOW),
            Err(AuthError::BadCredentials)
        );
    }

    #[test]
    fn malformed_nonce_is_a_bad_request_after_a_valid_signature() {
        let f = fixture();
        let sig = f.hmac_sig(NOW, "");
        assert!(matches!(
            f.hmac_login(NOW, "", &sig, NOW),
            Err(AuthError::BadRequest(_))
        ));
    }

    #[test]
    fn directory_consistency_rules() {
        let dir = Directory::new(&fast());
        let phc = hash_password_with("pw", &fast());
        assert_eq!(dir.add_user("u", Role::Viewer, &phc), Ok(()));
        assert_eq!(
            dir.add_user("u", Role::Trader, &phc),
            Err(DirectoryError::AlreadyExists)
        );
        assert_eq!(dir.user("u").unwrap().role, Role::Viewer);
        let (key, secret) = generate_api_key();
        let hmac = Credential::Hmac { secret };
        assert_eq!(
            dir.add_api_key("ghost", &key, hmac.clone()),
            Err(DirectoryError::UnknownUser)
        );
        assert_eq!(dir.add_api_key("u", &key, hmac.clone()), Ok(()));
        assert_eq!(
            dir.add_api_key("u", &key, hmac.clone()),
            Err(DirectoryError::AlreadyExists)
        );
        assert_eq!(
            dir.add_api_key(
                "u",
                "k2",
                Credential::Hmac {
                    secret: "abc".into()
                }
            ),
            Err(DirectoryError::BadCredential)
        );
        assert_eq!(
            dir.add_api_key(
                "u",
                "k3",
                Credential::Ed25519 {
                    public_key_b64: BASE64.encode([1u8; 31])
                }
            ),
            Err(DirectoryError::BadCredential)
        );
        assert_eq!(dir.api_key(&key).unwrap().user, "u");
        assert_eq!((dir.user_count(), dir.api_key_count()), (1, 1));
        assert!(dir.user("nobody").is_none());
        assert!(dir.api_key("k2").is_none());
    }

    #[test]
    fn viewer_logs_in_as_viewer_and_password_change_takes_effect() {
        let dir = Directory::new(&fast());
        dir.add_user("v", Role::Viewer, &hash_password_with("old", &fast()))
            .unwrap();
        assert_eq!(
            authenticate_password(&dir, "v", "old"),
            Ok(("v".into(), Role::Viewer))
        );
        dir.set_password("v", &hash_password_with("new", &fast()))
            .unwrap();
        assert_eq!(
            authenticate_password(&dir, "v", "old"),
            Err(AuthError::BadCredentials)
        );
        assert!(authenticate_password(&dir, "v", "new").is_ok());
        assert_eq!(
            dir.set_password("nobody", "x"),
            Err(DirectoryError::UnknownUser)
        );
    }

    #[test]
    fn logs_in_from_the_protocols_decoded_auth_args() {
        let f = fixture();
        let sig = f.hmac_sig(NOW, "wire-1");
        let json = format!(
            r#"{{"key":"{}","ts":{NOW},"nonce":"wire-1","sig":"{sig}","alg":"hmac-sha256"}}"#,
            f.hmac_key
        );
        let bourse_protocol::msg::AuthArgs::Key(args) = serde_json::from_str(&json).unwrap() else {
            panic!("decoded as a password login");
        };
        let req = KeyAuth::from(&args);
        assert_eq!(
            authenticate_key(&f.dir, &f.nonces, &req, NOW),
            Ok(("alice".into(), Role::Trader))
        );
        assert_eq!(
            authenticate_key(&f.dir, &f.nonces, &req, NOW),
            Err(AuthError::NonceReused)
        );
    }

    #[test]
    fn debug_output_hides_hmac_secrets() {
        let secret = "ab".repeat(32);
        let shown = format!(
            "{:?}",
            Credential::Hmac {
                secret: secret.clone()
            }
        );
        assert!(!shown.contains(&secret), "{shown}");
    }
}
