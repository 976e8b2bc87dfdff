//! Container writable layers: `containers/<id>/{upper,work,merged,container.json}` and their
//! overlay mounts over the image's layers (top layer first in `lowerdir`, as overlayfs and
//! containers/storage order them).
//!
//! A container record keeps its image and layers referenced (derived refcounts), so
//! `remove_image` fails with `ImageInUse` and gc keeps the layers while the container exists.
//! Mount state is read from /proc/self/mountinfo, never stored, so it cannot go stale.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use crate::atomic::fsync_dir;
use crate::digest::Digest;
use crate::error::StoreError;
use crate::mount;
use crate::store::{ContainerLayer, ContainerRecord, Store, Usage, lock, now_nanos, read, write};

/// Container ids become directory names and overlay options: no '/', ',', ':' or spaces.
fn validate_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument {
            field: "container id",
            value: id.to_string(),
            reason: "must be 1-128 characters [A-Za-z0-9_.-] starting with a letter or digit"
                .into(),
        })
    }
}

impl Store {
    fn container_layer(&self, r: &ContainerRecord, mounts: &[PathBuf]) -> ContainerLayer {
        let dir = self.container_dir(&r.id);
        let mounted = mounts.iter().any(|m| *m == dir.join("merged"));
        ContainerLayer {
            id: r.id.clone(),
            image: r.image.clone(),
            dir,
            mounted,
        }
    }

    /// Create a container's writable layer over image `image`.
    pub fn create_container(&self, id: &str, image: &Digest) -> Result<ContainerLayer, StoreError> {
        validate_id(id)?;
        let mut meta = write(&self.meta);
        let dir = self.container_dir(id);
        if meta.containers.contains_key(id) || fs::symlink_metadata(&dir).is_ok() {
            return Err(StoreError::AlreadyExists {
                kind: "container",
                id: id.to_string(),
            });
        }
        let Some(img) = meta.images.get(image) else {
            return Err(StoreError::NotFound {
                kind: "image",
                id: image.to_string(),
            });
        };
        let rec = ContainerRecord {
            id: id.to_string(),
            image: image.clone(),
            layers: img.layers.clone(),
            created_unix_nanos: now_nanos(),
        };
        let tmp = self.new_tmp_dir()?;
        let build = (|| {
            for (d, mode) in [("upper", 0o755), ("work", 0o700), ("merged", 0o755)] {
                let p = tmp.join(d);
                DirBuilder::new()
                    .mode(mode)
                    .create(&p)
                    .map_err(StoreError::io("create directory", &p))?;
            }
            let path = tmp.join("container.json");
            let data = serde_json::to_vec_pretty(&rec).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            // No fsync: a writable layer only matters while the runtime's container
            // exists, and that does not survive a power loss either. A daemon crash keeps
            // the page cache; after a power loss, open() discards a container directory
            // whose record is missing or torn (recovery.rs), and the daemon's own record
            // tells the kubelet the container exited.
            fs::write(&path, &data).map_err(StoreError::io("write", &path))?;
            fs::rename(&tmp, &dir).map_err(StoreError::io("publish container", &dir))
        })();
        if let Err(e) = build {
            let _ = crate::atomic::remove_all(&tmp);
            return Err(e);
        }
        tracing::info!(container = id, image = %image, "container layer created");
        meta.containers.insert(id.to_string(), rec.clone());
        Ok(self.container_layer(&rec, &[]))
    }

    fn container_record(&self, id: &str) -> Result<ContainerRecord, StoreError> {
        read(&self.meta)
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                kind: "container",
                id: id.to_string(),
            })
    }

    /// Mount the container's overlay (idempotent); returns `<dir>/merged`.
    pub fn mount_container(&self, id: &str) -> Result<PathBuf, StoreError> {
        let _m = lock(&self.mount_lock);
        let rec = self.container_record(id)?;
        let dir = self.container_dir(id);
        let merged = dir.join("merged");
        if mount::is_mounted(&merged) {
            return Ok(merged);
        }
        let mut lowers = Vec::with_capacity(rec.layers.len());
        {
            let layers = read(&self.layers);
            for l in rec.layers.iter().rev() {
                let r = layers.get(l).ok_or_else(|| StoreError::NotFound {
                    kind: "layer",
                    id: l.to_string(),
                })?;
                lowers.push(r.short.clone());
            }
        }
        let data = mount::overlay_data(
            &lowers,
            &format!("../containers/{id}/upper"),
            &format!("../containers/{id}/work"),
        );
        mount::mount_overlay(&self.links_dir(), &data, &merged).map_err(|source| {
            StoreError::Mount {
                target: merged.clone(),
                source,
            }
        })?;
        tracing::info!(
            container = id,
            layers = lowers.len(),
            "container overlay mounted"
        );
        Ok(merged)
    }

    /// Unmount the container's overlay (idempotent).
    pub fn unmount_container(&self, id: &str) -> Result<(), StoreError> {
        let _m = lock(&self.mount_lock);
        self.container_record(id)?;
        self.unmount_locked(id)
    }

    fn unmount_locked(&self, id: &str) -> Result<(), StoreError> {
        let merged = self.container_dir(id).join("merged");
        // Loop: a path may carry stacked mounts.
        for _ in 0..16 {
            if !mount::is_mounted(&merged) {
                return Ok(());
            }
            mount::unmount(&merged).map_err(|source| StoreError::Mount {
                target: merged.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Unmount and remove a container's writable layer and record.
    pub fn delete_container(&self, id: &str) -> Result<(), StoreError> {
        let _m = lock(&self.mount_lock);
        self.container_record(id)?;
        self.unmount_locked(id)?;
        let dir = self.container_dir(id);
        let trash = self.tmp_dir().join(crate::atomic::unique_name());
        {
            // The rename makes the container disappear atomically; the (possibly large)
            // delete happens without the metadata lock, and a crash leaves it in tmp/.
            let mut meta = write(&self.meta);
            match fs::rename(&dir, &trash) {
                Ok(()) => fsync_dir(&self.containers_dir())?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove container", &dir)(e)),
            }
            meta.containers.remove(id);
        }
        if let Err(e) = crate::atomic::remove_all(&trash) {
            // Already gone from the store; tmp/ is emptied at the next open.
            tracing::warn!(container = id, error = %e, "cannot delete removed container's files");
        }
        tracing::info!(container = id, "container layer deleted");
        Ok(())
    }

    /// All container layers.
    pub fn containers(&self) -> Vec<ContainerLayer> {
        let mounts = mount::mountpoints();
        read(&self.meta)
            .containers
            .values()
            .map(|r| self.container_layer(r, &mounts))
            .collect()
    }

    /// Disk usage of the container's writable layer (`upper`).
    pub fn container_usage(&self, id: &str) -> Result<Usage, StoreError> {
        self.container_record(id)?;
        let upper = self.container_dir(id).join("upper");
        let (bytes, inodes) =
            crate::du::disk_usage(&upper).map_err(StoreError::io("measure", &upper))?;
        Ok(Usage {
            bytes,
            inodes,
            mountpoint: self.root.clone(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        validate_id("abc-1_2.3").unwrap();
        for bad in ["", "../x", "a/b", "a,b", "a:b", ".x", &"a".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
