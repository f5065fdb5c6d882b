//! `prov-ctrl`: reset after a failure, reprovision after success (fact sheet §8.6).

use std::time::Instant;

use wifiprov_proto::messages::Status;
use wifiprov_proto::messages::ctrl::{Request, Response};

use crate::manager::Manager;

impl Manager {
    /// Handles one `prov-ctrl` request.
    pub fn handle_ctrl(&mut self, now: Instant, request: &Request) -> Response {
        let status = |ok: bool| if ok { Status::Success } else { Status::InternalError };
        match request {
            Request::Reset => Response::Reset { status: status(self.reset_on_failure().is_ok()) },
            Request::Reprov => Response::Reprov { status: status(self.reset_for_reprovision(now).is_ok()) },
        }
    }
}
