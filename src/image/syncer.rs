//! Background durability for pulled layers: one `syncfs` batch at a time, off the pull path.
//!
//! The storage crate publishes layers with an `unsynced` marker holding the boot id (see
//! `storage/src/layers.rs`). Until the marker is cleared, a *daemon* crash loses nothing
//! (the page cache holds the verified files and recovery keeps such layers on the same
//! boot), while a *kernel* crash or power loss makes recovery drop the layer and every
//! image record using it, so the image is simply pulled again. The store is consistent in
//! both cases, so `PullImage` does not have to wait for the disk: it queues the image's
//! layers here and returns. This is the trade containers/storage (no fsync of unpacked
//! layers) and containerd's overlay snapshotter make too, with the difference that crust
//! *knows* which layers may be torn after a power loss instead of serving them.
//!
//! Syncs are batched: layers queued while a `syncfs` runs are covered by the next one, so a
//! kubelet pulling several images at once costs one or two syncs, not one per image.
//! [`LayerSyncer::flush`] waits until the queue is empty (graceful shutdown, tests).

use std::sync::{Arc, Mutex, MutexGuard};

use crust_storage::{Digest, Store};
use tokio::sync::Notify;

#[derive(Default)]
struct Queue {
    pending: Vec<Digest>,
    running: bool,
}

/// Queue of layers waiting for their `syncfs`; one worker task at a time.
#[derive(Default)]
pub struct LayerSyncer {
    queue: Mutex<Queue>,
    idle: Notify,
}

impl LayerSyncer {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        match self.queue.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queue `layers` of `store` for a background sync; starts the worker if idle. Must be
    /// called from within the tokio runtime.
    pub fn enqueue(self: &Arc<Self>, store: &Arc<Store>, layers: &[Digest]) {
        let mut q = self.lock();
        q.pending.extend_from_slice(layers);
        if q.running || q.pending.is_empty() {
            return;
        }
        q.running = true;
        drop(q);
        let (me, store) = (Arc::clone(self), Arc::clone(store));
        tokio::spawn(async move { me.work(store).await });
    }

    async fn work(self: Arc<Self>, store: Arc<Store>) {
        loop {
            let batch = {
                let mut q = self.lock();
                if q.pending.is_empty() {
                    q.running = false;
                    drop(q);
                    self.idle.notify_waiters();
                    return;
                }
                let mut b = std::mem::take(&mut q.pending);
                b.sort();
                b.dedup();
                b
            };
            let s = Arc::clone(&store);
            let n = batch.len();
            let started = std::time::Instant::now();
            match crate::blocking::run("sync layers", move || s.sync_layers(&batch)).await {
                Ok(Ok(())) => tracing::debug!(
                    layers = n,
                    ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "pulled layers made durable"
                ),
                // Not fatal: the markers stay, recovery syncs them (same boot) or drops the
                // layers and their images (after a power loss).
                Ok(Err(e)) => {
                    tracing::warn!(layers = n, error = %e, "background layer sync failed")
                }
                Err(e) => tracing::warn!(layers = n, error = %e, "background layer sync failed"),
            }
        }
    }

    /// Whether nothing is queued or being synced.
    pub fn is_idle(&self) -> bool {
        let q = self.lock();
        !q.running && q.pending.is_empty()
    }

    /// Wait until every queued layer has been synced (or its sync failed and was logged).
    pub async fn flush(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.is_idle() {
                return;
            }
            idle.await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flush_on_an_idle_syncer_returns_at_once() {
        let s = LayerSyncer::default();
        assert!(s.is_idle());
        s.flush().await;
    }

    #[tokio::test]
    async fn queued_layers_are_synced_and_flush_waits_for_them() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(tmp.path()).unwrap());
        let syncer = Arc::new(LayerSyncer::default());
        // Unknown layers are ignored by the store: the worker must still drain and go idle.
        let d = Digest::sha256_of(b"not stored");
        syncer.enqueue(&store, std::slice::from_ref(&d));
        syncer.enqueue(&store, &[d.clone(), d]);
        syncer.flush().await;
        assert!(syncer.is_idle());
        // Nothing queued: no worker starts.
        syncer.enqueue(&store, &[]);
        assert!(syncer.is_idle());
    }
}
