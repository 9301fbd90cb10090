import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AccountState, fills_max } from '../lib/account.js';

const order = (id, extra = {}) => ({
  order_id: id,
  cl_id: `c${id}`,
  sym: 'BTC-USD',
  side: 'buy',
  type: 'limit',
  tif: 'gtc',
  post_only: false,
  px: '100.00',
  qty: '1.0000',
  cum_qty: '0.0000',
  leaves_qty: '1.0000',
  status: 'new',
  ts: id,
  ...extra,
});

test('snapshot then order, fill and balance events', () => {
  const a = new AccountState();
  a.applyEvent({
    type: 'snapshot',
    data: {
      balances: [{ asset: 'USD', available: '120.00', held: '150.03' }],
      orders: [order(1), order(2, { side: 'sell', px: '101.00' })],
    },
  });
  assert.equal(a.openOrders().length, 2);
  assert.equal(a.total('USD'), '270.03');
  a.applyEvent({ type: 'order', data: order(3, { px: '100.00', leaves_qty: '0.5000', qty: '0.5000' }) });
  const own = a.ownLevels('BTC-USD');
  assert.equal(own.bids.get('100.00'), '1.5000');
  assert.equal(own.asks.get('101.00'), '1.0000');
  // A partial fill updates the order; a later cancel removes it.
  a.applyEvent({
    type: 'fill',
    ts: 55,
    data: { order_id: 1, trade_id: 7, sym: 'BTC-USD', side: 'buy', px: '100.00', qty: '0.2500', fee: '0.03', fee_asset: 'USD', liq: 'maker', cum_qty: '0.2500', leaves_qty: '0.7500', status: 'partially_filled' },
  });
  assert.equal(a.orders.get(1).leaves_qty, '0.7500');
  assert.equal(a.fills[0].ts, 55, 'the event time stands in for a missing fill ts');
  assert.equal(a.ownLevels('BTC-USD').bids.get('100.00'), '1.2500');
  a.applyEvent({ type: 'order', data: order(1, { status: 'cancelled', cum_qty: '0.2500', leaves_qty: '0.0000' }) });
  assert.equal(a.orders.has(1), false);
  a.applyEvent({ type: 'order', data: order(2, { status: 'filled' }) });
  assert.deepEqual(a.openOrders().map((o) => o.order_id), [3]);
  a.applyEvent({ type: 'balance', data: { asset: 'USD', available: '119.97', held: '150.03' } });
  assert.equal(a.balance('USD').available, '119.97');
  assert.equal(a.applyEvent({ type: 'mystery', data: {} }), false);
});

test('fills from history and live events are merged without duplicates, newest first', () => {
  const a = new AccountState();
  a.applyFill({ order_id: 1, trade_id: 10, ts: 300, px: '1', qty: '1' });
  const added = a.mergeFills([
    { fill_id: 3, order_id: 1, trade_id: 10, ts: 300 },
    { fill_id: 2, order_id: 5, trade_id: 9, ts: 200 },
    { fill_id: 1, order_id: 5, trade_id: 8, ts: 100 },
  ]);
  assert.equal(added, 2);
  assert.deepEqual(a.fills.map((f) => f.trade_id), [10, 9, 8]);
  for (let i = 0; i < fills_max + 10; i++) a.addFill({ order_id: 99, trade_id: 1000 + i, ts: 1000 + i });
  assert.equal(a.fills.length, fills_max);
  assert.equal(a.fillKeys.size, fills_max);
  assert.equal(a.fills[0].trade_id, 1000 + fills_max + 9);
});

test('market orders without a price are not book levels', () => {
  const a = new AccountState();
  a.applySnapshot({ orders: [order(1, { type: 'market', px: null })] });
  assert.equal(a.ownLevels('BTC-USD').bids.size, 0);
});
