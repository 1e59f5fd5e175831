//! Waiting for raw descriptors (`wait_readable`, `wait_writable`) and `notify_closing`, on
//! every backend.

mod support;

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyio::{
    move_on_after,
    net::{notify_closing, wait_readable, wait_writable, SocketError},
    sleep, task_group, AnyError,
};
use support::guarded_ok;

#[anyio::test]
async fn wait_readable_returns_once_data_arrives_and_leaves_the_fd_blocking() {
    guarded_ok(async {
        let (a, mut b) = UnixStream::pair()?;
        wait_writable(a.as_fd()).await?;
        let r = move_on_after(Duration::from_millis(20), async {
            Ok::<_, anyio::AnyError>(wait_readable(&a).await?)
        })
        .await?;
        assert!(r.is_none(), "nothing to read yet: the wait blocks until cancelled");
        b.write_all(b"x")?;
        wait_readable(&a).await?;
        // The caller's descriptor is still in blocking mode: a plain read works.
        let mut buf = [0u8; 1];
        std::io::Read::read_exact(&mut &a, &mut buf)?;
        assert_eq!(&buf, b"x");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn notify_closing_ends_a_blocked_wait_with_closed() {
    guarded_ok(async {
        let (a, mut b) = UnixStream::pair()?;
        let (a, ended) = (Arc::new(a), Arc::new(AtomicBool::new(false)));
        task_group(|tg| {
            let (a, ended) = (a.clone(), ended.clone());
            async move {
                let (waiter, done) = (a.clone(), ended.clone());
                tg.spawn(async move {
                    let r = wait_readable(&*waiter).await;
                    assert!(matches!(r, Err(SocketError::Closed)), "the wait ends with Closed: {r:?}");
                    done.store(true, Ordering::SeqCst);
                    Ok::<_, AnyError>(())
                });
                // Only a wait already in progress hears it: repeat until the waiter has.
                while !ended.load(Ordering::SeqCst) {
                    notify_closing(&*a);
                    sleep(Duration::from_millis(1)).await?;
                }
                Ok::<_, AnyError>(())
            }
        })
        .await?;
        // The notice was for that wait only: a new one on the same descriptor works.
        b.write_all(b"x")?;
        wait_readable(&*a).await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_second_wait_in_the_same_direction_is_busy_and_the_other_direction_is_free() {
    guarded_ok(async {
        let (a, _b) = UnixStream::pair()?;
        let a = Arc::new(a);
        let (busy, closed, ended) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        task_group(|tg| {
            let (a, busy, closed, ended) = (a.clone(), busy.clone(), closed.clone(), ended.clone());
            async move {
                // Two readers of one descriptor: whichever comes second is refused at once.
                for _ in 0..2 {
                    let (a, busy, closed, ended) = (a.clone(), busy.clone(), closed.clone(), ended.clone());
                    tg.spawn(async move {
                        match wait_readable(&*a).await {
                            Err(SocketError::Busy(e)) => {
                                assert!(e.to_string().contains("waiting for readability"), "{e}");
                                busy.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(SocketError::Closed) => {
                                closed.fetch_add(1, Ordering::SeqCst);
                            }
                            other => panic!("unexpected end of a wait: {other:?}"),
                        }
                        ended.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, AnyError>(())
                    });
                }
                // Meanwhile the write direction is not taken.
                wait_writable(&*a).await?;
                while ended.load(Ordering::SeqCst) < 2 {
                    if busy.load(Ordering::SeqCst) == 1 {
                        notify_closing(&*a);
                    }
                    sleep(Duration::from_millis(1)).await?;
                }
                Ok::<_, AnyError>(())
            }
        })
        .await?;
        assert_eq!((busy.load(Ordering::SeqCst), closed.load(Ordering::SeqCst)), (1, 1));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_cancelled_wait_releases_its_direction() {
    guarded_ok(async {
        let (a, mut b) = UnixStream::pair()?;
        for _ in 0..3 {
            let r = move_on_after(Duration::from_millis(5), async {
                Ok::<_, AnyError>(wait_readable(&a).await?)
            })
            .await?;
            assert!(r.is_none(), "cancelled, not refused as busy");
        }
        b.write_all(b"x")?;
        wait_readable(&a).await?;
        wait_readable(&a).await?; // the data is still there: level-triggered, and not busy
        Ok(())
    })
    .await;
}
