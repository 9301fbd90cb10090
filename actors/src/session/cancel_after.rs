//! `order.cancel_after`, the dead-man switch: one per account, kept by the
//! node rather than by the connection that armed it, so that it still fires
//! once that connection is gone (the client's process dead, its network
//! down), which is what it is for. Arming it again, from any connection of
//! the account, replaces the deadline; a timeout of 0 disarms it. Neither a
//! logout nor a closed connection touches it.
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
use bourse_engine::{AccountId, Command};
use dashmap::DashMap;

use crate::ledger::{Shape, Submit};
use crate::node::Shared;
use crate::reply::Responder;

/// Pause before handing a fired switch's cancel-all to a full ledger mailbox again.
pub const RETRY_MS: u64 = 20;

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
            fire(&s, account).await;
        });
        if let Some((_, (_, old))) = shared.cancel_after.armed.remove(&account) {
            old.abort();
        }
        shared.cancel_after.armed.insert(account, (n, task.abort_handle()));
    }

    /// Disarms `account`'s switch, if armed.
    pub fn disarm(&self, account: AccountId) {
        if let Some((_, (_, h))) = self.armed.remove(&account) {
            h.abort();
        }
    }
}

/// Hands the ledger the cancel-all of a fired switch, waiting while its
/// mailbox is full; given up only when the node stops.
async fn fire(shared: &Shared, account: AccountId) {
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
