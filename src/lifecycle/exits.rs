//! Container exits: the monitors write `<runroot>/exits/<id>` (temp + rename) when a
//! container's init exits; one inotify watch on that directory tells the daemon at once,
//! for every container, with one file descriptor (CRI-O watches conmon's exit dir the
//! same way). [`Manager::check_exit`] reads a container's exit file directly, for
//! start-up recovery and for races around create/start.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crust_proto::cri::ContainerEventType;
use rustix::fs::inotify;
use tokio::io::unix::AsyncFd;

use super::Manager;
use crate::state::{Container, ContainerState};

/// CRI reason for an exit.
pub fn exit_reason(code: i32, oom: bool) -> &'static str {
    if oom {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

impl Manager {
    /// Apply the container's exit file, if it exists and the record does not yet say
    /// exited. Persists and emits the stopped event.
    pub async fn check_exit(self: &Arc<Self>, c: &Arc<Container>) {
        if c.record().state == ContainerState::Exited {
            return;
        }
        let path = self.exit_file(&c.id);
        let read = crate::blocking::run("read exit file", move || {
            crate::monitor::read_exit_file(&path)
        })
        .await;
        let exit = match read {
            Ok(Ok(Some(e))) => e,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!(container = %c.id, error = %e, "unreadable exit file");
                return;
            }
            Err(e) => {
                tracing::warn!(container = %c.id, error = %e, "reading exit file failed");
                return;
            }
        };
        let finished = exit
            .finished_at
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        let mut changed = false;
        let rec = c.update(|r| {
            if r.state != ContainerState::Exited {
                changed = true;
                r.state = ContainerState::Exited;
                r.exit_code = exit.exit_code;
                r.finished_at = finished;
                r.reason = exit_reason(exit.exit_code, exit.oom_killed).to_string();
                r.message = if exit.oom_killed {
                    "the container's memory cgroup ran out of memory".to_string()
                } else {
                    String::new()
                };
            }
        });
        if !changed {
            return;
        }
        tracing::info!(container = %c.id, exit_code = exit.exit_code, oom = exit.oom_killed, "container exited");
        if exit.oom_killed {
            crate::metrics::record_oom();
        }
        if let Err(e) = self.save_container(rec).await {
            tracing::error!(container = %c.id, error = %e.full_message(), "cannot persist exit");
        }
        self.emit_container_event(c, ContainerEventType::ContainerStoppedEvent);
    }

    /// Watch the exits directory until the daemon stops. Falls back to polling every
    /// second when inotify cannot be set up (it never silently stops tracking exits).
    pub async fn watch_exits(self: Arc<Self>) {
        let dir = self.exits_dir();
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .and_then(|fd| {
                inotify::add_watch(
                    &fd,
                    &dir,
                    inotify::WatchFlags::MOVED_TO | inotify::WatchFlags::CLOSE_WRITE,
                )
                .map(|_| fd)
            });
        let registered = fd.map_err(std::io::Error::from).and_then(|fd| {
            // SAFETY: `fd` is an `OwnedFd` moved into the `AsyncFd`: it stays open and is
            // the same descriptor until the `AsyncFd` is dropped, as `register` requires.
            unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from)
        });
        let afd = match registered {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "inotify unavailable; polling exit files");
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.check_all_exits().await;
                }
            }
        };
        // Exits that happened before the watch existed.
        self.check_all_exits().await;
        let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 8192];
        loop {
            let mut guard = match afd.readable().await {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(error = %e, "exit watch failed; polling instead");
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        self.check_all_exits().await;
                    }
                }
            };
            let mut names = Vec::new();
            {
                let mut reader = inotify::Reader::new(afd.get_ref(), &mut buf);
                loop {
                    match reader.next() {
                        Ok(ev) => {
                            if let Some(name) = ev.file_name() {
                                names.push(name.to_string_lossy().into_owned());
                            }
                        }
                        Err(rustix::io::Errno::AGAIN) => break,
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "reading inotify events");
                            break;
                        }
                    }
                }
            }
            guard.clear_ready();
            for name in names {
                if name.ends_with(".tmp") {
                    continue;
                }
                if let crate::state::Lookup::Found(c) = self.state.container(&name)
                    && c.id == name
                {
                    self.check_exit(&c).await;
                }
            }
        }
    }

    /// Check every container that is not yet known to have exited.
    pub async fn check_all_exits(self: &Arc<Self>) {
        for c in self.state.containers() {
            if c.record().state != ContainerState::Exited {
                self.check_exit(&c).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(1, false), "Error");
        assert_eq!(exit_reason(137, true), "OOMKilled");
    }
}
