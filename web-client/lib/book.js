// The page's copy of one `book.l2` order book.
//
// Owns the price levels of one subscription (instrument and depth): applies
// the in-band snapshot and the deltas with absolute quantities ("0" removes a
// level), keeps both sides sorted best first, enforces the prev/seq/epoch rule
// of PROTOCOL.md section 2 on its own, and recomputes the CRC-32 checksum of
// section 4 after every message so a book that differs from the exchange's is
// detected instead of shown. Pure data: no sockets, no DOM.

import { crc32 } from './crc32.js';
import { cmp, isZero } from './decimal.js';
import { APPLY, GAP, IGNORE, verdict } from './sequence.js';

/** Levels per side that the checksum covers (PROTOCOL.md section 4). */
export const cksum_levels_max = 25;

/** Levels per side covered by the checksum for a subscription of `depth`. */
export function cksumLevels(depth) {
  return depth > 0 && depth < cksum_levels_max ? depth : cksum_levels_max;
}

/** The string the checksum is computed over: `px:qty\n`, bids then asks. */
export function checksumString(bids, asks, depth = 0) {
  const n = cksumLevels(depth);
  let s = '';
  for (let i = 0; i < bids.length && i < n; i++) s += `${bids[i][0]}:${bids[i][1]}\n`;
  for (let i = 0; i < asks.length && i < n; i++) s += `${asks[i][0]}:${asks[i][1]}\n`;
  return s;
}

/** CRC-32 over the top levels, bids and asks given best first. */
export function checksum(bids, asks, depth = 0) {
  return crc32(checksumString(bids, asks, depth));
}

/** Results of `L2Book.handle`. */
export const APPLIED = 'applied';
export const IGNORED = 'ignored';
export const GAPPED = 'gap';
export const CKSUM_MISMATCH = 'cksum_mismatch';

/**
 * One side of a book: levels as [px, qty] wire strings, sorted best first.
 * `better(a, b)` is true when price a ranks before price b.
 */
class Side {
  constructor(isBid) {
    this.isBid = isBid;
    this.levels = [];
  }

  /** Index of `px`, or -(insertion point) - 1 when absent (binary search). */
  find(px) {
    let lo = 0;
    let hi = this.levels.length - 1;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      let c = cmp(this.levels[m][0], px);
      if (this.isBid) c = -c; // bids descend
      if (c === 0) return m;
      if (c < 0) lo = m + 1;
      else hi = m - 1;
    }
    return -lo - 1;
  }

  set(px, qty) {
    const i = this.find(px);
    if (isZero(qty)) {
      if (i >= 0) this.levels.splice(i, 1);
      return;
    }
    if (i >= 0) this.levels[i] = [this.levels[i][0], qty];
    else this.levels.splice(-i - 1, 0, [px, qty]);
  }

  replace(levels) {
    this.levels = [];
    for (const [px, qty] of levels) this.set(px, qty);
  }
}

export class L2Book {
  /**
   * `depth` is the subscribed depth (10, 50, 200 or 0 for full); it decides
   * how many levels the checksum covers.
   */
  constructor({ sym = '', depth = 50 } = {}) {
    this.sym = sym;
    this.depth = depth;
    this.b = new Side(true);
    this.a = new Side(false);
    this.epoch = null;
    this.seq = null;
    /** False until a snapshot, and after a checksum mismatch. */
    this.valid = false;
    /** Outcome of the last checksum comparison: true, false, or null (none sent). */
    this.cksumOk = null;
  }

  get bids() {
    return this.b.levels;
  }

  get asks() {
    return this.a.levels;
  }

  get pos() {
    return this.seq === null ? null : { epoch: this.epoch, seq: this.seq };
  }

  /** Forgets every level and the position (a fresh snapshot must follow). */
  reset() {
    this.b.replace([]);
    this.a.replace([]);
    this.epoch = null;
    this.seq = null;
    this.valid = false;
    this.cksumOk = null;
  }

  applySnapshot(msg) {
    this.b.replace(msg.bids ?? []);
    this.a.replace(msg.asks ?? []);
    if (typeof msg.depth === 'number') this.depth = msg.depth;
    this.epoch = msg.epoch;
    this.seq = msg.seq;
    this.valid = true;
  }

  applyDelta(msg) {
    for (const [px, qty] of msg.bids ?? []) this.b.set(px, qty);
    for (const [px, qty] of msg.asks ?? []) this.a.set(px, qty);
    this.seq = msg.seq;
  }

  checksum() {
    return checksum(this.bids, this.asks, this.depth);
  }

  /**
   * Applies one `book.l2` event under the sequencing rule and verifies its
   * checksum when it carries one. Returns APPLIED, IGNORED, GAPPED (nothing
   * changed; resubscribe with resume) or CKSUM_MISMATCH (the book is now
   * marked invalid; resubscribe for a fresh snapshot).
   */
  handle(msg) {
    const v = verdict(this.pos, msg);
    if (v === IGNORE) return IGNORED;
    if (v === GAP) return GAPPED;
    if (v !== APPLY) throw new Error(`unexpected verdict ${v}`);
    if (msg.type === 'snapshot') this.applySnapshot(msg);
    else if (!this.valid) return GAPPED; // deltas on an invalid book are never shown
    else this.applyDelta(msg);
    if (typeof msg.cksum === 'number') {
      this.cksumOk = this.checksum() === msg.cksum >>> 0;
      if (!this.cksumOk) {
        this.valid = false;
        return CKSUM_MISMATCH;
      }
    }
    return APPLIED;
  }

  bestBid() {
    return this.bids[0] ?? null;
  }

  bestAsk() {
    return this.asks[0] ?? null;
  }
}
