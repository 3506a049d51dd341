//! A hand-written streaming body for server-sent events.
//!
//! Every event is its own data frame, so hyper writes (and, when the next one is not ready
//! yet, flushes) each chunk as soon as it is produced. The body is chunked: it gives no exact
//! size hint, so no `Content-Length` is set.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::time::{Instant, Sleep};

/// Yields pre-built SSE events, waiting `delay` between consecutive ones.
pub(super) struct SseBody {
    events: VecDeque<Bytes>,
    delay: Duration,
    /// Armed between two events when `delay` is non-zero; reused across events.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl SseBody {
    pub(super) fn new(events: Vec<Bytes>, delay: Duration) -> SseBody {
        SseBody {
            events: events.into(),
            delay,
            timer: None,
            waiting: false,
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.waiting {
            if let Some(timer) = this.timer.as_mut() {
                ready!(timer.as_mut().poll(cx));
            }
            this.waiting = false;
        }
        let Some(event) = this.events.pop_front() else {
            return Poll::Ready(None);
        };
        if !this.delay.is_zero() && !this.events.is_empty() {
            let deadline = Instant::now() + this.delay;
            match this.timer.as_mut() {
                Some(timer) => timer.as_mut().reset(deadline),
                None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            this.waiting = true;
        }
        Poll::Ready(Some(Ok(Frame::data(event))))
    }

    fn is_end_stream(&self) -> bool {
        self.events.is_empty()
    }
}
