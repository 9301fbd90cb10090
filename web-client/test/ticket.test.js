import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPrice, checkQty, validateTicket, validateAmend, walkBook, newClientId, isValidClientId, normalizeInstrument } from '../lib/ticket.js';
import { format } from '../lib/decimal.js';

const BTC = normalizeInstrument({
  sym: 'BTC-USD',
  base: 'BTC',
  quote: 'USD',
  tick: '0.50',
  lot: '0.0001',
  min_qty: '0.0010',
  maker_fee_bps: 1,
  taker_fee_bps: 10,
  state: 'trading',
});

const balances = new Map([
  ['USD', { asset: 'USD', available: '10000.00', held: '0.00' }],
  ['BTC', { asset: 'BTC', available: '0.50000000', held: '0.00000000' }],
]);

test('scales come from tick and lot when the instrument omits them', () => {
  assert.equal(BTC.price_scale, 2);
  assert.equal(BTC.qty_scale, 4);
  assert.equal(normalizeInstrument({ tick: '1', lot: '0.001', price_scale: 3 }).price_scale, 3);
});

test('price on the tick grid, written at the price scale', () => {
  assert.deepEqual(checkPrice('30001.5', BTC), { value: '30001.50' });
  assert.deepEqual(checkPrice('30001.500', BTC), { value: '30001.50' }, 'trailing zeros beyond the scale are harmless');
  assert.equal(checkPrice('30001.25', BTC).error.code, 'price_tick');
  assert.equal(checkPrice('30001.505', BTC).error.code, 'price_tick');
  assert.equal(checkPrice('0', BTC).error.code, 'bad_request');
  assert.equal(checkPrice('1e4', BTC).error.code, 'bad_request');
  assert.equal(checkPrice('-5', BTC).error.code, 'bad_request');
});

test('quantity on the lot grid and above the minimum', () => {
  assert.deepEqual(checkQty('0.25', BTC), { value: '0.2500' });
  assert.equal(checkQty('0.00015', BTC).error.code, 'lot_size');
  assert.equal(checkQty('0.0009', BTC).error.code, 'min_qty');
  assert.deepEqual(checkQty('.001', BTC), { value: '0.0010' });
  assert.equal(checkQty('', BTC).error.code, 'bad_request');
});

test('a limit buy costs notional plus the worst-case taker fee, exactly', () => {
  const v = validateTicket({ side: 'buy', type: 'limit', tif: 'gtc', px: '30001.5', qty: '0.25' }, BTC, { balances });
  assert.equal(v.ok, true);
  assert.deepEqual(v.args, { sym: 'BTC-USD', side: 'buy', type: 'limit', qty: '0.2500', tif: 'gtc', px: '30001.50' });
  // 30001.50 * 0.2500 = 7500.375 -> 7500.38 at USD scale; fee 10 bps of 7500.375 = 7.500375 -> 7.51
  assert.equal(v.cost.asset, 'USD');
  assert.equal(v.cost.notional, '7500.38');
  assert.equal(v.cost.fee, '7.51');
  assert.equal(v.cost.amount, '7507.89');
  assert.equal(v.insufficient, false);
  assert.deepEqual(v.available, { asset: 'USD', amount: '10000.00', held: '0.00' });
  const big = validateTicket({ side: 'buy', type: 'limit', px: '30000', qty: '1' }, BTC, { balances });
  assert.equal(big.ok, true, 'the exchange decides on funds; the page warns');
  assert.equal(big.insufficient, true);
});

test('a sell costs base quantity; post-only and tif pass through', () => {
  const v = validateTicket({ side: 'sell', type: 'limit', tif: 'gtc', postOnly: true, px: '31000', qty: '0.6' }, BTC, { balances });
  assert.equal(v.ok, true);
  assert.equal(v.args.post_only, true);
  assert.deepEqual(v.cost, { asset: 'BTC', amount: '0.6000', estimate: false });
  assert.equal(v.insufficient, true);
});

test('market orders: ioc/fok only, cost estimated by walking the book', () => {
  const asks = [
    ['100.00', '1.0000'],
    ['101.00', '2.0000'],
  ];
  const v = validateTicket({ side: 'buy', type: 'market', tif: 'ioc', qty: '2' }, { ...BTC, tick: '0.01' }, { balances, asks });
  assert.equal(v.ok, true);
  assert.equal(v.args.px, undefined);
  assert.equal(v.cost.notional, '201.00');
  assert.equal(v.cost.estimate, true);
  const gtc = validateTicket({ side: 'buy', type: 'market', tif: 'gtc', qty: '2' }, BTC, { balances, asks });
  assert.equal(gtc.ok, false);
  assert.equal(gtc.errors.form.code, 'bad_request');
  const w = walkBook(asks, '5.0000');
  assert.equal(format(w.filled), '3.0000');
  assert.equal(format(w.notional), '302.000000');
});

test('a closed instrument refuses new orders before sending', () => {
  const v = validateTicket({ side: 'buy', type: 'limit', px: '1', qty: '1' }, { ...BTC, state: 'halted' }, { balances });
  assert.equal(v.ok, false);
  assert.equal(v.errors.form.code, 'market_closed');
});

test('amend: new total qty above what filled, price on tick, something changes', () => {
  const order = { sym: 'BTC-USD', order_id: 9, px: '30000.00', qty: '0.5000', cum_qty: '0.1000' };
  assert.deepEqual(validateAmend(order, { qty: '0.4' }, BTC), { ok: true, errors: {}, args: { sym: 'BTC-USD', order_id: 9, qty: '0.4000' } });
  assert.equal(validateAmend(order, { qty: '0.1' }, BTC).errors.qty.code, 'invalid_amend');
  assert.equal(validateAmend(order, { px: '30000.2' }, BTC).errors.px.code, 'price_tick');
  assert.deepEqual(validateAmend(order, { qty: '0.5', px: '30100' }, BTC).args, { sym: 'BTC-USD', order_id: 9, px: '30100.00' });
  assert.equal(validateAmend(order, { qty: '0.5000', px: '30000' }, BTC).errors.form.code, 'invalid_amend');
});

test('client order ids are unique and well-formed', () => {
  const seen = new Set();
  for (let i = 0; i < 1000; i++) {
    const id = newClientId();
    assert.ok(isValidClientId(id), id);
    seen.add(id);
  }
  assert.equal(seen.size, 1000);
  assert.ok(!isValidClientId('has space'));
  assert.ok(!isValidClientId('x'.repeat(37)));
});
