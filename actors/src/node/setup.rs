//! The configuration's assets, instruments and users, made by the
//! exchange: all of them, and the operator `admin`, at a node's first
//! start ([`plan`]); at a later start those the configuration has gained
//! since ([`additions`]), so that an operator adds an instrument or a user
//! by adding it to the configuration and restarting.
//!
//! Every command is decided on a scratch exchange before any is submitted,
//! so a configuration the exchange would refuse (a symbol with a stream
//! key's separator, a grid not exact at its asset's scale, a user named
//! `admin`) stops the start with nothing written. Half a setup in the log
//! would leave a first start's data directory no longer fresh, and a start
//! with the corrected configuration would never make the rest. The engine
//! is deterministic, so the ids the scratch exchange gives are the ids the
//! real one gives.
//!
//! What already exists is matched by name (asset), symbol (instrument) and
//! user name, and never changed: an item whose settings differ from the
//! exchange's is named by [`differences`], for the log. A user's deposits
//! are made only when the user is made.

use bourse_engine::ledger::Ledger;
use bourse_engine::{AccountId, Command, Exchange, OrderBook, Role};

use crate::config::Config;
use crate::session::listing_with;
use crate::wire;

/// The operator every exchange is made with.
pub const ADMIN: &str = "admin";

/// The first start's commands, each accepted in turn by a fresh exchange;
/// else what the configuration gets wrong. `hash` makes a password's
/// stored hash. Not part of [`Config::validate`]: a configuration an
/// exchange was made from under older rules must still start it.
pub fn plan(cfg: &Config, admin_password: &str, hash: &dyn Fn(&str) -> String) -> Result<Vec<Command>, String> {
    make(&mut Exchange::new(), cfg, Some(admin_password), hash)
}

/// The commands that make what the configuration lists and `ledger` lacks,
/// each accepted in turn by a copy of it (made only when something is
/// missing); else what the configuration gets wrong about the new items.
pub fn additions(cfg: &Config, ledger: &Ledger, hash: &dyn Fn(&str) -> String) -> Result<Vec<Command>, String> {
    let missing = cfg.assets.iter().any(|a| ledger.asset_by_name(&a.asset).is_none())
        || cfg.instruments.iter().any(|i| !ledger.instruments.values().any(|s| s.sym == i.sym))
        || cfg.users.iter().any(|u| !ledger.users.contains_key(&u.user));
    if !missing {
        return Ok(Vec::new());
    }
    let mut ex = Exchange::new();
    ex.ledger = ledger.clone();
    ex.books = ledger.instruments.values().map(|s| OrderBook::new(s.clone())).collect();
    make(&mut ex, cfg, None, hash)
}

/// What the configuration says of an existing item that the exchange has
/// otherwise: one line each, for the log (the exchange's stands).
pub fn differences(cfg: &Config, ledger: &Ledger) -> Vec<String> {
    let mut out = Vec::new();
    for a in &cfg.assets {
        if let Some(have) = ledger.asset_by_name(&a.asset).filter(|have| have.scale != a.scale) {
            out.push(format!("asset {}: scale {} in the configuration, {} in the exchange", a.asset, a.scale, have.scale));
        }
    }
    for i in &cfg.instruments {
        let Some(have) = ledger.instruments.values().find(|s| s.sym == i.sym) else { continue };
        let Ok(want) = listing_with(&|name| ledger.asset_by_name(name).map(|a| a.id), i) else {
            out.push(format!("instrument {}: its configuration does not parse under the exchange's assets", i.sym));
            continue;
        };
        let fields = [
            ("base", want.base.0 != have.base.0),
            ("quote", want.quote.0 != have.quote.0),
            ("tick", (want.tick_raw, want.price_scale) != (have.tick_raw, have.price_scale)),
            ("lot", (want.lot_raw, want.qty_scale) != (have.lot_raw, have.qty_scale)),
            ("min_qty", want.min_qty != have.min_qty),
            ("ref_px", want.ref_px != have.ref_px),
            ("band_pct", want.band_pct != have.band_pct),
            ("maker_fee_bps", want.maker_fee_bps != have.maker_fee_bps),
            ("taker_fee_bps", want.taker_fee_bps != have.taker_fee_bps),
        ];
        let differ: Vec<&str> = fields.iter().filter(|f| f.1).map(|f| f.0).collect();
        if !differ.is_empty() {
            out.push(format!("instrument {}: {} differ from the exchange's", i.sym, differ.join(", ")));
        }
    }
    for u in &cfg.users {
        if let Some(have) = ledger.users.get(&u.user).filter(|have| have.role != role_of(&u.role)) {
            out.push(format!("user {}: role {} in the configuration, {} in the exchange", u.user, u.role, have.role.as_str()));
        }
    }
    out
}

fn role_of(name: &str) -> Role {
    match name {
        "operator" => Role::Operator,
        "viewer" => Role::Viewer,
        _ => Role::Trader,
    }
}

/// Decides on `ex` the commands that make the operator (when
/// `admin_password` is given) and each configured item `ex` lacks.
fn make(ex: &mut Exchange, cfg: &Config, admin_password: Option<&str>, hash: &dyn Fn(&str) -> String) -> Result<Vec<Command>, String> {
    let mut cmds = Vec::new();
    let mut run = |ex: &mut Exchange, cmd: Command, what: &dyn Fn() -> String| match ex.execute(cmd.clone(), 0).result {
        Ok(_) => {
            cmds.push(cmd);
            Ok(())
        }
        Err(e) => Err(format!("{}: {}", what(), e.msg)),
    };
    let root = AccountId(0);
    // What `ex` lacks, chosen before anything is made: an item the
    // configuration lists twice (or a user named `admin`) is made twice,
    // and refused the second time.
    let assets: Vec<_> = cfg.assets.iter().filter(|a| ex.ledger.asset_by_name(&a.asset).is_none()).collect();
    let instruments: Vec<_> = cfg.instruments.iter().filter(|i| !ex.ledger.instruments.values().any(|s| s.sym == i.sym)).collect();
    let made: Vec<_> = cfg.users.iter().filter(|u| !ex.ledger.users.contains_key(&u.user)).collect();
    if let Some(pw) = admin_password {
        let admin = Command::CreateUser { user: ADMIN.into(), role: Role::Operator, password_hash: hash(pw), by: root };
        run(ex, admin, &|| "the operator admin".into())?;
    }
    for a in assets {
        let cmd = Command::CreateAsset { name: a.asset.clone(), scale: a.scale, by: root };
        run(ex, cmd, &|| format!("asset {}", a.asset))?;
    }
    for i in instruments {
        let what = || format!("instrument {}", i.sym);
        let listing = listing_with(&|name| ex.ledger.asset_by_name(name).map(|a| a.id), i)
            .map_err(|e| format!("{}: {}", what(), e.msg))?;
        run(ex, Command::CreateInstrument { listing, by: root }, &what)?;
    }
    for u in &made {
        let cmd = Command::CreateUser { user: u.user.clone(), role: role_of(&u.role), password_hash: hash(&u.password), by: root };
        run(ex, cmd, &|| format!("user {}", u.user))?;
    }
    for u in &made {
        let account = ex.ledger.account_of(&u.user).ok_or_else(|| format!("user {} missing", u.user))?;
        for (asset, amount) in &u.deposits {
            let what = || format!("user {}: deposit of {asset}", u.user);
            let a = ex.ledger.asset_by_name(asset).ok_or_else(|| format!("{}: unknown asset", what()))?;
            let (id, scale) = (a.id, a.scale);
            let amount = wire::amount(scale, amount).map_err(|e| format!("{}: {}", what(), e.msg))?;
            run(ex, Command::Deposit { account, asset: id, amount, by: root }, &what)?;
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

    /// On an exchange made from a configuration, the same configuration
    /// adds nothing; one that gained an asset, an instrument and a user
    /// adds exactly those (the user's deposits with it), with the ids the
    /// exchange gives next; a changed setting of an existing item is named,
    /// never applied.
    #[test]
    fn a_later_start_adds_only_what_the_configuration_gained() {
        let cfg = market();
        let mut ex = Exchange::new();
        for cmd in plan(&cfg, "pw", &no_hash).expect("valid") {
            ex.execute(cmd, 1).result.expect("accepted");
        }
        assert!(additions(&cfg, &ex.ledger, &no_hash).expect("valid").is_empty());
        assert!(differences(&cfg, &ex.ledger).is_empty());
        let mut more = cfg.clone();
        more.assets.push(AssetConf { asset: "ETH".into(), scale: 8 });
        let mut eth = more.instruments[0].clone();
        (eth.sym, eth.base, eth.ref_px) = ("ETH-USD".into(), "ETH".into(), Some("3000".into()));
        more.instruments.push(eth);
        let mut bob = more.users[0].clone();
        bob.user = "bob".into();
        bob.deposits = [("ETH".to_string(), "2".to_string())].into();
        more.users.push(bob);
        more.instruments[0].maker_fee_bps = 7;
        more.assets[1].scale = 6;
        let cmds = additions(&more, &ex.ledger, &no_hash).expect("valid");
        let kinds: Vec<String> = cmds
            .iter()
            .map(|c| match c {
                Command::CreateAsset { name, .. } => format!("asset {name}"),
                Command::CreateInstrument { listing, .. } => format!("instrument {} base {}", listing.sym, listing.base.0),
                Command::CreateUser { user, .. } => format!("user {user}"),
                Command::Deposit { account, asset, amount, .. } => format!("deposit {} {} {}", account.0, asset.0, amount.0),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["asset ETH", "instrument ETH-USD base 3", "user bob", "deposit 3 3 200000000"]);
        assert_eq!(
            differences(&more, &ex.ledger),
            ["asset BTC: scale 6 in the configuration, 8 in the exchange", "instrument BTC-USD: maker_fee_bps differ from the exchange's"]
        );
        for cmd in cmds {
            ex.execute(cmd, 2).result.expect("accepted");
        }
        assert!(additions(&more, &ex.ledger, &no_hash).expect("valid").is_empty(), "made once");
        more.instruments[1].sym = "ETH:USD".into();
        let e = additions(&more, &ex.ledger, &no_hash).expect_err("refused");
        assert!(e.contains("instrument ETH:USD"), "{e}");
    }
}
