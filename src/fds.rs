//! The process's file descriptors: every socket a client holds and every
//! file the node opens (log segments, the snapshot store, static files)
//! take one from the same limit (`RLIMIT_NOFILE`). A flood of connections
//! that took them all would leave the journal unable to open its next log
//! segment, and a node whose log cannot be written stops. So at start the
//! soft limit is raised to the hard one, and the sockets the server holds
//! at once (WebSockets and plain HTTP connections) are kept
//! `FDS_RESERVED` below it: past that it stops accepting until some close
//! (the kernel's backlog holds the rest), and `limits.connections_max` is
//! lowered to fit, with a warning.

use tracing::{info, warn};

/// Descriptors kept for the node's own files and the runtime's: log
/// segments (the journal's and those the snapshotter and resuming streams
/// read), the snapshot store, static files being served, the listener,
/// stdio, and each thread's event queues.
pub const FDS_RESERVED: u64 = 256;

/// The sockets the server may hold at once under an open-file limit of
/// `limit`; an error when the limit leaves none beyond the reserve (the
/// server could accept nothing).
pub fn sockets_within(limit: u64) -> Result<usize, String> {
    match limit.saturating_sub(FDS_RESERVED) {
        0 => Err(format!(
            "the open-file limit ({limit}) leaves no sockets beyond the {FDS_RESERVED} descriptors the node keeps for its own \
             files: raise it (`ulimit -n`, or LimitNOFILE= in a systemd unit)"
        )),
        n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

/// Raises the soft open-file limit to the hard one, and returns the
/// sockets the server may hold at once under it.
pub fn raise_and_budget() -> Result<usize, String> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let sockets = sockets_within(limit)?;
            info!(open_files_max = limit, sockets_max = sockets, "open-file limit");
            Ok(sockets)
        }
        Err(e) => {
            warn!(error = %e, "the open-file limit could not be read or raised; sockets are not capped by it");
            Ok(usize::MAX)
        }
    }
}

/// `connections_max` as the socket budget allows, with a warning when it
/// had to be lowered.
pub fn websockets_max(connections_max: usize, sockets_max: usize) -> usize {
    if connections_max > sockets_max {
        warn!(
            connections_max,
            lowered_to = sockets_max,
            "limits.connections_max is above what the open-file limit leaves for sockets: lowered \
             (raise the limit: `ulimit -n`, or LimitNOFILE= in a systemd unit)"
        );
    }
    connections_max.min(sockets_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_the_reserve_for_the_nodes_own_files() {
        assert_eq!(sockets_within(20_000), Ok(20_000 - FDS_RESERVED as usize));
        assert_eq!(sockets_within(FDS_RESERVED + 1), Ok(1));
        for none in [FDS_RESERVED, 10, 0] {
            let e = sockets_within(none).unwrap_err();
            assert!(e.contains("leaves no sockets") && e.contains("ulimit -n"), "{e}");
        }
        assert_eq!(websockets_max(20_000, 1_000), 1_000);
        assert_eq!(websockets_max(500, 1_000), 500);
    }
}
