import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APPLY, GAP, IGNORE, StreamPosition, verdict, latestVerdict, isChained, isLatestWins } from '../lib/sequence.js';

const d = (epoch, prev, seq) => ({ type: 'update', epoch, prev, seq });

test('client rule of PROTOCOL.md section 2', () => {
  const pos = { epoch: 7, seq: 1042 };
  assert.equal(verdict(pos, d(7, 1042, 1043)), APPLY);
  assert.equal(verdict(pos, d(7, 1042, 1050)), APPLY, 'a conflated delta spans versions');
  assert.equal(verdict(pos, d(7, 1041, 1042)), IGNORE);
  assert.equal(verdict(pos, d(7, 1000, 1001)), IGNORE);
  assert.equal(verdict(pos, d(7, 1043, 1044)), GAP);
  assert.equal(verdict(pos, d(8, 1042, 1043)), GAP, 'epoch mismatch');
  assert.equal(verdict(pos, d(8, 1, 2)), GAP, 'an old seq in another epoch is still a gap');
  assert.equal(verdict(null, d(7, 1042, 1043)), GAP, 'no snapshot yet');
  assert.equal(verdict(null, { type: 'snapshot', epoch: 1, seq: 1 }), APPLY);
  assert.equal(verdict(pos, { type: 'snapshot', epoch: 1, seq: 1 }), APPLY, 'a snapshot restarts the chain');
});

test('latest-wins rule', () => {
  const pos = { epoch: 1, seq: 10 };
  assert.equal(latestVerdict(pos, { epoch: 1, seq: 11 }), APPLY);
  assert.equal(latestVerdict(pos, { epoch: 1, seq: 10 }), APPLY);
  assert.equal(latestVerdict(pos, { epoch: 1, seq: 9 }), IGNORE);
  assert.equal(latestVerdict(pos, { epoch: 2, seq: 1 }), APPLY);
  assert.equal(latestVerdict(null, { epoch: 1, seq: 1 }), APPLY);
});

test('channel kinds and positions', () => {
  for (const ch of ['book.l2', 'trades', 'candles', 'status', 'account']) assert.ok(isChained(ch), ch);
  for (const ch of ['ticker', 'book.l1']) assert.ok(isLatestWins(ch) && !isChained(ch), ch);
  const p = new StreamPosition();
  assert.equal(p.pos, null);
  assert.equal(p.check(d(1, 1, 2)), GAP);
  p.advance({ epoch: 1, seq: 2 });
  assert.deepEqual(p.pos, { epoch: 1, seq: 2 });
  assert.equal(p.check(d(1, 2, 3)), APPLY);
  p.clear();
  assert.equal(p.known, false);
});
