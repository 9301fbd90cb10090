//! Session tokens: the bearer secret a client gets from `auth` and presents to
//! `session.resume` on a new connection to get its login back without
//! re-sending a password or signature.
//!
//! A token is 32 bytes from the operating system's generator, hex-encoded; it
//! names a [`SessionInfo`] (user, role, session id, cancel-on-disconnect)
//! until it expires (24 h by
//! default, fixed from issuance, not extended by use) or is revoked (`logout`).
//! Tokens live in a `DashMap` shared by all sessions, keyed by the SHA-256 of
//! the token. A durable node also keeps them in its sled store
//! ([`TokenStore::keep_in`]), under the same hashes, so a client resumes
//! its login after a restart, a crash included, and neither the disk nor a
//! copy of it holds a token anyone could present. sled writes its changes
//! out every 500 ms: a login made just before a crash may be lost (its client
//! logs in again), and a logout just before one may come back until the
//! token expires (only the client that held it had it). Backups carry no
//! tokens (they hold the log and a snapshot), so a restored node starts
//! with none. The table holds at most `tokens_max`
//! tokens; when full, expired tokens are swept and, if that is not enough, the
//! token closest to expiry is dropped: a login is never refused for lack of
//! room, an old session merely loses its ability to resume.

use std::sync::atomic::{AtomicU64, Ordering};

use bourse_protocol::msg::Cod;
use dashmap::DashMap;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::{AuthError, Role};

/// Random bytes in a token (256 bits).
pub const TOKEN_BYTES: usize = 32;
/// Default lifetime of a token: 24 hours.
pub const TOKEN_TTL_US_DEFAULT: u64 = 24 * 3_600 * 1_000_000;
/// Default bound on live tokens: far above the connections one node serves.
pub const TOKENS_MAX_DEFAULT: usize = 100_000;

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The account name.
    pub user: String,
    /// The role granted at login.
    pub role: Role,
    /// The session id returned by `auth` (`session.id`).
    pub session_id: u64,
    /// The cancel-on-disconnect chosen at `auth`: a connection that resumes
    /// the session takes it too.
    pub cod: Cod,
    /// Server time (us) from which the token no longer validates.
    pub expires_us: u64,
}

/// The live session tokens. Shared by all sessions (`&self` everywhere).
#[derive(Debug)]
pub struct TokenStore {
    /// By the SHA-256 of the token.
    tokens: DashMap<[u8; 32], SessionInfo>,
    next_session_id: AtomicU64,
    ttl_us: u64,
    tokens_max: usize,
    /// Where a durable node keeps them (the same keys, and the next
    /// session id under [`NEXT_SESSION_ID_KEY`]).
    kept: Option<sled::Tree>,
}

/// The key of the next session id in the kept tree (not 32 bytes long, so
/// never a token's hash).
const NEXT_SESSION_ID_KEY: &[u8] = b"next_session_id";

/// A token's key: its SHA-256.
fn key_of(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl Default for TokenStore {
    fn default() -> Self {
        Self::new(TOKEN_TTL_US_DEFAULT, TOKENS_MAX_DEFAULT)
    }
}

impl TokenStore {
    /// A store whose tokens live `ttl_us` and which holds at most `tokens_max` of them.
    pub fn new(ttl_us: u64, tokens_max: usize) -> Self {
        assert!(tokens_max > 0, "tokens_max must allow at least one token");
        assert!(ttl_us > 0, "a token must live for some time");
        Self {
            tokens: DashMap::new(),
            next_session_id: AtomicU64::new(1),
            ttl_us,
            tokens_max,
            kept: None,
        }
    }

    /// Keeps the tokens in `tree` from now on, first taking back those it
    /// holds that are still live at `now_us` (expired ones are removed) and
    /// its next session id. A value that does not decode is removed: its
    /// client logs in again.
    pub fn keep_in(mut self, tree: sled::Tree, now_us: u64) -> Self {
        for (k, v) in tree.iter().flatten() {
            if k.as_ref() == NEXT_SESSION_ID_KEY {
                let next = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(1);
                self.next_session_id.fetch_max(next, Ordering::Relaxed);
                continue;
            }
            let live = <[u8; 32]>::try_from(k.as_ref())
                .ok()
                .zip(rmp_serde::from_slice::<SessionInfo>(&v).ok())
                .filter(|(_, info)| now_us < info.expires_us);
            match live {
                Some((key, info)) => {
                    self.next_session_id.fetch_max(info.session_id + 1, Ordering::Relaxed);
                    self.tokens.insert(key, info);
                }
                None => {
                    let _ = tree.remove(k);
                }
            }
        }
        self.kept = Some(tree);
        self
    }

    /// Writes a change to the kept tree, if any. A failed write costs a
    /// client its resume after a restart, never its login now: logged.
    fn keep(&self, key: &[u8], value: Option<Vec<u8>>) {
        let Some(tree) = &self.kept else { return };
        let r = match value {
            Some(v) => tree.insert(key, v).map(drop),
            None => tree.remove(key).map(drop),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "session token store: a change was not kept");
        }
    }

    /// Lifetime of a new token.
    pub fn ttl_us(&self) -> u64 {
        self.ttl_us
    }

    /// Starts a session for `user` with `role` and cancel-on-disconnect
    /// `cod` at `now_us`: a new session id (unique within this process,
    /// counting from 1) and a new token.
    pub fn issue(&self, user: &str, role: Role, cod: Cod, now_us: u64) -> (u64, String) {
        if self.tokens.len() >= self.tokens_max {
            self.make_room(now_us);
        }
        let session_id = self.next_session_id.fetch_add(1, Ordering::Relaxed);
        let info = SessionInfo {
            user: user.to_owned(),
            role,
            session_id,
            cod,
            expires_us: now_us.saturating_add(self.ttl_us),
        };
        let token = new_token();
        let key = key_of(&token);
        if self.kept.is_some() {
            self.keep(&key, Some(rmp_serde::to_vec(&info).expect("a session encodes")));
            self.keep(NEXT_SESSION_ID_KEY, Some((session_id + 1).to_be_bytes().to_vec()));
        }
        let previous = self.tokens.insert(key, info);
        assert!(previous.is_none(), "256-bit random tokens do not collide");
        (session_id, token)
    }

    /// The session `token` speaks for at `now_us`. An expired token is
    /// forgotten and answers `TokenExpired`; one never issued, revoked or
    /// dropped answers `TokenUnknown`.
    pub fn validate(&self, token: &str, now_us: u64) -> Result<SessionInfo, AuthError> {
        let key = key_of(token);
        let info = self.tokens.get(&key).map(|entry| entry.value().clone());
        match info {
            None => Err(AuthError::TokenUnknown),
            Some(info) if now_us >= info.expires_us => {
                self.tokens.remove(&key);
                self.keep(&key, None);
                Err(AuthError::TokenExpired)
            }
            Some(info) => Ok(info),
        }
    }

    /// Ends the session `token` speaks for. Returns whether it was live.
    pub fn revoke(&self, token: &str) -> bool {
        let key = key_of(token);
        self.keep(&key, None);
        self.tokens.remove(&key).is_some()
    }

    /// Ends every session of `user` (for example when its password changes).
    /// Returns how many tokens were revoked. Unlike a logout's, the
    /// revocation is written out before this returns (a password changes
    /// when the old one may be known to someone else): a crash right after
    /// leaves none of the old tokens to resume with.
    pub fn revoke_user(&self, user: &str) -> usize {
        let before = self.tokens.len();
        self.tokens.retain(|key, info| {
            let keep = info.user != user;
            if !keep {
                self.keep(key, None);
            }
            keep
        });
        let n = before.saturating_sub(self.tokens.len());
        if let (Some(tree), true) = (&self.kept, n > 0) {
            if let Err(e) = tree.flush() {
                tracing::warn!(error = %e, "session token store: a revocation was not written out");
            }
        }
        n
    }

    /// Forgets every token expired at `now_us`.
    pub fn purge_expired(&self, now_us: u64) {
        self.tokens.retain(|key, info| {
            let live = now_us < info.expires_us;
            if !live {
                self.keep(key, None);
            }
            live
        });
    }

    /// Number of tokens held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Brings the table below `tokens_max`: first by sweeping expired tokens,
    /// then by dropping the tokens closest to expiry. Concurrent issuers may
    /// each insert after this, so the bound holds to within the number of threads.
    fn make_room(&self, now_us: u64) {
        self.purge_expired(now_us);
        while self.tokens.len() >= self.tokens_max {
            let oldest = self
                .tokens
                .iter()
                .min_by_key(|entry| entry.value().expires_us)
                .map(|entry| *entry.key());
            match oldest {
                Some(key) => {
                    self.tokens.remove(&key);
                    self.keep(&key, None);
                }
                None => break,
            }
        }
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random generator must work");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_732_051_200_000_000;

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("sessions").unwrap()
    }

    /// What a restart sees: a new store on the same tree.
    #[test]
    fn kept_tokens_outlive_the_store_and_revocations_too() {
        let t = tree();
        let ttl = 60 * 1_000_000;
        let first = TokenStore::new(ttl, 10).keep_in(t.clone(), NOW);
        let (id_a, a) = first.issue("alice", Role::Trader, Cod::Account, NOW);
        let (_, b) = first.issue("bob", Role::Trader, Cod::Off, NOW);
        let (_, c) = first.issue("carol", Role::Viewer, Cod::Off, NOW - ttl / 2);
        assert!(first.revoke(&b));
        // Neither key nor value holds a token.
        for (k, v) in t.iter().flatten() {
            for token in [&a, &b, &c] {
                let raw = token.as_bytes();
                assert!(!k.windows(raw.len()).any(|w| w == raw) && !v.windows(raw.len()).any(|w| w == raw));
            }
        }
        drop(first);

        let later = NOW + ttl / 2 + 1;
        let second = TokenStore::new(ttl, 10).keep_in(t.clone(), later);
        let info = second.validate(&a, later).expect("alice resumes");
        assert_eq!((info.user.as_str(), info.session_id, info.cod), ("alice", id_a, Cod::Account));
        assert_eq!(second.validate(&b, later), Err(AuthError::TokenUnknown), "a logout holds");
        assert_eq!(second.validate(&c, later), Err(AuthError::TokenUnknown), "expired, dropped at load");
        // Session ids go on from where they were.
        let (id_d, _) = second.issue("dave", Role::Trader, Cod::Off, later);
        assert!(id_d > id_a + 2, "{id_d} after {id_a}");
        // Only alice's and dave's remain (and the next id).
        assert_eq!(t.len(), 3);
        assert_eq!(second.revoke_user("alice"), 1);
        assert_eq!(TokenStore::new(ttl, 10).keep_in(t, later).validate(&a, later), Err(AuthError::TokenUnknown));
    }

    #[test]
    fn issued_token_validates_to_its_session() {
        let store = TokenStore::default();
        let (id, token) = store.issue("alice", Role::Trader, Cod::Account, NOW);
        assert_eq!(token.len(), TOKEN_BYTES * 2);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        let info = store.validate(&token, NOW + 1).unwrap();
        assert_eq!(
            info,
            SessionInfo {
                user: "alice".into(),
                role: Role::Trader,
                session_id: id,
                cod: Cod::Account,
                expires_us: NOW + TOKEN_TTL_US_DEFAULT
            }
        );
    }

    #[test]
    fn session_ids_and_tokens_are_distinct() {
        let store = TokenStore::default();
        let (id1, t1) = store.issue("alice", Role::Trader, Cod::Off, NOW);
        let (id2, t2) = store.issue("alice", Role::Trader, Cod::Off, NOW);
        assert_ne!(id1, id2);
        assert_ne!(t1, t2);
        assert!(id1 >= 1 && id2 >= 1);
    }

    #[test]
    fn token_expires_at_its_ttl() {
        let ttl = 60 * 1_000_000;
        let store = TokenStore::new(ttl, 10);
        let (_, token) = store.issue("bob", Role::Viewer, Cod::Off, NOW);
        assert!(store.validate(&token, NOW + ttl - 1).is_ok());
        assert_eq!(
            store.validate(&token, NOW + ttl),
            Err(AuthError::TokenExpired)
        );
        // Forgotten once seen expired.
        assert!(store.is_empty());
        assert_eq!(
            store.validate(&token, NOW + ttl),
            Err(AuthError::TokenUnknown)
        );
    }

    #[test]
    fn default_ttl_is_24_hours() {
        let store = TokenStore::default();
        let (_, token) = store.issue("bob", Role::Trader, Cod::Off, NOW);
        let day = 86_400 * 1_000_000;
        assert!(store.validate(&token, NOW + day - 1).is_ok());
        assert_eq!(
            store.validate(&token, NOW + day),
            Err(AuthError::TokenExpired)
        );
    }

    #[test]
    fn unknown_and_revoked_tokens_are_refused() {
        let store = TokenStore::default();
        assert_eq!(store.validate("00", NOW), Err(AuthError::TokenUnknown));
        assert_eq!(store.validate("", NOW), Err(AuthError::TokenUnknown));
        let (_, token) = store.issue("carol", Role::Operator, Cod::Off, NOW);
        assert!(store.revoke(&token));
        assert!(!store.revoke(&token));
        assert_eq!(store.validate(&token, NOW), Err(AuthError::TokenUnknown));
    }

    #[test]
    fn revoke_user_ends_only_that_users_sessions() {
        let store = TokenStore::default();
        let (_, a1) = store.issue("alice", Role::Trader, Cod::Off, NOW);
        let (_, a2) = store.issue("alice", Role::Trader, Cod::Off, NOW);
        let (_, b) = store.issue("bob", Role::Trader, Cod::Off, NOW);
        assert_eq!(store.revoke_user("alice"), 2);
        assert!(store.validate(&a1, NOW).is_err());
        assert!(store.validate(&a2, NOW).is_err());
        assert!(store.validate(&b, NOW).is_ok());
    }

    #[test]
    fn bounded_sweeps_expired_first_then_drops_the_oldest() {
        let ttl = 1_000;
        let store = TokenStore::new(ttl, 3);
        let (_, expired) = store.issue("u0", Role::Trader, Cod::Off, NOW - 2 * ttl);
        let (_, older) = store.issue("u1", Role::Trader, Cod::Off, NOW - 10);
        let (_, old) = store.issue("u2", Role::Trader, Cod::Off, NOW - 5);
        // Full: the expired one makes room.
        let (_, t3) = store.issue("u3", Role::Trader, Cod::Off, NOW);
        assert_eq!(store.len(), 3);
        assert_eq!(store.validate(&expired, NOW), Err(AuthError::TokenUnknown));
        // Full of live tokens: the one closest to expiry goes.
        let (_, t4) = store.issue("u4", Role::Trader, Cod::Off, NOW);
        assert_eq!(store.len(), 3);
        assert_eq!(store.validate(&older, NOW), Err(AuthError::TokenUnknown));
        for token in [&old, &t3, &t4] {
            assert!(store.validate(token, NOW).is_ok());
        }
    }

    #[test]
    fn purge_forgets_only_expired_tokens() {
        let store = TokenStore::new(100, 10);
        let (_, early) = store.issue("a", Role::Trader, Cod::Off, NOW);
        let (_, late) = store.issue("b", Role::Trader, Cod::Off, NOW + 50);
        store.purge_expired(NOW + 100);
        assert_eq!(store.len(), 1);
        assert_eq!(
            store.validate(&early, NOW + 100),
            Err(AuthError::TokenUnknown)
        );
        assert!(store.validate(&late, NOW + 100).is_ok());
    }
}
