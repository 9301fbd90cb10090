// The trading page: wires the stream client to the panels.
//
// Owns the page state (selected instrument and interval, the book, tape,
// candles, ticker and account views) and its rendering. All protocol logic
// (sequencing, checksums, resume) lives in lib/ and is unit-tested there;
// this file decides what to subscribe to and what to draw. Rendering is
// batched into one animation frame. `window.__bourse` exposes test hooks.

import { $, errorText, esc, timeOf } from './lib/dom.js';
import { BourseClient, streamKey } from './lib/stream.js';
import { L2Book, CKSUM_MISMATCH, GAPPED } from './lib/book.js';
import { AccountState } from './lib/account.js';
import { TradesTape, CandleSeries, INTERVALS, tickerView } from './lib/market.js';
import { depthSeries, drawDepth } from './lib/depth.js';
import { CandleChart } from './lib/chart.js';
import { newClientId, normalizeInstrument, validateAmend, validateTicket } from './lib/ticket.js';
import { add, format, fromUnits, mid, scaleOf, sub, toNumber, ZERO } from './lib/decimal.js';

/** Book levels rendered per side (the subscription carries more for depth). */
const book_rows_max = 30;
/** Depth of the book subscription. */
const BOOK_DEPTH = 50;
/** Fills requested from history on login. */
const fills_history_max = 100;
/** Trades rendered on the tape. */
const tape_rows_max = 80;

const params = new URLSearchParams(location.search);
const wsUrl = params.get('ws') || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;

const client = new BourseClient({ url: wsUrl });

const state = {
  instruments: new Map(),
  sym: null,
  interval: params.get('interval') && INTERVALS.includes(params.get('interval')) ? params.get('interval') : '1m',
  book: null,
  bookKey: null,
  bookIssue: null,
  tape: new TradesTape(),
  candles: null,
  ticker: null,
  account: new AccountState(),
  keys: [],
  ticket: { side: 'buy', type: 'limit' },
  amending: null,
  tab: 'orders',
  depthPoints: 0,
  cksumFailures: 0,
};

const chart = new CandleChart($('candle-chart'));

// ---- rendering ------------------------------------------------------------

const dirty = new Set();
let frame = 0;
function mark(...parts) {
  for (const p of parts) dirty.add(p);
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  const parts = new Set(dirty);
  dirty.clear();
  if (parts.has('book')) {
    renderBook();
    renderDepth();
  }
  if (parts.has('trades')) renderTrades();
  if (parts.has('ticker') || parts.has('trades') || parts.has('book')) renderTicker();
  if (parts.has('instruments')) renderInstruments();
  if (parts.has('account')) renderAccount();
  if (parts.has('ticket') || parts.has('account') || parts.has('book')) renderTicketInfo();
  renderStats();
}

function inst() {
  return state.instruments.get(state.sym) ?? null;
}

function renderInstruments() {
  const sel = $('instrument-select');
  const syms = [...state.instruments.keys()].sort();
  const current = [...sel.options].map((o) => o.value).join(',');
  if (current !== syms.join(',')) {
    sel.innerHTML = syms.map((s) => `<option value="${esc(s)}">${esc(s)}</option>`).join('');
  }
  if (state.sym) sel.value = state.sym;
  const i = inst();
  const badge = $('instrument-state');
  badge.textContent = i?.state ?? '';
  badge.dataset.state = i?.state ?? '';
  $('ticket-sym').textContent = state.sym ?? '';
  $('ticket-price-unit').textContent = i ? `${i.quote} · tick ${i.tick}` : '';
  $('ticket-qty-unit').textContent = i ? `${i.base} · lot ${i.lot}${i.min_qty ? ` · min ${i.min_qty}` : ''}` : '';
  renderTicketButton();
}

/** Book rows that fit one side's box (18 px each), at most book_rows_max. */
function rowsThatFit(el) {
  const h = el.clientHeight;
  return h > 0 ? Math.max(1, Math.min(book_rows_max, Math.floor(h / 18))) : book_rows_max;
}

function levelRows(levels, side, own, maxCum, rows) {
  let html = '';
  let acc = ZERO;
  const n = Math.min(levels.length, rows);
  for (let i = 0; i < n; i++) {
    const [px, qty] = levels[i];
    acc = add(acc, qty);
    const cum = format(acc);
    const width = maxCum > 0 ? Math.min(100, (toNumber(cum) / maxCum) * 100) : 0;
    const ownQty = own.get(px);
    html +=
      `<div class="lvl" data-testid="book-row" data-side="${side}" data-px="${esc(px)}" data-qty="${esc(qty)}"` +
      `${ownQty ? ` data-own="true" data-own-qty="${esc(ownQty)}" title="own orders: ${esc(ownQty)}"` : ''}>` +
      `<i class="bar" style="width:${width.toFixed(1)}%"></i>` +
      `<span class="px">${esc(px)}</span><span class="qty">${esc(qty)}</span><span class="cum">${esc(cum)}</span>` +
      `${ownQty ? `<b class="own" data-testid="book-own">${esc(ownQty)}</b>` : ''}</div>`;
  }
  return html;
}

function cumAt(levels, n) {
  let acc = ZERO;
  for (let i = 0; i < levels.length && i < n; i++) acc = add(acc, levels[i][1]);
  return toNumber(acc);
}

function renderBook() {
  const book = state.book;
  const body = $('book');
  const status = $('book-status');
  const overlay = $('book-overlay');
  if (!book) {
    $('book-asks').innerHTML = '';
    $('book-bids').innerHTML = '';
    return;
  }
  const st = client.streams.get(state.bookKey);
  const streamState = st?.state ?? 'resyncing';
  let shown = streamState;
  if (!book.valid) shown = book.seq === null && !state.bookIssue ? 'resyncing' : 'invalid';
  status.dataset.state = shown;
  status.textContent =
    shown === 'live' ? `seq ${book.seq}` : shown === 'invalid' ? `resyncing: ${state.bookIssue ?? 'no snapshot'}` : shown;
  body.dataset.valid = String(book.valid && streamState === 'live');
  body.dataset.seq = String(book.seq ?? '');
  if (!book.valid) {
    overlay.hidden = false;
    overlay.textContent = state.bookIssue
      ? `Book resynchronising (${state.bookIssue}); not shown until a fresh snapshot arrives`
      : client.conn === 'live' || client.conn === 'resumed'
        ? 'Waiting for book snapshot'
        : 'Not connected';
  } else if (streamState !== 'live') {
    overlay.hidden = false;
    overlay.textContent = `Book ${streamState}: repairing the stream`;
  } else {
    overlay.hidden = true;
  }
  const own = state.account.ownLevels(state.sym);
  const n = Math.min(rowsThatFit($('book-asks')), rowsThatFit($('book-bids')));
  const maxCum = Math.max(cumAt(book.bids, n), cumAt(book.asks, n));
  $('book-asks').innerHTML = book.valid ? levelRows(book.asks, 'ask', own.asks, maxCum, n) : '';
  $('book-bids').innerHTML = book.valid ? levelRows(book.bids, 'bid', own.bids, maxCum, n) : '';
  const bb = book.bestBid();
  const ba = book.bestAsk();
  if (book.valid && bb && ba) {
    const i = inst();
    const m = mid(bb[0], ba[0]);
    // Mid is exact; drop the extra digit when it is zero.
    const ps = i?.price_scale;
    let midText = format(m);
    if (ps !== undefined && m.s > ps && m.u % 10n === 0n) midText = format(m, ps);
    $('book-mid').textContent = midText;
    $('book-spread').textContent = format(sub(ba[0], bb[0]));
  } else {
    $('book-mid').textContent = '—';
    $('book-spread').textContent = '—';
  }
}

function renderDepth() {
  const canvas = $('depth-chart');
  const book = state.book;
  const i = inst();
  const series = book && book.valid ? depthSeries(book.bids, book.asks) : { bids: [], asks: [] };
  state.depthPoints = drawDepth(canvas, series, { priceDigits: i?.price_scale ?? 2 });
  canvas.dataset.points = String(state.depthPoints);
}

function renderTrades() {
  const el = $('trades');
  let html = '';
  let n = 0;
  for (const t of state.tape.items) {
    if (n++ >= tape_rows_max) break;
    if (t.gap) {
      html += `<div class="trade gap" data-testid="trade-gap">trades ${esc(t.gap[0])}–${esc(t.gap[1])} missed; resynchronising</div>`;
      continue;
    }
    html +=
      `<div class="trade" data-testid="trade-row" data-taker="${esc(t.taker)}" data-id="${esc(t.id)}">` +
      `<span class="px">${esc(t.px)}</span><span>${esc(t.qty)}</span><span class="t">${esc(timeOf(t.ts))}</span></div>`;
  }
  el.innerHTML = html || '<div class="empty">no trades yet</div>';
  const st = client.streams.get(streamKey({ ch: 'trades', sym: state.sym }));
  const s = $('trades-status');
  s.dataset.state = st?.state ?? '';
  s.textContent = st && st.state !== 'live' ? st.state : '';
}

function renderTicker() {
  // Without a ticker stream (or before it speaks), the tape and the book
  // still give the last price and the best bid and ask.
  const t = { ...(state.ticker ?? {}) };
  if (t.last == null) t.last = state.tape.items.find((x) => !x.gap)?.px ?? null;
  const book = state.book?.valid ? state.book : null;
  if (t.bid == null && book) t.bid = book.bestBid()?.[0] ?? null;
  if (t.ask == null && book) t.ask = book.bestAsk()?.[0] ?? null;
  const v = tickerView(t);
  $('ticker-last').textContent = v.last ?? '—';
  $('ticker-last').className = v.dir === 'up' ? 'up' : v.dir === 'down' ? 'down' : '';
  const ch = $('ticker-change');
  ch.textContent = v.change !== null ? `${v.change}${v.changePct !== null ? ` (${v.changePct}%)` : ''}` : '—';
  ch.className = v.dir === 'up' ? 'up' : v.dir === 'down' ? 'down' : '';
  ch.dataset.dir = v.dir;
  $('ticker-high').textContent = v.high ?? '—';
  $('ticker-low').textContent = v.low ?? '—';
  $('ticker-volume').textContent = v.volume ?? '—';
  $('ticker-bid').textContent = v.bid ?? '—';
  $('ticker-ask').textContent = v.ask ?? '—';
  document.title = v.last ? `${v.last} ${state.sym ?? ''} · Bourse` : 'Bourse';
}

function renderAccount() {
  const acc = state.account;
  const loggedIn = Boolean(client.token);
  // Balances
  const bl = acc.balanceList();
  $('balances').innerHTML = bl.length
    ? bl
        .map(
          (b) =>
            `<tr data-testid="balance-row" data-asset="${esc(b.asset)}"><td>${esc(b.asset)}</td>` +
            `<td class="r" data-testid="balance-available">${esc(b.available)}</td>` +
            `<td class="r muted" data-testid="balance-held">${esc(b.held)}</td></tr>`,
        )
        .join('')
    : `<tr><td colspan="3" class="empty">${loggedIn ? 'no balances' : 'log in to see balances'}</td></tr>`;
  const ast = client.streams.get('account');
  const as = $('account-status');
  as.dataset.state = ast?.state ?? '';
  as.textContent = ast ? (ast.state === 'live' ? `seq ${ast.pos.seq ?? ''}` : ast.state) : '';

  // Open orders (all instruments)
  const orders = acc.openOrders();
  $('open-orders-count').textContent = String(orders.length);
  const rows = [];
  for (const o of orders) {
    rows.push(
      `<tr data-testid="open-order-row" data-order-id="${esc(o.order_id)}" data-cl-id="${esc(o.cl_id)}" data-sym="${esc(o.sym)}"` +
        ` data-side="${esc(o.side)}" data-px="${esc(o.px)}" data-qty="${esc(o.qty)}" data-status="${esc(o.status)}">` +
        `<td class="${o.side === 'buy' ? 'buy' : 'sell'}" title="${esc(o.sym)} ${esc(o.type)} ${esc(o.tif)}${o.post_only ? ' post-only' : ''} #${esc(o.order_id)}">` +
        `${esc(o.side)}${o.sym !== state.sym ? ` <small>${esc(o.sym)}</small>` : ''}</td>` +
        `<td class="r" data-testid="order-px">${esc(o.px ?? 'market')}</td>` +
        `<td class="r" data-testid="order-qty">${esc(o.qty)}</td>` +
        `<td class="r muted" data-testid="order-filled">${esc(o.cum_qty ?? '0')}</td>` +
        `<td class="acts"><button type="button" data-act="amend" data-testid="order-amend">Amend</button> ` +
        `<button type="button" data-act="cancel" data-testid="order-cancel">Cancel</button></td></tr>`,
    );
    if (state.amending === o.order_id) {
      rows.push(
        `<tr class="amend-row" data-testid="amend-row" data-order-id="${esc(o.order_id)}"><td colspan="5"><form class="amend-form" data-testid="amend-form">` +
          `qty <input data-testid="amend-qty" value="${esc(o.qty)}" inputmode="decimal">` +
          `px <input data-testid="amend-px" value="${esc(o.px ?? '')}" inputmode="decimal">` +
          `<button type="submit" data-testid="amend-submit">Save</button>` +
          `<button type="button" data-act="amend-close" data-testid="amend-close">×</button>` +
          `<span class="msg error" data-testid="amend-error" hidden></span></form></td></tr>`,
      );
    }
  }
  // Keep an open amend form's typed values across re-renders.
  const typed = state.amending !== null ? readAmendInputs() : null;
  $('open-orders').innerHTML = rows.length
    ? rows.join('')
    : `<tr><td colspan="5" class="empty">${loggedIn ? 'no open orders' : 'log in to trade'}</td></tr>`;
  if (state.amending !== null && !acc.orders.has(state.amending)) state.amending = null;
  if (typed) restoreAmendInputs(typed);

  $('fills').innerHTML = acc.fills.length
    ? acc.fills
        .slice(0, 200)
        .map(
          (f) =>
            `<tr data-testid="fill-row" data-trade-id="${esc(f.trade_id)}" data-order-id="${esc(f.order_id)}" data-side="${esc(f.side)}">` +
            `<td class="muted">${esc(timeOf(f.ts))}</td><td class="${f.side === 'buy' ? 'buy' : 'sell'}">${esc(f.side)}</td>` +
            `<td class="r">${esc(f.px)}</td><td class="r">${esc(f.qty)}</td>` +
            `<td class="r muted">${esc(f.fee)} ${esc(f.fee_asset ?? '')}</td><td class="muted">${esc(f.liq ?? '')}</td></tr>`,
        )
        .join('')
    : `<tr><td colspan="6" class="empty">${loggedIn ? 'no fills' : 'log in to see fills'}</td></tr>`;
}

function readAmendInputs() {
  const q = $('amend-qty');
  const p = $('amend-px');
  const e = $('amend-error');
  return q ? { qty: q.value, px: p.value, err: e.hidden ? null : e.textContent, focus: document.activeElement?.dataset?.testid } : null;
}

function restoreAmendInputs(t) {
  const q = $('amend-qty');
  if (!q) return;
  q.value = t.qty;
  $('amend-px').value = t.px;
  if (t.err) {
    $('amend-error').hidden = false;
    $('amend-error').textContent = t.err;
  }
  if (t.focus) $(t.focus)?.focus();
}

// ---- ticket -----------------------------------------------------------------

function ticketInput() {
  return {
    side: state.ticket.side,
    type: state.ticket.type,
    tif: $('ticket-tif').value,
    postOnly: $('ticket-post-only').checked,
    px: $('ticket-price').value,
    qty: $('ticket-qty').value,
  };
}

function ticketValidation() {
  const book = state.book;
  return validateTicket(ticketInput(), inst(), {
    balances: state.account.balances,
    asks: book?.valid ? book.asks : [],
    bids: book?.valid ? book.bids : [],
  });
}

function renderTicketButton() {
  const b = $('ticket-submit');
  const i = inst();
  b.className = `submit ${state.ticket.side}`;
  if (!client.token) {
    b.disabled = true;
    b.textContent = 'Log in to trade';
    return;
  }
  b.disabled = !i;
  b.textContent = `${state.ticket.side === 'buy' ? 'Buy' : 'Sell'} ${i?.base ?? ''}`;
}

function renderTicketInfo() {
  const v = ticketValidation();
  if (v.available) {
    $('ticket-available').textContent = `${v.available.amount} ${v.available.asset}`;
    $('ticket-held').textContent = `${v.available.held} ${v.available.asset}`;
  } else {
    $('ticket-available').textContent = '—';
    $('ticket-held').textContent = '—';
  }
  const cost = $('ticket-cost');
  if (v.cost) {
    cost.textContent = `${v.cost.estimate ? '≈ ' : ''}${v.cost.amount} ${v.cost.asset}`;
    cost.title = v.cost.fee ? `notional ${v.cost.notional} + max taker fee ${v.cost.fee}` : '';
  } else {
    cost.textContent = '—';
    cost.title = '';
  }
  cost.classList.toggle('warn', v.insufficient);
  if (v.insufficient) cost.title = `more than available ${v.available?.amount ?? ''}`;
  // Field errors only once something was typed.
  for (const [field, testid] of [
    ['px', 'ticket-price'],
    ['qty', 'ticket-qty'],
  ]) {
    const input = $(testid);
    const e = v.errors[field];
    const show = e && input.value.trim() !== '';
    $(`${testid}-error`).textContent = show ? `${e.code}: ${e.msg}` : '';
    input.closest('.field').classList.toggle('invalid', Boolean(show));
  }
  const market = state.ticket.type === 'market';
  $('ticket-price').disabled = market;
  $('ticket-price').closest('.field').classList.toggle('disabled', market);
  renderTicketButton();
}

function showTicketError(e) {
  const el = $('ticket-error');
  el.hidden = !e;
  el.dataset.code = e?.code ?? '';
  el.textContent = e ? errorText(e) : '';
}

function showTicketResult(text, status) {
  const el = $('ticket-result');
  el.hidden = !text;
  el.textContent = text ?? '';
  el.dataset.status = status ?? '';
}

async function submitTicket(ev) {
  ev.preventDefault();
  showTicketError(null);
  showTicketResult(null);
  const v = ticketValidation();
  if (!v.ok) {
    const e = v.errors.form ?? v.errors.px ?? v.errors.qty;
    showTicketError({ code: e.code, message: e.msg });
    renderTicketInfo();
    return;
  }
  const args = { cl_id: newClientId(), ...v.args };
  const btn = $('ticket-submit');
  btn.disabled = true;
  showTicketResult(`sending ${args.side} ${args.qty} @ ${args.px ?? 'market'}…`, 'sending');
  try {
    // cl_id makes a repeat after a dropped connection return the original order.
    const res = await client.request('order.place', args, { retryOnReconnect: true });
    const extra = [res.reason ? `reason ${res.reason}` : '', res.dup ? 'duplicate' : '', `filled ${res.cum_qty ?? '0'}`]
      .filter(Boolean)
      .join(', ');
    showTicketResult(`${res.status} #${res.order_id} (${extra})`, res.status);
  } catch (e) {
    showTicketResult(null);
    showTicketError(e);
  } finally {
    renderTicketButton();
  }
}

// ---- orders -------------------------------------------------------------------

function showOrdersError(e) {
  const el = $('orders-error');
  el.hidden = !e;
  el.dataset.code = e?.code ?? '';
  el.textContent = e ? errorText(e) : '';
}

async function cancelOrder(order) {
  showOrdersError(null);
  try {
    await client.request('order.cancel', { sym: order.sym, order_id: order.order_id });
  } catch (e) {
    showOrdersError(e);
  }
}

async function submitAmend(order) {
  const t = readAmendInputs();
  const i = state.instruments.get(order.sym);
  const v = validateAmend(order, { qty: t.qty, px: t.px }, i);
  const errEl = $('amend-error');
  if (!v.ok) {
    const e = v.errors.form ?? v.errors.qty ?? v.errors.px;
    errEl.hidden = false;
    errEl.dataset.code = e.code;
    errEl.textContent = `${e.code}: ${e.msg}`;
    return;
  }
  errEl.hidden = true;
  try {
    await client.request('order.amend', v.args);
    state.amending = null;
    mark('account');
  } catch (e) {
    const el = $('amend-error');
    if (el) {
      el.hidden = false;
      el.dataset.code = e.code;
      el.textContent = errorText(e);
    } else {
      showOrdersError(e);
    }
  }
}

// ---- subscriptions --------------------------------------------------------------

function onStatus(msg) {
  const d = msg.data ?? {};
  if (msg.type === 'snapshot') {
    for (const i of d.instruments ?? []) mergeInstrument(i);
  } else if (d.instrument) {
    mergeInstrument(d.instrument);
  }
  afterInstruments();
}

function mergeInstrument(i) {
  if (!i?.sym) return;
  const prev = state.instruments.get(i.sym) ?? {};
  state.instruments.set(i.sym, normalizeInstrument({ ...prev, ...i }));
}

function afterInstruments() {
  if (!state.sym && state.instruments.size) {
    const want = params.get('sym') || decodeURIComponent(location.hash.slice(1));
    selectInstrument(state.instruments.has(want) ? want : [...state.instruments.keys()].sort()[0]);
  }
  mark('instruments', 'ticket');
}

async function loadInstruments() {
  try {
    const res = await client.request('instruments', {}, { retryOnReconnect: true });
    for (const i of res.instruments ?? []) mergeInstrument(i);
    afterInstruments();
  } catch (e) {
    showNotice(`instruments: ${errorText(e)}`);
  }
}

function selectInstrument(sym) {
  if (!sym || sym === state.sym) return;
  for (const k of state.keys) client.unsubscribe(k);
  state.keys = [];
  state.sym = sym;
  if (location.hash.slice(1) !== sym) history.replaceState(null, '', `#${encodeURIComponent(sym)}`);
  state.book = new L2Book({ sym, depth: BOOK_DEPTH });
  state.bookIssue = null;
  state.tape = new TradesTape();
  state.ticker = null;
  const bookSpec = { ch: 'book.l2', sym, depth: BOOK_DEPTH, cksum: true };
  state.bookKey = client.subscribe(bookSpec, onBook, { onState: () => mark('book') });
  state.keys.push(state.bookKey);
  state.keys.push(
    client.subscribe({ ch: 'trades', sym }, onTrades, {
      onState: () => mark('trades'),
      onGap: (msg) => {
        state.tape.markGap(msg.lost);
        mark('trades');
      },
    }),
  );
  state.keys.push(client.subscribe({ ch: 'ticker', sym }, onTicker));
  subscribeCandles();
  const i = inst();
  chart.ready.then(() => i && chart.setPrecision(i.price_scale, i.tick));
  $('ticket-price').value = '';
  showTicketError(null);
  showTicketResult(null);
  mark('book', 'trades', 'ticker', 'instruments', 'ticket', 'account');
}

function subscribeCandles() {
  const sym = state.sym;
  const old = state.keys.find((k) => k.startsWith('candles:'));
  if (old) {
    client.unsubscribe(old);
    state.keys = state.keys.filter((k) => k !== old);
  }
  state.candles = new CandleSeries(state.interval);
  const series = state.candles;
  chart.ready.then(() => series === state.candles && chart.setAll([]));
  const key = client.subscribe({ ch: 'candles', sym, interval: state.interval }, (msg) => onCandles(msg, series), {
    onState: (s, st) => {
      const el = $('candles-status');
      el.dataset.state = s;
      el.textContent = s === 'live' ? '' : s;
      if (s === 'error') chart.ready.then(() => chart.message(`candles unavailable: ${errorText(st.error)}`));
    },
  });
  state.keys.push(key);
  for (const b of document.querySelectorAll('[data-interval]')) {
    b.setAttribute('aria-pressed', String(b.dataset.interval === state.interval));
  }
}

function onBook(msg, st) {
  const book = state.book;
  if (!book || st.key !== state.bookKey) return;
  const r = book.handle(msg);
  if (r === CKSUM_MISMATCH) {
    state.cksumFailures += 1;
    state.bookIssue = `checksum mismatch at seq ${msg.seq}`;
    client.resync(st.key, { fresh: true });
  } else if (r === GAPPED) {
    state.bookIssue = book.valid ? null : 'gap';
    client.resync(st.key, { fresh: !book.valid });
  } else if (msg.type === 'snapshot' && book.valid) {
    state.bookIssue = null;
  }
  traceBook();
  mark('book');
}

/** Book states kept while a test compares the page's book with a fresh snapshot. */
const book_trace_max = 5000;
let bookTrace = null;

function traceBook() {
  const b = state.book;
  if (!bookTrace || !b?.valid) return;
  bookTrace.push({ epoch: b.epoch, seq: b.seq, bids: b.bids.map((l) => [...l]), asks: b.asks.map((l) => [...l]) });
  if (bookTrace.length > book_trace_max) bookTrace.shift();
}

function onTrades(msg) {
  state.tape.apply(msg);
  mark('trades');
}

function onTicker(msg) {
  state.ticker = msg.data ?? null;
  mark('ticker');
}

function onCandles(msg, series) {
  if (series !== state.candles) return;
  const touched = series.apply(msg);
  chart.ready.then(() => {
    if (series !== state.candles) return;
    if (msg.type === 'snapshot' || !chart.update(touched, series.size)) chart.setAll(series.sorted());
  });
  mark(); // the status line names the candle stream and its seq
}

function onAccount(msg) {
  state.account.applyEvent(msg);
  // Every snapshot (the first one, or a resume the server could not replay)
  // may follow fills this page has not seen: merge the history again.
  if (msg.type === 'snapshot') loadFills();
  mark('account', 'book', 'ticket');
}

function loadFills() {
  client
    .request('account.fills', { limit: fills_history_max }, { retryOnReconnect: true })
    .then((res) => {
      state.account.mergeFills(res.fills ?? []);
      mark('account');
    })
    .catch((e) => showNotice(`fills history: ${errorText(e)}`));
}

// ---- session ----------------------------------------------------------------------

function showLoginError(e) {
  const el = $('login-error');
  el.hidden = !e;
  el.dataset.code = e?.code ?? '';
  el.textContent = e ? `login: ${errorText(e)}` : '';
}

let noticeTimer = 0;
function showNotice(text, ms = 8000) {
  const el = $('notice');
  el.hidden = !text;
  el.textContent = text ?? '';
  clearTimeout(noticeTimer);
  if (text && ms) noticeTimer = setTimeout(() => (el.hidden = true), ms);
}

function renderSession() {
  const loggedIn = Boolean(client.token);
  $('login-form').hidden = loggedIn;
  $('session-box').hidden = !loggedIn;
  if (!loggedIn) showPasswordForm(false);
  $('logged-in-user').textContent = loggedIn ? `${client.user}${client.role ? ` (${client.role})` : ''}` : '';
  renderTicketButton();
}

async function login(ev) {
  ev.preventDefault();
  showLoginError(null);
  const form = $('login-form');
  const user = form.elements.user.value.trim();
  const password = form.elements.password.value;
  $('login-submit').disabled = true;
  try {
    await client.login(user, password);
    form.elements.password.value = '';
    startAccount();
  } catch (e) {
    showLoginError(e);
  } finally {
    $('login-submit').disabled = false;
  }
}

function startAccount() {
  state.account.clear();
  client.subscribe({ ch: 'account' }, onAccount, { onState: () => mark('account') });
  mark('account', 'ticket', 'book');
}

function showPasswordForm(open) {
  const form = $('password-form');
  form.hidden = !open;
  $('password-open').setAttribute('aria-expanded', String(open));
  if (!open) form.reset();
  else form.elements.password.focus();
}

/**
 * Changes the logged-in user's password. The exchange then ends every
 * login of the user, this page's too (its `logged_out` notice), and the
 * page asks for a login with the new password.
 */
async function changePassword(ev) {
  ev.preventDefault();
  const form = $('password-form');
  $('password-submit').disabled = true;
  try {
    // The login form says what happened next (the exchange's `logged_out`).
    await client.changePassword(form.elements.password.value, form.elements.new_password.value);
    showPasswordForm(false);
  } catch (e) {
    showNotice(`password: ${errorText(e)}`);
  } finally {
    $('password-submit').disabled = false;
  }
}

async function logout() {
  try {
    await client.logout();
  } catch (e) {
    showNotice(`logout: ${errorText(e)}`);
  }
  state.account.clear();
  state.amending = null;
  mark('account', 'ticket', 'book');
}

const CONN_LABEL = {
  connecting: 'connecting',
  restoring: 'restoring',
  live: 'live',
  reconnecting: 'reconnecting',
  resumed: 'resumed',
  closed: 'offline',
};

client.on('conn', (s, info) => {
  const el = $('conn-status');
  el.dataset.state = s;
  let label = CONN_LABEL[s] ?? s;
  if (s === 'reconnecting' && info.inMs !== undefined) label += ` (try ${info.attempt}, ${(info.inMs / 1000).toFixed(1)} s)`;
  $('conn-label').textContent = label;
  el.title = s === 'resumed' ? 'live again: the session and every stream were resumed' : label;
  mark('book', 'trades', 'account');
});

client.on('auth', (ev) => {
  if (ev.state === 'lost') {
    state.account.clear();
    showLoginError(ev.error);
    mark('account', 'book', 'ticket');
  }
  renderSession();
});

client.on('notice', (msg) => {
  if (msg.code === 'shutdown') showNotice(`server restarting in ${msg.in_ms ?? '?'} ms; will reconnect`, 0);
  // The login form says why (the 'auth' event).
  else if (msg.code !== 'logged_out') showNotice(`notice: ${msg.code}`);
});

client.on('stream-error', (key, e) => showNotice(`${key}: ${errorText(e)}`));
client.on('closed', () => showNotice(null));

function renderStats() {
  const parts = [];
  for (const st of client.streams.values()) {
    if (st.pos.seq !== null && (st.chained || st.spec.ch === 'ticker')) parts.push(`${st.key}@${st.pos.epoch}/${st.pos.seq}`);
  }
  const s = client.stats;
  parts.push(`resyncs ${s.resyncs} · gaps ${s.gaps} · tail ${s.tailLosses} · resumes ${s.resumes}`);
  $('stats').textContent = parts.join('  ');
}

// ---- DOM events ---------------------------------------------------------------------

function wire() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('password-open').addEventListener('click', () => showPasswordForm($('password-form').hidden));
  $('password-cancel').addEventListener('click', () => showPasswordForm(false));
  $('password-form').addEventListener('submit', changePassword);
  $('instrument-select').addEventListener('change', (e) => selectInstrument(e.target.value));
  for (const b of document.querySelectorAll('[data-interval]')) {
    b.addEventListener('click', () => {
      if (b.dataset.interval === state.interval) return;
      state.interval = b.dataset.interval;
      if (state.sym) subscribeCandles();
    });
  }
  $('book').addEventListener('click', (e) => {
    const row = e.target.closest('[data-testid="book-row"]');
    if (!row) return;
    $('ticket-price').value = row.dataset.px;
    if (state.ticket.type !== 'limit') setType('limit');
    mark('ticket');
  });
  for (const b of document.querySelectorAll('[data-side]')) {
    if (b.tagName !== 'BUTTON') continue;
    b.addEventListener('click', () => {
      state.ticket.side = b.dataset.side;
      for (const x of document.querySelectorAll('.side-seg button')) x.classList.toggle('active', x === b);
      mark('ticket');
    });
  }
  for (const b of document.querySelectorAll('[data-type]')) {
    b.addEventListener('click', () => setType(b.dataset.type));
  }
  for (const id of ['ticket-price', 'ticket-qty', 'ticket-tif', 'ticket-post-only']) {
    $(id).addEventListener('input', () => {
      showTicketError(null);
      mark('ticket');
    });
  }
  $('ticket-form').addEventListener('submit', submitTicket);
  $('open-orders').addEventListener('click', (e) => {
    const btn = e.target.closest('button[data-act]');
    if (!btn) return;
    const act = btn.dataset.act;
    if (act === 'amend-close') {
      state.amending = null;
      mark('account');
      return;
    }
    const row = btn.closest('[data-testid="open-order-row"]');
    const order = row && state.account.orders.get(Number(row.dataset.orderId));
    if (!order) return;
    if (act === 'cancel') cancelOrder(order);
    if (act === 'amend') {
      state.amending = state.amending === order.order_id ? null : order.order_id;
      mark('account');
    }
  });
  $('open-orders').addEventListener('submit', (e) => {
    e.preventDefault();
    const order = state.account.orders.get(state.amending);
    if (order) submitAmend(order);
  });
  for (const t of document.querySelectorAll('[data-tab]')) {
    t.addEventListener('click', () => {
      state.tab = t.dataset.tab;
      for (const x of document.querySelectorAll('[data-tab]')) x.classList.toggle('active', x === t);
      for (const b of document.querySelectorAll('[data-tabbody]')) b.hidden = b.dataset.tabbody !== state.tab;
    });
  }
  new ResizeObserver(() => renderDepth()).observe($('depth-chart'));
  new ResizeObserver(() => mark('book')).observe($('book'));
  window.addEventListener('hashchange', () => {
    const sym = decodeURIComponent(location.hash.slice(1));
    if (state.instruments.has(sym)) selectInstrument(sym);
  });
}

function setType(type) {
  state.ticket.type = type;
  for (const x of document.querySelectorAll('.type-seg button')) x.classList.toggle('active', x.dataset.type === type);
  const tif = $('ticket-tif');
  if (type === 'market') {
    if (tif.value === 'gtc') tif.value = 'ioc';
    $('ticket-post-only').checked = false;
  } else if (tif.value === 'ioc') {
    tif.value = 'gtc';
  }
  tif.querySelector('option[value="gtc"]').disabled = type === 'market';
  $('ticket-post-only').disabled = type === 'market';
  mark('ticket');
}

// ---- test hooks -------------------------------------------------------------------------

/** Opens a separate connection and returns a fresh book.l2 snapshot. */
function freshBook(sym = state.sym, depth = BOOK_DEPTH, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, ['bourse.v1.json']);
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error('no snapshot'));
    }, timeoutMs);
    ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', id: 1, args: { ch: 'book.l2', sym: [sym], depth, cksum: true } }));
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.id === 1 && m.ok === false) {
        clearTimeout(timer);
        ws.close();
        reject(new Error(errorText(m.err)));
      }
      if (m.ch === 'book.l2' && m.type === 'snapshot') {
        clearTimeout(timer);
        ws.close();
        resolve({ sym, epoch: m.epoch, seq: m.seq, bids: m.bids, asks: m.asks, cksum: m.cksum });
      }
    };
    ws.onerror = () => {
      clearTimeout(timer);
      reject(new Error('websocket error'));
    };
  });
}

window.__bourse = {
  client,
  state,
  dropConnection: () => client.dropConnection(),
  conn: () => client.conn,
  book: () => {
    const b = state.book;
    const st = client.streams.get(state.bookKey);
    return b
      ? {
          sym: b.sym,
          depth: b.depth,
          epoch: b.epoch,
          seq: b.seq,
          valid: b.valid,
          state: st?.state ?? null,
          bids: b.bids.map((l) => [...l]),
          asks: b.asks.map((l) => [...l]),
          cksum: b.checksum(),
        }
      : null;
  },
  freshBook,
  /**
   * Takes a fresh snapshot on a separate connection and compares it with
   * the page's own book at the same version (the last state the page
   * applied at or before the snapshot's seq).
   */
  compareWithFresh: async (timeoutMs = 10000) => {
    const sym = state.sym;
    bookTrace = [];
    traceBook();
    try {
      const fresh = await freshBook(sym, BOOK_DEPTH, timeoutMs);
      const deadline = Date.now() + timeoutMs;
      while (!(state.book?.valid && state.book.epoch === fresh.epoch && state.book.seq >= fresh.seq)) {
        if (Date.now() > deadline) return { ok: false, reason: `the page never reached seq ${fresh.seq}`, pageSeq: state.book?.seq };
        await new Promise((r) => setTimeout(r, 25));
      }
      const at = [...bookTrace].reverse().find((e) => e.epoch === fresh.epoch && e.seq <= fresh.seq);
      if (!at) return { ok: false, reason: `no page state at or before seq ${fresh.seq}`, first: bookTrace[0]?.seq };
      const ok = JSON.stringify(at.bids) === JSON.stringify(fresh.bids) && JSON.stringify(at.asks) === JSON.stringify(fresh.asks);
      return ok ? { ok, seq: fresh.seq, pageSeq: at.seq, levels: at.bids.length + at.asks.length } : { ok, seq: fresh.seq, pageSeq: at.seq, page: at, fresh };
    } finally {
      bookTrace = null;
    }
  },
  chartStats: () => ({ candles: state.candles?.size ?? 0, bars: chart.bars, chartLoaded: Boolean(chart.chart), depthPoints: state.depthPoints }),
  instrument: () => inst(),
  account: () => ({
    user: client.user,
    balances: state.account.balanceList(),
    orders: state.account.openOrders(),
    fills: state.account.fills.slice(0, 50),
  }),
  stats: () => ({ ...client.stats, cksumFailures: state.cksumFailures }),
  /**
   * Test hook: puts a level the exchange does not have into the page's book,
   * so the next checksum must fail. Its price is half a price unit below the
   * best bid, off the tick grid, so no update from the exchange can set
   * that level and make the book right again by chance (a new quote one
   * unit below the best bid did, now and then).
   */
  corruptBook: () => {
    const b = state.book;
    const best = b?.bestBid();
    if (!b || !b.valid || !best) return null;
    const px = format(sub(best[0], fromUnits(5n, scaleOf(best[0]) + 1)));
    const level = [px, inst()?.lot ?? '1'];
    b.b.set(level[0], level[1]);
    mark('book');
    return level;
  },
};

wire();
setType('limit');
renderSession();
mark('book', 'trades', 'ticker', 'account', 'ticket');
client.start();
client.subscribe({ ch: 'status' }, onStatus);
loadInstruments();
