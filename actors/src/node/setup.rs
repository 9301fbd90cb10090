//! A new exchange's first commands: the operator `admin`, then the
//! configuration's assets, instruments, users and their deposits.
//!
//! [`plan`] decides every one of them on a scratch exchange before any is
//! submitted, so a configuration the exchange would refuse (a symbol with a
//! stream key's separator, a grid not exact at its asset's scale, a user
//! named `admin`) stops the first start with nothing written. Half a setup
//! in the log would leave the data directory no longer fresh, and a start
//! with the corrected configuration would never make the rest. The engine
//! is deterministic, so the ids the scratch exchange gives are the ids the
//! real one gives from an empty log.

use bourse_engine::{AccountId, Command, Exchange, Role};

use crate::config::Config;
use crate::session::listing_with;
use crate::wire;

/// The first start's commands, each accepted in turn by a fresh exchange;
/// else what the configuration gets wrong. `hash` makes a password's
/// stored hash. Not part of [`Config::validate`]: a node whose log is not
/// new never runs these, and a configuration its exchange was made from
/// under older rules must still start it.
pub fn plan(cfg: &Config, admin_password: &str, hash: &dyn Fn(&str) -> String) -> Result<Vec<Command>, String> {
    let mut ex = Exchange::new();
    let mut cmds = Vec::new();
    let mut run = |ex: &mut Exchange, cmd: Command, what: &dyn Fn() -> String| match ex.execute(cmd.clone(), 0).result {
        Ok(_) => {
            cmds.push(cmd);
            Ok(())
        }
        Err(e) => Err(format!("{}: {}", what(), e.msg)),
    };
    let root = AccountId(0);
    let admin = Command::CreateUser { user: "admin".into(), role: Role::Operator, password_hash: hash(admin_password), by: root };
    run(&mut ex, admin, &|| "the operator admin".into())?;
    for a in &cfg.assets {
        let cmd = Command::CreateAsset { name: a.asset.clone(), scale: a.scale, by: root };
        run(&mut ex, cmd, &|| format!("asset {}", a.asset))?;
    }
    for i in &cfg.instruments {
        let what = || format!("instrument {}", i.sym);
        let listing = listing_with(&|name| ex.ledger.asset_by_name(name).map(|a| a.id), i)
            .map_err(|e| format!("{}: {}", what(), e.msg))?;
        run(&mut ex, Command::CreateInstrument { listing, by: root }, &what)?;
    }
    for u in &cfg.users {
        let role = match u.role.as_str() {
            "operator" => Role::Operator,
            "viewer" => Role::Viewer,
            _ => Role::Trader,
        };
        let cmd = Command::CreateUser { user: u.user.clone(), role, password_hash: hash(&u.password), by: root };
        run(&mut ex, cmd, &|| format!("user {}", u.user))?;
    }
    for u in &cfg.users {
        let account = ex.ledger.account_of(&u.user).ok_or_else(|| format!("user {} missing", u.user))?;
        for (asset, amount) in &u.deposits {
            let what = || format!("user {}: deposit of {asset}", u.user);
            let a = ex.ledger.asset_by_name(asset).ok_or_else(|| format!("{}: unknown asset", what()))?;
            let (id, scale) = (a.id, a.scale);
            let amount = wire::amount(scale, amount).map_err(|e| format!("{}: {}", what(), e.msg))?;
            run(&mut ex, Command::Deposit { account, asset: id, amount, by: root }, &what)?;
        }
    }
    Ok(cmds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AssetConf, InstrumentConf, UserConf};

    fn no_hash(_: &str) -> String {
        String::new()
    }

    /// USD and BTC, BTC-USD, and alice with a deposit of each (made in the
    /// order of their names).
    fn market() -> Config {
        let asset = |asset: &str, scale| AssetConf { asset: asset.into(), scale };
        let user = |name: &str| UserConf {
            user: name.into(),
            password: format!("{name}-pass"),
            role: "trader".into(),
            deposits: [("USD".to_string(), "1000".to_string()), ("BTC".to_string(), "1".to_string())].into(),
        };
        Config {
            assets: vec![asset("USD", 2), asset("BTC", 8)],
            instruments: vec![InstrumentConf {
                sym: "BTC-USD".into(),
                base: "BTC".into(),
                quote: "USD".into(),
                tick: "1".into(),
                lot: "0.01".into(),
                min_qty: "0.01".into(),
                ref_px: Some("60000".into()),
                band_pct: 10,
                maker_fee_bps: 5,
                taker_fee_bps: 10,
            }],
            users: vec![user("alice")],
            ..Config::default()
        }
    }

    #[test]
    fn a_valid_configuration_plans_every_item_in_order() {
        let cmds = plan(&market(), "pw", &|pw| format!("hash of {pw}")).expect("valid");
        let kinds: Vec<String> = cmds
            .iter()
            .map(|c| match c {
                Command::CreateUser { user, password_hash, .. } => format!("user {user} {password_hash}"),
                Command::CreateAsset { name, .. } => format!("asset {name}"),
                Command::CreateInstrument { listing, .. } => format!("instrument {}", listing.sym),
                Command::Deposit { account, asset, amount, .. } => format!("deposit {} {} {}", account.0, asset.0, amount.0),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "user admin hash of pw",
                "asset USD",
                "asset BTC",
                "instrument BTC-USD",
                "user alice hash of alice-pass",
                "deposit 2 2 100000000",
                "deposit 2 1 100000",
            ]
        );
    }

    #[test]
    fn what_the_exchange_would_refuse_is_named_before_anything_is_written() {
        type Change = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|c| c.instruments[0].sym = "BTC:USD".into()), "instrument BTC:USD"),
            (Box::new(|c| c.instruments[0].ref_px = Some("0".into())), "ref_px must be positive"),
            (Box::new(|c| c.instruments[0].tick = "0.001".into()), "instrument BTC-USD"),
            (
                Box::new(|c| {
                    let again = c.instruments[0].clone();
                    c.instruments.push(again);
                }),
                "instrument BTC-USD exists",
            ),
            (
                Box::new(|c| {
                    let mut u = c.users[0].clone();
                    u.user = "admin".into();
                    c.users.push(u);
                }),
                "user admin",
            ),
            (Box::new(|c| c.users[0].user = "a b".into()), "user a b"),
        ];
        for (change, want) in cases {
            let mut cfg = market();
            change(&mut cfg);
            let e = plan(&cfg, "pw", &no_hash).expect_err(want);
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
