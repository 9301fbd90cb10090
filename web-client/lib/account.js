// The page's view of the logged-in account, fed by the `account` stream.
//
// Owns balances, open orders and the fills history of one account: the
// stream's snapshot sets balances and open orders, then `order`, `fill` and
// `balance` events keep them current (PROTOCOL.md section 6); the history
// from `account.fills` is merged in without duplicates. Pure data: the stream
// client decides which events apply, this module only folds them in.

import { add, dec, format, isZero } from './decimal.js';

/** Fills kept in memory for the history panel. */
export const fills_max = 500;

const OPEN = new Set(['new', 'partially_filled']);

export function isOpenStatus(status) {
  return OPEN.has(status);
}

/** Identity of one fill: the same fill comes from history and from live events. */
export function fillKey(f) {
  return `${f.trade_id}:${f.order_id}`;
}

function newerFirst(a, b) {
  const ta = a.ts ?? 0;
  const tb = b.ts ?? 0;
  if (ta !== tb) return tb - ta;
  return (b.trade_id ?? 0) - (a.trade_id ?? 0);
}

export class AccountState {
  constructor() {
    this.clear();
  }

  clear() {
    /** asset -> {asset, available, held} (wire strings) */
    this.balances = new Map();
    /** order_id -> order (open orders only) */
    this.orders = new Map();
    /** newest first */
    this.fills = [];
    this.fillKeys = new Set();
    this.version = 0;
  }

  applySnapshot(data = {}) {
    this.balances = new Map();
    for (const b of data.balances ?? []) this.balances.set(b.asset, { ...b });
    this.orders = new Map();
    for (const o of data.orders ?? []) this.upsertOrder(o);
    this.version += 1;
  }

  /** One `account` stream event that passed the sequencing rule. */
  applyEvent(msg) {
    switch (msg.type) {
      case 'snapshot':
        this.applySnapshot(msg.data);
        break;
      case 'order':
        this.upsertOrder(msg.data);
        break;
      case 'fill':
        this.applyFill({ ...msg.data, ts: msg.data?.ts ?? msg.ts });
        break;
      case 'balance':
        if (msg.data?.asset) this.balances.set(msg.data.asset, { ...msg.data });
        break;
      default:
        return false; // an event type this page does not know
    }
    this.version += 1;
    return true;
  }

  upsertOrder(o) {
    if (!o || o.order_id === undefined) return;
    if (isOpenStatus(o.status)) {
      const prev = this.orders.get(o.order_id);
      this.orders.set(o.order_id, prev ? { ...prev, ...o } : { ...o });
    } else {
      this.orders.delete(o.order_id);
    }
  }

  applyFill(f) {
    const o = this.orders.get(f.order_id);
    if (o) {
      const upd = { ...o };
      if (f.cum_qty !== undefined) upd.cum_qty = f.cum_qty;
      if (f.leaves_qty !== undefined) upd.leaves_qty = f.leaves_qty;
      if (f.status !== undefined) upd.status = f.status;
      this.upsertOrder(upd);
    }
    this.addFill(f);
  }

  /** Adds one fill unless already known; returns whether it was new. */
  addFill(f) {
    const k = fillKey(f);
    if (this.fillKeys.has(k)) return false;
    this.fillKeys.add(k);
    this.fills.push(f);
    this.fills.sort(newerFirst);
    while (this.fills.length > fills_max) this.fillKeys.delete(fillKey(this.fills.pop()));
    return true;
  }

  /** The `account.fills` answer (newest first), merged with live fills. */
  mergeFills(list = []) {
    let n = 0;
    for (const f of list) if (this.addFill(f)) n += 1;
    if (n) this.version += 1;
    return n;
  }

  /** Open orders, newest first, optionally of one instrument. */
  openOrders(sym) {
    const list = [...this.orders.values()].filter((o) => !sym || o.sym === sym);
    list.sort((a, b) => (b.ts ?? 0) - (a.ts ?? 0) || (b.order_id ?? 0) - (a.order_id ?? 0));
    return list;
  }

  /**
   * Own resting quantity per price on each side of one instrument, to mark
   * the book: {bids: Map px -> qty, asks: Map px -> qty} (wire strings).
   */
  ownLevels(sym) {
    const bids = new Map();
    const asks = new Map();
    for (const o of this.orders.values()) {
      if (o.sym !== sym || !o.px || o.type === 'market') continue;
      const leaves = o.leaves_qty ?? o.qty;
      if (!leaves || isZero(leaves)) continue;
      const m = o.side === 'buy' ? bids : asks;
      const prev = m.get(o.px);
      m.set(o.px, prev ? format(add(prev, leaves)) : leaves);
    }
    return { bids, asks };
  }

  balance(asset) {
    return this.balances.get(asset) ?? null;
  }

  /** Assets sorted by name. */
  balanceList() {
    return [...this.balances.values()].sort((a, b) => (a.asset < b.asset ? -1 : a.asset > b.asset ? 1 : 0));
  }

  /** Total (available + held) of an asset as an exact string. */
  total(asset) {
    const b = this.balances.get(asset);
    if (!b) return null;
    return format(add(dec(b.available), dec(b.held)));
  }
}
