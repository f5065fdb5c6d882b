//! The provisioning service: the runtime around the sans-IO [`Manager`](wifiprov_manager::Manager).
//!
//! One task owns the manager (the "actors with tokio" pattern, like mini-redis's single owner of its database):
//! front-ends and the daemon send it commands through a [`Provisioner`] and await the replies; waiting for a
//! scan, a join or a durable write is awaiting a reply, never a blocked thread. The manager's radio actions
//! leave the task in order through one queue to the worker that drives the [`WifiBackend`]
//! (`wifiprov_backend::WifiBackend`), so a disconnect never overtakes the connect that follows it; changes to
//! the saved networks go to the store's only writer. Nothing else touches the manager, the radio or the store.
//!
//! The [`Provisioner`] API is protocol-neutral (credentials per client, status, scans, the saved-network
//! operations, events): ESP's protocomm endpoints are one front-end's mapping onto it, and any other front-end
//! (a browser page, Improv, another GATT protocol) uses the same calls. When provisioning ends or the connection
//! policy reopens it, the task asks whoever runs the front-ends through [`ServiceRequest`]s.
#![forbid(unsafe_code)]

mod actor;
mod provisioner;
mod radio;
mod writer;

// Public interface.
pub use provisioner::{
    Added, Done, Listing, NetworksFailure, Provisioner, ScanView, ServiceError, ServiceRequest, WeakProvisioner,
};
