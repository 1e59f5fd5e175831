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
///
/// Attributes such as `#[should_panic]` or `#[ignore]` written after `#[anyio::test]` apply to
/// every generated test. The test may return `()` or a `Result`.
///
/// ```ignore
/// #[anyio::test]
/// async fn sleeps() {
///     anyio::sleep(std::time::Duration::from_millis(1)).await.unwrap();
/// }
/// ```
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "#[anyio::test] takes no arguments")
            .to_compile_error()
            .into();
    }
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
    let case = |fn_name: &str, backend: proc_macro2::TokenStream| {
        let ident = format_ident!("{}", fn_name);
        quote! {
            #[test]
            #(#attrs)*
            fn #ident() #output {
                ::anyio::__private::run_test(
                    #backend,
                    concat!(module_path!(), "::", #fn_name),
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

            async fn #body_fn() #output #body

            ::anyio::__if_tokio! { #tokio_ct #tokio_mt }
            ::anyio::__if_smol! { #smol }
            ::anyio::__if_async_std! { #async_std }
        }
    }
    .into()
}
