//! The `tracing` feature on every backend: each task has a span with its id, parent id and
//! name, entered on every poll (so events inside a task belong to it); cancelling a scope
//! emits an event naming the source; a failing task emits an event inside its span.
#![cfg(feature = "tracing")]

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyio::{task_group, AnyError, Backend, CancelScope};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// What the subscriber saw: spans by id (their fields), enters per span, and events with
/// the span they happened in.
#[derive(Default)]
struct Seen {
    spans: HashMap<u64, HashMap<String, String>>,
    enters: HashMap<u64, usize>,
    events: Vec<(Option<u64>, HashMap<String, String>)>,
}

struct Recorder {
    next: AtomicU64,
    seen: Arc<Mutex<Seen>>,
}

thread_local! {
    static STACK: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.target().starts_with("anyio")
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut f = Fields(HashMap::new());
        span.record(&mut f);
        self.seen.lock().unwrap().spans.insert(id, f.0);
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(HashMap::new());
        event.record(&mut f);
        let current = STACK.with(|s| s.borrow().last().copied());
        self.seen.lock().unwrap().events.push((current, f.0));
    }
    fn enter(&self, span: &Id) {
        STACK.with(|s| s.borrow_mut().push(span.into_u64()));
        *self.seen.lock().unwrap().enters.entry(span.into_u64()).or_default() += 1;
    }
    fn exit(&self, _: &Id) {
        STACK.with(|s| {
            s.borrow_mut().pop();
        });
    }
}

fn seen() -> Arc<Mutex<Seen>> {
    static SEEN: OnceLock<Arc<Mutex<Seen>>> = OnceLock::new();
    SEEN.get_or_init(|| {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let recorder = Recorder { next: AtomicU64::new(0), seen: seen.clone() };
        tracing::subscriber::set_global_default(recorder).expect("the only subscriber of this binary");
        seen
    })
    .clone()
}

#[test]
fn tasks_have_spans_and_cancellations_and_failures_emit_events() {
    let seen = seen();
    for backend in Backend::compiled() {
        *seen.lock().unwrap() = Seen::default();
        let (main_id, child_id) = anyio::run_on(backend, async {
            let main_id = anyio::task::current_task().unwrap().id.as_u64();
            let r = task_group(|tg| async move {
                let child = tg.spawn_named("worker", async {
                    // Two polls at least: the span is entered on each.
                    anyio::sleep(Duration::from_millis(1)).await?;
                    tracing::info!(target: "anyio::test", "inside the worker");
                    Ok::<_, AnyError>(anyio::task::current_task().unwrap().id.as_u64())
                });
                let id = child.await?;
                tg.spawn_named("failing", async { Err::<(), _>(AnyError::msg("boom")) });
                Ok::<_, AnyError>(id)
            })
            .await;
            let child_id: Option<u64> = match r {
                Err(anyio::task::GroupError::Failed(_)) => None,
                other => panic!("expected the group to fail, got {other:?}"),
            };
            let scope = CancelScope::new();
            scope.cancel();
            (main_id, child_id)
        })
        .unwrap();
        assert!(child_id.is_none());
        let s = seen.lock().unwrap();
        let task_span = |name: &str| {
            s.spans
                .iter()
                .find(|(_, f)| f.get("name").map(String::as_str) == Some(name))
                .map(|(id, f)| (*id, f.clone()))
                .unwrap_or_else(|| panic!("{backend}: no span for task {name}"))
        };
        let (worker, fields) = task_span("worker");
        assert_eq!(fields.get("parent"), Some(&main_id.to_string()), "{backend}: {fields:?}");
        assert!(fields.contains_key("id"), "{backend}");
        assert!(s.enters.get(&worker).copied().unwrap_or(0) >= 2, "{backend}: entered on every poll");
        let in_worker = s.events.iter().any(|(span, f)| {
            *span == Some(worker) && f.get("message").is_some_and(|m| m.contains("inside the worker"))
        });
        assert!(in_worker, "{backend}: an event inside the task belongs to its span");
        let (failing, _) = task_span("failing");
        let failed = s.events.iter().any(|(span, f)| {
            *span == Some(failing)
                && f.get("message").is_some_and(|m| m.contains("cancelling its task group"))
        });
        assert!(failed, "{backend}: the failure is reported inside the failing task's span");
        let sources: Vec<&String> = s.events.iter().filter_map(|(_, f)| f.get("source")).collect();
        assert!(sources.iter().any(|x| x.contains("a sibling task failed")), "{backend}: {sources:?}");
        assert!(sources.iter().any(|x| x.contains("cancelled explicitly")), "{backend}: {sources:?}");
    }
}

/// A subscriber that fails whenever a span is entered.
struct PanicsOnEnter;

impl Subscriber for PanicsOnEnter {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.target().starts_with("anyio")
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {
        panic!("the subscriber failed");
    }
    fn exit(&self, _: &Id) {}
}

/// A subscriber that panics as a task's span is entered fails the run, and leaves the thread
/// as it found it: no task current, whose metadata would be gone once the run returns.
#[test]
fn a_subscriber_panicking_as_a_task_is_entered_leaves_no_task_current() {
    for backend in Backend::compiled() {
        let r = std::panic::catch_unwind(|| {
            tracing::subscriber::with_default(PanicsOnEnter, || anyio::run_on(backend, async {}))
        });
        assert!(r.is_err(), "{backend}: the subscriber's panic propagates");
        assert!(anyio::task::current_task().is_none(), "{backend}: a task is still current after the panic");
    }
}

/// A subscriber that fails when it leaves the span of a task named `doomed`.
struct PanicsOnExitOfDoomed;

impl Subscriber for PanicsOnExitOfDoomed {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.target().starts_with("anyio")
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut f = Fields(HashMap::new());
        span.record(&mut f);
        Id::from_u64(if f.0.get("name").map(String::as_str) == Some("doomed") { 2 } else { 1 })
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, span: &Id) {
        if span.into_u64() == 2 {
            panic!("the subscriber failed");
        }
    }
}

/// A subscriber that panics as a finished task leaves its span cannot make the task's group
/// wait for it for ever: the task is reported before its span is left. (Current-thread
/// backends only: the subscriber is this thread's, and the task must run here.)
#[test]
fn a_subscriber_panicking_as_a_finished_task_leaves_its_span_does_not_hang_its_group() {
    let backends =
        Backend::compiled().into_iter().filter(|b| matches!(b, Backend::TokioCurrentThread | Backend::Smol));
    for backend in backends {
        let (tx, rx) = std::sync::mpsc::channel();
        // A thread of its own, so that a hang fails the test instead of stalling it.
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| {
                tracing::subscriber::with_default(PanicsOnExitOfDoomed, || {
                    anyio::run_on(backend, async {
                        task_group(|tg| async move {
                            tg.spawn_named("doomed", async { Ok::<_, AnyError>(()) });
                            Ok::<_, AnyError>(())
                        })
                        .await
                    })
                })
            });
            let _ = tx.send(r.is_ok());
        });
        // Whether the run returned or re-raised the subscriber's panic is the runtime's
        // business (tokio keeps a task's panic, smol's executor re-raises it); it must end.
        assert!(rx.recv_timeout(Duration::from_secs(60)).is_ok(), "{backend}: the run never ended");
    }
}
