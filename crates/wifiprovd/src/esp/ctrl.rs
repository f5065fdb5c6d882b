//! `prov-ctrl`: reset after a failure, reprovision after success (fact sheet §8.6).

use wifiprov_proto::endpoint::{EndpointHandler, HandlerFuture, Plaintext, SessionId};
use wifiprov_proto::messages::Status;
use wifiprov_proto::messages::ctrl::{Request, Response};
use wifiprov_service::WeakProvisioner;

use super::{malformed, provisioner};

pub(super) struct Ctrl(pub(super) WeakProvisioner);

impl EndpointHandler for Ctrl {
    fn handle(&self, _session: Option<SessionId>, request: Plaintext) -> HandlerFuture {
        let weak = self.0.clone();
        Box::pin(async move {
            let request = Request::decode(&request).map_err(malformed)?;
            let provisioner = provisioner(&weak)?;
            let status = |ok: bool| if ok { Status::Success } else { Status::InternalError };
            let response = match request {
                Request::Reset => Response::Reset { status: status(provisioner.reset().await.is_ok()) },
                Request::Reprov => Response::Reprov { status: status(provisioner.reprovision().await.is_ok()) },
            };
            Ok(response.encode())
        })
    }
}
