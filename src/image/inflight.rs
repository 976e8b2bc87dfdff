//! Sharing one piece of work between concurrent callers asking for the same key.
//!
//! kubelet (and users running `crictl pull` in parallel) routinely ask for the same image
//! several times at once; like containerd's and CRI-O's pull de-duplication, the first
//! request does the work and every later request with the same key waits for it and gets a
//! clone of the same answer. The work runs in its own tokio task so that a caller giving up
//! (its gRPC deadline expiring) does not cancel the download for the others: kubelet's retry
//! then simply joins the pull that is still running.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// The shared answer of one piece of work (`None` if its task panicked).
type SharedWork<V> = Shared<BoxFuture<'static, Option<V>>>;

/// A map of in-flight work keyed by `K`, each producing a `V` every waiter receives a clone of.
pub struct InFlight<K, V: Clone> {
    running: Arc<Mutex<HashMap<K, SharedWork<V>>>>,
}

impl<K, V: Clone> Default for InFlight<K, V> {
    fn default() -> Self {
        Self {
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<K, V> InFlight<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Run `work()` for `key` unless work for `key` is already running, in which case wait
    /// for that one. Returns `None` only if the task running the work panicked.
    pub async fn run<F, Fut>(&self, key: K, work: F) -> Option<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let shared = {
            let mut running = match self.running.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(existing) = running.get(&key) {
                tracing::debug!("joining an in-flight operation");
                existing.clone()
            } else {
                let fut = work();
                let map = Arc::clone(&self.running);
                let done_key = key.clone();
                let handle = tokio::spawn(async move {
                    let value = fut.await;
                    // Forget the entry before the waiters see the value, so that a request
                    // arriving afterwards starts afresh instead of getting a stale answer.
                    let mut running = match map.lock() {
                        Ok(g) => g,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    running.remove(&done_key);
                    value
                });
                let map = Arc::clone(&self.running);
                let panic_key = key.clone();
                let shared = async move {
                    match handle.await {
                        Ok(v) => Some(v),
                        Err(_) => {
                            let mut running = match map.lock() {
                                Ok(g) => g,
                                Err(poisoned) => poisoned.into_inner(),
                            };
                            running.remove(&panic_key);
                            None
                        }
                    }
                }
                .boxed()
                .shared();
                running.insert(key, shared.clone());
                shared
            }
        };
        shared.await
    }

    /// Number of keys currently in flight (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        match self.running.lock() {
            Ok(g) => g.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// Whether nothing is in flight.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let inflight: Arc<InFlight<String, Result<String, Arc<String>>>> = Arc::default();
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let inflight = Arc::clone(&inflight);
            let fetches = Arc::clone(&fetches);
            tasks.push(tokio::spawn(async move {
                inflight
                    .run(
                        "docker.io/library/busybox:latest".to_string(),
                        || async move {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            Ok("sha256:abc".to_string())
                        },
                    )
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().unwrap(), "sha256:abc");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(inflight.is_empty());
    }

    #[tokio::test]
    async fn different_keys_run_separately_and_errors_are_shared() {
        let inflight: Arc<InFlight<&'static str, Result<u32, Arc<String>>>> = Arc::default();
        let fetches = Arc::new(AtomicUsize::new(0));
        let f1 = Arc::clone(&fetches);
        let f2 = Arc::clone(&fetches);
        let a = inflight.run("a", || async move {
            f1.fetch_add(1, Ordering::SeqCst);
            Err::<u32, _>(Arc::new("boom".to_string()))
        });
        let b = inflight.run("b", || async move {
            f2.fetch_add(1, Ordering::SeqCst);
            Ok(2)
        });
        let (a, b) = tokio::join!(a, b);
        assert_eq!(a.unwrap().unwrap_err().as_str(), "boom");
        assert_eq!(b.unwrap().unwrap(), 2);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_later_call_starts_afresh() {
        let inflight: InFlight<u8, u32> = InFlight::default();
        assert_eq!(inflight.run(1, || async { 1 }).await, Some(1));
        assert_eq!(inflight.run(1, || async { 2 }).await, Some(2));
    }
}
