//! Running and backend detection: anyio works inside runtimes it did not start (a hand-built
//! tokio runtime, `smol::block_on`, `async_std::task::block_on`), `run_on` runs on every
//! compiled backend and reports it, nested runs are refused, and backend names parse (AnyIO's
//! `anyio.run` and its backend lookup errors).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyio::{
    current_backend, move_on_after, run_on, sleep, task_group, time::sleep_forever, AnyError, Backend,
    CancelScope, RunError, TaskGroup,
};

/// The name `current_backend()` reports on `backend`.
fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::TokioCurrentThread | Backend::TokioMultiThread { .. } => "tokio",
        Backend::Smol => "smol",
        Backend::AsyncStd => "async-std",
        other => panic!("a backend this test does not know: {other}"),
    }
}

/// Uses the core of the API — sleep, a task group with a value, a cancelled child and a
/// child that outlives the body, move_on_after — and returns the backend names seen by the caller and by
/// a child task. Runs under a 10 s hang guard.
async fn exercise_api() -> Result<(Option<&'static str>, Option<&'static str>), AnyError> {
    let guard = CancelScope::with_timeout(Duration::from_secs(10));
    let r = guard
        .run(async {
            let outer = current_backend();
            sleep(Duration::from_millis(1)).await?;

            let in_child: Arc<Mutex<Option<&'static str>>> = Arc::default();
            let ic = in_child.clone();
            let r = task_group(|tg: TaskGroup<AnyError>| async move {
                let value = tg.spawn(async move {
                    *ic.lock().unwrap() = current_backend();
                    sleep(Duration::from_millis(1)).await?;
                    Ok(21)
                });
                tg.spawn(async {
                    sleep_forever().await?;
                    Ok(())
                });
                let v = value.await.map_err(AnyError::other)?;
                tg.cancel();
                Ok(v * 2)
            })
            .await?;
            assert_eq!(r, Some(42));

            let r = move_on_after(Duration::from_millis(5), async {
                sleep_forever().await?;
                Ok::<_, AnyError>("unreachable")
            })
            .await?;
            assert_eq!(r, None, "move_on_after must have timed out");

            let child = *in_child.lock().unwrap();
            Ok::<_, AnyError>((outer, child))
        })
        .await;
    assert!(!guard.cancel_called(), "the API hung: the 10 s hang guard fired");
    Ok(r?.expect("only the guard's own deadline could be caught"))
}

#[cfg(feature = "tokio")]
#[test]
fn anyio_works_inside_a_hand_built_tokio_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (outer, child) = rt.block_on(exercise_api()).unwrap();
    assert_eq!(outer, Some("tokio"));
    assert_eq!(child, Some("tokio"));
}

#[cfg(feature = "tokio")]
#[test]
fn anyio_works_inside_a_hand_built_tokio_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (outer, child) = rt.block_on(exercise_api()).unwrap();
    assert_eq!(outer, Some("tokio"));
    assert_eq!(child, Some("tokio"));
    // And from a plain tokio task on a worker thread.
    let (outer, child) = rt.block_on(async { tokio::spawn(exercise_api()).await.unwrap() }).unwrap();
    assert_eq!(outer, Some("tokio"));
    assert_eq!(child, Some("tokio"));
}

#[cfg(feature = "tokio")]
#[test]
fn a_foreign_tokio_runtimes_paused_clock_drives_anyio_time_and_deadlines() {
    // No anyio runtime is entered here: the clock and the deadlines come from the detected
    // tokio runtime (lent for each call since `Detector::lend`; its unit test is in
    // anyio-tokio). The paused clock proves it is tokio's clock that anyio reads.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    // From `block_on`'s future, and from a task (where the runtime is lent without tokio's
    // handle: its clock must still be the paused one).
    rt.block_on(paused_clock_drives_time_and_deadlines());
    rt.block_on(async { tokio::spawn(paused_clock_drives_time_and_deadlines()).await.unwrap() });
}

#[cfg(feature = "tokio")]
async fn paused_clock_drives_time_and_deadlines() {
    {
        let start = anyio::time::current_time();
        assert_eq!(start, tokio::time::Instant::now().into_std());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(anyio::time::current_time(), start + Duration::from_secs(3600));
        let r = move_on_after(Duration::from_secs(60), async {
            Ok::<_, AnyError>(anyio::cancel::current_effective_deadline())
        })
        .await
        .unwrap();
        assert_eq!(r, Some(Some(start + Duration::from_secs(3660))));
        // A deadline on the paused clock fires when tokio's clock reaches it.
        let r = move_on_after(Duration::from_secs(5), sleep_forever()).await.unwrap();
        assert_eq!(r, None);
    }
}

#[cfg(feature = "smol")]
#[test]
fn anyio_works_inside_smol_block_on() {
    let (outer, child) = smol::block_on(exercise_api()).unwrap();
    // smol::block_on cannot be told apart from any other thread: anyio falls back to a global
    // executor, smol's when it is the only one compiled in.
    assert!(outer.is_some() && outer == child, "outer {outer:?}, child {child:?}");
    if !cfg!(feature = "async-std") {
        assert_eq!(outer, Some("smol"));
    }
}

#[cfg(feature = "async-std")]
#[test]
fn anyio_works_inside_async_std_block_on() {
    let (outer, child) = async_std::task::block_on(exercise_api()).unwrap();
    assert_eq!(outer, Some("async-std"));
    assert_eq!(child, Some("async-std"));
    // And from a plain async-std task.
    let (outer, child) = async_std::task::block_on(async_std::task::spawn(exercise_api())).unwrap();
    assert_eq!(outer, Some("async-std"));
    assert_eq!(child, Some("async-std"));
}

#[test]
fn run_on_every_compiled_backend_reports_that_backend() {
    let compiled = Backend::compiled();
    assert!(!compiled.is_empty());
    for backend in compiled {
        let (outer, child) = run_on(backend, exercise_api())
            .unwrap_or_else(|e| panic!("run_on({backend}) failed: {e}"))
            .unwrap_or_else(|e| panic!("the API failed on {backend}: {e}"));
        assert_eq!(outer, Some(backend_name(backend)), "on {backend}");
        assert_eq!(child, Some(backend_name(backend)), "in a child task on {backend}");
    }
}

#[cfg(feature = "tokio")]
#[test]
fn run_on_builds_the_requested_tokio_flavour() {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let flavour = run_on(Backend::TokioCurrentThread, async { Handle::current().runtime_flavor() }).unwrap();
    assert_eq!(flavour, RuntimeFlavor::CurrentThread);
    let two = Backend::TokioMultiThread { workers: std::num::NonZeroUsize::new(2) };
    let (flavour, workers) = run_on(two, async {
        let h = Handle::current();
        (h.runtime_flavor(), h.metrics().num_workers())
    })
    .unwrap();
    assert_eq!(flavour, RuntimeFlavor::MultiThread);
    assert_eq!(workers, 2);
}

#[test]
fn compiled_backends_follow_the_cargo_features() {
    let compiled = Backend::compiled();
    assert_eq!(compiled.contains(&Backend::TokioCurrentThread), cfg!(feature = "tokio"));
    assert_eq!(
        compiled.iter().any(|b| matches!(b, Backend::TokioMultiThread { .. })),
        cfg!(feature = "tokio")
    );
    assert_eq!(compiled.contains(&Backend::Smol), cfg!(feature = "smol"));
    assert_eq!(compiled.contains(&Backend::AsyncStd), cfg!(feature = "async-std"));
    for b in [Backend::TOKIO, Backend::TokioCurrentThread, Backend::Smol, Backend::AsyncStd] {
        assert_eq!(b.is_compiled(), compiled.iter().any(|c| backend_name(*c) == backend_name(b)), "{b}");
    }
    assert!(Backend::default_backend().is_compiled());
}

#[test]
fn current_backend_is_none_outside_any_runtime_without_global_executors() {
    // smol's and async-std's global executors work from any thread, so only a tokio-only build
    // has no runtime here.
    if cfg!(any(feature = "smol", feature = "async-std")) {
        assert!(current_backend().is_some());
    } else {
        assert_eq!(current_backend(), None);
    }
}

#[anyio::test]
async fn nested_run_on_inside_a_run_is_refused() {
    for backend in Backend::compiled() {
        let r = run_on(backend, async { unreachable!("a nested run must not poll its future") });
        assert!(matches!(r, Err(RunError::AlreadyRunning)), "nested run_on({backend}) gave {r:?}");
    }
    // Also from a task of a group, which may run on another thread of the runtime.
    task_group(|tg: TaskGroup<AnyError>| async move {
        tg.spawn(async {
            for backend in Backend::compiled() {
                let r = run_on(backend, async {});
                assert!(
                    matches!(r, Err(RunError::AlreadyRunning)),
                    "nested run_on({backend}) in a task gave {r:?}"
                );
            }
            Ok(())
        });
        Ok(())
    })
    .await
    .unwrap();
    // anyio::run turns the error into a panic that says what to do instead.
    let payload =
        std::panic::catch_unwind(|| anyio::run(async {})).expect_err("a nested anyio::run must panic");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(msg.contains("await"), "the panic should tell the user to await instead: {msg}");
}

#[cfg(feature = "tokio")]
#[test]
fn run_on_inside_a_foreign_tokio_runtime_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for backend in Backend::compiled() {
            let r = run_on(backend, async {});
            assert!(matches!(r, Err(RunError::AlreadyRunning)), "run_on({backend}) inside tokio gave {r:?}");
        }
    });
}

#[test]
fn backend_names_parse() {
    let cases = [
        ("tokio", Backend::TOKIO),
        ("tokio-multi-thread", Backend::TOKIO),
        ("tokio-current-thread", Backend::TokioCurrentThread),
        ("tokio-ct", Backend::TokioCurrentThread),
        ("smol", Backend::Smol),
        ("async-std", Backend::AsyncStd),
        ("async_std", Backend::AsyncStd),
        (" Tokio-CT ", Backend::TokioCurrentThread),
    ];
    for (name, expected) in cases {
        let parsed: Backend = name.parse().unwrap_or_else(|e| panic!("{name:?} did not parse: {e}"));
        assert_eq!(parsed, expected, "{name:?}");
    }
    // Display gives a name that parses back to the same backend.
    for b in [Backend::TOKIO, Backend::TokioCurrentThread, Backend::Smol, Backend::AsyncStd] {
        assert_eq!(b.to_string().parse::<Backend>().unwrap(), b);
    }
}

#[test]
fn unknown_backend_name_is_rejected_with_the_valid_names() {
    for name in ["gevent", "", "trio", "tokio-"] {
        match name.parse::<Backend>() {
            Err(RunError::UnknownBackend(n)) => assert_eq!(n, name),
            other => panic!("{name:?} gave {other:?}"),
        }
    }
    let msg = "gevent".parse::<Backend>().unwrap_err().to_string();
    for valid in ["gevent", "tokio", "tokio-current-thread", "smol", "async-std"] {
        assert!(msg.contains(valid), "the message should mention {valid:?}: {msg}");
    }
}

/// Checks that running on a backend whose feature is off is refused with a message naming the
/// feature to enable.
#[allow(dead_code)]
fn assert_not_compiled(backend: Backend, feature: &str) {
    assert!(!backend.is_compiled());
    let polled = Arc::new(Mutex::new(false));
    let p = polled.clone();
    match run_on(backend, async move { *p.lock().unwrap() = true }) {
        Err(RunError::NotCompiled(b)) => {
            assert_eq!(b, backend);
            let msg = RunError::NotCompiled(b).to_string();
            assert!(msg.contains(&format!("`{feature}`")), "the message should name the feature: {msg}");
        }
        other => panic!("run_on({backend}) without its feature gave {other:?}"),
    }
    assert!(!*polled.lock().unwrap());
}

#[cfg(not(feature = "tokio"))]
#[test]
fn tokio_is_refused_when_its_feature_is_off() {
    assert_not_compiled(Backend::TokioCurrentThread, "tokio");
    assert_not_compiled(Backend::TOKIO, "tokio");
}

#[cfg(not(feature = "smol"))]
#[test]
fn smol_is_refused_when_its_feature_is_off() {
    assert_not_compiled(Backend::Smol, "smol");
}

#[cfg(not(feature = "async-std"))]
#[test]
fn async_std_is_refused_when_its_feature_is_off() {
    assert_not_compiled(Backend::AsyncStd, "async-std");
}

/// `run_on` works from several threads at once (each runs its own runtime).
#[test]
fn run_on_from_several_threads_at_once() {
    let handles: Vec<_> = Backend::compiled()
        .into_iter()
        .map(|b| std::thread::spawn(move || run_on(b, exercise_api()).unwrap().unwrap()))
        .collect();
    for h in handles {
        let (outer, child) = h.join().unwrap();
        assert!(outer.is_some() && outer == child);
    }
}
