//! Task introspection on every backend (AnyIO's tests/test_debugging.py): the current task's
//! id, parent and name; names given with `spawn_named`, or the future's type name; parents
//! are the task that opened the group; a pending cancellation shows; with task tracking on,
//! `running_tasks` lists the run's live tasks and forgets finished ones. Tracking is
//! process-wide, so this binary turns it on in every test (tests/task_group.rs checks the
//! error while it is off).

use std::sync::Arc;

use anyio::{
    sync::Event,
    task::{current_task, current_task_id, running_tasks, track_tasks, TaskInfo},
    task_group, AnyError, CancelScope,
};

mod support;
use support::guarded_ok;

#[test]
fn there_is_no_current_task_outside_anyio_tasks() {
    assert_eq!(current_task(), None);
}

#[anyio::test]
async fn tasks_know_their_id_parent_and_name() {
    track_tasks(true);
    guarded_ok(async {
        let main = current_task().expect("the test body runs in a task");
        assert_eq!(Some(main.id), current_task_id());
        assert!(!main.cancel_pending);
        let main_id = main.id;
        let (plain, named, grandchild) = task_group(|tg| async move {
            let plain = tg.spawn(async { Ok::<_, AnyError>(current_task().unwrap()) });
            let named = tg.spawn_named("named one", async {
                let me = current_task().unwrap();
                // A group opened inside a task makes that task its tasks' parent.
                let grandchild = task_group(|tg| async move {
                    Ok::<_, AnyError>(tg.spawn(async { Ok::<_, AnyError>(current_task().unwrap()) }).await?)
                })
                .await?
                .unwrap();
                Ok::<_, AnyError>((me, grandchild))
            });
            let (named, grandchild) = named.await?;
            Ok::<_, AnyError>((plain.await?, named, grandchild))
        })
        .await?
        .unwrap();
        assert_eq!(plain.parent_id, Some(main_id));
        assert!(plain.name.contains("{{closure}}") || plain.name.contains("async"), "{}", plain.name);
        assert_ne!(plain.id, main_id);
        assert_eq!(named.name, "named one");
        assert_eq!(named.parent_id, Some(main_id));
        assert_eq!(grandchild.parent_id, Some(named.id));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_pending_cancellation_shows_where_the_task_is() {
    track_tasks(true);
    guarded_ok(async {
        let scope = CancelScope::new();
        scope.cancel();
        let inside = scope.run(async { Ok::<_, AnyError>(current_task().unwrap().cancel_pending) }).await?;
        assert_eq!(inside, Some(true));
        assert!(!current_task().unwrap().cancel_pending, "outside the cancelled scope");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn running_tasks_lists_the_live_tasks_of_the_run() {
    track_tasks(true);
    guarded_ok(async {
        let main_id = current_task_id().unwrap();
        let stop = Arc::new(Event::new());
        let s = stop.clone();
        task_group(|tg| async move {
            let mut ids = Vec::new();
            for i in 0..3 {
                let s = s.clone();
                let h = tg.spawn_named(format!("waiter {i}"), async move {
                    s.wait().await?;
                    Ok::<_, AnyError>(())
                });
                ids.push(h);
            }
            // Let them start waiting.
            for _ in 0..3 {
                anyio::lowlevel::checkpoint().await?;
            }
            let tasks: Vec<TaskInfo> = running_tasks()?;
            for i in 0..3 {
                let t = tasks.iter().find(|t| t.name == format!("waiter {i}")).expect("listed");
                assert_eq!(t.parent_id, Some(main_id));
                assert!(!t.cancel_pending);
            }
            assert!(tasks.iter().any(|t| t.id == main_id), "the current task is listed");
            s.set();
            for h in ids {
                h.await?;
            }
            let after = running_tasks()?;
            assert!(
                !after.iter().any(|t| t.name.starts_with("waiter")),
                "finished tasks are gone: {after:?}"
            );
            Ok::<_, AnyError>(())
        })
        .await?;
        drop(stop);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn start_named_names_the_started_task() {
    guarded_ok(async {
        let main_id = current_task().unwrap().id;
        let info = task_group(|tg| async move {
            let info = tg
                .start_named("listener", |status| async move {
                    status.started(current_task().unwrap());
                    Ok::<_, AnyError>(())
                })
                .await?;
            Ok::<_, AnyError>(info)
        })
        .await?
        .unwrap();
        assert_eq!(info.name, "listener");
        assert_eq!(info.parent_id, Some(main_id));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_started_task_is_listed_under_the_group_and_sees_its_cancellation() {
    track_tasks(true);
    guarded_ok(async {
        let main_id = current_task_id().unwrap();
        task_group(|tg| async move {
            // `start` moves the task from the caller's scope into the group once it signals.
            let id = tg
                .start_named("server", |status| async move {
                    status.started(current_task_id().unwrap());
                    anyio::sleep(std::time::Duration::from_secs(3600)).await?;
                    Ok::<_, AnyError>(())
                })
                .await?;
            let listed = running_tasks()?;
            let t = listed.iter().find(|t| t.id == id).expect("the started task is listed");
            assert_eq!((t.name.as_str(), t.parent_id, t.cancel_pending), ("server", Some(main_id), false));
            tg.cancel_scope().cancel();
            let t = running_tasks()?.into_iter().find(|t| t.id == id);
            // Listed until it has finished; while listed, the group's cancellation shows.
            assert!(t.as_ref().is_none_or(|t| t.cancel_pending), "{t:?}");
            Ok::<_, AnyError>(())
        })
        .await?;
        assert!(!running_tasks()?.iter().any(|t| t.name == "server"), "gone once the group is done");
        Ok(())
    })
    .await
}

#[test]
fn each_run_lists_only_its_own_tasks() {
    track_tasks(true);
    for backend in anyio::Backend::compiled() {
        // Two runs of the same backend at once, on two threads, each with a named task.
        let ready = Arc::new(std::sync::Barrier::new(2));
        let run = |name: &'static str, ready: Arc<std::sync::Barrier>| {
            std::thread::spawn(move || {
                anyio::run_on(backend, async move {
                    task_group(|tg| async move {
                        let stop = Arc::new(Event::new());
                        let s = stop.clone();
                        tg.spawn_named(name, async move {
                            s.wait().await?;
                            Ok::<_, AnyError>(())
                        });
                        anyio::lowlevel::checkpoint().await?;
                        // Both runs have their task running before either lists.
                        anyio::to_thread::run_sync(move || ready.wait()).await?;
                        let names: Vec<String> = running_tasks()?.into_iter().map(|t| t.name).collect();
                        stop.set();
                        Ok::<_, AnyError>(names)
                    })
                    .await
                    .expect("the group succeeds")
                    .expect("the body returns")
                })
                .expect("the backend runs")
            })
        };
        let a = run("task of run a", ready.clone());
        let b = run("task of run b", ready);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(
            a.iter().any(|n| n == "task of run a") && !a.iter().any(|n| n == "task of run b"),
            "{backend}: {a:?}"
        );
        assert!(
            b.iter().any(|n| n == "task of run b") && !b.iter().any(|n| n == "task of run a"),
            "{backend}: {b:?}"
        );
    }
}
