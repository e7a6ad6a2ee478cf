//! End-to-end: `zerocast ctl watch --json` and `--format waybar` across a recording driven by
//! busctl on the real stack: one valid JSON line per change, from "daemon not running" to idle,
//! starting, recording, paused, finished.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use zerocast_testdesk::{Desktop, DesktopOptions};

const NAME: &str = "org.zerocast.Recorder1";
const MANAGER: &str = "/org/zerocast/Recorder1";

struct Feed {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<serde_json::Value>,
    /// Lines before this one were matched by an earlier `wait_for`.
    cursor: usize,
}

impl Feed {
    fn start(desk: &Desktop, args: &[&str]) -> Feed {
        let mut child = zerocast(desk)
            .args(["ctl", "watch"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn ctl watch");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Feed {
            child,
            lines,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// Reads lines until one after the last match has `key` == `want`; every line must be a
    /// JSON object.
    fn wait_for(&mut self, key: &str, want: &str) {
        self.wait_for_with(key, want, |v| v == want)
    }

    /// Reads lines until one after the last match has a `key` that `ok` accepts (`want` says
    /// what, for the failure message).
    fn wait_for_with(&mut self, key: &str, want: &str, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(i) = self.seen[self.cursor..]
                .iter()
                .position(|v| v[key].as_str().is_some_and(&ok))
            {
                self.cursor += i + 1;
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line with {key}={want}; got {:#?}", self.seen));
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            assert!(v.is_object(), "{line}");
            self.seen.push(v);
        }
    }

    /// The sequence of `key` values, consecutive repeats merged.
    fn sequence(&self, key: &str) -> Vec<String> {
        let mut s: Vec<String> = self
            .seen
            .iter()
            .map(|v| v[key].as_str().unwrap_or("?").to_owned())
            .collect();
        s.dedup();
        s
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn busctl(desk: &Desktop, args: &[&str]) -> String {
    let o = desk
        .command("busctl")
        .args(["--user", "--timeout=30"])
        .args(args)
        .output()
        .expect("busctl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

#[test]
fn watch_feeds_json_and_waybar_lines_across_a_recording() {
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    // Both feeds start before the daemon: they must not start it, and must notice it.
    let mut json = Feed::start(&desk, &["--json"]);
    let mut bar = Feed::start(&desk, &["--format", "waybar"]);
    let mut glyphs = Feed::start(&desk, &["--format", "waybar", "--glyphs"]);
    json.wait_for("state", "unavailable");
    bar.wait_for("class", "unavailable");
    glyphs.wait_for("class", "unavailable");
    assert!(
        !desk.name_has_owner(NAME).unwrap(),
        "watching started a daemon"
    );

    let mut daemon = zerocast(&desk)
        .arg("daemon")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    json.wait_for("state", "idle");
    bar.wait_for("class", "idle");

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("feed.mkv");
    let obj = busctl(
        &desk,
        &[
            "call",
            NAME,
            MANAGER,
            NAME,
            "Start",
            "a{sv}",
            "1",
            "path",
            "s",
            file.to_str().unwrap(),
        ],
    )
    .trim_start_matches("o ")
    .trim_matches('"')
    .to_owned();
    json.wait_for("state", "recording");
    bar.wait_for("class", "recording");
    // Elapsed time reaches the bar through the daemon's progress signals; in words that
    // every font has, or with --glyphs the symbols.
    // At least one second: the progress signals come at most once a second, so under load a
    // second may be skipped (0:00 → 0:02).
    let past_one_second = |prefix: &'static str| {
        move |t: &str| {
            t.strip_prefix(prefix)
                .and_then(|e| e.split_once(':'))
                .and_then(|(m, s)| Some(m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?))
                .is_some_and(|secs| secs >= 1)
        }
    };
    bar.wait_for_with("text", "REC 0:01 or later", past_one_second("REC "));
    glyphs.wait_for_with("text", "⏺ 0:01 or later", past_one_second("⏺ "));
    busctl(
        &desk,
        &["call", NAME, &obj, "org.zerocast.Recording1", "Pause"],
    );
    json.wait_for("state", "paused");
    bar.wait_for("class", "paused");
    assert!(
        bar.seen[bar.cursor - 1]["text"]
            .as_str()
            .unwrap()
            .starts_with("PAUSED "),
        "{:#?}",
        bar.seen
    );
    busctl(
        &desk,
        &["call", NAME, &obj, "org.zerocast.Recording1", "Resume"],
    );
    busctl(
        &desk,
        &["call", NAME, &obj, "org.zerocast.Recording1", "Stop"],
    );
    json.wait_for("state", "finished");
    bar.wait_for("class", "finished");
    json.wait_for("state", "idle");
    bar.wait_for("class", "idle");

    // `finishing` shows while the file is finalized, if the signal beats the end.
    let mut states = json.sequence("state");
    states.retain(|s| s != "finishing");
    assert_eq!(
        states,
        [
            "unavailable",
            "idle",
            "starting",
            "recording",
            "paused",
            "recording",
            "finished",
            "idle"
        ],
        "{:#?}",
        json.seen
    );
    let mut classes = bar.sequence("class");
    classes.retain(|s| s != "finishing");
    assert_eq!(classes, states, "{:#?}", bar.seen);
    // class and alt are the same with --glyphs: users' CSS keeps working.
    glyphs.wait_for("class", "idle");
    let mut glyph_classes = glyphs.sequence("class");
    glyph_classes.retain(|s| s != "finishing");
    assert_eq!(glyph_classes, states, "{:#?}", glyphs.seen);
    let finished = json.seen.iter().find(|v| v["state"] == "finished").unwrap();
    assert_eq!(finished["path"], file.to_str().unwrap());
    assert!(finished["frames"].as_u64().unwrap() > 10, "{finished}");
    let recording = bar.seen.iter().find(|v| v["class"] == "recording").unwrap();
    assert!(
        recording["tooltip"]
            .as_str()
            .unwrap()
            .contains(file.to_str().unwrap()),
        "{recording}"
    );
    for v in bar.seen.iter().chain(&glyphs.seen) {
        for k in ["text", "tooltip", "class", "alt"] {
            assert!(v[k].is_string(), "{k} missing in {v}");
        }
    }

    // The daemon goes away: the feeds say so and keep running.
    let _ = signal_and_wait(&mut daemon, libc::SIGTERM, Duration::from_secs(10));
    json.wait_for("state", "unavailable");
    assert!(json.child.try_wait().unwrap().is_none());
    assert_eq!(json.sequence("state").last().unwrap(), "unavailable");
}
