// The page's WebSocket client for the exchange (PROTOCOL.md sections 1-4, 6).
//
// Owns one connection at a time and everything that must survive a dropped
// one: the session token, the set of subscribed streams with the last epoch
// and seq applied on each, and the requests that may be sent again. It
// correlates responses with requests by id, routes stream events to their
// subscribers by stream key, applies the sequencing rule before any
// subscriber sees an event, repairs gaps (from a broken chain, a heartbeat
// showing tail loss, or a failed book checksum) by resubscribing, and after a
// dropped connection reconnects with backoff and restores everything with one
// `session.resume`. The WebSocket constructor and the timers are injected so
// all of this runs in unit tests without a server or a browser.

import { GAP, IGNORE, StreamPosition, isChained, latestVerdict, verdict } from './sequence.js';

export const SUBPROTOCOL = 'bourse.v1.json';

/** First reconnect delay; doubles per failed attempt. */
export const backoff_ms_min = 250;
/** Longest wait between reconnect attempts. */
export const backoff_ms_max = 5000;
/** A sent request with no answer after this long fails with outcome unknown. */
export const request_timeout_ms_max = 15000;
/** A request waiting for the connection gives up after this long, unsent. */
export const queued_request_ms_max = 10000;
/** Requests in flight at once; more is a bug in the page, refused locally. */
export const pending_requests_max = 256;
/** Requests waiting for a connection at once. */
export const queued_requests_max = 64;
/**
 * The server sends a heartbeat after 1 s of silence; this much silence means
 * the connection is dead even if the socket has not noticed.
 */
export const silence_ms_max = 5000;

/** Stream key of a subscription, exactly as PROTOCOL.md section 2 spells it. */
export function streamKey(spec) {
  switch (spec.ch) {
    case 'book.l2':
      return `book.l2:${spec.sym}:${spec.depth ?? 50}`;
    case 'candles':
      return `candles:${spec.sym}:${spec.interval}`;
    case 'status':
    case 'account':
      return spec.ch;
    default:
      return `${spec.ch}:${spec.sym}`;
  }
}

/** Inverse of `streamKey`. */
export function parseStreamKey(key) {
  const parts = key.split(':');
  const ch = parts[0];
  if (ch === 'status' || ch === 'account') return { ch };
  if (ch === 'book.l2') return { ch, sym: parts[1], depth: Number(parts[2]) };
  if (ch === 'candles') return { ch, sym: parts[1], interval: parts[2] };
  return { ch, sym: parts[1] };
}

/** `subscribe` args for a stream, resuming from `pos` ({epoch, seq}) when given. */
export function subscribeArgs(spec, pos = null) {
  if (spec.ch === 'status' || spec.ch === 'account') {
    const args = { ch: spec.ch };
    if (pos) args.resume = { epoch: pos.epoch, seq: pos.seq };
    return args;
  }
  const args = { ch: spec.ch, sym: [spec.sym] };
  if (spec.ch === 'book.l2') {
    args.depth = spec.depth ?? 50;
    if (spec.cksum) args.cksum = true;
  }
  if (spec.ch === 'candles') args.interval = spec.interval;
  if (spec.on_lag) args.on_lag = spec.on_lag;
  if (pos) args.resume = { [spec.sym]: { epoch: pos.epoch, seq: pos.seq } };
  return args;
}

export function unsubscribeArgs(spec) {
  if (spec.ch === 'status' || spec.ch === 'account') return { ch: spec.ch };
  return { ch: spec.ch, sym: [spec.sym] };
}

/**
 * The stream key an event belongs to. `book.l2` deltas and `candles` events
 * may omit depth/interval; then the one subscribed stream of that channel
 * and instrument is meant.
 */
export function eventKey(msg, keys) {
  let exact;
  let prefix = null;
  switch (msg.ch) {
    case 'book.l2':
      exact = msg.depth !== undefined ? `book.l2:${msg.sym}:${msg.depth}` : null;
      prefix = `book.l2:${msg.sym}:`;
      break;
    case 'candles':
      exact = msg.interval !== undefined ? `candles:${msg.sym}:${msg.interval}` : null;
      prefix = `candles:${msg.sym}:`;
      break;
    case 'status':
    case 'account':
      return msg.ch;
    default:
      return `${msg.ch}:${msg.sym}`;
  }
  if (exact && keys.has(exact)) return exact;
  for (const k of keys.keys()) if (k.startsWith(prefix)) return k;
  return exact;
}

/** An error answer from the exchange, or a local failure with the same shape. */
export class ProtocolError extends Error {
  constructor(err = {}) {
    super(err.msg || err.code || 'error');
    this.name = 'ProtocolError';
    this.code = err.code ?? 'internal';
    this.num = err.num ?? null;
    this.retryable = Boolean(err.retryable);
    this.outcome = err.outcome ?? 'rejected';
    if (err.retry_after_ms !== undefined) this.retry_after_ms = err.retry_after_ms;
    /** True when the page made this error up (no server answer behind it). */
    this.local = Boolean(err.local);
  }
}

function localError(code, msg, outcome) {
  return new ProtocolError({ code, msg, outcome, local: true });
}

/** Codes of `session.resume` failures that mean the login is gone. */
const AUTH_LOST = new Set(['token_expired', 'bad_credentials', 'auth_required', 'permission_denied']);

export class BourseClient {
  /**
   * url: the WebSocket URL. WebSocketImpl, timers ({setTimeout,
   * clearTimeout}) and random are injectable for tests.
   */
  constructor({
    url,
    WebSocketImpl = globalThis.WebSocket,
    timers = { setTimeout: globalThis.setTimeout.bind(globalThis), clearTimeout: globalThis.clearTimeout.bind(globalThis) },
    random = Math.random,
  } = {}) {
    this.url = url;
    this.WS = WebSocketImpl;
    this.timers = timers;
    this.random = random;
    this.ws = null;
    this.open = false;
    this.ready = false;
    this.stopped = true;
    /** connecting | restoring | live | reconnecting | resumed | closed */
    this.conn = 'closed';
    this.attempt = 0;
    this.everReady = false;
    this.nextId = 0;
    this.pending = new Map();
    this.queue = [];
    this.streams = new Map();
    this.listeners = new Map();
    this.token = null;
    this.user = null;
    this.role = null;
    this.reconnectTimer = null;
    this.silenceTimer = null;
    /** Counters a person (or a test) can read to see what the client repaired. */
    this.stats = { connects: 0, resumes: 0, resyncs: 0, gaps: 0, tailLosses: 0, badFrames: 0 };
  }

  // ---- events -------------------------------------------------------------

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, []);
    this.listeners.get(name).push(fn);
    return () => {
      const l = this.listeners.get(name);
      const i = l.indexOf(fn);
      if (i >= 0) l.splice(i, 1);
    };
  }

  emit(name, ...args) {
    for (const fn of this.listeners.get(name) ?? []) {
      try {
        fn(...args);
      } catch (e) {
        console.error(`listener for ${name} failed`, e);
      }
    }
  }

  setConn(state, info = {}) {
    this.conn = state;
    this.emit('conn', state, info);
  }

  // ---- connection ---------------------------------------------------------

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    if (this.reconnectTimer) this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const ws = this.ws;
    if (ws) {
      this.handleClose(ws, { code: 1000, reason: 'stopped' });
      try {
        ws.close(1000, 'stopped');
      } catch {
        /* already closed */
      }
    }
    this.setConn('closed');
  }

  /** Test hook: kill the connection as a network failure would. */
  dropConnection() {
    const ws = this.ws;
    if (!ws) return false;
    this.handleClose(ws, { code: 4000, reason: 'dropped' });
    try {
      ws.close(4000, 'dropped');
    } catch {
      /* already closed */
    }
    return true;
  }

  connect() {
    this.reconnectTimer = null;
    if (this.stopped) return;
    this.setConn(this.everReady ? 'reconnecting' : 'connecting', { attempt: this.attempt });
    let ws;
    try {
      ws = new this.WS(this.url, [SUBPROTOCOL]);
    } catch (e) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.handleOpen(ws);
    ws.onmessage = (ev) => this.handleFrame(ws, ev.data);
    ws.onclose = (ev) => this.handleClose(ws, ev ?? {});
    ws.onerror = () => {
      /* a close event follows */
    };
  }

  scheduleReconnect() {
    if (this.stopped || this.reconnectTimer) return;
    const base = Math.min(backoff_ms_max, backoff_ms_min * 2 ** Math.min(this.attempt, 16));
    const delay = Math.round(base * (0.5 + this.random() / 2));
    this.attempt += 1;
    this.setConn('reconnecting', { attempt: this.attempt, inMs: delay });
    this.reconnectTimer = this.timers.setTimeout(() => this.connect(), delay);
  }

  armSilence(ws) {
    if (this.silenceTimer) this.timers.clearTimeout(this.silenceTimer);
    this.silenceTimer = this.timers.setTimeout(() => {
      if (ws !== this.ws) return;
      this.handleClose(ws, { code: 4001, reason: 'silent' });
      try {
        ws.close(4001, 'silent');
      } catch {
        /* already closed */
      }
    }, silence_ms_max);
  }

  handleOpen(ws) {
    if (ws !== this.ws) return;
    this.open = true;
    this.stats.connects += 1;
    this.armSilence(ws);
    this.setConn('restoring');
    this.restore(ws).then(
      (resumed) => {
        if (ws !== this.ws) return;
        this.ready = true;
        this.attempt = 0;
        const wasReady = this.everReady;
        this.everReady = true;
        if (wasReady) this.stats.resumes += 1;
        this.setConn(wasReady ? 'resumed' : 'live', { resumed });
        this.flushQueue();
      },
      () => {
        // The connection went away meanwhile (the close handler has already
        // scheduled the next attempt), or the exchange could not restore
        // the session for a passing reason (throttled, overloaded, not the
        // leader): start again on a new connection after backoff.
        if (ws !== this.ws) return;
        this.handleClose(ws, { code: 4002, reason: 'restore failed' });
        try {
          ws.close(4002, 'restore failed');
        } catch {
          /* already closed */
        }
      },
    );
  }

  handleClose(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.open = false;
    this.ready = false;
    if (this.silenceTimer) this.timers.clearTimeout(this.silenceTimer);
    this.silenceTimer = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    for (const [id, entry] of this.pending) {
      this.pending.delete(id);
      this.timers.clearTimeout(entry.timer);
      if (entry.retryOnReconnect && !entry.internal) {
        this.enqueue(entry);
      } else {
        entry.reject(localError('connection_lost', `connection closed before the answer to ${entry.op}`, 'unknown'));
      }
    }
    for (const st of this.streams.values()) {
      st.inFlight = false;
      st.gen += 1; // answers on the old connection no longer count
      this.setStreamState(st, 'resyncing');
    }
    this.emit('closed', { code: ev.code, reason: ev.reason });
    if (!this.stopped) this.scheduleReconnect();
  }

  handleFrame(ws, data) {
    if (ws !== this.ws) return;
    this.armSilence(ws);
    let msg;
    try {
      msg = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data));
    } catch {
      this.stats.badFrames += 1;
      return;
    }
    if (!msg || typeof msg !== 'object') {
      this.stats.badFrames += 1;
      return;
    }
    if (msg.id !== undefined && msg.id !== null && (msg.ok !== undefined || msg.err !== undefined)) {
      this.handleResponse(msg);
    } else if (msg.ch === 'hb') {
      this.handleHeartbeat(msg);
    } else if (typeof msg.ch === 'string') {
      this.handleEvent(msg);
    } else if (msg.op === 'notice') {
      if (msg.code === 'logged_out') this.loggedOut(msg);
      this.emit('notice', msg);
    }
    // Anything else is a message type this page does not know: ignored.
  }

  // ---- requests -----------------------------------------------------------

  /**
   * Sends `op` and resolves with its `res`, or rejects with a ProtocolError.
   * While the connection is down the request waits (up to
   * queued_request_ms_max). With `retryOnReconnect`, a request whose
   * connection drops before the answer is sent again after the session is
   * restored: only for idempotent requests (reads, and `order.place`, whose
   * `cl_id` makes a repeat return the original order).
   */
  request(op, args = {}, { retryOnReconnect = false } = {}) {
    return this.sendRequest({ op, args, retryOnReconnect, internal: false });
  }

  sendRequest({ op, args, retryOnReconnect, internal }) {
    return new Promise((resolve, reject) => {
      const entry = { op, args, retryOnReconnect, internal, resolve, reject, timer: null };
      if (internal) {
        if (!this.open) reject(localError('connection_lost', 'not connected', 'rejected'));
        else this.transmit(entry);
      } else if (this.ready) {
        this.transmit(entry);
      } else {
        this.enqueue(entry);
      }
    });
  }

  enqueue(entry) {
    if (this.queue.length >= queued_requests_max) {
      entry.reject(localError('client_overloaded', 'too many requests waiting for the connection', 'rejected'));
      return;
    }
    // A request that was sent and lost keeps outcome unknown if it never
    // gets through; one never sent was simply not done.
    const outcome = entry.sent ? 'unknown' : 'rejected';
    entry.timer = this.timers.setTimeout(() => {
      const i = this.queue.indexOf(entry);
      if (i >= 0) this.queue.splice(i, 1);
      entry.reject(localError('not_connected', `no connection for ${entry.op}`, outcome));
    }, queued_request_ms_max);
    this.queue.push(entry);
  }

  flushQueue() {
    const q = this.queue;
    this.queue = [];
    for (const entry of q) {
      this.timers.clearTimeout(entry.timer);
      this.transmit(entry);
    }
  }

  transmit(entry) {
    if (this.pending.size >= pending_requests_max) {
      entry.reject(localError('client_overloaded', 'too many requests in flight', 'rejected'));
      return;
    }
    const id = ++this.nextId;
    entry.sent = true;
    this.pending.set(id, entry);
    entry.timer = this.timers.setTimeout(() => {
      if (this.pending.get(id) !== entry) return;
      this.pending.delete(id);
      entry.reject(localError('timeout', `no answer to ${entry.op}`, 'unknown'));
    }, request_timeout_ms_max);
    const frame = { op: entry.op, id };
    if (entry.args && Object.keys(entry.args).length) frame.args = entry.args;
    try {
      this.ws.send(JSON.stringify(frame));
    } catch (e) {
      // The close event will settle it (retry or connection_lost).
    }
  }

  handleResponse(msg) {
    const entry = this.pending.get(msg.id);
    if (!entry) return; // late answer to a request that already timed out
    this.pending.delete(msg.id);
    this.timers.clearTimeout(entry.timer);
    if (msg.ok) entry.resolve(msg.res ?? {});
    else entry.reject(new ProtocolError(msg.err ?? {}));
  }

  // ---- session ------------------------------------------------------------

  /** `auth` with user and password; keeps the token for `session.resume`. */
  async login(user, password, extra = {}) {
    const res = await this.request('auth', { user, password, ...extra });
    this.token = res.session?.token ?? null;
    this.user = res.user ?? user;
    this.role = res.role ?? null;
    this.emit('auth', { state: 'in', user: this.user, role: this.role });
    return res;
  }

  /**
   * The server ended this connection's login (`logged_out` notice: the
   * user's password was set, by the user or an operator): the token is
   * dead, the account stream gone, and the page must log in again.
   */
  loggedOut(msg) {
    if (!this.token) return;
    const why = msg.reason === 'password_set' ? 'the password was changed; log in with the new one' : 'the server ended the login';
    this.loseLogin(new ProtocolError({ code: 'logged_out', msg: why, local: true }));
  }

  /** Forgets a login the server no longer honours, and the account stream with it. */
  loseLogin(err) {
    this.token = null;
    this.user = null;
    this.role = null;
    for (const st of [...this.streams.values()]) if (st.spec.ch === 'account') this.forget(st);
    this.emit('auth', { state: 'lost', error: err });
  }

  /** Changes the logged-in user's own password (`account.password`). */
  async changePassword(password, newPassword) {
    return this.request('account.password', { password, new_password: newPassword });
  }

  async logout() {
    for (const st of [...this.streams.values()]) if (st.spec.ch === 'account') this.unsubscribe(st.key);
    try {
      await this.request('logout', {});
    } finally {
      this.token = null;
      this.user = null;
      this.role = null;
      this.emit('auth', { state: 'out' });
    }
  }

  /**
   * Brings a fresh connection back to where the last one was: the login
   * and every stream from its last epoch/seq with one `session.resume`, or
   * stream by stream when there is no login to restore. Resolves with true
   * when a session was resumed.
   */
  async restore(ws) {
    let resumed = false;
    const done = new Set();
    /** key -> generation of the stream when the resume was asked. */
    const asked = new Map();
    if (this.token) {
      const positions = {};
      for (const st of this.streams.values()) {
        if (st.pos.known && !st.awaitingSnapshot) {
          positions[st.key] = st.pos.pos;
          asked.set(st.key, ++st.gen);
          st.sawSnapshot = false;
          st.inFlight = true;
        }
      }
      try {
        const res = await this.sendRequest({
          op: 'session.resume',
          args: { token: this.token, streams: positions },
          internal: true,
        });
        resumed = true;
        for (const sub of res.subs ?? []) {
          const st = this.streams.get(sub.sub);
          if (!st || asked.get(st.key) !== st.gen) continue;
          done.add(st.key);
          this.subscribed(st, sub);
        }
        this.emit('auth', { state: 'resumed', user: this.user, role: this.role });
      } catch (err) {
        if (ws !== this.ws) throw err;
        for (const [key, gen] of asked) {
          const st = this.streams.get(key);
          if (st && st.gen === gen) st.inFlight = false;
        }
        if (AUTH_LOST.has(err.code) || err.code === 'unknown_op' || err.code === 'bad_request') {
          this.loseLogin(err);
        } else {
          throw err;
        }
      }
    }
    for (const st of this.streams.values()) {
      if (done.has(st.key)) continue;
      // A stream subscribed while the resume was in flight is already asked for.
      if (asked.get(st.key) === st.gen) st.inFlight = false;
      this.sendSubscribe(st);
    }
    return resumed;
  }

  // ---- streams ------------------------------------------------------------

  /**
   * Subscribes to a stream and keeps it across reconnects. `handler(msg,
   * stream)` receives only events that passed the sequencing rule, in order;
   * `opts.onState(state, stream)` hears live/resyncing/stale/error changes;
   * `opts.onGap(msg)` hears the server's `gap` notices.
   */
  subscribe(spec, handler, opts = {}) {
    const key = streamKey(spec);
    const existing = this.streams.get(key);
    if (existing) {
      existing.handler = handler;
      existing.opts = opts;
      return key;
    }
    const st = {
      key,
      spec,
      chained: isChained(spec.ch),
      pos: new StreamPosition(),
      handler,
      opts,
      state: 'subscribing',
      mode: null,
      error: null,
      inFlight: false,
      /** Bumped per subscribe sent: an answer to an older one is stale. */
      gen: 0,
      awaitingSnapshot: true,
      sawSnapshot: false,
    };
    this.streams.set(key, st);
    if (this.open) this.sendSubscribe(st);
    return key;
  }

  unsubscribe(key) {
    const st = this.streams.get(key);
    if (!st) return;
    this.forget(st);
    if (this.open) {
      this.sendRequest({ op: 'unsubscribe', args: unsubscribeArgs(st.spec), internal: true }).catch(() => {});
    }
  }

  forget(st) {
    this.streams.delete(st.key);
    this.setStreamState(st, 'closed');
  }

  setStreamState(st, state) {
    if (st.state === state) return;
    st.state = state;
    st.opts.onState?.(state, st);
    this.emit('stream', st.key, state);
  }

  sendSubscribe(st) {
    if (st.inFlight || !this.open) return;
    const pos = st.awaitingSnapshot ? null : st.pos.pos;
    if (!pos) st.awaitingSnapshot = true;
    st.sawSnapshot = false;
    st.inFlight = true;
    const gen = ++st.gen;
    const ws = this.ws;
    this.sendRequest({ op: 'subscribe', args: subscribeArgs(st.spec, pos), internal: true }).then(
      (res) => {
        if (this.streams.get(st.key) !== st || st.gen !== gen) return;
        const sub = (res.subs ?? []).find((s) => s.sub === st.key) ?? (res.subs ?? [])[0] ?? {};
        this.subscribed(st, sub);
      },
      (err) => {
        if (this.streams.get(st.key) !== st || st.gen !== gen) return;
        st.inFlight = false;
        if (err.local) return; // connection gone: the restore will subscribe again
        st.error = err;
        this.setStreamState(st, 'error');
        this.emit('stream-error', st.key, err);
        // A retryable refusal (throttling) is tried again later; a final
        // one (unknown_instrument, auth_required) waits for the page.
        if (err.retryable && ws === this.ws) {
          this.timers.setTimeout(() => {
            if (this.streams.get(st.key) === st && this.ws === ws) this.sendSubscribe(st);
          }, Math.max(err.retry_after_ms ?? 0, backoff_ms_min));
        }
      },
    );
  }

  /** A subscribe (or session.resume) answer for one stream. */
  subscribed(st, sub) {
    st.inFlight = false;
    st.mode = sub.mode ?? null;
    st.error = null;
    if (sub.mode === 'snapshot' && !st.sawSnapshot) {
      // The stream restarts from a snapshot not yet received: anything
      // before it belongs to the old subscription.
      st.awaitingSnapshot = true;
    }
    if (!st.awaitingSnapshot) this.setStreamState(st, 'live');
  }

  /**
   * Repairs a stream: resubscribes from its last position (`resume`), or
   * from a fresh snapshot when `fresh` (its data can no longer be trusted).
   */
  resync(key, { fresh = false } = {}) {
    const st = this.streams.get(key);
    if (!st) return;
    this.stats.resyncs += 1;
    if (fresh) {
      st.pos.clear();
      st.awaitingSnapshot = true;
    }
    this.setStreamState(st, 'resyncing');
    if (st.inFlight || !this.open) return;
    this.sendRequest({ op: 'unsubscribe', args: unsubscribeArgs(st.spec), internal: true }).catch(() => {});
    this.sendSubscribe(st);
  }

  handleEvent(msg) {
    const key = eventKey(msg, this.streams);
    const st = key && this.streams.get(key);
    if (!st) return; // a late event of a stream already unsubscribed
    if (msg.type === 'gap') {
      // on_lag resync: the server follows with a snapshot or a replay.
      this.stats.gaps += 1;
      this.setStreamState(st, 'stale');
      st.opts.onGap?.(msg, st);
      return;
    }
    // A chained stream restarts only from a snapshot; a latest-wins stream
    // (ticker, book.l1) carries its whole state in every event.
    if (st.chained && st.awaitingSnapshot && msg.type !== 'snapshot') return;
    const v = st.chained ? verdict(st.pos.pos, msg) : latestVerdict(st.pos.pos, msg);
    if (v === IGNORE) return;
    if (v === GAP) {
      this.stats.gaps += 1;
      this.resync(key, { fresh: false });
      return;
    }
    if (msg.type === 'snapshot') st.sawSnapshot = true;
    st.awaitingSnapshot = false;
    st.pos.advance(msg);
    this.setStreamState(st, 'live');
    st.handler?.(msg, st);
  }

  /** Heartbeat: a stream whose server-side last seq is ahead of ours lost its tail. */
  handleHeartbeat(msg) {
    const last = msg.last ?? {};
    for (const [key, seq] of Object.entries(last)) {
      const st = this.streams.get(key);
      if (!st || st.inFlight || st.awaitingSnapshot || !st.pos.known) continue;
      if (typeof seq === 'number' && seq > st.pos.seq) {
        this.stats.tailLosses += 1;
        this.resync(key, { fresh: !st.chained });
      }
    }
    this.emit('hb', msg);
  }
}
