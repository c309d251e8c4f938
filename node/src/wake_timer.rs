//! The event loop's wake-up timer, precise to tens of microseconds.
//!
//! tokio's timer wheel ticks in whole milliseconds and rounds a deadline up to the next tick,
//! and `epoll_wait` takes its timeout in milliseconds too: a paced publisher woken that way
//! sends each message 1–2 ms after it was due, a delay of the testbed's own that the latency
//! (measured from the due time) then carries. A `timerfd` armed with the remaining time in
//! nanoseconds wakes the loop through the same epoll, on time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

pub struct WakeTimer {
    fd: AsyncFd<OwnedFd>,
    /// The deadline the timer is armed for, if any.
    armed: Option<Instant>,
}

impl WakeTimer {
    pub fn new() -> io::Result<Self> {
        // SAFETY: timerfd_create has no memory preconditions; a valid fd is owned below.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, open file descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the `OwnedFd` keeps the descriptor open, and the same one, for as long as
        // the `AsyncFd` owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(WakeTimer { fd, armed: None })
    }

    /// The deadline currently armed.
    pub fn deadline(&self) -> Option<Instant> {
        self.armed
    }

    /// Arms the timer for `at` (a past deadline fires at once).
    pub fn arm(&mut self, at: Instant) -> io::Result<()> {
        // A zero it_value would disarm the timer: fire after 1 ns instead.
        let left = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: the fd is a timerfd we own; `spec` is a valid itimerspec; old value unused.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed = Some(at);
        Ok(())
    }

    /// Waits until the armed deadline has passed (forever when not armed). Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            // SAFETY: reading 8 bytes (the expiration count) into a buffer of 8 bytes.
            let n = unsafe {
                libc::read(
                    guard.get_inner().as_raw_fd(),
                    expirations.as_mut_ptr().cast(),
                    expirations.len(),
                )
            };
            if n == 8 {
                self.armed = None;
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
            guard.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_at_its_deadline_and_can_be_rearmed() {
        let mut t = WakeTimer::new().unwrap();
        let start = Instant::now();
        t.arm(start + Duration::from_millis(20)).unwrap();
        // Re-arming replaces the deadline.
        t.arm(start + Duration::from_millis(5)).unwrap();
        assert_eq!(t.deadline(), Some(start + Duration::from_millis(5)));
        t.wait().await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert_eq!(t.deadline(), None);
        // A deadline in the past fires at once.
        t.arm(start).unwrap();
        t.wait().await.unwrap();
    }

    #[tokio::test]
    async fn an_unarmed_timer_does_not_fire() {
        let mut t = WakeTimer::new().unwrap();
        let r = tokio::time::timeout(Duration::from_millis(30), t.wait()).await;
        assert!(r.is_err(), "no deadline, no wake-up");
    }
}
