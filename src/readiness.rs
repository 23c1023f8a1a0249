//! Readiness: whether Redis and the database answer, reported through `grpc.health.v1`.
//!
//! The service starts even while Redis or PostgreSQL is down (connections are lazy): health
//! says NOT_SERVING and calls that need the missing piece fail fast with UNAVAILABLE. A
//! background task checks every `server.health_interval_ms`, applies migrations that could not
//! run at start-up as soon as the database answers, logs each change once, and turns health
//! back to SERVING by itself.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::Mutex;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::app::SERVICE_NAME;
use crate::store::redis::RedisConn;

const MIGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// What must answer for the service to be ready.
#[derive(Clone)]
pub struct Readiness {
    redis: Option<RedisConn>,
    db: DatabaseConnection,
    /// Migrations still to apply (they could not run at start-up).
    migrations_pending: Arc<Mutex<bool>>,
    timeout: Duration,
    /// `arogya_auth_ready`, kept equal to the health status.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Readiness {
    pub fn new(
        redis: Option<RedisConn>,
        db: DatabaseConnection,
        migrations_pending: bool,
        timeout: Duration,
    ) -> Self {
        Self {
            redis,
            db,
            migrations_pending: Arc::new(Mutex::new(migrations_pending)),
            timeout,
            metrics: None,
        }
    }

    /// Mirrors every health change in `arogya_auth_ready`.
    pub fn metered(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// `Ok` when everything answers; otherwise what does not, in words for the log.
    pub async fn check(&self) -> Result<(), String> {
        if let Some(redis) = &self.redis {
            match tokio::time::timeout(self.timeout, redis.ping()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("redis: no answer within the timeout".into()),
            }
        }
        match tokio::time::timeout(self.timeout, self.db.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("database: {e}")),
            Err(_) => return Err("database: no answer within the timeout".into()),
        }
        let mut pending = self.migrations_pending.lock().await;
        if *pending {
            // Bounded like every other step, so a half-up database cannot stall the checks.
            match tokio::time::timeout(MIGRATION_TIMEOUT, crate::db::migrate(&self.db)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("migrations: {e}")),
                Err(_) => return Err("migrations: no answer within 30 s".into()),
            }
            tracing::info!("migrations applied");
            *pending = false;
        }
        Ok(())
    }

    /// Sets health from one check; returns whether the service is ready.
    pub async fn report(&self, health: &HealthReporter, was_ready: Option<bool>) -> bool {
        let result = self.check().await;
        let ready = result.is_ok();
        if let Some(m) = &self.metrics {
            m.set_ready(ready);
        }
        if was_ready != Some(ready) {
            match &result {
                Ok(()) => tracing::info!("dependencies answer: serving"),
                Err(why) => {
                    tracing::warn!(problem = %why, "dependency down: health NOT_SERVING, calls that need it fail UNAVAILABLE; retrying")
                }
            }
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status("", status).await;
            health.set_service_status(SERVICE_NAME, status).await;
        }
        ready
    }

    /// Checks until `stop` fires (then the caller sets NOT_SERVING for shutdown).
    pub async fn watch(
        self,
        health: HealthReporter,
        interval: Duration,
        mut ready: bool,
        stop: Arc<tokio::sync::Notify>,
    ) {
        loop {
            tokio::select! {
                () = stop.notified() => return,
                () = tokio::time::sleep(interval) => {}
            }
            // A check still running when shutdown begins must not set SERVING (or the ready
            // gauge) after shutdown set NOT_SERVING: it is abandoned.
            tokio::select! {
                () = stop.notified() => return,
                now_ready = self.report(&health, Some(ready)) => ready = now_ready,
            }
        }
    }
}
