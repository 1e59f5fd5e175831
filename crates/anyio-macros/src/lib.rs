//! Procedural macros of anyio: `#[anyio::main]` and `#[anyio::test]`. Use them through the
//! `anyio` crate, which re-exports them.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{parse_macro_input, ItemFn};

/// Marks the async `main` function of a binary: it runs on the default backend (or the one
/// `ANYIO_BACKEND` names) through `anyio::run_interruptible`: on Unix the first Ctrl+C
/// (SIGINT) cancels the main task, cleanup runs, and the process exits with status 130; a
/// second Ctrl+C during that cleanup ends it at once.
///
/// ```ignore
/// #[anyio::main]
/// async fn main() {
///     anyio::sleep(std::time::Duration::from_millis(1)).await.unwrap();
/// }
/// ```
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[anyio::main] takes no arguments; choose the backend with ANYIO_BACKEND or anyio::run_on",
        )
        .to_compile_error()
        .into();
    }
    let f = parse_macro_input!(item as ItemFn);
    if f.sig.asyncness.is_none() {
        return syn::Error::new_spanned(f.sig.fn_token, "#[anyio::main] needs an `async fn`")
            .to_compile_error()
            .into();
    }
    let attrs = &f.attrs;
    let vis = &f.vis;
    let name = &f.sig.ident;
    let output = &f.sig.output;
    let body = &f.block;
    quote! {
        #(#attrs)*
        #vis fn #name() #output {
            ::anyio::__private::run_main(async move #body)
        }
    }
    .into()
}

/// Turns an async test into one `#[test]` per backend and flavour compiled into `anyio`:
/// `<name>::tokio_current_thread`, `<name>::tokio_multi_thread`, `<name>::smol` and
/// `<name>::async_std`, so a failure names its backend (AnyIO's `anyio_backend` fixture).
/// Every test tracks blocked tasks, so `anyio::testing::wait_all_tasks_blocked` works in it.
///
/// Options, comma-separated:
///
/// - `mock_clock`: the test runs on an `anyio::testing::MockClock` that moves only when the
///   test jumps it (trio's `mock_clock` fixture); `MockClock::current()` returns it.
/// - `autojump` or `autojump = <seconds>`: a mock clock that jumps to the next deadline once
///   every task has been blocked that long (0 by default; trio's `autojump_clock`).
/// - `backends(...)`: only these backends: `tokio` (both flavours), `tokio_current_thread`,
///   `tokio_multi_thread`, `smol`, `async_std`.
///
/// Attributes such as `#[should_panic]` or `#[ignore]` written after `#[anyio::test]` apply to
/// every generated test. The test may return `()` or a `Result`.
///
/// ```ignore
/// #[anyio::test]
/// async fn sleeps() {
///     anyio::sleep(std::time::Duration::from_millis(1)).await.unwrap();
/// }
///
/// #[anyio::test(autojump, backends(tokio, smol))]
/// async fn a_day_passes_at_once() {
///     anyio::sleep(std::time::Duration::from_secs(86_400)).await.unwrap();
/// }
/// ```
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = match parse_options(attr) {
        Ok(o) => o,
        Err(e) => return e.to_compile_error().into(),
    };
    let f = parse_macro_input!(item as ItemFn);
    if f.sig.asyncness.is_none() {
        return syn::Error::new_spanned(f.sig.fn_token, "#[anyio::test] needs an `async fn`")
            .to_compile_error()
            .into();
    }
    if !f.sig.inputs.is_empty() {
        return syn::Error::new_spanned(&f.sig.inputs, "#[anyio::test] functions take no arguments")
            .to_compile_error()
            .into();
    }
    let attrs = &f.attrs;
    let vis = &f.vis;
    let name = &f.sig.ident;
    let output = &f.sig.output;
    let body = &f.block;
    let body_fn = format_ident!("__anyio_test_body");
    let clock = match options.clock {
        Clock::Real => quote!(::anyio::__private::TestClock::Real),
        Clock::Mock => quote!(::anyio::__private::TestClock::Mock),
        Clock::Autojump(secs) => quote!(::anyio::__private::TestClock::Autojump(#secs)),
    };
    let case = |fn_name: &str, backend: proc_macro2::TokenStream| {
        if !options.backends.contains(&fn_name) {
            return quote!();
        }
        let ident = format_ident!("{}", fn_name);
        quote! {
            #[test]
            #(#attrs)*
            fn #ident() #output {
                ::anyio::__private::run_test_with(
                    #backend,
                    concat!(module_path!(), "::", #fn_name),
                    #clock,
                    #body_fn(),
                )
            }
        }
    };
    let tokio_ct = case("tokio_current_thread", quote!(::anyio::__private::Backend::TokioCurrentThread));
    let tokio_mt = case(
        "tokio_multi_thread",
        quote!(::anyio::__private::Backend::TokioMultiThread { workers: ::core::num::NonZeroUsize::new(2) }),
    );
    let smol = case("smol", quote!(::anyio::__private::Backend::Smol));
    let async_std = case("async_std", quote!(::anyio::__private::Backend::AsyncStd));
    quote! {
        #[allow(non_snake_case)]
        #vis mod #name {
            #[allow(unused_imports)]
            use super::*;

            // Unused when `backends(...)` names only backends not compiled in.
            #[allow(dead_code)]
            async fn #body_fn() #output #body

            ::anyio::__if_tokio! { #tokio_ct #tokio_mt }
            ::anyio::__if_smol! { #smol }
            ::anyio::__if_async_std! { #async_std }
        }
    }
    .into()
}

enum Clock {
    Real,
    Mock,
    Autojump(f64),
}

struct TestOptions {
    clock: Clock,
    /// The generated tests to keep, by name.
    backends: Vec<&'static str>,
}

const ALL_BACKENDS: [&str; 4] = ["tokio_current_thread", "tokio_multi_thread", "smol", "async_std"];

fn parse_options(attr: TokenStream) -> syn::Result<TestOptions> {
    use syn::parse::Parser;
    let metas = syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated.parse(attr)?;
    let mut options = TestOptions { clock: Clock::Real, backends: ALL_BACKENDS.to_vec() };
    let mut clock_set = false;
    let mut set_clock = |clock: Clock, span: &dyn quote::ToTokens| {
        if clock_set {
            return Err(syn::Error::new_spanned(span, "#[anyio::test]: give one clock option, not two"));
        }
        clock_set = true;
        options.clock = clock;
        Ok(())
    };
    let mut backends = None;
    for meta in &metas {
        match meta {
            syn::Meta::Path(p) if p.is_ident("mock_clock") => set_clock(Clock::Mock, p)?,
            syn::Meta::Path(p) if p.is_ident("autojump") => set_clock(Clock::Autojump(0.0), p)?,
            syn::Meta::NameValue(nv) if nv.path.is_ident("autojump") => {
                let secs = match &nv.value {
                    syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => f.base10_parse::<f64>()?,
                    syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => i.base10_parse::<f64>()?,
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "#[anyio::test(autojump = ...)] takes a number of seconds, such as 0.01",
                        ))
                    }
                };
                if secs.is_nan() || secs < 0.0 {
                    return Err(syn::Error::new_spanned(&nv.value, "the autojump threshold must be >= 0"));
                }
                set_clock(Clock::Autojump(secs), nv)?
            }
            syn::Meta::List(list) if list.path.is_ident("backends") => {
                let names = list.parse_args_with(
                    syn::punctuated::Punctuated::<syn::Ident, syn::Token![,]>::parse_terminated,
                )?;
                let mut keep = Vec::new();
                for n in &names {
                    match n.to_string().as_str() {
                        "tokio" => keep.extend(["tokio_current_thread", "tokio_multi_thread"]),
                        other => match ALL_BACKENDS.iter().find(|b| **b == other) {
                            Some(b) => keep.push(*b),
                            None => {
                                return Err(syn::Error::new_spanned(
                                    n,
                                    "unknown backend: use tokio, tokio_current_thread, tokio_multi_thread, smol or async_std",
                                ))
                            }
                        },
                    }
                }
                if keep.is_empty() {
                    return Err(syn::Error::new_spanned(list, "backends(...) needs at least one backend"));
                }
                backends = Some(keep);
            }
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "unknown #[anyio::test] option: use mock_clock, autojump, autojump = <seconds> or backends(...)",
                ))
            }
        }
    }
    if let Some(b) = backends {
        options.backends = b;
    }
    Ok(options)
}
