//! The three roles of PROTOCOL.md section 3 and their wire names.
//!
//! `trader` trades its own account, `operator` runs the `admin.*` operations
//! and never trades, `viewer` reads market data only (and is what an
//! unauthenticated connection is). The type itself is the wire type of
//! `bourse-protocol`, so a role read here is the role written in `auth`'s
//! result; this file adds its names for logs, config and the audit trail.

pub use bourse_protocol::msg::Role;

/// The wire names of [`Role`].
pub trait RoleExt: Sized {
    /// The wire name (`"trader"`, `"operator"`, `"viewer"`).
    fn as_str(&self) -> &'static str;
    /// The role with this wire name, if any (exact, lower case).
    fn parse(name: &str) -> Option<Self>;
}

impl RoleExt for Role {
    fn as_str(&self) -> &'static str {
        match self {
            Role::Trader => "trader",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "trader" => Some(Role::Trader),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_wire() {
        for role in [Role::Trader, Role::Operator, Role::Viewer] {
            assert_eq!(<Role as RoleExt>::parse(role.as_str()), Some(role));
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        assert_eq!(<Role as RoleExt>::parse("admin"), None);
        assert_eq!(<Role as RoleExt>::parse("Trader"), None);
    }
}
