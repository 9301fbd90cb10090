// Order ticket rules: what the page checks before it sends an order.
//
// Owns the validation of a typed price and quantity against the
// instrument's tick, lot and minimum (PROTOCOL.md section 5), the exact
// cost of an order (notional plus worst-case taker fee for a buy, base
// quantity for a sell) compared with the available balance, the `order.place`
// and `order.amend` arguments in exact wire form, and client order ids. The
// exchange checks all of this again; checking here saves a round trip and
// shows the person what is wrong next to the field.

import { add, cmp, dec, feeUp, format, isMultipleOf, isZero, min, mul, parseInput, rescale, scaleOf, sub, ZERO } from './decimal.js';

/** Longest client order id the exchange accepts. */
export const cl_id_len_max = 36;
const CL_ID_RE = /^[A-Za-z0-9_-]{1,36}$/;

let clIdCounter = 0;

/** A fresh client order id: unique per page, `[A-Za-z0-9_-]`, at most 36 chars. */
export function newClientId(now = Date.now(), rnd = Math.random) {
  clIdCounter = (clIdCounter + 1) % 1_000_000;
  const r = Math.floor(rnd() * 36 ** 4)
    .toString(36)
    .padStart(4, '0');
  const id = `w${now.toString(36)}-${clIdCounter.toString(36)}-${r}`;
  return id.slice(0, cl_id_len_max);
}

export function isValidClientId(s) {
  return typeof s === 'string' && CL_ID_RE.test(s);
}

/**
 * An instrument as the page uses it: the `instruments` answer or a `status`
 * entry, with `price_scale`/`qty_scale` filled in from tick and lot when
 * absent (they are the number of decimals of tick and lot).
 */
export function normalizeInstrument(i) {
  const out = { ...i };
  if (out.tick && !Number.isInteger(out.price_scale)) out.price_scale = scaleOf(out.tick);
  if (out.lot && !Number.isInteger(out.qty_scale)) out.qty_scale = scaleOf(out.lot);
  return out;
}

function err(code, msg) {
  return { code, msg };
}

/**
 * Checks a typed price for an instrument. Returns {value: wire string} or
 * {error: {code, msg}}.
 */
export function checkPrice(text, inst) {
  const v = parseInput(text ?? '');
  if (!v) return { error: err('bad_request', 'price is not a number') };
  if (isZero(v)) return { error: err('bad_request', 'price must be above zero') };
  if (v.s > inst.price_scale && rescale(v, inst.price_scale) === null) {
    return { error: err('price_tick', `price has more than ${inst.price_scale} decimals`) };
  }
  if (!isMultipleOf(v, dec(inst.tick))) return { error: err('price_tick', `price must be a multiple of ${inst.tick}`) };
  return { value: format(rescale(v, inst.price_scale, 'exact')) };
}

/** Checks a typed quantity: lot grid, scale and minimum. */
export function checkQty(text, inst) {
  const v = parseInput(text ?? '');
  if (!v) return { error: err('bad_request', 'quantity is not a number') };
  if (isZero(v)) return { error: err('bad_request', 'quantity must be above zero') };
  if (v.s > inst.qty_scale && rescale(v, inst.qty_scale) === null) {
    return { error: err('lot_size', `quantity has more than ${inst.qty_scale} decimals`) };
  }
  if (!isMultipleOf(v, dec(inst.lot))) return { error: err('lot_size', `quantity must be a multiple of ${inst.lot}`) };
  if (inst.min_qty && cmp(v, dec(inst.min_qty)) < 0) return { error: err('min_qty', `quantity below the minimum ${inst.min_qty}`) };
  return { value: format(rescale(v, inst.qty_scale, 'exact')) };
}

/**
 * Notional of walking `levels` (best first) for `qty`: {notional, filled}
 * exact; `filled` < qty when the book runs out.
 */
export function walkBook(levels, qty) {
  let left = dec(qty);
  let notional = ZERO;
  let filled = ZERO;
  for (const [px, lq] of levels) {
    if (isZero(left)) break;
    const take = min(left, dec(lq));
    notional = add(notional, mul(dec(px), take));
    filled = add(filled, take);
    left = sub(left, take);
  }
  return { notional, filled };
}

/** Scale of an asset as seen in its balance strings, or null. */
export function assetScale(balances, asset) {
  const b = balances?.get?.(asset);
  return b ? scaleOf(b.available) : null;
}

/**
 * Validates the whole ticket. `input`: {side, type, tif, postOnly, px, qty}
 * (px and qty as typed). `ctx`: {balances: Map asset -> {available, held},
 * asks, bids} (levels best first, for market estimates).
 *
 * Returns {ok, errors: {px?, qty?, form?}, args, cost, available,
 * insufficient} where args are the `order.place` arguments without `cl_id`,
 * cost is {asset, amount, estimate} and available {asset, amount}.
 */
export function validateTicket(input, inst, ctx = {}) {
  const errors = {};
  const out = { ok: false, errors, args: null, cost: null, available: null, insufficient: false };
  if (!inst) {
    errors.form = err('unknown_instrument', 'no instrument selected');
    return out;
  }
  const side = input.side === 'sell' ? 'sell' : 'buy';
  const type = input.type === 'market' ? 'market' : 'limit';
  let tif = input.tif || (type === 'market' ? 'ioc' : 'gtc');
  if (type === 'market' && tif === 'gtc') {
    errors.form = err('bad_request', 'a market order is ioc or fok');
  }
  if (type === 'market' && input.postOnly) errors.form = err('bad_request', 'post-only needs a limit order');
  if (input.postOnly && tif !== 'gtc') errors.form = err('bad_request', 'post-only orders rest: use gtc');
  if (inst.state && inst.state !== 'trading') errors.form = err('market_closed', `instrument is ${inst.state}`);

  const q = checkQty(input.qty, inst);
  if (q.error) errors.qty = q.error;
  let px = null;
  if (type === 'limit') {
    const p = checkPrice(input.px, inst);
    if (p.error) errors.px = p.error;
    else px = p.value;
  }

  const balances = ctx.balances ?? new Map();
  const payAsset = side === 'buy' ? inst.quote : inst.base;
  const bal = balances.get(payAsset);
  out.available = bal ? { asset: payAsset, amount: bal.available, held: bal.held } : null;

  if (!q.error && (type === 'market' || px)) {
    if (side === 'sell') {
      out.cost = { asset: inst.base, amount: q.value, estimate: false };
    } else {
      const qs = assetScale(balances, inst.quote) ?? inst.price_scale + inst.qty_scale;
      let notional;
      let estimate = false;
      if (type === 'limit') {
        notional = mul(dec(px), dec(q.value));
      } else {
        const w = walkBook(ctx.asks ?? [], q.value);
        notional = w.notional;
        estimate = true;
      }
      const n = rescale(notional, qs, 'up');
      const fee = feeUp(notional, inst.taker_fee_bps ?? 0, qs);
      out.cost = { asset: inst.quote, amount: format(add(n, fee)), estimate, notional: format(n), fee: format(fee) };
    }
    if (bal && cmp(dec(out.cost.amount), dec(bal.available)) > 0) out.insufficient = true;
  }

  if (Object.keys(errors).length) return out;
  const args = { sym: inst.sym, side, type, qty: q.value, tif };
  if (type === 'limit') args.px = px;
  if (input.postOnly) args.post_only = true;
  out.args = args;
  out.ok = true;
  return out;
}

/**
 * Validates an amend of `order`: new total qty and/or new price as typed
 * (empty means unchanged). Returns {ok, errors, args} with `order.amend`
 * arguments.
 */
export function validateAmend(order, input, inst) {
  const errors = {};
  const args = { sym: order.sym, order_id: order.order_id };
  const qtyText = (input.qty ?? '').trim();
  const pxText = (input.px ?? '').trim();
  if (qtyText) {
    const q = checkQty(qtyText, inst);
    if (q.error) errors.qty = q.error;
    else if (order.cum_qty && cmp(dec(q.value), dec(order.cum_qty)) <= 0) {
      errors.qty = err('invalid_amend', `quantity must exceed the filled ${order.cum_qty}`);
    } else if (q.value !== order.qty) args.qty = q.value;
  }
  if (pxText) {
    const p = checkPrice(pxText, inst);
    if (p.error) errors.px = p.error;
    else if (p.value !== order.px) args.px = p.value;
  }
  if (!Object.keys(errors).length && args.qty === undefined && args.px === undefined) {
    errors.form = err('invalid_amend', 'nothing to change');
  }
  return { ok: !Object.keys(errors).length, errors, args };
}
