//! Sound on the test desktop, without a sound card: two null sinks stand in for the speakers
//! (`test-speakers`, the default sink) and the microphone (`test-mic`, whose monitor is the
//! default source), created by a drop-in of the desktop's PipeWire.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::Desktop;

/// The default sink: what "the speakers" play.
pub const SPEAKERS: &str = "test-speakers";
/// The default source is this null sink's monitor: what "the microphone" hears.
pub const MIC: &str = "test-mic";

/// `pipewire.conf.d` drop-in creating both null sinks. The speakers get the higher priority so
/// WirePlumber makes them the default sink.
pub const NULL_SINKS_CONF: &str = "context.objects = [\n\
  { factory = adapter args = { factory.name = support.null-audio-sink node.name = test-speakers \
    node.description = \"Test speakers\" media.class = Audio/Sink object.linger = true \
    audio.position = [ FL FR ] priority.session = 2000 priority.driver = 2000 } }\n\
  { factory = adapter args = { factory.name = support.null-audio-sink node.name = test-mic \
    node.description = \"Test microphone\" media.class = Audio/Sink object.linger = true \
    audio.position = [ FL FR ] priority.session = 1000 priority.driver = 1000 } }\n\
]\n";

impl Desktop {
    fn pw_metadata(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("pw-metadata")
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .context("running pw-metadata")?;
        if !out.status.success() {
            bail!("pw-metadata {args:?} failed");
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits for WirePlumber to choose the default sink, then points the default source at
    /// the microphone stand-in's monitor.
    pub(crate) fn configure_audio(&self, deadline: Instant) -> Result<()> {
        while !self.pw_metadata(&["0"])?.contains("default.audio.sink") {
            if Instant::now() > deadline {
                bail!("WirePlumber chose no default sink");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.set_default_source(MIC)
    }

    /// Makes `node` the default sink (as a user switching outputs would).
    pub fn set_default_sink(&self, node: &str) -> Result<()> {
        let v = format!("{{\"name\":\"{node}\"}}");
        self.pw_metadata(&["0", "default.configured.audio.sink", &v, "Spa:String:JSON"])?;
        Ok(())
    }

    /// Makes `node` (a source, or a sink whose monitor is meant) the default source.
    pub fn set_default_source(&self, node: &str) -> Result<()> {
        let v = format!("{{\"name\":\"{node}\"}}");
        self.pw_metadata(&[
            "0",
            "default.configured.audio.source",
            &v,
            "Spa:String:JSON",
        ])?;
        Ok(())
    }

    /// Every object of the desktop's PipeWire (`pw-dump`), `Null` if it printed nothing usable.
    fn pw_dump(&self) -> Result<serde_json::Value> {
        let out = self
            .command("pw-dump")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .context("running pw-dump")?;
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
    }

    /// The links of the graph as (output node name, input node name), one per port pair (a
    /// stereo connection is two). Names, not ids: the players and sinks of a test are named.
    pub fn links(&self) -> Result<Vec<(String, String)>> {
        let objects = self.pw_dump()?;
        let Some(all) = objects.as_array() else {
            return Ok(Vec::new());
        };
        let name = |id: &serde_json::Value| {
            all.iter()
                .find(|o| o["type"] == "PipeWire:Interface:Node" && o["id"] == *id)
                .and_then(|o| o["info"]["props"]["node.name"].as_str())
                .unwrap_or("")
                .to_string()
        };
        Ok(all
            .iter()
            .filter(|o| o["type"] == "PipeWire:Interface:Link")
            .map(|o| {
                let info = &o["info"];
                (name(&info["output-node-id"]), name(&info["input-node-id"]))
            })
            .collect())
    }

    /// Waits until `ready(links())` holds (see [`Desktop::links`]): for a move of a stream
    /// that WirePlumber does on its own time after a change of the default sink.
    pub fn wait_links(
        &self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut(&[(String, String)]) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let links = self.links()?;
            if ready(&links) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{what}: not after {timeout:?}; links {links:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates a null sink named `name` (an output device that is nobody's default) and waits
    /// until it is in the graph: a named node for `--audio node:NAME`. It lingers until the
    /// desktop's PipeWire ends.
    pub fn create_sink(&self, name: &str, timeout: Duration) -> Result<()> {
        let props = format!(
            "{{ factory.name=support.null-audio-sink node.name={name} \
             node.description=\"{name}\" media.class=Audio/Sink object.linger=true \
             audio.position=[ FL FR ] priority.session=100 priority.driver=100 }}"
        );
        let out = self
            .command("pw-cli")
            .args(["create-node", "adapter", &props])
            .stdin(Stdio::null())
            .output()
            .context("running pw-cli")?;
        if !out.status.success() {
            bail!(
                "pw-cli create-node {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let deadline = Instant::now() + timeout;
        loop {
            let objects = self.pw_dump()?;
            if node_named(&objects, name).is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("sink {name} not in the graph after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until no node is named `node` any more (a player that was killed has left the
    /// graph, so a later one with the same name is a new stream).
    pub fn wait_node_gone(&self, node: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let objects = self.pw_dump()?;
            if node_named(&objects, node).is_none() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("PipeWire node {node} still there after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the node named `node` (e.g. a player's `node.name`) is `running`: linked
    /// and processing, so what it plays reaches its sink from now on. A fixed sleep after
    /// starting a player is not enough on a loaded machine.
    pub fn wait_node_running(&self, node: &str, timeout: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let objects = self.pw_dump()?;
            let state = node_named(&objects, node)
                .map(|o| o["info"]["state"].as_str().unwrap_or("").to_string());
            if state.as_deref() == Some("running") {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "PipeWire node {node} not running after {timeout:?} (state {state:?})"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The current default sink's node name, as WirePlumber announces it.
    pub fn default_sink(&self) -> Result<Option<String>> {
        let out = self.pw_metadata(&["0", "default.audio.sink"])?;
        Ok(out
            .split("\"name\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(str::to_string))
    }
}

/// The node named `name` (its `node.name`) in a `pw-dump`, if there is one.
fn node_named<'a>(objects: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    objects
        .as_array()?
        .iter()
        .find(|o| o["type"] == "PipeWire:Interface:Node" && o["info"]["props"]["node.name"] == name)
}
