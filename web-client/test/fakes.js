// Test doubles for the stream client: a scripted WebSocket and a manual clock.

export class FakeWS {
  static all = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.sent = [];
    this.closedWith = null;
    FakeWS.all.push(this);
  }

  static reset() {
    FakeWS.all = [];
  }

  static last() {
    return FakeWS.all[FakeWS.all.length - 1];
  }

  send(text) {
    if (this.closedWith) throw new Error('send on a closed socket');
    this.sent.push(JSON.parse(text));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
  }

  // ---- the server's side ----
  open() {
    this.onopen?.();
  }

  push(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }

  drop(code = 1006) {
    this.onclose?.({ code, reason: '' });
  }

  /** Requests sent with this op, oldest first. */
  ops(op) {
    return this.sent.filter((m) => m.op === op);
  }

  lastOp(op) {
    const l = this.ops(op);
    return l[l.length - 1];
  }

  reply(req, res) {
    this.push({ id: req.id, ok: true, res });
  }

  fail(req, err) {
    this.push({ id: req.id, ok: false, err });
  }
}

export class Clock {
  constructor() {
    this.now = 0;
    this.tasks = [];
    this.nextId = 1;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.tasks.push({ id, at: this.now + (ms ?? 0), fn });
      return id;
    };
    this.clearTimeout = (id) => {
      this.tasks = this.tasks.filter((t) => t.id !== id);
    };
  }

  /** Runs every task due within `ms`, in time order. */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = this.tasks.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id);
      if (!due.length) break;
      const t = due[0];
      this.tasks = this.tasks.filter((x) => x !== t);
      this.now = t.at;
      t.fn();
    }
    this.now = end;
  }

  pending() {
    return this.tasks.length;
  }
}

/** Lets promise callbacks run. */
export function flush() {
  return new Promise((r) => setImmediate(r));
}
