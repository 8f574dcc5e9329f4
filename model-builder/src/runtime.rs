//! The process's async runtime: DataFusion and Ballista are async, the
//! builder is not, so every call into them goes through [`block_on`].

use std::future::Future;
use std::sync::OnceLock;

/// The runtime, started on first use.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("engine")
            .build()
            .expect("the async runtime starts")
    })
}

/// Runs `future` to completion on [`runtime`].
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}
