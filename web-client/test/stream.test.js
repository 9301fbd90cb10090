import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWS, Clock, flush } from './fakes.js';
import {
  BourseClient,
  ProtocolError,
  streamKey,
  parseStreamKey,
  subscribeArgs,
  eventKey,
  backoff_ms_max,
  backoff_ms_min,
  silence_ms_max,
  request_timeout_ms_max,
  SUBPROTOCOL,
} from '../lib/stream.js';

beforeEach(() => FakeWS.reset());

async function connected() {
  const clock = new Clock();
  const client = new BourseClient({ url: 'ws://x/ws', WebSocketImpl: FakeWS, timers: clock, random: () => 0.5 });
  const conns = [];
  client.on('conn', (s) => conns.push(s));
  client.start();
  const ws = FakeWS.last();
  ws.open();
  await flush();
  return { client, clock, ws, conns };
}

const SNAP = (seq, extra = {}) => ({
  ch: 'book.l2',
  sym: 'BTC-USD',
  type: 'snapshot',
  epoch: 1,
  seq,
  depth: 50,
  bids: [['100.00', '1.0000']],
  asks: [['101.00', '2.0000']],
  ...extra,
});
const DELTA = (prev, seq, extra = {}) => ({
  ch: 'book.l2',
  sym: 'BTC-USD',
  type: 'delta',
  epoch: 1,
  prev,
  seq,
  bids: [['100.00', String(seq)]],
  asks: [],
  ...extra,
});

test('stream keys are spelled as PROTOCOL.md section 2 says', () => {
  assert.equal(streamKey({ ch: 'book.l2', sym: 'BTC-USD', depth: 10 }), 'book.l2:BTC-USD:10');
  assert.equal(streamKey({ ch: 'book.l2', sym: 'BTC-USD' }), 'book.l2:BTC-USD:50');
  assert.equal(streamKey({ ch: 'book.l1', sym: 'BTC-USD' }), 'book.l1:BTC-USD');
  assert.equal(streamKey({ ch: 'trades', sym: 'ETH-USD' }), 'trades:ETH-USD');
  assert.equal(streamKey({ ch: 'candles', sym: 'BTC-USD', interval: '5m' }), 'candles:BTC-USD:5m');
  assert.equal(streamKey({ ch: 'ticker', sym: 'BTC-USD' }), 'ticker:BTC-USD');
  assert.equal(streamKey({ ch: 'status' }), 'status');
  assert.equal(streamKey({ ch: 'account' }), 'account');
  for (const k of ['book.l2:BTC-USD:0', 'candles:X-Y:1h', 'trades:A-B', 'status', 'account', 'ticker:A-B']) {
    assert.equal(streamKey(parseStreamKey(k)), k);
  }
});

test('subscribe args carry resume positions in both shapes', () => {
  assert.deepEqual(subscribeArgs({ ch: 'book.l2', sym: 'BTC-USD', depth: 10, cksum: true }, { epoch: 3, seq: 99 }), {
    ch: 'book.l2',
    sym: ['BTC-USD'],
    depth: 10,
    cksum: true,
    resume: { 'BTC-USD': { epoch: 3, seq: 99 } },
  });
  assert.deepEqual(subscribeArgs({ ch: 'candles', sym: 'BTC-USD', interval: '1h' }), { ch: 'candles', sym: ['BTC-USD'], interval: '1h' });
  assert.deepEqual(subscribeArgs({ ch: 'account' }, { epoch: 1, seq: 5 }), { ch: 'account', resume: { epoch: 1, seq: 5 } });
  assert.deepEqual(subscribeArgs({ ch: 'status' }), { ch: 'status' });
});

test('events find their stream even without depth or interval', () => {
  const keys = new Map([
    ['book.l2:BTC-USD:10', 1],
    ['candles:BTC-USD:5m', 1],
  ]);
  assert.equal(eventKey({ ch: 'book.l2', sym: 'BTC-USD' }, keys), 'book.l2:BTC-USD:10');
  assert.equal(eventKey({ ch: 'book.l2', sym: 'BTC-USD', depth: 10 }, keys), 'book.l2:BTC-USD:10');
  assert.equal(eventKey({ ch: 'candles', sym: 'BTC-USD' }, keys), 'candles:BTC-USD:5m');
  assert.equal(eventKey({ ch: 'trades', sym: 'BTC-USD' }, keys), 'trades:BTC-USD');
  assert.equal(eventKey({ ch: 'account', type: 'gap' }, keys), 'account');
});

test('connects with the JSON subprotocol and goes live', async () => {
  const { client, ws, conns } = await connected();
  assert.deepEqual(ws.protocols, [SUBPROTOCOL]);
  assert.equal(ws.url, 'ws://x/ws');
  assert.deepEqual(conns, ['connecting', 'restoring', 'live']);
  assert.equal(client.conn, 'live');
});

test('responses are matched to requests by id, in any order', async () => {
  const { client, ws } = await connected();
  const a = client.request('ping');
  const b = client.request('instruments', {});
  const [ra, rb] = ws.sent;
  assert.equal(ra.op, 'ping');
  assert.notEqual(ra.id, rb.id);
  assert.equal(ra.args, undefined, 'no empty args object is sent');
  ws.reply(rb, { instruments: [{ sym: 'BTC-USD' }] });
  ws.reply(ra, { ts: 7 });
  assert.deepEqual(await a, { ts: 7 });
  assert.deepEqual(await b, { instruments: [{ sym: 'BTC-USD' }] });
  const c = client.request('order.place', { cl_id: 'x' });
  ws.fail(ws.lastOp('order.place'), { code: 'insufficient_funds', num: 3002, msg: 'needs more', retryable: false, outcome: 'rejected' });
  await assert.rejects(c, (e) => e instanceof ProtocolError && e.code === 'insufficient_funds' && e.num === 3002 && e.outcome === 'rejected' && !e.local);
});

test('a request without an answer times out with outcome unknown', async () => {
  const { client, clock, ws } = await connected();
  const p = client.request('order.cancel', { sym: 'BTC-USD', order_id: 1 });
  // Heartbeats keep the connection alive meanwhile.
  for (let t = 0; t < request_timeout_ms_max; t += 1000) {
    clock.advance(1000);
    ws.push({ ch: 'hb', ts: t, last: {} });
  }
  await assert.rejects(p, (e) => e.code === 'timeout' && e.outcome === 'unknown' && e.local);
});

test('events pass the sequencing rule before the subscriber sees them', async () => {
  const { client, ws } = await connected();
  const seen = [];
  const key = client.subscribe({ ch: 'book.l2', sym: 'BTC-USD', depth: 50, cksum: true }, (m) => seen.push(m.seq));
  assert.equal(key, 'book.l2:BTC-USD:50');
  const sub = ws.lastOp('subscribe');
  assert.deepEqual(sub.args, { ch: 'book.l2', sym: ['BTC-USD'], depth: 50, cksum: true });
  ws.push(DELTA(9, 10)); // before the snapshot: dropped
  ws.push(SNAP(10));
  ws.reply(sub, { subs: [{ sub: key, mode: 'snapshot' }] });
  ws.push(DELTA(10, 11));
  ws.push(DELTA(10, 11)); // duplicate
  ws.push({ ...DELTA(11, 12), depth: undefined });
  await flush();
  assert.deepEqual(seen, [10, 11, 12]);
  assert.equal(client.streams.get(key).state, 'live');
  assert.deepEqual(client.streams.get(key).pos.pos, { epoch: 1, seq: 12 });
});

test('a gap resubscribes with resume from the last applied seq', async () => {
  const { client, ws } = await connected();
  const seen = [];
  const key = client.subscribe({ ch: 'book.l2', sym: 'BTC-USD', depth: 50, cksum: true }, (m) => seen.push(m.seq));
  ws.reply(ws.lastOp('subscribe'), { subs: [{ sub: key, mode: 'snapshot' }] });
  await flush();
  ws.push(SNAP(10));
  ws.push(DELTA(10, 11));
  ws.push(DELTA(12, 13)); // 12 is missing
  await flush();
  assert.equal(client.streams.get(key).state, 'resyncing');
  const unsub = ws.lastOp('unsubscribe');
  assert.deepEqual(unsub.args, { ch: 'book.l2', sym: ['BTC-USD'] });
  const resub = ws.lastOp('subscribe');
  assert.deepEqual(resub.args.resume, { 'BTC-USD': { epoch: 1, seq: 11 } });
  // More gapped events while the resubscribe is in flight do not pile up requests.
  ws.push(DELTA(13, 14));
  assert.equal(ws.ops('subscribe').length, 2);
  ws.reply(unsub, {});
  // The replay from 12 on applies.
  ws.push(DELTA(11, 12));
  ws.push(DELTA(12, 13));
  ws.reply(resub, { subs: [{ sub: key, mode: 'resumed', from_seq: 12 }] });
  await flush();
  assert.deepEqual(seen, [10, 11, 12, 13]);
  assert.equal(client.streams.get(key).state, 'live');
  assert.equal(client.streams.get(key).mode, 'resumed');
  assert.equal(client.stats.gaps, 2);
});

test('an epoch change without a snapshot is a gap', async () => {
  const { client, ws } = await connected();
  const key = client.subscribe({ ch: 'trades', sym: 'BTC-USD' }, () => {});
  ws.push({ ch: 'trades', sym: 'BTC-USD', type: 'snapshot', epoch: 1, seq: 5, data: [] });
  ws.reply(ws.lastOp('subscribe'), { subs: [{ sub: key, mode: 'snapshot' }] });
  await flush();
  ws.push({ ch: 'trades', sym: 'BTC-USD', type: 'update', epoch: 2, prev: 5, seq: 6, data: [] });
  await flush();
  assert.equal(client.streams.get(key).state, 'resyncing');
  assert.deepEqual(ws.lastOp('subscribe').args.resume, { 'BTC-USD': { epoch: 1, seq: 5 } });
});

test('a fresh resync drops everything until the new snapshot', async () => {
  const { client, ws } = await connected();
  const seen = [];
  const key = client.subscribe({ ch: 'book.l2', sym: 'BTC-USD', depth: 50, cksum: true }, (m) => seen.push(`${m.type}:${m.seq}`));
  ws.reply(ws.lastOp('subscribe'), { subs: [{ sub: key, mode: 'snapshot' }] });
  ws.push(SNAP(10));
  client.resync(key, { fresh: true }); // e.g. after a checksum mismatch
  const resub = ws.lastOp('subscribe');
  assert.equal(resub.args.resume, undefined, 'a fresh resync asks for a snapshot');
  ws.push(DELTA(10, 11)); // old subscription's tail: must not apply
  ws.reply(resub, { subs: [{ sub: key, mode: 'snapshot' }] });
  ws.push(DELTA(11, 12));
  ws.push(SNAP(12));
  ws.push(DELTA(12, 13));
  await flush();
  assert.deepEqual(seen, ['snapshot:10', 'snapshot:12', 'delta:13']);
});

test('a snapshot answer arriving after its snapshot does not block the stream', async () => {
  const { client, ws } = await connected();
  const seen = [];
  const key = client.subscribe({ ch: 'book.l2', sym: 'BTC-USD', depth: 50 }, (m) => seen.push(m.seq));
  ws.push(SNAP(10));
  ws.push(DELTA(10, 11));
  ws.push(DELTA(13, 14)); // gap -> resume from 11
  const resub = ws.lastOp('subscribe');
  ws.push(SNAP(20)); // the server could not resume: a snapshot first...
  ws.reply(resub, { subs: [{ sub: key, mode: 'snapshot', reason: 'resume_unavailable' }] }); // ...then the answer
  ws.push(DELTA(20, 21));
  await flush();
  assert.deepEqual(seen, [10, 11, 20, 21]);
});

test('heartbeat: a last seq ahead of ours is tail loss and resyncs', async () => {
  const { client, ws } = await connected();
  const key = client.subscribe({ ch: 'book.l2', sym: 'BTC-USD', depth: 50 }, () => {});
  ws.reply(ws.lastOp('subscribe'), { subs: [{ sub: key, mode: 'snapshot' }] });
  ws.push(SNAP(10));
  await flush();
  ws.push({ ch: 'hb', ts: 1, last: { [key]: 10, 'trades:OTHER': 99 } });
  assert.equal(ws.ops('subscribe').length, 1, 'in step: nothing to do');
  ws.push({ ch: 'hb', ts: 2, last: { [key]: 12 } });
  assert.equal(ws.ops('subscribe').length, 2);
  assert.deepEqual(ws.lastOp('subscribe').args.resume, { 'BTC-USD': { epoch: 1, seq: 10 } });
  assert.equal(client.stats.tailLosses, 1);
});

test('a server gap notice marks the stream stale until the snapshot', async () => {
  const { client, ws } = await connected();
  const gaps = [];
  const seen = [];
  const key = client.subscribe({ ch: 'trades', sym: 'BTC-USD' }, (m) => seen.push(m.seq), { onGap: (m) => gaps.push(m.lost) });
  ws.push({ ch: 'trades', sym: 'BTC-USD', type: 'snapshot', epoch: 1, seq: 5, data: [] });
  ws.push({ ch: 'trades', sym: 'BTC-USD', type: 'gap', epoch: 1, lost: [6, 9] });
  assert.equal(client.streams.get(key).state, 'stale');
  assert.deepEqual(gaps, [[6, 9]]);
  ws.push({ ch: 'trades', sym: 'BTC-USD', type: 'snapshot', epoch: 1, seq: 9, data: [] });
  assert.equal(client.streams.get(key).state, 'live');
  assert.deepEqual(seen, [5, 9]);
});

test('latest-wins streams take newer events and skip older ones', async () => {
  const { client, ws } = await connected();
  const seen = [];
  client.subscribe({ ch: 'ticker', sym: 'BTC-USD' }, (m) => seen.push(m.seq));
  for (const seq of [5, 7, 6, 7, 9]) ws.push({ ch: 'ticker', sym: 'BTC-USD', type: seq === 5 ? 'snapshot' : 'update', epoch: 1, seq, data: {} });
  assert.deepEqual(seen, [5, 7, 7, 9]);
});

test('reconnect: backoff, session.resume with every position, retried place, resumed state', async () => {
  const { client, ws, clock, conns } = await connected();
  const login = client.login('alice', 'pw');
  ws.reply(ws.lastOp('auth'), { user: 'alice', role: 'trader', session: { id: 's1', token: 'tok' } });
  await login;
  assert.equal(client.token, 'tok');
  const bookKey = client.subscribe({ ch: 'book.l2', sym: 'BTC-USD', depth: 50, cksum: true }, () => {});
  client.subscribe({ ch: 'account' }, () => {});
  const candles = client.subscribe({ ch: 'candles', sym: 'BTC-USD', interval: '1m' }, () => {});
  ws.push(SNAP(10));
  ws.push({ ch: 'account', type: 'snapshot', epoch: 2, seq: 300, data: { balances: [], orders: [] } });
  // candles: subscribed, snapshot not yet received.
  await flush();

  const place = client.request('order.place', { cl_id: 'c-1', sym: 'BTC-USD' }, { retryOnReconnect: true });
  const cancel = client.request('order.cancel', { sym: 'BTC-USD', order_id: 4 });
  ws.drop();
  await assert.rejects(cancel, (e) => e.code === 'connection_lost' && e.outcome === 'unknown');
  assert.equal(client.conn, 'reconnecting');
  assert.equal(client.streams.get(bookKey).state, 'resyncing');
  // First retry after backoff_ms_min (random 0.5 -> x0.75).
  clock.advance(backoff_ms_min);
  const ws2 = FakeWS.last();
  assert.notEqual(ws2, ws);
  ws2.open();
  const resume = ws2.lastOp('session.resume');
  assert.deepEqual(resume.args, {
    token: 'tok',
    streams: { [bookKey]: { epoch: 1, seq: 10 }, account: { epoch: 2, seq: 300 } },
  });
  assert.equal(ws2.ops('order.place').length, 0, 'nothing else goes out before the session is back');
  ws2.push(DELTA(10, 11)); // replay may arrive before the answer
  ws2.reply(resume, { subs: [{ sub: bookKey, mode: 'resumed', from_seq: 11 }, { sub: 'account', mode: 'resumed', from_seq: 301 }] });
  await flush();
  // The stream with no position yet is subscribed afresh.
  const sub = ws2.lastOp('subscribe');
  assert.deepEqual(sub.args, { ch: 'candles', sym: ['BTC-USD'], interval: '1m' });
  assert.equal(client.streams.get(candles).state, 'resyncing');
  assert.equal(client.conn, 'resumed');
  assert.equal(conns.at(-1), 'resumed');
  assert.equal(client.streams.get(bookKey).state, 'live');
  assert.deepEqual(client.streams.get(bookKey).pos.pos, { epoch: 1, seq: 11 });
  // The place is sent again with the same cl_id.
  const again = ws2.lastOp('order.place');
  assert.equal(again.args.cl_id, 'c-1');
  ws2.reply(again, { order_id: 9, cl_id: 'c-1', status: 'new', dup: true });
  assert.equal((await place).order_id, 9);
  assert.equal(client.stats.resumes, 1);
});

test('backoff doubles up to its cap and resets after a good connection', async () => {
  const clock = new Clock();
  const client = new BourseClient({ url: 'ws://x/ws', WebSocketImpl: FakeWS, timers: clock, random: () => 1 });
  const delays = [];
  client.on('conn', (s, info) => s === 'reconnecting' && info.inMs !== undefined && delays.push(info.inMs));
  client.start();
  for (let i = 0; i < 8; i++) {
    FakeWS.last().drop();
    clock.advance(backoff_ms_max);
  }
  assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
  FakeWS.last().open();
  await flush();
  assert.equal(client.conn, 'live');
  FakeWS.last().drop();
  assert.equal(delays.at(-1), backoff_ms_min);
});

test('an expired session on resume logs out and resubscribes public streams one by one', async () => {
  const { client, ws, clock } = await connected();
  const auth = [];
  client.on('auth', (e) => auth.push(e.state));
  const login = client.login('alice', 'pw');
  ws.reply(ws.lastOp('auth'), { user: 'alice', role: 'trader', session: { id: 's1', token: 'tok' } });
  await login;
  const tk = client.subscribe({ ch: 'trades', sym: 'BTC-USD' }, () => {});
  client.subscribe({ ch: 'account' }, () => {});
  ws.push({ ch: 'trades', sym: 'BTC-USD', type: 'snapshot', epoch: 1, seq: 50, data: [] });
  ws.push({ ch: 'account', type: 'snapshot', epoch: 1, seq: 3, data: {} });
  ws.drop();
  clock.advance(backoff_ms_max);
  const ws2 = FakeWS.last();
  ws2.open();
  ws2.fail(ws2.lastOp('session.resume'), { code: 'token_expired', num: 2005, msg: 'expired' });
  await flush();
  assert.equal(client.token, null);
  assert.deepEqual(auth, ['in', 'lost']);
  assert.equal(client.streams.has('account'), false);
  const subs = ws2.ops('subscribe');
  assert.equal(subs.length, 1);
  assert.deepEqual(subs[0].args, { ch: 'trades', sym: ['BTC-USD'], resume: { 'BTC-USD': { epoch: 1, seq: 50 } } });
  assert.ok(client.streams.has(tk));
  assert.equal(client.conn, 'resumed');
});

test('without a login, reconnect resumes each stream with its own subscribe', async () => {
  const { client, ws, clock } = await connected();
  client.subscribe({ ch: 'status' }, () => {});
  ws.push({ ch: 'status', type: 'snapshot', epoch: 1, seq: 12, data: { instruments: [] } });
  client.dropConnection();
  assert.deepEqual(ws.closedWith, { code: 4000, reason: 'dropped' });
  assert.equal(client.conn, 'reconnecting');
  clock.advance(backoff_ms_max);
  const ws2 = FakeWS.last();
  ws2.open();
  assert.equal(ws2.ops('session.resume').length, 0);
  assert.deepEqual(ws2.lastOp('subscribe').args, { ch: 'status', resume: { epoch: 1, seq: 12 } });
});

test('silence past silence_ms_max is a dead connection', async () => {
  const { client, ws, clock } = await connected();
  clock.advance(silence_ms_max - 1);
  ws.push({ ch: 'hb', ts: 1, last: {} });
  clock.advance(silence_ms_max - 1);
  assert.equal(client.conn, 'live');
  clock.advance(1);
  assert.equal(client.conn, 'reconnecting');
  assert.equal(ws.closedWith.code, 4001);
});

test('requests made while disconnected wait for the connection, bounded in time', async () => {
  const clock = new Clock();
  const client = new BourseClient({ url: 'ws://x/ws', WebSocketImpl: FakeWS, timers: clock, random: () => 0.5 });
  client.start();
  const p = client.request('instruments');
  const q = client.request('ping');
  FakeWS.last().open();
  await flush();
  const ws = FakeWS.last();
  ws.reply(ws.lastOp('instruments'), { instruments: [] });
  assert.deepEqual(await p, { instruments: [] });
  ws.drop();
  await assert.rejects(q, (e) => e.code === 'connection_lost');
  const r = client.request('ping');
  clock.advance(20000);
  await assert.rejects(r, (e) => e.code === 'not_connected' && e.outcome === 'rejected');
});

test('logout forgets the token and the account stream', async () => {
  const { client, ws } = await connected();
  const login = client.login('alice', 'pw');
  ws.reply(ws.lastOp('auth'), { user: 'alice', role: 'trader', session: { id: 's1', token: 'tok' } });
  await login;
  client.subscribe({ ch: 'account' }, () => {});
  const out = client.logout();
  assert.deepEqual(ws.lastOp('unsubscribe').args, { ch: 'account' });
  ws.reply(ws.lastOp('logout'), {});
  await out;
  assert.equal(client.token, null);
  assert.equal(client.streams.has('account'), false);
});

test('unknown frames and message kinds are ignored', async () => {
  const { client, ws } = await connected();
  ws.onmessage({ data: 'not json' });
  ws.push({ ch: 'news', headline: 'x' });
  ws.push({ id: null, ok: false, err: { code: 'bad_request' } });
  const notices = [];
  client.on('notice', (n) => notices.push(n.code));
  ws.push({ op: 'notice', code: 'shutdown', in_ms: 5000, reconnect: true });
  assert.deepEqual(notices, ['shutdown']);
  assert.equal(client.stats.badFrames, 1);
  assert.equal(client.conn, 'live');
});

test('a passing failure of session.resume reconnects instead of hanging', async () => {
  const { client, ws, clock } = await connected();
  const login = client.login('alice', 'pw');
  ws.reply(ws.lastOp('auth'), { user: 'alice', role: 'trader', session: { id: 's1', token: 'tok' } });
  await login;
  ws.drop();
  clock.advance(backoff_ms_max);
  const ws2 = FakeWS.last();
  ws2.open();
  ws2.fail(ws2.lastOp('session.resume'), { code: 'overloaded', num: 5005, msg: 'busy', retryable: true, outcome: 'rejected' });
  await flush();
  assert.equal(client.conn, 'reconnecting');
  assert.equal(ws2.closedWith.code, 4002);
  assert.equal(client.token, 'tok', 'the login is kept for the next attempt');
  clock.advance(backoff_ms_max);
  const ws3 = FakeWS.last();
  assert.notEqual(ws3, ws2);
  ws3.open();
  ws3.reply(ws3.lastOp('session.resume'), { subs: [] });
  await flush();
  assert.equal(client.conn, 'resumed');
});

test('a logged_out notice ends the login and forgets the account stream', async () => {
  const { client, ws } = await connected();
  const auth = [];
  client.on('auth', (e) => auth.push([e.state, e.error?.code]));
  const login = client.login('alice', 'pw');
  ws.reply(ws.lastOp('auth'), { user: 'alice', role: 'trader', session: { id: 's1', token: 'tok' } });
  await login;
  client.subscribe({ ch: 'account' }, () => {});
  client.subscribe({ ch: 'trades', sym: 'BTC-USD' }, () => {});
  ws.push({ op: 'notice', code: 'logged_out', reason: 'password_set' });
  await flush();
  assert.equal(client.token, null);
  assert.equal(client.user, null);
  assert.deepEqual(auth, [['in', undefined], ['lost', 'logged_out']]);
  assert.equal(client.streams.has('account'), false);
  assert.equal(client.streams.has('trades:BTC-USD'), true);
  // A second notice (another of the user's logins ending) changes nothing.
  ws.push({ op: 'notice', code: 'logged_out', reason: 'password_set' });
  await flush();
  assert.equal(auth.length, 2);
});

test('changePassword sends account.password with the current and the new password', async () => {
  const { client, ws } = await connected();
  const done = client.changePassword('old-one-1', 'new-one-22');
  const op = ws.lastOp('account.password');
  assert.deepEqual(op.args, { password: 'old-one-1', new_password: 'new-one-22' });
  ws.reply(op, { user: 'alice' });
  assert.deepEqual(await done, { user: 'alice' });
});
