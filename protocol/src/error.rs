//! Error codes and error bodies: how the exchange tells a client that a
//! request did not do what it asked (PROTOCOL.md section 8).
//!
//! Every refusal carries a stable string `code`, its number `num` (family
//! base + position in the family), a human `msg`, whether a retry may
//! succeed, and the `outcome`: `rejected` means nothing happened, `unknown`
//! means the client must reconcile (by `cl_id`) before acting again.

use serde::{Deserialize, Serialize};

/// Every error code of PROTOCOL.md section 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // 1xxx protocol
    BadRequest,
    UnknownOp,
    UnsupportedEncoding,
    FrameTooLarge,
    TooManySubscriptions,
    UnknownInstrument,
    UnknownAsset,
    AlreadyExists,
    // 2xxx auth
    AuthRequired,
    BadCredentials,
    BadSignature,
    TsOutsideWindow,
    NonceReused,
    TokenExpired,
    PermissionDenied,
    // 3xxx order
    UnknownOrder,
    InsufficientFunds,
    PriceTick,
    LotSize,
    MinQty,
    PriceBand,
    PostOnlyWouldTake,
    FokUnfilled,
    MarketClosed,
    InvalidAmend,
    /// An extension: an order that could rest, from an account at its
    /// limit of open orders.
    TooManyOpenOrders,
    // 4xxx throttling
    RateLimited,
    SlowConsumer,
    // 5xxx server
    Internal,
    Timeout,
    NotLeader,
    ShuttingDown,
    Overloaded,
}

impl ErrorCode {
    /// Every code, in numbering order.
    pub const ALL: [ErrorCode; 33] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownOp,
        ErrorCode::UnsupportedEncoding,
        ErrorCode::FrameTooLarge,
        ErrorCode::TooManySubscriptions,
        ErrorCode::UnknownInstrument,
        ErrorCode::UnknownAsset,
        ErrorCode::AlreadyExists,
        ErrorCode::AuthRequired,
        ErrorCode::BadCredentials,
        ErrorCode::BadSignature,
        ErrorCode::TsOutsideWindow,
        ErrorCode::NonceReused,
        ErrorCode::TokenExpired,
        ErrorCode::PermissionDenied,
        ErrorCode::UnknownOrder,
        ErrorCode::InsufficientFunds,
        ErrorCode::PriceTick,
        ErrorCode::LotSize,
        ErrorCode::MinQty,
        ErrorCode::PriceBand,
        ErrorCode::PostOnlyWouldTake,
        ErrorCode::FokUnfilled,
        ErrorCode::MarketClosed,
        ErrorCode::InvalidAmend,
        ErrorCode::TooManyOpenOrders,
        ErrorCode::RateLimited,
        ErrorCode::SlowConsumer,
        ErrorCode::Internal,
        ErrorCode::Timeout,
        ErrorCode::NotLeader,
        ErrorCode::ShuttingDown,
        ErrorCode::Overloaded,
    ];

    /// The wire string, as serde writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::UnsupportedEncoding => "unsupported_encoding",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::UnknownInstrument => "unknown_instrument",
            ErrorCode::UnknownAsset => "unknown_asset",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::AuthRequired => "auth_required",
            ErrorCode::BadCredentials => "bad_credentials",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::TsOutsideWindow => "ts_outside_window",
            ErrorCode::NonceReused => "nonce_reused",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::UnknownOrder => "unknown_order",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::PriceTick => "price_tick",
            ErrorCode::LotSize => "lot_size",
            ErrorCode::MinQty => "min_qty",
            ErrorCode::PriceBand => "price_band",
            ErrorCode::PostOnlyWouldTake => "post_only_would_take",
            ErrorCode::FokUnfilled => "fok_unfilled",
            ErrorCode::MarketClosed => "market_closed",
            ErrorCode::InvalidAmend => "invalid_amend",
            ErrorCode::TooManyOpenOrders => "too_many_open_orders",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::Internal => "internal",
            ErrorCode::Timeout => "timeout",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Overloaded => "overloaded",
        }
    }

    /// The numeric code: family base (1000 protocol, 2000 auth, 3000 order,
    /// 4000 throttling, 5000 server) plus the position in the family,
    /// counting from 1. `insufficient_funds` is 3002.
    pub const fn num(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 1001,
            ErrorCode::UnknownOp => 1002,
            ErrorCode::UnsupportedEncoding => 1003,
            ErrorCode::FrameTooLarge => 1004,
            ErrorCode::TooManySubscriptions => 1005,
            ErrorCode::UnknownInstrument => 1006,
            ErrorCode::UnknownAsset => 1007,
            ErrorCode::AlreadyExists => 1008,
            ErrorCode::AuthRequired => 2001,
            ErrorCode::BadCredentials => 2002,
            ErrorCode::BadSignature => 2003,
            ErrorCode::TsOutsideWindow => 2004,
            ErrorCode::NonceReused => 2005,
            ErrorCode::TokenExpired => 2006,
            ErrorCode::PermissionDenied => 2007,
            ErrorCode::UnknownOrder => 3001,
            ErrorCode::InsufficientFunds => 3002,
            ErrorCode::PriceTick => 3003,
            ErrorCode::LotSize => 3004,
            ErrorCode::MinQty => 3005,
            ErrorCode::PriceBand => 3006,
            ErrorCode::PostOnlyWouldTake => 3007,
            ErrorCode::FokUnfilled => 3008,
            ErrorCode::MarketClosed => 3009,
            ErrorCode::InvalidAmend => 3010,
            ErrorCode::TooManyOpenOrders => 3011,
            ErrorCode::RateLimited => 4001,
            ErrorCode::SlowConsumer => 4002,
            ErrorCode::Internal => 5001,
            ErrorCode::Timeout => 5002,
            ErrorCode::NotLeader => 5003,
            ErrorCode::ShuttingDown => 5004,
            ErrorCode::Overloaded => 5005,
        }
    }

    /// The code with this number, if any.
    pub fn from_num(num: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.num() == num)
    }

    /// The code with this wire string, if any.
    pub fn from_str_code(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether a retry of the same request may succeed without the client
    /// changing anything: throttling, failover, overload, timeout, shutdown.
    pub const fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::NotLeader
                | ErrorCode::Overloaded
                | ErrorCode::Timeout
                | ErrorCode::ShuttingDown
        )
    }

    /// The outcome a refusal with this code has by default: `unknown` when
    /// the request may have taken effect without an answer (timeout,
    /// failover), `rejected` otherwise.
    pub const fn default_outcome(self) -> Outcome {
        match self {
            ErrorCode::Timeout | ErrorCode::NotLeader => Outcome::Unknown,
            _ => Outcome::Rejected,
        }
    }

    /// Whether this refusal counts towards closing an abusive connection
    /// (PROTOCOL.md section 1: [`ABUSE_ERRORS_MAX`] within [`ABUSE_WINDOW_MS`]).
    pub const fn counts_as_abuse(self) -> bool {
        matches!(
            self,
            ErrorCode::BadRequest
                | ErrorCode::UnknownOp
                | ErrorCode::UnknownInstrument
                | ErrorCode::TooManySubscriptions
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Abusive refusals a connection may collect within [`ABUSE_WINDOW_MS`];
/// the next one closes it with close code 1008.
pub const ABUSE_ERRORS_MAX: u32 = 20;
/// The sliding window over which abusive refusals are counted.
pub const ABUSE_WINDOW_MS: u64 = 10_000;

/// What happened to a refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Nothing happened.
    Rejected,
    /// The server cannot say; reconcile by `cl_id`.
    Unknown,
}

/// The `err` object of a failed response, and the exchange's error value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {msg}")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub num: u16,
    pub msg: String,
    pub retryable: bool,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The error type of the exchange's request handling: an [`ErrorBody`].
pub type Error = ErrorBody;

impl ErrorBody {
    /// An error with the code's number, retryability and default outcome.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            num: code.num(),
            msg: msg.into(),
            retryable: code.retryable(),
            outcome: code.default_outcome(),
            retry_after_ms: None,
        }
    }

    /// `rate_limited` with the time after which a retry may pass.
    pub fn rate_limited(retry_after_ms: u64) -> ErrorBody {
        ErrorBody::new(ErrorCode::RateLimited, "rate limit exceeded")
            .with_retry_after(retry_after_ms)
    }

    /// Shorthand for `bad_request`.
    pub fn bad_request(msg: impl Into<String>) -> ErrorBody {
        ErrorBody::new(ErrorCode::BadRequest, msg)
    }

    /// Sets `retry_after_ms` (and marks the error retryable).
    pub fn with_retry_after(mut self, ms: u64) -> ErrorBody {
        self.retry_after_ms = Some(ms);
        self.retryable = true;
        self
    }

    /// Overrides the outcome, for example `unknown` for an internal error
    /// raised after a change may have been made durable.
    pub fn with_outcome(mut self, outcome: Outcome) -> ErrorBody {
        self.outcome = outcome;
        self
    }
}

impl From<ErrorCode> for ErrorBody {
    fn from(code: ErrorCode) -> ErrorBody {
        ErrorBody::new(code, code.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_families() {
        let expect: [(ErrorCode, u16, &str); 33] = [
            (ErrorCode::BadRequest, 1001, "bad_request"),
            (ErrorCode::UnknownOp, 1002, "unknown_op"),
            (ErrorCode::UnsupportedEncoding, 1003, "unsupported_encoding"),
            (ErrorCode::FrameTooLarge, 1004, "frame_too_large"),
            (
                ErrorCode::TooManySubscriptions,
                1005,
                "too_many_subscriptions",
            ),
            (ErrorCode::UnknownInstrument, 1006, "unknown_instrument"),
            (ErrorCode::UnknownAsset, 1007, "unknown_asset"),
            (ErrorCode::AlreadyExists, 1008, "already_exists"),
            (ErrorCode::AuthRequired, 2001, "auth_required"),
            (ErrorCode::BadCredentials, 2002, "bad_credentials"),
            (ErrorCode::BadSignature, 2003, "bad_signature"),
            (ErrorCode::TsOutsideWindow, 2004, "ts_outside_window"),
            (ErrorCode::NonceReused, 2005, "nonce_reused"),
            (ErrorCode::TokenExpired, 2006, "token_expired"),
            (ErrorCode::PermissionDenied, 2007, "permission_denied"),
            (ErrorCode::UnknownOrder, 3001, "unknown_order"),
            (ErrorCode::InsufficientFunds, 3002, "insufficient_funds"),
            (ErrorCode::PriceTick, 3003, "price_tick"),
            (ErrorCode::LotSize, 3004, "lot_size"),
            (ErrorCode::MinQty, 3005, "min_qty"),
            (ErrorCode::PriceBand, 3006, "price_band"),
            (ErrorCode::PostOnlyWouldTake, 3007, "post_only_would_take"),
            (ErrorCode::FokUnfilled, 3008, "fok_unfilled"),
            (ErrorCode::MarketClosed, 3009, "market_closed"),
            (ErrorCode::InvalidAmend, 3010, "invalid_amend"),
            (ErrorCode::TooManyOpenOrders, 3011, "too_many_open_orders"),
            (ErrorCode::RateLimited, 4001, "rate_limited"),
            (ErrorCode::SlowConsumer, 4002, "slow_consumer"),
            (ErrorCode::Internal, 5001, "internal"),
            (ErrorCode::Timeout, 5002, "timeout"),
            (ErrorCode::NotLeader, 5003, "not_leader"),
            (ErrorCode::ShuttingDown, 5004, "shutting_down"),
            (ErrorCode::Overloaded, 5005, "overloaded"),
        ];
        for (code, num, s) in expect {
            assert_eq!(code.num(), num, "{s}");
            assert_eq!(code.as_str(), s);
            assert_eq!(ErrorCode::from_num(num), Some(code));
            assert_eq!(ErrorCode::from_str_code(s), Some(code));
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{s}\""));
            assert_eq!(
                serde_json::from_str::<ErrorCode>(&format!("\"{s}\"")).unwrap(),
                code
            );
        }
        assert_eq!(
            ErrorCode::ALL.to_vec(),
            expect.iter().map(|e| e.0).collect::<Vec<_>>()
        );
        assert_eq!(ErrorCode::from_num(3012), None);
    }

    #[test]
    fn retryable_and_outcome_defaults() {
        let retryable: Vec<_> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorCode::RateLimited,
                ErrorCode::Timeout,
                ErrorCode::NotLeader,
                ErrorCode::ShuttingDown,
                ErrorCode::Overloaded
            ]
        );
        assert_eq!(
            ErrorBody::from(ErrorCode::Timeout).outcome,
            Outcome::Unknown
        );
        assert_eq!(
            ErrorBody::from(ErrorCode::NotLeader).outcome,
            Outcome::Unknown
        );
        assert_eq!(
            ErrorBody::from(ErrorCode::Internal).outcome,
            Outcome::Rejected
        );
        assert_eq!(
            ErrorBody::from(ErrorCode::InsufficientFunds).outcome,
            Outcome::Rejected
        );
    }

    #[test]
    fn body_matches_protocol_example() {
        let body = ErrorBody::new(
            ErrorCode::InsufficientFunds,
            "needs 150.00 USD, 120.00 available",
        );
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"code":"insufficient_funds","num":3002,"msg":"needs 150.00 USD, 120.00 available","retryable":false,"outcome":"rejected"}"#
        );
        let limited = ErrorBody::rate_limited(250);
        let v = serde_json::to_value(&limited).unwrap();
        assert_eq!(v["retryable"], true);
        assert_eq!(v["retry_after_ms"], 250);
        assert_eq!(v["num"], 4001);
        assert_eq!(limited.to_string(), "rate_limited: rate limit exceeded");
    }
}
