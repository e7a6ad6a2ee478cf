//! `zerocast daemon`: owns `org.zerocast.Recorder1` on the session bus.

use std::sync::Arc;

use anyhow::Context;
use tracing::info;
use zbus::fdo::RequestNameFlags;

use crate::backend::{Backend, RealBackend};
use crate::service::{RecorderService, ServiceConfig, Shared, BUS_NAME, MANAGER_PATH};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another zerocast daemon already owns {BUS_NAME} on this session bus{pid}; use `zerocast ctl` to talk to it")]
    AlreadyRunning { pid: String },
    #[error("cannot connect to the session bus (is DBUS_SESSION_BUS_ADDRESS set?): {0}")]
    NoBus(#[source] zbus::Error),
    #[error(transparent)]
    ZBus(#[from] zbus::Error),
}

/// Runs the service with the real portal + recorder until SIGINT/SIGTERM, then stops every
/// recording (files are finalized) and exits.
pub async fn run_daemon() -> anyhow::Result<()> {
    let backend: Arc<dyn Backend> = Arc::new(RealBackend);
    run_daemon_with(backend, ServiceConfig::default()).await
}

/// [`run_daemon`] with another backend (tests use [`crate::fake::FakeBackend`]).
pub async fn run_daemon_with(
    backend: Arc<dyn Backend>,
    config: ServiceConfig,
) -> anyhow::Result<()> {
    let (conn, shared) = serve(backend, config).await?;
    info!(name = BUS_NAME, unique = ?conn.unique_name().map(|n| n.to_string()), "serving");
    tokio::select! {
        r = wait_for_termination() => r?,
        _ = bus_closed(&conn) => {
            // The session is over (logout, or a test bus went away): nobody can reach us.
            info!("the session bus closed");
        }
    }
    info!("shutting down: stopping running recordings");
    shared.stop_all().await;
    drop(conn);
    Ok(())
}

/// Connects, serves the objects and only then takes the name, so no call can arrive at a
/// name whose objects are missing (activation queues the first call until the name appears).
pub async fn serve(
    backend: Arc<dyn Backend>,
    config: ServiceConfig,
) -> Result<(zbus::Connection, Arc<Shared>), DaemonError> {
    let shared = Shared::new(backend, config);
    let conn = zbus::connection::Builder::session()
        .map_err(DaemonError::NoBus)?
        .serve_at(MANAGER_PATH, RecorderService::new(shared.clone()))?
        .build()
        .await
        .map_err(DaemonError::NoBus)?;
    match conn
        .request_name_with_flags(BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .await
    {
        Ok(_) => Ok((conn, shared)),
        Err(zbus::Error::NameTaken) => {
            let pid = owner_pid(&conn)
                .await
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default();
            Err(DaemonError::AlreadyRunning { pid })
        }
        Err(e) => Err(e.into()),
    }
}

async fn owner_pid(conn: &zbus::Connection) -> Option<u32> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.ok()?;
    let name = zbus::names::BusName::try_from(BUS_NAME).ok()?;
    dbus.get_connection_unix_process_id(name).await.ok()
}

/// Resolves when the connection to the bus is gone.
async fn bus_closed(conn: &zbus::Connection) {
    use futures_util::StreamExt;
    // A rule nothing matches: the stream then only ends, with the connection.
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.zerocast.Internal.NeverEmitted")
        .expect("valid interface name")
        .build();
    let Ok(mut stream) = zbus::MessageStream::for_match_rule(rule, conn, Some(1)).await else {
        return std::future::pending().await;
    };
    while let Some(msg) = stream.next().await {
        if msg.is_err() {
            return;
        }
    }
}

async fn wait_for_termination() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
