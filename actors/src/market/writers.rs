//! The threads that write the market-data actor's batches to subscribers'
//! sockets: the actor's own thread and `limits.fanout_threads - 1` helpers.
//!
//! A batch is the admitted messages grouped by connection (see
//! [`Admitted`]), each connection's messages one group (or several, for
//! more than a write takes). Groups are dealt out in small chunks, never
//! cutting a connection's groups apart: the actor and the helpers it
//! wakes each take the next chunk until none is left, so a thread that the
//! system deschedules mid-batch holds up one chunk, not its share of the
//! batch.
//! The actor waits for all of them before it goes on. So a batch is written
//! before anything else the actor sends (a snapshot, a held delta), and
//! each connection's messages stay in order (one thread writes all of a
//! connection's groups, in order). A write of a few hundred sockets takes
//! milliseconds of kernel time; shared it takes less on several cores.
//!
//! A commit that reaches the actor while a batch is written does not wait
//! for all of it: once a sixteenth of the chunks is taken, the actor's
//! thread stops the batch (no writer takes another chunk), and the chunks
//! nobody took are admitted again, in their order, into the next batch,
//! ahead of the commit's own messages. A connection not yet written then
//! gets both in one write, and the commit's messages reach the rest in
//! the next pass instead of after a whole batch and then their own.
//!
//! A writer that fails (panics) mid-batch, a helper or the actor's own
//! thread, is noticed when the actor waits for the helpers: the
//! connections of every chunk taken and not finished are closed with 1011
//! (their messages may be partly lost, and a client must never read on
//! past a gap nobody announced; it resumes). Later batches are shared by
//! the threads left (the actor's own thread always among them).

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use crate::session::Admitted;

/// What one thread sent: per channel, messages and bytes.
pub type SentCounts = Vec<(&'static str, u64, usize)>;

/// Groups (connections) per thread at least: a batch is shared by at most
/// `groups / SPLIT_GROUPS_MIN` threads, so a small one is written by the
/// actor alone (handing it over would cost more).
pub const SPLIT_GROUPS_MIN: usize = 64;

/// A batch may be stopped for a waiting commit once this fraction
/// (1 / `YIELD_AFTER_DENOM`) of its chunks is taken.
pub const YIELD_AFTER_DENOM: usize = 16;

/// Groups a thread takes at a time (more when the last connection's groups
/// would be cut apart).
pub const CHUNK_GROUPS_MAX: usize = 8;

/// A batch as the threads share it: the messages grouped by connection,
/// each group's place among them, the chunks of groups, the next chunk to
/// take, and which chunks are written.
struct Batch {
    dues: Admitted,
    groups: Vec<Range<usize>>,
    chunks: Vec<Range<usize>>,
    next: AtomicUsize,
    written: Vec<AtomicBool>,
    /// Set by the actor's thread when a commit waits: no more chunks are
    /// taken, and those not taken are carried into the next batch.
    stop: AtomicBool,
    /// Under test: the connection whose group makes its writer panic.
    #[cfg(test)]
    fail_at: Option<usize>,
}

impl Batch {
    /// Takes and writes chunks until none is left or the batch is stopped;
    /// `yield_now` (the actor's thread only) is asked after each chunk
    /// whether to stop it.
    fn write(&self, sent: &mut SentCounts, delivered: &metrics::Histogram, yield_now: Option<&dyn Fn() -> bool>) {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            let Some(chunk) = self.chunks.get(i) else { return };
            for g in &self.groups[chunk.clone()] {
                #[cfg(test)]
                assert_ne!(self.fail_at, Some(self.dues.group_outbox(g).conn), "a writer fails (test)");
                self.dues.send_group(g.clone(), sent, delivered);
            }
            self.written[i].store(true, Ordering::Release);
            // A batch is stopped only once a sixteenth of it is taken, so
            // each connection's messages are carried a few times at most
            // however often commits arrive.
            let taken = self.taken();
            if taken < self.chunks.len() && taken * YIELD_AFTER_DENOM >= self.chunks.len() && yield_now.is_some_and(|y| y()) {
                self.stop.store(true, Ordering::Release);
                return;
            }
        }
    }

    /// Chunks taken by a writer (all written, unless that writer failed).
    fn taken(&self) -> usize {
        self.next.load(Ordering::Acquire).min(self.chunks.len())
    }

    /// Closes the connections of every chunk taken and not written (its
    /// writer failed); returns how many chunks that was.
    fn abandon_unwritten(&self) -> usize {
        let mut n = 0;
        let taken = self.taken();
        for (chunk, _) in self.chunks[..taken].iter().zip(&self.written).filter(|(_, w)| !w.load(Ordering::Acquire)) {
            n += 1;
            for g in &self.groups[chunk.clone()] {
                self.dues.group_outbox(g).abandon();
            }
        }
        n
    }

    /// The groups of the chunks nobody took (the batch was stopped).
    fn untaken_groups(&self) -> &[Range<usize>] {
        match self.chunks.get(self.taken()) {
            Some(c) => &self.groups[c.start..],
            None => &[],
        }
    }
}

/// [`Batch::write`] on this thread; false if it panicked (the chunk it was
/// writing is then taken and not written).
fn write_caught(batch: &Batch, sent: &mut SentCounts, delivered: &metrics::Histogram, yield_now: Option<&dyn Fn() -> bool>) -> bool {
    // The panic is handled here: it does not stop the node (see `failstop`).
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::failstop::contained(|| batch.write(sent, delivered, yield_now)))).is_ok()
}

/// Cuts `groups` into runs of about `per` groups, each ending where a
/// connection's groups end (`conn` tells a group's connection).
fn chunks(conn: impl Fn(&Range<usize>) -> usize, groups: &[Range<usize>], per: usize, into: &mut Vec<Range<usize>>) {
    into.clear();
    let mut start = 0;
    for i in 1..=groups.len() {
        let at_end = i == groups.len();
        if at_end || (i - start >= per && conn(&groups[i]) != conn(&groups[i - 1])) {
            into.push(start..i);
            start = i;
        }
    }
}

struct Helper {
    jobs: SyncSender<Arc<Batch>>,
    done: Receiver<SentCounts>,
}

/// The helper threads (dropping this ends them), and the room a batch
/// takes, kept from one batch to the next.
pub struct Writers {
    helpers: Vec<Helper>,
    groups: Vec<Range<usize>>,
    chunks: Vec<Range<usize>>,
    written: Vec<AtomicBool>,
    /// Under test: the connection whose group makes its writer panic, and
    /// whether the caller's thread writes too (else only helpers do).
    #[cfg(test)]
    fail_at: Option<usize>,
    #[cfg(test)]
    caller_writes: bool,
}

impl Writers {
    /// `threads` writers in all: the caller's thread and `threads - 1` helpers.
    pub fn start(threads: usize) -> Writers {
        let mut helpers = Vec::new();
        for i in 1..threads.max(1) {
            let (jobs, job_rx) = sync_channel::<Arc<Batch>>(1);
            let (done_tx, done) = sync_channel::<SentCounts>(1);
            let spawned = std::thread::Builder::new().name(format!("bourse-fanout-{i}")).spawn(move || {
                let delivered = crate::telemetry::md_delivery();
                while let Ok(batch) = job_rx.recv() {
                    let mut sent = SentCounts::new();
                    batch.write(&mut sent, &delivered, None);
                    // Let go of the batch before saying so: the actor takes it back.
                    drop(batch);
                    if done_tx.send(sent).is_err() {
                        return;
                    }
                }
            });
            match spawned {
                Ok(_) => helpers.push(Helper { jobs, done }),
                Err(e) => tracing::warn!(error = %e, "a fan-out writer thread did not start; fewer write the batches"),
            }
        }
        Writers {
            helpers,
            groups: Vec::new(),
            chunks: Vec::new(),
            written: Vec::new(),
            #[cfg(test)]
            fail_at: None,
            #[cfg(test)]
            caller_writes: true,
        }
    }

    /// Writes what `dues` admitted, each connection's messages in the order
    /// admitted, at most `group_max` of them a write, and returns what was
    /// sent, once all of it is written or queued; `dues` is left empty (its
    /// room kept).
    pub fn write(&mut self, dues: &mut Admitted, group_max: usize) -> SentCounts {
        self.write_or_yield(dues, group_max, &|| false)
    }

    /// [`Writers::write`], except that this thread asks `yield_now` after
    /// each chunk it writes, and when told to, stops the batch: the
    /// chunks no writer has taken are left in `dues` (admitted again, in
    /// the same order), to go ahead of whatever is admitted next. So a
    /// commit that arrives while a batch is written joins the writes of
    /// the connections not yet written, instead of waiting for all of them
    /// and then for its own batch.
    pub fn write_or_yield(&mut self, dues: &mut Admitted, group_max: usize, yield_now: &dyn Fn() -> bool) -> SentCounts {
        let mut groups = std::mem::take(&mut self.groups);
        dues.group(group_max, &mut groups);
        let delivered = crate::telemetry::md_delivery();
        let mut sent = SentCounts::new();
        let threads = (groups.len() / SPLIT_GROUPS_MIN).clamp(1, self.helpers.len() + 1);
        let mut chunk_list = std::mem::take(&mut self.chunks);
        chunks(|g| dues.group_conn(g), &groups, CHUNK_GROUPS_MAX, &mut chunk_list);
        let mut written = std::mem::take(&mut self.written);
        written.clear();
        written.resize_with(chunk_list.len(), || AtomicBool::new(false));
        let batch = Arc::new(Batch {
            dues: std::mem::take(dues),
            groups,
            chunks: chunk_list,
            next: AtomicUsize::new(0),
            written,
            stop: AtomicBool::new(false),
            #[cfg(test)]
            fail_at: self.fail_at,
        });
        #[cfg(test)]
        let threads = if self.caller_writes { threads } else { self.helpers.len() + 1 };
        let mut handed = Vec::new();
        let mut gone = Vec::new();
        for (i, h) in self.helpers.iter().enumerate().take(threads - 1) {
            // A helper that is gone leaves its chunks to the others.
            match h.jobs.send(batch.clone()) {
                Ok(()) => handed.push(i),
                Err(_) => gone.push(i),
            }
        }
        #[cfg(test)]
        let caller_writes = self.caller_writes || handed.is_empty();
        #[cfg(not(test))]
        let caller_writes = true;
        // A panic on this thread fails the chunk it was writing, as a
        // helper's does: the actor (all market data) goes on.
        let mut failed = caller_writes && !write_caught(&batch, &mut sent, &delivered, Some(yield_now));
        for &i in &handed {
            let Ok(theirs) = self.helpers[i].done.recv() else {
                // It ended without answering: it failed mid-batch.
                failed = true;
                gone.push(i);
                continue;
            };
            for (ch, n, bytes) in theirs {
                match sent.iter_mut().find(|s| s.0 == ch) {
                    Some(s) => {
                        s.1 += n;
                        s.2 += bytes;
                    }
                    None => sent.push((ch, n, bytes)),
                }
            }
        }
        if failed {
            // Chunks nobody took are written here (none when this thread
            // wrote too, which it always does outside tests, unless the
            // batch was stopped: then they are carried). Each failure
            // costs the chunk it was writing, so this ends.
            while !write_caught(&batch, &mut sent, &delivered, None) {}
            let chunks = batch.abandon_unwritten();
            tracing::error!(chunks, "a fan-out writer failed mid-batch; the connections it was writing are closed (1011) to resume");
        }
        if !gone.is_empty() {
            gone.sort_unstable();
            for i in gone.into_iter().rev() {
                self.helpers.remove(i);
            }
        }
        let mut carried = None;
        if !batch.untaken_groups().is_empty() {
            let mut next = Admitted::default();
            next.carry(&batch.dues, batch.untaken_groups());
            carried = Some(next);
        }
        // Every helper has let go of it (or is gone, and then its room is lost).
        if let Ok(b) = Arc::try_unwrap(batch) {
            *dues = b.dues;
            dues.clear();
            self.groups = b.groups;
            self.chunks = b.chunks;
            self.written = b.written;
        }
        if let Some(next) = carried {
            *dues = next;
        }
        sent
    }
}

/// The fan-out writers to run: `configured`, or with 0 one more than the
/// machine's cores. A batch is done when its slowest part is: with a
/// thread more than there are cores each part is smaller, and one writer
/// descheduled mid-batch (the actor's own thread also handles commits)
/// holds up less of it (measured in BENCHMARKS.md, "Fan-out").
pub fn fanout_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::{Deliver, Encoded};
    use crate::session::frame;
    use crate::session::outbox::{Outbox, Queue, CLOSE_INTERNAL_ERROR};
    use crate::session::queue::Taken;
    use crate::session::outbox::GROUP_MAX;
    use crate::session::{Follower, Sub};
    use actix::{Actor, Context, Handler};
    use bourse_protocol::codec::Encoding;
    use bourse_protocol::msg as p;
    use serde_json::json;

    struct Owner;

    impl Actor for Owner {
        type Context = Context<Self>;
    }

    impl Handler<Deliver> for Owner {
        type Result = ();
        fn handle(&mut self, _: Deliver, _ctx: &mut Context<Self>) {}
    }

    /// `conns` connections, each subscribed to `trades:X` with its own queue.
    fn subscribers(owner: &actix::Addr<Owner>, conns: usize) -> (Vec<Arc<Queue>>, Vec<Follower>) {
        let mut queues = Vec::new();
        let mut followers = Vec::new();
        for c in 0..conns {
            let q = Arc::new(Queue::new(100, 1 << 20, 1));
            let out = Arc::new(Outbox::new(c, Encoding::Json, q.clone(), owner.clone().recipient()));
            let sub = Sub { key: "trades:X".into(), ch: p::Channel::Trades, sym: Some("X".into()), depth: 0, interval: None, cksum: false, on_lag: p::OnLag::Conflate };
            followers.push(Follower::new(out, sub, Default::default()));
            queues.push(q);
        }
        (queues, followers)
    }

    /// The messages queued on `q` (short text frames), taken off it.
    async fn queued(q: &Queue) -> Vec<serde_json::Value> {
        let mut t = Taken::default();
        q.take(100, &mut t).await.expect("frames queued");
        t.frames.iter().map(|f| serde_json::from_slice(&f[2..]).unwrap()).collect()
    }

    /// A batch of three `trades` messages from seq `from`, admitted message
    /// by message, connection by connection, as the actor does.
    fn trades(from: u64, followers: &mut [Follower]) -> Admitted {
        let mut batch = Admitted::default();
        for seq in from..from + 3 {
            let e = Arc::new(Encoded::owned("trades:X".into(), seq, json!({"ch": "trades", "type": "update", "prev": seq - 1, "seq": seq})));
            for f in followers.iter_mut() {
                assert_eq!(batch.admit(f, &e), crate::session::Offered::Sent);
            }
        }
        batch
    }

    #[actix::test]
    async fn a_batch_cut_between_threads_reaches_every_connection_once_and_in_order() {
        let owner = Owner.start();
        let conns = 300;
        let (queues, mut followers) = subscribers(&owner, conns);
        let mut dues = trades(1, &mut followers);
        let mut w = Writers::start(3);
        // Groups of two: each connection's three messages are two groups,
        // which one thread must write, in order.
        let sent = w.write(&mut dues, 2);
        assert!(dues.is_empty());
        assert_eq!(sent.iter().map(|s| s.1).sum::<u64>(), 3 * conns as u64, "{sent:?}");
        assert_delivered(&queues, &followers, &[1, 2, 3]).await;
    }

    #[actix::test]
    async fn a_writer_that_fails_mid_batch_closes_what_it_was_writing_and_the_rest_goes_on() {
        let owner = Owner.start();
        let conns = 300;
        let (queues, mut followers) = subscribers(&owner, conns);
        // Only the two helpers write; the one that takes connection 150's
        // chunk panics there.
        let mut w = Writers::start(3);
        w.caller_writes = false;
        w.fail_at = Some(150);
        let mut dues = trades(1, &mut followers);
        w.write(&mut dues, 64);
        assert_eq!(w.helpers.len(), 1, "the failed helper is no longer handed batches");
        let closed = written_or_closed(&queues, &followers).await;
        assert!(closed.contains(&150), "{closed:?}");
        // Only the failed chunk's connections: about CHUNK_GROUPS_MAX of them, in a row.
        assert!(closed.len() <= CHUNK_GROUPS_MAX && closed.windows(2).all(|p| p[1] == p[0] + 1), "{closed:?}");
        // The next batch is written whole by the helper left.
        w.fail_at = None;
        next_batch_reaches_the_rest(&mut w, followers);
    }

    #[actix::test]
    async fn a_failure_on_the_actors_own_thread_closes_what_it_was_writing_and_the_rest_goes_on() {
        let owner = Owner.start();
        let conns = 300;
        let (queues, mut followers) = subscribers(&owner, conns);
        // No helpers: the actor's thread writes every chunk, and panics at
        // connection 150's. The panic does not leave the call.
        let mut w = Writers::start(1);
        w.fail_at = Some(150);
        let mut dues = trades(1, &mut followers);
        w.write(&mut dues, 64);
        assert!(dues.is_empty());
        let closed = written_or_closed(&queues, &followers).await;
        assert!(closed.contains(&150), "{closed:?}");
        assert!(closed.len() <= CHUNK_GROUPS_MAX && closed.windows(2).all(|p| p[1] == p[0] + 1), "{closed:?}");
        // The chunks after the failed one were written (by the same thread, after it).
        assert!(!closed.contains(&(conns - 1)), "{closed:?}");
        w.fail_at = None;
        next_batch_reaches_the_rest(&mut w, followers);
    }

    /// Every connection has all three messages, or is closed with 1011
    /// after what reached it: never a silent gap. Returns the closed ones.
    async fn written_or_closed(queues: &[Arc<Queue>], followers: &[Follower]) -> Vec<usize> {
        let mut closed = Vec::new();
        for (c, q) in queues.iter().enumerate() {
            let mut t = Taken::default();
            if q.used().0 > 0 {
                q.take(100, &mut t).await;
                q.written(t.frames.len(), t.bytes);
            }
            let mut seqs = Vec::new();
            let mut close = None;
            for f in &t.frames {
                match frame::parse(f) {
                    Some((frame::OP_TEXT, body)) => seqs.push(serde_json::from_slice::<serde_json::Value>(body).unwrap()["seq"].as_u64().unwrap()),
                    Some((frame::OP_CLOSE, body)) => close = Some(u16::from_be_bytes([body[0], body[1]])),
                    other => panic!("connection {c}: {other:?}"),
                }
            }
            if followers[c].out.closing() {
                assert_eq!(close, Some(CLOSE_INTERNAL_ERROR), "connection {c}");
                assert!(seqs.is_empty() || seqs == vec![1, 2, 3], "connection {c}: {seqs:?}");
                closed.push(c);
            } else {
                assert_eq!((seqs, close), (vec![1, 2, 3], None), "connection {c}");
            }
        }
        closed
    }

    /// A further batch (messages 4 to 6) reaches every connection still open, whole.
    fn next_batch_reaches_the_rest(w: &mut Writers, followers: Vec<Follower>) {
        let mut open: Vec<Follower> = followers.into_iter().filter(|f| !f.out.closing()).collect();
        let mut dues = trades(4, &mut open);
        let sent = w.write(&mut dues, 64);
        assert_eq!(sent.iter().map(|s| s.1).sum::<u64>(), 3 * open.len() as u64, "{sent:?}");
        for f in &open {
            assert_eq!(f.last.load(std::sync::atomic::Ordering::SeqCst), 6);
            assert!(!f.out.closing());
        }
    }

    /// Every connection got exactly `want` (seqs, in order), and every
    /// follower's heartbeat position is the last of them.
    async fn assert_delivered(queues: &[Arc<Queue>], followers: &[Follower], want: &[u64]) {
        for (c, q) in queues.iter().enumerate() {
            let seqs: Vec<u64> = queued(q).await.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
            assert_eq!(seqs, want, "connection {c}: in order, each once");
        }
        for f in followers {
            assert_eq!(f.last.load(std::sync::atomic::Ordering::SeqCst), *want.last().unwrap());
        }
    }

    /// Admits `trades:X` messages `seqs` for every follower into `dues`.
    fn admit_trades(seqs: std::ops::RangeInclusive<u64>, followers: &mut [Follower], dues: &mut Admitted) {
        for seq in seqs {
            let e = Arc::new(Encoded::owned("trades:X".into(), seq, json!({"ch": "trades", "type": "update", "prev": seq - 1, "seq": seq})));
            for f in followers.iter_mut() {
                assert_eq!(dues.admit(f, &e), crate::session::Offered::Sent);
            }
        }
    }

    #[actix::test]
    async fn a_batch_stopped_for_a_commit_carries_what_it_did_not_write_ahead_of_the_commits_messages() {
        let owner = Owner.start();
        let conns = 300;
        let (queues, mut followers) = subscribers(&owner, conns);
        let mut dues = trades(1, &mut followers);
        let mut w = Writers::start(1);
        // A commit waits from the start: the batch stops once the first
        // sixteenth of its chunks is written.
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let sent = w.write_or_yield(&mut dues, GROUP_MAX, &|| {
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            true
        });
        let chunks = conns.div_ceil(CHUNK_GROUPS_MAX);
        let written = chunks.div_ceil(YIELD_AFTER_DENOM) * CHUNK_GROUPS_MAX;
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1, "asked only once a sixteenth is taken");
        assert_eq!(sent.iter().map(|s| s.1).sum::<u64>(), 3 * written as u64, "{sent:?}");
        assert_eq!(dues.len(), 3 * (conns - written), "the rest is carried");
        for (c, f) in followers.iter().enumerate() {
            let last = f.last.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(last, if c < written { 3 } else { 0 }, "connection {c}: a carried message is not sent yet");
        }
        // The commit's messages join the carried ones; this batch is written whole.
        admit_trades(4..=6, &mut followers, &mut dues);
        let sent = w.write(&mut dues, GROUP_MAX);
        assert!(dues.is_empty());
        assert_eq!(sent.iter().map(|s| s.1).sum::<u64>(), 3 * conns as u64 + 3 * (conns - written) as u64, "{sent:?}");
        assert_delivered(&queues, &followers, &[1, 2, 3, 4, 5, 6]).await;
    }

    #[actix::test]
    async fn batches_stopped_while_helpers_write_still_give_every_connection_each_message_once_in_order() {
        let owner = Owner.start();
        let conns = 500;
        let (queues, mut followers) = subscribers(&owner, conns);
        let mut w = Writers::start(3);
        let mut dues = Admitted::default();
        let mut total = 0;
        let mut carried = 0;
        // Ten commits of three messages, each batch stopped when it may be.
        for commit in 0..10u64 {
            admit_trades(3 * commit + 1..=3 * commit + 3, &mut followers, &mut dues);
            total += w.write_or_yield(&mut dues, 2, &|| true).iter().map(|s| s.1).sum::<u64>();
            carried += usize::from(!dues.is_empty());
        }
        assert!(carried > 0, "some batch was stopped");
        total += w.write(&mut dues, 2).iter().map(|s| s.1).sum::<u64>();
        assert!(dues.is_empty());
        assert_eq!(total, 30 * conns as u64);
        assert_delivered(&queues, &followers, &(1..=30).collect::<Vec<u64>>()).await;
    }

    #[actix::test]
    async fn chunks_end_only_where_a_connections_groups_end() {
        let owner = Owner.start();
        // Connections 0..10; connection 3 has five messages, the others one,
        // in groups of one.
        let mut batch = Admitted::default();
        for c in 0..10usize {
            let q = Arc::new(Queue::new(100, 1 << 20, 1));
            let out = Arc::new(Outbox::new(c, Encoding::Json, q, owner.clone().recipient()));
            let sub = Sub { key: "trades:X".into(), ch: p::Channel::Trades, sym: Some("X".into()), depth: 0, interval: None, cksum: false, on_lag: p::OnLag::Conflate };
            let mut f = Follower::new(out, sub, Default::default());
            for seq in 1..=if c == 3 { 5 } else { 1 } {
                let e = Arc::new(Encoded::owned("trades:X".into(), seq, json!({"seq": seq})));
                batch.admit(&mut f, &e);
            }
        }
        let mut groups = Vec::new();
        batch.group(1, &mut groups);
        assert_eq!(groups.len(), 14);
        let conn = |g: &Range<usize>| batch.group_outbox(g).conn;
        let mut got = Vec::new();
        chunks(conn, &groups, 2, &mut got);
        // Every group once, in order; no connection in two chunks.
        assert_eq!(got.first().map(|r| r.start), Some(0));
        assert_eq!(got.last().map(|r| r.end), Some(groups.len()));
        assert!(got.windows(2).all(|w| w[0].end == w[1].start));
        for w in got.windows(2) {
            assert_ne!(conn(&groups[w[0].end - 1]), conn(&groups[w[1].start]), "{got:?}");
        }
        assert!(got.iter().all(|r| r.len() >= 2 || r.end == groups.len()), "{got:?}");
        // Connection 3's five groups (places 3 to 7) share one chunk.
        assert!(got.iter().any(|r| r.start <= 3 && r.end >= 8), "{got:?}");
    }

    #[actix::test]
    async fn a_batch_groups_each_connections_messages_in_the_order_admitted() {
        let owner = Owner.start();
        // Two streams; connections 0..4 follow both, connection 4 only the
        // second: messages are admitted stream by stream, interleaved.
        // Connection numbers are never reused, so they are far apart.
        let mut queues = Vec::new();
        let mut a = Vec::new();
        let mut b = Vec::new();
        for c in 0..5usize {
            let q = Arc::new(Queue::new(100, 1 << 20, 1));
            let out = Arc::new(Outbox::new(c << 40, Encoding::Json, q.clone(), owner.clone().recipient()));
            let sub = |key: &str| Sub { key: key.into(), ch: p::Channel::Trades, sym: Some("X".into()), depth: 0, interval: None, cksum: false, on_lag: p::OnLag::Conflate };
            if c < 4 {
                a.push(Follower::new(out.clone(), sub("a"), Default::default()));
            }
            b.push(Follower::new(out, sub("b"), Default::default()));
            queues.push(q);
        }
        let mut batch = Admitted::default();
        for seq in 1..=3u64 {
            let ea = Arc::new(Encoded::owned("a".into(), seq, json!({"k": "a", "seq": seq})));
            let eb = Arc::new(Encoded::owned("b".into(), 10 + seq, json!({"k": "b", "seq": 10 + seq})));
            for f in a.iter_mut() {
                batch.admit(f, &ea);
            }
            for f in b.iter_mut() {
                batch.admit(f, &eb);
            }
        }
        assert_eq!(batch.len(), 4 * 6 + 3);
        let mut w = Writers::start(1);
        w.write(&mut batch, GROUP_MAX);
        assert!(batch.is_empty());
        for (c, q) in queues.iter().enumerate() {
            let got: Vec<String> = queued(q).await.iter().map(|v| format!("{}{}", v["k"].as_str().unwrap(), v["seq"])).collect();
            let want: Vec<&str> = if c < 4 { vec!["a1", "b11", "a2", "b12", "a3", "b13"] } else { vec!["b11", "b12", "b13"] };
            assert_eq!(got, want, "connection {c}");
        }
        for f in &a {
            assert_eq!(f.last.load(std::sync::atomic::Ordering::SeqCst), 3);
        }
        for f in &b {
            assert_eq!(f.last.load(std::sync::atomic::Ordering::SeqCst), 13);
        }
    }
}
