//! Protocomm over BLE GATT through BlueZ (ESP's BLE provisioning).

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wifiprov_transport_ble::{BleConfig, Device, bluer};

use super::{BoxFuture, Frontend, FrontendError, Running, Serve};

/// A BlueZ adapter and what to advertise on it. Every start registers the GATT service and the advertisement
/// again, laid out from the endpoints of that start.
#[derive(Debug, Clone)]
pub struct BleFrontend {
    /// The adapter (`hci0`).
    pub adapter: bluer::Adapter,
    /// The advertised name and service UUID.
    pub config: BleConfig,
}

impl Frontend for BleFrontend {
    fn describe(&self) -> String {
        format!("ble {} on {}", self.config.name, self.adapter.name())
    }

    fn start<'a>(&'a self, serve: &'a Serve) -> BoxFuture<'a, Result<Box<dyn Running>, FrontendError>> {
        Box::pin(async move {
            let device = Arc::new(Device::new(serve.dispatcher.clone(), self.config.clone()));
            // From here on BlueZ answers requests; dropping `registered` withdraws the service again.
            let registered = wifiprov_transport_ble::register(&self.adapter, device).await?;
            let (shutdown, stop) = oneshot::channel::<()>();
            let task = tokio::spawn(registered.run(async {
                let _ = stop.await;
            }));
            tracing::info!(name = %self.config.name, adapter = self.adapter.name(), "provisioning transport up (ble)");
            Ok(Box::new(BleRunning { shutdown, task }) as Box<dyn Running>)
        })
    }
}

struct BleRunning {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running for BleRunning {
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.shutdown.send(());
            let _ = self.task.await;
        })
    }
}
