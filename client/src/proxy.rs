//! Typed proxies of `org.zerocast.Recorder1` and `org.zerocast.Recording1`, written after
//! `data/org.zerocast.Recorder1.xml` (the golden file the D-Bus crate's `bus` test regenerates
//! from the running service); its `p2p` tests call every member through them against the
//! service, so a drifted signature fails there.

use std::collections::HashMap;

use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

/// The manager. `default_service` is the well-known name: calls through it may activate the
/// daemon (what `ctl start` and the tray's Record want); a [`crate::Follower`] reads through
/// the unique name instead.
#[zbus::proxy(
    interface = "org.zerocast.Recorder1",
    default_service = "org.zerocast.Recorder1",
    default_path = "/org/zerocast/Recorder1"
)]
pub trait Recorder {
    fn start(&self, options: HashMap<&str, Value<'_>>) -> zbus::Result<OwnedObjectPath>;
    fn forget_sources(&self) -> zbus::Result<()>;
    #[zbus(property)]
    fn recordings(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
    #[zbus(property)]
    fn capabilities(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
}

/// One recording object (`/org/zerocast/Recorder1/recording/N`; see [`crate::recording_path`]).
#[zbus::proxy(
    interface = "org.zerocast.Recording1",
    default_service = "org.zerocast.Recorder1"
)]
pub trait Recording {
    fn stop(&self) -> zbus::Result<String>;
    fn pause(&self) -> zbus::Result<()>;
    fn resume(&self) -> zbus::Result<()>;
    fn keep(&self, options: HashMap<&str, Value<'_>>) -> zbus::Result<String>;
    fn save_replay(
        &self,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<(String, HashMap<String, OwnedValue>)>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn path(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn duration(&self) -> zbus::Result<f64>;
    #[zbus(property)]
    fn frames(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn dropped_frames(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn bytes(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn encoder(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn capture_path(&self) -> zbus::Result<String>;
    /// Named warnings about the source (name → message), e.g. `restored-source-differs`.
    #[zbus(property)]
    fn warnings(&self) -> zbus::Result<HashMap<String, String>>;
    #[zbus(property)]
    fn options(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
    #[zbus(signal)]
    fn finished(&self, path: String, stats: HashMap<String, OwnedValue>) -> zbus::Result<()>;
    #[zbus(signal)]
    fn failed(&self, error_name: String, message: String) -> zbus::Result<()>;
}

impl RecordingProxy<'_> {
    /// `State`, parsed.
    pub async fn parsed_state(&self) -> Result<crate::State, crate::Error> {
        Ok(self.state().await?.parse()?)
    }
}
