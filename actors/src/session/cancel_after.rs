//! `order.cancel_after`, the dead-man switch: one per account, kept by the
//! node rather than by the connection that armed it, so that it still fires
//! once that connection is gone (the client's process dead, its network
//! down), which is what it is for. Arming it again, from any connection of
//! the account, replaces the deadline; a timeout of 0 disarms it. Neither a
//! logout nor a closed connection touches it.
//!
//! Cancel-on-disconnect goes through here too ([`cancel_placed`],
//! [`cancel_all_of`]): like a fired switch, it acts for a client that is
//! gone, so nothing it sends may be dropped for load.
//!
//! A switch is a timer task on the arming session's thread; when it fires it
//! hands the ledger a cancel-all of the account (halted books passed over,
//! as for every client cancel-all), again every [`RETRY_MS`] while the
//! ledger's mailbox is full. A switch lives in the node's memory: a restart
//! (or, in a cluster, the loss of the node the client armed it on) disarms
//! it, as it ends every connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::SendError;
use bourse_engine::{AccountId, Command, InstrumentId, OrderId, OrderRef};
use bourse_protocol::ErrorCode;
use dashmap::DashMap;

use crate::ledger::{Query, Shape, Submit};
use crate::node::Shared;
use crate::reply::Responder;

/// Pause before handing a cancel to the ledger again (its mailbox full, or
/// its book's).
pub const RETRY_MS: u64 = 20;
/// Cancels of a closing `cod: connection` session in flight at once: well
/// below a book's and the ledger's limits of commands waiting.
pub const CANCELS_IN_FLIGHT_MAX: usize = 64;

/// The armed switches, by account.
#[derive(Debug, Default)]
pub struct Switches {
    /// Each armed account's switch: its arming number and its timer.
    armed: DashMap<AccountId, (u64, tokio::task::AbortHandle)>,
    next: AtomicU64,
}

impl Switches {
    /// Arms `account`'s switch to fire `after` from now, replacing the one
    /// armed before, if any.
    pub fn arm(shared: &Arc<Shared>, account: AccountId, after: Duration) {
        let n = shared.cancel_after.next.fetch_add(1, Ordering::Relaxed);
        let s = shared.clone();
        let task = actix::spawn(async move {
            tokio::time::sleep(after).await;
            // Only this arming's own entry goes: a newer one replaced it
            // (and aborted this task) otherwise.
            s.cancel_after.armed.remove_if(&account, |_, (m, _)| *m == n);
            tracing::info!(account = account.0, "cancel_after fired");
            cancel_all_of(&s, account).await;
        });
        // One step, so that two connections arming at once leave one switch.
        if let Some((_, old)) = shared.cancel_after.armed.insert(account, (n, task.abort_handle())) {
            old.abort();
        }
    }

    /// Disarms `account`'s switch, if armed.
    pub fn disarm(&self, account: AccountId) {
        if let Some((_, (_, h))) = self.armed.remove(&account) {
            h.abort();
        }
    }
}

/// Hands the ledger a client cancel-all of `account` (a fired switch's, or
/// cancel-on-disconnect `account`'s), waiting while its mailbox is full;
/// given up only when the node stops. A cancel-all is never refused for
/// load once the ledger has it.
pub async fn cancel_all_of(shared: &Shared, account: AccountId) {
    let mut cmd = Command::CancelAll { account: Some(account), inst: None, side: None, admin: false };
    loop {
        if shared.stopping() {
            return;
        }
        match shared.ledger().try_send(Submit { cmd, to: Responder::Drop, shape: Shape::Empty }) {
            Ok(()) => {
                crate::telemetry::LEDGER_MAILBOX.enqueued();
                return;
            }
            Err(SendError::Closed(_)) => return,
            Err(SendError::Full(s)) => {
                metrics::counter!("bourse_overloaded_total", "actor" => "ledger").increment(1);
                cmd = s.cmd;
                tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
            }
        }
    }
}

/// Cancels the orders a closing `cod: connection` session placed for
/// `account`: `placed`, the orders its places were answered with (by
/// instrument and order id), and `in_flight`, the places not yet answered
/// (by instrument and `cl_id`; the ledger decides each before anything
/// sent after it, so the cancel finds the order the place made). Orders of
/// `placed` that already ended are left out by one question to the ledger
/// first. At most [`CANCELS_IN_FLIGHT_MAX`] cancels are in flight at a
/// time, each waiting for room in the ledger's mailbox and handed back
/// again after an `overloaded` answer (a book with too many commands
/// waiting), so that none is lost to load.
pub async fn cancel_placed(
    shared: Arc<Shared>,
    account: AccountId,
    mut placed: Vec<(InstrumentId, u64)>,
    in_flight: Vec<(InstrumentId, String)>,
) {
    use futures_util::StreamExt as _;
    if !placed.is_empty() {
        let Ok(Ok(open)) = shared.ledger().send(Query::OpenIds(account)).await else { return };
        let open: std::collections::HashSet<u64> = open["ids"].as_array().into_iter().flatten().filter_map(|v| v.as_u64()).collect();
        placed.retain(|(_, id)| open.contains(id));
    }
    let orders = placed
        .into_iter()
        .map(|(inst, id)| (inst, OrderRef::Id(OrderId(id))))
        .chain(in_flight.into_iter().map(|(inst, cl_id)| (inst, OrderRef::ClId(cl_id))));
    futures_util::stream::iter(orders)
        .for_each_concurrent(CANCELS_IN_FLIGHT_MAX, |(inst, order)| {
            let shared = &shared;
            async move {
                loop {
                    if shared.stopping() {
                        return;
                    }
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let cmd = Command::Cancel { account, inst, order: order.clone() };
                    if shared.ledger().send(Submit { cmd, to: Responder::Channel(tx), shape: Shape::Empty }).await.is_err() {
                        return;
                    }
                    match rx.await {
                        Ok(Err(e)) if e.code == ErrorCode::Overloaded => {
                            tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
                        }
                        _ => return,
                    }
                }
            }
        })
        .await;
}
