//! Running futures inside a fuzz target.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future that needs no runtime to completion on this thread. Everything the harness awaits this way is
/// ready at once or after a few self-woken polls (the fake readers); a future still pending after `max_polls`
/// polls would hang the real program, so it fails the run.
pub fn block_on<F: Future>(future: F) -> F::Output {
    const MAX_POLLS: usize = 1 << 20;
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("a future that needs no runtime did not complete");
}

/// A current-thread tokio runtime with paused time (sleeps complete at once, in order), one per thread, for
/// code that sleeps or reads tokio's clock.
pub fn with_paused_runtime<R>(f: impl FnOnce(&tokio::runtime::Runtime) -> R) -> R {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime can be built");
    }
    RUNTIME.with(f)
}
