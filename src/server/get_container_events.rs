//! `GetContainerEvents`: a server stream of created/started/stopped/deleted events for the
//! kubelet's evented PLEG. A subscriber that falls behind by more than the channel's
//! capacity gets an error and reconnects (the kubelet then relists), never stale silence.

use std::pin::Pin;

use crust_proto::cri;
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;

use super::Context;

/// The stream type of the RPC.
pub type EventStream =
    Pin<Box<dyn Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;

/// Handle `GetContainerEvents`.
pub async fn handle(ctx: &Context, _req: cri::GetEventsRequest) -> Result<EventStream, Status> {
    let mut rx = ctx.lifecycle.subscribe();
    let s = async_stream::stream! {
        loop {
            match rx.recv().await {
                Ok(ev) => yield Ok(ev),
                Err(RecvError::Closed) => break,
                Err(RecvError::Lagged(n)) => {
                    yield Err(Status::data_loss(format!("container event stream lagged: {n} events dropped; relist")));
                    break;
                }
            }
        }
    };
    Ok(Box::pin(s))
}
