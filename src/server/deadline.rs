//! A bound on how long a connection's step may take: a handshake, a first byte.

use std::future::Future;
use std::time::Duration;

/// `future`'s output, or None once `timeout_ms` has passed.
pub async fn within<T>(timeout_ms: u64, future: impl Future<Output = T>) -> Option<T> {
    let expired = async {
        glommio::timer::sleep(Duration::from_millis(timeout_ms)).await;
        None
    };
    futures_lite::future::or(async { Some(future.await) }, expired).await
}
