//! A client of zerocast's D-Bus API, `org.zerocast.Recorder1` (see `data/README.md`), for
//! everything that drives or shows the daemon without being it: `zerocast ctl`, its status-bar
//! feed and the tray. zbus only — no recorder, portal or GPU code — so a client that sits in a
//! panel all session stays small.
//!
//! - [`RecorderProxy`] / [`RecordingProxy`]: typed proxies of the two interfaces (the D-Bus
//!   crate's tests check them against the interface the service serves).
//! - [`State`]: a recording's `State` property, parsed once.
//! - [`Follower`]: the daemon's recordings as a snapshot kept current by its signals, read
//!   through the daemon's unique name so following never starts a daemon.
//! - [`shortcuts`]: the names and readings the tray (which binds the global shortcuts) and
//!   `zerocast probe` (which reports them) share.
//! - [`human`]: durations and sizes as the tray and the daemon's notifications show them.

mod follow;
pub mod human;
mod proxy;
pub mod shortcuts;
mod state;

pub use follow::{current, describe, Entry, Error, Follower, Signal, Update};
pub use proxy::{RecorderProxy, RecordingProxy};
pub use state::{State, UnknownState};

/// The daemon's well-known bus name.
pub const BUS_NAME: &str = "org.zerocast.Recorder1";
/// The manager object.
pub const MANAGER_PATH: &str = "/org/zerocast/Recorder1";
pub const MANAGER_IFACE: &str = "org.zerocast.Recorder1";
pub const RECORDING_IFACE: &str = "org.zerocast.Recording1";

/// The object path of recording `id`.
pub fn recording_path(id: u64) -> String {
    format!("{MANAGER_PATH}/recording/{id}")
}

/// The number of a recording object (`…/recording/12` → 12).
pub fn id_of(path: &str) -> Option<u64> {
    path.strip_prefix(MANAGER_PATH)?
        .strip_prefix("/recording/")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(id_of("/org/zerocast/Recorder1/recording/12"), Some(12));
        assert_eq!(id_of("/org/zerocast/Recorder1"), None);
        assert_eq!(id_of(&recording_path(7)), Some(7));
    }
}
