//! The body of an SSE response: a stream's frames, coalesced, with keep-alive comments.
//!
//! Each chunk this body yields is one write to the socket. When a stream has several frames
//! ready (a global subscriber woken after a burst of commits), they go out as one chunk rather
//! than one write and one chunk header each. The keep-alive timer is armed once per interval,
//! not reset per frame: on expiry it checks when the stream last sent anything and either sends
//! a comment or re-arms for the rest of the quiet period. A comment still goes out after exactly
//! `interval` of silence, as `sse.keep_alive_secs` promises.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use super::frame::KEEP_ALIVE;

/// Bytes gathered into one chunk at most: a subscriber far behind still gets bounded writes.
const MAX_CHUNK: usize = 64 * 1024;

/// Boxed so that the body's type does not depend on the stream behind it.
pub type Frames = Pin<Box<dyn Stream<Item = Bytes> + Send + Sync>>;

pub struct FrameBody {
    /// Sent before any frame (the `retry:` hint), in the first chunk.
    opening: Option<Bytes>,
    frames: Frames,
    frames_ended: bool,
    keep_alive_every: Duration,
    keep_alive: Pin<Box<Sleep>>,
    last_sent: Instant,
}

impl FrameBody {
    pub fn new(opening: Bytes, frames: Frames, keep_alive_every: Duration) -> FrameBody {
        let now = Instant::now();
        FrameBody {
            opening: Some(opening),
            frames,
            frames_ended: false,
            keep_alive_every,
            keep_alive: Box::pin(tokio::time::sleep_until(now + keep_alive_every)),
            last_sent: now,
        }
    }

    /// Whatever frames are ready now, as one chunk; `None` when there are none.
    fn poll_ready_frames(&mut self, cx: &mut Context<'_>) -> Option<Bytes> {
        let mut chunk = Chunk::default();
        if let Some(opening) = self.opening.take() {
            chunk.push(opening);
        }
        while !self.frames_ended && chunk.len() < MAX_CHUNK {
            match self.frames.as_mut().poll_next(cx) {
                Poll::Ready(Some(frame)) => chunk.push(frame),
                Poll::Ready(None) => self.frames_ended = true,
                Poll::Pending => break,
            }
        }
        chunk.finish()
    }

    /// A comment once the stream has been quiet for the whole interval; re-arms the timer for
    /// the rest of the quiet period when something was sent meanwhile.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> Poll<Bytes> {
        loop {
            if self.keep_alive.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let quiet_until = self.last_sent + self.keep_alive_every;
            if now >= quiet_until {
                self.last_sent = now;
                self.keep_alive.as_mut().reset(now + self.keep_alive_every);
                return Poll::Ready(Bytes::from_static(KEEP_ALIVE));
            }
            self.keep_alive.as_mut().reset(quiet_until);
        }
    }
}

impl Stream for FrameBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let body = self.get_mut();
        if let Some(chunk) = body.poll_ready_frames(cx) {
            body.last_sent = Instant::now();
            return Poll::Ready(Some(Ok(chunk)));
        }
        if body.frames_ended {
            return Poll::Ready(None);
        }
        body.poll_keep_alive(cx).map(|comment| Some(Ok(comment)))
    }
}

/// Frames joined into one chunk; a lone frame is passed on as it is, without a copy.
#[derive(Default)]
struct Chunk {
    first: Option<Bytes>,
    joined: Option<BytesMut>,
}

impl Chunk {
    fn push(&mut self, frame: Bytes) {
        match (&mut self.first, &mut self.joined) {
            (None, _) => self.first = Some(frame),
            (Some(first), None) => {
                let mut joined = BytesMut::with_capacity(first.len() + frame.len() * 4);
                joined.extend_from_slice(first);
                joined.extend_from_slice(&frame);
                self.joined = Some(joined);
            }
            (Some(_), Some(joined)) => joined.extend_from_slice(&frame),
        }
    }

    fn len(&self) -> usize {
        match (&self.first, &self.joined) {
            (_, Some(joined)) => joined.len(),
            (Some(first), None) => first.len(),
            (None, None) => 0,
        }
    }

    fn finish(self) -> Option<Bytes> {
        match self.joined {
            Some(joined) => Some(joined.freeze()),
            None => self.first,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{FutureExt, StreamExt};
    use tokio::sync::mpsc;

    use super::*;

    const EVERY: Duration = Duration::from_secs(15);

    /// A body over frames fed through a channel, so a test decides what is ready when.
    fn body_fed_by_channel() -> (mpsc::UnboundedSender<Bytes>, FrameBody) {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Bytes>();
        let frames = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        let body = FrameBody::new(
            Bytes::from_static(b"retry:3000\n\n"),
            Box::pin(frames),
            EVERY,
        );
        (sender, body)
    }

    /// The chunk the body yields now, if any: `None` when it would wait.
    fn ready_chunk(body: &mut FrameBody) -> Option<Option<Bytes>> {
        body.next()
            .now_or_never()
            .map(|item| item.map(|chunk| chunk.unwrap()))
    }

    #[tokio::test(start_paused = true)]
    async fn frames_ready_together_go_out_as_one_chunk() {
        let (sender, mut body) = body_fed_by_channel();
        sender.send(Bytes::from_static(b"event:a\n\n")).unwrap();
        sender.send(Bytes::from_static(b"event:b\n\n")).unwrap();
        assert_eq!(
            ready_chunk(&mut body),
            Some(Some(Bytes::from_static(
                b"retry:3000\n\nevent:a\n\nevent:b\n\n"
            ))),
            "the opening and every ready frame in one chunk"
        );
        assert_eq!(ready_chunk(&mut body), None, "then it waits");
        sender.send(Bytes::from_static(b"event:c\n\n")).unwrap();
        assert_eq!(
            ready_chunk(&mut body),
            Some(Some(Bytes::from_static(b"event:c\n\n")))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_frame_is_passed_on_without_a_copy() {
        let (sender, mut body) = body_fed_by_channel();
        ready_chunk(&mut body);
        let frame = Bytes::from(b"event:status\ndata:{}\n\n".to_vec());
        sender.send(frame.clone()).unwrap();
        let chunk = ready_chunk(&mut body).flatten().unwrap();
        assert_eq!(chunk.as_ptr(), frame.as_ptr());
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_is_cut_into_bounded_chunks() {
        let frame = Bytes::from(vec![b'x'; 1000]);
        let backlog = 3 * MAX_CHUNK / frame.len();
        // Not a channel: tokio's cooperative budget would cut the backlog on its own.
        let frames = futures_util::stream::iter(vec![frame.clone(); backlog])
            .chain(futures_util::stream::pending());
        let mut body = FrameBody::new(Bytes::new(), Box::pin(frames), EVERY);
        let mut total = 0;
        let mut chunks = 0;
        while let Some(Some(chunk)) = ready_chunk(&mut body) {
            assert!(chunk.len() < MAX_CHUNK + frame.len(), "{}", chunk.len());
            total += chunk.len();
            chunks += 1;
        }
        assert_eq!(total, backlog * frame.len(), "nothing lost");
        assert!((3..=4).contains(&chunks), "{chunks} chunks");
    }

    #[tokio::test(start_paused = true)]
    async fn the_body_ends_after_the_last_frame() {
        let (sender, mut body) = body_fed_by_channel();
        sender
            .send(Bytes::from_static(b"event:shutdown\n\n"))
            .unwrap();
        drop(sender);
        assert_eq!(
            ready_chunk(&mut body),
            Some(Some(Bytes::from_static(
                b"retry:3000\n\nevent:shutdown\n\n"
            )))
        );
        assert_eq!(ready_chunk(&mut body), Some(None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_gets_a_comment_each_interval_and_not_before() {
        let (_sender, mut body) = body_fed_by_channel();
        ready_chunk(&mut body);
        for _ in 0..3 {
            tokio::time::advance(EVERY - Duration::from_millis(1)).await;
            assert_eq!(ready_chunk(&mut body), None, "not before the interval");
            tokio::time::advance(Duration::from_millis(1)).await;
            assert_eq!(
                ready_chunk(&mut body),
                Some(Some(Bytes::from_static(KEEP_ALIVE)))
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_postpones_the_comment_to_a_full_interval_after_it() {
        let (sender, mut body) = body_fed_by_channel();
        ready_chunk(&mut body);
        tokio::time::advance(EVERY / 2).await;
        sender.send(Bytes::from_static(b"event:a\n\n")).unwrap();
        assert!(ready_chunk(&mut body).is_some());
        // The timer armed at the start expires here; the stream was not quiet for long enough.
        tokio::time::advance(EVERY / 2).await;
        assert_eq!(ready_chunk(&mut body), None);
        tokio::time::advance(EVERY / 2 - Duration::from_millis(1)).await;
        assert_eq!(ready_chunk(&mut body), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            ready_chunk(&mut body),
            Some(Some(Bytes::from_static(KEEP_ALIVE))),
            "a full interval after the frame"
        );
    }
}
