//! A tour of anyio's structured concurrency: task groups, timeouts, shields, `start()` and
//! failure handling. It runs unchanged on every backend:
//!
//! ```text
//! cargo run --all-features --example tour
//! ANYIO_BACKEND=tokio-current-thread cargo run --all-features --example tour
//! ANYIO_BACKEND=smol cargo run --all-features --example tour
//! ANYIO_BACKEND=async-std cargo run --all-features --example tour
//! ```

use std::time::{Duration, Instant};

use anyio::{
    current_backend, fail_after,
    lowlevel::checkpoint,
    move_on_after, sleep,
    task::{GroupError, TaskStatus},
    task_group,
    time::sleep_forever,
    AnyError, CancelScope,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[anyio::main]
async fn main() -> Result<(), AnyError> {
    let t0 = Instant::now();
    let stamp = move || format!("[{:>4} ms]", t0.elapsed().as_millis());
    println!("{} running on the {} backend", stamp(), current_backend().unwrap_or("?"));

    // 1. A task group runs tasks concurrently and waits for all of them.
    println!("\n1. three tasks in a task group, sleeping 30, 10 and 20 ms");
    task_group(|tg| async move {
        for (name, delay) in [("a", 30), ("b", 10), ("c", 20)] {
            tg.spawn(async move {
                sleep(ms(delay)).await?;
                println!("{} task {name} woke after {delay} ms", stamp());
                Ok::<_, AnyError>(())
            });
        }
        Ok::<_, AnyError>(())
    })
    .await?;
    println!("{} the group returned once all three finished", stamp());

    // 2. Task handles yield each task's value.
    println!("\n2. task handles return values");
    let sum = task_group(|tg| async move {
        let handles: Vec<_> = (1..=4u64)
            .map(|i| {
                tg.spawn(async move {
                    sleep(ms(5 * i)).await?;
                    Ok::<_, AnyError>(i * i)
                })
            })
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.map_err(AnyError::other)?;
        }
        Ok::<_, AnyError>(sum)
    })
    .await?;
    println!("{} 1² + 2² + 3² + 4² = {}", stamp(), sum.unwrap_or_default());

    // 3. move_on_after gives up silently; the body's checkpoints fail once the deadline passes.
    println!("\n3. move_on_after(20 ms) around a one-hour sleep");
    let r = move_on_after(ms(20), async {
        sleep(Duration::from_secs(3600)).await?;
        Ok::<_, AnyError>("slept an hour")
    })
    .await?;
    println!("{} move_on_after returned {r:?}: the deadline cancelled the sleep", stamp());

    // 4. fail_after turns the deadline into a TimeoutError.
    println!("\n4. fail_after(20 ms)");
    let r: Result<(), AnyError> = fail_after(ms(20), async {
        sleep_forever().await?;
        Ok(())
    })
    .await;
    println!("{} fail_after returned: {}", stamp(), r.unwrap_err());

    // 5. Level-triggered cancellation, and async cleanup in a shielded scope.
    println!("\n5. cleanup after cancellation runs in a shielded scope");
    let scope = CancelScope::new();
    let handle = scope.clone();
    let outcome = scope
        .run(async move {
            handle.cancel();
            let first = checkpoint().await;
            let second = checkpoint().await;
            println!("{} after cancel(): checkpoint -> {first:?}", stamp());
            println!("{} and again (level-triggered) -> {second:?}", stamp());
            CancelScope::shielded()
                .run(async {
                    sleep(ms(10)).await?;
                    println!("{} shielded cleanup slept 10 ms despite the cancellation", stamp());
                    Ok::<_, AnyError>(())
                })
                .await?;
            first?;
            Ok::<_, AnyError>(())
        })
        .await?;
    println!("{} the scope caught its own cancellation: {outcome:?}", stamp());

    // 6. start() waits until the task says it is ready and returns the value it passes.
    println!("\n6. start() returns the value a task passes to started()");
    task_group(|tg| async move {
        let port = tg
            .start(|status: TaskStatus<u16>| async move {
                sleep(ms(10)).await?; // e.g. bind a listener
                status.started(8080);
                sleep_forever().await?; // keep serving until cancelled
                Ok::<_, AnyError>(())
            })
            .await
            .map_err(AnyError::other)?;
        println!("{} the server task is ready on port {port}", stamp());
        tg.cancel(); // stop the server: the group exits normally
        Ok::<_, AnyError>(())
    })
    .await?;
    println!("{} the group cancelled its server and returned", stamp());

    // 7. The first failure cancels the siblings; every failure is reported together.
    println!("\n7. a failing task cancels its siblings");
    let r = task_group(|tg| async move {
        tg.spawn(async move {
            match sleep_forever().await {
                Err(c) => println!("{} the sleeping sibling saw: {c}", stamp()),
                Ok(never) => match never {},
            }
            Ok::<_, AnyError>(())
        });
        tg.spawn(async {
            sleep(ms(10)).await?;
            Err::<(), _>(AnyError::msg("disk full"))
        });
        Ok::<_, AnyError>(())
    })
    .await;
    match r {
        Err(GroupError::Failed(errors)) => {
            println!("{} the group failed with {} error(s): {}", stamp(), errors.len(), errors[0])
        }
        other => println!("{} unexpected: {other:?}", stamp()),
    }

    println!("\n{} tour complete", stamp());
    Ok(())
}
