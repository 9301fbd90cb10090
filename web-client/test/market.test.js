import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TradesTape, CandleSeries, tickerView, startSeconds, chartBar, trades_max } from '../lib/market.js';
import { depthSeries } from '../lib/depth.js';

test('ticker: exact 24h change and percentage, nulls kept', () => {
  const v = tickerView({ last: '30001.80', open_24h: '29500.00', high_24h: '30100.00', low_24h: '29400.50', volume_24h: '153.2100', bid: '30001.00', ask: '30001.80' });
  assert.equal(v.change, '+501.80');
  assert.equal(v.changePct, '+1.70');
  assert.equal(v.dir, 'up');
  assert.equal(v.volume, '153.2100');
  const down = tickerView({ last: '99.00', open_24h: '100.00' });
  assert.equal(down.change, '-1.00');
  assert.equal(down.changePct, '-1.00');
  assert.equal(down.dir, 'down');
  const none = tickerView({ last: null, bid: '1999.00' });
  assert.equal(none.change, null);
  assert.equal(none.bid, '1999.00');
  assert.equal(tickerView({ last: '5', open_24h: '0' }).changePct, null);
});

test('trades tape: snapshot, updates, duplicates, gap markers, bound', () => {
  const t = new TradesTape();
  t.apply({ type: 'snapshot', data: [{ id: 1, px: '1', qty: '1', taker: 'buy' }, { id: 2, px: '2', qty: '1', taker: 'sell' }] });
  assert.deepEqual(t.items.map((x) => x.id), [2, 1]);
  t.apply({ type: 'update', data: [{ id: 2 }, { id: 3, taker: 'buy' }] });
  assert.deepEqual(t.items.map((x) => x.id), [3, 2, 1]);
  t.markGap([4, 9]);
  t.apply({ type: 'update', data: [{ id: 10 }] });
  assert.deepEqual(t.items.map((x) => (x.gap ? 'gap' : x.id)), [10, 'gap', 3, 2, 1]);
  t.apply({ type: 'snapshot', data: [{ id: 10 }] });
  assert.deepEqual(t.items.map((x) => x.id), [10]);
  for (let i = 0; i < trades_max + 5; i++) t.apply({ type: 'update', data: [{ id: 100 + i }] });
  assert.equal(t.items.length, trades_max);
  assert.equal(t.items[0].id, 100 + trades_max + 4);
});

test('candles: snapshot list then in-place updates', () => {
  const c = new CandleSeries('1m');
  c.apply({ type: 'snapshot', data: [{ start: 1732051200000000, o: '1', h: '2', l: '0.5', c: '1.5', v: '3' }] });
  c.apply({ type: 'update', data: { start: 1732051200000000, o: '1', h: '2.5', l: '0.5', c: '2', v: '4' } });
  c.apply({ type: 'update', data: { start: 1732051260000000, o: '2', h: '2', l: '2', c: '2', v: '1' } });
  assert.equal(c.size, 2);
  assert.equal(c.sorted()[0].h, '2.5');
  assert.deepEqual(chartBar(c.sorted()[1]), { time: 1732051260, open: 2, high: 2, low: 2, close: 2 });
  assert.equal(startSeconds(1732051200000), 1732051200);
  assert.equal(startSeconds(1732051200), 1732051200);
});

test('depth series: exact cumulative totals per side', () => {
  const s = depthSeries(
    [
      ['100.00', '0.1000'],
      ['99.50', '0.2000'],
    ],
    [['101.00', '1.0000']],
  );
  assert.deepEqual(s.bids.map((l) => l.cum), ['0.1000', '0.3000']);
  assert.deepEqual(s.asks.map((l) => l.cum), ['1.0000']);
});
