// Exact fixed-scale decimals for prices, quantities and balances.
//
// The exchange sends every amount as a string with a fixed number of digits
// after the point (PROTOCOL.md section 1). This module owns the page's money
// arithmetic: a value is a BigInt count of units at a scale (`{u, s}` means
// u / 10^s), so sums, differences, notionals and fees are exact. Nothing here
// ever goes through a JS number; `toNumber` exists only to feed chart
// plotting and bar widths, never a money decision.

/** Strict wire form: digits, optionally one point followed by digits. */
const WIRE_RE = /^(\d+)(?:\.(\d+))?$/;
/** Signed form, for values the page itself derived (differences). */
const SIGNED_RE = /^(-?)(\d+)(?:\.(\d+))?$/;
/** What a person may type: "5", "5.", ".5", "0.25". */
const INPUT_RE = /^(\d*)(?:\.(\d*))?$/;

/** Scales above this are refused: no instrument or asset needs more digits. */
export const scale_max = 36;

export class DecimalError extends Error {
  constructor(msg) {
    super(msg);
    this.name = 'DecimalError';
  }
}

function make(u, s) {
  return Object.freeze({ u, s });
}

function pow10(n) {
  return 10n ** BigInt(n);
}

function checkScale(s) {
  if (!Number.isInteger(s) || s < 0 || s > scale_max) {
    throw new DecimalError(`scale ${s} out of range 0..${scale_max}`);
  }
}

/** Zero at scale 0. */
export const ZERO = make(0n, 0);

/**
 * Parses an exact wire decimal ("30001.50", "0", "12.3450"). Refuses signs,
 * exponents, spaces and anything but digits and one point, as the exchange
 * does. With `{signed: true}` a leading "-" is accepted.
 */
export function parse(str, { signed = false } = {}) {
  if (typeof str !== 'string') throw new DecimalError(`not a decimal string: ${String(str)}`);
  let neg = false;
  let int;
  let frac;
  if (signed) {
    const m = SIGNED_RE.exec(str);
    if (!m) throw new DecimalError(`malformed decimal: ${JSON.stringify(str)}`);
    neg = m[1] === '-';
    int = m[2];
    frac = m[3] ?? '';
  } else {
    const m = WIRE_RE.exec(str);
    if (!m) throw new DecimalError(`malformed decimal: ${JSON.stringify(str)}`);
    int = m[1];
    frac = m[2] ?? '';
  }
  checkScale(frac.length);
  const u = BigInt(int + frac);
  return make(neg ? -u : u, frac.length);
}

/**
 * Parses what a person typed into a field. Returns null when it is not a
 * plain non-negative decimal; keeps every digit typed (the scale is the number
 * of digits after the point, trailing zeros included).
 */
export function parseInput(str) {
  if (typeof str !== 'string') return null;
  const t = str.trim();
  const m = INPUT_RE.exec(t);
  if (!m) return null;
  const int = m[1];
  const frac = m[2] ?? '';
  if (int === '' && frac === '') return null;
  if (frac.length > scale_max) return null;
  return make(BigInt((int || '0') + frac), frac.length);
}

/** Builds a decimal from a BigInt unit count and a scale. */
export function fromUnits(u, s) {
  checkScale(s);
  return make(BigInt(u), s);
}

/** Accepts a decimal or a wire string. */
export function dec(x) {
  if (typeof x === 'string') return parse(x, { signed: true });
  if (x && typeof x.u === 'bigint' && Number.isInteger(x.s)) return x;
  throw new DecimalError(`not a decimal: ${String(x)}`);
}

/** Number of digits after the point of a wire string. */
export function scaleOf(str) {
  const i = str.indexOf('.');
  return i < 0 ? 0 : str.length - i - 1;
}

/** The same value at a larger scale (always exact). */
function widen(a, s) {
  return a.s === s ? a : make(a.u * pow10(s - a.s), s);
}

/**
 * The value at scale `s`. `mode` says what to do with digits that do not
 * fit: 'exact' (default) returns null when they are not all zero, 'down'
 * truncates towards zero, 'up' rounds away from zero, 'half' rounds half
 * away from zero.
 */
export function rescale(x, s, mode = 'exact') {
  const a = dec(x);
  checkScale(s);
  if (s >= a.s) return widen(a, s);
  const d = pow10(a.s - s);
  const q = a.u / d; // BigInt division truncates towards zero
  const r = a.u % d;
  if (r === 0n) return make(q, s);
  const away = a.u < 0n ? -1n : 1n;
  switch (mode) {
    case 'exact':
      return null;
    case 'down':
      return make(q, s);
    case 'up':
      return make(q + away, s);
    case 'half': {
      const twice = (r < 0n ? -r : r) * 2n;
      return make(twice >= d ? q + away : q, s);
    }
    default:
      throw new DecimalError(`unknown rounding mode ${mode}`);
  }
}

/**
 * Writes a decimal with exactly `s` digits after the point (default: its own
 * scale). Throws when that would lose digits: formatting never rounds money
 * silently.
 */
export function format(x, s) {
  const a = dec(x);
  const target = s === undefined ? a.s : s;
  const r = rescale(a, target);
  if (r === null) throw new DecimalError(`cannot write ${toStringRaw(a)} at scale ${target} without rounding`);
  return toStringRaw(r);
}

function toStringRaw(a) {
  const neg = a.u < 0n;
  let digits = (neg ? -a.u : a.u).toString();
  if (a.s === 0) return (neg ? '-' : '') + digits;
  if (digits.length <= a.s) digits = '0'.repeat(a.s - digits.length + 1) + digits;
  const int = digits.slice(0, digits.length - a.s);
  const frac = digits.slice(digits.length - a.s);
  return `${neg ? '-' : ''}${int}.${frac}`;
}

export function add(x, y) {
  const a = dec(x);
  const b = dec(y);
  const s = Math.max(a.s, b.s);
  return make(widen(a, s).u + widen(b, s).u, s);
}

export function sub(x, y) {
  const a = dec(x);
  const b = dec(y);
  const s = Math.max(a.s, b.s);
  return make(widen(a, s).u - widen(b, s).u, s);
}

/** -1, 0 or 1, comparing values (not representations: "1.0" == "1.00"). */
export function cmp(x, y) {
  const a = dec(x);
  const b = dec(y);
  const s = Math.max(a.s, b.s);
  const ua = widen(a, s).u;
  const ub = widen(b, s).u;
  return ua < ub ? -1 : ua > ub ? 1 : 0;
}

export function eq(x, y) {
  return cmp(x, y) === 0;
}

/** Exact product; its scale is the sum of the scales (px * qty = notional). */
export function mul(x, y) {
  const a = dec(x);
  const b = dec(y);
  checkScale(a.s + b.s);
  return make(a.u * b.u, a.s + b.s);
}

/** Multiplies by an integer (BigInt or safe integer). */
export function mulInt(x, n) {
  const a = dec(x);
  return make(a.u * BigInt(n), a.s);
}

/**
 * x / y written at scale `s`, rounded by `mode` ('down', 'up' or 'half';
 * 'exact' returns null when the quotient does not fit). Throws on y == 0.
 */
export function div(x, y, s, mode = 'down') {
  const a = dec(x);
  const b = dec(y);
  checkScale(s);
  if (b.u === 0n) throw new DecimalError('division by zero');
  // a/b = (a.u / 10^a.s) / (b.u / 10^b.s); at scale s the unit count is
  // a.u * 10^(s + b.s) / (b.u * 10^a.s).
  let num = a.u * pow10(s + b.s);
  let den = b.u * pow10(a.s);
  if (den < 0n) {
    num = -num;
    den = -den;
  }
  const q = num / den;
  const r = num % den;
  if (r === 0n) return make(q, s);
  const away = num < 0n ? -1n : 1n;
  switch (mode) {
    case 'exact':
      return null;
    case 'down':
      return make(q, s);
    case 'up':
      return make(q + away, s);
    case 'half': {
      const twice = (r < 0n ? -r : r) * 2n;
      return make(twice >= den ? q + away : q, s);
    }
    default:
      throw new DecimalError(`unknown rounding mode ${mode}`);
  }
}

export function isZero(x) {
  return dec(x).u === 0n;
}

export function sign(x) {
  const u = dec(x).u;
  return u < 0n ? -1 : u > 0n ? 1 : 0;
}

export function neg(x) {
  const a = dec(x);
  return make(-a.u, a.s);
}

export function abs(x) {
  const a = dec(x);
  return a.u < 0n ? make(-a.u, a.s) : a;
}

export function min(x, y) {
  return cmp(x, y) <= 0 ? dec(x) : dec(y);
}

export function max(x, y) {
  return cmp(x, y) >= 0 ? dec(x) : dec(y);
}

/** True when x is a whole multiple of step (tick or lot grid). */
export function isMultipleOf(x, step) {
  const a = dec(x);
  const b = dec(step);
  if (b.u === 0n) throw new DecimalError('step is zero');
  const s = Math.max(a.s, b.s);
  return widen(a, s).u % widen(b, s).u === 0n;
}

/** Sum of a list of decimals or wire strings (ZERO for an empty list). */
export function sum(list) {
  let acc = ZERO;
  for (const x of list) acc = add(acc, x);
  return acc;
}

/**
 * Fee on a notional in basis points, rounded up to `scale` digits as the
 * exchange charges it (PROTOCOL.md section 5).
 */
export function feeUp(notional, bps, scale) {
  return div(mulInt(notional, BigInt(bps)), '10000', scale, 'up');
}

/** Midpoint of two prices, exact: one more digit than the wider input. */
export function mid(x, y) {
  const a = dec(x);
  const b = dec(y);
  const s = Math.max(a.s, b.s);
  // (a + b) / 2 == (a + b) * 5 / 10, exact at scale s + 1.
  return make((widen(a, s).u + widen(b, s).u) * 5n, s + 1);
}

/** For drawing only (chart coordinates, bar widths): never for money logic. */
export function toNumber(x) {
  return Number(toStringRaw(dec(x)));
}
