//! A pipeline of two commands, as a shell's `first | second`, run under a timeout, after
//! AnyIO's "Using subprocesses" tutorial. anyio starts both processes and carries the first's
//! output to the second's input itself, so every byte passes through your program (where you
//! could count, filter or log it).
//!
//! ```text
//! cargo run --all-features --example subprocess
//! cargo run --all-features --example subprocess -- --first "ls -l /" --second "wc -l"
//! cargo run --all-features --example subprocess -- --first "exec sleep 5" --timeout 1
//! ```
//!
//! Exits with 0 when both commands succeed, 1 with a message when one fails or the timeout
//! passes (both children are then killed and reaped). Each command is a shell line, so the
//! child is `/bin/sh`: killing it does not reach the programs the shell started itself, which
//! is why the timeout example says `exec sleep 5` (the shell becomes `sleep`).

mod support;

use std::time::Duration;

use anyio::{
    fail_after,
    process::{open_process, Process, ProcessOptions, Stdio},
    streams::{ByteReceiveStream, ByteSendStream, StreamError},
    task_group, AnyError,
};
use support::{Args, Report};

const USAGE: &str =
    "subprocess [--first SHELL-LINE] [--second SHELL-LINE] [--timeout SECONDS (default 10)] [--backend NAME]";

/// Copies everything from `from` (the first command's stdout) into `to` (the second's stdin),
/// then closes `to` so the second command sees end of file. Returns the bytes carried, and
/// whether the second command stopped reading early.
async fn carry(
    from: &impl ByteReceiveStream,
    to: &anyio::process::PipeSendStream,
) -> Result<(u64, bool), AnyError> {
    let mut carried = 0;
    loop {
        match from.receive(65536).await {
            Ok(chunk) => {
                carried += chunk.len() as u64;
                match to.send(&chunk).await {
                    Ok(()) => {}
                    // The second command exited without reading everything (`head`, say):
                    // not an error of the pipeline's, so stop carrying.
                    Err(StreamError::Broken(_)) => return Ok((carried, true)),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(StreamError::EndOfStream) => break,
            Err(e) => return Err(e.into()),
        }
    }
    to.send_eof().await?;
    Ok((carried, false))
}

/// Reads a stream to its end.
async fn read_all(from: &impl ByteReceiveStream) -> Result<Vec<u8>, AnyError> {
    let mut all = Vec::new();
    loop {
        match from.receive(65536).await {
            Ok(chunk) => all.extend(chunk),
            Err(StreamError::EndOfStream) => return Ok(all),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits for a process and turns a failure into an error naming it. `pipe_closed`: its
/// reader stopped early, so dying by SIGPIPE is how it was meant to end (as in a shell): the
/// process itself (-13), or its shell reporting it (128 + 13).
async fn succeeded(p: &Process, pipe_closed: bool) -> Result<(), AnyError> {
    match p.wait().await? {
        0 => Ok(()),
        code if pipe_closed && (code == -libc::SIGPIPE || code == 128 + libc::SIGPIPE) => Ok(()),
        code => Err(AnyError::msg(format!("'{}' failed with return code {code}", p.args()))),
    }
}

async fn pipeline(first: String, second: String, timeout: Duration) -> Result<(), AnyError> {
    // The first command's stderr goes to ours, so its complaints are seen as they happen.
    let mut a =
        open_process(first.as_str(), ProcessOptions::new().stdin(Stdio::Null).stderr(Stdio::Inherit)).await?;
    let mut b = match open_process(second.as_str(), ProcessOptions::new().stderr(Stdio::Inherit)).await {
        Ok(b) => b,
        Err(e) => {
            // Do not leave the first one running: kill it and reap it before reporting.
            let _ = a.kill();
            a.wait().await?;
            return Err(e.into());
        }
    };
    let (a_out, b_in, b_out) = (a.take_stdout().unwrap(), b.take_stdin().unwrap(), b.take_stdout().unwrap());
    let run = fail_after(timeout, async {
        let closed_early = task_group(|tg| async move {
            let carried = tg.spawn(async move { carry(&a_out, &b_in).await });
            let output = read_all(&b_out).await?;
            let (carried, closed_early) = carried.await?;
            print!("{}", String::from_utf8_lossy(&output));
            eprintln!("({carried} bytes through the pipe)");
            Ok(closed_early)
        })
        .await?
        .unwrap_or(false);
        succeeded(&a, closed_early).await?;
        succeeded(&b, false).await
    })
    .await;
    if run.is_err() {
        // Timed out or failed: whatever still runs is killed and reaped (shielded), so the
        // program never leaves a child behind.
        for p in [&a, &b] {
            let _ = p.kill();
        }
        for p in [&a, &b] {
            let _ = anyio::CancelScope::shielded().run(p.wait()).await;
        }
    }
    run.map_err(|e| {
        if e.is_timeout() {
            AnyError::msg(format!(
                "the pipeline did not finish within {timeout:?}; both commands were killed"
            ))
        } else {
            e
        }
    })
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let first: String = args.value("--first", "printf 'pear\\napple\\nfig\\nbanana\\n'".to_string())?;
    let second: String = args.value("--second", "sort".to_string())?;
    let timeout = Duration::from_secs_f64(args.value("--timeout", 10.0)?);
    args.finish()?;
    Ok(anyio::run(pipeline(first, second, timeout))?)
}
