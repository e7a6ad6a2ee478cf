//! zerocast's D-Bus service `org.zerocast.Recorder1` (see `data/README.md`) and `zerocast ctl`,
//! its command-line client. The interface only: requests are parsed and validated, and
//! recordings composed, by `zerocast-app` (`app/`).
//!
//! - [`service`]: the manager and per-recording objects, their lifecycle and signals.
//! - [`backend`]: what the service drives — `zerocast_app::start_recording` in production,
//!   behind a trait so the surface can be tested without a compositor.
//! - [`error`]: the `org.zerocast.Error.*` names and how request, portal and recorder errors
//!   map onto them.
//! - [`daemon`]: [`run_daemon`], bus name ownership and shutdown.
//! - [`notify`]: desktop notifications when a recording ends.
//! - [`ctl`]: [`run_ctl`], the client; [`feed`]: its `watch --json` / `--format waybar`.

pub mod backend;
pub mod ctl;
pub mod daemon;
pub mod error;
/// Test double for the D-Bus surface tests only; never built into the daemon.
#[cfg(any(test, feature = "fake-backend"))]
pub mod fake;
pub mod feed;
pub mod notify;
pub mod service;

pub use ctl::{run_ctl, CtlCommand};
pub use daemon::{run_daemon, run_daemon_with, DaemonError};
pub use error::Error;
pub use service::{RecorderService, RecordingObject, ServiceConfig, BUS_NAME, MANAGER_PATH};
