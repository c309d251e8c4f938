//! `futures_timer::Delay` on tokio's timer (see README.md): a drop-in for futures-timer 3.0.3
//! without its helper thread.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// A future that completes once `dur` (from its creation or last reset) has passed.
pub struct Delay {
    deadline: Instant,
    /// Registered on the runtime's timer wheel at the first poll before the deadline.
    sleep: Option<Pin<Box<Sleep>>>,
}

/// `now + dur`, or a deadline that never comes for durations beyond what `Instant` holds.
fn deadline(dur: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(dur)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

impl Delay {
    /// A delay that fires `dur` from now.
    pub fn new(dur: Duration) -> Delay {
        Delay {
            deadline: deadline(dur),
            sleep: None,
        }
    }

    /// Re-arms the delay to fire `dur` from now (also after it fired).
    pub fn reset(&mut self, dur: Duration) {
        self.deadline = deadline(dur);
        if let Some(sleep) = self.sleep.as_mut() {
            sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(self.deadline));
        }
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let deadline = tokio::time::Instant::from_std(self.deadline);
        self.sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)))
            .as_mut()
            .poll(cx)
    }
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delay").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn assert_traits<T: Send + Sync + Unpin + fmt::Debug>() {}

    #[test]
    fn same_auto_traits_as_futures_timer() {
        assert_traits::<Delay>();
    }

    #[tokio::test]
    async fn fires_after_its_duration_and_stays_ready() {
        let start = Instant::now();
        let mut d = Delay::new(Duration::from_millis(30));
        (&mut d).await;
        assert!(start.elapsed() >= Duration::from_millis(30));
        // Polled again after firing: still ready (as futures-timer's).
        (&mut d).await;
    }

    #[tokio::test]
    async fn reset_moves_the_deadline_also_after_firing() {
        let mut d = Delay::new(Duration::ZERO);
        (&mut d).await;
        d.reset(Duration::from_millis(40));
        let pending = poll_fn(|cx| Poll::Ready(Pin::new(&mut d).poll(cx).is_pending())).await;
        assert!(pending, "re-armed");
        let start = Instant::now();
        (&mut d).await;
        assert!(start.elapsed() >= Duration::from_millis(35));
        // Reset while registered on the wheel: the new deadline counts.
        d.reset(Duration::from_secs(3600));
        let pending = poll_fn(|cx| Poll::Ready(Pin::new(&mut d).poll(cx).is_pending())).await;
        assert!(pending);
        d.reset(Duration::ZERO);
        (&mut d).await;
    }

    #[test]
    fn an_endless_duration_does_not_overflow() {
        let d = Delay::new(Duration::MAX);
        assert!(d.deadline > Instant::now() + Duration::from_secs(86_400 * 365));
    }
}
