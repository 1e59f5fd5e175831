//! Smoke test: the basic task group and timeout paths run on every compiled backend.
use anyio::{move_on_after, sleep, task_group, AnyError};
use std::time::Duration;

#[anyio::test]
async fn smoke() {
    let r = task_group(|tg| async move {
        let h = tg.spawn(async {
            sleep(Duration::from_millis(5)).await?;
            Ok::<_, AnyError>(3)
        });
        Ok::<_, AnyError>(h.await.unwrap())
    })
    .await
    .unwrap();
    assert_eq!(r, Some(3));
    let r = move_on_after(Duration::from_millis(10), async {
        sleep(Duration::from_secs(10)).await?;
        Ok::<_, AnyError>(1)
    })
    .await
    .unwrap();
    assert_eq!(r, None);
}
