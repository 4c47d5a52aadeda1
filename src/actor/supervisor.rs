//! Parent of every video actor. A video actor that dies is forgotten, so the next delivery for
//! that video starts a fresh one from the log (a lazy restart: idle videos cost nothing).
//! Overrides the default supervision, which would stop the parent with its first failed child.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::error;

use super::manager::VideoManager;

pub(crate) struct Supervisor;

pub(crate) struct SupervisorArgs {
    pub manager: VideoManager,
}

impl Actor for Supervisor {
    type Msg = ();
    type State = VideoManager;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: SupervisorArgs,
    ) -> Result<VideoManager, ActorProcessingErr> {
        Ok(args.manager)
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<()>,
        event: SupervisionEvent,
        manager: &mut VideoManager,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, reason) => {
                error!(actor = %cell.get_id(), %reason, "video actor failed; it restarts on its next delivery");
                metrics::counter!("video_actor_failures_total").increment(1);
                manager.forget_actor(cell.get_id());
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => manager.forget_actor(cell.get_id()),
            _ => {}
        }
        Ok(())
    }
}
