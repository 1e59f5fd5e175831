//! `CapacityLimiter`: a resizable pool of tokens, at most one per borrower.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::permits::{AcquirePermit, Permits};
use crate::error::{AsCancelled, Cancelled, WouldBlock};
use crate::loom::{lock, Mutex};

/// Limits how many borrowers use a resource at once (AnyIO's `CapacityLimiter`). Each borrower
/// holds at most one token; tokens are handed to waiters in FIFO order; the total can be changed
/// while the limiter is in use (raising it wakes waiters at once, lowering it takes effect as
/// tokens come back). `Send + Sync`.
///
/// A borrower is any value you choose that identifies who borrows (a job id, a connection
/// id...). [`acquire`](Self::acquire) borrows anonymously: every call is a borrower of its own.
/// AnyIO's `acquire` borrows for the current task and raises if that task borrows again; here
/// two futures of one task (under `futures::join!`, say) may each hold a token, or wait for one,
/// as any two borrowers would. The one-token rule applies to explicit borrowers only
/// ([`acquire_on_behalf_of`](Self::acquire_on_behalf_of)), where the caller named who borrows.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let limiter = anyio::sync::CapacityLimiter::new(2);
/// let a = limiter.acquire_on_behalf_of("job-1").await.unwrap();
/// assert!(limiter.acquire_on_behalf_of("job-1").await.is_err()); // one token per borrower
/// let b = limiter.acquire().await.unwrap();
/// assert_eq!(limiter.available_tokens(), 0);
/// drop((a, b));
/// assert_eq!(limiter.borrowed_tokens(), 0);
/// # });
/// ```
pub struct CapacityLimiter {
    permits: Permits,
    shared: Mutex<Shared>,
}

struct Shared {
    total: usize,
    borrowed: usize,
    borrowers: Vec<Arc<dyn BorrowerKey>>,
}

impl fmt::Debug for CapacityLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.shared);
        f.debug_struct("CapacityLimiter").field("total", &st.total).field("borrowed", &st.borrowed).finish()
    }
}

/// What [`CapacityLimiter::statistics`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapacityLimiterStatistics {
    /// Tokens held now.
    pub borrowed_tokens: usize,
    /// The total number of tokens.
    pub total_tokens: usize,
    /// How many borrowers with a key hold a token (anonymous ones are not counted).
    pub named_borrowers: usize,
    /// How many tasks wait for a token.
    pub tasks_waiting: usize,
}

/// Why a [`CapacityLimiter`] acquisition gave no token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapacityLimiterError {
    /// The borrower already holds one of this limiter's tokens.
    AlreadyBorrowing,
    /// The waiting scope was cancelled; nothing was taken.
    Cancelled(Cancelled),
}

impl fmt::Display for CapacityLimiterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapacityLimiterError::AlreadyBorrowing => f.write_str(
                "this borrower is already holding one of this CapacityLimiter's tokens; release it first",
            ),
            CapacityLimiterError::Cancelled(c) => c.fmt(f),
        }
    }
}

impl StdError for CapacityLimiterError {
    // The cancellation is the source, so a chain walk finds it wherever this error is wrapped.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CapacityLimiterError::Cancelled(c) => Some(c),
            CapacityLimiterError::AlreadyBorrowing => None,
        }
    }
}

impl AsCancelled for CapacityLimiterError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            CapacityLimiterError::Cancelled(c) => Some(c),
            CapacityLimiterError::AlreadyBorrowing => None,
        }
    }
}

trait BorrowerKey: Send + Sync {
    fn key_eq(&self, other: &dyn BorrowerKey) -> bool;
    fn as_any(&self) -> &dyn Any;
    fn key_hash(&self) -> u64;
}

impl<B: Hash + Eq + Send + Sync + 'static> BorrowerKey for B {
    fn key_eq(&self, other: &dyn BorrowerKey) -> bool {
        other.as_any().downcast_ref::<B>() == Some(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn key_hash(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

impl CapacityLimiter {
    /// A limiter with `total_tokens` tokens (0 is allowed: everyone waits until it is raised).
    ///
    /// ```
    /// assert_eq!(anyio::sync::CapacityLimiter::new(4).total_tokens(), 4);
    /// ```
    pub fn new(total_tokens: usize) -> Self {
        Self {
            permits: Permits::new(total_tokens),
            shared: Mutex::new(Shared { total: total_tokens, borrowed: 0, borrowers: Vec::new() }),
        }
    }

    /// The total number of tokens.
    ///
    /// ```
    /// assert_eq!(anyio::sync::CapacityLimiter::new(1).total_tokens(), 1);
    /// ```
    pub fn total_tokens(&self) -> usize {
        lock(&self.shared).total
    }

    /// Changes the total. Raising it hands the new tokens to waiters at once (FIFO); lowering
    /// it below the tokens held revokes nothing: the surplus disappears as tokens come back.
    ///
    /// ```
    /// let limiter = anyio::sync::CapacityLimiter::new(1);
    /// limiter.set_total_tokens(3);
    /// assert_eq!(limiter.available_tokens(), 3);
    /// ```
    pub fn set_total_tokens(&self, total: usize) {
        let old = std::mem::replace(&mut lock(&self.shared).total, total);
        if total > old {
            self.permits.add(total - old);
        } else {
            self.permits.remove(old - total);
        }
    }

    /// Tokens held now.
    ///
    /// ```
    /// assert_eq!(anyio::sync::CapacityLimiter::new(1).borrowed_tokens(), 0);
    /// ```
    pub fn borrowed_tokens(&self) -> usize {
        lock(&self.shared).borrowed
    }

    /// Tokens free now.
    ///
    /// ```
    /// assert_eq!(anyio::sync::CapacityLimiter::new(2).available_tokens(), 2);
    /// ```
    pub fn available_tokens(&self) -> usize {
        self.permits.available()
    }

    /// Counts and waiters.
    ///
    /// ```
    /// let s = anyio::sync::CapacityLimiter::new(2).statistics();
    /// assert_eq!((s.total_tokens, s.borrowed_tokens, s.tasks_waiting), (2, 0, 0));
    /// ```
    pub fn statistics(&self) -> CapacityLimiterStatistics {
        let st = lock(&self.shared);
        CapacityLimiterStatistics {
            borrowed_tokens: st.borrowed,
            total_tokens: st.total,
            named_borrowers: st.borrowers.len(),
            tasks_waiting: self.permits.waiting(),
        }
    }

    /// Waits for a token for an anonymous borrower.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, and fair: a cancelled waiter takes nothing; a token handed to it at that
    /// moment is returned anyway; a dropped future passes a token handed to it on.
    ///
    /// ```
    /// # anyio::run(async {
    /// let limiter = anyio::sync::CapacityLimiter::new(1);
    /// let token = limiter.acquire().await.unwrap();
    /// drop(token);
    /// # });
    /// ```
    pub fn acquire(&self) -> LimiterAcquire<'_> {
        LimiterAcquire { limiter: self, borrower: None, inner: Some(self.permits.acquire()) }
    }

    /// Waits for a token on behalf of `borrower`, which may hold at most one.
    ///
    /// # Errors
    ///
    /// [`CapacityLimiterError::AlreadyBorrowing`] at once if `borrower` holds (or waits for) a
    /// token of this limiter; [`CapacityLimiterError::Cancelled`] if the scope is cancelled
    /// while waiting.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire); a cancelled waiter also stops counting as a borrower.
    ///
    /// ```
    /// # anyio::run(async {
    /// let limiter = anyio::sync::CapacityLimiter::new(2);
    /// let _t = limiter.acquire_on_behalf_of(42u32).await.unwrap();
    /// # });
    /// ```
    pub fn acquire_on_behalf_of<B>(&self, borrower: B) -> LimiterAcquire<'_>
    where
        B: Hash + Eq + Send + Sync + 'static,
    {
        let key: Arc<dyn BorrowerKey> = Arc::new(borrower);
        let mut st = lock(&self.shared);
        if st.borrowers.iter().any(|b| b.key_hash() == key.key_hash() && b.key_eq(&*key)) {
            return LimiterAcquire { limiter: self, borrower: None, inner: None };
        }
        // Reserved before waiting, so a second concurrent acquire by the same borrower fails.
        st.borrowers.push(key.clone());
        drop(st);
        LimiterAcquire { limiter: self, borrower: Some(key), inner: Some(self.permits.acquire()) }
    }

    /// Takes a free token for an anonymous borrower if one is free and nobody waits.
    ///
    /// # Errors
    ///
    /// [`WouldBlock`] otherwise.
    ///
    /// ```
    /// let limiter = anyio::sync::CapacityLimiter::new(1);
    /// let t = limiter.try_acquire().unwrap();
    /// assert!(limiter.try_acquire().is_err());
    /// # drop(t);
    /// ```
    #[doc(alias = "acquire_nowait")]
    pub fn try_acquire(&self) -> Result<CapacityToken<'_>, WouldBlock> {
        if self.permits.try_acquire() {
            lock(&self.shared).borrowed += 1;
            Ok(CapacityToken { limiter: self, borrower: None })
        } else {
            Err(WouldBlock)
        }
    }

    /// As [`acquire`](Self::acquire), for a token that holds the limiter by reference count
    /// and can be sent to another thread.
    ///
    /// # Errors
    ///
    /// [`CapacityLimiterError::Cancelled`] if the scope is cancelled while waiting.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire): a cancelled wait takes nothing.
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::sync::Arc;
    /// let limiter = Arc::new(anyio::sync::CapacityLimiter::new(1));
    /// let token = limiter.acquire_owned().await.unwrap();
    /// std::thread::spawn(move || drop(token)).join().unwrap();
    /// assert_eq!(limiter.borrowed_tokens(), 0);
    /// # });
    /// ```
    pub async fn acquire_owned(self: &Arc<Self>) -> Result<OwnedCapacityToken, CapacityLimiterError> {
        let token = self.acquire().await?;
        Ok(token.into_owned(self.clone()))
    }

    fn give_back(&self, borrower: Option<Arc<dyn BorrowerKey>>) {
        {
            let mut st = lock(&self.shared);
            st.borrowed -= 1;
        }
        if let Some(b) = borrower {
            self.forget_borrower(&b);
        }
        self.permits.release();
    }

    fn forget_borrower(&self, key: &Arc<dyn BorrowerKey>) {
        let mut st = lock(&self.shared);
        if let Some(pos) = st.borrowers.iter().position(|b| Arc::ptr_eq(b, key)) {
            st.borrowers.swap_remove(pos);
        }
    }
}

/// The future returned by [`CapacityLimiter::acquire`] and
/// [`CapacityLimiter::acquire_on_behalf_of`].
#[must_use = "futures do nothing unless polled"]
pub struct LimiterAcquire<'a> {
    limiter: &'a CapacityLimiter,
    borrower: Option<Arc<dyn BorrowerKey>>,
    /// `None` when the borrower already held a token.
    inner: Option<AcquirePermit<'a>>,
}

impl fmt::Debug for LimiterAcquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterAcquire").finish_non_exhaustive()
    }
}

impl<'a> Future for LimiterAcquire<'a> {
    type Output = Result<CapacityToken<'a>, CapacityLimiterError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(CapacityLimiterError::AlreadyBorrowing));
        };
        match Pin::new(inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => {
                this.inner = None;
                lock(&this.limiter.shared).borrowed += 1;
                Poll::Ready(Ok(CapacityToken { limiter: this.limiter, borrower: this.borrower.take() }))
            }
            Poll::Ready(Err(c)) => {
                this.inner = None;
                if let Some(b) = this.borrower.take() {
                    this.limiter.forget_borrower(&b);
                }
                Poll::Ready(Err(CapacityLimiterError::Cancelled(c)))
            }
        }
    }
}

impl Drop for LimiterAcquire<'_> {
    fn drop(&mut self) {
        // Dropped before finishing: the reservation goes; a token handed over meanwhile is
        // passed on by the inner acquire's own drop.
        if let Some(b) = self.borrower.take() {
            self.limiter.forget_borrower(&b);
        }
    }
}

/// A token of a [`CapacityLimiter`]; dropping it gives the token back (to the oldest waiter).
#[must_use = "the token is given back as soon as it is dropped"]
pub struct CapacityToken<'a> {
    limiter: &'a CapacityLimiter,
    borrower: Option<Arc<dyn BorrowerKey>>,
}

impl fmt::Debug for CapacityToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityToken").field("named", &self.borrower.is_some()).finish()
    }
}

impl Drop for CapacityToken<'_> {
    fn drop(&mut self) {
        self.limiter.give_back(self.borrower.take());
    }
}

impl CapacityToken<'_> {
    /// The same token, holding `limiter` (the one it came from) by reference count instead of
    /// by borrow, so that it can move to another thread.
    pub(crate) fn into_owned(mut self, limiter: Arc<CapacityLimiter>) -> OwnedCapacityToken {
        debug_assert!(std::ptr::eq(self.limiter, &*limiter));
        let borrower = self.borrower.take();
        // Nothing left to release: the token lives on in the owned one.
        std::mem::forget(self);
        OwnedCapacityToken { limiter, borrower }
    }
}

/// A token of a [`CapacityLimiter`] that owns a reference to its limiter, so that it can be
/// sent to another thread (what `to_thread::run_sync` hands its worker); dropping it gives the
/// token back.
#[must_use = "the token is given back as soon as it is dropped"]
pub struct OwnedCapacityToken {
    limiter: Arc<CapacityLimiter>,
    borrower: Option<Arc<dyn BorrowerKey>>,
}

impl fmt::Debug for OwnedCapacityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedCapacityToken").field("named", &self.borrower.is_some()).finish()
    }
}

impl Drop for OwnedCapacityToken {
    fn drop(&mut self) {
        self.limiter.give_back(self.borrower.take());
    }
}
