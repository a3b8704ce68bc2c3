//! What the dashboard's server functions see of the server: the [`app::api::ssr::Hub`]
//! implementation over the registry and the store.

use crate::application::AppState;
use app::api::ssr::Hub;
use app::error::AppError;
use app::model::{DashboardSnapshot, LiveEvent, Reading};
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

#[async_trait::async_trait]
impl Hub for AppState {
    fn snapshot(&self) -> DashboardSnapshot {
        self.registry.snapshot()
    }

    fn subscribe(&self) -> (DashboardSnapshot, Receiver<LiveEvent>) {
        self.registry.subscribe()
    }

    async fn history(
        &self,
        device_id: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reading>, AppError> {
        self.store
            .history(device_id, since_ms, limit)
            .await
            .map_err(|err| {
                tracing::error!(%err, device_id, "history query failed");
                AppError::Unavailable
            })
    }

    fn stopping(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}
