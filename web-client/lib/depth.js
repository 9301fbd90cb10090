// Depth chart: cumulative quantity on each side of the book, drawn on a
// canvas.
//
// `depthSeries` is the exact part (cumulative sums from the wire strings);
// `drawDepth` turns it into pixels, converting to numbers only to place
// them on screen.

import { add, format, toNumber, ZERO } from './decimal.js';

/** Levels per side drawn on the depth chart. */
export const depth_levels_max = 200;

/** [{px, qty, cum}] per side, best first, cumulative totals exact. */
export function cumulative(levels, n = depth_levels_max) {
  const out = [];
  let acc = ZERO;
  for (let i = 0; i < levels.length && i < n; i++) {
    const [px, qty] = levels[i];
    acc = add(acc, qty);
    out.push({ px, qty, cum: format(acc) });
  }
  return out;
}

export function depthSeries(bids, asks, n = depth_levels_max) {
  return { bids: cumulative(bids, n), asks: cumulative(asks, n) };
}

const COLORS = {
  bg: '#0e1217',
  grid: '#1d242d',
  text: '#7d8a99',
  bidLine: '#1fbf75',
  bidFill: 'rgba(31,191,117,0.18)',
  askLine: '#f0465a',
  askFill: 'rgba(240,70,90,0.18)',
  mid: '#4c5866',
};

/**
 * Draws the depth chart into `canvas` (sized to its CSS box). Returns the
 * number of book points drawn, 0 for an empty book.
 */
export function drawDepth(canvas, series, { priceDigits = 2 } = {}) {
  const ctx = canvas.getContext('2d');
  const dpr = globalThis.devicePixelRatio || 1;
  const w = Math.max(1, Math.floor(canvas.clientWidth));
  const h = Math.max(1, Math.floor(canvas.clientHeight));
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) {
    canvas.width = w * dpr;
    canvas.height = h * dpr;
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = COLORS.bg;
  ctx.fillRect(0, 0, w, h);
  const bids = series.bids.map((l) => ({ x: toNumber(l.px), y: toNumber(l.cum) }));
  const asks = series.asks.map((l) => ({ x: toNumber(l.px), y: toNumber(l.cum) }));
  const n = bids.length + asks.length;
  ctx.font = '11px ui-monospace, SFMono-Regular, Menlo, monospace';
  if (n === 0) {
    ctx.fillStyle = COLORS.text;
    ctx.textAlign = 'center';
    ctx.fillText('no depth', w / 2, h / 2);
    return 0;
  }
  const padL = 8;
  const padR = 56;
  const padT = 10;
  const padB = 20;
  const xs = [...bids, ...asks].map((p) => p.x);
  let x0 = Math.min(...xs);
  let x1 = Math.max(...xs);
  if (bids.length && asks.length) {
    // Centre the mid price.
    const midX = (bids[0].x + asks[0].x) / 2;
    const half = Math.max(midX - x0, x1 - midX);
    x0 = midX - half;
    x1 = midX + half;
  }
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  const yMax = Math.max(...bids.map((p) => p.y), ...asks.map((p) => p.y)) * 1.08 || 1;
  const px = (x) => padL + ((x - x0) / (x1 - x0)) * (w - padL - padR);
  const py = (y) => h - padB - (y / yMax) * (h - padT - padB);

  ctx.strokeStyle = COLORS.grid;
  ctx.lineWidth = 1;
  ctx.fillStyle = COLORS.text;
  ctx.textAlign = 'left';
  for (let i = 0; i <= 4; i++) {
    const y = padT + (i * (h - padT - padB)) / 4;
    ctx.beginPath();
    ctx.moveTo(padL, Math.round(y) + 0.5);
    ctx.lineTo(w - padR, Math.round(y) + 0.5);
    ctx.stroke();
    const val = yMax * (1 - i / 4);
    ctx.fillText(val.toPrecision(3), w - padR + 4, y + 4);
  }
  for (let i = 0; i <= 4; i++) {
    const xv = x0 + ((x1 - x0) * i) / 4;
    ctx.textAlign = i === 0 ? 'left' : i === 4 ? 'right' : 'center';
    ctx.fillText(xv.toFixed(priceDigits), px(xv), h - 5);
  }

  const side = (pts, line, fill, dir) => {
    if (!pts.length) return;
    ctx.beginPath();
    ctx.moveTo(px(pts[0].x), py(0));
    let prevY = 0;
    for (const p of pts) {
      ctx.lineTo(px(p.x), py(prevY));
      ctx.lineTo(px(p.x), py(p.y));
      prevY = p.y;
    }
    const edge = dir < 0 ? x0 : x1;
    ctx.lineTo(px(edge), py(prevY));
    ctx.lineTo(px(edge), py(0));
    ctx.closePath();
    ctx.fillStyle = fill;
    ctx.fill();
    ctx.beginPath();
    ctx.moveTo(px(pts[0].x), py(0));
    prevY = 0;
    for (const p of pts) {
      ctx.lineTo(px(p.x), py(prevY));
      ctx.lineTo(px(p.x), py(p.y));
      prevY = p.y;
    }
    ctx.lineTo(px(edge), py(prevY));
    ctx.strokeStyle = line;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  };
  side(bids, COLORS.bidLine, COLORS.bidFill, -1);
  side(asks, COLORS.askLine, COLORS.askFill, 1);
  if (bids.length && asks.length) {
    const mx = px((bids[0].x + asks[0].x) / 2);
    ctx.strokeStyle = COLORS.mid;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(Math.round(mx) + 0.5, padT);
    ctx.lineTo(Math.round(mx) + 0.5, h - padB);
    ctx.stroke();
    ctx.setLineDash([]);
  }
  return n;
}
