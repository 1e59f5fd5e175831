//! A producer/consumer pipeline on memory object streams: one producer, a pool of workers
//! sharing one work queue (each item goes to exactly one worker), and a collector. Closing
//! ends each stage: when the producer's handle drops, the workers drain the queue and stop;
//! when the last worker's results handle drops, the collector stops. A deadline on the whole
//! pipeline shows that cancellation stops every stage without losing a result already sent.
//! It runs unchanged on every backend:
//!
//! ```text
//! cargo run --all-features --example pipeline
//! ANYIO_BACKEND=smol cargo run --all-features --example pipeline
//! ANYIO_BACKEND=async-std cargo run --all-features --example pipeline
//! ```

use std::time::Duration;

use anyio::{
    current_backend, move_on_after, sleep,
    streams::memory::{create_memory_object_stream, BufferSize, ReceiveError},
    sync::Lock,
    task::current_task_id,
    task_group, AnyError, TaskGroup,
};

const WORKERS: usize = 4;

#[anyio::main]
async fn main() -> Result<(), AnyError> {
    println!("pipeline on the {} backend", current_backend().unwrap_or("?"));

    // 1. Producer -> 4 workers -> collector, to completion.
    let (jobs_tx, jobs_rx) = create_memory_object_stream::<u64>(16);
    let (results_tx, results_rx) = create_memory_object_stream::<(usize, u64, u64)>(BufferSize::Unbounded);
    let stdout = std::sync::Arc::new(Lock::new());
    let total = task_group(|tg| async move {
        tg.spawn(async move {
            for n in 1..=20u64 {
                jobs_tx.send(n).await?; // waits while the queue is full: back-pressure
            }
            Ok::<_, AnyError>(()) // dropping `jobs_tx` closes the queue
        });
        for worker in 0..WORKERS {
            let (jobs, results, stdout) = (jobs_rx.clone(), results_tx.clone(), stdout.clone());
            tg.spawn(async move {
                loop {
                    let n = match jobs.receive().await {
                        Ok(n) => n,
                        Err(ReceiveError::EndOfStream) => break, // queue closed and drained
                        Err(e) => return Err(e.into()),
                    };
                    sleep(Duration::from_millis(n % 5)).await?; // "work"
                    results.send((worker, n, n * n)).await?;
                }
                let _out = stdout.acquire().await?;
                // Every anyio task has an id (AnyIO's `get_current_task().id`).
                let task = current_task_id().map_or_else(|| "no task id".to_string(), |id| id.to_string());
                println!("  worker {worker} ({task}) done");
                Ok(())
            });
        }
        drop((jobs_rx, results_tx)); // only the tasks hold handles now
        let mut total = 0;
        let mut per_worker = [0usize; WORKERS];
        while let Ok((worker, _n, square)) = results_rx.receive().await {
            total += square;
            per_worker[worker] += 1;
        }
        println!("  items per worker: {per_worker:?}");
        Ok::<_, AnyError>(total)
    })
    .await?
    .expect("the group was not cancelled");
    println!("1. sum of squares 1..=20 = {total}");
    assert_eq!(total, (1..=20u64).map(|n| n * n).sum());

    // 2. The same shape under a deadline: an endless producer, cancelled after 50 ms. Every
    //    result the collector received before the deadline is kept.
    let (tx, rx) = create_memory_object_stream::<u64>(0); // rendezvous
    let mut received = Vec::new();
    let got = &mut received;
    let outcome = move_on_after(Duration::from_millis(50), async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                for n in 0.. {
                    tx.send(n).await?;
                    sleep(Duration::from_millis(5)).await?;
                }
                Ok(())
            });
            loop {
                got.push(rx.receive().await?);
            }
            #[allow(unreachable_code)] // the loop only ends by cancellation
            Ok::<(), AnyError>(())
        })
        .await
    })
    .await?;
    assert!(outcome.is_none(), "the deadline cancelled the pipeline");
    println!(
        "2. cancelled by the deadline after receiving {} items in order: {:?}",
        received.len(),
        received
    );
    assert!(received.iter().enumerate().all(|(i, n)| *n == i as u64));
    Ok(())
}
