//! What a scenario needs before it measures: bench accounts (users with an
//! HMAC API key each, funded by operator deposits), optionally extra
//! instruments, and the grid and mid price of every instrument it trades.
//!
//! Accounts log in with API keys, not passwords: a password login costs a
//! deliberately slow hash on the server (Argon2id), which would turn a
//! load test into a password-hashing test. Creating a user still hashes
//! its password once, so account creation runs on a few operator
//! connections in parallel ([`ADMIN_CONNECTIONS_MAX`]).

use crate::target::Target;
use crate::wire::Client;
use anyhow::{anyhow, bail, Context as _};
use bourse_protocol::decimal;
use bourse_protocol::msg::{
    AmountArgs, ApiKeyCreateArgs, ApiKeyRes, AssetCreateArgs, AuthArgs, AuthRes, AvailableRes,
    BalancesRes, Channel, Cod, Empty, InstrumentCreateArgs, InstrumentState, InstrumentView,
    InstrumentsRes, KeyAuth, PasswordAuth, Role, SigAlg, SubscribeArgs, SubscribeRes,
    UnsubscribeArgs, UserArgs, UserCreateArgs, UserRes,
};
use bourse_protocol::{Encoding, ErrorBody, ErrorCode, ServerMessage, StreamEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Whole units of every asset a bench account is topped up with when it
/// has less than half of it: enough for every open order a scenario keeps,
/// small enough that an 8-decimal asset stays far below 2^53 raw units.
pub const DEPOSIT_WHOLE_UNITS: &str = "10000000";
/// Operator connections creating accounts at once (each user creation
/// hashes a password on the server).
pub const ADMIN_CONNECTIONS_MAX: usize = 4;
/// Times, and the pause between them, that set-up asks again when a user,
/// asset or instrument it has just created is not yet known to the
/// operation that needs it (see [`settled`]).
pub const NEW_NAME_WAIT_TRIES_MAX: u32 = 200;
pub const NEW_NAME_WAIT_MS: u64 = 10;
/// How long set-up waits for the `book.l1` snapshots that give mid prices.
pub const SNAPSHOT_WAIT_MS_MAX: u64 = 3_000;
/// Mid prices of the demo grid (`config.toml`), used for an instrument
/// whose book is empty when no `--mid` is given.
pub const DEMO_MIDS: [(&str, &str); 2] = [("BTC-USD", "60000"), ("ETH-USD", "3000")];
/// Quote asset, reference price and grid of instruments the bench lists
/// itself (`--extra-instruments`): tick x lot = 0.01 USD, exact in cents.
pub const EXTRA_QUOTE: &str = "USD";
pub const EXTRA_REF_PX: &str = "100";
pub const EXTRA_TICK: &str = "0.1";
pub const EXTRA_LOT: &str = "0.1";

/// A bench trading account and its API key.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: String,
    pub key: String,
    pub secret: String,
}

static NONCES: AtomicU64 = AtomicU64::new(0);

impl Account {
    /// `auth` arguments signed with the account's HMAC key now.
    pub fn auth_args(&self, cod: Cod) -> AuthArgs {
        let ts = crate::machine::now_us();
        let nonce = format!(
            "b{}-{}-{}",
            std::process::id(),
            ts,
            NONCES.fetch_add(1, Ordering::Relaxed)
        );
        let payload = bourse_protocol::msg::auth_payload(ts, &nonce, &self.key);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret.as_bytes());
        let sig = hex::encode(ring::hmac::sign(&key, payload.as_bytes()).as_ref());
        AuthArgs::Key(KeyAuth {
            key: self.key.clone(),
            ts,
            nonce,
            sig,
            alg: SigAlg::HmacSha256,
            cod: Some(cod),
        })
    }
}

/// Logs `client` in as `account`.
pub async fn login(client: &mut Client, account: &Account, cod: Cod) -> anyhow::Result<AuthRes> {
    client
        .call_ok::<AuthRes, _>("auth", &account.auth_args(cod))
        .await
        .with_context(|| format!("log in as {}", account.user))
}

/// An operator connection.
pub async fn admin(target: &Target, enc: Encoding) -> anyhow::Result<Client> {
    let mut c = Client::connect(&target.ws_url, enc).await?;
    let args = AuthArgs::Password(PasswordAuth {
        user: "admin".into(),
        password: target.admin_password()?.to_owned(),
        otp: None,
        cod: None,
    });
    let res: AuthRes = c
        .call_ok("auth", &args)
        .await
        .context("log in as the operator admin")?;
    if res.role != Role::Operator {
        bail!("user admin has role {:?}, not operator", res.role);
    }
    Ok(c)
}

/// Makes (or reuses) users `{prefix}0..{prefix}{n-1}`, gives each a new
/// HMAC API key, and deposits [`DEPOSIT_WHOLE_UNITS`] of every asset in
/// `assets` into each.
pub async fn accounts(
    target: &Target,
    prefix: &str,
    n: usize,
    assets: &[String],
) -> anyhow::Result<Vec<Account>> {
    let workers = n.clamp(1, ADMIN_CONNECTIONS_MAX);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let target = target.clone();
        let prefix = prefix.to_owned();
        let assets = assets.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut admin = admin(&target, Encoding::MsgPack).await?;
            let mut made = Vec::new();
            for i in (w..n).step_by(workers) {
                made.push((
                    i,
                    account(&mut admin, &format!("{prefix}{i}"), &assets).await?,
                ));
            }
            admin.close().await;
            anyhow::Ok(made)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, a)| a).collect())
}

async fn account(admin: &mut Client, user: &str, assets: &[String]) -> anyhow::Result<Account> {
    let create = UserCreateArgs {
        user: user.to_owned(),
        password: crate::target::random_hex(16)?,
        role: Role::Trader,
    };
    match admin
        .call::<UserRes, _>("admin.user.create", &create)
        .await?
    {
        Ok(_) => {}
        Err(e) if e.code == ErrorCode::AlreadyExists => {}
        Err(e) => bail!("admin.user.create {user}: {e}"),
    }
    let key: ApiKeyRes = settled(
        admin,
        "admin.apikey.create",
        &ApiKeyCreateArgs {
            user: user.to_owned(),
            alg: SigAlg::HmacSha256,
            public_key: None,
        },
    )
    .await?
    .map_err(|e| anyhow!("admin.apikey.create {user}: {e}"))?;
    let secret = key
        .secret
        .ok_or_else(|| anyhow!("admin.apikey.create gave no secret"))?;
    // Top up only what has run low, so that repeated runs on one server
    // never push a balance toward the exchange's largest amount.
    let held: BalancesRes = settled(
        admin,
        "admin.balances",
        &UserArgs {
            user: user.to_owned(),
        },
    )
    .await?
    .map_err(|e| anyhow!("admin.balances {user}: {e}"))?;
    let target: u64 = DEPOSIT_WHOLE_UNITS.parse().expect("a whole number");
    for asset in assets {
        let whole = held
            .balances
            .iter()
            .find(|b| &b.asset == asset)
            .map_or(0, |b| whole_units(&b.available));
        if whole >= target / 2 {
            continue;
        }
        let args = AmountArgs {
            user: user.to_owned(),
            asset: asset.clone(),
            amount: DEPOSIT_WHOLE_UNITS.to_owned(),
        };
        let _: AvailableRes = settled(admin, "admin.deposit", &args)
            .await?
            .map_err(|e| anyhow!("admin.deposit {asset} to {user}: {e}"))?;
    }
    Ok(Account {
        user: user.to_owned(),
        key: key.key,
        secret,
    })
}

/// Lists `k` bench instruments `BX1-USD..BXk-USD` (and their base assets)
/// unless they exist; returns their symbols with their mid prices.
pub async fn extra_instruments(
    admin: &mut Client,
    k: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for i in 1..=k {
        let asset = format!("BX{i}");
        let sym = format!("{asset}-{EXTRA_QUOTE}");
        let r = admin
            .call::<Empty, _>(
                "admin.asset.create",
                &AssetCreateArgs {
                    asset: asset.clone(),
                    scale: 8,
                },
            )
            .await?;
        if let Err(e) = r {
            if e.code != ErrorCode::AlreadyExists {
                bail!("admin.asset.create {asset}: {e}");
            }
        }
        let r = settled::<InstrumentView, _>(
            admin,
            "admin.instrument.create",
            &InstrumentCreateArgs {
                sym: sym.clone(),
                base: asset,
                quote: EXTRA_QUOTE.into(),
                tick: EXTRA_TICK.into(),
                lot: EXTRA_LOT.into(),
                min_qty: EXTRA_LOT.into(),
                ref_px: Some(EXTRA_REF_PX.into()),
                band_pct: None,
                maker_fee_bps: Some(5),
                taker_fee_bps: Some(10),
            },
        )
        .await?;
        if let Err(e) = r {
            if e.code != ErrorCode::AlreadyExists {
                bail!("admin.instrument.create {sym}: {e}");
            }
        }
        out.push((sym, EXTRA_REF_PX.to_owned()));
    }
    Ok(out)
}

/// The whole units of a decimal string (`"1234.56"` is 1234).
fn whole_units(s: &str) -> u64 {
    s.split('.')
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}

/// Whether a refusal names something just created that the part of the
/// server answering does not know yet.
fn not_yet_known(e: &ErrorBody) -> bool {
    matches!(
        e.code,
        ErrorCode::UnknownAsset | ErrorCode::UnknownInstrument
    ) || e.code == ErrorCode::BadRequest && e.msg.contains("unknown user")
}

/// Calls `op`, asking again (a bounded number of times) while the answer
/// is that a user, asset or instrument created a moment ago is unknown:
/// a creation's answer does not promise that every other operation sees
/// it at once.
pub async fn settled<R: DeserializeOwned, A: Serialize + ?Sized>(
    c: &mut Client,
    op: &str,
    args: &A,
) -> anyhow::Result<Result<R, ErrorBody>> {
    let mut tries = 0;
    loop {
        match c.call::<R, A>(op, args).await? {
            Err(e) if not_yet_known(&e) && tries < NEW_NAME_WAIT_TRIES_MAX => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(NEW_NAME_WAIT_MS)).await;
            }
            r => return Ok(r),
        }
    }
}

/// What the bench knows of an instrument: its grid and a mid price, all
/// in whole ticks and lots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentInfo {
    pub sym: String,
    pub base: String,
    pub quote: String,
    pub price_scale: u32,
    pub qty_scale: u32,
    /// Raw units (at `price_scale`) in one tick.
    pub tick_raw: u64,
    /// Raw units (at `qty_scale`) in one lot.
    pub lot_raw: u64,
    /// The minimum order size in lots.
    pub min_qty_lots: u64,
    /// The mid the bench quotes around, in ticks.
    pub mid_ticks: u64,
}

impl InstrumentInfo {
    /// Reads the grid from an `instruments` item, with `mid` as a price string.
    pub fn new(v: &InstrumentView, mid: &str) -> anyhow::Result<InstrumentInfo> {
        let err = |what: &str| anyhow!("{}: bad {what}", v.sym);
        let tick_raw = decimal::parse(&v.tick, v.price_scale).map_err(|_| err("tick"))?;
        let lot_raw = decimal::parse(&v.lot, v.qty_scale).map_err(|_| err("lot"))?;
        let min_raw = decimal::parse(&v.min_qty, v.qty_scale).map_err(|_| err("min_qty"))?;
        let mid_raw = decimal::parse(mid, v.price_scale).map_err(|_| err("mid price"))?;
        if tick_raw == 0 || lot_raw == 0 {
            bail!("{}: zero tick or lot", v.sym);
        }
        Ok(InstrumentInfo {
            sym: v.sym.clone(),
            base: v.base.clone(),
            quote: v.quote.clone(),
            price_scale: v.price_scale,
            qty_scale: v.qty_scale,
            tick_raw,
            lot_raw,
            min_qty_lots: (min_raw / lot_raw).max(1),
            mid_ticks: (mid_raw / tick_raw).max(1),
        })
    }

    /// The wire string of a price in ticks.
    pub fn px(&self, ticks: u64) -> String {
        decimal::format_on_grid(ticks, self.tick_raw, self.price_scale)
            .expect("bench prices are far inside u64")
    }

    /// The wire string of a quantity in lots.
    pub fn qty(&self, lots: u64) -> String {
        decimal::format_on_grid(lots, self.lot_raw, self.qty_scale)
            .expect("bench quantities are far inside u64")
    }

    /// `bps` basis points of the mid, in ticks (at least one).
    pub fn bps_ticks(&self, bps: u64) -> u64 {
        (self.mid_ticks * bps / 10_000).max(1)
    }
}

/// The instruments in trading state (only those named in `only`, when it
/// is not empty), each with a mid: `mids` first, then the middle of the
/// book's best bid and ask (`book.l1` snapshot), then [`DEMO_MIDS`], then
/// [`EXTRA_REF_PX`] for the bench's own instruments.
pub async fn instruments(
    client: &mut Client,
    mids: &BTreeMap<String, String>,
    only: &[String],
) -> anyhow::Result<Vec<InstrumentInfo>> {
    let list: InstrumentsRes = client.call_ok("instruments", &Empty {}).await?;
    let views: Vec<InstrumentView> = list
        .instruments
        .into_iter()
        .filter(|v| v.state == InstrumentState::Trading)
        .filter(|v| only.is_empty() || only.contains(&v.sym))
        .collect();
    if views.is_empty() {
        bail!("no instrument in trading state matches {only:?}");
    }
    for s in only {
        if !views.iter().any(|v| &v.sym == s) {
            bail!("instrument {s} is not listed or not trading");
        }
    }
    let syms: Vec<String> = views.iter().map(|v| v.sym.clone()).collect();
    let book = book_mids(client, &syms).await?;
    let demo: BTreeMap<&str, &str> = DEMO_MIDS.into_iter().collect();
    views
        .iter()
        .map(|v| {
            let mid = mids
                .get(&v.sym)
                .cloned()
                .or_else(|| book.get(&v.sym).cloned())
                .or_else(|| demo.get(v.sym.as_str()).map(|s| (*s).to_owned()))
                .or_else(|| is_extra(&v.sym).then(|| EXTRA_REF_PX.to_owned()))
                .ok_or_else(|| {
                    anyhow!(
                        "no mid price for {} (empty book): give --mid {}=PRICE",
                        v.sym,
                        v.sym
                    )
                })?;
            InstrumentInfo::new(v, &mid)
        })
        .collect()
}

/// Mid prices read from `book.l1` snapshots, where the book has a price.
async fn book_mids(
    client: &mut Client,
    syms: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let sub = SubscribeArgs {
        ch: Channel::BookL1,
        sym: syms.to_vec(),
        depth: None,
        interval: None,
        cksum: false,
        on_lag: None,
        resume: None,
    };
    let _: SubscribeRes = client.call_ok("subscribe", &sub).await?;
    let mut out = BTreeMap::new();
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(SNAPSHOT_WAIT_MS_MAX);
    while seen < syms.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(m) = client.next_event(left).await? else {
            break;
        };
        let ServerMessage::Event(StreamEvent::BookL1(e)) = m else {
            continue;
        };
        if !e.kind.eq(&bourse_protocol::msg::UpdateKind::Snapshot) {
            continue;
        }
        seen += 1;
        let px = |l: &Option<(String, String)>| l.as_ref().map(|(p, _)| p.clone());
        let mid = match (px(&e.data.bid), px(&e.data.ask)) {
            (Some(b), Some(a)) => {
                // The middle of two prices of one scale, rounded down.
                let scale = b.split_once('.').map_or(0, |(_, f)| f.len() as u32);
                match (decimal::parse(&b, scale), decimal::parse(&a, scale)) {
                    (Ok(b), Ok(a)) => Some(decimal::format((a + b) / 2, scale)),
                    _ => None,
                }
            }
            (Some(one), None) | (None, Some(one)) => Some(one),
            (None, None) => None,
        };
        if let Some(mid) = mid {
            out.insert(e.sym.clone(), mid);
        }
    }
    let _: Empty = client
        .call_ok(
            "unsubscribe",
            &UnsubscribeArgs {
                ch: Channel::BookL1,
                sym: syms.to_vec(),
                depth: None,
                interval: None,
            },
        )
        .await?;
    Ok(out)
}

/// Whether `sym` is one of the bench's own instruments (`BX<n>-USD`).
fn is_extra(sym: &str) -> bool {
    sym.strip_prefix("BX")
        .and_then(|r| r.strip_suffix(&format!("-{EXTRA_QUOTE}")))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Every asset the instruments trade, each once.
pub fn assets_of(instruments: &[InstrumentInfo]) -> Vec<String> {
    let mut v: Vec<String> = instruments
        .iter()
        .flat_map(|i| [i.base.clone(), i.quote.clone()])
        .collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_protocol::msg::InstrumentState;

    fn btc() -> InstrumentView {
        InstrumentView {
            sym: "BTC-USD".into(),
            base: "BTC".into(),
            quote: "USD".into(),
            tick: "1".into(),
            lot: "0.01".into(),
            min_qty: "0.01".into(),
            price_scale: 0,
            qty_scale: 2,
            band_pct: 10,
            maker_fee_bps: 5,
            taker_fee_bps: 10,
            state: InstrumentState::Trading,
        }
    }

    #[test]
    fn prices_and_quantities_are_on_the_grid() {
        let i = InstrumentInfo::new(&btc(), "60000").unwrap();
        assert_eq!(i.mid_ticks, 60_000);
        assert_eq!(i.px(59_990), "59990");
        assert_eq!(i.qty(3), "0.03");
        assert_eq!(i.bps_ticks(50), 300);
        assert_eq!(i.bps_ticks(0), 1);
        let mut eth = btc();
        eth.tick = "0.1".into();
        eth.lot = "0.1".into();
        eth.min_qty = "0.1".into();
        eth.price_scale = 1;
        eth.qty_scale = 1;
        let e = InstrumentInfo::new(&eth, "3000").unwrap();
        assert_eq!(e.mid_ticks, 30_000);
        assert_eq!(e.px(29_999), "2999.9");
        assert_eq!(e.qty(12), "1.2");
    }

    #[test]
    fn bench_instruments_are_recognised() {
        assert!(is_extra("BX1-USD") && is_extra("BX12-USD"));
        assert!(!is_extra("BX-USD") && !is_extra("BTC-USD") && !is_extra("BX1-EUR"));
    }

    #[test]
    fn key_logins_sign_the_protocols_payload() {
        let a = Account {
            user: "u".into(),
            key: "k1".into(),
            secret: "s".repeat(64),
        };
        let AuthArgs::Key(k) = a.auth_args(Cod::Connection) else {
            panic!("a key login")
        };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, a.secret.as_bytes());
        let sig = hex::decode(&k.sig).unwrap();
        ring::hmac::verify(&key, k.signed_payload().as_bytes(), &sig).unwrap();
        let AuthArgs::Key(k2) = a.auth_args(Cod::Connection) else {
            panic!("a key login")
        };
        assert_ne!(k.nonce, k2.nonce, "every login has its own nonce");
    }
}

/// The instruments and accounts of a trading scenario.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub instruments: Vec<InstrumentInfo>,
    pub accounts: Vec<Account>,
}

/// Lists `extra_instruments` bench instruments, reads the instruments to
/// trade (`only`, or every trading one) with their mids, and makes
/// `accounts` funded accounts named `{prefix}N`.
pub async fn prepare(
    target: &Target,
    prefix: &str,
    accounts_n: usize,
    only: &[String],
    extra_n: usize,
    mids: &BTreeMap<String, String>,
) -> anyhow::Result<Prepared> {
    let mut mids = mids.clone();
    if extra_n > 0 {
        let mut admin = admin(target, Encoding::MsgPack).await?;
        for (sym, mid) in extra_instruments(&mut admin, extra_n).await? {
            mids.entry(sym).or_insert(mid);
        }
        admin.close().await;
    }
    let mut viewer = Client::connect(&target.ws_url, Encoding::MsgPack).await?;
    let mut tries = 0;
    let instruments = loop {
        let list = instruments(&mut viewer, &mids, only).await?;
        let listed = (1..=extra_n).all(|i| {
            let sym = format!("BX{i}-{EXTRA_QUOTE}");
            list.iter().any(|x| x.sym == sym)
        });
        if listed || !only.is_empty() || tries >= NEW_NAME_WAIT_TRIES_MAX {
            break list;
        }
        tries += 1;
        tokio::time::sleep(Duration::from_millis(NEW_NAME_WAIT_MS)).await;
    };
    viewer.close().await;
    let accounts = if accounts_n > 0 {
        accounts(target, prefix, accounts_n, &assets_of(&instruments)).await?
    } else {
        Vec::new()
    };
    Ok(Prepared {
        instruments,
        accounts,
    })
}
