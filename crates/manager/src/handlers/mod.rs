//! The handlers of the three ordinary endpoints and of `prov-networks`, as methods on [`crate::Manager`].
//!
//! They take decoded requests and return responses; the daemon wraps them as protocomm endpoint handlers
//! (decoding, encoding, and waiting for blocking scans).

mod config;
mod ctrl;
pub(crate) mod networks;
mod scan;

use wifiprov_backend::AuthMode;
use wifiprov_proto::messages;

pub(crate) fn wire_auth(auth: AuthMode) -> messages::AuthMode {
    messages::AuthMode::from(i32::from(auth.esp_code()))
}
