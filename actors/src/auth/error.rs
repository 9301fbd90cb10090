//! The ways an authentication step can fail, each tied to exactly one
//! PROTOCOL.md error code (section 8), so the session actor turns an
//! [`AuthError`] into a wire error without a second mapping table.
//!
//! Messages are deliberately vague where precision would help an attacker:
//! an unknown user, a wrong password and a disabled account all read the same.

use bourse_protocol::ErrorCode;

/// A refused authentication step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or key, wrong password, or an account that cannot log in.
    #[error("bad user, password or key")]
    BadCredentials,
    /// The signature does not verify for this key, is malformed, or names an
    /// algorithm the key was not registered with.
    #[error("signature does not verify")]
    BadSignature,
    /// The signed timestamp is more than the allowed window away from the server clock.
    #[error("ts is outside the accepted window of the server clock")]
    TsOutsideWindow,
    /// This nonce was already accepted for this key within the window: a replay.
    #[error("nonce already used")]
    NonceReused,
    /// The session token expired.
    #[error("session token expired")]
    TokenExpired,
    /// The session token is not known (revoked, issued before a restart or
    /// by another node, or evicted at capacity).
    #[error("session token expired or unknown")]
    TokenUnknown,
    /// The request is malformed (for example an empty or over-long nonce).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A bounded table is full of live entries; the client may retry shortly.
    #[error("server busy, retry")]
    Overloaded,
}

impl AuthError {
    /// The PROTOCOL.md error code for this failure.
    ///
    /// An unknown token answers `token_expired`: to the client both mean the
    /// same thing (authenticate again), and the server keeps tokens in memory
    /// only, so every token from before a restart is unknown.
    pub const fn code(&self) -> ErrorCode {
        match self {
            AuthError::BadCredentials => ErrorCode::BadCredentials,
            AuthError::BadSignature => ErrorCode::BadSignature,
            AuthError::TsOutsideWindow => ErrorCode::TsOutsideWindow,
            AuthError::NonceReused => ErrorCode::NonceReused,
            AuthError::TokenExpired | AuthError::TokenUnknown => ErrorCode::TokenExpired,
            AuthError::BadRequest(_) => ErrorCode::BadRequest,
            AuthError::Overloaded => ErrorCode::Overloaded,
        }
    }

    /// The PROTOCOL.md error code string for this failure (`"bad_signature"`, ...).
    pub const fn code_str(&self) -> &'static str {
        self.code().as_str()
    }

    /// Whether the same request may succeed if simply sent again later.
    pub const fn is_retryable(&self) -> bool {
        self.code().retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_protocol_codes() {
        assert_eq!(AuthError::BadCredentials.code_str(), "bad_credentials");
        assert_eq!(AuthError::BadSignature.code_str(), "bad_signature");
        assert_eq!(AuthError::TsOutsideWindow.code_str(), "ts_outside_window");
        assert_eq!(AuthError::NonceReused.code_str(), "nonce_reused");
        assert_eq!(AuthError::TokenExpired.code_str(), "token_expired");
        assert_eq!(AuthError::TokenUnknown.code_str(), "token_expired");
        assert_eq!(AuthError::BadRequest("x").code_str(), "bad_request");
        assert_eq!(AuthError::Overloaded.code_str(), "overloaded");
        assert_eq!(AuthError::NonceReused.code().num(), 2005);
        assert!(AuthError::Overloaded.is_retryable());
        assert!(!AuthError::BadSignature.is_retryable());
    }
}
