//! `ANYIO_BACKEND` selects the backend of `anyio::run` (and `Backend::from_env`), and rejects
//! unknown or not-compiled names. The environment is process-global, so this file holds a
//! single test and runs in its own process.

use std::ffi::OsString;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use anyio::{current_backend, Backend, RunError};

mod support;

const VAR: &str = "ANYIO_BACKEND";

/// Restores the variable's original value even if an assertion fails.
struct RestoreEnv(Option<OsString>);

impl Drop for RestoreEnv {
    fn drop(&mut self) {
        match self.0.take() {
            Some(v) => std::env::set_var(VAR, v),
            None => std::env::remove_var(VAR),
        }
    }
}

/// The tokio flavour `anyio::run` is running on, if it is tokio.
fn tokio_flavour() -> Option<String> {
    #[cfg(feature = "tokio")]
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        return Some(format!("{:?}", h.runtime_flavor()));
    }
    None
}

#[test]
fn anyio_backend_env_var_is_honoured() {
    let _restore = RestoreEnv(std::env::var_os(VAR));
    let outcome = catch_unwind(AssertUnwindSafe(check_everything));
    if let Err(p) = outcome {
        resume_unwind(p);
    }
}

fn check_everything() {
    // On a thread of no known runtime (here: inside smol::block_on), the variable also picks
    // which global executor serves anyio. anyio reads it for this purpose once, at the first
    // such lookup in the process, so this check must come first. "async-std" sorts before
    // "smol", so seeing smol proves the variable was honoured.
    #[cfg(all(feature = "smol", feature = "async-std"))]
    {
        std::env::set_var(VAR, "smol");
        let seen = smol::block_on(async { current_backend() });
        assert_eq!(seen, Some("smol"), "{VAR}=smol inside smol::block_on");
    }

    // Unset or empty: the default backend.
    for unset in [None, Some("")] {
        match unset {
            None => std::env::remove_var(VAR),
            Some(v) => std::env::set_var(VAR, v),
        }
        assert_eq!(Backend::from_env().unwrap(), Backend::default_backend());
        let name = anyio::run(async { current_backend() });
        let expected = if cfg!(feature = "tokio") {
            "tokio"
        } else if cfg!(feature = "smol") {
            "smol"
        } else {
            "async-std"
        };
        assert_eq!(name, Some(expected), "default backend with {VAR}={unset:?}");
    }

    // Every compiled backend, by name.
    let named: [(&str, Backend, &str, Option<&str>); 5] = [
        ("tokio", Backend::TOKIO, "tokio", Some("MultiThread")),
        ("tokio-current-thread", Backend::TokioCurrentThread, "tokio", Some("CurrentThread")),
        ("tokio-ct", Backend::TokioCurrentThread, "tokio", Some("CurrentThread")),
        ("smol", Backend::Smol, "smol", None),
        ("async-std", Backend::AsyncStd, "async-std", None),
    ];
    for (var, backend, name, flavour) in named {
        std::env::set_var(VAR, var);
        if backend.is_compiled() {
            assert_eq!(Backend::from_env().unwrap(), backend, "{VAR}={var}");
            let (seen, seen_flavour) = anyio::run(async { (current_backend(), tokio_flavour()) });
            assert_eq!(seen, Some(name), "{VAR}={var}");
            assert_eq!(seen_flavour.as_deref(), flavour, "{VAR}={var}");
        } else {
            // A backend whose feature is off.
            match Backend::from_env() {
                Err(RunError::NotCompiled(b)) => assert_eq!(b, backend),
                other => panic!("{VAR}={var} without its feature gave {other:?}"),
            }
            let payload = catch_unwind(|| anyio::run(async {})).expect_err("anyio::run must refuse");
            let msg = support::panic_message(&*payload);
            assert!(msg.contains("not compiled"), "{VAR}={var}: {msg}");
        }
    }

    // An unknown name: an error listing the valid ones, and a panic from anyio::run.
    std::env::set_var(VAR, "gevent");
    match Backend::from_env() {
        Err(RunError::UnknownBackend(n)) => assert_eq!(n, "gevent"),
        other => panic!("{VAR}=gevent gave {other:?}"),
    }
    let payload =
        catch_unwind(|| anyio::run(async {})).expect_err("anyio::run must refuse an unknown backend");
    let msg = support::panic_message(&*payload);
    for valid in ["gevent", "tokio", "tokio-current-thread", "smol", "async-std"] {
        assert!(msg.contains(valid), "the panic should mention {valid:?}: {msg}");
    }
}
