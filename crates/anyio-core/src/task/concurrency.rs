//! AnyIO 4.15's concurrency helpers over task groups: [`gather`], [`gather_all`], [`amap`],
//! [`amap_limited`] and [`as_completed`]. Each item runs as a real task of an internal group,
//! so the group's rules hold: the first failure cancels the rest, and every failure is
//! reported together in [`GroupError::Failed`].

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

use super::{task_group, GroupError, JoinError, TaskGroup, TaskHandle};
use crate::error::{AnyError, Cancelled};
use crate::sync::CapacityLimiter;

/// Turns the group's `Ok(None)` (its own scope cancelled; the helpers never cancel it, but the
/// body of [`as_completed`] may) into the error the caller can act on.
fn settle<T>(r: Result<Option<T>, GroupError<AnyError>>) -> Result<T, GroupError<AnyError>> {
    match r {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(GroupError::Failed(vec![AnyError::msg(
            "the helper's task group was cancelled through its own scope before it had every result",
        )])),
        Err(e) => Err(e),
    }
}

/// What a helper's body does when a handle reports no value: the task's own failure is the
/// group's already (and has cancelled the body, whose cancellation is then no failure).
fn joined<T>(r: Result<T, JoinError>) -> Result<T, AnyError> {
    r.map_err(|e| match e {
        JoinError::Cancelled(c) => AnyError::from(c),
        other => AnyError::other(other),
    })
}

/// The values of `handles`, in order.
async fn join_in_order<T: 'static>(handles: Vec<TaskHandle<T>>) -> Result<Vec<T>, AnyError> {
    let mut values = Vec::with_capacity(handles.len());
    for h in handles {
        values.push(joined(h.await)?);
    }
    Ok(values)
}

/// Tuples of futures that [`gather`] runs concurrently: `(A,)` to `(A, B, ..., L)`, each a
/// `Future<Output = Result<T, E>> + Send + 'static` with `E: Into<AnyError>`.
pub trait Gather {
    /// The tuple of the futures' values, in argument order.
    type Output;

    /// Runs the futures as tasks of one group; see [`gather`].
    fn gather(self) -> impl Future<Output = Result<Self::Output, GroupError<AnyError>>> + Send;
}

macro_rules! impl_gather {
    ($($F:ident $T:ident $E:ident $f:ident $h:ident),+) => {
        impl<$($F, $T, $E),+> Gather for ($($F,)+)
        where
            $(
                $F: Future<Output = Result<$T, $E>> + Send + 'static,
                $T: Send + 'static,
                $E: Into<AnyError> + Send + 'static,
            )+
        {
            type Output = ($($T,)+);

            fn gather(self) -> impl Future<Output = Result<Self::Output, GroupError<AnyError>>> + Send {
                let ($($f,)+) = self;
                async move {
                    settle(task_group(move |tg| async move {
                        $(let $h = tg.spawn(async move { $f.await.map_err(Into::into) });)+
                        Ok(($(joined($h.await)?,)+))
                    })
                    .await)
                }
            }
        }
    };
}

impl_gather!(A TA EA a ha);
impl_gather!(A TA EA a ha, B TB EB b hb);
impl_gather!(A TA EA a ha, B TB EB b hb, C TC EC c hc);
impl_gather!(A TA EA a ha, B TB EB b hb, C TC EC c hc, D TD ED d hd);
impl_gather!(A TA EA a ha, B TB EB b hb, C TC EC c hc, D TD ED d hd, E5 TE EE e he);
impl_gather!(A TA EA a ha, B TB EB b hb, C TC EC c hc, D TD ED d hd, E5 TE EE e he, F TF EF f hf);
impl_gather!(A TA EA a ha, B TB EB b hb, C TC EC c hc, D TD ED d hd, E5 TE EE e he, F TF EF f hf,
    G TG EG g hg);
impl_gather!(A TA EA a ha, B TB EB b hb, C TC EC c hc, D TD ED d hd, E5 TE EE e he, F TF EF f hf,
    G TG EG g hg, H TH EH h hh);
impl_gather!(A TA EA a ha, B TB EB b hb, C TC EC c hc, D TD ED d hd, E5 TE EE e he, F TF EF f hf,
    G TG EG g hg, H TH EH h hh, I TI EI i hi);
impl_gather!(A TA EA a ha, B TB EB b hb, C TC EC c hc, D TD ED d hd, E5 TE EE e he, F TF EF f hf,
    G TG EG g hg, H TH EH h hh, I TI EI i hi, J TJ EJ j hj);
impl_gather!(A TA EA a ha, B TB EB b hb, C TC EC c hc, D TD ED d hd, E5 TE EE e he, F TF EF f hf,
    G TG EG g hg, H TH EH h hh, I TI EI i hi, J TJ EJ j hj, K TK EK k hk);
impl_gather!(A TA EA a ha, B TB EB b hb, C TC EC c hc, D TD ED d hd, E5 TE EE e he, F TF EF f hf,
    G TG EG g hg, H TH EH h hh, I TI EI i hi, J TJ EJ j hj, K TK EK k hk, L TL EL l hl);

/// Runs a tuple of futures concurrently, each as a task of one group, and returns their
/// values as a tuple in argument order (AnyIO's `gather`). The futures may have different
/// value and error types.
///
/// # Errors
///
/// [`GroupError::Failed`] with every failure when any future fails (the first failure
/// cancels the others); [`GroupError::Cancelled`] when an enclosing scope is cancelled.
///
/// # Cancel safety
///
/// As [`task_group`]: cancelled from outside, the tasks are cancelled and waited for.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// use anyio::{sleep, task::gather, AnyError};
/// let (a, b) = gather((
///     async { sleep(Duration::from_millis(5)).await?; Ok::<_, AnyError>(1) },
///     async { Ok::<_, std::io::Error>("two") },
/// ))
/// .await
/// .unwrap();
/// assert_eq!((a, b), (1, "two"));
/// # });
/// ```
pub async fn gather<G: Gather>(futures: G) -> Result<G::Output, GroupError<AnyError>> {
    futures.gather().await
}

/// Runs every future of `futures` concurrently, each as a task of one group, and returns
/// their values in the iterator's order (AnyIO's `gather` over a list).
///
/// # Errors
///
/// As [`gather`].
///
/// # Cancel safety
///
/// As [`gather`].
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{task::gather_all, AnyError};
/// let squares = gather_all((1..=4u32).map(|i| async move { Ok::<_, AnyError>(i * i) })).await.unwrap();
/// assert_eq!(squares, [1, 4, 9, 16]);
/// # });
/// ```
pub async fn gather_all<I, F, T, E>(futures: I) -> Result<Vec<T>, GroupError<AnyError>>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<AnyError> + Send + 'static,
{
    let futures = futures.into_iter();
    settle(
        task_group(move |tg| async move {
            let handles: Vec<TaskHandle<T>> =
                futures.map(|f| tg.spawn(async move { f.await.map_err(Into::into) })).collect();
            join_in_order(handles).await
        })
        .await,
    )
}

/// Calls `f` on every item and runs the futures concurrently, each as a task of one group;
/// returns their values in the items' order (AnyIO's `amap`). Every item starts at once: see
/// [`amap_limited`] to bound how many run at a time.
///
/// # Errors
///
/// As [`gather`].
///
/// # Cancel safety
///
/// As [`gather`].
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{task::amap, AnyError};
/// let lens = amap(|s: &'static str| async move { Ok::<_, AnyError>(s.len()) }, ["a", "bbb", "cc"]).await.unwrap();
/// assert_eq!(lens, [1, 3, 2]);
/// # });
/// ```
pub async fn amap<I, F, Fut, T, E>(f: F, items: I) -> Result<Vec<T>, GroupError<AnyError>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<AnyError> + Send + 'static,
{
    gather_all(items.into_iter().map(f)).await
}

/// [`amap`] with at most `limiter`'s total tokens of the calls running at a time: each item
/// waits for a token before its task is spawned (so a million items are not a million
/// waiting tasks), and holds it until its future ends.
///
/// # Errors
///
/// As [`gather`].
///
/// # Cancel safety
///
/// As [`gather`]; items not yet started when the group is cancelled never start.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::sync::Arc;
/// use anyio::{sync::CapacityLimiter, task::amap_limited, AnyError};
/// let limiter = Arc::new(CapacityLimiter::new(2));
/// let doubled = amap_limited(|i: u64| async move { Ok::<_, AnyError>(i * 2) }, 0..10, &limiter).await.unwrap();
/// assert_eq!(doubled, (0..10).map(|i| i * 2).collect::<Vec<_>>());
/// # });
/// ```
pub async fn amap_limited<I, F, Fut, T, E>(
    mut f: F,
    items: I,
    limiter: &Arc<CapacityLimiter>,
) -> Result<Vec<T>, GroupError<AnyError>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<AnyError> + Send + 'static,
{
    let items = items.into_iter();
    let limiter = limiter.clone();
    settle(
        task_group(move |tg| async move {
            let mut handles: Vec<TaskHandle<T>> = Vec::with_capacity(items.size_hint().0);
            for item in items {
                let token = limiter.acquire_owned().await?;
                let fut = f(item);
                handles.push(tg.spawn(async move {
                    let _token = token;
                    fut.await.map_err(Into::into)
                }));
            }
            join_in_order(handles).await
        })
        .await,
    )
}

/// The indexes of finished tasks, in the order they finished, and the waiting body's waker.
#[derive(Default)]
struct Finished {
    order: Mutex<(VecDeque<usize>, Option<Waker>)>,
}

impl Finished {
    fn push(&self, i: usize) {
        let waker = {
            let mut st = self.order.lock().unwrap_or_else(PoisonError::into_inner);
            st.0.push_back(i);
            st.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Reports its task's index as finished when dropped: when the future returns, fails or is
/// dropped by a cancellation or a panic alike.
struct FinishGuard {
    finished: Arc<Finished>,
    index: usize,
}

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.finished.push(self.index);
    }
}

/// The handles of [`as_completed`]'s tasks, handed out in the order the tasks finish.
pub struct Completed<T> {
    handles: Vec<Option<TaskHandle<T>>>,
    finished: Arc<Finished>,
    left: usize,
}

impl<T> fmt::Debug for Completed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completed").field("left", &self.left).finish_non_exhaustive()
    }
}

impl<T> Completed<T> {
    /// The next task to finish, as its (finished) handle; `None` once every task was handed
    /// out. Await the handle for the task's value.
    ///
    /// # Errors
    ///
    /// [`Cancelled`] if the caller's scope is cancelled first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled call hands out nothing, and the next call hands out that
    /// task.
    pub async fn next(&mut self) -> Result<Option<TaskHandle<T>>, Cancelled> {
        if self.left == 0 {
            return Ok(None);
        }
        let finished = self.finished.clone();
        let index = crate::cancel::cancellable(std::future::poll_fn(|cx| {
            let mut st = finished.order.lock().unwrap_or_else(PoisonError::into_inner);
            match st.0.pop_front() {
                Some(i) => Poll::Ready(i),
                None => {
                    st.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }))
        .await?;
        let handle = self.handles[index].take().expect("each task reports itself finished once");
        // Its future has ended; the task itself is at most a few instructions from finishing.
        if let Err(c) = handle.wait().await {
            self.finished.order.lock().unwrap_or_else(PoisonError::into_inner).0.push_front(index);
            self.handles[index] = Some(handle);
            return Err(c);
        }
        self.left -= 1;
        Ok(Some(handle))
    }

    /// How many tasks have not been handed out yet.
    pub fn remaining(&self) -> usize {
        self.left
    }
}

/// Runs every future of `futures` as a task of one group and calls `body` with a
/// [`Completed`] that hands out their handles in the order they finish (AnyIO's
/// `as_completed`). When `body` returns, the tasks still running are cancelled and waited
/// for; its value is returned.
///
/// # Errors
///
/// [`GroupError::Failed`] with every failure of the tasks and of `body` (a task's failure
/// cancels the others and the body); an empty `futures` is [`GroupError::Failed`] with a
/// message, as AnyIO's `ValueError`; [`GroupError::Cancelled`] when an enclosing scope is
/// cancelled.
///
/// # Cancel safety
///
/// As [`task_group`].
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// use anyio::{sleep, task::as_completed, AnyError};
/// let first = as_completed(
///     [30u64, 1, 60].map(|ms| async move {
///         sleep(Duration::from_millis(ms)).await?;
///         Ok::<_, AnyError>(ms)
///     }),
///     |mut done| async move {
///         // The fastest wins; the others are cancelled when this returns.
///         let h = done.next().await?.expect("three tasks");
///         Ok(h.await?)
///     },
/// )
/// .await
/// .unwrap();
/// assert_eq!(first, 1);
/// # });
/// ```
pub async fn as_completed<I, F, T, E, B, BF, R>(futures: I, body: B) -> Result<R, GroupError<AnyError>>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<AnyError> + Send + 'static,
    B: FnOnce(Completed<T>) -> BF,
    BF: Future<Output = Result<R, AnyError>>,
{
    let futures: Vec<F> = futures.into_iter().collect();
    if futures.is_empty() {
        return Err(GroupError::Failed(vec![AnyError::msg("as_completed needs at least one future")]));
    }
    settle(
        task_group(move |tg: TaskGroup<AnyError>| async move {
            let finished = Arc::new(Finished::default());
            let handles: Vec<Option<TaskHandle<T>>> = futures
                .into_iter()
                .enumerate()
                .map(|(index, f)| {
                    let guard = FinishGuard { finished: finished.clone(), index };
                    Some(tg.spawn(async move {
                        let _guard = guard;
                        f.await.map_err(Into::into)
                    }))
                })
                .collect();
            let left = handles.len();
            let r = body(Completed { handles, finished, left }).await;
            // The rest are not wanted: cancel them (the group then waits for them).
            tg.cancel();
            r
        })
        .await,
    )
}
