//! `zerocast ctl watch --json` / `--format waybar`: one line per change of what the daemon is
//! doing, for status bars. Driven by the daemon's signals (NameOwnerChanged, PropertiesChanged,
//! Finished, Failed), never by polling; it reads through the daemon's unique name, so watching
//! never starts a daemon, and it follows recordings started by anyone, across daemon restarts.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use futures_util::StreamExt;
use serde_json::{json, Value as Json};
use zbus::fdo::{DBusProxy, PropertiesProxy};
use zbus::names::{BusName, InterfaceName, OwnedUniqueName};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::{Connection, MatchRule, Message, MessageStream};

use crate::ctl::value_json;
use crate::service::{BUS_NAME, MANAGER_IFACE, MANAGER_PATH, RECORDING_IFACE};

/// Line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Property changes of one recording as `Key=value` text (the default).
    Text,
    /// One JSON object per change: `state` (`unavailable`, `idle`, or the recording's state)
    /// and the recording's figures.
    Json,
    /// waybar `custom` module lines (`return-type: json`): text (`REC 0:03`; ⏺ with --glyphs),
    /// tooltip, class, alt.
    Waybar,
}

/// What the daemon is doing, as the feed shows it.
#[derive(Debug, Default)]
struct Snapshot {
    daemon: bool,
    /// Recording number → its properties (snake_case keys, JSON values).
    recordings: BTreeMap<u64, serde_json::Map<String, Json>>,
}

impl Snapshot {
    /// The line for the newest recording that has not ended, else idle/unavailable.
    fn line(&self) -> Json {
        let current = self.recordings.iter().rev().find(|(_, r)| {
            !matches!(
                r.get("state").and_then(Json::as_str),
                Some("finished" | "failed")
            )
        });
        match current {
            Some((id, r)) => recording_line(*id, r),
            None if self.daemon => json!({"state": "idle"}),
            None => json!({"state": "unavailable"}),
        }
    }
}

fn recording_line(id: u64, r: &serde_json::Map<String, Json>) -> Json {
    let mut m = r.clone();
    m.insert("id".into(), json!(id));
    m.insert(
        "object".into(),
        json!(format!("{MANAGER_PATH}/recording/{id}")),
    );
    Json::Object(m)
}

/// `{"text","tooltip","class","alt"}` for a waybar `custom` module. Idle and ended states have
/// an empty text, which hides the module until something records. The text is plain words
/// (`REC 0:03`, `PAUSED 0:03`) that every font has; `glyphs` uses ⏺/⏸ (U+23FA, U+23F8)
/// instead, for fonts that have them (many do not: a box before the time). `class`/`alt` are
/// the state either way, for CSS and `format-icons`.
pub fn waybar(line: &Json, glyphs: bool) -> Json {
    let state = line["state"].as_str().unwrap_or("idle");
    let secs = line["duration"].as_f64().unwrap_or(0.0);
    let elapsed = clock(secs);
    let (text, tooltip) = match state {
        "unavailable" => (String::new(), "zerocast: daemon not running".to_owned()),
        "idle" => (String::new(), "zerocast: idle".to_owned()),
        "finished" => (
            String::new(),
            format!("zerocast: saved {}", line["path"].as_str().unwrap_or("")),
        ),
        "failed" => (
            String::new(),
            format!(
                "zerocast: failed: {}: {}",
                line["error"].as_str().unwrap_or(""),
                line["message"].as_str().unwrap_or("")
            ),
        ),
        s => {
            let icon = match (s, glyphs) {
                ("paused", true) => "⏸",
                (_, true) => "⏺",
                ("paused", false) => "PAUSED",
                ("finishing", false) => "SAVING",
                (_, false) => "REC",
            };
            let mut tip = format!(
                "zerocast: {s} {elapsed}\n{:.1} MB",
                line["bytes"].as_f64().unwrap_or(0.0) / 1e6
            );
            for k in ["capture_path", "encoder"] {
                if let Some(v) = line[k].as_str().filter(|v| !v.is_empty()) {
                    tip.push_str(" · ");
                    tip.push_str(v);
                }
            }
            if let Some(p) = line["path"].as_str() {
                tip.push('\n');
                tip.push_str(p);
            }
            (format!("{icon} {elapsed}"), tip)
        }
    };
    json!({"text": text, "tooltip": tooltip, "class": state, "alt": state})
}

fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Property name → feed key (`CapturePath` → `capture_path`).
fn key(prop: &str) -> String {
    let mut k = String::new();
    for (i, c) in prop.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                k.push('_');
            }
            k.push(c.to_ascii_lowercase());
        } else {
            k.push(c);
        }
    }
    k
}

/// Properties the feed shows (`Options` is long and never changes).
fn shown(prop: &str) -> bool {
    prop != "Options"
}

struct Feed<W: Write> {
    conn: Connection,
    out: W,
    format: Format,
    /// waybar text with ⏺/⏸ instead of words.
    glyphs: bool,
    snap: Snapshot,
    owner: Option<OwnedUniqueName>,
    last: Option<Json>,
}

/// Runs the feed until stdout closes or the bus goes away.
pub async fn run(conn: &Connection, format: Format, glyphs: bool) -> anyhow::Result<i32> {
    let mut feed = Feed {
        conn: conn.clone(),
        out: std::io::stdout().lock(),
        format,
        glyphs,
        snap: Snapshot::default(),
        owner: None,
        last: None,
    };
    feed.run().await
}

impl<W: Write> Feed<W> {
    async fn run(&mut self) -> anyhow::Result<i32> {
        // Subscribe first, then read: no change falls in between.
        let dbus = DBusProxy::new(&self.conn).await?;
        let mut owners = dbus
            .receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
            .await?;
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(BUS_NAME)?
            .path_namespace(MANAGER_PATH)?
            .build();
        let mut signals = MessageStream::for_match_rule(rule, &self.conn, Some(64)).await?;
        let owner = dbus.get_name_owner(BusName::try_from(BUS_NAME)?).await.ok();
        self.daemon_changed(owner).await;
        if !self.emit(None)? {
            return Ok(0);
        }
        loop {
            let more = tokio::select! {
                Some(sig) = owners.next() => {
                    let owner = sig.args().ok().and_then(|a| a.new_owner().as_ref().map(|o| o.to_owned().into()));
                    self.daemon_changed(owner).await;
                    self.emit(None)?
                }
                Some(msg) = signals.next() => match msg {
                    Ok(msg) => {
                        let ended = self.on_signal(&msg).await;
                        self.emit(ended)?
                    }
                    Err(_) => true,
                },
                else => anyhow::bail!("lost the connection to the session bus"),
            };
            if !more {
                return Ok(0);
            }
        }
    }

    /// Writes the ended recording's line (if any), then the current line when it changed.
    /// `false` when stdout is closed (the bar went away).
    fn emit(&mut self, ended: Option<Json>) -> anyhow::Result<bool> {
        if let Some(e) = ended {
            if !self.write(&e) {
                return Ok(false);
            }
        }
        let line = self.snap.line();
        if self.last.as_ref() == Some(&line) {
            return Ok(true);
        }
        let ok = self.write(&line);
        self.last = Some(line);
        Ok(ok)
    }

    fn write(&mut self, line: &Json) -> bool {
        let text = match self.format {
            Format::Waybar => waybar(line, self.glyphs).to_string(),
            _ => line.to_string(),
        };
        writeln!(self.out, "{text}")
            .and_then(|()| self.out.flush())
            .is_ok()
    }

    async fn daemon_changed(&mut self, owner: Option<OwnedUniqueName>) {
        self.snap = Snapshot::default();
        self.owner = owner;
        let Some(owner) = self.owner.clone() else {
            return;
        };
        self.snap.daemon = true;
        let list = async {
            let v = self
                .props(&owner, MANAGER_PATH)
                .await?
                .get(
                    InterfaceName::from_static_str_unchecked(MANAGER_IFACE),
                    "Recordings",
                )
                .await?;
            anyhow::Ok(Vec::<OwnedObjectPath>::try_from(v)?)
        };
        if let Ok(list) = list.await {
            self.sync(&list).await;
        }
    }

    async fn props(
        &self,
        owner: &OwnedUniqueName,
        path: &str,
    ) -> zbus::Result<PropertiesProxy<'static>> {
        PropertiesProxy::builder(&self.conn)
            .destination(owner.clone())?
            .path(path.to_owned())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
    }

    async fn sync(&mut self, list: &[OwnedObjectPath]) {
        let ids: Vec<(u64, &OwnedObjectPath)> = list
            .iter()
            .filter_map(|p| Some((id_of(p.as_str())?, p)))
            .collect();
        self.snap
            .recordings
            .retain(|id, _| ids.iter().any(|(i, _)| i == id));
        let Some(owner) = self.owner.clone() else {
            return;
        };
        for (id, path) in ids {
            if self.snap.recordings.contains_key(&id) {
                continue;
            }
            let Ok(p) = self.props(&owner, path.as_str()).await else {
                continue;
            };
            if let Ok(all) = p
                .get_all(InterfaceName::from_static_str_unchecked(RECORDING_IFACE))
                .await
            {
                let r = self.snap.recordings.entry(id).or_default();
                for (k, v) in all.iter().filter(|(k, _)| shown(k)) {
                    r.insert(key(k), value_json(v));
                }
            }
        }
    }

    /// Applies a signal; returns the line of a recording that just ended.
    async fn on_signal(&mut self, msg: &Message) -> Option<Json> {
        let header = msg.header();
        let path = header.path()?.as_str().to_owned();
        match header.member()?.as_str() {
            "PropertiesChanged" => {
                let sig = zbus::fdo::PropertiesChanged::from_message(msg.clone())?;
                let args = sig.args().ok()?;
                let changed: &HashMap<&str, Value<'_>> = args.changed_properties();
                if path == MANAGER_PATH {
                    if let Some(v) = changed.get("Recordings") {
                        let list = OwnedValue::try_from(v)
                            .ok()
                            .and_then(|v| Vec::<OwnedObjectPath>::try_from(v).ok());
                        if let Some(list) = list {
                            self.sync(&list).await;
                        }
                    }
                } else if let Some(id) = id_of(&path) {
                    let r = self.snap.recordings.entry(id).or_default();
                    for (k, v) in changed.iter().filter(|(k, _)| shown(k)) {
                        // The end is shown once, from Finished/Failed (they carry the outcome).
                        if *k == "State"
                            && matches!(v.downcast_ref::<&str>(), Ok("finished" | "failed"))
                        {
                            continue;
                        }
                        r.insert(key(k), value_json(v));
                    }
                }
                None
            }
            "Finished" => {
                let id = id_of(&path)?;
                let (file, stats) = msg
                    .body()
                    .deserialize::<(String, HashMap<String, OwnedValue>)>()
                    .ok()?;
                let r = self.snap.recordings.entry(id).or_default();
                r.insert("state".into(), json!("finished"));
                r.insert("path".into(), json!(file));
                for (k, v) in &stats {
                    r.insert(k.replace('-', "_"), value_json(v));
                }
                Some(recording_line(id, r))
            }
            "Failed" => {
                let id = id_of(&path)?;
                let (name, message) = msg.body().deserialize::<(String, String)>().ok()?;
                let r = self.snap.recordings.entry(id).or_default();
                r.insert("state".into(), json!("failed"));
                r.insert("error".into(), json!(name));
                r.insert("message".into(), json!(message));
                Some(recording_line(id, r))
            }
            _ => None,
        }
    }
}

fn id_of(path: &str) -> Option<u64> {
    path.strip_prefix(MANAGER_PATH)?
        .strip_prefix("/recording/")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(key("CapturePath"), "capture_path");
        assert_eq!(key("DroppedFrames"), "dropped_frames");
        assert_eq!(key("State"), "state");
    }

    #[test]
    fn current_is_the_newest_running() {
        let mut s = Snapshot::default();
        assert_eq!(s.line(), json!({"state": "unavailable"}));
        s.daemon = true;
        assert_eq!(s.line(), json!({"state": "idle"}));
        let rec = |state: &str| {
            let mut m = serde_json::Map::new();
            m.insert("state".into(), json!(state));
            m
        };
        s.recordings.insert(1, rec("recording"));
        s.recordings.insert(2, rec("finished"));
        assert_eq!(s.line()["id"], json!(1));
        s.recordings.insert(1, rec("failed"));
        assert_eq!(s.line(), json!({"state": "idle"}));
    }

    #[test]
    fn waybar_lines() {
        let l = json!({"state": "recording", "duration": 75.2, "bytes": 3_400_000,
                       "capture_path": "shm-cpu", "encoder": "libx264", "path": "/v/a.mkv"});
        let w = waybar(&l, false);
        assert_eq!(w["text"], "REC 1:15");
        assert_eq!(w["class"], "recording");
        assert_eq!(w["alt"], "recording");
        assert_eq!(
            w["tooltip"],
            "zerocast: recording 1:15\n3.4 MB · shm-cpu · libx264\n/v/a.mkv"
        );
        assert_eq!(
            waybar(&json!({"state": "paused"}), false)["text"],
            "PAUSED 0:00"
        );
        // Words by default: any font renders them.
        for state in ["starting", "recording", "paused", "finishing"] {
            let t = waybar(&json!({"state": state, "duration": 3.0}), false)["text"].clone();
            assert!(t.as_str().unwrap().is_ascii(), "{state}: {t}");
        }
        // --glyphs: the symbols, same class and alt.
        let g = waybar(&l, true);
        assert_eq!(g["text"], "⏺ 1:15");
        assert_eq!((&g["class"], &g["alt"]), (&w["class"], &w["alt"]));
        assert_eq!(waybar(&json!({"state": "paused"}), true)["text"], "⏸ 0:00");
        let idle = waybar(&json!({"state": "idle"}), false);
        assert_eq!(
            (idle["text"].as_str(), idle["class"].as_str()),
            (Some(""), Some("idle"))
        );
        let failed = waybar(
            &json!({"state": "failed", "error": "org.zerocast.Error.StreamLost", "message": "gone"}),
            false,
        );
        assert_eq!(
            failed["tooltip"],
            "zerocast: failed: org.zerocast.Error.StreamLost: gone"
        );
    }
}
