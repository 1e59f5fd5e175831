//! `MockClock`: virtual time for a run, on every backend (trio's `MockClock`).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::monitor::Monitor;

/// A clock under the test's control (trio's `MockClock`): give it to a run with
/// `anyio::RunOptions::clock` or `#[anyio::test(mock_clock)]` / `#[anyio::test(autojump)]`,
/// and anyio's [`sleep`](crate::time::sleep), deadlines, timeouts and
/// [`current_time`](crate::time::current_time) run on it instead of real time, on tokio, smol
/// and async-std alike.
///
/// - [`rate`](Self::rate): virtual seconds per real second. The default, 0, stops time: it
///   moves only by [`jump`](Self::jump) or by autojump.
/// - [`autojump_threshold`](Self::autojump_threshold): once every task of the run has been
///   blocked for this long in real time (no task runnable, no worker-thread job, DNS lookup
///   or ready socket in flight), time jumps to the next deadline. Infinite (the default)
///   turns it off; 0 jumps as soon as everything is blocked. A thousand 3.6 s sleeps then
///   take a few milliseconds.
///
/// Only anyio's timers and clock are virtual: a `tokio::time::sleep` or a blocking
/// `std::thread::sleep` in the code under test still takes real time, and autojump does not
/// know about it.
///
/// Clones share one clock.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use anyio::testing::MockClock;
///
/// let clock = MockClock::autojump();
/// let options = anyio::RunOptions::new().clock(clock.clone());
/// let elapsed = anyio::run_with(anyio::Backend::default_backend(), options, async {
///     let t0 = anyio::time::current_time();
///     for _ in 0..1000 {
///         anyio::sleep(Duration::from_secs_f64(3.6)).await.unwrap();
///     }
///     anyio::time::current_time() - t0
/// })
/// .unwrap();
/// assert_eq!(elapsed, Duration::from_secs(3600));
/// ```
#[derive(Clone)]
pub struct MockClock {
    pub(crate) shared: Arc<ClockShared>,
}

pub(crate) struct ClockShared {
    state: Mutex<ClockState>,
    /// The run this clock drives, told when time moves or a setting changes.
    run: Mutex<Weak<Monitor>>,
}

#[derive(Clone, Copy)]
struct ClockState {
    /// Virtual time at `real_ref`.
    base: Instant,
    real_ref: Instant,
    rate: f64,
    /// Seconds; infinite = off.
    autojump_threshold: f64,
}

impl ClockState {
    fn now_at(&self, real: Instant) -> Instant {
        if self.rate == 0.0 {
            return self.base;
        }
        let secs = real.saturating_duration_since(self.real_ref).as_secs_f64() * self.rate;
        add_secs(self.base, secs)
    }

    /// Moves the reference to `real`, so that a new rate applies from now on.
    fn rebase(&mut self, real: Instant) {
        self.base = self.now_at(real);
        self.real_ref = real;
    }
}

/// `at + secs`, saturating at the clock's far end instead of panicking.
fn add_secs(at: Instant, secs: f64) -> Instant {
    Duration::try_from_secs_f64(secs).ok().and_then(|d| at.checked_add(d)).unwrap_or_else(|| far_future(at))
}

/// About thirty years after `at`: a deadline no test reaches.
fn far_future(at: Instant) -> Instant {
    at.checked_add(Duration::from_secs(30 * 365 * 86_400)).unwrap_or(at)
}

/// A [`MockClock`] setting that makes no sense (trio's `ValueError`s).
///
/// # Examples
///
/// ```
/// use anyio::testing::{MockClock, MockClockError};
///
/// let clock = MockClock::new();
/// assert!(matches!(clock.set_rate(-1.0), Err(MockClockError::InvalidRate(_))));
/// assert_eq!(clock.jump(-1.0).unwrap_err().to_string(), "time can't go backwards");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum MockClockError {
    /// A negative or NaN rate.
    InvalidRate(f64),
    /// A negative or NaN autojump threshold.
    InvalidThreshold(f64),
    /// A negative or NaN jump.
    BackwardJump(f64),
    /// A jump past the clock's range (infinite, or beyond centuries).
    JumpTooLarge(f64),
}

impl fmt::Display for MockClockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRate(r) => write!(f, "rate must be >= 0 (got {r})"),
            Self::InvalidThreshold(t) => {
                write!(f, "autojump_threshold must be >= 0 (got {t}); use infinity to turn autojump off")
            }
            Self::BackwardJump(s) if s.is_nan() => f.write_str("time can't go backwards (jump by NaN)"),
            Self::BackwardJump(_) => f.write_str("time can't go backwards"),
            Self::JumpTooLarge(s) => write!(f, "cannot jump the clock by {s} seconds: past the end of time"),
        }
    }
}

impl std::error::Error for MockClockError {}

impl From<MockClockError> for crate::error::AnyError {
    fn from(e: MockClockError) -> Self {
        crate::error::AnyError::other(e)
    }
}

impl Default for MockClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MockClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        f.debug_struct("MockClock")
            .field("rate", &s.rate)
            .field("autojump_threshold", &s.autojump_threshold)
            .finish_non_exhaustive()
    }
}

impl MockClock {
    /// A clock that stands still (rate 0) and never jumps by itself (trio's `MockClock()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let clock = anyio::testing::MockClock::new();
    /// assert_eq!(clock.rate(), 0.0);
    /// assert_eq!(clock.autojump_threshold(), f64::INFINITY);
    /// ```
    pub fn new() -> Self {
        let now = Instant::now();
        let state = ClockState { base: now, real_ref: now, rate: 0.0, autojump_threshold: f64::INFINITY };
        Self { shared: Arc::new(ClockShared { state: Mutex::new(state), run: Mutex::new(Weak::new()) }) }
    }

    /// A clock that stands still and jumps to the next deadline as soon as every task is
    /// blocked (trio's `autojump_clock` fixture: `MockClock(autojump_threshold=0)`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(anyio::testing::MockClock::autojump().autojump_threshold(), 0.0);
    /// ```
    pub fn autojump() -> Self {
        let clock = Self::new();
        clock.lock().autojump_threshold = 0.0;
        clock
    }

    /// The clock of the run the calling code belongs to, if that run has one.
    ///
    /// # Examples
    ///
    /// ```
    /// anyio::run(async { assert!(anyio::testing::MockClock::current().is_none()) });
    /// ```
    pub fn current() -> Option<MockClock> {
        super::monitor::current()?.clock().cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> ClockState {
        *self.lock()
    }

    /// The virtual time now: the [`Instant`] that
    /// [`current_time`](crate::time::current_time) returns in a run on this clock.
    ///
    /// # Examples
    ///
    /// ```
    /// let clock = anyio::testing::MockClock::new();
    /// let t0 = clock.current_time();
    /// clock.jump(5.0).unwrap();
    /// assert_eq!(clock.current_time() - t0, std::time::Duration::from_secs(5));
    /// ```
    pub fn current_time(&self) -> Instant {
        self.shared.now()
    }

    /// Virtual seconds per real second.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(anyio::testing::MockClock::new().rate(), 0.0);
    /// ```
    pub fn rate(&self) -> f64 {
        self.state().rate
    }

    /// Sets the rate from now on; time already passed stays passed.
    ///
    /// # Errors
    ///
    /// [`MockClockError::InvalidRate`] for a negative or NaN rate.
    ///
    /// # Examples
    ///
    /// ```
    /// let clock = anyio::testing::MockClock::new();
    /// clock.set_rate(10.0).unwrap();
    /// assert_eq!(clock.rate(), 10.0);
    /// ```
    pub fn set_rate(&self, rate: f64) -> Result<(), MockClockError> {
        if rate.is_nan() || rate < 0.0 {
            return Err(MockClockError::InvalidRate(rate));
        }
        {
            let mut s = self.lock();
            s.rebase(Instant::now());
            s.rate = rate;
        }
        // Every waiting timer recomputes when, in real time, it is due.
        self.shared.tell_run(|m| m.clock_changed(true));
        Ok(())
    }

    /// How long, in real seconds, every task must have been blocked before time jumps to the
    /// next deadline; infinite when autojump is off.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(anyio::testing::MockClock::new().autojump_threshold(), f64::INFINITY);
    /// ```
    pub fn autojump_threshold(&self) -> f64 {
        self.state().autojump_threshold
    }

    /// Sets the autojump threshold in real seconds: 0 jumps as soon as everything is
    /// blocked, infinity turns autojump off. Takes effect at once, also in a running test.
    ///
    /// # Errors
    ///
    /// [`MockClockError::InvalidThreshold`] for a negative or NaN threshold.
    ///
    /// # Examples
    ///
    /// ```
    /// let clock = anyio::testing::MockClock::new();
    /// clock.set_autojump_threshold(0.01).unwrap();
    /// assert!(clock.set_autojump_threshold(f64::NAN).is_err());
    /// ```
    pub fn set_autojump_threshold(&self, secs: f64) -> Result<(), MockClockError> {
        if secs.is_nan() || secs < 0.0 {
            return Err(MockClockError::InvalidThreshold(secs));
        }
        self.lock().autojump_threshold = secs;
        self.shared.tell_run(|m| m.clock_changed(false));
        Ok(())
    }

    /// Moves time forward by `seconds` at once; timers that become due fire.
    ///
    /// # Errors
    ///
    /// [`MockClockError::BackwardJump`] for a negative or NaN jump,
    /// [`MockClockError::JumpTooLarge`] for an infinite one.
    ///
    /// # Examples
    ///
    /// ```
    /// let clock = anyio::testing::MockClock::new();
    /// let t0 = clock.current_time();
    /// clock.jump(1.5).unwrap();
    /// assert_eq!(clock.current_time() - t0, std::time::Duration::from_millis(1500));
    /// ```
    pub fn jump(&self, seconds: f64) -> Result<(), MockClockError> {
        if seconds.is_nan() || seconds < 0.0 {
            return Err(MockClockError::BackwardJump(seconds));
        }
        let d = Duration::try_from_secs_f64(seconds).map_err(|_| MockClockError::JumpTooLarge(seconds))?;
        self.advance_checked(d).map_err(|()| MockClockError::JumpTooLarge(seconds))
    }

    /// Moves time forward by `by` at once, as [`jump`](Self::jump) (tokio's
    /// `time::advance`, without the wait).
    ///
    /// # Panics
    ///
    /// If `by` takes the clock past the end of [`Instant`]'s range.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = anyio::testing::MockClock::new();
    /// let t0 = clock.current_time();
    /// clock.advance(Duration::from_secs(86_400));
    /// assert_eq!(clock.current_time() - t0, Duration::from_secs(86_400));
    /// ```
    #[doc(alias = "jump")]
    pub fn advance(&self, by: Duration) {
        self.advance_checked(by).expect("MockClock::advance: past the end of time")
    }

    fn advance_checked(&self, by: Duration) -> Result<(), ()> {
        {
            let mut s = self.lock();
            s.rebase(Instant::now());
            s.base = s.base.checked_add(by).ok_or(())?;
        }
        self.shared.tell_run(|m| m.clock_changed(false));
        Ok(())
    }
}

impl ClockShared {
    pub(crate) fn now(&self) -> Instant {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).now_at(Instant::now())
    }

    /// The autojump threshold, if autojump is on.
    pub(crate) fn autojump_after(&self) -> Option<Duration> {
        let t = self.state.lock().unwrap_or_else(PoisonError::into_inner).autojump_threshold;
        Duration::try_from_secs_f64(t).ok()
    }

    /// When, in real time, virtual time reaches `deadline`; `None` while the clock stands
    /// still. Rounded up, so that a real timer set for it never fires early.
    pub(crate) fn real_instant_for(&self, deadline: Instant) -> Option<Instant> {
        let s = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.rate == 0.0 {
            return None;
        }
        let real_now = Instant::now();
        let virt_now = s.now_at(real_now);
        let ahead = deadline.saturating_duration_since(virt_now).as_secs_f64() / s.rate;
        Some(add_secs(real_now, ahead + 1e-6))
    }

    /// Sets virtual time to `to` if it is later (an autojump).
    pub(crate) fn jump_to(&self, to: Instant) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let real = Instant::now();
        s.rebase(real);
        if to > s.base {
            s.base = to;
        }
    }

    /// Ties this clock to the run `monitor` watches; a clock serves one run at a time.
    pub(crate) fn attach(&self, monitor: &Arc<Monitor>) {
        *self.run.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(monitor);
    }

    fn tell_run(&self, f: impl FnOnce(&Monitor)) {
        let run = self.run.lock().unwrap_or_else(PoisonError::into_inner).upgrade();
        if let Some(m) = run {
            f(&m);
        }
    }
}
