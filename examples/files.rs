//! Counts the lines and bytes of every file under a directory, many files at a time, after
//! AnyIO's "Asynchronous file I/O support": the tree is walked with `Path::walk`, each file is
//! read in a task of its own, and a `CapacityLimiter` bounds how many are open at once.
//!
//! ```text
//! cargo run --all-features --example files -- crates
//! ANYIO_BACKEND=smol cargo run --all-features --example files -- /usr/share/doc --max-open 16
//! ```
//!
//! A file that cannot be read (no permission, removed meanwhile, a FIFO) is reported and
//! skipped; the summary counts it. Exits with 1 only if the directory itself cannot be walked.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyio::{
    fs::{open_file, OpenOptions, Path},
    sync::CapacityLimiter,
    task_group, AnyError,
};
use futures::StreamExt;
use support::{Args, Report};

const USAGE: &str = "files [DIR (default .)] [--max-open N (default 8)] [--backend NAME]";

#[derive(Default)]
struct Totals {
    files: AtomicU64,
    lines: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
}

/// Counts one file's lines (newline bytes) and bytes, 64 KiB at a time.
async fn count(path: &Path) -> Result<(u64, u64), AnyError> {
    let file = open_file(path, OpenOptions::from_mode("r")?).await?;
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read_into(&mut buf).await?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    file.close().await?;
    Ok((lines, bytes))
}

async fn run(dir: Path, max_open: usize) -> Result<(), AnyError> {
    if !dir.is_dir().await? {
        return Err(AnyError::msg(format!("{dir} is not a directory")));
    }
    let limiter = Arc::new(CapacityLimiter::new(max_open));
    let totals = Arc::new(Totals::default());
    let walk_errors = task_group(|tg| {
        let totals = totals.clone();
        async move {
            let mut walk_errors = 0u64;
            let mut walk = std::pin::pin!(dir.walk());
            while let Some(entry) = walk.next().await {
                let (at, _dirs, files) = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        // An unreadable subdirectory: say so and walk on.
                        eprintln!("skipped: {e}");
                        walk_errors += 1;
                        continue;
                    }
                };
                for name in files {
                    let path = at.join(name);
                    let (limiter, totals) = (limiter.clone(), totals.clone());
                    tg.start_soon(async move {
                        // At most `max_open` files are open at once.
                        let _slot = limiter.acquire().await?;
                        // Only regular files: not symbolic links, FIFOs (a read would wait for
                        // a writer) or devices.
                        if !path.lstat().await.map(|m| m.is_file()).unwrap_or(false) {
                            return Ok(());
                        }
                        match count(&path).await {
                            Ok((lines, bytes)) => {
                                totals.files.fetch_add(1, Ordering::Relaxed);
                                totals.lines.fetch_add(lines, Ordering::Relaxed);
                                totals.bytes.fetch_add(bytes, Ordering::Relaxed);
                            }
                            // One unreadable file ends only its own task.
                            Err(e) if !e.is_cancelled() => {
                                eprintln!("skipped: {e}");
                                totals.failed.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => return Err(e),
                        }
                        Ok(())
                    });
                }
            }
            Ok(walk_errors)
        }
    })
    .await?
    .unwrap_or(0);
    println!(
        "{} files, {} lines, {} bytes ({} files and {} directories could not be read)",
        totals.files.load(Ordering::Relaxed),
        totals.lines.load(Ordering::Relaxed),
        totals.bytes.load(Ordering::Relaxed),
        totals.failed.load(Ordering::Relaxed),
        walk_errors,
    );
    Ok(())
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let max_open: usize = args.value("--max-open", 8)?;
    let dir = args.positional().unwrap_or_else(|| ".".into());
    args.finish()?;
    if max_open == 0 {
        return Err(AnyError::msg("--max-open must be at least 1").into());
    }
    Ok(anyio::run(run(Path::new(dir), max_open))?)
}
