//! `ResourceGuard`: a second task using a guarded resource at the same time gets
//! `BusyResourceError`, never interleaved access; the resource is free again afterwards.

use std::sync::Arc;

use anyio::{
    error::BusyResourceError,
    sleep,
    sync::{Event, ResourceGuard},
    task_group, AnyError, TaskGroup,
};

mod support;
use support::guarded_ok;

#[anyio::test]
async fn a_second_concurrent_user_gets_busy_resource_and_a_later_one_succeeds() {
    let guard = Arc::new(ResourceGuard::new("receiving on"));
    let entered = Arc::new(Event::new());
    let release = Arc::new(Event::new());
    let (g, e, r) = (guard.clone(), entered.clone(), release.clone());
    let second: Result<(), BusyResourceError> = guarded_ok(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                let _in_use = g.enter().map_err(AnyError::other)?;
                e.set();
                r.wait().await?; // hold the resource until the other task has tried
                Ok(())
            });
            entered.wait().await?;
            let second = guard.enter().map(drop);
            release.set();
            Ok(second)
        })
        .await?
        .expect("the group body returned"))
    })
    .await;
    let err = second.unwrap_err();
    assert_eq!(err.to_string(), "Another task is already receiving on this resource");
    sleep(std::time::Duration::from_millis(1)).await.unwrap();
}

#[test]
fn the_resource_is_free_again_once_its_user_is_done() {
    let guard = ResourceGuard::new("using");
    drop(guard.enter().unwrap());
    let _again = guard.enter().expect("released on drop");
}
