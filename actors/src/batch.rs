//! Draining a mailbox in batches. The ledger and the instruments move each
//! command from their mailbox into a queue of their own and run the queue
//! once the mailbox is empty (a [`Drain`] sent to themselves runs after the
//! messages already waiting), or at once when it reaches [`BATCH_MAX`].
//! Holding a batch lets an actor ask for the memory of the command two
//! ahead, and for what it leads to one ahead, before running each: the
//! engine's `prefetch` methods, whose reads would otherwise miss the cache
//! one command at a time once the state outgrows it (BENCHMARKS.md, round
//! 21: 9 to 17% on the engine's `mixed` stream).

use std::collections::VecDeque;

use actix::prelude::*;

/// Commands queued before the actor runs them whatever its mailbox holds:
/// the queue stays bounded however fast its mailbox is refilled.
pub const BATCH_MAX: usize = 64;

/// Runs the actor's queued commands; sent by an actor to itself.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// An actor that runs its commands in batches.
pub trait Drains: Actor {
    type Item;
    fn queue(&mut self) -> &mut VecDeque<Self::Item>;
    /// Asks for the memory `item` will read, `distance` commands (1 or 2)
    /// before it runs, changing nothing.
    fn ahead(&self, item: &Self::Item, distance: usize);
    fn run(&mut self, item: Self::Item, ctx: &mut Self::Context);
}

/// Queues `item`, and runs the queue now if it is full, or after the
/// messages already waiting when it was empty.
pub fn admit<A>(a: &mut A, item: A::Item, ctx: &mut A::Context)
where
    A: Drains + Handler<Drain>,
    A::Context: AsyncContext<A>,
{
    let q = a.queue();
    q.push_back(item);
    if q.len() >= BATCH_MAX {
        drain(a, ctx);
    } else if q.len() == 1 {
        ctx.notify(Drain);
    }
}

/// Runs every queued command in order, each after asking for the memory of
/// the two behind it.
pub fn drain<A: Drains>(a: &mut A, ctx: &mut A::Context) {
    let mut batch = std::mem::take(a.queue());
    while let Some(item) = batch.pop_front() {
        if let Some(two) = batch.get(1) {
            a.ahead(two, 2);
        }
        if let Some(one) = batch.front() {
            a.ahead(one, 1);
        }
        a.run(item, ctx);
    }
    // Keep the allocation; nothing was queued while the batch ran.
    *a.queue() = batch;
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::*;

    /// Records what it ran and what it was asked for ahead, in order.
    #[derive(Default)]
    struct Probe {
        queue: VecDeque<u32>,
        log: RefCell<Vec<String>>,
    }

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Drains for Probe {
        type Item = u32;
        fn queue(&mut self) -> &mut VecDeque<u32> {
            &mut self.queue
        }
        fn ahead(&self, item: &u32, distance: usize) {
            self.log.borrow_mut().push(format!("ahead {item} by {distance}"));
        }
        fn run(&mut self, item: u32, _: &mut Context<Self>) {
            self.log.borrow_mut().push(format!("run {item}"));
        }
    }

    impl Handler<Drain> for Probe {
        type Result = ();
        fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
            self.log.borrow_mut().push("drain".into());
            drain(self, ctx);
        }
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Item(u32);

    impl Handler<Item> for Probe {
        type Result = ();
        fn handle(&mut self, m: Item, ctx: &mut Context<Self>) {
            admit(self, m.0, ctx);
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<String>")]
    struct Log;

    impl Handler<Log> for Probe {
        type Result = MessageResult<Log>;
        fn handle(&mut self, _: Log, _: &mut Context<Self>) -> MessageResult<Log> {
            MessageResult(std::mem::take(&mut *self.log.borrow_mut()))
        }
    }

    async fn log_after(addr: &Addr<Probe>, items: std::ops::Range<u32>) -> Vec<String> {
        for i in items {
            addr.do_send(Item(i));
        }
        // The actor runs what it was sent before the test asks.
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        addr.send(Log).await.unwrap()
    }

    #[actix_rt::test]
    async fn a_mailbox_runs_as_one_batch_in_order_looking_two_ahead() {
        let addr = Probe::default().start();
        let log = log_after(&addr, 0..4).await;
        let want = [
            "drain", "ahead 2 by 2", "ahead 1 by 1", "run 0", "ahead 3 by 2", "ahead 2 by 1", "run 1", "ahead 3 by 1", "run 2",
            "run 3",
        ];
        assert_eq!(log, want);
    }

    #[actix_rt::test]
    async fn a_full_queue_runs_at_once() {
        let addr = Probe::default().start();
        let n = BATCH_MAX as u32 * 2 + 3;
        let log = log_after(&addr, 0..n).await;
        let ran: Vec<String> = log.iter().filter(|l| l.starts_with("run")).cloned().collect();
        assert_eq!(ran, (0..n).map(|i| format!("run {i}")).collect::<Vec<_>>());
        let first = log.iter().position(|l| l == "drain").unwrap();
        let before = log[..first].iter().filter(|l| l.starts_with("run")).count();
        assert_eq!(before, 2 * BATCH_MAX, "two full batches ran before the drain the first command scheduled");
    }
}
