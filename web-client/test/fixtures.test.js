// The exchange's golden wire fixtures (protocol/tests/fixtures), fed through
// the page's client: every event the server writes must reach the right
// stream and every answer must settle its request.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FakeWS, Clock, flush } from './fakes.js';
import { BourseClient, streamKey, eventKey } from '../lib/stream.js';
import { L2Book, APPLIED } from '../lib/book.js';
import { AccountState } from '../lib/account.js';

const DIR = fileURLToPath(new URL('../../protocol/tests/fixtures/', import.meta.url));
const load = (name) => JSON.parse(readFileSync(DIR + name, 'utf8'));
const have = existsSync(DIR + 'events.json') && existsSync(DIR + 'responses.json');

beforeEach(() => FakeWS.reset());

test('golden events route to their stream keys', { skip: !have && 'no fixtures' }, () => {
  const { events } = load('events.json');
  const keys = new Map([[streamKey({ ch: 'book.l2', sym: 'BTC-USD', depth: 50 }), 1]]);
  const byName = Object.fromEntries(events.map((e) => [e.name, e.msg]));
  assert.equal(eventKey(byName['book.l2 snapshot'], keys), 'book.l2:BTC-USD:50');
  assert.equal(eventKey(byName['book.l2 snapshot without cksum'], keys), 'book.l2:ETH-USD:10');
  assert.equal(eventKey(byName['candles update'], keys), 'candles:BTC-USD:1m');
  assert.equal(eventKey(byName['ticker'], keys), 'ticker:BTC-USD');
  assert.equal(eventKey(byName['account fill'], keys), 'account');
  assert.equal(eventKey(byName['status update'], keys), 'status');
  for (const k of Object.keys(byName['hb'].last)) assert.equal(streamKey({ ...parse(k) }), k);
});

function parse(k) {
  const [ch, sym, x] = k.split(':');
  if (ch === 'book.l2') return { ch, sym, depth: Number(x) };
  if (ch === 'candles') return { ch, sym, interval: x };
  return sym ? { ch, sym } : { ch };
}

test('golden book and account events apply in order', { skip: !have && 'no fixtures' }, () => {
  const { events } = load('events.json');
  const byName = Object.fromEntries(events.map((e) => [e.name, e.msg]));
  const book = new L2Book({ depth: 50 });
  assert.equal(book.handle(byName['book.l2 snapshot']), APPLIED);
  assert.equal(book.handle(byName['book.l2 delta']), APPLIED);
  assert.equal(book.cksumOk, true);
  const acc = new AccountState();
  for (const n of ['account snapshot', 'account order', 'account fill', 'account balance']) acc.applyEvent(byName[n]);
  assert.equal(acc.balance('USD').available, '119.97');
  assert.equal(acc.fills.length, 1);
  assert.equal(acc.orders.get(9912).leaves_qty, '0.4900');
});

test('a client session over the golden frames', { skip: !have && 'no fixtures' }, async () => {
  const { events, decode_only } = load('events.json');
  const { responses } = load('responses.json');
  const clock = new Clock();
  const client = new BourseClient({ url: 'ws://x/ws', WebSocketImpl: FakeWS, timers: clock, random: () => 0.5 });
  client.start();
  const ws = FakeWS.last();
  ws.open();
  await flush();
  const got = {};
  for (const spec of [
    { ch: 'book.l2', sym: 'BTC-USD', depth: 50, cksum: true },
    { ch: 'trades', sym: 'BTC-USD' },
    { ch: 'candles', sym: 'BTC-USD', interval: '1m' },
    { ch: 'ticker', sym: 'BTC-USD' },
    { ch: 'status' },
    { ch: 'account' },
  ]) {
    client.subscribe(spec, (m) => (got[streamKey(spec)] ??= []).push(m.type));
  }
  const order = [
    'book.l2 snapshot', 'book.l2 delta', 'trades snapshot', 'candles snapshot', 'candles update', 'ticker',
    'status snapshot', 'status update', 'account snapshot', 'account order', 'account fill', 'account balance', 'hb',
    'notice shutdown', 'notice slow_consumer',
  ];
  const byName = Object.fromEntries(events.map((e) => [e.name, e.msg]));
  for (const n of order) ws.push(byName[n]);
  for (const e of decode_only) if (e.msg.ch === 'news' || e.msg.err) ws.push(e.msg);
  assert.deepEqual(got['book.l2:BTC-USD:50'], ['snapshot', 'delta']);
  assert.deepEqual(got['candles:BTC-USD:1m'], ['snapshot', 'update']);
  assert.deepEqual(got['status'], ['snapshot', 'update']);
  assert.deepEqual(got['account'], ['snapshot', 'order', 'fill', 'balance']);
  assert.deepEqual(got['ticker:BTC-USD'], ['snapshot']);
  assert.equal(client.stats.tailLosses, 0, 'the heartbeat matches what was received');
  // Every answer settles a request of its op.
  for (const r of responses) {
    if (r.msg.id === null) continue;
    const p = client.request(r.op || 'ping', {});
    const sent = ws.sent[ws.sent.length - 1];
    ws.push({ ...r.msg, id: sent.id });
    if (r.msg.ok) assert.deepEqual(await p, r.msg.res, r.name);
    else await assert.rejects(p, (e) => e.code === r.msg.err.code && e.num === r.msg.err.num, r.name);
  }
});
