//! `Promise`, AnyIO 4.15's single-assignment `Future`, on every backend (AnyIO's
//! tests/test_futures.py): set once with a value or an error, or cancelled; waiters in any
//! number get it; setting twice, setting after a cancel and reading early are typed errors;
//! cancelling after the end does nothing; a waiter's own cancellation leaves it untouched.

use std::time::Duration;

use anyio::{
    move_on_after, sleep,
    task::{Promise, PromiseError, PromiseStatus},
    task_group, AnyError,
};

mod support;
use support::guarded_ok;

#[anyio::test]
async fn every_waiter_gets_the_value_set_once() {
    guarded_ok(async {
        let p = Promise::<String>::with_name("greeting");
        let got = task_group(|tg| {
            let p = p.clone();
            async move {
                let waiters: Vec<_> = (0..3)
                    .map(|_| {
                        let p = p.clone();
                        tg.spawn(async move { Ok::<_, AnyError>(p.get().await?) })
                    })
                    .collect();
                sleep(Duration::from_millis(1)).await?;
                assert_eq!(p.status(), PromiseStatus::Pending);
                p.set_value("hello".to_owned())?;
                let mut got = Vec::new();
                for w in waiters {
                    got.push(w.await?);
                }
                Ok(got)
            }
        })
        .await?
        .unwrap();
        assert_eq!(got, ["hello"; 3]);
        assert_eq!(p.status(), PromiseStatus::Finished);
        assert!(p.is_done());
        assert_eq!(p.value()?, "hello");
        assert!(p.error()?.is_none());
        assert_eq!(p.name(), Some("greeting"));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn an_error_set_is_what_every_read_reports() {
    guarded_ok(async {
        let p = Promise::<u8>::new();
        p.set_error(std::io::Error::other("disk on fire"))?;
        assert_eq!(p.status(), PromiseStatus::Failed);
        match p.get().await {
            Err(PromiseError::Failed(e)) => assert!(e.to_string().contains("disk on fire"), "{e}"),
            other => panic!("expected the error, got {other:?}"),
        }
        assert!(p.error()?.unwrap().to_string().contains("disk on fire"));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn setting_twice_setting_after_cancel_and_reading_early_are_typed_errors() {
    guarded_ok(async {
        let p = Promise::<u8>::new();
        assert!(matches!(p.value(), Err(PromiseError::NotFinished)));
        assert!(matches!(p.error(), Err(PromiseError::NotFinished)));
        p.set_value(1)?;
        assert!(matches!(p.set_value(2), Err(PromiseError::AlreadyFinished)));
        assert!(matches!(p.set_error(AnyError::msg("late")), Err(PromiseError::AlreadyFinished)));
        p.cancel(None); // after the end: nothing happens
        assert_eq!(p.status(), PromiseStatus::Finished);
        assert_eq!(p.get().await?, 1);

        let c = Promise::<u8>::new();
        c.cancel(Some("not needed".into()));
        assert_eq!(c.status(), PromiseStatus::Cancelled);
        let e = c.set_value(3).unwrap_err();
        assert!(matches!(&e, PromiseError::Cancelled(Some(why)) if why == "not needed"), "{e:?}");
        assert!(e.to_string().contains("not needed"), "{e}");
        assert!(matches!(c.get().await, Err(PromiseError::Cancelled(_))), "waiters see the cancel");
        c.wait().await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_cancelled_waiter_leaves_the_promise_untouched() {
    guarded_ok(async {
        let p = Promise::<u8>::new();
        let r =
            move_on_after(Duration::from_millis(5), async { Ok::<_, PromiseError>(p.get().await) }).await?;
        assert!(r.is_none() || matches!(r, Some(Err(PromiseError::WaitCancelled(_)))), "{r:?}");
        assert_eq!(p.status(), PromiseStatus::Pending);
        p.set_value(9)?;
        assert_eq!(p.get().await?, 9);
        Ok(())
    })
    .await
}
