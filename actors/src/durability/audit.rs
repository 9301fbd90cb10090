//! `bourse audit`: the audit trail. Every operator action (assets,
//! instruments and their states, users, API keys, deposits, withdrawals) is
//! an event in the log carrying the account that did it; this module turns
//! those events into lines saying who did what, when, at which log index.
//! Account 0 acting is the exchange itself, bootstrapping from its
//! configuration at first start.
//!
//! Names come from the log (`UserCreated`, `AssetCreated`,
//! `InstrumentCreated`), seeded from the newest snapshot when the log's
//! beginning was removed by retention (the trail then starts where the log
//! does).

use std::collections::BTreeMap;
use std::path::Path;

use bourse_engine::ledger::fmt_units;
use bourse_engine::{AccountId, AssetId, Credential, Event, EventBody, Exchange, InstrumentId};
use serde::Serialize;

use super::envelope;
use super::recover::{entry_events, RecoverError, REPLAY_READ_BATCHES_MAX};
use super::timefmt::format_us;
use super::view::LogView;
use super::{log_dir, snapshots_dir};
use crate::storage::log::EventLog;
use crate::storage::{SledSnapshotStore, SnapshotStore};

/// One action of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Log batch holding the event.
    pub index: u64,
    /// Microseconds since the Unix epoch.
    pub ts: u64,
    /// RFC 3339 form of `ts`.
    pub time: String,
    pub actor_account: u64,
    /// The acting user's name (`system` for the exchange's own bootstrap).
    pub actor: String,
    /// What was done, in words.
    pub action: String,
}

/// The names an audit line needs.
#[derive(Default)]
pub struct Names {
    users: BTreeMap<AccountId, String>,
    assets: BTreeMap<AssetId, (String, u32)>,
    instruments: BTreeMap<InstrumentId, String>,
}

impl Names {
    /// The names a state knows.
    pub fn from_state(state: &Exchange) -> Names {
        let mut n = Names::default();
        for u in state.ledger.users.values() {
            n.users.insert(u.account, u.name.clone());
        }
        for a in state.ledger.assets.values() {
            n.assets.insert(a.id, (a.name.clone(), a.scale));
        }
        for s in state.ledger.instruments.values() {
            n.instruments.insert(s.id, s.sym.clone());
        }
        n
    }

    /// Learns the names an event introduces.
    pub fn learn(&mut self, body: &EventBody) {
        match body {
            EventBody::UserCreated { account, user, .. } => {
                self.users.insert(*account, user.clone());
            }
            EventBody::AssetCreated { asset, .. } => {
                self.assets
                    .insert(asset.id, (asset.name.clone(), asset.scale));
            }
            EventBody::InstrumentCreated { spec, .. } => {
                self.instruments.insert(spec.id, spec.sym.clone());
            }
            _ => {}
        }
    }

    fn user(&self, a: AccountId) -> String {
        if a.0 == 0 {
            return "system".into();
        }
        self.users
            .get(&a)
            .cloned()
            .unwrap_or_else(|| format!("account#{}", a.0))
    }

    fn asset(&self, a: AssetId, amount: u64) -> String {
        match self.assets.get(&a) {
            Some((name, scale)) => format!("{} {name}", fmt_units(amount, *scale)),
            None => format!("{amount} units of asset#{}", a.0),
        }
    }

    fn inst(&self, i: InstrumentId) -> String {
        self.instruments
            .get(&i)
            .cloned()
            .unwrap_or_else(|| format!("instrument#{}", i.0))
    }
}

/// The audit record of one event, if it is an operator action.
pub fn describe(index: u64, e: &Event, names: &mut Names) -> Option<AuditRecord> {
    names.learn(&e.body);
    let by = e.body.admin_actor()?;
    let action = match &e.body {
        EventBody::AssetCreated { asset, .. } => {
            format!("created asset {} (scale {})", asset.name, asset.scale)
        }
        EventBody::InstrumentCreated { spec, .. } => format!(
            "listed instrument {} ({}/{}, maker {} bps, taker {} bps)",
            spec.sym,
            names.assets.get(&spec.base).map_or("?", |a| a.0.as_str()),
            names.assets.get(&spec.quote).map_or("?", |a| a.0.as_str()),
            spec.maker_fee_bps,
            spec.taker_fee_bps
        ),
        EventBody::InstrumentStateSet { inst, state, .. } => {
            format!("set {} to {}", names.inst(*inst), state.as_str())
        }
        EventBody::UserCreated { user, role, .. } => {
            format!("created user {user} (role {})", role.as_str())
        }
        EventBody::PasswordSet { user, .. } => format!("set the password of {user}"),
        EventBody::ApiKeyCreated {
            account,
            key,
            credential,
            ..
        } => format!(
            "created API key {key} ({}) for {}",
            match credential {
                Credential::Hmac { .. } => "hmac-sha256",
                Credential::Ed25519 { .. } => "ed25519",
            },
            names.user(*account)
        ),
        EventBody::Deposited {
            account,
            asset,
            amount,
            ..
        } => {
            format!(
                "deposited {} to {}",
                names.asset(*asset, amount.0),
                names.user(*account)
            )
        }
        EventBody::Withdrawn {
            account,
            asset,
            amount,
            ..
        } => {
            format!(
                "withdrew {} from {}",
                names.asset(*asset, amount.0),
                names.user(*account)
            )
        }
        _ => return None,
    };
    Some(AuditRecord {
        index,
        ts: e.ts,
        time: format_us(e.ts),
        actor_account: by.0,
        actor: names.user(by),
        action,
    })
}

/// Where a trail was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSource {
    pub first_index: u64,
    pub last_index: u64,
    /// Whether names were seeded from a snapshot (the log does not start at 1).
    pub seeded_from_snapshot: bool,
}

/// Calls `each` with every audit record of the log in `data_dir`, oldest first.
pub fn audit_data_dir(
    data_dir: &Path,
    mut each: impl FnMut(&AuditRecord),
) -> Result<AuditSource, RecoverError> {
    let view = LogView::open(&log_dir(data_dir))?;
    let log = view.log();
    let mut seeded = false;
    let mut names = Names::default();
    if log.first_index() > 1 {
        // Names from before the log's beginning come from the newest snapshot.
        if let Ok(store) = SledSnapshotStore::open(snapshots_dir(data_dir)) {
            if let Ok(latest) = store.latest() {
                if let Some((_, bytes)) = latest.snapshot {
                    if let Ok((_, state)) = envelope::decode(&bytes) {
                        names = Names::from_state(&state);
                        seeded = true;
                    }
                }
            }
        }
    }
    let (first, last) = (log.first_index(), log.last_index());
    let mut at = first;
    while at <= last {
        let to = last.min(at + REPLAY_READ_BATCHES_MAX - 1);
        for entry in log.read(at..=to)? {
            for e in entry_events(&entry)? {
                if let Some(rec) = describe(entry.index, &e, &mut names) {
                    each(&rec);
                }
            }
        }
        at = to + 1;
    }
    Ok(AuditSource {
        first_index: first,
        last_index: last,
        seeded_from_snapshot: seeded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_engine::{Amount, Command, Role};

    #[test]
    fn operator_actions_read_as_who_did_what() {
        let mut ex = Exchange::new();
        let root = AccountId(0);
        let mut events = Vec::new();
        let mut run = |ex: &mut Exchange, cmd, ts| {
            let out = ex.execute(cmd, ts);
            out.result.unwrap();
            events.extend(out.events);
        };
        run(
            &mut ex,
            Command::CreateUser {
                user: "admin".into(),
                role: Role::Operator,
                password_hash: "h".into(),
                by: root,
            },
            1,
        );
        run(
            &mut ex,
            Command::CreateAsset {
                name: "USD".into(),
                scale: 2,
                by: root,
            },
            2,
        );
        let admin = ex.ledger.users["admin"].account;
        run(
            &mut ex,
            Command::CreateUser {
                user: "alice".into(),
                role: Role::Trader,
                password_hash: "h".into(),
                by: admin,
            },
            3,
        );
        let alice = ex.ledger.users["alice"].account;
        let usd = *ex.ledger.assets.keys().next().unwrap();
        run(
            &mut ex,
            Command::Deposit {
                account: alice,
                asset: usd,
                amount: Amount(12_345),
                by: admin,
            },
            4_000_000,
        );
        let mut names = Names::default();
        let lines: Vec<AuditRecord> = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| describe(i as u64 + 1, e, &mut names))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].actor, "system");
        assert_eq!(lines[0].action, "created user admin (role operator)");
        assert_eq!(lines[2].actor, "admin");
        assert_eq!(lines[2].action, "created user alice (role trader)");
        assert_eq!(lines[3].action, "deposited 123.45 USD to alice");
        assert_eq!(lines[3].time, "1970-01-01T00:00:04.000000Z");
        assert_eq!(lines[3].index, 4);
    }
}
