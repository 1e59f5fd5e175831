//! [`Promise`]: AnyIO 4.15's single-assignment `Future`, renamed so as not to shadow
//! `std::future::Future`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{AnyError, Cancelled};
use crate::sync::Event;

/// Where a [`Promise`] stands (AnyIO's `FutureStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PromiseStatus {
    /// Nothing set yet.
    Pending,
    /// A value was set.
    Finished,
    /// It was cancelled before anything was set.
    Cancelled,
    /// An error was set.
    Failed,
}

/// Why a [`Promise`] operation failed (AnyIO's `FutureFailed` and its subclasses).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PromiseError {
    /// Read before anything was set (AnyIO's `FutureNotFinished`).
    NotFinished,
    /// Set when a value or an error was set already (AnyIO's `FutureAlreadyFinished`).
    AlreadyFinished,
    /// The promise was cancelled: read, or set after it (AnyIO's `FutureCancelled`).
    Cancelled(Option<String>),
    /// The promise holds this error (AnyIO's `FutureFailed`, the cause being the error).
    Failed(Arc<AnyError>),
    /// The *waiting* task's scope was cancelled; the promise is untouched.
    WaitCancelled(Cancelled),
}

impl fmt::Display for PromiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromiseError::NotFinished => f.write_str("the promise has not finished yet: wait for it first"),
            PromiseError::AlreadyFinished => {
                f.write_str("the promise has already finished: a value or an error can be set only once")
            }
            PromiseError::Cancelled(None) => f.write_str("the promise was cancelled"),
            PromiseError::Cancelled(Some(why)) => write!(f, "the promise was cancelled: {why}"),
            PromiseError::Failed(e) => write!(f, "the promise failed: {e}"),
            PromiseError::WaitCancelled(c) => fmt::Display::fmt(c, f),
        }
    }
}

impl StdError for PromiseError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            PromiseError::Failed(e) => Some(&**e),
            PromiseError::WaitCancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl crate::error::AsCancelled for PromiseError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            PromiseError::WaitCancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl From<PromiseError> for AnyError {
    fn from(e: PromiseError) -> Self {
        match e {
            PromiseError::WaitCancelled(c) => AnyError::from(c),
            other => AnyError::other(other),
        }
    }
}

enum State<T> {
    Pending,
    Finished(T),
    Failed(Arc<AnyError>),
    Cancelled(Option<String>),
}

struct Inner<T> {
    name: Option<String>,
    state: Mutex<State<T>>,
    done: Event,
}

/// A value that one task sets and any number of tasks wait for (AnyIO's `Future`): set once,
/// with a value ([`set_value`](Self::set_value)) or an error
/// ([`set_error`](Self::set_error)), or [`cancel`](Self::cancel)led. Clones share it.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{task::Promise, task_group, AnyError};
/// let answer = Promise::<u32>::new();
/// let setter = answer.clone();
/// task_group(|tg| async move {
///     tg.start_soon(async move {
///         setter.set_value(42)?;
///         Ok(())
///     });
///     assert_eq!(answer.get().await?, 42);
///     Ok::<_, AnyError>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[doc(alias = "Future")]
pub struct Promise<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Promise<T> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<T> Default for Promise<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise").field("name", &self.inner.name).field("status", &self.status()).finish()
    }
}

impl<T> Promise<T> {
    /// A pending promise.
    ///
    /// ```
    /// let p = anyio::task::Promise::<()>::new();
    /// assert_eq!(p.status(), anyio::task::PromiseStatus::Pending);
    /// ```
    pub fn new() -> Self {
        Self::build(None)
    }

    /// A pending promise with a name, for debugging.
    ///
    /// ```
    /// let p = anyio::task::Promise::<()>::with_name("config");
    /// assert_eq!(p.name(), Some("config"));
    /// ```
    pub fn with_name(name: impl Into<String>) -> Self {
        Self::build(Some(name.into()))
    }

    fn build(name: Option<String>) -> Self {
        Self { inner: Arc::new(Inner { name, state: Mutex::new(State::Pending), done: Event::new() }) }
    }

    /// Its name, if it was given one.
    ///
    /// ```
    /// assert_eq!(anyio::task::Promise::<()>::new().name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where it stands.
    ///
    /// ```
    /// use anyio::task::{Promise, PromiseStatus};
    /// let p = Promise::new();
    /// p.set_value(1).unwrap();
    /// assert_eq!(p.status(), PromiseStatus::Finished);
    /// ```
    pub fn status(&self) -> PromiseStatus {
        match &*self.state() {
            State::Pending => PromiseStatus::Pending,
            State::Finished(_) => PromiseStatus::Finished,
            State::Failed(_) => PromiseStatus::Failed,
            State::Cancelled(_) => PromiseStatus::Cancelled,
        }
    }

    /// Whether it is no longer pending (any outcome).
    ///
    /// ```
    /// let p = anyio::task::Promise::<()>::new();
    /// p.cancel(None);
    /// assert!(p.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.status() != PromiseStatus::Pending
    }

    fn settle(&self, new: State<T>) -> Result<(), PromiseError> {
        {
            let mut st = self.state();
            match &*st {
                State::Pending => *st = new,
                State::Cancelled(why) => return Err(PromiseError::Cancelled(why.clone())),
                State::Finished(_) | State::Failed(_) => return Err(PromiseError::AlreadyFinished),
            }
        }
        self.inner.done.set();
        Ok(())
    }

    /// Sets its value (AnyIO's `future.return_value = v`) and wakes every waiter.
    ///
    /// # Errors
    ///
    /// [`PromiseError::AlreadyFinished`] if a value or error was set;
    /// [`PromiseError::Cancelled`] if it was cancelled.
    ///
    /// ```
    /// use anyio::task::{Promise, PromiseError};
    /// let p = Promise::new();
    /// p.set_value("once").unwrap();
    /// assert!(matches!(p.set_value("twice"), Err(PromiseError::AlreadyFinished)));
    /// ```
    #[doc(alias = "return_value")]
    pub fn set_value(&self, value: T) -> Result<(), PromiseError> {
        self.settle(State::Finished(value))
    }

    /// Sets an error (AnyIO's `future.exception = e`) and wakes every waiter.
    ///
    /// # Errors
    ///
    /// As [`set_value`](Self::set_value).
    ///
    /// ```
    /// use anyio::{task::{Promise, PromiseError}, AnyError};
    /// let p = Promise::<u8>::new();
    /// p.set_error(AnyError::msg("no luck")).unwrap();
    /// assert!(matches!(p.value(), Err(PromiseError::Failed(e)) if e.to_string() == "no luck"));
    /// ```
    #[doc(alias = "exception")]
    pub fn set_error(&self, error: impl Into<AnyError>) -> Result<(), PromiseError> {
        self.settle(State::Failed(Arc::new(error.into())))
    }

    /// Cancels it, with an optional reason, and wakes every waiter; does nothing if it has
    /// finished already (or was cancelled).
    ///
    /// ```
    /// use anyio::task::{Promise, PromiseError};
    /// let p = Promise::<u8>::new();
    /// p.cancel(Some("not needed".into()));
    /// assert!(matches!(p.set_value(1), Err(PromiseError::Cancelled(Some(_)))));
    /// ```
    pub fn cancel(&self, reason: Option<String>) {
        let _ = self.settle(State::Cancelled(reason));
    }

    /// The error it holds, if it failed (AnyIO's `future.exception` getter).
    ///
    /// # Errors
    ///
    /// [`PromiseError::NotFinished`] while pending; [`PromiseError::Cancelled`] if cancelled.
    ///
    /// ```
    /// let p = anyio::task::Promise::new();
    /// p.set_value(3).unwrap();
    /// assert!(p.error().unwrap().is_none());
    /// ```
    pub fn error(&self) -> Result<Option<Arc<AnyError>>, PromiseError> {
        match &*self.state() {
            State::Pending => Err(PromiseError::NotFinished),
            State::Cancelled(why) => Err(PromiseError::Cancelled(why.clone())),
            State::Failed(e) => Ok(Some(e.clone())),
            State::Finished(_) => Ok(None),
        }
    }

    /// Waits until it is done (value, error or cancellation), without reading it.
    ///
    /// # Errors
    ///
    /// [`Cancelled`] if the waiting task's scope is cancelled first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a checkpoint; the promise is untouched.
    ///
    /// ```
    /// # anyio::run(async {
    /// let p = anyio::task::Promise::<()>::new();
    /// p.cancel(None);
    /// p.wait().await.unwrap();
    /// # });
    /// ```
    pub async fn wait(&self) -> Result<(), Cancelled> {
        self.inner.done.wait().await
    }
}

impl<T: Clone> Promise<T> {
    /// Its value, now (AnyIO's `future.return_value` getter).
    ///
    /// # Errors
    ///
    /// [`PromiseError::NotFinished`] while pending; [`PromiseError::Failed`] with the error
    /// set; [`PromiseError::Cancelled`] if cancelled.
    ///
    /// ```
    /// use anyio::task::{Promise, PromiseError};
    /// let p = Promise::new();
    /// assert!(matches!(p.value(), Err(PromiseError::NotFinished)));
    /// p.set_value(5).unwrap();
    /// assert_eq!(p.value().unwrap(), 5);
    /// ```
    pub fn value(&self) -> Result<T, PromiseError> {
        match &*self.state() {
            State::Pending => Err(PromiseError::NotFinished),
            State::Finished(v) => Ok(v.clone()),
            State::Failed(e) => Err(PromiseError::Failed(e.clone())),
            State::Cancelled(why) => Err(PromiseError::Cancelled(why.clone())),
        }
    }

    /// Waits until it is done, then returns its value (AnyIO's `await future`); any number
    /// of tasks may wait, each gets a clone.
    ///
    /// # Errors
    ///
    /// [`PromiseError::WaitCancelled`] if the waiting task's scope is cancelled first; then as
    /// [`value`](Self::value).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a checkpoint; the promise is untouched.
    ///
    /// ```
    /// # anyio::run(async {
    /// let p = anyio::task::Promise::new();
    /// p.set_value('x').unwrap();
    /// assert_eq!(p.get().await.unwrap(), 'x');
    /// # });
    /// ```
    pub async fn get(&self) -> Result<T, PromiseError> {
        self.wait().await.map_err(PromiseError::WaitCancelled)?;
        self.value()
    }
}
