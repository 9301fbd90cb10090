// End-to-end check of the trading page against a running exchange.
//
// Drives two traders' browsers (Debian chromium through playwright-core,
// each with a fresh profile) through the page as a person would: log in,
// place, amend and cancel a limit order, cross it from the other trader and
// see the fill and exact new balances on both sides, see a rejected order's
// error code, drop the WebSocket and see the page resume with the book equal
// to a fresh snapshot, see both charts drawn, and change a password (the
// page logs out, the new one logs in). Screenshots of each state
// go to target/web-e2e/ at the repository root.
//
// Environment: BOURSE_URL (default http://127.0.0.1:8080), BOURSE_E2E_USER1/
// PASS1 and USER2/PASS2 (default alice/alice-demo, bob/bob-demo),
// BOURSE_E2E_SYM (default: the page's first instrument), BOURSE_E2E_PX (a
// price to use when the book and ticker are both empty), CHROMIUM (default
// /usr/bin/chromium). Prints "N passed, N failed" and exits non-zero on any
// failure.

import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as D from '../lib/decimal.js';

const BASE = (process.env.BOURSE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const TRADERS = [
  { user: process.env.BOURSE_E2E_USER1 || 'alice', pass: process.env.BOURSE_E2E_PASS1 || 'alice-demo' },
  { user: process.env.BOURSE_E2E_USER2 || 'bob', pass: process.env.BOURSE_E2E_PASS2 || 'bob-demo' },
];
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
/** Crossing sells sent at most, each waited for this long, to fill the resting buy. */
const CROSS_ATTEMPTS_MAX = 4;
const CROSS_WAIT_MS = 5000;
const OUT = resolve(dirname(fileURLToPath(import.meta.url)), '../../target/web-e2e');
/** Longest wait for any one condition on the page. */
const wait_ms_max = 15000;
const ARGS = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const results = [];
const profiles = [];
const contexts = [];
let shotNo = 0;

function log(...a) {
  console.log(...a);
}

class Check extends Error {}
function check(cond, msg) {
  if (!cond) throw new Check(msg);
}

async function open(trader) {
  const dir = mkdtempSync(join(tmpdir(), 'bourse-e2e-'));
  profiles.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: EXECUTABLE,
    headless: true,
    args: ARGS,
    viewport: { width: 1440, height: 900 },
  });
  contexts.push(ctx);
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.setDefaultTimeout(wait_ms_max);
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  const sym = process.env.BOURSE_E2E_SYM;
  await page.goto(`${BASE}/${sym ? `#${encodeURIComponent(sym)}` : ''}`);
  return { ...trader, page, errors };
}

/** Retries `fn` until it stops throwing a Check, up to wait_ms_max. */
async function eventually(fn) {
  const end = Date.now() + wait_ms_max;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof Check) || Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const tid = (page, id) => page.locator(`[data-testid="${id}"]`);

async function shot(t, name) {
  shotNo += 1;
  const file = join(OUT, `${String(shotNo).padStart(2, '0')}-${name}${t ? `-${t.user}` : ''}.png`);
  await t.page.screenshot({ path: file });
  return file;
}

async function until(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: wait_ms_max, polling: 100 });
  } catch {
    throw new Check(`timed out waiting for ${what}`);
  }
}

const live = (t) => until(t.page, () => ['live', 'resumed'].includes(window.__bourse?.conn()), null, 'a live connection');
const bookLive = (t) =>
  until(
    t.page,
    () => {
      const b = window.__bourse?.book();
      return b && b.valid && b.state === 'live';
    },
    null,
    'a live, valid book',
  );

const book = (t) => t.page.evaluate(() => window.__bourse.book());
const account = (t) => t.page.evaluate(() => window.__bourse.account());
const instrument = (t) => t.page.evaluate(() => window.__bourse.instrument());

function total(acc, asset) {
  const b = acc.balances.find((x) => x.asset === asset);
  return b ? D.add(b.available, b.held) : D.ZERO;
}

/** Waits until `asset`'s balance differs from the one in `before`. */
async function balanceMoved(t, asset, before) {
  const b0 = before.balances.find((x) => x.asset === asset) ?? null;
  await until(
    t.page,
    ([a, was]) => {
      const b = window.__bourse.account().balances.find((x) => x.asset === a);
      return b && (!was || b.available !== was.available || b.held !== was.held);
    },
    [asset, b0],
    `${t.user}'s ${asset} balance to change`,
  );
}

async function ticket(t, { side, px, qty, postOnly = false, tif = 'gtc' }) {
  const p = t.page;
  await tid(p, `ticket-side-${side}`).click();
  await tid(p, 'ticket-type-limit').click();
  await tid(p, 'ticket-price').fill(px);
  await tid(p, 'ticket-qty').fill(qty);
  const po = tid(p, 'ticket-post-only');
  if ((await po.isChecked()) !== postOnly) await po.click();
  await tid(p, 'ticket-tif').selectOption(tif);
  await tid(p, 'ticket-submit').click();
  // Either an answer or an error shows.
  await until(
    p,
    () => {
      const r = document.querySelector('[data-testid="ticket-result"]');
      const e = document.querySelector('[data-testid="ticket-error"]');
      return (!e.hidden && e.textContent) || (!r.hidden && r.dataset.status && r.dataset.status !== 'sending');
    },
    null,
    'the order answer',
  );
  const err = tid(p, 'ticket-error');
  if (await err.isVisible()) return { error: await err.getAttribute('data-code'), text: await err.textContent() };
  const res = tid(p, 'ticket-result');
  const text = await res.textContent();
  return { status: await res.getAttribute('data-status'), order_id: Number(/#(\d+)/.exec(text)?.[1]), text };
}

const orderRow = (t, id) => t.page.locator(`[data-testid="open-order-row"][data-order-id="${id}"]`);
const bookRow = (t, side, px) => t.page.locator(`[data-testid="book-row"][data-side="${side}"][data-px="${px}"]`);

/**
 * A buy price that rests out of reach of a demo market maker's flow while
 * the checks run, yet shows in the page's ladder (`rows` bid rows are
 * drawn): 2% below the best bid on a thin book, just above the last drawn
 * row on a deep one. Inside the ±10% band either way.
 */
function passivePrice(b, inst, last, rows) {
  const tick = D.parse(inst.tick);
  if (rows >= 2 && b.bids.length >= rows) return D.format(D.sub(b.bids[rows - 2][0], tick), inst.price_scale);
  const ref = b.bids[0]?.[0] ?? b.asks[0]?.[0] ?? last ?? process.env.BOURSE_E2E_PX;
  if (!ref) throw new Check('empty book and no last price: set BOURSE_E2E_PX');
  const off = D.max(tick, D.mul(D.div(D.div(ref, '50', inst.price_scale, 'down'), tick, 0, 'down'), tick));
  const px = D.sub(ref, off);
  if (D.sign(px) <= 0) throw new Check(`no positive passive price (${D.format(px)})`);
  return D.format(px, inst.price_scale);
}

/**
 * The first trader's resting buy, placed at a passive price when it is not
 * among the open orders: the first time (no order yet), or when the demo
 * market's own trades filled it meanwhile (its quotes move every interval,
 * and its flow account sends market orders).
 */
async function stillResting() {
  for (let i = 0; i < 3 && (await orderRow(state.a, state.order).count()) === 0; i++) {
    const rows = await state.a.page.locator('[data-testid="book-row"][data-side="bid"]').count();
    const tk = await tid(state.a.page, 'ticker-last').textContent();
    state.px = passivePrice(await book(state.a), state.inst, /^\d/.test(tk) ? tk : null, rows);
    const r = await ticket(state.a, { side: 'buy', px: state.px, qty: state.qty });
    check(r.status === 'new', `resting buy accepted as new, got ${r.status ?? r.error}`);
    state.order = r.order_id;
    await openOrFilled(state.a, state.order);
  }
}

/**
 * Waits until order `id` shows on `t`'s page, among the open orders or,
 * when the demo market's trades filled it first, among the fills.
 */
async function openOrFilled(t, id) {
  await until(
    t.page,
    (id) => !!document.querySelector(`[data-testid="open-order-row"][data-order-id="${id}"], [data-testid="fill-row"][data-order-id="${id}"]`),
    id,
    `order ${id}, open or filled`,
  );
}

/**
 * Cancels `t`'s order `id` from its row in the open orders. The demo
 * market's sells can fill the order first, even below the best bid: then
 * it shows among the fills, there is nothing to cancel, and that is not a
 * failure.
 */
async function cancelIfOpen(t, id) {
  await openOrFilled(t, id);
  const row = orderRow(t, id);
  const filled = t.page.locator(`[data-testid="fill-row"][data-order-id="${id}"]`);
  try {
    if ((await row.count()) !== 0) {
      await row.locator('[data-testid="order-cancel"]').click({ timeout: 5000 });
      await row.waitFor({ state: 'detached' });
      return;
    }
  } catch (e) {
    if ((await row.count()) !== 0 || (await filled.count()) === 0) throw e;
  }
  check((await filled.count()) !== 0, `order ${id} is neither open nor filled`);
  log(`    order ${id} was filled by the demo market before its cancel`);
}

/**
 * Runs `step` on the first trader's resting buy. If the demo market's
 * trades fill that order while the step runs (its row leaves the open
 * orders before the step is done), the step did not happen as written: the
 * buy is placed again and the step run again, three times at most. A step
 * that fails with the order still open fails at once.
 */
async function onResting(step) {
  for (let attempt = 1; ; attempt++) {
    await stillResting();
    const order = state.order;
    try {
      await step();
      return;
    } catch (e) {
      if (attempt >= 3 || (await orderRow(state.a, order).count()) !== 0) throw e;
      log(`    order ${order} left the open orders during the step (${e.message}); trying again`);
    }
  }
}

/** Places a resting buy for the first trader and crosses it from the second. */
async function crossOnce() {
  const inst = state.inst;
  const base = inst.base;
  const quote = inst.quote;
  const rows = await state.a.page.locator('[data-testid="book-row"][data-side="bid"]').count();
  const tk = await tid(state.a.page, 'ticker-last').textContent();
  state.px = passivePrice(await book(state.a), inst, /^\d/.test(tk) ? tk : null, rows);
  const accA0 = await account(state.a);
  const accB0 = await account(state.b);
  const r = await ticket(state.a, { side: 'buy', px: state.px, qty: state.qty });
  check(r.status === 'new', `resting buy accepted as new, got ${r.status ?? r.error}`);
  state.order = r.order_id;
  await bookRow(state.b, 'bid', state.px).waitFor();
  // Sell, immediate-or-cancel, what is bid at or above the price and as much
  // again for bids that arrive meanwhile (more at each attempt), so this
  // order fills even behind others at its price: an IOC sell limited to the
  // price takes nothing below it, so the excess only goes unfilled. The demo
  // market may still bid more above it between the book read and the sell
  // (it does when the market is rising); then the buy is still open and
  // another sell follows (the checks below count every fill of the seller).
  const lot = D.parse(inst.lot);
  let crossed = false;
  for (let attempt = 1; attempt <= CROSS_ATTEMPTS_MAX && !crossed; attempt++) {
    const bb = await book(state.b);
    let bid = D.ZERO;
    for (const [px, q] of bb.bids) if (D.cmp(px, state.px) >= 0) bid = D.add(bid, q);
    const sellQty = D.add(bid, D.max(D.mulInt(lot, attempt), D.mulInt(bid, attempt)));
    const sell = await ticket(state.b, { side: 'sell', px: state.px, qty: D.format(sellQty, inst.qty_scale), tif: 'ioc' });
    check(!sell.error, `crossing sell accepted (${sell.text})`);
    // The buyer's order leaves open orders and shows in its fills.
    crossed = await orderRow(state.a, state.order)
      .waitFor({ state: 'detached', timeout: CROSS_WAIT_MS })
      .then(() => true, () => false);
  }
  check(crossed, `the resting buy #${state.order} filled after ${CROSS_ATTEMPTS_MAX} crossing sells`);
  await until(state.a.page, (id) => !!document.querySelector(`[data-testid="fill-row"][data-order-id="${id}"]`), state.order, "the buyer's fill row");
  const fillsA = (await eventually(async () => {
    const acc = await account(state.a);
    const f = acc.fills.filter((x) => x.order_id === state.order);
    let q = D.ZERO;
    for (const x of f) q = D.add(q, x.qty);
    check(D.eq(q, state.qty), `buyer's fills add up to ${state.qty} (${D.format(q)})`);
    return f;
  }));
  await eventually(async () => {
    const acc = await account(state.b);
    const mine = acc.fills.filter((f) => fillsA.some((a) => a.trade_id === f.trade_id));
    check(mine.length > 0, `not crossed: the seller's fills hold none of the trades of order #${state.order}`);
  });
  // Exact money on both sides, from the fills each trader sees.
  await eventually(async () => {
    const accA1 = await account(state.a);
    check(D.eq(total(accA1, base), D.add(total(accA0, base), state.qty)), `buyer ${base} rose by exactly ${state.qty}`);
    let spentA = D.ZERO;
    for (const f of fillsA) spentA = D.add(spentA, D.add(D.mul(f.px, f.qty), f.fee));
    const quoteDropA = D.sub(total(accA0, quote), total(accA1, quote));
    check(D.eq(quoteDropA, spentA), `buyer ${quote} fell by ${D.format(quoteDropA)}, fills say ${D.format(spentA)}`);
    const notional = D.mul(state.px, state.qty);
    const makerFee = D.feeUp(notional, inst.maker_fee_bps ?? 0, D.scaleOf(accA1.balances.find((x) => x.asset === quote).available));
    check(D.eq(spentA, D.add(notional, makerFee)), `buyer paid notional + maker fee (${D.format(spentA)})`);
  });
  await eventually(async () => {
    const accB1 = await account(state.b);
    const newFillsB = accB1.fills.filter((f) => !accB0.fills.some((g) => g.trade_id === f.trade_id && g.order_id === f.order_id));
    let soldB = D.ZERO;
    let gotB = D.ZERO;
    for (const f of newFillsB) {
      soldB = D.add(soldB, f.qty);
      gotB = D.add(gotB, D.sub(D.mul(f.px, f.qty), f.fee));
    }
    check(D.eq(D.sub(total(accB0, base), total(accB1, base)), soldB), `seller ${base} fell by what the fills sold (${D.format(soldB)})`);
    check(D.eq(D.sub(total(accB1, quote), total(accB0, quote)), gotB), `seller ${quote} rose by proceeds net of fees (${D.format(gotB)})`);
  });
  const tape = await state.a.page.locator('[data-testid="trade-row"]').evaluateAll((rows) => rows.map((r) => [r.dataset.taker, r.querySelector('.px').textContent]));
  check(tape.some(([taker, px]) => taker === 'sell' && px === state.px), `the tape shows a sell-taker trade at ${state.px}`);
  await tid(state.a.page, 'tab-fills').click();
  await tid(state.b.page, 'tab-fills').click();
  await shot(state.a, 'filled');
  await shot(state.b, 'filled');
  await tid(state.a.page, 'tab-orders').click();
  await tid(state.b.page, 'tab-orders').click();
}

// ---- scenario ----------------------------------------------------------------

const state = {};

const steps = [
  [
    'page loads, connects and shows a live book',
    async () => {
      state.a = await open(TRADERS[0]);
      state.b = await open(TRADERS[1]);
      for (const t of [state.a, state.b]) {
        await live(t);
        await until(t.page, () => document.querySelectorAll('[data-testid="instrument-select"] option').length > 0, null, 'instruments');
        await bookLive(t);
      }
      state.inst = await instrument(state.a);
      check(state.inst && state.inst.tick && state.inst.lot, 'instrument has tick and lot');
      const label = await tid(state.a.page, 'conn-status').getAttribute('data-state');
      check(label === 'live', `connection shows live, not ${label}`);
      await shot(state.a, 'connected');
    },
  ],
  [
    'a wrong password shows its error code',
    async () => {
      const p = state.a.page;
      await tid(p, 'login-user').fill(state.a.user);
      await tid(p, 'login-pass').fill(`${state.a.pass}-wrong`);
      await tid(p, 'login-submit').click();
      await until(p, () => !document.querySelector('[data-testid="login-error"]').hidden, null, 'the login error');
      const code = await tid(p, 'login-error').getAttribute('data-code');
      check(code === 'bad_credentials', `login error code is bad_credentials, got ${code}`);
      await shot(state.a, 'bad-login');
    },
  ],
  [
    'both traders log in and see their balances',
    async () => {
      for (const t of [state.a, state.b]) {
        const p = t.page;
        await tid(p, 'login-user').fill(t.user);
        await tid(p, 'login-pass').fill(t.pass);
        await tid(p, 'login-submit').click();
        await tid(p, 'logged-in-user').waitFor({ state: 'visible' });
        const who = await tid(p, 'logged-in-user').textContent();
        check(who.startsWith(t.user), `logged in as ${t.user}, page says ${who}`);
        await until(p, () => document.querySelectorAll('[data-testid="balance-row"]').length > 0, null, 'balances');
        check(await tid(p, 'login-form').isHidden(), 'login form hidden after login');
        // A clean slate: orders left by an earlier run would trade under the checks below.
        await p.evaluate(() => window.__bourse.client.request('order.cancel_all', {}));
        await until(p, () => window.__bourse.account().orders.length === 0, null, 'no open orders');
      }
      await shot(state.a, 'logged-in');
    },
  ],
  [
    'a limit order rests: in open orders and marked in the book',
    async () => {
      state.qty = D.format(D.parse(state.inst.min_qty || state.inst.lot), state.inst.qty_scale);
      // No order yet: `onResting` places the passive buy (again, three
      // times at most, if the demo market's trades fill it before the
      // checks are done).
      state.order = null;
      await onResting(async () => {
        check((await orderRow(state.a, state.order).count()) !== 0, `order ${state.order} shows among the open orders`);
        check((await orderRow(state.a, state.order).getAttribute('data-px')) === state.px, 'open order shows the price');
        await bookRow(state.a, 'bid', state.px).and(state.a.page.locator('[data-own="true"]')).waitFor();
        await bookRow(state.b, 'bid', state.px).waitFor();
        check((await bookRow(state.b, 'bid', state.px).getAttribute('data-own')) === null, 'not marked as own in the other trader\'s book');
      });
      await shot(state.a, 'order-resting');
    },
  ],
  [
    'amend raises the quantity',
    async () => {
      const p = state.a.page;
      const inst = state.inst;
      const newQty = D.format(D.mulInt(state.qty, 2), inst.qty_scale);
      await onResting(async () => {
        await orderRow(state.a, state.order).locator('[data-testid="order-amend"]').click();
        await tid(p, 'amend-qty').fill(newQty);
        await tid(p, 'amend-submit').click();
        await until(p, ([id, q]) => document.querySelector(`[data-testid="open-order-row"][data-order-id="${id}"]`)?.dataset.qty === q, [state.order, newQty], 'the amended quantity');
        await until(
          p,
          ([px, q]) => document.querySelector(`[data-testid="book-row"][data-side="bid"][data-px="${px}"]`)?.dataset.ownQty === q,
          [state.px, newQty],
          'the book to mark the new own quantity',
        );
      });
      await shot(state.a, 'amended');
    },
  ],
  [
    'cancel removes the order from open orders and the book',
    async () => {
      const p = state.a.page;
      // A fill before the click leaves nothing to click: tried again then.
      await onResting(() => orderRow(state.a, state.order).locator('[data-testid="order-cancel"]').click());
      await orderRow(state.a, state.order).waitFor({ state: 'detached' });
      await until(
        p,
        (px) => !document.querySelector(`[data-testid="book-row"][data-side="bid"][data-px="${px}"][data-own="true"]`),
        state.px,
        'the own marker to leave the book',
      );
      await shot(state.a, 'cancelled');
    },
  ],
  [
    'a crossing order fills: both traders see the fill and exact new balances',
    async () => {
      // On a live market someone else may take the resting order before the
      // second trader does; then the scenario did not happen and is tried again.
      for (let attempt = 1; ; attempt++) {
        try {
          await crossOnce();
          return;
        } catch (e) {
          if (!(e instanceof Check) || !e.message.startsWith('not crossed:') || attempt >= 3) throw e;
          log(`    ${e.message}; trying again`);
        }
      }
    },
  ],
  [
    'a rejected order shows its error code and changes nothing',
    async () => {
      // A buy far beyond the balance: the page warns but sends (the exchange
      // decides), and the exchange refuses it whatever the market does.
      const inst = state.inst;
      const before = await account(state.a);
      const huge = D.format(D.mulInt(D.parse(inst.lot), 10n ** 6n), inst.qty_scale);
      const r = await ticket(state.a, { side: 'buy', px: state.px, qty: huge });
      check(r.error === 'insufficient_funds', `rejected with insufficient_funds, got ${r.error ?? r.status} (${r.text})`);
      check(r.text.includes('insufficient_funds'), 'the error text names the code');
      check(await tid(state.a.page, 'ticket-cost').evaluate((el) => el.classList.contains('warn')), 'the ticket warned before sending');
      const after = await account(state.a);
      check(after.orders.length === before.orders.length, 'no order was created');
      await shot(state.a, 'rejected');
    },
  ],
  [
    'a dropped connection resumes: same login, book equal to a fresh snapshot',
    async () => {
      const p = state.a.page;
      // Something to find after the resume: a resting order, priced afresh
      // (the crossing step moved the market down to the old price).
      const rows = await p.locator('[data-testid="book-row"][data-side="bid"]').count();
      const tk = await tid(p, 'ticker-last').textContent();
      const px = passivePrice(await book(state.a), state.inst, /^\d/.test(tk) ? tk : null, rows);
      const r = await ticket(state.a, { side: 'buy', px, qty: state.qty });
      check(r.status === 'new', `resting order accepted, got ${r.status ?? r.error}`);
      state.order = r.order_id;
      // The demo market may fill it at once: then another is placed.
      await openOrFilled(state.a, state.order);
      await stillResting();
      const before = await p.evaluate(() => window.__bourse.stats());
      const dropped = await p.evaluate(() => window.__bourse.dropConnection());
      check(dropped, 'the test hook closed the socket');
      const seen = await p.evaluate(() => window.__bourse.conn());
      check(['reconnecting', 'connecting', 'restoring', 'resumed'].includes(seen), `status after drop: ${seen}`);
      await until(p, (n) => window.__bourse.conn() === 'resumed' && window.__bourse.stats().resumes > n, before.resumes, 'the resumed state');
      check((await tid(p, 'conn-status').getAttribute('data-state')) === 'resumed', 'the page says resumed');
      await bookLive(state.a);
      check(await tid(p, 'logged-in-user').isVisible(), 'still logged in');
      // The account stream is restored: the order shows again, open, or
      // among the fills when the demo market's flow took it while the
      // connection was down (its quotes move every interval).
      await openOrFilled(state.a, state.order);
      if ((await orderRow(state.a, state.order).count()) === 0) {
        log(`    order ${state.order} was filled while the connection was down; placing another`);
        await stillResting();
      }
      // The resumed book must equal a fresh snapshot taken at the same version.
      const cmp = await p.evaluate(() => window.__bourse.compareWithFresh());
      check(cmp.ok, `resumed book equals a fresh snapshot: ${JSON.stringify(cmp).slice(0, 400)}`);
      log(`    resumed book equals the fresh snapshot at seq ${cmp.seq} (${cmp.levels} levels)`);
      // The account stream is live again: cancel through it.
      await orderRow(state.a, state.order).locator('[data-testid="order-cancel"]').click();
      await orderRow(state.a, state.order).waitFor({ state: 'detached' });
      const after = await p.evaluate(() => window.__bourse.stats());
      log(`    client repairs: ${JSON.stringify(after)}`);
      await shot(state.a, 'resumed');
    },
  ],
  [
    'a wrong local book is caught by its checksum and replaced by a fresh snapshot',
    async () => {
      const p = state.a.page;
      const before = await p.evaluate(() => window.__bourse.stats());
      // The demo market replaces its quotes every interval, so the book
      // can be without bids, or between a snapshot and its deltas, for a
      // moment: the hook changes it (once) when it is valid with a best bid.
      await until(p, () => !!window.__bourse.corruptBook(), null, 'a valid book with a best bid for the test hook to change');
      // Any book change makes the exchange send a delta with a checksum.
      const bb = await book(state.b);
      const far = D.format(D.sub(bb.bids[bb.bids.length - 1]?.[0] ?? state.px, D.mulInt(state.inst.tick, 3)), state.inst.price_scale);
      const r = await ticket(state.b, { side: 'buy', px: far, qty: state.qty });
      check(r.status === 'new', `order to move the book accepted, got ${r.status ?? r.error}`);
      await until(p, (n) => window.__bourse.stats().cksumFailures > n, before.cksumFailures, 'the checksum failure');
      await bookLive(state.a);
      const cmp = await p.evaluate(() => window.__bourse.compareWithFresh());
      check(cmp.ok, `repaired book equals a fresh snapshot: ${JSON.stringify(cmp).slice(0, 400)}`);
      await cancelIfOpen(state.b, r.order_id);
      await shot(state.a, 'cksum-recovered');
    },
  ],
  [
    'the depth chart is drawn from the book',
    async () => {
      const p = state.a.page;
      // Every book update redraws the canvas, and a live book can be empty
      // for a moment (its last level taken). The point count and the
      // pixels are read in one task, so they describe the same drawing:
      // the canvas drawn from a non-empty book.
      let handle;
      try {
        handle = await p.waitForFunction(
          () => {
            const points = window.__bourse.chartStats().depthPoints;
            if (points === 0) return null;
            const c = document.querySelector('[data-testid="depth-chart"]');
            const img = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let green = 0;
            let red = 0;
            for (let i = 0; i < img.length; i += 4) {
              if (img[i + 1] > 120 && img[i] < 100) green++; // bid side
              if (img[i] > 180 && img[i + 1] < 120) red++; // ask side
            }
            return { points, green, red };
          },
          null,
          { timeout: wait_ms_max, polling: 100 },
        );
      } catch {
        throw new Check('timed out waiting for a depth chart drawn from a non-empty book');
      }
      const drawn = await handle.jsonValue();
      check(drawn.green > 100 || drawn.red > 100, `depth canvas has drawn sides (${JSON.stringify(drawn)})`);
      await shot(state.a, 'depth');
    },
  ],
  [
    'switching instrument shows the other book, and back',
    async () => {
      const p = state.a.page;
      const syms = await tid(p, 'instrument-select').evaluate((el) => [...el.options].map((o) => o.value));
      const other = syms.find((x) => x !== state.inst.sym);
      if (other) {
        await tid(p, 'instrument-select').selectOption(other);
        await until(p, (sym) => window.__bourse.book()?.sym === sym && window.__bourse.book().valid && window.__bourse.book().state === 'live', other, `the ${other} book`);
        check((await tid(p, 'ticket-sym').textContent()) === other, 'the ticket follows the instrument');
        const keys = await p.evaluate(() => [...window.__bourse.client.streams.keys()]);
        check(!keys.some((k) => k.endsWith(`:${state.inst.sym}`) || k.includes(`:${state.inst.sym}:`)), `the old instrument's streams are gone (${keys.join(', ')})`);
        await shot(state.a, 'other-instrument');
        await tid(p, 'instrument-select').selectOption(state.inst.sym);
      } else {
        log('    only one instrument listed');
      }
      await bookLive(state.a);
    },
  ],
  [
    'log out shows the login form and clears the account',
    async () => {
      const p = state.b.page;
      await tid(p, 'logout').click();
      await tid(p, 'login-form').waitFor({ state: 'visible' });
      check(await tid(p, 'session-box').isHidden(), 'the session box is hidden');
      await until(p, () => document.querySelectorAll('[data-testid="balance-row"]').length === 0, null, 'balances to clear');
      check(await tid(p, 'ticket-submit').isDisabled(), 'trading is off');
      check(['live', 'resumed'].includes(await p.evaluate(() => window.__bourse.conn())), 'the connection stays');
      await shot(state.b, 'logged-out');
    },
  ],
  [
    'the candle chart is drawn',
    async () => {
      const p = state.a.page;
      const refused = await p.evaluate(() => {
        for (const st of window.__bourse.client.streams.values()) {
          if (st.spec.ch === 'candles' && st.state === 'error') return `${st.error.code}: ${st.error.message}`;
        }
        return null;
      });
      check(!refused, `the exchange refused the candles stream (${refused})`);
      await until(p, () => window.__bourse.chartStats().chartLoaded && window.__bourse.chartStats().bars > 0, null, 'candles on the chart');
      const canvases = await p.evaluate(
        () => [...document.querySelectorAll('[data-testid="candle-chart"] canvas')].filter((x) => x.width > 0 && x.height > 0).length,
      );
      check(canvases > 0, 'candle chart has canvases');
      await tid(p, 'interval-5m').click();
      await until(p, () => window.__bourse.chartStats().bars > 0 && window.__bourse.client.streams.has(`candles:${window.__bourse.state.sym}:5m`), null, '5m candles');
      // The status line follows: it names the 5m stream, not the 1m one.
      await until(p, () => document.querySelector('[data-testid="stats"]').textContent.includes(`candles:${window.__bourse.state.sym}:5m@`), null, 'the status line names the 5m stream');
      check(!(await p.evaluate(() => document.querySelector('[data-testid="stats"]').textContent.includes(':1m@'))), 'the status line no longer names the 1m stream');
      await shot(state.a, 'charts');
    },
  ],
  [
    'a trader changes its password: the page logs out, the old one is refused, the new one logs in',
    async () => {
      const t = state.b;
      const p = t.page;
      const login = async (pass) => {
        await tid(p, 'login-user').fill(t.user);
        await tid(p, 'login-pass').fill(pass);
        await tid(p, 'login-submit').click();
      };
      const fillForm = async (from, to) => {
        if (await tid(p, 'password-form').isHidden()) await tid(p, 'password-open').click();
        await tid(p, 'password-current').fill(from);
        await tid(p, 'password-new').fill(to);
        await tid(p, 'password-submit').click();
      };
      const changeTo = async (from, to) => {
        await fillForm(from, to);
        await tid(p, 'login-form').waitFor({ state: 'visible' });
        const code = await tid(p, 'login-error').getAttribute('data-code');
        check(code === 'logged_out', `the page says why it logged out, got ${code}`);
        check(await tid(p, 'password-form').isHidden(), 'the password form closes');
      };
      await login(t.pass);
      await tid(p, 'logged-in-user').waitFor({ state: 'visible' });
      // A wrong current password changes nothing.
      await fillForm(`${t.pass}-wrong`, `${t.pass}-next-1`);
      await until(p, () => document.querySelector('[data-testid="notice"]').textContent.includes('bad_credentials'), null, 'the refusal');
      check(await tid(p, 'logged-in-user').isVisible(), 'still logged in after a refused change');
      await shot(t, 'password-refused');
      const next = `${t.pass}-next-1`;
      await changeTo(t.pass, next);
      await shot(t, 'password-changed');
      await login(t.pass);
      await until(p, () => document.querySelector('[data-testid="login-error"]').dataset.code === 'bad_credentials', null, 'the old password refused');
      await login(next);
      await tid(p, 'logged-in-user').waitFor({ state: 'visible' });
      // Back to the documented demo password.
      await changeTo(next, t.pass);
      await login(t.pass);
      await tid(p, 'logged-in-user').waitFor({ state: 'visible' });
    },
  ],
];

async function main() {
  rmSync(OUT, { recursive: true, force: true }); // screenshots of this run only
  mkdirSync(OUT, { recursive: true });
  log(`e2e against ${BASE} as ${TRADERS[0].user} and ${TRADERS[1].user}; screenshots in ${OUT}`);
  let failed = false;
  for (const [name, fn] of steps) {
    if (failed) {
      results.push({ name, ok: null });
      log(`SKIP ${name}`);
      continue;
    }
    const t0 = Date.now();
    try {
      await fn();
      results.push({ name, ok: true });
      log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed = true;
      results.push({ name, ok: false, error: e });
      log(`FAIL ${name}: ${e instanceof Check ? e.message : e.stack}`);
      for (const t of [state.a, state.b]) {
        if (!t) continue;
        try {
          log(`    saved ${await shot(t, 'failure')}`);
        } catch {
          /* the page may be gone */
        }
        for (const line of t.errors.slice(-10)) log(`    [${t.user}] ${line}`);
      }
    }
  }
  for (const c of contexts) await c.close().catch(() => {});
  for (const d of profiles) rmSync(d, { recursive: true, force: true });
  const passed = results.filter((r) => r.ok === true).length;
  const nfailed = results.filter((r) => r.ok === false).length;
  const skipped = results.filter((r) => r.ok === null).length;
  log(`${passed} passed, ${nfailed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exitCode = nfailed ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
