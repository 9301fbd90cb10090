//! Authentication: passwords, API-key signatures, nonces, session tokens, rate limits.
//!
//! This module owns every decision about *who* is on the other end of a
//! connection and *how fast* they may go, as plain synchronous Rust that the
//! session actor calls (PROTOCOL.md section 3, codes in section 8). Nothing here
//! reads the clock: times are passed in as microseconds since the Unix epoch,
//! so every rule (the 5 s signature window, nonce memory, token expiry) is
//! testable without sleeping. The rate limiters are the one exception: they
//! take a `governor` clock, which tests replace with a fake one.
//!
//! * [`password`]: Argon2id PHC hashes; only a slow salted hash is ever stored.
//! * [`signature`]: the API-key signing string, HMAC-SHA256 and Ed25519
//!   verification, API-key generation.
//! * [`nonce`]: the timestamp window and the memory of accepted nonces that
//!   refuses a replayed signature.
//! * [`token`]: session tokens for `session.resume`.
//! * [`users`]: the in-memory directory of users and API keys (rebuilt from the
//!   ledger's events) and the two login paths built on it.
//! * [`limits`]: per-account and per-connection rate limits (`rate_limited`).
//! * [`totp`]: RFC 6238 one-time passwords for the optional `otp` login field.
//! * [`error`]: [`AuthError`], each variant tied to one protocol error code.
//! * [`role`]: the wire names of the protocol's [`Role`].
//!
//! State shared between sessions (directory, nonces, tokens, per-account
//! limits) lives in `DashMap`s; no lock is held across a call.

pub mod error;
pub mod limits;
pub mod nonce;
pub mod password;
pub mod role;
pub mod signature;
pub mod token;
pub mod totp;
pub mod users;

pub use error::AuthError;
pub use limits::{AccountLimiter, RateLimits, RateQuotas, RetryAfterMs};
pub use nonce::NonceCache;
pub use password::{hash_password, hash_password_with, verify_password, PasswordParams};
pub use role::{Role, RoleExt};
pub use signature::{SigAlg, SigAlgExt};
pub use token::{SessionInfo, TokenStore};
pub use users::{
    authenticate_key, authenticate_password, Credential, Directory, KeyAuth, FEE_ACCOUNT,
};
