// Sequencing of stream events: the client rule of PROTOCOL.md section 2.
//
// Every sequenced stream (book.l2, trades, candles, status, account) carries
// `epoch`, `prev` and `seq`. This module owns the one decision the page makes
// about each event before it touches any state: apply it, ignore it as
// already seen, or declare a gap that must be repaired by resubscribing.
// Latest-wins streams (ticker, book.l1) have a `seq` but no chain.

export const APPLY = 'apply';
export const IGNORE = 'ignore';
export const GAP = 'gap';

/** Channels whose events form a chain (prev -> seq). */
const CHAINED = new Set(['book.l2', 'trades', 'candles', 'status', 'account']);
/** Channels that carry a seq but where the latest event simply wins. */
const LATEST_WINS = new Set(['ticker', 'book.l1']);

export function isChained(ch) {
  return CHAINED.has(ch);
}

export function isLatestWins(ch) {
  return LATEST_WINS.has(ch);
}

/**
 * What to do with `msg` given the stream's position `pos` ({epoch, seq} or
 * null before any snapshot).
 *
 * - A snapshot always applies: it restarts the position.
 * - A delta applies when its epoch matches and `prev == last_seq`.
 * - A delta with `seq <= last_seq` (same epoch) was already applied: ignore.
 * - Anything else (no position yet, another epoch, prev ahead) is a gap.
 */
export function verdict(pos, msg) {
  if (msg.type === 'snapshot') return APPLY;
  if (!pos) return GAP;
  if (msg.epoch !== pos.epoch) return GAP;
  if (msg.prev === pos.seq) return APPLY;
  if (typeof msg.seq === 'number' && msg.seq <= pos.seq) return IGNORE;
  return GAP;
}

/** Latest-wins rule: newer seq (or a new epoch) replaces, older is stale. */
export function latestVerdict(pos, msg) {
  if (!pos || msg.type === 'snapshot') return APPLY;
  if (msg.epoch !== pos.epoch) return APPLY;
  if (typeof msg.seq !== 'number' || msg.seq >= pos.seq) return APPLY;
  return IGNORE;
}

/** Position of one stream: the last epoch and seq applied. */
export class StreamPosition {
  constructor() {
    this.epoch = null;
    this.seq = null;
  }

  get known() {
    return this.seq !== null;
  }

  /** The {epoch, seq} pair, or null before the first snapshot. */
  get pos() {
    return this.known ? { epoch: this.epoch, seq: this.seq } : null;
  }

  check(msg, chained = true) {
    return chained ? verdict(this.pos, msg) : latestVerdict(this.pos, msg);
  }

  /** Records that `msg` was applied. */
  advance(msg) {
    this.epoch = msg.epoch ?? null;
    this.seq = typeof msg.seq === 'number' ? msg.seq : null;
  }

  clear() {
    this.epoch = null;
    this.seq = null;
  }
}
