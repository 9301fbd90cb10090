// A small stand-in exchange for exercising the trading page without the
// Rust server: serves web-client/ over HTTP and speaks enough of PROTOCOL.md
// v1 (JSON only) on /ws for the page and e2e/run.mjs: auth, session.resume,
// subscribe with resume, book.l2 with checksums, trades, candles, ticker,
// status, the account stream, order place/cancel/amend with price-time
// matching, holds and fees, and heartbeats. It is a development tool: the
// exchange itself is the Rust server, and the e2e script targets that by
// default.
//
// Usage: node e2e/mock-exchange.mjs [port]   (default 8080; 0 picks one)
// Prints "listening on http://127.0.0.1:PORT" when ready.

import http from 'node:http';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as D from '../lib/decimal.js';
import { checksum } from '../lib/book.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Events kept per stream for resume. */
const ring_events_max = 1000;
/** Trades in a trades snapshot; candles in a candles snapshot. */
const snapshot_trades_max = 50;
const snapshot_candles_max = 100;
/** Largest frame accepted (PROTOCOL.md section 1). */
const frame_bytes_max = 64 * 1024;

const INTERVAL_US = { '1m': 60e6, '5m': 300e6, '15m': 900e6, '1h': 3600e6, '1d': 86400e6 };
const ERR_NUM = {
  bad_request: 1001, unknown_op: 1002, unknown_instrument: 1005, auth_required: 2001, bad_credentials: 2002,
  token_expired: 2005, insufficient_funds: 3002, price_tick: 3003, lot_size: 3004, min_qty: 3005,
  post_only_would_take: 3007, fok_unfilled: 3008, unknown_order: 3010, invalid_amend: 3011,
};

const nowUs = () => Date.now() * 1000;

class ProtoErr extends Error {
  constructor(code, msg) {
    super(msg || code);
    this.code = code;
  }
}

// ---- state -------------------------------------------------------------------

const EPOCH = 1;
/** USD's scale: tick x lot (0.1 x 0.001) is exact at it, as PROTOCOL.md section 5 requires. */
const USD_SCALE = 4;
const users = new Map();
function addUser(name, password) {
  users.set(name, {
    name,
    password,
    balances: new Map([
      ['USD', { available: D.parse('100000.0000'), held: D.parse('0.0000'), scale: 4 }],
      ['BTC', { available: D.parse('10.00000000'), held: D.parse('0.00000000'), scale: 8 }],
    ]),
    orders: new Map(),
    fills: [],
    clIds: new Map(),
  });
}
addUser(process.env.BOURSE_E2E_USER1 || 'alice', process.env.BOURSE_E2E_PASS1 || 'alice-demo');
addUser(process.env.BOURSE_E2E_USER2 || 'bob', process.env.BOURSE_E2E_PASS2 || 'bob-demo');
addUser('mm', 'mm-not-for-login');

const INST = {
  sym: 'BTC-USD', base: 'BTC', quote: 'USD', tick: '0.1', lot: '0.001', min_qty: '0.002',
  price_scale: 1, qty_scale: 3, band_pct: 10, maker_fee_bps: 1, taker_fee_bps: 5, state: 'trading',
};
const instruments = new Map([[INST.sym, INST]]);
const market = {
  bids: [], // resting orders, best first, FIFO within a price
  asks: [],
  version: 0,
  tradeId: 0,
  trades: [],
  candles: new Map(Object.keys(INTERVAL_US).map((i) => [i, new Map()])),
  candleSeq: new Map(Object.keys(INTERVAL_US).map((i) => [i, 0])),
  ticker: { last: null, open_24h: null, high_24h: null, low_24h: null, volume_24h: null },
};
let nextOrderId = 1;
let statusSeq = 1;
const accountSeq = new Map();
const rings = new Map(); // stream key -> [{seq, msg}]
const sessions = new Map(); // token -> user name
const conns = new Set();

function ring(key) {
  if (!rings.has(key)) rings.set(key, []);
  return rings.get(key);
}

function record(key, msg) {
  const r = ring(key);
  r.push(msg);
  if (r.length > ring_events_max) r.shift();
}

// ---- money -------------------------------------------------------------------------

const bal = (u, a) => u.balances.get(a);
const fmtAsset = (u, a, v) => D.format(D.rescale(v, bal(u, a).scale, 'up'));
function balanceData(u, a) {
  const b = bal(u, a);
  return { asset: a, available: D.format(b.available, b.scale), held: D.format(b.held, b.scale) };
}
function feeOf(notional, bps) {
  return D.feeUp(notional, bps, USD_SCALE);
}

// ---- book ----------------------------------------------------------------------------

function levels(side, depth) {
  const out = [];
  for (const o of side) {
    const last = out[out.length - 1];
    if (last && D.eq(last[0], o.px)) last[1] = D.add(last[1], o.leaves);
    else out.push([o.px, o.leaves]);
  }
  const lv = out.map(([p, q]) => [D.format(p, INST.price_scale), D.format(q, INST.qty_scale)]);
  return depth > 0 ? lv.slice(0, depth) : lv;
}

function insertResting(o) {
  const side = o.side === 'buy' ? market.bids : market.asks;
  let i = 0;
  while (i < side.length) {
    const c = D.cmp(side[i].px, o.px);
    if (o.side === 'buy' ? c < 0 : c > 0) break;
    i++;
  }
  side.splice(i, 0, o);
}

function removeResting(o) {
  const side = o.side === 'buy' ? market.bids : market.asks;
  const i = side.indexOf(o);
  if (i >= 0) side.splice(i, 1);
}

function orderData(o) {
  return {
    order_id: o.order_id, cl_id: o.cl_id, sym: o.sym, side: o.side, type: o.type, tif: o.tif, post_only: o.post_only,
    px: o.px ? D.format(o.px, INST.price_scale) : null, qty: D.format(o.qty, INST.qty_scale),
    cum_qty: D.format(o.cum, INST.qty_scale), leaves_qty: D.format(o.leaves, INST.qty_scale), status: o.status,
    ...(o.reason ? { reason: o.reason } : {}), ts: o.ts,
  };
}

// ---- streams ----------------------------------------------------------------------------

function accountEvent(u, type, data) {
  const seq = (accountSeq.get(u.name) ?? 1) + 1;
  accountSeq.set(u.name, seq);
  const msg = { ch: 'account', epoch: EPOCH, prev: seq - 1, seq, ts: nowUs(), type, data };
  record(`account#${u.name}`, msg);
  for (const c of conns) if (c.user === u.name && c.subs.has('account')) c.sendEvent('account', msg);
}

function accountSnapshot(u) {
  const seq = accountSeq.get(u.name) ?? 1;
  accountSeq.set(u.name, seq);
  const orders = [...u.orders.values()].filter((o) => o.status === 'new' || o.status === 'partially_filled').map(orderData);
  return { ch: 'account', epoch: EPOCH, seq, ts: nowUs(), type: 'snapshot', data: { balances: [...u.balances.keys()].map((a) => balanceData(u, a)), orders } };
}

function bookChanged() {
  market.version += 1;
  for (const c of conns) {
    for (const [key, sub] of c.subs) {
      if (key.startsWith('book.l2:')) {
        const now = levels(market.bids, sub.depth);
        const nowA = levels(market.asks, sub.depth);
        const delta = (before, after) => {
          const m = new Map(after.map(([p, q]) => [p, q]));
          const out = [];
          for (const [p] of before) if (!m.has(p)) out.push([p, '0']);
          const b = new Map(before.map(([p, q]) => [p, q]));
          for (const [p, q] of after) if (b.get(p) !== q) out.push([p, q]);
          return out;
        };
        const bids = delta(sub.bids, now);
        const asks = delta(sub.asks, nowA);
        sub.bids = now;
        sub.asks = nowA;
        if (!bids.length && !asks.length) continue;
        const msg = { ch: 'book.l2', sym: INST.sym, type: 'delta', epoch: EPOCH, prev: sub.last, seq: market.version, ts: nowUs(), depth: sub.depth, bids, asks };
        if (sub.cksum) msg.cksum = checksum(now, nowA, sub.depth);
        c.sendEvent(key, msg);
      }
      if (key.startsWith('ticker:')) c.sendEvent(key, tickerMsg('update'));
    }
  }
}

function tickerMsg(type) {
  const t = market.ticker;
  const f = (v) => (v === null ? null : D.format(v, INST.price_scale));
  const bb = market.bids[0];
  const ba = market.asks[0];
  return {
    ch: 'ticker', sym: INST.sym, epoch: EPOCH, seq: market.version, ts: nowUs(), type,
    data: {
      last: f(t.last), bid: bb ? f(bb.px) : null, ask: ba ? f(ba.px) : null, open_24h: f(t.open_24h),
      high_24h: f(t.high_24h), low_24h: f(t.low_24h), volume_24h: t.volume_24h === null ? null : D.format(t.volume_24h, INST.qty_scale),
    },
  };
}

function publishTrade(px, qty, taker) {
  market.tradeId += 1;
  const ts = nowUs();
  const tr = { id: market.tradeId, px: D.format(px, INST.price_scale), qty: D.format(qty, INST.qty_scale), taker, ts };
  market.trades.push(tr);
  if (market.trades.length > ring_events_max) market.trades.shift();
  const msg = { ch: 'trades', sym: INST.sym, epoch: EPOCH, prev: market.tradeId - 1, seq: market.tradeId, ts, type: 'update', data: [tr] };
  record(`trades:${INST.sym}`, msg);
  const t = market.ticker;
  t.last = px;
  t.open_24h ??= px;
  t.high_24h = t.high_24h === null ? px : D.max(t.high_24h, px);
  t.low_24h = t.low_24h === null ? px : D.min(t.low_24h, px);
  t.volume_24h = t.volume_24h === null ? qty : D.add(t.volume_24h, qty);
  for (const [iv, us] of Object.entries(INTERVAL_US)) {
    const start = Math.floor(ts / us) * us;
    const cs = market.candles.get(iv);
    const c = cs.get(start) ?? { start, o: px, h: px, l: px, c: px, v: D.ZERO, n: 0 };
    c.h = D.max(c.h, px);
    c.l = D.min(c.l, px);
    c.c = px;
    c.v = D.add(c.v, qty);
    c.n += 1;
    cs.set(start, c);
    const seq = market.candleSeq.get(iv) + 1;
    market.candleSeq.set(iv, seq);
    const cm = { ch: 'candles', sym: INST.sym, interval: iv, epoch: EPOCH, prev: seq - 1, seq, ts, type: 'update', data: candleData(c) };
    record(`candles:${INST.sym}:${iv}`, cm);
    for (const conn of conns) if (conn.subs.has(`candles:${INST.sym}:${iv}`)) conn.sendEvent(`candles:${INST.sym}:${iv}`, cm);
  }
  for (const conn of conns) if (conn.subs.has(`trades:${INST.sym}`)) conn.sendEvent(`trades:${INST.sym}`, msg);
}

function candleData(c) {
  return {
    start: c.start, o: D.format(c.o, INST.price_scale), h: D.format(c.h, INST.price_scale), l: D.format(c.l, INST.price_scale),
    c: D.format(c.c, INST.price_scale), v: D.format(c.v, INST.qty_scale), n: c.n, closed: false,
  };
}

function snapshotOf(key, conn, spec) {
  const ts = nowUs();
  if (key.startsWith('book.l2:')) {
    const sub = conn.subs.get(key);
    sub.bids = levels(market.bids, sub.depth);
    sub.asks = levels(market.asks, sub.depth);
    const m = { ch: 'book.l2', sym: INST.sym, type: 'snapshot', epoch: EPOCH, seq: market.version, ts, depth: sub.depth, bids: sub.bids, asks: sub.asks };
    if (sub.cksum) m.cksum = checksum(sub.bids, sub.asks, sub.depth);
    return m;
  }
  if (key.startsWith('trades:')) return { ch: 'trades', sym: INST.sym, type: 'snapshot', epoch: EPOCH, seq: market.tradeId, ts, data: market.trades.slice(-snapshot_trades_max) };
  if (key.startsWith('candles:')) {
    const iv = spec.interval;
    const list = [...market.candles.get(iv).values()].sort((a, b) => a.start - b.start).slice(-snapshot_candles_max).map(candleData);
    return { ch: 'candles', sym: INST.sym, interval: iv, type: 'snapshot', epoch: EPOCH, seq: market.candleSeq.get(iv), ts, data: list };
  }
  if (key.startsWith('ticker:')) return tickerMsg('snapshot');
  if (key === 'status') return { ch: 'status', type: 'snapshot', epoch: EPOCH, seq: statusSeq, ts, data: { instruments: [...instruments.values()] } };
  if (key === 'account') return accountSnapshot(users.get(conn.user));
  throw new Error(`no snapshot for ${key}`);
}

function currentSeq(key, conn, spec) {
  if (key.startsWith('book.l2:')) return market.version;
  if (key.startsWith('trades:')) return market.tradeId;
  if (key.startsWith('candles:')) return market.candleSeq.get(spec.interval);
  if (key === 'status') return statusSeq;
  if (key === 'account') return accountSeq.get(conn.user) ?? 1;
  return market.version;
}

/** Registers a subscription and sends its snapshot or replay; returns the sub result. */
function subscribeOne(conn, spec, pos) {
  const key = specKey(spec);
  if (spec.sym !== undefined && !instruments.has(spec.sym)) throw new ProtoErr('unknown_instrument', spec.sym);
  if (key === 'account' && !conn.user) throw new ProtoErr('auth_required', 'log in first');
  conn.subs.set(key, { depth: spec.depth ?? 50, cksum: Boolean(spec.cksum), last: 0, bids: [], asks: [], spec });
  const ringKey = key === 'account' ? `account#${conn.user}` : key;
  const cur = currentSeq(key, conn, spec);
  if (pos && pos.epoch === EPOCH) {
    if (key.startsWith('book.l2:') || key.startsWith('ticker:')) {
      if (pos.seq === cur) {
        const sub = conn.subs.get(key);
        sub.bids = levels(market.bids, sub.depth);
        sub.asks = levels(market.asks, sub.depth);
        sub.last = cur;
        return { sub: key, mode: 'resumed', from_seq: cur + 1 };
      }
    } else {
      const r = ring(ringKey);
      const missed = r.filter((m) => m.seq > pos.seq);
      const covered = pos.seq === cur || (missed.length && missed[0].prev === pos.seq);
      if (covered) {
        conn.subs.get(key).last = pos.seq;
        for (const m of missed) conn.sendEvent(key, m);
        return { sub: key, mode: 'resumed', from_seq: pos.seq + 1 };
      }
    }
  }
  conn.sendEvent(key, snapshotOf(key, conn, spec));
  return pos ? { sub: key, mode: 'snapshot', reason: 'resume_unavailable' } : { sub: key, mode: 'snapshot' };
}

function specKey(spec) {
  switch (spec.ch) {
    case 'book.l2':
      return `book.l2:${spec.sym}:${spec.depth ?? 50}`;
    case 'candles':
      return `candles:${spec.sym}:${spec.interval}`;
    case 'status':
    case 'account':
      return spec.ch;
    default:
      return `${spec.ch}:${spec.sym}`;
  }
}

function parseKey(key) {
  const [ch, sym, x] = key.split(':');
  if (ch === 'book.l2') return { ch, sym, depth: Number(x), cksum: true };
  if (ch === 'candles') return { ch, sym, interval: x };
  if (ch === 'status' || ch === 'account') return { ch };
  return { ch, sym };
}

// ---- matching -------------------------------------------------------------------------------

function place(u, a) {
  if (typeof a.cl_id !== 'string' || !/^[A-Za-z0-9_-]{1,36}$/.test(a.cl_id)) throw new ProtoErr('bad_request', 'cl_id');
  if (u.clIds.has(a.cl_id)) return { ...u.clIds.get(a.cl_id), dup: true };
  if (a.sym !== INST.sym) throw new ProtoErr('unknown_instrument', a.sym);
  const side = a.side;
  if (side !== 'buy' && side !== 'sell') throw new ProtoErr('bad_request', 'side');
  const type = a.type ?? 'limit';
  const tif = a.tif ?? (type === 'market' ? 'ioc' : 'gtc');
  let qty;
  let px = null;
  try {
    qty = D.parse(a.qty);
    if (type === 'limit') px = D.parse(a.px);
  } catch {
    throw new ProtoErr('bad_request', 'malformed decimal');
  }
  if (type === 'limit' && (px.s > INST.price_scale || !D.isMultipleOf(px, INST.tick) || D.isZero(px))) throw new ProtoErr('price_tick', `px ${a.px} is off the ${INST.tick} tick`);
  if (qty.s > INST.qty_scale || !D.isMultipleOf(qty, INST.lot) || D.isZero(qty)) throw new ProtoErr('lot_size', `qty ${a.qty} is off the ${INST.lot} lot`);
  if (D.cmp(qty, INST.min_qty) < 0) throw new ProtoErr('min_qty', `qty below ${INST.min_qty}`);
  if (type === 'market' && tif === 'gtc') throw new ProtoErr('bad_request', 'market orders are ioc or fok');
  const opp = side === 'buy' ? market.asks : market.bids;
  const crosses = (o) => type === 'market' || (side === 'buy' ? D.cmp(o.px, px) <= 0 : D.cmp(o.px, px) >= 0);
  if (a.post_only && opp.length && crosses(opp[0])) throw new ProtoErr('post_only_would_take', 'would take liquidity');
  // Hold.
  let hold;
  let holdAsset;
  if (side === 'buy') {
    holdAsset = 'USD';
    const limitPx = px ?? (opp.length ? opp[opp.length - 1].px : D.ZERO);
    const n = D.mul(limitPx, qty);
    hold = D.rescale(D.add(n, feeOf(n, INST.taker_fee_bps)), USD_SCALE, 'up');
  } else {
    holdAsset = 'BTC';
    hold = D.rescale(qty, 8);
  }
  const b = bal(u, holdAsset);
  if (D.cmp(hold, b.available) > 0) {
    throw new ProtoErr('insufficient_funds', `needs ${D.format(hold)} ${holdAsset}, ${D.format(b.available, b.scale)} available`);
  }
  if (tif === 'fok') {
    let avail = D.ZERO;
    for (const o of opp) if (crosses(o)) avail = D.add(avail, o.leaves);
    if (D.cmp(avail, qty) < 0) throw new ProtoErr('fok_unfilled', 'not enough liquidity');
  }
  b.available = D.sub(b.available, hold);
  b.held = D.add(b.held, hold);
  const o = {
    order_id: nextOrderId++, cl_id: a.cl_id, sym: INST.sym, side, type, tif, post_only: Boolean(a.post_only), px, qty,
    cum: D.ZERO, leaves: qty, status: 'new', ts: nowUs(), owner: u, hold, holdAsset,
  };
  u.orders.set(o.order_id, o);
  match(o);
  if (D.isZero(o.leaves)) o.status = 'filled';
  else if (type === 'market' || tif !== 'gtc') {
    o.status = 'cancelled';
    o.reason = type === 'market' ? 'market' : tif;
    release(o);
  } else {
    insertResting(o);
  }
  const res = { order_id: o.order_id, cl_id: o.cl_id, status: o.status, cum_qty: D.format(o.cum, INST.qty_scale), dup: false, ...(o.reason ? { reason: o.reason } : {}) };
  u.clIds.set(o.cl_id, res);
  return { res, after: () => { flushTakerFills(o); accountEvent(u, 'order', orderData(o)); balanceEvents(u); bookChanged(); } };
}

function balanceEvents(u) {
  for (const a of u.balances.keys()) accountEvent(u, 'balance', balanceData(u, a));
}

/** Gives back what an order still holds. */
function release(o) {
  const b = bal(o.owner, o.holdAsset);
  b.held = D.sub(b.held, o.hold);
  b.available = D.add(b.available, o.hold);
  o.hold = D.ZERO;
}

function match(taker) {
  const opp = taker.side === 'buy' ? market.asks : market.bids;
  const touched = new Set();
  while (!D.isZero(taker.leaves) && opp.length) {
    const maker = opp[0];
    if (taker.px && (taker.side === 'buy' ? D.cmp(maker.px, taker.px) > 0 : D.cmp(maker.px, taker.px) < 0)) break;
    const q = D.min(taker.leaves, maker.leaves);
    const px = maker.px;
    const notional = D.mul(px, q);
    const takerFee = feeOf(notional, INST.taker_fee_bps);
    const makerFee = feeOf(notional, INST.maker_fee_bps);
    settle(taker, q, px, notional, takerFee, 'taker');
    settle(maker, q, px, notional, makerFee, 'maker');
    if (D.isZero(maker.leaves)) {
      opp.shift();
      maker.status = 'filled';
      release(maker);
    }
    touched.add(maker.owner);
    publishTrade(px, q, taker.side);
    const tradeId = market.tradeId;
    for (const [o, fee, liq] of [[maker, makerFee, 'maker'], [taker, takerFee, 'taker']]) {
      const f = {
        fill_id: o.owner.fills.length + 1, trade_id: tradeId, order_id: o.order_id, cl_id: o.cl_id, sym: o.sym, side: o.side,
        px: D.format(px, INST.price_scale), qty: D.format(q, INST.qty_scale), fee: D.format(D.rescale(fee, USD_SCALE)), fee_asset: 'USD', liq, ts: nowUs(),
      };
      o.owner.fills.push(f);
      if (o === maker) {
        accountEvent(o.owner, 'fill', { ...f, cum_qty: D.format(o.cum, INST.qty_scale), leaves_qty: D.format(o.leaves, INST.qty_scale), status: D.isZero(o.leaves) ? 'filled' : 'partially_filled' });
        accountEvent(o.owner, 'order', orderData(o));
        balanceEvents(o.owner);
      } else {
        taker.pendingFills = [...(taker.pendingFills ?? []), f];
      }
    }
  }
  if (!D.isZero(taker.cum)) taker.status = D.isZero(taker.leaves) ? 'filled' : 'partially_filled';
}

/** The taker's fill events, sent after its answer (PROTOCOL.md section 5). */
function flushTakerFills(o) {
  const fills = o.pendingFills ?? [];
  o.pendingFills = [];
  for (const f of fills) accountEvent(o.owner, 'fill', { ...f, cum_qty: D.format(o.cum, INST.qty_scale), leaves_qty: D.format(o.leaves, INST.qty_scale), status: o.status });
}

function settle(o, q, px, notional, fee, liq) {
  const u = o.owner;
  o.cum = D.add(o.cum, q);
  o.leaves = D.sub(o.leaves, q);
  const usd = bal(u, 'USD');
  const btc = bal(u, 'BTC');
  if (o.side === 'buy') {
    const cost = D.rescale(D.add(notional, fee), USD_SCALE, 'up');
    // The hold covered the order's limit price and taker fee; take the cost from it.
    const fromHold = D.min(cost, o.hold);
    o.hold = D.sub(o.hold, fromHold);
    usd.held = D.sub(usd.held, fromHold);
    usd.available = D.sub(usd.available, D.sub(cost, fromHold));
    btc.available = D.add(btc.available, D.rescale(q, 8));
  } else {
    const q8 = D.rescale(q, 8);
    o.hold = D.sub(o.hold, q8);
    btc.held = D.sub(btc.held, q8);
    usd.available = D.add(usd.available, D.rescale(D.sub(notional, fee), USD_SCALE, 'down'));
  }
  void liq;
}

function findOrder(u, a) {
  for (const o of u.orders.values()) {
    if ((a.order_id !== undefined && o.order_id === a.order_id) || (a.cl_id !== undefined && o.cl_id === a.cl_id)) {
      if (o.status === 'new' || o.status === 'partially_filled') return o;
    }
  }
  throw new ProtoErr('unknown_order', 'no such open order');
}

function cancel(u, a) {
  const o = findOrder(u, a);
  removeResting(o);
  o.status = 'cancelled';
  release(o);
  return { res: { order_id: o.order_id, status: o.status }, after: () => { accountEvent(u, 'order', orderData(o)); balanceEvents(u); bookChanged(); } };
}

function amend(u, a) {
  const o = findOrder(u, a);
  let qty = o.qty;
  let px = o.px;
  try {
    if (a.qty !== undefined) qty = D.parse(a.qty);
    if (a.px !== undefined) px = D.parse(a.px);
  } catch {
    throw new ProtoErr('bad_request', 'malformed decimal');
  }
  if (a.px !== undefined && !D.isMultipleOf(px, INST.tick)) throw new ProtoErr('price_tick', 'off tick');
  if (a.qty !== undefined && !D.isMultipleOf(qty, INST.lot)) throw new ProtoErr('lot_size', 'off lot');
  if (D.cmp(qty, o.cum) <= 0) throw new ProtoErr('invalid_amend', 'qty must exceed the filled quantity');
  const leaves = D.sub(qty, o.cum);
  // Re-hold for the new leaves.
  const newHold = o.side === 'buy' ? D.rescale(D.add(D.mul(px, leaves), feeOf(D.mul(px, leaves), INST.taker_fee_bps)), USD_SCALE, 'up') : D.rescale(leaves, 8);
  const b = bal(u, o.holdAsset);
  if (D.cmp(D.sub(newHold, o.hold), b.available) > 0) throw new ProtoErr('insufficient_funds', 'amend needs more');
  b.available = D.sub(b.available, D.sub(newHold, o.hold));
  b.held = D.add(b.held, D.sub(newHold, o.hold));
  o.hold = newHold;
  const keeps = D.eq(px, o.px) && D.cmp(qty, o.qty) <= 0;
  o.qty = qty;
  o.leaves = leaves;
  if (!keeps) {
    removeResting(o);
    o.px = px;
    match(o);
    if (!D.isZero(o.leaves)) insertResting(o);
    else {
      o.status = 'filled';
      release(o);
    }
  }
  return { res: { order_id: o.order_id, status: o.status }, after: () => { flushTakerFills(o); accountEvent(u, 'order', orderData(o)); balanceEvents(u); bookChanged(); } };
}

function seedBook() {
  const mm = users.get('mm');
  bal(mm, 'USD').available = D.parse('10000000.0000');
  bal(mm, 'BTC').available = D.parse('1000.00000000');
  for (let i = 0; i < 40; i++) {
    const q = D.format(D.rescale(D.parse(`${(0.05 + ((i * 37) % 17) * 0.031).toFixed(4)}`), INST.qty_scale, 'down'));
    const bpx = D.format(D.sub('29990.0', D.mulInt('2.5', i)), INST.price_scale);
    const apx = D.format(D.add('30010.0', D.mulInt('2.5', i)), INST.price_scale);
    place(mm, { cl_id: `seed-b${i}`, sym: INST.sym, side: 'buy', type: 'limit', px: bpx, qty: q, tif: 'gtc' });
    place(mm, { cl_id: `seed-a${i}`, sym: INST.sym, side: 'sell', type: 'limit', px: apx, qty: q, tif: 'gtc' });
  }
  // A little history: trades between mm and itself would be self-trades, so
  // a few small crossing orders from a hidden account make the first candles.
  addUser('hist', 'hist-not-for-login');
  const h = users.get('hist');
  bal(h, 'USD').available = D.parse('10000000.0000');
  bal(h, 'BTC').available = D.parse('1000.00000000');
  for (let i = 0; i < 6; i++) place(h, { cl_id: `hist-${i}`, sym: INST.sym, side: i % 2 ? 'sell' : 'buy', type: 'market', qty: '0.010', tif: 'ioc' });
  market.version += 1;
}

// ---- WebSocket framing ----------------------------------------------------------------------

function frame(opcode, payload) {
  const len = payload.length;
  let head;
  if (len < 126) head = Buffer.from([0x80 | opcode, len]);
  else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}

class Conn {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.subs = new Map();
    this.user = null;
    this.lastSentAt = Date.now();
    this.closed = false;
    conns.add(this);
    socket.on('data', (d) => this.onData(d));
    socket.on('close', () => this.onClose());
    socket.on('error', () => this.onClose());
    this.hb = setInterval(() => {
      if (Date.now() - this.lastSentAt >= 1000) {
        const last = {};
        for (const [k, s] of this.subs) last[k] = s.last;
        this.send({ ch: 'hb', ts: nowUs(), last });
      }
    }, 250);
  }

  onClose() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.hb);
    conns.delete(this);
  }

  send(obj) {
    if (this.closed) return;
    this.lastSentAt = Date.now();
    this.socket.write(frame(1, Buffer.from(JSON.stringify(obj))));
  }

  sendEvent(key, msg) {
    const sub = this.subs.get(key);
    if (!sub) return;
    sub.last = msg.seq;
    this.send(msg);
  }

  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const op = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (len > frame_bytes_max) {
        this.socket.end(frame(8, Buffer.from([0x03, 0xf1])));
        return;
      }
      if (this.buf.length < off + 4 + len) return;
      const mask = this.buf.subarray(off, off + 4);
      const data = Buffer.from(this.buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < data.length; i++) data[i] ^= mask[i & 3];
      this.buf = this.buf.subarray(off + 4 + len);
      if (op === 8) {
        this.socket.end(frame(8, data.subarray(0, 2)));
        this.onClose();
        return;
      }
      if (op === 9) this.socket.write(frame(10, data));
      if (op === 1) this.onText(data.toString('utf8'));
    }
  }

  onText(text) {
    let req;
    try {
      req = JSON.parse(text);
    } catch {
      this.send({ id: null, ok: false, err: err('bad_request', 'invalid JSON') });
      return;
    }
    const ts_in = nowUs();
    let after = null;
    try {
      const out = this.handle(req.op, req.args ?? {});
      let res = out;
      if (out && out.after) {
        res = out.res;
        after = out.after;
      }
      this.send({ id: req.id, ok: true, res, ts_in, ts_out: nowUs() });
    } catch (e) {
      if (!(e instanceof ProtoErr)) console.error(e);
      this.send({ id: req.id, ok: false, err: err(e instanceof ProtoErr ? e.code : 'internal', e.message), ts_in, ts_out: nowUs() });
    }
    if (after) after();
  }

  handle(op, a) {
    const user = () => {
      if (!this.user) throw new ProtoErr('auth_required', 'log in first');
      return users.get(this.user);
    };
    switch (op) {
      case 'ping':
        return { ts: nowUs() };
      case 'auth': {
        if (this.user) throw new ProtoErr('bad_request', 'already authenticated');
        const u = users.get(a.user);
        if (!u || u.password !== a.password || a.user === 'mm' || a.user === 'hist') throw new ProtoErr('bad_credentials', 'wrong user or password');
        this.user = u.name;
        const token = createHash('sha256').update(`${u.name}:${Math.random()}:${Date.now()}`).digest('base64url');
        sessions.set(token, u.name);
        return { user: u.name, role: 'trader', session: { id: `s-${sessions.size}`, token } };
      }
      case 'logout':
        this.user = null;
        this.subs.delete('account');
        return {};
      case 'session.resume': {
        const name = sessions.get(a.token);
        if (!name) throw new ProtoErr('token_expired', 'unknown session');
        this.user = name;
        const subs = [];
        for (const [key, pos] of Object.entries(a.streams ?? {})) subs.push(subscribeOne(this, parseKey(key), pos));
        return { subs };
      }
      case 'subscribe': {
        const subs = [];
        if (a.ch === 'status' || a.ch === 'account') subs.push(subscribeOne(this, { ch: a.ch }, a.resume ?? null));
        else {
          if (!Array.isArray(a.sym)) throw new ProtoErr('bad_request', 'sym must be a list');
          for (const sym of a.sym) subs.push(subscribeOne(this, { ch: a.ch, sym, depth: a.depth, interval: a.interval, cksum: a.cksum }, a.resume?.[sym] ?? null));
        }
        return { subs };
      }
      case 'unsubscribe': {
        for (const k of [...this.subs.keys()]) {
          const s = parseKey(k);
          if (s.ch === a.ch && (!a.sym || a.sym.includes(s.sym))) this.subs.delete(k);
        }
        return {};
      }
      case 'instruments':
        return { instruments: [...instruments.values()] };
      case 'order.place':
        return place(user(), a);
      case 'order.cancel':
        return cancel(user(), a);
      case 'order.amend':
        return amend(user(), a);
      case 'order.cancel_all': {
        const u = user();
        const open = [...u.orders.values()].filter((o) => (o.status === 'new' || o.status === 'partially_filled') && (!a.sym || o.sym === a.sym) && (!a.side || o.side === a.side));
        const afters = open.map((o) => cancel(u, { order_id: o.order_id }).after);
        return { res: { cancelled: open.length }, after: () => afters.forEach((f) => f()) };
      }
      case 'account.balances': {
        const u = user();
        return { balances: [...u.balances.keys()].map((x) => balanceData(u, x)) };
      }
      case 'account.orders': {
        const u = user();
        return { orders: [...u.orders.values()].filter((o) => o.status === 'new' || o.status === 'partially_filled').map(orderData) };
      }
      case 'account.fills': {
        const u = user();
        return { fills: u.fills.slice().reverse().slice(0, Math.min(a.limit ?? 100, 1000)) };
      }
      default:
        throw new ProtoErr('unknown_op', `unknown op ${op}`);
    }
  }
}

function err(code, msg) {
  return { code, num: ERR_NUM[code] ?? 5001, msg, retryable: false, outcome: 'rejected' };
}

// ---- HTTP -------------------------------------------------------------------------------------

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.json': 'application/json' };

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  let p = normalize(decodeURIComponent(url.pathname));
  if (p.includes('..')) {
    res.writeHead(400).end();
    return;
  }
  if (p.endsWith('/')) p += 'index.html';
  const file = join(ROOT, p);
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new Error('not a file');
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    res.end(await readFile(file));
  } catch {
    res.writeHead(404).end('not found\n');
  }
});

server.on('upgrade', (req, socket) => {
  if (new URL(req.url, 'http://x').pathname !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
    return;
  }
  const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (offered.length && !offered.includes('bourse.v1.json')) {
    socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    return;
  }
  const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + WS_GUID).digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n${offered.length ? 'Sec-WebSocket-Protocol: bourse.v1.json\r\n' : ''}\r\n`,
  );
  socket.setNoDelay(true);
  new Conn(socket);
});

seedBook();
const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
