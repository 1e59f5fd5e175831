//! trio's `Sequencer`: make tasks run given blocks in a given order.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::{AnyError, AsCancelled, Cancelled};
use crate::sync::Event;

/// Forces an order on blocks of code in different tasks (trio's `testing.Sequencer`): the
/// block at position `n` starts only once the block at `n - 1` has ended. Each position is
/// used once; position 0 goes first without waiting.
///
/// A task cancelled while it waits for its turn breaks the sequence: every task waiting,
/// and every later caller, gets [`SequencerError::Broken`], so that a test fails instead of
/// hanging.
///
/// Clones share one sequence.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use anyio::testing::Sequencer;
///
/// # anyio::run(async {
/// let seq = Sequencer::new();
/// let log = Arc::new(Mutex::new(Vec::new()));
/// anyio::task::task_group(|tg| {
///     let (seq, log) = (seq.clone(), log.clone());
///     async move {
///         let (s, l) = (seq.clone(), log.clone());
///         tg.spawn(async move {
///             let _turn = s.at(1).await?;
///             l.lock().unwrap().push("second");
///             Ok::<(), anyio::AnyError>(())
///         });
///         let _turn = seq.at(0).await?;
///         log.lock().unwrap().push("first");
///         Ok(())
///     }
/// })
/// .await
/// .unwrap();
/// assert_eq!(*log.lock().unwrap(), ["first", "second"]);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct Sequencer {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// The event that lets position `n` start.
    points: HashMap<usize, Arc<Event>>,
    claimed: HashSet<usize>,
    broken: bool,
}

impl fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("Sequencer").field("claimed", &s.claimed.len()).field("broken", &s.broken).finish()
    }
}

impl Sequencer {
    /// A sequence with no position taken.
    ///
    /// # Examples
    ///
    /// ```
    /// let seq = anyio::testing::Sequencer::new();
    /// # drop(seq);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn event(&self, position: usize) -> Arc<Event> {
        self.lock().points.entry(position).or_default().clone()
    }

    /// Waits until the block at `position - 1` has ended (at once for 0), and returns the
    /// turn: the block at `position + 1` may start when it is dropped (trio's
    /// `async with seq(position)`).
    ///
    /// # Errors
    ///
    /// [`SequencerError::Reused`] for a position used before; [`SequencerError::Broken`]
    /// when the sequence is (or becomes, while this waits) broken;
    /// [`SequencerError::Cancelled`] when the caller is cancelled while it waits, which
    /// breaks the sequence.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the wait breaks the sequence on purpose (see the type's documentation).
    ///
    /// # Examples
    ///
    /// ```
    /// use anyio::testing::{Sequencer, SequencerError};
    /// # anyio::run(async {
    /// let seq = Sequencer::new();
    /// drop(seq.at(0).await.unwrap());
    /// assert!(matches!(seq.at(0).await, Err(SequencerError::Reused(0))));
    /// # });
    /// ```
    pub async fn at(&self, position: usize) -> Result<SequencePoint, SequencerError> {
        // The position's event is made under the same lock as the claim and the broken check:
        // a wait that breaks the sequence sets every event it finds under that lock, so an
        // event made after it (a claim that raced the break) would never be set.
        let event = {
            let mut s = self.lock();
            if s.claimed.contains(&position) {
                return Err(SequencerError::Reused(position));
            }
            if s.broken {
                return Err(SequencerError::Broken);
            }
            s.claimed.insert(position);
            (position != 0).then(|| s.points.entry(position).or_default().clone())
        };
        if let Some(event) = event {
            if let Err(c) = event.wait().await {
                let events: Vec<Arc<Event>> = {
                    let mut s = self.lock();
                    s.broken = true;
                    s.points.values().cloned().collect()
                };
                events.iter().for_each(|e| e.set());
                return Err(SequencerError::Cancelled(c));
            }
            if self.lock().broken {
                return Err(SequencerError::Broken);
            }
        }
        Ok(SequencePoint { seq: self.clone(), position })
    }
}

/// A task's turn in a [`Sequencer`]: the next position may start once this is dropped.
#[must_use = "the next position starts when the turn is dropped"]
pub struct SequencePoint {
    seq: Sequencer,
    position: usize,
}

impl fmt::Debug for SequencePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequencePoint").field("position", &self.position).finish()
    }
}

impl SequencePoint {
    /// The position of this turn.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let seq = anyio::testing::Sequencer::new();
    /// assert_eq!(seq.at(0).await.unwrap().position(), 0);
    /// # });
    /// ```
    pub fn position(&self) -> usize {
        self.position
    }
}

impl Drop for SequencePoint {
    fn drop(&mut self) {
        self.seq.event(self.position + 1).set();
    }
}

/// Why a [`Sequencer`] refused a turn (trio's `RuntimeError`s, with its messages).
///
/// # Examples
///
/// ```
/// let e = anyio::testing::SequencerError::Reused(3);
/// assert_eq!(e.to_string(), "Attempted to reuse sequence point 3");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SequencerError {
    /// The position was used before.
    Reused(usize),
    /// A task was cancelled while waiting for its turn, so no later turn can come.
    Broken,
    /// The caller was cancelled while waiting for its turn; the sequence is now broken.
    Cancelled(Cancelled),
}

impl fmt::Display for SequencerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reused(p) => write!(f, "Attempted to reuse sequence point {p}"),
            Self::Broken => f.write_str("sequence broken!"),
            Self::Cancelled(_) => f.write_str("Sequencer wait cancelled -- sequence broken"),
        }
    }
}

impl std::error::Error for SequencerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl AsCancelled for SequencerError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            Self::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl From<SequencerError> for AnyError {
    fn from(e: SequencerError) -> Self {
        match e {
            SequencerError::Cancelled(c) => AnyError::from(c),
            other => AnyError::other(other),
        }
    }
}
