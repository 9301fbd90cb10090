//! The ledger: per account and asset `available` and `held`, the orders with
//! the funds they hold, the `cl_id` idempotency table, fills history, users
//! and API keys, and each account's private-stream version.
//!
//! Placing an order holds funds; a fill settles both sides and the fees; a
//! close releases the rest. Nothing here can go negative, and for every asset
//! the sum over accounts (fee account included) of available + held equals
//! deposits minus withdrawals: `check` asserts it.

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::clids::{fingerprint, ClIdIndex, ClLog, Entry as ClEntry};
use crate::dense::{DenseMap, InlineDenseMap};
use crate::event::{Credential, EventBody, NewOrder, Trade};
use crate::fills::FillLog;
use crate::openset::{OpenSet, Tag, NO_TAG};
use crate::orders::OrderTable;
use crate::exchange::{Command, OrderRef, Reply};
use crate::spec::{AssetSpec, FeeAcc, InstrumentSpec};
use crate::types::*;

/// How long a `cl_id` is remembered: 24 hours, in microseconds.
pub const CL_ID_WINDOW_US: u64 = 24 * 3600 * 1_000_000;
/// At most this many `cl_id`s are remembered per account; past it the oldest
/// is forgotten first even inside the 24 h window (a trader placing more than
/// this many orders a day must not reuse a `cl_id` from that far back).
pub const CL_IDS_PER_ACCOUNT_MAX: usize = 200_000;
/// At most this many open orders per account, over all instruments: a GTC
/// limit order (one that can rest) from an account with this many is
/// refused with `too_many_open_orders`. IOC, FOK and market orders never
/// rest, so they stay open to an account at its limit (to trade out of a
/// position). Without a bound one account could grow the books and the
/// ledger without end, an order at a time.
pub const OPEN_ORDERS_PER_ACCOUNT_MAX: usize = 10_000;
/// Fills kept per account for `account.fills`.
pub const FILLS_PER_ACCOUNT_MAX: usize = 10_000;
/// Assets whose balances an account keeps in its own record (ids below
/// this; assets are numbered from 1), so that the balances an order holds
/// and a fill settles are read with the account, not through a pointer.
pub const BALANCES_INLINE_MAX: usize = 4;

/// An account's balances by asset.
pub type Balances = InlineDenseMap<AssetId, Balance, BALANCES_INLINE_MAX>;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub available: u64,
    pub held: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Liquidity {
    Maker,
    Taker,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// Increases per account.
    pub fill_id: u64,
    pub trade_id: u64,
    pub order: OrderId,
    pub inst: InstrumentId,
    pub side: Side,
    pub px: Price,
    pub qty: Qty,
    pub fee: Amount,
    pub liq: Liquidity,
    pub ts: u64,
}

/// An order as the ledger knows it.
///
/// Laid out by hand (`repr(C)`) in blocks of 32 bytes, in the order of use.
/// Records are 160 bytes apart in the order table, so each starts on a
/// cache line or half-way through one, and no 32-byte block straddles two
/// lines. The second block holds what resolving and closing an order read
/// and write (its account, instrument, hold and state): a cancel touches one
/// line of the record. With the fee accumulator before it and the filled
/// and total quantities after it, a fill touches two. Snapshots encode the
/// fields in the order of `OrderStateWire`, whatever the order in memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OrderStateWire", into = "OrderStateWire")]
#[repr(C)]
pub struct OrderState {
    pub fee: FeeAcc,
    pub account: AccountId,
    /// Funds still held for this order.
    pub hold: Amount,
    pub inst: InstrumentId,
    pub hold_asset: AssetId,
    pub status: OrderStatus,
    pub reason: Option<CancelReason>,
    /// Whether the order has reached its book and is open there.
    pub resting: bool,
    pub side: Side,
    pub kind: OrderType,
    pub tif: Tif,
    pub post_only: bool,
    pub cum: Qty,
    /// Total quantity (after amends); `None` for a market buy by `quote_qty`.
    pub qty: Option<Qty>,
    pub id: OrderId,
    pub px: Option<Price>,
    pub ts: u64,
    pub cl_id: ClId,
}

/// An order's encoded form (the fields in their original order).
#[derive(Clone, Serialize, Deserialize)]
struct OrderStateWire {
    id: OrderId,
    account: AccountId,
    inst: InstrumentId,
    cl_id: ClId,
    side: Side,
    kind: OrderType,
    tif: Tif,
    post_only: bool,
    px: Option<Price>,
    qty: Option<Qty>,
    cum: Qty,
    status: OrderStatus,
    reason: Option<CancelReason>,
    hold_asset: AssetId,
    hold: Amount,
    fee: FeeAcc,
    resting: bool,
    ts: u64,
}

impl From<OrderStateWire> for OrderState {
    fn from(w: OrderStateWire) -> Self {
        let OrderStateWire {
            id, account, inst, cl_id, side, kind, tif, post_only, px, qty, cum, status, reason, hold_asset, hold, fee,
            resting, ts,
        } = w;
        OrderState {
            fee, account, hold, inst, hold_asset, status, reason, resting, side, kind, tif, post_only, cum, qty, id, px,
            ts, cl_id,
        }
    }
}

impl From<OrderState> for OrderStateWire {
    fn from(o: OrderState) -> Self {
        let OrderState {
            fee, account, hold, inst, hold_asset, status, reason, resting, side, kind, tif, post_only, cum, qty, id, px,
            ts, cl_id,
        } = o;
        OrderStateWire {
            id, account, inst, cl_id, side, kind, tif, post_only, px, qty, cum, status, reason, hold_asset, hold, fee,
            resting, ts,
        }
    }
}

impl OrderState {
    pub fn leaves(&self) -> Qty {
        if !self.status.is_open() {
            return Qty(0);
        }
        Qty(self.qty.map_or(0, |q| q.0 - self.cum.0))
    }
}

/// One account. Laid out by hand (`repr(C)`) in the order of use: the
/// version and the balances first (every order event reads them), then
/// the `cl_id` table (new orders) and the open-order set. Its fills are in
/// the ledger's fill log, its `cl_id`s' times in the ledger's `cl_id` log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct AccountState {
    /// Private-stream version: bumped once per private message.
    pub seq: u64,
    pub next_fill_id: u64,
    pub balances: Balances,
    cl_ids: ClIdIndex,
    pub open: OpenSet,
}

/// A `cl_id`'s tag among its account's open orders: its fingerprint folded
/// to one byte, never `NO_TAG`. Tags of different `cl_id`s may be equal; a
/// lookup checks the order's own `cl_id`.
fn cl_tag(cl: &ClId) -> Tag {
    let f = fingerprint(cl);
    let f = f ^ f >> 32;
    let f = f ^ f >> 16;
    ((f ^ f >> 8) as Tag).max(1)
}

/// An account as snapshots encode it: each remembered order's `cl_id`
/// spelled out in `cl_order`, read from the order table.
struct AccountRef<'a>(&'a AccountState, &'a OrderTable, AccountId, &'a FillLog, &'a ClLog);

/// The idempotency table as a map in `cl_id` order.
struct ClIds<'a>(&'a ClIdIndex, &'a OrderTable, &'a ClLog);

impl Serialize for ClIds<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let orders = self.1;
        let all = self.0.entries(|id| orders.get(&id).map(|o| o.cl_id), self.2);
        let mut m = ser.serialize_map(Some(all.len()))?;
        for (c, id) in &all {
            m.serialize_entry(c, id)?;
        }
        m.end()
    }
}

/// The remembered `cl_id`s by age, each with its order's `cl_id`.
struct ClOrder<'a>(&'a AccountState, &'a OrderTable, &'a ClLog);

impl Serialize for ClOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let orders = self.1;
        let all = self.0.cl_ids.by_age(self.2);
        ser.collect_seq(all.iter().map(|id| {
            let o = orders.get(id);
            (o.map_or(0, |o| o.ts), o.map(|o| o.cl_id).unwrap_or_default(), id)
        }))
    }
}

impl Serialize for AccountRef<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let a = self.0;
        let mut st = ser.serialize_struct("AccountState", 7)?;
        st.serialize_field("balances", &a.balances)?;
        st.serialize_field("seq", &a.seq)?;
        st.serialize_field("open", &a.open)?;
        st.serialize_field("cl_ids", &ClIds(&a.cl_ids, self.1, self.4))?;
        st.serialize_field("cl_order", &ClOrder(a, self.1, self.4))?;
        st.serialize_field("fills", &self.3.oldest_first(self.2))?;
        st.serialize_field("next_fill_id", &a.next_fill_id)?;
        st.end()
    }
}

/// Every account, as snapshots encode them.
struct AccountsRef<'a>(&'a DenseMap<AccountId, AccountState>, &'a OrderTable, &'a FillLog, &'a ClLog);

impl Serialize for AccountsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(Some(self.0.len()))?;
        for (k, a) in self.0.iter() {
            m.serialize_entry(k, &AccountRef(a, self.1, *k, self.2, self.3))?;
        }
        m.end()
    }
}

#[derive(Deserialize)]
struct AccountImage {
    balances: Balances,
    seq: u64,
    open: OpenSet,
    cl_ids: FxHashMap<ClId, OrderId>,
    cl_order: VecDeque<(u64, ClId, OrderId)>,
    fills: Vec<Fill>,
    next_fill_id: u64,
}

/// An account as decoded, with its fills (oldest first) for the ledger's
/// fill log, and its remembered `cl_id`s (by `cl_id`, and by age with
/// their times) for the ledger to take in again.
struct DecodedAccount(AccountState, Vec<Fill>, FxHashMap<ClId, OrderId>, VecDeque<(u64, ClId, OrderId)>);

impl<'de> Deserialize<'de> for DecodedAccount {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let a = AccountImage::deserialize(de)?;
        let acct = AccountState {
            balances: a.balances,
            seq: a.seq,
            open: a.open,
            cl_ids: ClIdIndex::default(),
            next_fill_id: a.next_fill_id,
        };
        Ok(DecodedAccount(acct, a.fills, a.cl_ids, a.cl_order))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub account: AccountId,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

/// A private-stream message the ledger produced while applying an event,
/// with the account's stream version after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountUpdate {
    Order { account: AccountId, seq: u64, order: OrderState },
    Fill { account: AccountId, seq: u64, fill: Fill, order: OrderState },
    Balance { account: AccountId, seq: u64, asset: AssetId, balance: Balance },
}

impl AccountUpdate {
    /// The account whose stream carries the message.
    pub fn account(&self) -> AccountId {
        match self {
            AccountUpdate::Order { account, .. } | AccountUpdate::Fill { account, .. } | AccountUpdate::Balance { account, .. } => *account,
        }
    }
}

/// A new order as a client asked for it (prices in ticks, quantities in lots).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceCmd {
    pub account: AccountId,
    pub inst: InstrumentId,
    /// The client's id for the order, inline (a command carries no heap
    /// string). One longer than `CL_ID_LEN_MAX` cannot be held: a caller
    /// passes it as the empty `ClId`, refused like any invalid `cl_id`.
    pub cl_id: ClId,
    pub side: Side,
    pub kind: OrderType,
    pub tif: Option<Tif>,
    pub px: Option<Price>,
    pub qty: Option<Qty>,
    pub quote_qty: Option<Amount>,
    pub post_only: bool,
    pub stp: Stp,
}

/// Why a place did not produce a new order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlaceRefusal {
    /// The `cl_id` was seen: the original order.
    Duplicate(OrderId),
    Reject(Reject),
}

impl From<Reject> for PlaceRefusal {
    fn from(r: Reject) -> Self {
        PlaceRefusal::Reject(r)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    pub assets: BTreeMap<AssetId, AssetSpec>,
    pub instruments: BTreeMap<InstrumentId, InstrumentSpec>,
    pub accounts: DenseMap<AccountId, AccountState>,
    /// Every order known: open ones (the table every event touches) and
    /// ended ones kept while their `cl_id` is remembered (answers to a
    /// repeated `cl_id`, fills history).
    pub orders: OrderTable,
    /// Every account's fills, for `account.fills`.
    fill_log: FillLog,
    /// Every account's remembered `cl_id`s, in the order used.
    cl_log: ClLog,
    pub users: BTreeMap<String, User>,
    pub api_keys: BTreeMap<String, (AccountId, Credential)>,
    pub next_order_id: u64,
    pub next_account_id: u64,
    /// Deposits minus withdrawals per asset.
    pub net_deposits: BTreeMap<AssetId, u128>,
    pub last_px: BTreeMap<InstrumentId, Price>,
    /// Version of the instruments' listing and states (the `status` stream).
    pub status_version: u64,
}

/// Open orders by id, as a map (the encoded form of the order table's open part).
struct OpenOrders<'a>(&'a OrderTable, bool);

impl Serialize for OpenOrders<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let all = self.0.sorted();
        let n = all.iter().filter(|o| o.status.is_open() == self.1).count();
        let mut m = ser.serialize_map(Some(n))?;
        for o in all.into_iter().filter(|o| o.status.is_open() == self.1) {
            m.serialize_entry(&o.id, o)?;
        }
        m.end()
    }
}

/// The ledger as encoded in snapshots: open and ended orders as two maps.
#[derive(Serialize)]
struct LedgerRef<'a> {
    assets: &'a BTreeMap<AssetId, AssetSpec>,
    instruments: &'a BTreeMap<InstrumentId, InstrumentSpec>,
    accounts: AccountsRef<'a>,
    orders: OpenOrders<'a>,
    closed: OpenOrders<'a>,
    users: &'a BTreeMap<String, User>,
    api_keys: &'a BTreeMap<String, (AccountId, Credential)>,
    next_order_id: u64,
    next_account_id: u64,
    net_deposits: &'a BTreeMap<AssetId, u128>,
    last_px: &'a BTreeMap<InstrumentId, Price>,
    status_version: u64,
}

#[derive(Deserialize)]
struct LedgerImage {
    assets: BTreeMap<AssetId, AssetSpec>,
    instruments: BTreeMap<InstrumentId, InstrumentSpec>,
    accounts: DenseMap<AccountId, DecodedAccount>,
    orders: BTreeMap<OrderId, OrderState>,
    #[serde(default)]
    closed: BTreeMap<OrderId, OrderState>,
    users: BTreeMap<String, User>,
    api_keys: BTreeMap<String, (AccountId, Credential)>,
    next_order_id: u64,
    next_account_id: u64,
    net_deposits: BTreeMap<AssetId, u128>,
    last_px: BTreeMap<InstrumentId, Price>,
    #[serde(default)]
    status_version: u64,
}

impl Serialize for Ledger {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        LedgerRef {
            assets: &self.assets,
            instruments: &self.instruments,
            accounts: AccountsRef(&self.accounts, &self.orders, &self.fill_log, &self.cl_log),
            orders: OpenOrders(&self.orders, true),
            closed: OpenOrders(&self.orders, false),
            users: &self.users,
            api_keys: &self.api_keys,
            next_order_id: self.next_order_id,
            next_account_id: self.next_account_id,
            net_deposits: &self.net_deposits,
            last_px: &self.last_px,
            status_version: self.status_version,
        }
        .serialize(ser)
    }
}

impl<'de> Deserialize<'de> for Ledger {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let l = LedgerImage::deserialize(de)?;
        let orders: OrderTable = l.orders.into_values().chain(l.closed.into_values()).collect();
        let mut fills = Vec::new();
        let mut names = Vec::new();
        let mut used = Vec::new();
        let mut accounts: DenseMap<AccountId, AccountState> = l
            .accounts
            .into_entries()
            .map(|(k, DecodedAccount(a, f, cl_ids, cl_order))| {
                fills.push((k, f));
                // Refused orders, which older encodings kept here, are not taken.
                used.extend(cl_order.into_iter().filter(|e| orders.contains_key(&e.2)).map(|(t, cl, id)| (t, id, cl, k)));
                names.push((k, cl_ids));
                (k, a)
            })
            .collect();
        // Taken in again in the order used, every account's in one log, as
        // when they were accepted: a `cl_id` is ranked in the log or goes
        // to the hash table as it would have then (the answers are the same
        // either way).
        used.sort_unstable_by_key(|e| (e.0, e.1));
        let names: FxHashMap<AccountId, FxHashMap<ClId, OrderId>> = names.into_iter().collect();
        let mut cl_log = ClLog::new();
        let mut timed: FxHashMap<AccountId, rustc_hash::FxHashSet<ClId>> = FxHashMap::default();
        for (_, id, cl, k) in used {
            let of = &names[&k];
            let named = |id: OrderId, cl: &ClId| of.get(cl) == Some(&id);
            if named(id, &cl) {
                if let Some(a) = accounts.get_mut(&k) {
                    a.cl_ids.insert(cl, id, named, &mut cl_log);
                    timed.entry(k).or_default().insert(cl);
                }
            }
        }
        // A remembered cl_id without its time (never forgotten, as before).
        for (k, of) in &names {
            let taken = timed.remove(k).unwrap_or_default();
            let mut rest: Vec<(ClId, OrderId)> = of.iter().filter(|e| !taken.contains(e.0)).map(|(c, id)| (*c, *id)).collect();
            rest.sort_unstable();
            if let Some(a) = accounts.get_mut(k) {
                for (cl, id) in rest {
                    a.cl_ids.insert_hashed(cl, id, |o, c| of.get(c) == Some(&o));
                }
            }
        }
        let fill_log = FillLog::from_accounts(fills).map_err(serde::de::Error::custom)?;
        let mut ledger = Ledger {
            assets: l.assets,
            instruments: l.instruments,
            accounts,
            orders,
            fill_log,
            users: l.users,
            api_keys: l.api_keys,
            next_order_id: l.next_order_id,
            next_account_id: l.next_account_id,
            net_deposits: l.net_deposits,
            last_px: l.last_px,
            status_version: l.status_version,
            cl_log,
        };
        ledger.retag();
        Ok(ledger)
    }
}

/// Balances one event can change: two assets for each side of a trade,
/// and the fee account's quote.
const TOUCHED_MAX: usize = 5;

/// The (account, asset) balances an event changed, kept on the stack,
/// without repeats. Added in order (as a trade's settlement adds them) they
/// need no sort.
#[derive(Default)]
struct Touched {
    items: [(AccountId, AssetId); TOUCHED_MAX],
    len: usize,
    unsorted: bool,
}

impl Touched {
    fn push(&mut self, x: (AccountId, AssetId)) {
        if let Some(&last) = self.items[..self.len].last() {
            if x <= last {
                if self.items[..self.len].contains(&x) {
                    return;
                }
                self.unsorted = true;
            }
        }
        assert!(self.len < TOUCHED_MAX, "an event changes at most {TOUCHED_MAX} balances");
        self.items[self.len] = x;
        self.len += 1;
    }

    fn sorted(&mut self) -> &[(AccountId, AssetId)] {
        let s = &mut self.items[..self.len];
        if self.unsorted {
            s.sort_unstable();
        }
        s
    }
}

/// One changed balance of account `acc` (`a`), when it is an event's only
/// one (or the last of its messages): the account's version bumped and,
/// when messages are wanted, the balance message, without collecting it in
/// a `Touched` first.
#[inline]
fn balance_changed(a: &mut AccountState, acc: AccountId, asset: AssetId, out: &mut Option<&mut Vec<AccountUpdate>>) {
    a.seq += 1;
    if let Some(out) = out.as_mut() {
        let balance = a.balances.get(&asset).copied().unwrap_or_default();
        out.push(AccountUpdate::Balance { account: acc, seq: a.seq, asset, balance });
    }
}

/// Formats an integer amount at `scale` decimals (for messages).
pub fn fmt_units(v: u64, scale: u32) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let p = 10u64.pow(scale);
    format!("{}.{:0width$}", v / p, v % p, width = scale as usize)
}

pub fn valid_cl_id(s: &str) -> bool {
    valid_cl_id_bytes(s.as_bytes())
}

/// Whether a byte may be in a `cl_id` (`[A-Za-z0-9_-]`), by byte value.
static CL_ID_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        b += 1;
    }
    t
};

/// `valid_cl_id` on the bytes (a `ClId`'s, read without re-checking UTF-8):
/// one table read per byte.
fn valid_cl_id_bytes(s: &[u8]) -> bool {
    !s.is_empty() && s.len() <= CL_ID_LEN_MAX && s.iter().all(|&b| CL_ID_BYTES[b as usize])
}

fn bad(msg: impl Into<std::borrow::Cow<'static, str>>) -> Reject {
    Reject::new(RejectCode::BadRequest, msg)
}

impl Ledger {
    /// Asks for the lines of `account`'s record a command of it reads
    /// first: its version, balances, `cl_id`s and open orders.
    #[inline]
    pub fn prefetch_account(&self, account: AccountId) {
        if let Some(a) = self.accounts.get(&account) {
            crate::ahead::read(&a.seq);
            crate::ahead::read(&a.balances);
            crate::ahead::read(&a.cl_ids);
            a.open.prefetch();
        }
    }

    /// The ledger's part of `Exchange::prefetch`: asks for the lines
    /// `cmd` reads first in the ledger, its account's and, for a cancel or
    /// amend by id, the order's record.
    #[inline]
    pub fn prefetch(&self, cmd: &Command) {
        match cmd {
            Command::Place(c) => self.prefetch_account(c.account),
            Command::Cancel { account, order, .. } | Command::Amend { account, order, .. } => {
                self.prefetch_account(*account);
                if let OrderRef::Id(id) = order {
                    self.prefetch_order(*id);
                }
            }
            _ => {}
        }
    }

    /// Asks for the lines of order `id`'s record.
    #[inline]
    pub fn prefetch_order(&self, id: OrderId) {
        self.orders.prefetch(id);
    }

    pub fn new() -> Self {
        let mut l = Ledger { next_order_id: 1, next_account_id: 1, ..Default::default() };
        l.accounts.insert(FEE_ACCOUNT, AccountState::default());
        l
    }

    pub fn balance(&self, account: AccountId, asset: AssetId) -> Balance {
        self.accounts
            .get(&account)
            .and_then(|a| a.balances.get(&asset))
            .copied()
            .unwrap_or_default()
    }

    pub fn account_of(&self, user: &str) -> Option<AccountId> {
        if user == FEE_USER {
            return Some(FEE_ACCOUNT);
        }
        self.users.get(user).map(|u| u.account)
    }

    pub fn asset_by_name(&self, name: &str) -> Option<&AssetSpec> {
        self.assets.values().find(|a| a.name == name)
    }

    pub fn instrument_by_sym(&self, sym: &str) -> Option<&InstrumentSpec> {
        self.instruments.values().find(|i| i.sym == sym)
    }

    pub fn order(&self, id: OrderId) -> Option<&OrderState> {
        self.orders.get(&id)
    }

    /// The order a `cl_id` names, if remembered.
    pub fn order_by_cl_id(&self, account: AccountId, cl_id: &str) -> Option<OrderId> {
        self.order_by_clid(account, &ClId::new(cl_id)?)
    }

    fn order_by_clid(&self, account: AccountId, cl_id: &ClId) -> Option<OrderId> {
        let a = self.accounts.get(&account)?;
        a.cl_ids.get(cl_id, |id, cl| self.orders.get(&id).is_some_and(|o| o.cl_id == *cl), &self.cl_log)
    }

    /// The order a remembered `cl_id` names, if it is open: what a cancel or
    /// an amend by `cl_id` can name. Found by the `cl_id`'s tag among the
    /// account's open orders, in the account's record, rather than in the
    /// day's `cl_id`s (BENCHMARKS.md, round 15); for an account with more
    /// open orders than its record holds, in the `cl_id` table.
    pub fn open_order_by_cl_id(&self, account: AccountId, cl_id: &str) -> Option<OrderId> {
        let cl = ClId::new(cl_id)?;
        let a = self.accounts.get(&account)?;
        let in_table = || self.order_by_clid(account, &cl).filter(|id| a.open.contains(id));
        let found = match a.open.tagged(cl_tag(&cl)) {
            Some(mut tagged) => tagged.find(|id| self.orders.get(id).is_some_and(|o| o.cl_id == cl)),
            None => return in_table(),
        };
        debug_assert_eq!(found, in_table(), "tags agree with the cl_id table");
        found
    }

    /// Sets each open order's tag from the `cl_id` table (tags are not encoded).
    fn retag(&mut self) {
        let mut tags = Vec::new();
        for (acc, a) in self.accounts.iter() {
            for id in &a.open {
                let tag = match self.orders.get(id) {
                    Some(o) if self.order_by_clid(*acc, &o.cl_id) == Some(*id) => cl_tag(&o.cl_id),
                    _ => NO_TAG,
                };
                tags.push((*acc, *id, tag));
            }
        }
        for (acc, id, tag) in tags {
            if let Some(a) = self.accounts.get_mut(&acc) {
                a.open.set_tag(&id, tag);
            }
        }
    }

    /// Open orders of an account, optionally of one instrument, by id.
    pub fn open_orders(&self, account: AccountId, inst: Option<InstrumentId>) -> Vec<&OrderState> {
        self.accounts
            .get(&account)
            .map(|a| {
                a.open
                    .iter()
                    .filter_map(|id| self.orders.get(id).filter(|o| o.status.is_open()))
                    .filter(|o| inst.is_none_or(|i| o.inst == i))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fills of an account, newest first, optionally of one instrument, before a fill id.
    pub fn fills(&self, account: AccountId, inst: Option<InstrumentId>, before: Option<u64>, limit: usize) -> Vec<&Fill> {
        self.fill_log
            .newest_first(account)
            .filter(|f| before.is_none_or(|b| f.fill_id < b) && inst.is_none_or(|i| f.inst == i))
            .take(limit)
            .collect()
    }

    /// The band reference the ledger knows for an instrument.
    pub fn reference(&self, inst: &InstrumentSpec) -> Option<Price> {
        self.last_px.get(&inst.id).copied().or(inst.ref_px)
    }

    // ---- decide -------------------------------------------------------

    /// Decides a new order: validation, idempotency, the hold.
    pub fn decide_place(&self, c: &PlaceCmd) -> Result<EventBody, PlaceRefusal> {
        let spec = self
            .instruments
            .get(&c.inst)
            .ok_or_else(|| Reject::new(RejectCode::UnknownInstrument, "unknown instrument"))?;
        if !valid_cl_id_bytes(c.cl_id.as_bytes()) {
            return Err(bad("cl_id must be 1 to 36 characters of [A-Za-z0-9_-]").into());
        }
        if let Some(id) = self.order_by_clid(c.account, &c.cl_id) {
            return Err(PlaceRefusal::Duplicate(id));
        }
        if spec.state != InstrumentState::Trading {
            return Err(Reject::new(RejectCode::MarketClosed, format!("{} is {}", spec.sym, spec.state.as_str())).into());
        }
        let tif = match (c.kind, c.tif) {
            (OrderType::Market, Some(Tif::Gtc)) => return Err(bad("market orders are ioc or fok").into()),
            (OrderType::Market, t) => t.unwrap_or(Tif::Ioc),
            (OrderType::Limit, t) => t.unwrap_or(Tif::Gtc),
        };
        match c.kind {
            OrderType::Limit => {
                if c.px.is_none_or(|p| p.0 == 0) {
                    return Err(bad("a limit order needs a positive px").into());
                }
                if c.quote_qty.is_some() {
                    return Err(bad("quote_qty is for market buys").into());
                }
            }
            OrderType::Market => {
                if c.px.is_some() {
                    return Err(bad("a market order takes no px").into());
                }
                if c.post_only {
                    return Err(bad("post_only is for limit orders").into());
                }
                if c.quote_qty.is_some() && (c.side == Side::Sell || c.qty.is_some()) {
                    return Err(bad("quote_qty is for market buys, instead of qty").into());
                }
            }
        }
        match (c.qty, c.quote_qty) {
            (Some(q), _) if q.0 == 0 => return Err(Reject::new(RejectCode::MinQty, "qty must be positive").into()),
            (Some(q), _) if q < spec.min_qty => {
                return Err(Reject::new(RejectCode::MinQty, format!("qty below min_qty of {} lots", spec.min_qty.0)).into())
            }
            (None, None) => return Err(bad("qty is required").into()),
            (None, Some(a)) if a.0 == 0 => return Err(bad("quote_qty must be positive").into()),
            _ => {}
        }
        let too_big = || Reject::new(RejectCode::BadRequest, "order value overflows");
        let mut reserve_px = None;
        let (hold_asset, hold) = match (c.side, c.kind) {
            (Side::Sell, _) => (spec.base, spec.base_amount(c.qty.expect("checked")).ok_or_else(too_big)?),
            (Side::Buy, OrderType::Limit) => (
                spec.quote,
                spec.buy_need(c.px.expect("checked"), c.qty.expect("checked"), FeeAcc::default()).ok_or_else(too_big)?,
            ),
            (Side::Buy, OrderType::Market) => match (c.qty, c.quote_qty) {
                (_, Some(budget)) => (spec.quote, budget),
                (Some(q), None) => {
                    let r = self.reference(spec).ok_or_else(|| {
                        bad("a market buy by qty needs a reference price; use quote_qty")
                    })?;
                    let hi = spec.band(r).1;
                    reserve_px = Some(hi);
                    (spec.quote, spec.buy_need(hi, q, FeeAcc::default()).ok_or_else(too_big)?)
                }
                (None, None) => unreachable!("checked above"),
            },
        };
        let acct = self.accounts.get(&c.account);
        if tif == Tif::Gtc && acct.is_some_and(|a| a.open.len() >= OPEN_ORDERS_PER_ACCOUNT_MAX) {
            return Err(Reject::new(
                RejectCode::TooManyOpenOrders,
                format!("an account may have {OPEN_ORDERS_PER_ACCOUNT_MAX} open orders; cancel some first"),
            )
            .into());
        }
        let have = acct.and_then(|a| a.balances.get(&hold_asset)).map_or(0, |b| b.available);
        if have < hold.0 {
            let a = &self.assets[&hold_asset];
            return Err(Reject::new(
                RejectCode::InsufficientFunds,
                format!(
                    "needs {} {}, {} available",
                    fmt_units(hold.0, a.scale),
                    a.name,
                    fmt_units(have, a.scale)
                ),
            )
            .into());
        }
        Ok(EventBody::OrderAccepted {
            order: Box::new(NewOrder {
                id: OrderId(self.next_order_id),
                account: c.account,
                inst: c.inst,
                cl_id: c.cl_id,
                side: c.side,
                kind: c.kind,
                tif,
                post_only: c.post_only,
                stp: c.stp,
                px: c.px,
                qty: c.qty,
                quote_qty: c.quote_qty,
                reserve_px,
                hold_asset,
                hold,
            }),
        })
    }

    /// Decides the extra funds an amend may need before its book sees it.
    pub fn decide_amend_hold(
        &self,
        account: AccountId,
        id: OrderId,
        qty: Option<Qty>,
        px: Option<Price>,
    ) -> Result<Option<EventBody>, Reject> {
        let o = match self.orders.get(&id) {
            Some(o) if o.account == account && o.status.is_open() => o,
            _ => return Err(Reject::new(RejectCode::UnknownOrder, format!("no open order {}", id.0))),
        };
        let spec = &self.instruments[&o.inst];
        let new_qty = qty.or(o.qty).ok_or_else(|| bad("order has no qty"))?;
        let leaves = Qty(new_qty.0.saturating_sub(o.cum.0));
        let p = px.or(o.px).ok_or_else(|| bad("order has no px"))?;
        let need = spec.hold_need(o.side, p, leaves, o.fee).ok_or_else(|| Reject::new(RejectCode::BadRequest, "order value overflows"))?;
        let extra = need.0.saturating_sub(o.hold.0);
        if extra == 0 {
            return Ok(None);
        }
        let have = self.balance(account, o.hold_asset).available;
        if have < extra {
            let a = &self.assets[&o.hold_asset];
            return Err(Reject::new(
                RejectCode::InsufficientFunds,
                format!("amend needs {} more {}, {} available", fmt_units(extra, a.scale), a.name, fmt_units(have, a.scale)),
            ));
        }
        Ok(Some(EventBody::HoldAdded { order: id, amount: Amount(extra) }))
    }

    /// After an amend its book made, or a new order's fills before it
    /// rested (at better prices than its own): the funds `id` holds beyond
    /// what it can still need at its price and quantity now, released (a
    /// buy needs its leaves' notional and the worst-case fee, a sell its
    /// leaves). None when nothing is over, or the order has ended (which
    /// released everything).
    pub fn decide_release(&self, id: OrderId) -> Option<EventBody> {
        let o = self.orders.get(&id).filter(|o| o.status.is_open())?;
        let spec = &self.instruments[&o.inst];
        let leaves = Qty(o.qty?.0.checked_sub(o.cum.0)?);
        let need = spec.hold_need(o.side, o.px?, leaves, o.fee)?;
        let over = o.hold.0.checked_sub(need.0).filter(|&a| a > 0)?;
        Some(EventBody::HoldReleased { order: id, amount: Amount(over) })
    }

    pub fn decide_withdraw(&self, account: AccountId, asset: AssetId, amount: Amount, by: AccountId) -> Result<EventBody, Reject> {
        let a = self.assets.get(&asset).ok_or_else(|| Reject::new(RejectCode::UnknownAsset, "unknown asset"))?;
        let have = self.balance(account, asset).available;
        if amount.0 == 0 {
            return Err(bad("amount must be positive"));
        }
        if have < amount.0 {
            return Err(Reject::new(
                RejectCode::InsufficientFunds,
                format!("{} {} available", fmt_units(have, a.scale), a.name),
            ));
        }
        Ok(EventBody::Withdrawn { account, asset, amount, by })
    }

    pub fn decide_deposit(&self, account: AccountId, asset: AssetId, amount: Amount, by: AccountId) -> Result<EventBody, Reject> {
        if !self.assets.contains_key(&asset) {
            return Err(Reject::new(RejectCode::UnknownAsset, "unknown asset"));
        }
        if amount.0 == 0 {
            return Err(bad("amount must be positive"));
        }
        if !self.accounts.contains_key(&account) {
            return Err(bad("unknown account"));
        }
        let bal = self.balance(account, asset);
        let total = self.net_deposits.get(&asset).copied().unwrap_or(0);
        if bal.available.checked_add(amount.0).is_none()
            || bal.available.checked_add(bal.held).and_then(|v| v.checked_add(amount.0)).is_none()
            || total + amount.0 as u128 > u64::MAX as u128
        {
            return Err(bad("deposit overflows"));
        }
        Ok(EventBody::Deposited { account, asset, amount, by })
    }

    pub fn decide_create_user(&self, user: &str, role: Role, password_hash: String, by: AccountId) -> Result<EventBody, Reject> {
        if user.is_empty() || user.len() > 64 || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b)) {
            return Err(bad("user names are 1 to 64 characters of [A-Za-z0-9_.@-]"));
        }
        if user == FEE_USER || self.users.contains_key(user) {
            return Err(Reject::new(RejectCode::AlreadyExists, format!("user {user} exists")));
        }
        Ok(EventBody::UserCreated { account: AccountId(self.next_account_id), user: user.to_string(), role, password_hash, by })
    }


    /// Decides an operator command (assets, instruments, states, users,
    /// keys, deposits, withdrawals): its one event and the reply.
    pub fn decide_admin(&self, cmd: Command) -> Result<(EventBody, Reply), Reject> {
        let unknown_inst = || Reject::new(RejectCode::UnknownInstrument, "unknown instrument");
        match cmd {
            Command::CreateAsset { name, scale, by } => {
                if name.is_empty() || name.len() > 16 || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(bad("asset names are 1 to 16 letters or digits"));
                }
                if scale > 18 {
                    return Err(bad("scale is at most 18"));
                }
                if self.asset_by_name(&name).is_some() {
                    return Err(Reject::new(RejectCode::AlreadyExists, format!("asset {name} exists")));
                }
                let id = AssetId(self.assets.len() as u32 + 1);
                Ok((EventBody::AssetCreated { asset: AssetSpec { id, name, scale }, by }, Reply::Asset(id)))
            }
            Command::CreateInstrument { listing: l, by } => {
                let unknown = || Reject::new(RejectCode::UnknownAsset, "unknown asset");
                let base = self.assets.get(&l.base).ok_or_else(unknown)?;
                let quote = self.assets.get(&l.quote).ok_or_else(unknown)?;
                if l.base == l.quote {
                    return Err(bad("base and quote must differ"));
                }
                // A symbol is part of every stream key (`book.l2:SYM:50`) and
                // of log lines: no separator, space or control character.
                let sym_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
                if l.sym.is_empty() || l.sym.len() > 32 || !l.sym.chars().all(sym_char) {
                    return Err(bad("instrument symbols are 1 to 32 characters of [A-Za-z0-9._-]"));
                }
                if self.instrument_by_sym(&l.sym).is_some() {
                    return Err(Reject::new(RejectCode::AlreadyExists, format!("instrument {} exists", l.sym)));
                }
                let id = InstrumentId(self.instruments.len() as u32 + 1);
                let spec = InstrumentSpec::new(
                    id, &l.sym, base, quote, l.tick_raw, l.price_scale, l.lot_raw, l.qty_scale, l.min_qty,
                    l.ref_px, l.band_pct, l.maker_fee_bps, l.taker_fee_bps,
                )
                .map_err(bad)?;
                Ok((EventBody::InstrumentCreated { spec: Box::new(spec), by }, Reply::Instrument(id)))
            }
            Command::SetState { inst, state, by } => {
                self.instruments.get(&inst).ok_or_else(unknown_inst)?;
                Ok((EventBody::InstrumentStateSet { inst, state, by }, Reply::Done))
            }
            Command::CreateUser { user, role, password_hash, by } => {
                let e = self.decide_create_user(&user, role, password_hash, by)?;
                let EventBody::UserCreated { account, .. } = &e else { unreachable!("a user event") };
                let account = *account;
                Ok((e, Reply::User(account)))
            }
            Command::CreateApiKey { account, key, credential, by } => {
                if self.api_keys.contains_key(&key) {
                    return Err(Reject::new(RejectCode::AlreadyExists, "key exists"));
                }
                Ok((EventBody::ApiKeyCreated { account, key, credential, by }, Reply::Done))
            }
            Command::SetPassword { user, password_hash, by } => {
                let u = self.users.get(&user).ok_or_else(|| bad(format!("unknown user {user:?}")))?;
                let account = u.account;
                Ok((EventBody::PasswordSet { account, user, password_hash, by }, Reply::User(account)))
            }
            Command::Deposit { account, asset, amount, by } => {
                Ok((self.decide_deposit(account, asset, amount, by)?, Reply::Done))
            }
            Command::Withdraw { account, asset, amount, by } => {
                Ok((self.decide_withdraw(account, asset, amount, by)?, Reply::Done))
            }
            _ => Err(bad("not an operator command")),
        }
    }

    // ---- apply --------------------------------------------------------

    /// Carries out one event. When `out` is given, the private-stream
    /// messages it produces are appended (each account's `seq` is bumped
    /// either way, so replay gives the same versions).
    pub fn apply(&mut self, ts: u64, e: &EventBody, mut out: Option<&mut Vec<AccountUpdate>>) {
        match e {
            EventBody::AssetCreated { asset, .. } => {
                self.assets.insert(asset.id, asset.clone());
            }
            EventBody::InstrumentCreated { spec, .. } => {
                self.instruments.insert(spec.id, (**spec).clone());
                self.status_version += 1;
            }
            EventBody::InstrumentStateSet { inst, state, .. } => {
                if let Some(s) = self.instruments.get_mut(inst) {
                    s.state = *state;
                }
                self.status_version += 1;
            }
            EventBody::UserCreated { account, user, role, password_hash, .. } => {
                self.users.insert(
                    user.clone(),
                    User { account: *account, name: user.clone(), role: *role, password_hash: password_hash.clone() },
                );
                self.accounts.or_default(*account);
                self.next_account_id = self.next_account_id.max(account.0 + 1);
            }
            EventBody::ApiKeyCreated { account, key, credential, .. } => {
                self.api_keys.insert(key.clone(), (*account, credential.clone()));
            }
            EventBody::PasswordSet { user, password_hash, .. } => {
                if let Some(u) = self.users.get_mut(user) {
                    u.password_hash = password_hash.clone();
                }
            }
            EventBody::Deposited { account, asset, amount, .. } => {
                let b = self.bal(*account, *asset);
                b.available = b.available.checked_add(amount.0).expect("decided deposit fits");
                *self.net_deposits.entry(*asset).or_default() += amount.0 as u128;
                balance_changed(self.accounts.or_default(*account), *account, *asset, &mut out);
            }
            EventBody::Withdrawn { account, asset, amount, .. } => {
                let b = self.bal(*account, *asset);
                b.available = b.available.checked_sub(amount.0).expect("decided withdrawal is covered");
                *self.net_deposits.get_mut(asset).expect("asset was deposited") -= amount.0 as u128;
                balance_changed(self.accounts.or_default(*account), *account, *asset, &mut out);
            }
            EventBody::OrderAccepted { order } => {
                let o = &**order;
                let acct = self.accounts.or_default(o.account);
                let b = acct.balances.or_default(o.hold_asset);
                b.available = b.available.checked_sub(o.hold.0).expect("decided hold is covered");
                b.held += o.hold.0;
                // The event's only balance message.
                balance_changed(acct, o.account, o.hold_asset, &mut out);
                self.next_order_id = self.next_order_id.max(o.id.0 + 1);
                acct.open.insert(o.id, cl_tag(&o.cl_id));
                let orders = &self.orders;
                acct.cl_ids.insert(o.cl_id, o.id, |id, cl| orders.get(&id).is_some_and(|o| o.cl_id == *cl), &mut self.cl_log);
                // What is due to be forgotten: every account's cl_ids used
                // more than the window ago, oldest first, then this
                // account's oldest past its limit.
                let mut forget: Vec<ClEntry> = Vec::new();
                let due = ts.saturating_sub(CL_ID_WINDOW_US);
                if self.cl_log.front_ts < due {
                    while let Some(e) = self.cl_log.front().copied() {
                        if !e.gone() {
                            // The order being accepted is not in the table yet.
                            let used = self.orders.get(&e.id).map_or(ts, |o| o.ts);
                            if used >= due {
                                self.cl_log.front_ts = used;
                                break;
                            }
                            forget.push(e);
                        }
                        self.cl_log.pop_front();
                    }
                }
                for _ in CL_IDS_PER_ACCOUNT_MAX..acct.cl_ids.live() {
                    forget.extend(acct.cl_ids.take_oldest(&mut self.cl_log));
                }
                for e in forget {
                    let o = self.orders.get(&e.id).expect("a remembered order is in the order table");
                    let (cl, account) = (o.cl_id, o.account);
                    let a = self.accounts.get_mut(&account).expect("a remembered order's account exists");
                    a.cl_ids.forget(&e, &cl, &self.cl_log);
                    // An order still open stays (its cl_id is free again,
                    // and no longer names it).
                    if self.orders.get(&e.id).is_some_and(|o| !o.status.is_open()) {
                        self.orders.remove(&e.id);
                    } else {
                        a.open.set_tag(&e.id, NO_TAG);
                    }
                }
                self.orders.insert(
                    OrderState {
                        id: o.id,
                        account: o.account,
                        inst: o.inst,
                        cl_id: o.cl_id,
                        side: o.side,
                        kind: o.kind,
                        tif: o.tif,
                        post_only: o.post_only,
                        px: o.px,
                        qty: o.qty,
                        cum: Qty(0),
                        status: OrderStatus::New,
                        reason: None,
                        hold_asset: o.hold_asset,
                        hold: o.hold,
                        fee: FeeAcc::default(),
                        resting: false,
                        ts,
                    },
                );
            }
            EventBody::HoldAdded { order, amount } => {
                let o = self.orders.get_mut(order).expect("hold for a known order");
                o.hold.0 += amount.0;
                let (acc, asset) = (o.account, o.hold_asset);
                let b = self.bal(acc, asset);
                b.available = b.available.checked_sub(amount.0).expect("decided hold is covered");
                b.held += amount.0;
                balance_changed(self.accounts.or_default(acc), acc, asset, &mut out);
            }
            EventBody::Traded(t) => self.settle(ts, t, &mut out),
            EventBody::OrderOpened { order, px, qty, .. } => {
                let o = self.orders.get_mut(order).expect("opened order is known");
                o.resting = true;
                o.px = Some(*px);
                o.qty = Some(*qty);
                o.status = if o.cum.0 > 0 { OrderStatus::PartiallyFilled } else { OrderStatus::New };
                let (acc, snapshot) = (o.account, out.is_some().then(|| o.clone()));
                let seq = self.bump(acc);
                if let (Some(out), Some(order)) = (out.as_mut(), snapshot) {
                    out.push(AccountUpdate::Order { account: acc, seq, order });
                }
            }
            EventBody::OrderClosed { order, status, reason, .. } => {
                // A taker that filled ended with its last fill already.
                let o = self.orders.get_mut(order).expect("closed order is known");
                o.status = *status;
                o.reason = *reason;
                o.resting = false;
                let (acc, asset, release) = (o.account, o.hold_asset, o.hold.0);
                o.hold = Amount(0);
                let snapshot = out.is_some().then(|| o.clone());
                let a = self.accounts.get_mut(&acc).expect("account exists");
                a.open.remove(order);
                if release > 0 {
                    let b = a.balances.or_default(asset);
                    b.held -= release;
                    b.available += release;
                }
                a.seq += 1;
                let seq = a.seq;
                if let (Some(out), Some(order)) = (out.as_mut(), snapshot) {
                    out.push(AccountUpdate::Order { account: acc, seq, order });
                }
                // The released funds' balance message, after the order's.
                if release > 0 {
                    balance_changed(a, acc, asset, &mut out);
                }
            }
            EventBody::OrderRejected { order, .. } => {
                let o = self.orders.remove(order).expect("rejected order is known");
                let b = self.bal(o.account, o.hold_asset);
                b.held -= o.hold.0;
                b.available += o.hold.0;
                let acct = self.accounts.get_mut(&o.account).expect("account exists");
                balance_changed(acct, o.account, o.hold_asset, &mut out);
                acct.open.remove(order);
                // A refused order does not use up its cl_id. It is almost
                // always the account's newest order.
                acct.cl_ids.remove_if(&o.cl_id, *order, &mut self.cl_log);
            }
            EventBody::OrderAmended { order, px, qty, keep_priority, .. } => {
                let o = self.orders.get_mut(order).expect("amended order is known");
                o.px = Some(*px);
                o.qty = Some(*qty);
                if *keep_priority {
                    let (acc, snapshot) = (o.account, out.is_some().then(|| o.clone()));
                    let seq = self.bump(acc);
                    if let (Some(out), Some(order)) = (out.as_mut(), snapshot) {
                        out.push(AccountUpdate::Order { account: acc, seq, order });
                    }
                } else {
                    o.resting = false;
                }
            }
            EventBody::HoldReleased { order, amount } => {
                let o = self.orders.get_mut(order).expect("released order is known");
                o.hold.0 = o.hold.0.checked_sub(amount.0).expect("decided release is held");
                let (acc, asset) = (o.account, o.hold_asset);
                let b = self.bal(acc, asset);
                b.held -= amount.0;
                b.available += amount.0;
                balance_changed(self.accounts.or_default(acc), acc, asset, &mut out);
            }
            EventBody::AmendRejected { order, release, .. } => {
                // The order may have closed between the extra hold and the
                // refusal (its book filled or cancelled it first); a closed
                // order has released everything already.
                let open = self.orders.get_mut(order).filter(|o| o.status.is_open());
                if let Some(o) = open {
                    let r = release.0.min(o.hold.0);
                    o.hold.0 -= r;
                    let (acc, asset) = (o.account, o.hold_asset);
                    if r > 0 {
                        let b = self.bal(acc, asset);
                        b.held -= r;
                        b.available += r;
                        balance_changed(self.accounts.or_default(acc), acc, asset, &mut out);
                    }
                }
            }
        }
    }

    fn settle(&mut self, ts: u64, t: &Trade, out: &mut Option<&mut Vec<AccountUpdate>>) {
        let spec = &self.instruments[&t.inst];
        let (base, quote) = (spec.base, spec.quote);
        let notional = spec.notional(t.px, t.qty).expect("decided notional fits").0;
        let base_qty = spec.base_amount(t.qty).expect("decided qty fits").0;
        let (maker_bps, taker_bps) = (spec.maker_fee_bps, spec.taker_fee_bps);
        match self.last_px.get_mut(&t.inst) {
            Some(p) => *p = t.px,
            None => {
                self.last_px.insert(t.inst, t.px);
            }
        }
        for (id, acc, fee, liq, bps) in [
            (t.maker, t.maker_account, t.maker_fee, Liquidity::Maker, maker_bps),
            (t.taker, t.taker_account, t.taker_fee, Liquidity::Taker, taker_bps),
        ] {
            let o = self.orders.get_mut(&id).expect("traded order is known");
            let side = o.side;
            o.cum.0 += t.qty.0;
            o.fee = o.fee.charge(Amount(notional), bps).expect("decided fee fits").1;
            let spend = match side {
                Side::Buy => notional + fee.0,
                Side::Sell => base_qty,
            };
            o.hold.0 = o.hold.0.checked_sub(spend).expect("an order's hold covers its fills");
            let filled = o.qty.is_some_and(|q| q == o.cum);
            o.status = if filled { OrderStatus::Filled } else { OrderStatus::PartiallyFilled };
            let release = if filled { std::mem::take(&mut o.hold.0) } else { 0 };
            if filled {
                o.resting = false;
            }
            let snapshot = out.is_some().then(|| o.clone());
            let (held_asset, got_asset, got) = match side {
                Side::Buy => (quote, base, base_qty),
                Side::Sell => (base, quote, notional - fee.0),
            };
            // One account lookup for both balances, the fill and the version.
            let a = self.accounts.or_default(acc);
            let b = a.balances.or_default(held_asset);
            b.held -= spend + release;
            b.available += release;
            let b = a.balances.or_default(got_asset);
            b.available = b.available.checked_add(got).expect("balance fits");
            if filled {
                a.open.remove(&id);
            }
            a.next_fill_id += 1;
            let fill = Fill {
                fill_id: a.next_fill_id,
                trade_id: t.trade_id,
                order: id,
                inst: t.inst,
                side,
                px: t.px,
                qty: t.qty,
                fee,
                liq,
                ts,
            };
            a.seq += 1;
            let seq = a.seq;
            // A copy only for the private stream; the log takes the fill.
            if let (Some(out), Some(order)) = (out.as_mut(), snapshot) {
                out.push(AccountUpdate::Fill { account: acc, seq, fill: fill.clone(), order });
            }
            self.fill_log.push(acc, fill);
        }
        let fees = t.maker_fee.0 + t.taker_fee.0;
        if fees > 0 {
            let b = self.bal(FEE_ACCOUNT, quote);
            b.available = b.available.checked_add(fees).expect("fees fit");
        }
        // The changed balances in (account, asset) order: the fee account
        // (numbered first) then both sides, each side's two assets.
        let (lo, hi) = if base <= quote { (base, quote) } else { (quote, base) };
        let (first, second) = if t.maker_account <= t.taker_account {
            (t.maker_account, t.taker_account)
        } else {
            (t.taker_account, t.maker_account)
        };
        if first != second && FEE_ACCOUNT != first && FEE_ACCOUNT != second {
            // Three different accounts (always, for a trade between two
            // traders): the messages go out in that order directly, with
            // one account lookup each.
            let fee_first = FEE_ACCOUNT < first;
            if fees > 0 && fee_first {
                balance_changed(self.accounts.or_default(FEE_ACCOUNT), FEE_ACCOUNT, quote, out);
            }
            for acc in [first, second] {
                let a = self.accounts.or_default(acc);
                balance_changed(a, acc, lo, out);
                balance_changed(a, acc, hi, out);
            }
            if fees > 0 && !fee_first {
                balance_changed(self.accounts.or_default(FEE_ACCOUNT), FEE_ACCOUNT, quote, out);
            }
            return;
        }
        let mut touched = Touched::default();
        let fee_first = fees > 0 && FEE_ACCOUNT < first;
        if fee_first {
            touched.push((FEE_ACCOUNT, quote));
        }
        for acc in [first, second] {
            touched.push((acc, lo));
            touched.push((acc, hi));
        }
        if fees > 0 && !fee_first {
            touched.push((FEE_ACCOUNT, quote));
        }
        self.announce(&mut touched, out);
    }

    /// One balance message per (account, asset) of `touched`, in order;
    /// one account lookup per account.
    fn announce(&mut self, touched: &mut Touched, out: &mut Option<&mut Vec<AccountUpdate>>) {
        let touched = touched.sorted();
        let mut i = 0;
        while i < touched.len() {
            let acc = touched[i].0;
            let a = self.accounts.or_default(acc);
            while i < touched.len() && touched[i].0 == acc {
                let asset = touched[i].1;
                i += 1;
                a.seq += 1;
                if let Some(out) = out.as_mut() {
                    let balance = a.balances.get(&asset).copied().unwrap_or_default();
                    out.push(AccountUpdate::Balance { account: acc, seq: a.seq, asset, balance });
                }
            }
        }
    }

    fn bal(&mut self, account: AccountId, asset: AssetId) -> &mut Balance {
        self.accounts.or_default(account).balances.or_default(asset)
    }

    fn bump(&mut self, account: AccountId) -> u64 {
        let a = self.accounts.or_default(account);
        a.seq += 1;
        a.seq
    }

    /// Asserts conservation per asset and that order holds add up to `held`.
    pub fn check(&self) {
        let mut sums: BTreeMap<AssetId, u128> = BTreeMap::new();
        let mut holds: BTreeMap<(AccountId, AssetId), u64> = BTreeMap::new();
        for (acc, a) in &self.accounts {
            for (asset, b) in a.balances.iter() {
                *sums.entry(asset).or_default() += b.available as u128 + b.held as u128;
                holds.entry((*acc, asset)).or_default();
            }
        }
        for (asset, total) in &sums {
            assert_eq!(
                *total,
                self.net_deposits.get(asset).copied().unwrap_or(0),
                "asset {asset:?}: balances must equal deposits minus withdrawals"
            );
        }
        self.fill_log.check();
        for o in self.orders.values() {
            if o.status.is_open() {
                *holds.entry((o.account, o.hold_asset)).or_default() += o.hold.0;
                // A resting order holds at least what its leaves can still
                // need (what an amend's release leaves it).
                if let (true, Some(px), Some(qty)) = (o.resting, o.px, o.qty) {
                    let spec = &self.instruments[&o.inst];
                    let leaves = Qty(qty.0 - o.cum.0);
                    let need = spec.hold_need(o.side, px, leaves, o.fee);
                    assert!(need.is_some_and(|n| o.hold.0 >= n.0), "order {:?} holds {} for a need of {need:?}: {o:?}", o.id, o.hold.0);
                }
            } else {
                assert_eq!(o.hold.0, 0, "a closed order holds nothing");
            }
        }
        for ((acc, asset), h) in holds {
            assert_eq!(self.balance(acc, asset).held, h, "held of {acc:?}/{asset:?} equals its orders' holds");
        }
        self.cl_log.check();
        for (acc, a) in self.accounts.iter() {
            a.cl_ids.check(*acc, &self.cl_log, |id| self.orders.get(&id).is_some_and(|o| o.account == *acc));
        }
        let mut last_ts = 0;
        for e in self.cl_log.entries().filter(|e| !e.gone()) {
            let o = self.orders.get(&e.id).expect("a remembered order is in the order table");
            assert_eq!(self.order_by_clid(o.account, &o.cl_id), Some(e.id), "a remembered cl_id names its order");
            assert!(o.ts >= last_ts, "the log is in the order used");
            last_ts = o.ts;
        }
        for (acc, a) in self.accounts.iter() {
            for id in &a.open {
                let o = self.orders.get(id).expect("an open order is in the order table");
                let want = if self.order_by_clid(*acc, &o.cl_id) == Some(*id) { cl_tag(&o.cl_id) } else { NO_TAG };
                assert_eq!(a.open.tag(id), Some(want), "{acc:?}'s open order {id:?} is tagged while its cl_id names it");
            }
        }
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// What resolving and closing an order touch lies in the record's
    /// second 32-byte block; a fill's fields in its first three blocks; the
    /// record stays 160 bytes (so records start on a line or half-way in
    /// one, and no block straddles two lines).
    /// A `cl_id` is 1 to `CL_ID_LEN_MAX` bytes of `[A-Za-z0-9_-]`: every
    /// byte value is tried on its own, then lengths and mixes.
    #[test]
    fn cl_id_bytes_are_letters_digits_underscore_and_dash() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
            assert_eq!(valid_cl_id_bytes(&[b]), want, "byte {b}");
            assert_eq!(valid_cl_id_bytes(&[b'a', b, b'z']), want, "byte {b} inside");
        }
        assert!(valid_cl_id("Az09_-"));
        assert!(valid_cl_id(&"a".repeat(CL_ID_LEN_MAX)));
        assert!(!valid_cl_id(&"a".repeat(CL_ID_LEN_MAX + 1)));
        assert!(!valid_cl_id(""));
        assert!(!valid_cl_id("a b"));
        assert!(!valid_cl_id("é"));
    }

    #[test]
    fn an_orders_hot_fields_share_a_half_line() {
        assert_eq!(size_of::<OrderState>(), 160);
        assert_eq!(size_of::<Option<OrderState>>(), 160);
        let block = |at: usize, len: usize| {
            assert_eq!(at / 32, (at + len - 1) / 32, "a field at {at} straddles a block");
            at / 32
        };
        for (at, len) in [
            (offset_of!(OrderState, account), 8),
            (offset_of!(OrderState, inst), 4),
            (offset_of!(OrderState, hold_asset), 4),
            (offset_of!(OrderState, hold), 8),
            (offset_of!(OrderState, status), 1),
            (offset_of!(OrderState, reason), 1),
            (offset_of!(OrderState, resting), 1),
            (offset_of!(OrderState, side), 1),
        ] {
            assert_eq!(block(at, len), 1, "closing reads the second block");
        }
        assert_eq!(block(offset_of!(OrderState, fee), size_of::<FeeAcc>()), 0);
        assert_eq!(block(offset_of!(OrderState, cum), 8), 2);
        assert_eq!(block(offset_of!(OrderState, qty), size_of::<Option<Qty>>()), 2);
    }

    /// The encoding keeps the fields' original order, whatever the layout.
    #[test]
    fn an_order_encodes_in_its_original_field_order() {
        let o = OrderState {
            account: AccountId(7), inst: InstrumentId(1), hold_asset: AssetId(2), hold: Amount(5), status: OrderStatus::New,
            reason: None, resting: true, side: Side::Sell, kind: OrderType::Limit, tif: Tif::Gtc, post_only: false,
            id: OrderId(3), cum: Qty(0), px: Some(Price(10)), qty: Some(Qty(4)), ts: 9, cl_id: ClId::new("c").expect("short"),
            fee: FeeAcc::default(),
        };
        let enc = rmp_serde::to_vec(&o).expect("encodes");
        // Eighteen fields, the id, account, instrument and cl_id first.
        use serde::de::IgnoredAny as Any;
        #[derive(Deserialize)]
        struct Head(OrderId, AccountId, InstrumentId, ClId, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any, Any);
        let h: Head = rmp_serde::from_slice(&enc).expect("eighteen fields");
        assert_eq!((h.0, h.1, h.2, h.3), (OrderId(3), AccountId(7), InstrumentId(1), o.cl_id));
        let back: OrderState = rmp_serde::from_slice(&enc).expect("decodes");
        assert_eq!(back, o);
    }
}

#[cfg(test)]
mod pipeline_tests {
    use super::*;
    use crate::event::Event;
    use crate::exchange::{Command, Exchange, Listing};

    /// USD (1) and BTC (2), BTC-USD with the given fees, and two traders,
    /// accounts 1 and 2, with nothing deposited.
    fn two_traders(maker_fee_bps: u32, taker_fee_bps: u32) -> Exchange {
        let mut ex = Exchange::new();
        let admin = AccountId(0);
        let ok = |o: crate::exchange::Outcome| o.result.expect("accepted");
        ok(ex.execute(Command::CreateAsset { name: "USD".into(), scale: 2, by: admin }, 1));
        ok(ex.execute(Command::CreateAsset { name: "BTC".into(), scale: 8, by: admin }, 1));
        let listing = Listing {
            sym: "BTC-USD".into(), base: AssetId(2), quote: AssetId(1), tick_raw: 1, price_scale: 0, lot_raw: 1, qty_scale: 2,
            min_qty: Qty(1), ref_px: Some(Price(100)), band_pct: 50, maker_fee_bps, taker_fee_bps,
        };
        ok(ex.execute(Command::CreateInstrument { listing, by: admin }, 1));
        for u in ["a", "b"] {
            ok(ex.execute(Command::CreateUser { user: u.into(), role: Role::Trader, password_hash: String::new(), by: admin }, 1));
        }
        ex
    }

    /// Every private message of a command: each account's versions go up
    /// by one per message with nothing skipped, a balance message carries
    /// the balance the command left, and the messages come in their fixed
    /// order (an order's or fill's message before the balances; balances by
    /// account, then asset).
    #[test]
    fn private_messages_carry_consecutive_versions_and_final_balances() {
        let mut ex = two_traders(10, 20);
        let admin = AccountId(0);
        let ok = |o: crate::exchange::Outcome| o.result.expect("accepted");
        let (a, b) = (AccountId(1), AccountId(2));
        let (usd, btc) = (AssetId(1), AssetId(2));
        for acc in [a, b] {
            ok(ex.execute(Command::Deposit { account: acc, asset: usd, amount: Amount(100_000_000), by: admin }, 1));
            ok(ex.execute(Command::Deposit { account: acc, asset: btc, amount: Amount(100_000_000_000), by: admin }, 1));
        }
        let place = |acc, side, px, qty, tif, cl: &str| {
            Command::Place(PlaceCmd {
                account: acc, inst: InstrumentId(1), cl_id: ClId::new(cl).expect("short"), side, kind: OrderType::Limit, tif,
                px: Some(Price(px)), qty: Some(Qty(qty)), quote_qty: None, post_only: false, stp: Stp::CancelNewest,
            })
        };
        // What a message is: (kind, account, asset).
        let what = |u: &AccountUpdate| match u {
            AccountUpdate::Order { account, .. } => ("order", *account, None),
            AccountUpdate::Fill { account, .. } => ("fill", *account, None),
            AccountUpdate::Balance { account, asset, .. } => ("balance", *account, Some(*asset)),
        };
        let fee = FEE_ACCOUNT;
        let cancel = |acc, cl: &str| Command::Cancel { account: acc, inst: InstrumentId(1), order: crate::exchange::OrderRef::ClId(cl.into()) };
        let steps = vec![
            // Accepted (the hold), then opened.
            (place(a, Side::Buy, 100, 10, None, "x"), vec![("balance", a, Some(usd)), ("order", a, None)]),
            // Accepted, two fills, then the balances by account and asset
            // (the fee account first), then the filled taker's close.
            (
                place(b, Side::Sell, 100, 4, Some(Tif::Ioc), "y"),
                vec![
                    ("balance", b, Some(btc)),
                    ("fill", a, None),
                    ("fill", b, None),
                    ("balance", fee, Some(usd)),
                    ("balance", a, Some(usd)),
                    ("balance", a, Some(btc)),
                    ("balance", b, Some(usd)),
                    ("balance", b, Some(btc)),
                    ("order", b, None),
                ],
            ),
            // The close, then the released funds.
            (cancel(a, "x"), vec![("order", a, None), ("balance", a, Some(usd))]),
        ];
        for (i, (cmd, expect)) in steps.into_iter().enumerate() {
            let before: Vec<u64> = [fee, a, b].iter().map(|acc| ex.ledger.accounts[acc].seq).collect();
            let mut out = Vec::new();
            ok(ex.execute_with(cmd, 10 + i as u64, Some(&mut out)));
            assert_eq!(out.iter().map(what).collect::<Vec<_>>(), expect, "step {i}");
            for (k, acc) in [fee, a, b].into_iter().enumerate() {
                let seqs: Vec<u64> = out
                    .iter()
                    .filter_map(|u| match u {
                        AccountUpdate::Order { account, seq, .. }
                        | AccountUpdate::Fill { account, seq, .. }
                        | AccountUpdate::Balance { account, seq, .. } => (*account == acc).then_some(*seq),
                    })
                    .collect();
                let want: Vec<u64> = (before[k] + 1..=before[k] + seqs.len() as u64).collect();
                assert_eq!(seqs, want, "step {i}: versions of {acc:?}");
                assert_eq!(ex.ledger.accounts[&acc].seq, before[k] + seqs.len() as u64);
            }
            // The last message of each balance carries what the command left.
            let mut last: BTreeMap<(AccountId, AssetId), Balance> = BTreeMap::new();
            for u in &out {
                if let AccountUpdate::Balance { account, asset, balance, .. } = u {
                    last.insert((*account, *asset), *balance);
                }
            }
            for ((account, asset), balance) in last {
                assert_eq!(balance, ex.ledger.balance(account, asset), "step {i}: {account:?}/{asset:?}");
            }
        }
        ex.check();
    }

    /// A symbol with a stream key's separator, a space or a control
    /// character is refused, as is a reference price of zero (the band
    /// around it would refuse every price, so the book could never trade).
    #[test]
    fn a_listing_needs_a_plain_symbol_and_a_positive_reference_price() {
        let mut ex = two_traders(0, 0);
        let admin = AccountId(0);
        let listing = |sym: &str, ref_px| Listing {
            sym: sym.into(), base: AssetId(2), quote: AssetId(1), tick_raw: 1, price_scale: 0, lot_raw: 1, qty_scale: 2,
            min_qty: Qty(1), ref_px, band_pct: 10, maker_fee_bps: 0, taker_fee_bps: 0,
        };
        for sym in ["A:B", "A B", "A,B", "BTC/USD", "Ü", "A\n", "", &"X".repeat(33)] {
            let r = ex.execute(Command::CreateInstrument { listing: listing(sym, Some(Price(100))), by: admin }, 1).result;
            assert_eq!(r.map_err(|e| e.code), Err(RejectCode::BadRequest), "{sym:?}");
        }
        let r = ex.execute(Command::CreateInstrument { listing: listing("ZERO-REF", Some(Price(0))), by: admin }, 1).result;
        assert_eq!(r.map_err(|e| e.code), Err(RejectCode::BadRequest));
        for (sym, ref_px) in [("BTC_USD.2-b", Some(Price(100))), (&*"Y".repeat(32), None)] {
            let r = ex.execute(Command::CreateInstrument { listing: listing(sym, ref_px), by: admin }, 1).result;
            assert!(matches!(r, Ok(Reply::Instrument(_))), "{sym:?}: {r:?}");
        }
        ex.check();
    }

    /// In the actor pipeline an amend's extra hold is recorded before its
    /// book sees it; the book may fill the order first and then refuse the
    /// amend. Applying that order of events must not release funds twice.
    #[test]
    fn an_amend_refused_after_its_order_closed_releases_nothing_twice() {
        let mut ex = two_traders(0, 0);
        let admin = AccountId(0);
        let ok = |o: crate::exchange::Outcome| o.result.expect("accepted");
        let (a, b) = (AccountId(1), AccountId(2));
        ok(ex.execute(Command::Deposit { account: a, asset: AssetId(1), amount: Amount(1_000_000), by: admin }, 1));
        ok(ex.execute(Command::Deposit { account: b, asset: AssetId(2), amount: Amount(1_000_000_000), by: admin }, 1));
        let place = |acc, side, px, qty, cl: &str| {
            Command::Place(PlaceCmd {
                account: acc, inst: InstrumentId(1), cl_id: ClId::new(cl).expect("short"), side, kind: OrderType::Limit, tif: None,
                px: Some(Price(px)), qty: Some(Qty(qty)), quote_qty: None, post_only: false, stp: Stp::CancelNewest,
            })
        };
        let Reply::Placed { order, .. } = ok(ex.execute(place(a, Side::Buy, 100, 10, "x"), 2)) else { panic!() };
        // The ledger holds more for an amend to 20 lots...
        let hold = ex.ledger.decide_amend_hold(a, order, Some(Qty(20)), None).unwrap().expect("more is needed");
        ex.apply(&Event { ts: 3, body: hold }, None);
        // ...its book fills the order first...
        ok(ex.execute(place(b, Side::Sell, 100, 10, "y"), 4));
        assert_eq!(ex.ledger.order(order).unwrap().status, OrderStatus::Filled);
        // ...then refuses the amend, releasing the extra it was told about.
        let refused = EventBody::AmendRejected { inst: InstrumentId(1), order, code: RejectCode::UnknownOrder, release: Amount(1_000) };
        ex.apply(&Event { ts: 5, body: refused }, None);
        ex.check();
        assert_eq!(ex.ledger.balance(a, AssetId(1)), Balance { available: 1_000_000 - 1_000, held: 0 });
    }
}
