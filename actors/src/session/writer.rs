//! A connection's socket, split in two: the writer, which owns the sending
//! half, and [`Inbound`], the receiving half the session reads frames from.
//!
//! The writer takes whole frames from the connection's outbound queue (the
//! [`Outbox`](super::Outbox)) and hands everything queued to the kernel in
//! one vectored write: the bytes of a stream message are shared by every
//! subscriber, so a write copies nothing in user space. It ends after
//! writing a close frame, on a write error, or when nobody can queue any
//! more; dropping the sending half then ends the TCP stream.
//!
//! tungstenite reads and checks the client's frames through [`Inbound`].
//! What tungstenite itself must send (a pong, the reply to a client's
//! close) goes through the same queue, in order with everything else.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::queue::{Queue, Taken, IOV_MAX};

/// Frames taken from the queue for one write.
pub const WRITE_BURST_MAX: usize = 256;
/// A socket that accepts nothing for this long belongs to a client that
/// stopped reading (or vanished without a FIN): the writer gives up and the
/// socket is closed, so it does not hold its descriptor forever. The same
/// limit as a session without a pong (`IDLE_MAX`).
pub const WRITE_STALL_MAX: Duration = super::IDLE_MAX;

/// Writes the connection's queued frames until a close frame is written,
/// the socket fails, or nobody can queue any more; then the queue refuses
/// further frames. The oldest stream message of each write is timed for
/// the delivery metric when the write is done. A socket that takes no byte
/// for `stall` ends the writer too (see [`WRITE_STALL_MAX`]); `conn` names
/// the connection in the log.
pub async fn run(queue: Arc<Queue>, socket: OwnedWriteHalf, stall: Duration, conn: usize) {
    let socket = Arc::new(socket);
    queue.attach(socket.clone());
    let mut taken = Taken::default();
    let delivered = crate::telemetry::md_delivery();
    while queue.take(WRITE_BURST_MAX, &mut taken).await.is_some() {
        let close = taken.close;
        let (frames, bytes) = (taken.frames.len(), taken.bytes);
        let written = write_all(&socket, &mut taken.frames, stall).await;
        if taken.oldest_made_us != 0 {
            crate::telemetry::md_delivered_to(&delivered, taken.oldest_made_us);
        }
        queue.written(frames, bytes);
        taken.frames.clear();
        taken.bytes = 0;
        taken.oldest_made_us = 0;
        taken.close = false;
        if let Err(e) = written {
            if e.kind() == io::ErrorKind::TimedOut {
                crate::telemetry::slow_consumer(crate::telemetry::SLOW_STALLED, conn);
            }
            break;
        }
        if close {
            break;
        }
    }
    queue.writer_gone();
    // Dropping the sending half (the queue has let go of its share) shuts
    // down the write direction (FIN).
}

/// Writes every frame, as few system calls as the socket allows.
async fn write_all(socket: &OwnedWriteHalf, frames: &mut VecDeque<Bytes>, stall: Duration) -> io::Result<()> {
    while !frames.is_empty() {
        let mut n = loop {
            let mut slices = [IoSlice::new(&[]); IOV_MAX];
            let used = frames.iter().zip(slices.iter_mut()).map(|(f, s)| *s = IoSlice::new(f)).count();
            match socket.try_write_vectored(&slices[..used]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if tokio::time::timeout(stall, socket.writable()).await.is_err() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let f = frames.front_mut().expect("no more written than queued");
            if f.len() <= n {
                n -= f.len();
                frames.pop_front();
            } else {
                f.advance(n);
                n = 0;
            }
        }
    }
    Ok(())
}

/// The receiving half of a connection, as tungstenite reads it: first what
/// the HTTP server read past the upgrade request, then the socket. Frames
/// tungstenite writes go to the connection's queue, and `guard` (the
/// connection's place under `limits.connections_max`) lives as long as this.
pub struct Inbound {
    early: Bytes,
    socket: OwnedReadHalf,
    /// The connection's queue, of which this is one producer.
    queue: Arc<Queue>,
    _guard: Box<dyn Send + Sync>,
}

impl Inbound {
    pub fn new(early: Bytes, socket: OwnedReadHalf, queue: Arc<Queue>, guard: Box<dyn Send + Sync>) -> Inbound {
        Inbound { early, socket, queue, _guard: guard }
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        self.queue.producer_gone();
    }
}

impl AsyncRead for Inbound {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.early.is_empty() {
            let n = self.early.len().min(buf.remaining());
            buf.put_slice(&self.early[..n]);
            self.early.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Inbound {
    /// Control frames tungstenite answers with (pong, close). When the
    /// queue is full the client is not reading and its lag policy is
    /// already closing it, so the answer is dropped, never waited for.
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let _ = self.queue.push(Bytes::copy_from_slice(buf), 0, false);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame;
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn everything_queued_is_written_in_order_then_the_stream_ends_after_the_close() {
        let (server, mut client) = pair().await;
        let (_rd, wr) = server.into_split();
        let queue = Arc::new(Queue::new(1_000, 1 << 30, 1));
        let mut expected = Vec::new();
        // More frames than one write takes, one of them larger than a socket buffer.
        for i in 0..600usize {
            let payload = vec![(i % 256) as u8; if i == 300 { 1 << 20 } else { i }];
            let f = frame::frame(frame::OP_BINARY, &payload);
            expected.extend_from_slice(&f);
            queue.push(f, 0, false).unwrap();
        }
        let close = frame::close(1000, "bye");
        expected.extend_from_slice(&close);
        queue.push(close, 0, false).unwrap();
        queue.push(frame::ping(), 0, false).unwrap();
        let writer = tokio::spawn(run(queue.clone(), wr, WRITE_STALL_MAX, 0));
        let mut got = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), client.read_to_end(&mut got)).await.unwrap().unwrap();
        assert!(got == expected, "{} bytes read, {} expected", got.len(), expected.len());
        writer.await.unwrap();
        assert_eq!(queue.used(), (0, 0), "every frame is counted off, the one after the close dropped");
        assert_eq!(queue.push(frame::ping(), 0, false), Err(super::super::Refused::Closed));
    }

    #[tokio::test]
    async fn a_client_that_never_reads_is_given_up_after_the_stall_limit() {
        let (server, client) = pair().await;
        let (_rd, wr) = server.into_split();
        let queue = Arc::new(Queue::new(100, 1 << 30, 1));
        // Far more than the socket buffers of both ends hold.
        for _ in 0..64 {
            queue.push(frame::frame(frame::OP_BINARY, &vec![7u8; 1 << 20]), 0, false).unwrap();
        }
        let started = std::time::Instant::now();
        let writer = tokio::spawn(run(queue.clone(), wr, Duration::from_millis(300), 0));
        tokio::time::timeout(Duration::from_secs(10), writer).await.expect("the writer gives up").unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(queue.push(frame::ping(), 0, false), Err(super::super::Refused::Closed));
        drop(client);
    }

    #[tokio::test]
    async fn inbound_reads_the_early_bytes_first_and_queues_what_tungstenite_writes() {
        let (server, mut client) = pair().await;
        let (rd, _wr) = server.into_split();
        let queue = Arc::new(Queue::new(3, 1 << 20, 1));
        let mut io = Inbound::new(Bytes::from_static(b"early "), rd, queue.clone(), Box::new(()));
        tokio::io::AsyncWriteExt::write_all(&mut client, b"later").await.unwrap();
        drop(client);
        let mut got = String::new();
        io.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "early later");
        io.write_all(b"pong").await.unwrap();
        assert_eq!(queue.used(), (1, 4));
        // With only the reserved places left, an answer is dropped, not queued.
        queue.push(Bytes::new(), 0, false).unwrap();
        queue.push(Bytes::new(), 0, false).unwrap();
        io.write_all(b"pong").await.unwrap();
        assert_eq!(queue.used(), (3, 4));
        // Once the only producer is gone, the writer finds nothing more to wait for.
        drop(io);
        let mut t = Taken::default();
        assert!(queue.take(10, &mut t).await.is_some());
        queue.written(t.frames.len(), t.bytes);
        assert!(queue.take(10, &mut Taken::default()).await.is_none());
    }
}
