// Public market data folded for display: the trades tape, candles and the
// ticker strip.
//
// Owns the page's bounded copies of the `trades` and `candles` streams and
// the derived ticker figures (24h change and its percentage), computed
// exactly from the wire strings. Converting to numbers happens only in
// `chartBars`, which feeds the chart library for plotting.

import { dec, div, format, mulInt, sign, sub, toNumber } from './decimal.js';

/** Trades kept on the tape. */
export const trades_max = 200;
/** Candles kept per interval (the snapshot brings up to 100). */
export const candles_max = 2000;

export const INTERVALS = ['1m', '5m', '15m', '1h', '1d'];

function asList(data, field) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[field])) return data[field];
  return data ? [data] : [];
}

/** The trades tape, newest first, with markers where trades were lost. */
export class TradesTape {
  constructor() {
    this.items = [];
    this.ids = new Set();
  }

  clear() {
    this.items = [];
    this.ids = new Set();
  }

  /** A `trades` event that passed the sequencing rule. */
  apply(msg) {
    const list = asList(msg.data, 'trades');
    if (msg.type === 'snapshot') this.clear();
    for (const t of list) {
      if (t.id === undefined || this.ids.has(t.id)) continue;
      this.ids.add(t.id);
      this.items.unshift({ ...t });
    }
    this.items.sort((a, b) => b.id - a.id);
    this.trim();
  }

  /** The server's `gap` notice: trades lost[0]..lost[1] were not sent. */
  markGap(lost) {
    if (!Array.isArray(lost) || lost.length !== 2) return;
    // Sorts between the last trade before the gap and the first after it.
    this.items.push({ gap: lost, id: lost[1] + 0.5 });
    this.items.sort((a, b) => b.id - a.id);
    this.trim();
  }

  trim() {
    while (this.items.length > trades_max) {
      const t = this.items.pop();
      if (!t.gap) this.ids.delete(t.id);
    }
  }
}

/** Candle start time in seconds, whatever unit the wire used (us, ms or s). */
export function startSeconds(start) {
  if (start > 1e14) return Math.floor(start / 1e6);
  if (start > 1e11) return Math.floor(start / 1e3);
  return Math.floor(start);
}

/** Candles of one instrument and interval, keyed by start time. */
export class CandleSeries {
  constructor(interval) {
    this.interval = interval;
    this.byStart = new Map();
  }

  clear() {
    this.byStart = new Map();
  }

  /** A `candles` event; returns the candles it touched. */
  apply(msg) {
    const list = asList(msg.data, 'candles');
    if (msg.type === 'snapshot') this.clear();
    for (const c of list) if (c && c.start !== undefined) this.byStart.set(c.start, { ...c });
    while (this.byStart.size > candles_max) this.byStart.delete(this.sorted()[0].start);
    return list;
  }

  sorted() {
    return [...this.byStart.values()].sort((a, b) => a.start - b.start);
  }

  get size() {
    return this.byStart.size;
  }
}

/** Plot points for the chart library (numbers for drawing only). */
export function chartBar(c) {
  return {
    time: startSeconds(c.start),
    open: toNumber(c.o),
    high: toNumber(c.h),
    low: toNumber(c.l),
    close: toNumber(c.c),
  };
}

export function volumeBar(c, upColor, downColor) {
  return {
    time: startSeconds(c.start),
    value: toNumber(c.v),
    color: sign(sub(c.c, c.o)) >= 0 ? upColor : downColor,
  };
}

/**
 * Ticker strip figures from a `ticker` payload: the wire strings as given,
 * plus the exact 24h change and its percentage (two decimals, half away
 * from zero). Missing values stay null.
 */
export function tickerView(t = {}) {
  const v = {
    last: t.last ?? null,
    bid: t.bid ?? null,
    ask: t.ask ?? null,
    high: t.high_24h ?? null,
    low: t.low_24h ?? null,
    volume: t.volume_24h ?? null,
    open: t.open_24h ?? null,
    change: null,
    changePct: null,
    dir: 'flat',
  };
  if (v.last !== null && v.open !== null) {
    const ch = sub(dec(v.last), dec(v.open));
    const s = sign(ch);
    v.dir = s > 0 ? 'up' : s < 0 ? 'down' : 'flat';
    v.change = (s > 0 ? '+' : '') + format(ch);
    if (sign(dec(v.open)) !== 0) {
      const pct = div(mulInt(ch, 100), dec(v.open), 2, 'half');
      v.changePct = (sign(pct) > 0 ? '+' : '') + format(pct);
    }
  }
  return v;
}
