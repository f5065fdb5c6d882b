//! Security 0: one plaintext exchange, no keys. ESP's device checks only `sec_ver`.

use crate::wire::{self, session_data::Proto};

use super::error::SecurityError;

#[derive(Default)]
pub(crate) struct DeviceState {
    handshaken: bool,
}

impl DeviceState {
    pub(crate) fn handle(&mut self, _request: &wire::SessionData) -> Result<Proto, SecurityError> {
        self.handshaken = true;
        Ok(Proto::Sec0(wire::Sec0Payload {
            msg: wire::Sec0MsgType::S0SessionResponse as i32,
            payload: Some(wire::sec0_payload::Payload::Sr(wire::S0SessionResp {
                status: wire::Status::Success as i32,
            })),
        }))
    }

    pub(crate) fn is_established(&self) -> bool {
        self.handshaken
    }
}

#[derive(Default)]
pub(crate) struct ClientState {
    established: bool,
}

impl ClientState {
    pub(crate) fn start(&mut self) -> Proto {
        self.established = false;
        Proto::Sec0(wire::Sec0Payload {
            msg: wire::Sec0MsgType::S0SessionCommand as i32,
            payload: Some(wire::sec0_payload::Payload::Sc(wire::S0SessionCmd {})),
        })
    }

    pub(crate) fn handle(&mut self, response: &wire::SessionData) -> Result<Option<Proto>, SecurityError> {
        if let Some(Proto::Sec0(wire::Sec0Payload { payload: Some(wire::sec0_payload::Payload::Sr(sr)), .. })) =
            &response.proto
            && sr.status != wire::Status::Success as i32
        {
            return Err(SecurityError::PeerStatus(sr.status));
        }
        self.established = true;
        Ok(None)
    }

    pub(crate) fn is_established(&self) -> bool {
        self.established
    }
}
