//! An h2 connection's writes, gathered over one turn of its task.
//!
//! h2 sends every DATA frame of 256 bytes or more on its own: it flushes
//! before it buffers the next one (`h2::codec::FramedWrite`'s chained
//! frames). tokio-rustls seals and sends each write as it comes. So twenty
//! 1 KB answers that are ready at once would cost twenty TLS records and
//! twenty `writev`s, each a segment the client acknowledges.
//!
//! [`Gathered`] copies the writes into one buffer of up to a TLS record.
//! When h2 flushes, it asks for the connection task's next turn and says
//! "flushed". [`Turning`] counts the turns. On the next turn, h2 reads and
//! flushes again, and everything ready by then goes out as one record and
//! one `writev`, as HAProxy sends its h2 frames. The buffer is released once
//! it is written, so an idle connection holds none.
//!
//! Every way h2 closes a connection in order ends in `poll_shutdown`, which
//! sends what is buffered first. What is still buffered when the connection
//! is dropped without one (h2 on a peer's TLS EOF without close_notify,
//! hyper on a CONNECT with a body) is lost; without gathering it would have
//! reached the socket a turn earlier.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most plaintext one TLS record carries, and the most [`Gathered`]
/// holds before it writes.
const GATHER: usize = 16 * 1024;

/// The turns of one connection's task: [`Turning`] counts them, and
/// [`Gathered`] reads the count.
#[derive(Debug, Clone, Default)]
pub struct Turns(Arc<AtomicU32>);

impl Turns {
    fn now(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    fn next(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A future that counts each time it is polled, so that [`Gathered`]
    /// can tell a flush of this turn from one of the next.
    pub struct Turning<F> {
        #[pin]
        inner: F,
        turns: Turns,
    }
}

impl<F> Turning<F> {
    pub fn new(inner: F, turns: Turns) -> Turning<F> {
        Turning { inner, turns }
    }

    /// The future inside.
    pub fn inner(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.project().inner
    }
}

impl<F: Future> Future for Turning<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        this.turns.next();
        this.inner.poll(cx)
    }
}

/// A stream whose writes are gathered until the turn after a flush.
#[derive(Debug)]
pub struct Gathered<IO> {
    io: IO,
    /// Bytes written to us and not yet to `io`, from `sent` on.
    buf: Vec<u8>,
    sent: usize,
    turns: Turns,
    /// The turn in which a flush was put off, while one is.
    deferred: Option<u32>,
}

impl<IO> Gathered<IO> {
    pub fn new(io: IO, turns: Turns) -> Gathered<IO> {
        Gathered {
            io,
            buf: Vec::new(),
            sent: 0,
            turns,
            deferred: None,
        }
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Whether a flush put off in an earlier turn is due.
    fn due(&self) -> bool {
        self.deferred.is_some_and(|turn| turn != self.turns.now())
    }
}

impl<IO: AsyncWrite + Unpin> Gathered<IO> {
    /// Writes what is buffered to `io`, and releases the buffer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending() > 0 {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Writes what is buffered and flushes `io`.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        self.deferred = None;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Room for up to `len` more bytes, and how many fit: what is buffered
    /// is written first if they would not all fit in one record, and a
    /// write larger than a record is taken in part (a short write, which h2
    /// continues), so the buffer never holds more than [`GATHER`].
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        if self.pending() > 0 && self.pending() + len > GATHER {
            ready!(self.poll_drain(cx))?;
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(GATHER);
        }
        Poll::Ready(Ok(len.min(GATHER - self.pending())))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Gathered<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // h2 reads before it flushes on each turn; a put-off flush is sent
        // here too, so that it never waits on h2 flushing again.
        if this.due() {
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Gathered<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        let room = ready!(this.poll_room(cx, len))?;
        let mut left = room;
        for b in bufs {
            let take = b.len().min(left);
            this.buf.extend_from_slice(&b[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(room))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending() == 0 {
            this.deferred = None;
            return Pin::new(&mut this.io).poll_flush(cx);
        }
        if this.deferred.is_none() {
            // Put off to the next turn, which is asked for now.
            this.deferred = Some(this.turns.now());
            cx.waker().wake_by_ref();
        }
        if !this.due() {
            return Poll::Ready(Ok(()));
        }
        this.poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A stream that records each write it is given, takes at most `room`
    /// bytes per write, and is pending when `blocked`.
    #[derive(Default, Clone)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        flushes: Arc<AtomicU32>,
        room: Option<usize>,
        blocked: Arc<std::sync::atomic::AtomicBool>,
        shutdowns: Arc<AtomicU32>,
    }

    impl Recorder {
        /// A stream that takes at most `room` bytes per write.
        fn taking(room: usize) -> Recorder {
            Recorder {
                room: Some(room),
                ..Recorder::default()
            }
        }

        fn writes(&self) -> Vec<Vec<u8>> {
            self.writes.lock().unwrap().clone()
        }
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.blocked.load(Ordering::Relaxed) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = self.room.map_or(data.len(), |room| room.min(data.len()));
            self.writes.lock().unwrap().push(data[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shutdowns.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Ok(()))
        }
    }

    /// A waker that counts its wakes.
    struct Count(AtomicU32);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn cx() -> Context<'static> {
        Context::from_waker(futures_util::task::noop_waker_ref())
    }

    fn write(g: &mut Gathered<Recorder>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(g).poll_write(&mut cx(), data)
    }

    fn flush(g: &mut Gathered<Recorder>) -> Poll<io::Result<()>> {
        Pin::new(g).poll_flush(&mut cx())
    }

    fn shutdown(g: &mut Gathered<Recorder>) -> Poll<io::Result<()>> {
        Pin::new(g).poll_shutdown(&mut cx())
    }

    #[test]
    fn flushes_of_one_turn_go_out_together_on_the_next() {
        let io = Recorder::default();
        let turns = Turns::default();
        let mut g = Gathered::new(io.clone(), turns.clone());
        for frame in [&b"one"[..], b"two", b"three"] {
            assert!(matches!(write(&mut g, frame), Poll::Ready(Ok(n)) if n == frame.len()));
            // h2 flushes after each chained frame: said done, nothing sent.
            assert!(matches!(flush(&mut g), Poll::Ready(Ok(()))));
        }
        assert!(io.writes().is_empty());
        turns.next();
        assert!(matches!(flush(&mut g), Poll::Ready(Ok(()))));
        assert_eq!(io.writes(), vec![b"onetwothree".to_vec()]);
        assert_eq!(io.flushes.load(Ordering::Relaxed), 1);
        assert_eq!(g.buf.capacity(), 0, "the buffer is released once written");
    }

    #[test]
    fn a_put_off_flush_asks_for_the_next_turn() {
        let mut g = Gathered::new(Recorder::default(), Turns::default());
        assert!(write(&mut g, b"frame").is_ready());
        assert_eq!(
            wakes_from_three_flushes(&mut g),
            1,
            "one wake per put-off flush"
        );
    }

    /// Flushes `g` three times in one turn; how many wakes they asked for.
    fn wakes_from_three_flushes(g: &mut Gathered<Recorder>) -> u32 {
        let count = Arc::new(Count(AtomicU32::new(0)));
        let waker = std::task::Waker::from(count.clone());
        for _ in 0..3 {
            assert!(Pin::new(&mut *g)
                .poll_flush(&mut Context::from_waker(&waker))
                .is_ready());
        }
        count.0.load(Ordering::Relaxed)
    }

    #[test]
    fn a_read_on_the_next_turn_sends_what_was_put_off() {
        let io = Recorder::default();
        let turns = Turns::default();
        let mut g = Gathered::new(io.clone(), turns.clone());
        assert!(write(&mut g, b"frame").is_ready());
        assert!(flush(&mut g).is_ready());
        let mut space = [0u8; 8];
        let mut read = ReadBuf::new(&mut space);
        assert!(Pin::new(&mut g)
            .poll_read(&mut cx(), &mut read)
            .is_pending());
        assert!(io.writes().is_empty(), "same turn: still put off");
        turns.next();
        assert!(Pin::new(&mut g)
            .poll_read(&mut cx(), &mut read)
            .is_pending());
        assert_eq!(io.writes(), vec![b"frame".to_vec()]);
        assert_eq!(io.flushes.load(Ordering::Relaxed), 1, "and flushes it");
    }

    #[test]
    fn a_flush_with_nothing_buffered_passes_through_and_never_wakes() {
        let io = Recorder::default();
        let mut g = Gathered::new(io.clone(), Turns::default());
        assert_eq!(
            wakes_from_three_flushes(&mut g),
            0,
            "an idle task is not woken"
        );
        assert_eq!(io.flushes.load(Ordering::Relaxed), 3);
        assert!(matches!(write(&mut g, b""), Poll::Ready(Ok(0))));
        assert_eq!(g.buf.capacity(), 0, "an empty write takes no buffer");
    }

    #[test]
    fn a_vectored_write_is_taken_up_to_a_record_in_order() {
        let io = Recorder::default();
        let mut g = Gathered::new(io.clone(), Turns::default());
        let head = vec![1u8; 9];
        let body = vec![2u8; GATHER];
        let bufs = [io::IoSlice::new(&head), io::IoSlice::new(&body)];
        let n = match Pin::new(&mut g).poll_write_vectored(&mut cx(), &bufs) {
            Poll::Ready(Ok(n)) => n,
            other => panic!("expected a write, got {other:?}"),
        };
        assert_eq!(n, GATHER, "a short write of one record");
        assert_eq!(&g.buf[..9], &head[..]);
        assert!(g.buf[9..].iter().all(|&b| b == 2));
        let rest = [io::IoSlice::new(&body[n - head.len()..])];
        assert!(matches!(
            Pin::new(&mut g).poll_write_vectored(&mut cx(), &rest),
            Poll::Ready(Ok(9))
        ));
        assert_eq!(io.writes().len(), 1, "the full record went out first");
        assert!(matches!(shutdown(&mut g), Poll::Ready(Ok(()))));
        assert_eq!(io.writes().concat(), [head, body].concat());
    }

    #[test]
    fn shutdown_sends_what_is_buffered_first() {
        let io = Recorder::default();
        let mut g = Gathered::new(io.clone(), Turns::default());
        assert!(write(&mut g, b"goaway").is_ready());
        assert!(flush(&mut g).is_ready());
        assert!(io.writes().is_empty());
        assert!(matches!(shutdown(&mut g), Poll::Ready(Ok(()))));
        assert_eq!(io.writes(), vec![b"goaway".to_vec()]);
        assert_eq!(io.flushes.load(Ordering::Relaxed), 1);
        assert_eq!(io.shutdowns.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_error_sending_a_due_flush_is_returned_by_the_read() {
        let io = Recorder::taking(0);
        let turns = Turns::default();
        let mut g = Gathered::new(io, turns.clone());
        assert!(write(&mut g, b"frame").is_ready());
        assert!(flush(&mut g).is_ready());
        turns.next();
        let mut space = [0u8; 8];
        let mut read = ReadBuf::new(&mut space);
        match Pin::new(&mut g).poll_read(&mut cx(), &mut read) {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::WriteZero),
            other => panic!("expected the write error, got {other:?}"),
        }
    }

    #[test]
    fn turning_counts_each_poll_of_its_future() {
        let turns = Turns::default();
        let mut polls = 0;
        let fut = std::future::poll_fn(|_| {
            polls += 1;
            if polls < 3 {
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        });
        let mut turning = Box::pin(Turning::new(fut, turns.clone()));
        let before = turns.now();
        assert!(turning.as_mut().poll(&mut cx()).is_pending());
        assert_eq!(turns.now(), before + 1);
        assert!(turning.as_mut().poll(&mut cx()).is_pending());
        assert!(matches!(turning.as_mut().poll(&mut cx()), Poll::Ready(3)));
        assert_eq!(turns.now(), before + 3);
    }

    #[test]
    fn a_full_record_is_written_before_more_is_taken() {
        let io = Recorder::default();
        let mut g = Gathered::new(io.clone(), Turns::default());
        let frame = vec![7u8; GATHER / 2 + 1];
        assert!(write(&mut g, &frame).is_ready());
        assert!(io.writes().is_empty());
        assert!(write(&mut g, &frame).is_ready());
        assert_eq!(io.writes(), vec![frame.clone()], "the first went out whole");
        // A write larger than a record is taken a record at a time.
        let big = vec![9u8; 3 * GATHER];
        let mut taken = 0;
        while taken < big.len() {
            match write(&mut g, &big[taken..]) {
                Poll::Ready(Ok(n)) => {
                    assert!(n > 0 && g.pending() <= GATHER, "took {n}");
                    taken += n;
                }
                other => panic!("expected a write, got {other:?}"),
            }
        }
        assert!(g.buf.capacity() <= 2 * GATHER, "the buffer stays a record");
        assert!(matches!(shutdown(&mut g), Poll::Ready(Ok(()))));
        assert!(io.writes().iter().all(|w| w.len() <= GATHER));
        let sent: Vec<u8> = io.writes().concat();
        assert_eq!(sent.len(), frame.len() * 2 + big.len());
        assert!(sent[frame.len()..2 * frame.len()].iter().all(|&b| b == 7));
        assert!(sent[2 * frame.len()..].iter().all(|&b| b == 9));
    }

    #[test]
    fn partial_writes_resume_and_a_blocked_stream_holds_back_writes() {
        let io = Recorder::taking(1000);
        let turns = Turns::default();
        let mut g = Gathered::new(io.clone(), turns.clone());
        let data: Vec<u8> = (0..GATHER).map(|i| i as u8).collect();
        assert!(write(&mut g, &data).is_ready());
        io.blocked.store(true, Ordering::Relaxed);
        // Full and blocked: the next write waits (back-pressure), and so
        // does a due flush.
        assert!(write(&mut g, b"more").is_pending());
        turns.next();
        assert!(flush(&mut g).is_ready(), "first flush of a turn is put off");
        turns.next();
        assert!(flush(&mut g).is_pending());
        io.blocked.store(false, Ordering::Relaxed);
        assert!(matches!(flush(&mut g), Poll::Ready(Ok(()))));
        assert_eq!(io.writes().concat(), data);
        assert!(io.writes().iter().all(|w| w.len() <= 1000));
    }

    #[test]
    fn a_stream_that_takes_nothing_is_an_error() {
        let io = Recorder::taking(0);
        let mut g = Gathered::new(io, Turns::default());
        assert!(write(&mut g, b"frame").is_ready());
        let err = match shutdown(&mut g) {
            Poll::Ready(Err(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    }
}
