//! [`RunVar`]: a variable with one value per run (AnyIO's `lowlevel.RunVar`).
//!
//! Values live in one process-wide map keyed by (run, variable), so that a `RunVar` can be a
//! `static` made by a `const fn`; a run's values are dropped when the run ends.

use std::any::Any;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::rt::run_state::{key_of, RunKey};

/// Values are shared (`Arc`) so that a value is cloned, and dropped, outside the lock: a
/// `Clone` or `Drop` of the user's may use run variables itself.
type Values = HashMap<(RunKey, u64), Arc<dyn Any + Send + Sync>>;

static VALUES: Mutex<Option<Values>> = Mutex::new(None);
static NEXT_VAR: AtomicU64 = AtomicU64::new(1);

fn with_values<R>(f: impl FnOnce(&mut Values) -> R) -> R {
    let mut g = VALUES.lock().unwrap_or_else(PoisonError::into_inner);
    f(g.get_or_insert_with(HashMap::new))
}

/// Drops every value of the run `key` (called when the run ends).
pub(crate) fn forget_run(key: RunKey) {
    let dropped: Vec<_> = with_values(|v| {
        let keys: Vec<_> = v.keys().filter(|(run, _)| *run == key).copied().collect();
        keys.into_iter().filter_map(|k| v.remove(&k)).collect()
    });
    // Dropped outside the lock: a value's destructor may use run variables itself.
    drop(dropped);
}

/// A variable with a separate value in each run (each `anyio::run`, each runtime anyio did
/// not start), AnyIO's `RunVar`: what a library keeps per event loop (a default limiter, a
/// connection pool). Usually a `static`.
///
/// Values must be `Clone` ([`get`](Self::get) returns a copy; share big ones through an
/// `Arc`). A run's values are dropped when the run ends.
///
/// # Examples
///
/// ```
/// use anyio::lowlevel::RunVar;
///
/// static GREETING: RunVar<String> = RunVar::new("greeting");
///
/// anyio::run(async {
///     assert!(GREETING.get().is_err()); // nothing set in this run yet
///     let token = GREETING.set("hello".to_string());
///     assert_eq!(GREETING.get().unwrap(), "hello");
///     GREETING.reset(token).unwrap();
///     assert!(GREETING.get().is_err());
/// });
/// // Another run starts empty.
/// anyio::run(async { assert_eq!(GREETING.get_or("hi".to_string()), "hi") });
/// ```
pub struct RunVar<T> {
    name: &'static str,
    default: Option<fn() -> T>,
    /// Assigned on first use (a `const fn` cannot draw from a counter).
    id: AtomicU64,
    _value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for RunVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunVar").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Why a [`RunVar`] operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunVarError {
    /// [`get`](RunVar::get) found no value and the variable has no default (Python's
    /// `LookupError`).
    NotSet {
        /// The variable's name.
        name: &'static str,
    },
    /// [`reset`](RunVar::reset) was given a token of another variable, or of another run.
    WrongToken {
        /// The variable's name.
        name: &'static str,
    },
}

impl fmt::Display for RunVarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunVarError::NotSet { name } => {
                write!(f, "run variable {name:?} has no value in this run and no default; set it first")
            }
            RunVarError::WrongToken { name } => write!(
                f,
                "this token does not belong to run variable {name:?} in this run: reset with the token its own set returned"
            ),
        }
    }
}

impl StdError for RunVarError {}

/// What [`RunVar::set`] returns: the value it replaced, for [`RunVar::reset`].
#[must_use = "the token is needed to restore the previous value"]
pub struct RunVarToken<T> {
    var: u64,
    run: RunKey,
    previous: Option<T>,
}

impl<T> fmt::Debug for RunVarToken<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunVarToken").field("had_value", &self.previous.is_some()).finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync + 'static> RunVar<T> {
    /// A variable without a default.
    ///
    /// ```
    /// static COUNT: anyio::lowlevel::RunVar<u32> = anyio::lowlevel::RunVar::new("count");
    /// ```
    pub const fn new(name: &'static str) -> Self {
        Self { name, default: None, id: AtomicU64::new(0), _value: PhantomData }
    }

    /// A variable whose [`get`](Self::get) returns `default()` while it has no value in the
    /// run (without storing it).
    ///
    /// ```
    /// static LIMIT: anyio::lowlevel::RunVar<usize> = anyio::lowlevel::RunVar::with_default("limit", || 10);
    /// anyio::run(async { assert_eq!(LIMIT.get().unwrap(), 10) });
    /// ```
    pub const fn with_default(name: &'static str, default: fn() -> T) -> Self {
        Self { name, default: Some(default), id: AtomicU64::new(0), _value: PhantomData }
    }

    /// The variable's name.
    ///
    /// ```
    /// static V: anyio::lowlevel::RunVar<u8> = anyio::lowlevel::RunVar::new("v");
    /// assert_eq!(V.name(), "v");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn var_id(&self) -> u64 {
        let id = self.id.load(Ordering::Acquire);
        if id != 0 {
            return id;
        }
        let fresh = NEXT_VAR.fetch_add(1, Ordering::Relaxed);
        match self.id.compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => fresh,
            Err(won) => won,
        }
    }

    fn run() -> RunKey {
        key_of(&crate::rt::current())
    }

    /// The value in the current run, or the default.
    ///
    /// # Errors
    ///
    /// [`RunVarError::NotSet`] when there is neither.
    ///
    /// # Panics
    ///
    /// Outside any runtime, with the message that names the fix.
    ///
    /// ```
    /// static V: anyio::lowlevel::RunVar<u8> = anyio::lowlevel::RunVar::new("v");
    /// anyio::run(async { assert!(V.get().is_err()) });
    /// ```
    pub fn get(&self) -> Result<T, RunVarError> {
        let key = (Self::run(), self.var_id());
        let found = with_values(|v| v.get(&key).cloned());
        match (found.as_deref().and_then(|a| a.downcast_ref::<T>()), self.default) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(d)) => Ok(d()),
            (None, None) => Err(RunVarError::NotSet { name: self.name }),
        }
    }

    /// The value in the current run, or `default` (AnyIO's `get(default)`).
    ///
    /// # Panics
    ///
    /// Outside any runtime.
    ///
    /// ```
    /// static V: anyio::lowlevel::RunVar<u8> = anyio::lowlevel::RunVar::new("v");
    /// anyio::run(async { assert_eq!(V.get_or(3), 3) });
    /// ```
    pub fn get_or(&self, default: T) -> T {
        self.get().unwrap_or(default)
    }

    /// The value in the current run, first storing `init()` if there is none: every caller in the run then shares one value, even when several race.
    ///
    /// # Panics
    ///
    /// Outside any runtime.
    ///
    /// ```
    /// use std::sync::Arc;
    /// static POOL: anyio::lowlevel::RunVar<Arc<Vec<u8>>> = anyio::lowlevel::RunVar::new("pool");
    /// anyio::run(async {
    ///     let a = POOL.get_or_init(|| Arc::new(vec![1]));
    ///     let b = POOL.get_or_init(|| Arc::new(vec![2]));
    ///     assert!(Arc::ptr_eq(&a, &b));
    /// });
    /// ```
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> T {
        let key = (Self::run(), self.var_id());
        let found = with_values(|v| v.get(&key).cloned());
        let shared = match found {
            Some(a) => a,
            None => {
                // Made outside the lock (it may use run variables itself); the first to store
                // wins, and a losing value is dropped outside the lock too.
                let fresh: Arc<dyn Any + Send + Sync> = Arc::new(init());
                let (kept, lost) = with_values(|v| match v.get(&key) {
                    Some(a) => (a.clone(), Some(fresh)),
                    None => {
                        v.insert(key, fresh.clone());
                        (fresh, None)
                    }
                });
                drop(lost);
                kept
            }
        };
        shared.downcast_ref::<T>().expect("a run variable holds values of its own type").clone()
    }

    /// Sets the value in the current run and returns a token holding the previous one.
    ///
    /// # Panics
    ///
    /// Outside any runtime.
    ///
    /// ```
    /// static V: anyio::lowlevel::RunVar<u8> = anyio::lowlevel::RunVar::new("v");
    /// anyio::run(async {
    ///     let _token = V.set(5);
    ///     assert_eq!(V.get().unwrap(), 5);
    /// });
    /// ```
    pub fn set(&self, value: T) -> RunVarToken<T> {
        let run = Self::run();
        let var = self.var_id();
        let previous = with_values(|v| v.insert((run, var), Arc::new(value)));
        let previous = previous.and_then(|a| a.downcast_ref::<T>().cloned());
        RunVarToken { var, run, previous }
    }

    /// Restores the value `token`'s [`set`](Self::set) replaced (or no value).
    ///
    /// # Errors
    ///
    /// [`RunVarError::WrongToken`] for a token of another variable or another run (the
    /// value is left alone).
    ///
    /// # Panics
    ///
    /// Outside any runtime.
    ///
    /// ```
    /// static V: anyio::lowlevel::RunVar<u8> = anyio::lowlevel::RunVar::new("v");
    /// anyio::run(async {
    ///     let t1 = V.set(1);
    ///     let t2 = V.set(2);
    ///     V.reset(t2).unwrap();
    ///     assert_eq!(V.get().unwrap(), 1);
    ///     V.reset(t1).unwrap();
    ///     assert!(V.get().is_err());
    /// });
    /// ```
    pub fn reset(&self, token: RunVarToken<T>) -> Result<(), RunVarError> {
        let run = Self::run();
        if token.var != self.var_id() || token.run != run {
            return Err(RunVarError::WrongToken { name: self.name });
        }
        let key = (run, token.var);
        let replaced = with_values(|v| match token.previous {
            Some(p) => v.insert(key, Arc::new(p)),
            None => v.remove(&key),
        });
        drop(replaced);
        Ok(())
    }
}
