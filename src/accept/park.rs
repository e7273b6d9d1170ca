//! Parking idle HTTP/1.1 keep-alive connections.
//!
//! hyper holds an HTTP/1.1 connection's read and write buffers (8 KiB
//! each), its dispatcher and its header timer for the connection's whole
//! life, idle or not, and offers no way to give them back between requests.
//! So a connection that has answered its requests and gone quiet for
//! `server.park_after` is taken back from hyper: hyper is asked to close,
//! the close is kept from reaching the socket ([`Parkable`]), and the
//! socket (with its TLS state), plus any bytes hyper had read but not used,
//! wait for the next request with nothing else held. Its first byte starts a
//! new hyper connection, with that byte in front ([`Parkable`]'s prefix).
//! nginx frees a keep-alive connection's buffers the same way.
//!
//! It also puts the idle connection under `server.idle_timeout`: hyper
//! starts its header timer as soon as it waits for the next request head,
//! so without parking a kept-alive connection closed after
//! `server.header_read_timeout`.
//!
//! Only a connection hyper holds idle is parked: no request is in flight
//! ([`Answering`] counts them until the response body is dropped, which
//! hyper does once it has written it), every byte written has been flushed,
//! and the connection has answered since hyper took it, so a client that
//! never finishes a head, or never sends one, stays under hyper's header
//! timer.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the connection task knows of the HTTP/1.1 exchanges on one
/// connection, shared with its service ([`Answering`]) and IO
/// ([`Parkable`]). One task touches it at a time; the atomics are for the
/// `Send + Sync` that hyper's service needs.
#[derive(Debug, Default)]
pub struct Exchanges {
    /// Requests the service took whose responses hyper has not finished.
    in_flight: AtomicU32,
    /// Responses finished, ever.
    answered: AtomicU64,
    /// `answered` when the current hyper connection began.
    answered_at_start: AtomicU64,
    /// Bytes handed to the IO that no flush has confirmed.
    unflushed: AtomicBool,
    /// Set while hyper is being asked to close for parking: its shutdown
    /// of the IO is then not passed on.
    parking: AtomicBool,
}

impl Exchanges {
    /// A hyper connection begins on this IO.
    pub fn begin(&self) {
        self.answered_at_start
            .store(self.answered.load(Ordering::Relaxed), Ordering::Relaxed);
        self.parking.store(false, Ordering::Relaxed);
    }

    /// Whether hyper holds the connection idle between requests, having
    /// answered at least one since [`begin`](Exchanges::begin), with
    /// nothing left to flush.
    pub fn may_park(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.answered.load(Ordering::Relaxed)
                > self.answered_at_start.load(Ordering::Relaxed)
            && !self.unflushed.load(Ordering::Relaxed)
    }

    /// hyper is about to be asked to close so that the connection parks.
    pub fn start_parking(&self) {
        self.parking.store(true, Ordering::Relaxed);
    }

    /// Whether [`start_parking`](Exchanges::start_parking) was called on
    /// this hyper connection.
    pub fn parking(&self) -> bool {
        self.parking.load(Ordering::Relaxed)
    }

    /// A request reaches the service; the guard lives until its response
    /// has been written.
    pub fn answering(self: &Arc<Self>) -> Answering {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Answering(self.clone())
    }
}

/// One request in flight, from the service call until hyper drops the
/// response body (it has written the last of it) or the request is given
/// up.
#[derive(Debug)]
pub struct Answering(Arc<Exchanges>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.answered.fetch_add(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its request's [`Answering`] guard.
    pub struct Answered<B> {
        #[pin]
        body: B,
        guard: Answering,
    }
}

impl<B> Answered<B> {
    /// `body`, counted as in flight until it is dropped.
    pub fn new(body: B, guard: Answering) -> Answered<B> {
        Answered { body, guard }
    }
}

impl<B: Body> Body for Answered<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The IO hyper serves an HTTP/1.1 connection on: bytes read before hyper
/// took it come first, writes are watched for [`Exchanges::may_park`], and
/// hyper's shutdown is dropped while the connection parks.
#[derive(Debug)]
pub struct Parkable<IO> {
    inner: IO,
    prefix: Bytes,
    exchanges: Arc<Exchanges>,
}

impl<IO> Parkable<IO> {
    /// `inner`, read after `prefix`.
    pub fn new(inner: IO, prefix: Bytes, exchanges: Arc<Exchanges>) -> Parkable<IO> {
        Parkable {
            inner,
            prefix,
            exchanges,
        }
    }

    /// The IO back, with what is left of the prefix.
    pub fn into_parts(self) -> (IO, Bytes) {
        (self.inner, self.prefix)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Parkable<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.prefix.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        // The rest of the request is likely in the socket already: handing
        // it over in the same read lets hyper parse the head at once,
        // instead of reading twice and growing its buffer to make room.
        if this.prefix.is_empty() && buf.remaining() > 0 {
            let _ = Pin::new(&mut this.inner).poll_read(cx, buf);
            // Pending or an error: the prefix bytes are the answer to this
            // read; an error comes back on the next.
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Parkable<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.exchanges.unflushed.store(true, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.exchanges.unflushed.store(true, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            self.exchanges.unflushed.store(false, Ordering::Relaxed);
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.exchanges.parking() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_prefix_comes_first_and_the_socket_follows_in_the_same_read() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"ET / HTTP/1.1\r\n").await.unwrap();
        let exchanges = Arc::new(Exchanges::default());
        let mut io = Parkable::new(server, Bytes::from_static(b"G"), exchanges);
        let mut buf = [0u8; 32];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_prefix_longer_than_the_read_is_handed_out_in_turn() {
        let (_client, server) = tokio::io::duplex(64);
        let exchanges = Arc::new(Exchanges::default());
        let mut io = Parkable::new(server, Bytes::from_static(b"abcdef"), exchanges);
        let mut buf = [0u8; 4];
        assert_eq!(io.read(&mut buf).await.unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        let (_, rest) = io.into_parts();
        assert_eq!(&rest[..], b"ef");
    }

    #[tokio::test]
    async fn shutdown_is_held_back_only_while_parking() {
        let (mut client, server) = tokio::io::duplex(64);
        let exchanges = Arc::new(Exchanges::default());
        let mut io = Parkable::new(server, Bytes::new(), exchanges.clone());
        exchanges.start_parking();
        io.shutdown().await.unwrap();
        io.write_all(b"still open").await.unwrap();
        let mut buf = [0u8; 10];
        client.read_exact(&mut buf).await.unwrap();
        exchanges.begin();
        io.shutdown().await.unwrap();
        assert_eq!(
            client.read(&mut buf).await.unwrap(),
            0,
            "EOF after a real shutdown"
        );
    }

    #[test]
    fn a_connection_may_park_once_it_has_answered_and_flushed() {
        let exchanges = Arc::new(Exchanges::default());
        exchanges.begin();
        assert!(!exchanges.may_park(), "nothing answered yet");
        let guard = exchanges.answering();
        assert!(!exchanges.may_park(), "a request in flight");
        drop(guard);
        assert!(exchanges.may_park());
        exchanges.unflushed.store(true, Ordering::Relaxed);
        assert!(!exchanges.may_park(), "bytes not flushed");
        exchanges.unflushed.store(false, Ordering::Relaxed);
        exchanges.begin();
        assert!(
            !exchanges.may_park(),
            "a new hyper connection must answer first"
        );
    }
}
