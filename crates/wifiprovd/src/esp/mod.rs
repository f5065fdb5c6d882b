//! ESP's protocomm endpoints over the provisioning API: `prov-config`, `prov-scan`, `prov-ctrl` (ESP-IDF's
//! `wifi_prov_mgr` handlers, fact sheet §8), and wifiprov's `prov-networks`. Each handler decodes ESP's
//! messages, calls the protocol-neutral [`Provisioner`] (awaiting, never blocking a thread), and encodes the
//! answer; nothing here decides anything about provisioning.
//!
//! A protocomm session is one client of the provisioning API ([`ClientId`]), so the credentials a session sets
//! are its own; a request outside any session (security 0 only) is the anonymous client.

mod config;
mod ctrl;
mod networks;
mod scan;

use std::sync::Arc;

use wifiprov_dispatch::Dispatcher;
use wifiprov_manager::ClientId;
use wifiprov_proto::endpoint::{
    EndpointHandler, HandlerError, Protocomm, ProtocommError, SessionId, SessionLimits, names,
};
use wifiprov_proto::rng::OsRandom;
use wifiprov_proto::security::DeviceSecurity;
use wifiprov_proto::version::{AppInfo, ProvInfo, VersionInfo};
use wifiprov_service::{Provisioner, WeakProvisioner};

use crate::guessing::Guessing;

/// A custom endpoint: its name, and its handler once registered (ESP's "create before start, register after").
pub type CustomEndpoint = (String, Option<Arc<dyn EndpointHandler>>);

/// The client of the provisioning API a protocomm session is.
fn client(session: Option<SessionId>) -> ClientId {
    session.map_or(ClientId::ANONYMOUS, |s| ClientId(u64::from(s.0)))
}

fn malformed(error: wifiprov_proto::messages::DecodeError) -> HandlerError {
    HandlerError::Malformed(Box::new(error))
}

/// The service ended while a request was on its way.
#[derive(Debug, thiserror::Error)]
#[error("the provisioning service is shutting down")]
struct ShuttingDown;

fn provisioner(weak: &WeakProvisioner) -> Result<Provisioner, HandlerError> {
    weak.upgrade().ok_or_else(|| HandlerError::Internal(Box::new(ShuttingDown)))
}

/// The device's protocomm service for one opening of provisioning: ESP's endpoints in ESP's order (it decides
/// the BLE characteristic ids), `proto-ver` with `app_info` and wifiprov's `networks` label, then
/// `prov-networks`, then the custom endpoints in creation order. Sessions that close are forgotten by the
/// provisioning API with them.
pub fn dispatcher(
    security: DeviceSecurity,
    limits: SessionLimits,
    provisioner: &Provisioner,
    app_info: &[AppInfo],
    custom: &[CustomEndpoint],
    scan_max_entries: u32,
    guessing: &Guessing,
) -> Result<Arc<Dispatcher>, ProtocommError> {
    let weak = provisioner.downgrade();
    let mut app_info = app_info.to_vec();
    if !app_info.iter().any(|a| a.label == wifiprov_proto::messages::networks::APP_LABEL) {
        app_info.push(AppInfo {
            label: wifiprov_proto::messages::networks::APP_LABEL.to_owned(),
            ver: wifiprov_proto::messages::networks::APP_VERSION.to_owned(),
            cap: Vec::new(),
        });
    }
    let version = VersionInfo { app_info, prov: Some(ProvInfo::for_device(&security)) };
    let mut pc = Protocomm::new(limits);
    let lockout = guessing.arm(&mut pc);
    pc.add_endpoint(names::PROV_CTRL, Arc::new(ctrl::Ctrl(weak.clone())))?;
    pc.add_endpoint(
        names::PROV_SCAN,
        Arc::new(scan::Scan { provisioner: weak.clone(), max_entries: scan_max_entries }),
    )?;
    let _ = pc.set_security(names::PROV_SESSION, security)?;
    pc.add_endpoint(names::PROV_CONFIG, Arc::new(config::Config(weak.clone())))?;
    pc.set_version(names::PROTO_VER, version.to_cjson())?;
    // Ours comes first among the custom endpoints, so its BLE id stays the same whatever the application adds.
    pc.add_endpoint(names::PROV_NETWORKS, Arc::new(networks::Networks(weak.clone())))?;
    for (name, handler) in custom {
        match handler {
            Some(handler) => pc.add_endpoint(name, handler.clone())?,
            None => pc.create_endpoint(name)?,
        }
    }
    let closed = move |session: SessionId| {
        if let Some(provisioner) = weak.upgrade() {
            provisioner.forget_client(client(Some(session)));
        }
    };
    let dispatcher = guessing.attach(Dispatcher::new(pc, Box::new(OsRandom)).on_session_closed(closed));
    if let Some(lockout) = lockout {
        dispatcher.report_lockout(lockout);
    }
    Ok(Arc::new(dispatcher))
}
