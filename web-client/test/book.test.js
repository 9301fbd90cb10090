import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { crc32 } from '../lib/crc32.js';
import { L2Book, APPLIED, IGNORED, GAPPED, CKSUM_MISMATCH, checksum, checksumString, cksumLevels } from '../lib/book.js';

const SNAP = {
  ch: 'book.l2',
  sym: 'BTC-USD',
  type: 'snapshot',
  epoch: 1,
  seq: 1042,
  depth: 50,
  bids: [
    ['30001.50', '0.2500'],
    ['30001.00', '1.1000'],
  ],
  asks: [['30002.00', '0.4000']],
  cksum: 283928291,
};
const DELTA = {
  ch: 'book.l2',
  sym: 'BTC-USD',
  type: 'delta',
  epoch: 1,
  prev: 1042,
  seq: 1043,
  bids: [['30001.50', '0']],
  asks: [['30001.80', '0.0500']],
  cksum: 2606946132,
};

test('crc32 matches zlib on known strings', () => {
  assert.equal(crc32(''), 0);
  assert.equal(crc32('123456789'), 0xcbf43926);
  assert.equal(crc32('The quick brown fox jumps over the lazy dog'), 0x414fa339);
});

test('PROTOCOL.md checksum vectors', () => {
  assert.equal(checksumString(SNAP.bids, SNAP.asks), '30001.50:0.2500\n30001.00:1.1000\n30002.00:0.4000\n');
  assert.equal(checksum(SNAP.bids, SNAP.asks), 283928291);
  const book = new L2Book({ sym: 'BTC-USD', depth: 50 });
  assert.equal(book.handle(SNAP), APPLIED);
  assert.equal(book.cksumOk, true);
  assert.equal(book.handle(DELTA), APPLIED);
  assert.equal(book.cksumOk, true);
  assert.equal(book.checksum(), 2606946132);
  assert.deepEqual(book.bids, [['30001.00', '1.1000']]);
  assert.deepEqual(book.asks, [
    ['30001.80', '0.0500'],
    ['30002.00', '0.4000'],
  ]);
});

test('levels stay sorted best first; "0" removes; absent zero is harmless', () => {
  const book = new L2Book({ depth: 0 });
  book.handle({ type: 'snapshot', epoch: 3, seq: 10, bids: [], asks: [] });
  const d = (seq, bids, asks) => ({ type: 'delta', epoch: 3, prev: seq - 1, seq, bids, asks });
  assert.equal(book.handle(d(11, [['99.5', '1'], ['101.0', '2'], ['100.25', '3']], [['103', '1'], ['102.5', '4'], ['110', '1']])), APPLIED);
  assert.deepEqual(book.bids.map((l) => l[0]), ['101.0', '100.25', '99.5']);
  assert.deepEqual(book.asks.map((l) => l[0]), ['102.5', '103', '110']);
  assert.equal(book.handle(d(12, [['100.25', '0'], ['50', '0'], ['101.0', '7']], [['103', '0']])), APPLIED);
  assert.deepEqual(book.bids, [['101.0', '7'], ['99.5', '1']]);
  assert.deepEqual(book.asks, [['102.5', '4'], ['110', '1']]);
  assert.equal(book.seq, 12);
});

test('sequencing: ignore old, gap on skipped prev, epoch change or no snapshot', () => {
  const fresh = new L2Book();
  assert.equal(fresh.handle(DELTA), GAPPED, 'a delta before any snapshot is a gap');

  const book = new L2Book();
  book.handle(SNAP);
  assert.equal(book.handle({ ...DELTA, prev: 1041, seq: 1042 }), IGNORED);
  assert.equal(book.handle({ ...DELTA, prev: 1030, seq: 1040 }), IGNORED);
  assert.equal(book.handle({ ...DELTA, prev: 1043, seq: 1044 }), GAPPED, 'prev ahead of last seq');
  assert.equal(book.handle({ ...DELTA, epoch: 2 }), GAPPED, 'another epoch');
  assert.equal(book.seq, 1042, 'nothing applied by a gap');
  assert.deepEqual(book.bids, SNAP.bids);
  // A conflated delta spanning several versions applies when prev matches.
  assert.equal(book.handle({ ...DELTA, prev: 1042, seq: 1050, cksum: undefined }), APPLIED);
  assert.equal(book.seq, 1050);
  assert.equal(book.handle({ ...DELTA, prev: 1043, seq: 1044 }), IGNORED);
  // A new snapshot always restarts the chain, even in a new epoch.
  assert.equal(book.handle({ ...SNAP, epoch: 2, seq: 5 }), APPLIED);
  assert.deepEqual(book.pos, { epoch: 2, seq: 5 });
});

test('a checksum mismatch invalidates the book until a fresh snapshot', () => {
  const book = new L2Book();
  book.handle(SNAP);
  assert.equal(book.handle({ ...DELTA, cksum: 12345 }), CKSUM_MISMATCH);
  assert.equal(book.valid, false);
  assert.equal(book.handle({ ...DELTA, prev: 1043, seq: 1044, cksum: undefined, bids: [], asks: [] }), GAPPED);
  assert.equal(book.handle(SNAP), APPLIED);
  assert.equal(book.valid, true);
  assert.equal(book.cksumOk, true);
  assert.equal(book.handle({ ...SNAP, cksum: 1 }), CKSUM_MISMATCH, 'a snapshot is checked too');
});

test('checksum covers 25 levels per side, 10 at depth 10', () => {
  assert.equal(cksumLevels(10), 10);
  assert.equal(cksumLevels(50), 25);
  assert.equal(cksumLevels(200), 25);
  assert.equal(cksumLevels(0), 25);
  const bids = [];
  const asks = [];
  for (let i = 0; i < 30; i++) {
    bids.push([`${1000 - i}.00`, '1.0000']);
    asks.push([`${1001 + i}.00`, `${i + 1}.0000`]);
  }
  const s50 = checksumString(bids, asks, 50);
  assert.equal(s50.split('\n').length - 1, 50);
  assert.ok(s50.startsWith('1000.00:1.0000\n'));
  assert.ok(s50.includes('976.00:1.0000\n1001.00:1.0000\n'));
  assert.ok(!s50.includes('975.00'));
  const s10 = checksumString(bids, asks, 10);
  assert.equal(s10.split('\n').length - 1, 20);
  assert.equal(checksum(bids, asks, 10), crc32(s10));
  // Levels past the covered ones do not change the checksum.
  const book = new L2Book({ depth: 10 });
  book.handle({ type: 'snapshot', epoch: 1, seq: 1, bids, asks, cksum: crc32(s10) });
  assert.equal(book.cksumOk, true);
  assert.equal(book.handle({ type: 'delta', epoch: 1, prev: 1, seq: 2, bids: [['975.00', '9.0000']], asks: [], cksum: crc32(s10) }), APPLIED);
});

// ---- shared fixture (written by the protocol crate) -------------------------

const FIXTURE = fileURLToPath(new URL('../../protocol/tests/fixtures/checksum_vectors.json', import.meta.url));

function levels(list) {
  return (list ?? []).map((l) => (Array.isArray(l) ? [String(l[0]), String(l[1])] : [String(l.px ?? l.price), String(l.qty ?? l.size)]));
}

function expectedOf(c) {
  for (const k of ['cksum', 'checksum', 'crc', 'crc32', 'expected']) {
    if (typeof c?.[k] === 'number') return c[k] >>> 0;
    if (typeof c?.[k] === 'string' && /^\d+$/.test(c[k])) return Number(c[k]);
  }
  return null;
}

/**
 * Turns one fixture case into a list of steps [{bids, asks, snapshot, cksum}],
 * accepting the shapes a fixture may take: a plain {bids, asks, cksum}; a
 * {snapshot, deltas|delta} pair; or {steps: [...]}. Returns null when the
 * case has no shape this test understands.
 */
function stepsOf(c) {
  if (!c || typeof c !== 'object') return null;
  const depth = typeof c.depth === 'number' ? c.depth : 0;
  if (Array.isArray(c.steps)) {
    return { depth, steps: c.steps.map((s, i) => ({ snapshot: i === 0 || s.type === 'snapshot', bids: levels(s.bids), asks: levels(s.asks), cksum: expectedOf(s), string: s.string ?? s.input })) };
  }
  if (c.snapshot) {
    const steps = [{ snapshot: true, bids: levels(c.snapshot.bids), asks: levels(c.snapshot.asks), cksum: expectedOf(c.snapshot) }];
    const deltas = c.deltas ?? (c.delta ? [c.delta] : []);
    for (const d of deltas) steps.push({ snapshot: false, bids: levels(d.bids), asks: levels(d.asks), cksum: expectedOf(d) });
    if (steps[steps.length - 1].cksum === null) steps[steps.length - 1].cksum = expectedOf(c);
    return { depth, steps };
  }
  if (c.bids || c.asks) {
    return { depth, steps: [{ snapshot: true, bids: levels(c.bids), asks: levels(c.asks), cksum: expectedOf(c), string: c.string ?? c.input }] };
  }
  return null;
}

test('shared checksum fixture, when present', (t) => {
  if (!existsSync(FIXTURE)) {
    t.skip(`no ${FIXTURE} yet`);
    return;
  }
  const json = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const cases = Array.isArray(json) ? json : (json.cases ?? json.vectors ?? json.checksum_vectors ?? []);
  let checked = 0;
  let skipped = 0;
  cases.forEach((c, idx) => {
    const parsed = stepsOf(c);
    if (!parsed) {
      skipped += 1;
      return;
    }
    const label = `case ${idx} (${c.name ?? ''})`;
    if (parsed.steps.length === 1) {
      // A plain case: the checksum function over the levels exactly as given.
      const step = parsed.steps[0];
      if (typeof step.string === 'string') assert.equal(checksumString(step.bids, step.asks, parsed.depth), step.string, label);
      if (step.cksum !== null) {
        assert.equal(checksum(step.bids, step.asks, parsed.depth), step.cksum, label);
        checked += 1;
      }
      // Through the book too, when the levels are ones a book can hold
      // (a "0" quantity removes a level, so no book shows one).
      if (step.cksum !== null && ![...step.bids, ...step.asks].some(([, q]) => /^0(\.0*)?$/.test(q))) {
        const book = new L2Book({ depth: parsed.depth });
        assert.equal(book.handle({ type: 'snapshot', epoch: 1, seq: 1, bids: step.bids, asks: step.asks, cksum: step.cksum }), APPLIED, label);
      }
      return;
    }
    const book = new L2Book({ depth: parsed.depth });
    let seq = 0;
    for (const step of parsed.steps) {
      seq += 1;
      const msg = step.snapshot
        ? { type: 'snapshot', epoch: 1, seq, bids: step.bids, asks: step.asks }
        : { type: 'delta', epoch: 1, prev: seq - 1, seq, bids: step.bids, asks: step.asks };
      assert.equal(book.handle(msg), APPLIED, `${label} step ${seq}`);
      if (step.cksum !== null) {
        assert.equal(book.checksum(), step.cksum, `${label} step ${seq}`);
        checked += 1;
      }
    }
  });
  t.diagnostic(`fixture: ${checked} checksums checked, ${skipped} cases of unknown shape`);
  assert.ok(checked > 0, 'the fixture exists but no case could be read');
});
