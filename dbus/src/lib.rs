//! zerocast's D-Bus service `org.zerocast.Recorder1` (see `data/README.md`) and `zerocast ctl`,
//! its command-line client.
//!
//! - [`options`]: the `Start` options parser, the one place options are validated.
//! - [`service`]: the manager and per-recording objects, their lifecycle and signals.
//! - [`backend`]: the portal + recorder composition the service drives ([`start_recording`]).
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
pub mod logging;
pub mod notify;
pub mod options;
pub mod service;

pub use backend::{start_recording, StartError};
pub use ctl::{run_ctl, CtlCommand};
pub use daemon::{run_daemon, run_daemon_with, DaemonError};
pub use error::Error;
pub use options::{parse_options, OptionError, StartRequest};
pub use service::{RecorderService, RecordingObject, ServiceConfig, BUS_NAME, MANAGER_PATH};
