//! `StartContainer`.
//!
//! CRI allows starting only a created container. The monitor already holds the
//! container's stdio; `<runtime> start` lets the init process exec. An exit racing with
//! the start is recorded by the exit watcher and never overwritten here.

use std::sync::Arc;

use crust_proto::cri::ContainerEventType;

use crate::lifecycle::{LifecycleError, Manager};
use crate::state::{ContainerState, now_nanos};

impl Manager {
    /// `StartContainer`.
    pub async fn start_container(self: &Arc<Self>, id: &str) -> Result<(), LifecycleError> {
        let c = self.container(id)?;
        tracing::Span::current().record("container", c.id.as_str());
        let _op = c.op.lock().await;
        let rec = c.record();
        if rec.state != ContainerState::Created {
            return Err(LifecycleError::precondition(
                format!("container {}", c.id),
                format!(
                    "is {}, only a created container can be started",
                    state_word(rec.state)
                ),
            ));
        }
        let handler = self.handler(&rec.runtime_handler)?;
        // Taken before `start` so an init that exits at once never finishes before it
        // started (the exit watcher may record the exit while `start` returns).
        let now = now_nanos();
        handler
            .runtime
            .start(&c.id)
            .await
            .map_err(|source| LifecycleError::Runtime {
                op: "start",
                kind: "container",
                id: c.id.clone(),
                source: Box::new(source),
            })?;
        let rec = c.update(|r| {
            r.started_at = now;
            if r.state == ContainerState::Created {
                r.state = ContainerState::Running;
            }
        });
        self.save_container(rec).await?;
        tracing::info!(container = %c.id, "container started");
        self.emit_container_event(&c, ContainerEventType::ContainerStartedEvent);
        // An exit that raced with the update above is picked up here.
        self.check_exit(&c).await;
        Ok(())
    }
}

/// Lower-case state name for messages.
pub fn state_word(s: ContainerState) -> &'static str {
    match s {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Exited => "exited",
        ContainerState::Unknown => "in an unknown state",
    }
}
