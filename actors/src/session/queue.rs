//! A connection's bounded queue of outbound frames, between those who queue
//! (the session, the market-data actor, tungstenite's control answers) and
//! the connection's writer.
//!
//! One lock guards the frames; the counts `lagging` reads are kept beside
//! it so that checking a subscriber's lag takes no lock. The writer is
//! woken only when the queue goes from empty to not empty: a burst of
//! frames queued while it writes is found by its next pass, with no wake.
//!
//! [`Queue::send`] lets a producer on another thread (the market-data
//! actor) write to the socket itself when nothing is queued and nobody is
//! writing: the frames reach the kernel at once, with no hand-over to the
//! writer. Whoever writes holds the queue's `writing` mark, so writes never
//! interleave; what the socket does not take is queued first, for the
//! writer, which waits for the socket to take more.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes};
use tokio::net::tcp::OwnedWriteHalf;
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
    /// The writer has ended, or has taken a close frame: nothing more is
    /// queued or written.
    writer_gone: bool,
    /// Someone (the writer, or a producer in [`Queue::send`]) is writing to the socket.
    writing: bool,
    /// The socket's sending half, shared with the writer (see [`Queue::attach`]).
    socket: Option<Arc<OwnedWriteHalf>>,
    /// The front of `frames` is the rest of a frame the socket took part
    /// of: its first byte is not a frame header (and it is never a close).
    front_partial: bool,
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

/// What became of frames given to [`Queue::send`].
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// All written to the socket now; `at_us` when the write returned.
    Written { at_us: u64 },
    /// All queued for the writer (some may have been written first).
    Queued,
    /// The first `n` were accepted (written or queued); the next was refused.
    Refused(usize, Refused),
}

/// Buffers in one vectored write (Linux takes up to 1,024).
pub const IOV_MAX: usize = 64;

/// What the writer takes in one pass.
#[derive(Debug, Default)]
pub struct Taken {
    pub frames: VecDeque<Bytes>,
    pub bytes: usize,
    /// When the oldest stream message among them was made (0: none).
    pub oldest_made_us: u64,
    /// The last of them is a close frame: the writer ends after it. (Only
    /// the queue can tell: the rest of a partly written frame may begin
    /// with any byte.)
    pub close: bool,
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

    /// Shares the socket's sending half, so that [`Queue::send`] can write.
    pub fn attach(&self, socket: Arc<OwnedWriteHalf>) {
        let mut st = self.lock();
        if !st.writer_gone {
            st.socket = Some(socket);
        }
    }

    /// Sends `frames` in order. When nothing is queued and nobody is
    /// writing they are written to the socket from the calling thread, and
    /// what the socket does not take at once is queued for the writer
    /// ahead of anything queued meanwhile (so it may take the queue past
    /// its limit by one call's frames). Otherwise each is queued as by
    /// [`Queue::push`]. `made_us` is when the oldest of them was made.
    pub fn send<'a, I>(&self, frames: I, made_us: u64) -> Sent
    where
        I: ExactSizeIterator<Item = &'a Bytes> + Clone,
    {
        let socket = {
            let mut st = self.lock();
            if st.writer_gone {
                return Sent::Refused(0, Refused::Closed);
            }
            match &st.socket {
                Some(s) if st.frames.is_empty() && !st.writing && frames.len() <= IOV_MAX => {
                    let s = s.clone();
                    st.writing = true;
                    s
                }
                _ => {
                    drop(st);
                    for (i, f) in frames.enumerate() {
                        if let Err(r) = self.push(f.clone(), made_us, false) {
                            return Sent::Refused(i, r);
                        }
                    }
                    return Sent::Queued;
                }
            }
        };
        let mut slices = [std::io::IoSlice::new(&[]); IOV_MAX];
        let used = frames.clone().zip(slices.iter_mut()).map(|(f, s)| *s = std::io::IoSlice::new(f)).count();
        // A failed write leaves everything to the writer, whose own write
        // then fails and ends the connection.
        let mut n = socket.try_write_vectored(&slices[..used]).unwrap_or(0);
        let at_us = crate::reply::now_us();
        let mut st = self.lock();
        st.writing = false;
        let mut rest: Vec<Bytes> = Vec::new();
        let mut partial = false;
        for f in frames {
            if n == 0 {
                rest.push(f.clone());
            } else if n >= f.len() {
                n -= f.len();
            } else {
                let mut f = f.clone();
                f.advance(n);
                n = 0;
                partial = true;
                rest.push(f);
            }
        }
        let all = rest.is_empty();
        if !all && !st.writer_gone {
            st.front_partial = partial;
            let bytes: usize = rest.iter().map(Bytes::len).sum();
            self.frames.fetch_add(rest.len(), Ordering::AcqRel);
            self.bytes.fetch_add(bytes, Ordering::AcqRel);
            if st.oldest_made_us == 0 || made_us < st.oldest_made_us {
                st.oldest_made_us = made_us;
            }
            for f in rest.into_iter().rev() {
                st.frames.push_front(f);
            }
        }
        let wake = !st.frames.is_empty();
        drop(st);
        if wake {
            self.wake.notify_one();
        }
        if all {
            Sent::Written { at_us }
        } else {
            Sent::Queued
        }
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
                if !st.frames.is_empty() && !st.writing {
                    while into.frames.len() < max {
                        let Some(f) = st.frames.pop_front() else { break };
                        let partial = std::mem::take(&mut st.front_partial);
                        let close = !partial && super::frame::is_close(&f);
                        into.bytes += f.len();
                        into.frames.push_back(f);
                        if close {
                            // Nothing may follow the close frame.
                            into.close = true;
                            st.writer_gone = true;
                            break;
                        }
                    }
                    into.oldest_made_us = std::mem::take(&mut st.oldest_made_us);
                    st.writing = true;
                    return Some(());
                }
                if st.frames.is_empty() && st.producers == 0 && !st.writing {
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }

    /// The writer wrote what it took: `frames` frames of `bytes` bytes.
    pub fn written(&self, frames: usize, bytes: usize) {
        self.lock().writing = false;
        self.uncount(frames, bytes);
    }

    fn uncount(&self, frames: usize, bytes: usize) {
        self.frames.fetch_sub(frames, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// The writer has ended: whatever is queued is dropped and further frames refused.
    pub fn writer_gone(&self) {
        let mut st = self.lock();
        st.writer_gone = true;
        st.writing = false;
        st.socket = None;
        st.front_partial = false;
        let dropped = st.frames.len();
        let bytes: usize = st.frames.iter().map(Bytes::len).sum();
        st.frames.clear();
        drop(st);
        self.uncount(dropped, bytes);
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

    /// A connected pair: the server's sending half with its writer, and the client.
    async fn wired(msgs_max: usize) -> (std::sync::Arc<Queue>, tokio::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        let (_rd, wr) = server.into_split();
        std::mem::forget(_rd);
        let q = std::sync::Arc::new(Queue::new(msgs_max, 64 << 20, 1));
        tokio::spawn(super::super::writer::run(q.clone(), wr, std::time::Duration::from_secs(10), 0));
        // The writer shares the socket once it runs.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        (q, client)
    }

    async fn read_exactly(client: &mut tokio::net::TcpStream, n: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut got = vec![0u8; n];
        tokio::time::timeout(std::time::Duration::from_secs(10), client.read_exact(&mut got)).await.unwrap().unwrap();
        got
    }

    #[tokio::test]
    async fn an_idle_connection_is_written_by_the_sender_and_a_busy_one_keeps_its_order() {
        let (q, mut client) = wired(100).await;
        let sent = q.send([Bytes::from_static(b"ab"), Bytes::from_static(b"cd")].iter(), 1);
        assert!(matches!(sent, Sent::Written { .. }), "{sent:?}");
        assert_eq!(q.used(), (0, 0), "nothing was queued");
        assert_eq!(read_exactly(&mut client, 4).await, b"abcd");
        // Queued frames go first: a send behind them is queued too.
        {
            let mut st = q.lock();
            st.writing = true; // as while the writer writes
        }
        q.push(Bytes::from_static(b"1"), 0, false).unwrap();
        assert_eq!(q.send([Bytes::from_static(b"2")].iter(), 0), Sent::Queued);
        q.written(0, 0);
        q.wake.notify_one();
        assert_eq!(read_exactly(&mut client, 2).await, b"12");
    }

    #[tokio::test]
    async fn what_a_full_socket_does_not_take_is_written_before_anything_queued_later() {
        let (q, mut client) = wired(100_000).await;
        // The client does not read: sends fill the socket's buffers, then
        // queue. The payload's bytes read as a close frame's first byte, so
        // the rest of a frame the socket took part of must not be taken
        // for a close.
        let chunk = super::super::frame::frame(super::super::frame::OP_BINARY, &vec![0x88u8; 64 * 1024]);
        let mut sent_bytes = 0;
        let mut queued = false;
        for _ in 0..2_000 {
            match q.send(std::iter::once(&chunk), 0) {
                Sent::Written { .. } => sent_bytes += chunk.len(),
                Sent::Queued => {
                    sent_bytes += chunk.len();
                    queued = true;
                    break;
                }
                Sent::Refused(..) => panic!("refused"),
            }
        }
        assert!(queued, "the socket never filled");
        // The writer takes the remainder alone, and writes on after it.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        q.push(Bytes::from_static(b"last"), 0, false).unwrap();
        let got = read_exactly(&mut client, sent_bytes + 4).await;
        assert!(got[..sent_bytes].chunks(chunk.len()).all(|c| c == &chunk[..c.len()]), "the remainder came first, whole");
        assert_eq!(&got[sent_bytes..], b"last");
    }

    #[tokio::test]
    async fn nothing_is_written_after_a_close_frame() {
        let (q, mut client) = wired(100).await;
        let close = super::super::frame::close(1000, "bye");
        q.push(close.clone(), 0, true).unwrap();
        let got = read_exactly(&mut client, close.len()).await;
        assert_eq!(&got[..], &close[..]);
        assert_eq!(q.send([Bytes::from_static(b"late")].iter(), 0), Sent::Refused(0, Refused::Closed));
        use tokio::io::AsyncReadExt;
        let mut rest = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), client.read_to_end(&mut rest)).await.unwrap().unwrap();
        assert!(rest.is_empty(), "the stream ended after the close: {rest:?}");
    }
}
