//! trio's `Sequencer` on every backend (trio's test_testing.py): blocks in different tasks
//! run in position order; a position is used once; a task cancelled while waiting breaks the
//! sequence for everyone, with trio's messages.

use std::sync::{Arc, Mutex};

use anyio::testing::{wait_all_tasks_blocked, Sequencer, SequencerError};
use anyio::{task_group, AnyError, CancelScope};

mod support;
use support::guarded;

type Log = Arc<Mutex<Vec<(&'static str, usize)>>>;

#[anyio::test]
async fn blocks_run_in_position_order_across_tasks() {
    let record: Log = Arc::new(Mutex::new(Vec::new()));
    let seq = Sequencer::new();
    let (r, s) = (record.clone(), seq.clone());
    guarded(task_group(|tg| async move {
        let (r1, s1) = (r.clone(), s.clone());
        tg.spawn(async move {
            for p in [1, 3, 4] {
                let _turn = s1.at(p).await?;
                r1.lock().unwrap().push(("f1", p));
            }
            Ok::<_, AnyError>(())
        });
        let (r2, s2) = (r.clone(), s.clone());
        tg.spawn(async move {
            for p in [0, 2] {
                let _turn = s2.at(p).await?;
                r2.lock().unwrap().push(("f2", p));
            }
            Ok::<_, AnyError>(())
        });
        let turn = s.at(5).await?;
        assert_eq!(turn.position(), 5);
        wait_all_tasks_blocked().await?;
        assert_eq!(*r.lock().unwrap(), [("f2", 0), ("f1", 1), ("f2", 2), ("f1", 3), ("f1", 4)]);
        Ok::<_, AnyError>(())
    }))
    .await
    .unwrap();
    let seq2 = Sequencer::new();
    drop(seq2.at(0).await.unwrap());
    let e = seq2.at(0).await.unwrap_err();
    assert!(matches!(e, SequencerError::Reused(0)));
    assert_eq!(e.to_string(), "Attempted to reuse sequence point 0");
    drop(seq);
}

#[anyio::test]
async fn a_cancelled_wait_breaks_the_sequence_for_everyone() {
    let record = Arc::new(Mutex::new(Vec::new()));
    let seq = Sequencer::new();
    let (r, s) = (record.clone(), seq.clone());
    guarded(task_group(|tg| async move {
        // Position 0 is taken before the children exist, so that on a multi-thread runtime no
        // child can break the sequence before it (trio's single thread gives that order).
        let first = s.at(0).await?;
        for i in [1usize, 2] {
            let (r, s) = (r.clone(), s.clone());
            tg.spawn(async move {
                let scope = CancelScope::new();
                if i == 1 {
                    scope.cancel();
                }
                let got = scope.run(async { Ok::<_, anyio::Cancelled>(s.at(i).await) }).await;
                match got {
                    Ok(Some(Err(e))) => r.lock().unwrap().push((i, e.to_string())),
                    other => panic!("position {i}: expected a sequencer error, got {other:?}"),
                }
                Ok::<_, AnyError>(())
            });
        }
        wait_all_tasks_blocked().await?;
        drop(first);
        Ok::<_, AnyError>(())
    }))
    .await
    .unwrap();
    // The children may finish in either order on a multi-thread runtime.
    record.lock().unwrap().sort();
    assert_eq!(
        *record.lock().unwrap(),
        [(1, "Sequencer wait cancelled -- sequence broken".to_string()), (2, "sequence broken!".to_string())]
    );
    let late = seq.at(3).await.unwrap_err();
    assert!(matches!(late, SequencerError::Broken));
}
