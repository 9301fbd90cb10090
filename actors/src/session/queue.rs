//! A connection's bounded queue of outbound frames, between those who queue
//! (the session, the market-data actor, tungstenite's control answers) and
//! the connection's writer.
//!
//! One lock guards the frames; the counts `lagging` reads are kept beside
//! it so that checking a subscriber's lag takes no lock. The writer is
//! woken only when the queue goes from empty to not empty: a burst of
//! frames queued while it writes is found by its next pass, with no wake.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

/// Places of the queue kept for the last two frames (a notice and the
/// close), so a client that stopped reading is still told why it is closed.
pub const RESERVED_FRAMES: usize = 2;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: the client does not read.
    Full,
    /// The connection is closing or closed.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// When the oldest stream message not yet taken was made (0: none).
    oldest_made_us: u64,
    /// Handles that may still queue; at 0 the writer ends once it has written everything.
    producers: usize,
    /// The writer has ended: nothing more is taken.
    writer_gone: bool,
}

#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    /// Frames queued and not yet written, the reserved ones included.
    frames: AtomicUsize,
    /// Bytes queued and not yet written.
    bytes: AtomicUsize,
    /// Frames at most: `limits.outbound_msgs_max` plus [`RESERVED_FRAMES`].
    frames_max: usize,
    /// `limits.outbound_bytes_max`.
    bytes_max: usize,
    wake: Notify,
}

/// What the writer takes in one pass.
#[derive(Debug, Default)]
pub struct Taken {
    pub frames: VecDeque<Bytes>,
    pub bytes: usize,
    /// When the oldest stream message among them was made (0: none).
    pub oldest_made_us: u64,
}

impl Queue {
    /// A queue for `msgs_max` frames (plus the reserved ones) and `bytes_max`
    /// bytes, with `producers` handles that may queue (each says when it is
    /// gone with [`Queue::producer_gone`]).
    pub fn new(msgs_max: usize, bytes_max: usize, producers: usize) -> Queue {
        let state = State { producers, ..State::default() };
        Queue {
            state: Mutex::new(state),
            frames: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            frames_max: msgs_max + RESERVED_FRAMES,
            bytes_max,
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only frames behind: still a valid queue.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Frames and bytes queued and not yet written.
    pub fn used(&self) -> (usize, usize) {
        (self.frames.load(Ordering::Acquire), self.bytes.load(Ordering::Acquire))
    }

    /// Frames the queue holds at most, without the reserved places.
    pub fn msgs_max(&self) -> usize {
        self.frames_max - RESERVED_FRAMES
    }

    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    /// Queues a frame, keeping the last [`RESERVED_FRAMES`] places free unless
    /// `reserved`. `made_us` is a stream message's creation time (0 otherwise).
    pub fn push(&self, f: Bytes, made_us: u64, reserved: bool) -> Result<(), Refused> {
        let limit = if reserved { self.frames_max } else { self.frames_max - RESERVED_FRAMES };
        let len = f.len();
        let was_empty = {
            let mut st = self.lock();
            if st.writer_gone {
                return Err(Refused::Closed);
            }
            if st.frames.len() >= limit || self.frames.load(Ordering::Acquire) >= limit {
                return Err(Refused::Full);
            }
            if st.oldest_made_us == 0 {
                st.oldest_made_us = made_us;
            }
            st.frames.push_back(f);
            self.frames.fetch_add(1, Ordering::AcqRel);
            self.bytes.fetch_add(len, Ordering::AcqRel);
            st.frames.len() == 1
        };
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// A handle that could queue is gone.
    pub fn producer_gone(&self) {
        let last = {
            let mut st = self.lock();
            st.producers = st.producers.saturating_sub(1);
            st.producers == 0
        };
        if last {
            self.wake.notify_one();
        }
    }

    /// Waits for frames and takes up to `max` of them, stopping after a close
    /// frame. `None`: nobody can queue any more and nothing is left.
    pub async fn take(&self, max: usize, into: &mut Taken) -> Option<()> {
        loop {
            {
                let mut st = self.lock();
                if !st.frames.is_empty() {
                    while into.frames.len() < max {
                        let Some(f) = st.frames.pop_front() else { break };
                        let close = super::frame::is_close(&f);
                        into.bytes += f.len();
                        into.frames.push_back(f);
                        if close {
                            break;
                        }
                    }
                    into.oldest_made_us = std::mem::take(&mut st.oldest_made_us);
                    return Some(());
                }
                if st.producers == 0 {
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }

    /// The writer wrote what it took: `frames` frames of `bytes` bytes.
    pub fn written(&self, frames: usize, bytes: usize) {
        self.frames.fetch_sub(frames, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// The writer has ended: whatever is queued is dropped and further frames refused.
    pub fn writer_gone(&self) {
        let mut st = self.lock();
        st.writer_gone = true;
        let dropped = st.frames.len();
        let bytes: usize = st.frames.iter().map(Bytes::len).sum();
        st.frames.clear();
        drop(st);
        self.written(dropped, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_reserved_places_and_the_counts() {
        let q = Queue::new(2, 1 << 20, 1);
        q.push(Bytes::from_static(b"a"), 0, false).unwrap();
        q.push(Bytes::from_static(b"bb"), 5, false).unwrap();
        assert_eq!(q.push(Bytes::from_static(b"c"), 0, false), Err(Refused::Full));
        q.push(Bytes::from_static(b"notice"), 0, true).unwrap();
        q.push(super::super::frame::close(4008, "slow"), 0, true).unwrap();
        assert_eq!(q.push(Bytes::from_static(b"late"), 0, true), Err(Refused::Full));
        assert_eq!(q.used().0, 4);
        let mut t = Taken::default();
        q.take(10, &mut t).await.unwrap();
        assert_eq!(t.frames.len(), 4, "all of it, through the close");
        assert_eq!(t.oldest_made_us, 5);
        // Still counted until written.
        assert_eq!(q.used().0, 4);
        q.written(t.frames.len(), t.bytes);
        assert_eq!(q.used(), (0, 0));
        q.writer_gone();
        assert_eq!(q.push(Bytes::from_static(b"x"), 0, false), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn the_writer_is_woken_by_a_frame_and_ends_when_every_producer_is_gone() {
        let q = std::sync::Arc::new(Queue::new(10, 1 << 20, 2));
        let q2 = q.clone();
        let writer = tokio::spawn(async move {
            let mut n = 0;
            loop {
                let mut t = Taken::default();
                if q2.take(10, &mut t).await.is_none() {
                    return n;
                }
                n += t.frames.len();
                q2.written(t.frames.len(), t.bytes);
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        q.push(Bytes::from_static(b"a"), 0, false).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        q.push(Bytes::from_static(b"b"), 0, false).unwrap();
        q.producer_gone();
        q.push(Bytes::from_static(b"c"), 0, false).unwrap();
        q.producer_gone();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await.unwrap().unwrap();
        assert_eq!(n, 3);
    }
}
