//! `zerocast ctl watch --json` / `--format waybar`: one line per change of what the daemon is
//! doing, for status bars. Driven by the daemon's signals (NameOwnerChanged, PropertiesChanged,
//! Finished, Failed), never by polling; it reads through the daemon's unique name, so watching
//! never starts a daemon, and it follows recordings started by anyone, across daemon restarts.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{json, Value as Json};
use zbus::zvariant::Value;
use zbus::Connection;
use zerocast_client::{recording_path, Entry, Follower, Update};

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
struct Snapshot<'a> {
    daemon: bool,
    recordings: Cow<'a, BTreeMap<u64, Entry>>,
}

impl Snapshot<'_> {
    /// The line for the newest recording that has not ended, else idle/unavailable.
    fn line(&self) -> Json {
        match zerocast_client::current(&self.recordings) {
            Some((id, r)) => recording_line(id, r),
            None if self.daemon => json!({"state": "idle"}),
            None => json!({"state": "unavailable"}),
        }
    }
}

/// A recording's line: its properties (snake_case keys, JSON values; not `Options`, which is
/// long and never changes), and once it ended its outcome (`Finished`'s statistics, `Failed`'s
/// error).
fn recording_line(id: u64, r: &Entry) -> Json {
    let mut m = serde_json::Map::new();
    for (k, v) in r.props.iter().filter(|(k, _)| k.as_str() != "Options") {
        m.insert(key(k), value_json(v));
    }
    if let Some(s) = r.state {
        m.insert("state".into(), json!(s.as_str()));
    }
    for (k, v) in &r.stats {
        m.insert(k.replace('-', "_"), value_json(v));
    }
    if let Some((name, message)) = &r.failure {
        m.insert("error".into(), json!(name));
        m.insert("message".into(), json!(message));
    }
    m.insert("id".into(), json!(id));
    m.insert("object".into(), json!(recording_path(id)));
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

struct Feed<W: Write> {
    out: W,
    format: Format,
    /// waybar text with ⏺/⏸ instead of words.
    glyphs: bool,
    last: Option<Json>,
}

/// Runs the feed until stdout closes or the bus goes away.
pub async fn run(conn: &Connection, format: Format, glyphs: bool) -> anyhow::Result<i32> {
    let mut feed = Feed {
        out: std::io::stdout().lock(),
        format,
        glyphs,
        last: None,
    };
    let (mut daemon, _) = Follower::subscribe(conn).await?;
    if !feed.emit(&daemon, None)? {
        return Ok(0);
    }
    loop {
        let Some(signal) = daemon.recv().await else {
            anyhow::bail!("lost the connection to the session bus");
        };
        let ended = match daemon.apply(signal).await {
            Update::Finished { id, .. } | Update::Failed { id, .. } => {
                daemon.recordings().get(&id).map(|r| recording_line(id, r))
            }
            _ => None,
        };
        if !feed.emit(&daemon, ended)? {
            return Ok(0);
        }
    }
}

impl<W: Write> Feed<W> {
    /// Writes the ended recording's line (if any), then the current line when it changed.
    /// `false` when stdout is closed (the bar went away).
    fn emit(&mut self, daemon: &Follower, ended: Option<Json>) -> anyhow::Result<bool> {
        if let Some(e) = ended {
            if !self.write(&e) {
                return Ok(false);
            }
        }
        let snap = Snapshot {
            daemon: daemon.owner().is_some(),
            recordings: Cow::Borrowed(daemon.recordings()),
        };
        let line = snap.line();
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
}

/// Basic D-Bus values as JSON (options and stats hold nothing else).
pub fn value_json(v: &Value<'_>) -> serde_json::Value {
    match v {
        Value::Bool(b) => json!(b),
        Value::U8(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Str(s) => json!(s.as_str()),
        Value::ObjectPath(p) => json!(p.as_str()),
        Value::Value(v) => value_json(v),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(value_json).collect()),
        other => json!(other.to_string()),
    }
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
        let rec = |state: &str| Entry {
            state: Some(state.parse().unwrap()),
            ..Entry::default()
        };
        s.recordings.to_mut().insert(1, rec("recording"));
        s.recordings.to_mut().insert(2, rec("finished"));
        assert_eq!(s.line()["id"], json!(1));
        s.recordings.to_mut().insert(1, rec("failed"));
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
