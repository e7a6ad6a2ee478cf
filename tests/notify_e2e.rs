//! End-to-end: the daemon's notifications reach a real notification server (`dunst`, running on
//! the test desktop's sway) and their actions run the user's default handler.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use zerocast_testdesk::session::{self, Dunst};
use zerocast_testdesk::{Desktop, DesktopOptions};

static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const NAME: &str = "org.zerocast.Recorder1";
const MANAGER: &str = "/org/zerocast/Recorder1";

struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(desk: &Desktop) -> Daemon {
        let child = zerocast(desk)
            .arg("daemon")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn daemon");
        wait_until(Duration::from_secs(20), "the daemon owns its name", || {
            desk.name_has_owner(NAME).unwrap_or(false)
        });
        Daemon { child }
    }

    /// Stops it (SIGTERM) and returns its log.
    fn stop(mut self) -> String {
        let o = signal_and_wait(&mut self.child, libc::SIGTERM, Duration::from_secs(10));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = signal_and_wait(&mut self.child, libc::SIGTERM, Duration::from_secs(10));
        }
    }
}

fn wait_until(timeout: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a recording holds `secs` of recorded time (its `Duration`).
fn wait_recorded(desk: &Desktop, obj: &str, secs: f64) {
    wait_until(
        Duration::from_secs(30),
        &format!("{secs} s recorded"),
        || {
            busctl(
                desk,
                &[
                    "get-property",
                    NAME,
                    obj,
                    "org.zerocast.Recording1",
                    "Duration",
                ],
            )
            .trim_start_matches("d ")
            .trim()
            .parse::<f64>()
            .is_ok_and(|d| d >= secs)
        },
    );
}

fn busctl(desk: &Desktop, args: &[&str]) -> String {
    let o = desk
        .command("busctl")
        .args(["--user", "--timeout=30"])
        .args(args)
        .output()
        .expect("busctl");
    assert!(
        o.status.success(),
        "busctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// busctl Start with `extra` options after `path`; returns the recording's object path.
fn start(desk: &Desktop, file: &Path, extra: &[&str]) -> String {
    let n = 1 + extra.len() / 3;
    let mut args = vec!["call", NAME, MANAGER, NAME, "Start", "a{sv}"];
    let n = n.to_string();
    args.push(&n);
    args.extend(["path", "s", file.to_str().unwrap()]);
    args.extend_from_slice(extra);
    busctl(desk, &args)
        .trim_start_matches("o ")
        .trim_matches('"')
        .to_owned()
}

fn record_a_second(desk: &Desktop, file: &Path, extra: &[&str]) {
    let obj = start(desk, file, extra);
    std::thread::sleep(Duration::from_millis(1000));
    busctl(
        desk,
        &["call", NAME, &obj, "org.zerocast.Recording1", "Stop"],
    );
}

fn displayed(desk: &Desktop) -> u32 {
    session::dunstctl(desk, &["count", "displayed"])
        .map(|s| s.trim().parse().unwrap_or(0))
        .unwrap_or(0)
}

/// (summary, body) of every notification in dunst's history, newest first.
fn history(desk: &Desktop) -> Vec<(String, String)> {
    let text = session::dunstctl(desk, &["history"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("dunstctl history is JSON");
    v["data"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["summary"]["data"].as_str().unwrap_or("").to_owned(),
                n["body"]["data"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn desktop_with_dunst() -> (Desktop, Dunst) {
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let dunst = session::start_dunst(&desk).expect("dunst");
    (desk, dunst)
}

/// Finished → "Recording saved" with the file name; its default action (a click, `dunstctl
/// action`) opens the file with the default handler, "Show in folder" (from dunst's context
/// menu) opens the folder: no file manager implements FileManager1 here.
#[test]
fn saved_notification_opens_the_file_and_its_folder() {
    let _g = lock();
    let (desk, dunst) = desktop_with_dunst();
    let opened = session::install_default_handler(&desk).unwrap();
    let daemon = Daemon::start(&desk);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("saved clip.mkv");
    record_a_second(&desk, &file, &[]);

    wait_until(
        Duration::from_secs(10),
        "the notification on screen",
        || displayed(&desk) == 1,
    );
    session::dunstctl(&desk, &["action", "0"]).unwrap();
    wait_until(
        Duration::from_secs(10),
        "the default handler opening the file",
        || read(&opened).contains(file.to_str().unwrap()),
    );

    dunst.choose(&desk, "Show in folder").unwrap();
    session::dunstctl(&desk, &["context"]).unwrap();
    wait_until(
        Duration::from_secs(10),
        "the default handler opening the folder",
        || {
            read(&opened)
                .lines()
                .any(|l| l.trim() == out.path().to_str().unwrap())
        },
    );
    assert!(
        read(&dunst.menu_log).contains("Open"),
        "{}",
        read(&dunst.menu_log)
    );

    session::dunstctl(&desk, &["close-all"]).unwrap();
    wait_until(
        Duration::from_secs(5),
        "the notification in dunst's history",
        || !history(&desk).is_empty(),
    );
    let h = history(&desk);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].0, "Recording saved");
    assert!(
        h[0].1.contains("saved clip.mkv") && h[0].1.contains(" MB"),
        "{h:?}"
    );
    assert!(h[0].1.contains("0:01"), "duration missing: {h:?}");
    daemon.stop();
}

/// A cancelled portal dialog → a failure notification naming `PortalCancelled`.
#[test]
fn cancelled_dialog_notifies_the_failure() {
    let _g = lock();
    let (desk, _dunst) = desktop_with_dunst();
    let daemon = Daemon::start(&desk);
    desk.cancel_source_selection(true).unwrap();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("never.mkv");
    let o = desk
        .command("busctl")
        .args([
            "--user",
            "--timeout=30",
            "call",
            NAME,
            MANAGER,
            NAME,
            "Start",
            "a{sv}",
            "2",
        ])
        .args(["path", "s", file.to_str().unwrap(), "restore", "b", "false"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    wait_until(Duration::from_secs(10), "the failure notification", || {
        displayed(&desk) == 1
    });
    session::dunstctl(&desk, &["close-all"]).unwrap();
    wait_until(Duration::from_secs(5), "history", || {
        !history(&desk).is_empty()
    });
    let h = history(&desk);
    assert_eq!(h[0].0, "Recording failed", "{h:?}");
    assert!(
        h[0].1.contains("org.zerocast.Error.PortalCancelled"),
        "{h:?}"
    );
    daemon.stop();
}

/// No notification server on the bus: recordings work, the daemon says why nothing was shown.
#[test]
fn no_notification_server_is_logged_only() {
    let _g = lock();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let daemon = Daemon::start(&desk);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("quiet.mkv");
    record_a_second(&desk, &file, &[]);
    run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&file)
            .args(["-f", "null", "-"]),
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = daemon.stop();
    assert!(log.contains("no notification server"), "{log}");
}

/// `ctl start --no-notify` (Start option `notify` false): that recording ends silently; the next
/// one, with the default, is notified (so the silence is the option's doing).
#[test]
fn no_notify_turns_them_off() {
    let _g = lock();
    let (desk, _dunst) = desktop_with_dunst();
    let daemon = Daemon::start(&desk);
    let out = tempfile::tempdir().unwrap();
    let ctl = |args: &[&str]| -> String {
        let o = run_ok(zerocast(&desk).arg("ctl").args(args));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let quiet = out.path().join("quiet.mkv");
    let obj = ctl(&["start", "--no-notify", "-o", quiet.to_str().unwrap()]);
    let options = busctl(
        &desk,
        &[
            "get-property",
            NAME,
            &obj,
            "org.zerocast.Recording1",
            "Options",
        ],
    );
    assert!(options.contains("\"notify\" b false"), "{options}");
    std::thread::sleep(Duration::from_millis(800));
    ctl(&["stop", &obj]);

    let loud = out.path().join("loud.mkv");
    let obj = ctl(&["start", "-o", loud.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(800));
    ctl(&["stop", &obj]);
    wait_until(
        Duration::from_secs(10),
        "the second recording's notification",
        || displayed(&desk) >= 1,
    );
    std::thread::sleep(Duration::from_millis(300));
    session::dunstctl(&desk, &["close-all"]).unwrap();
    wait_until(Duration::from_secs(5), "history", || {
        !history(&desk).is_empty()
    });
    let h = history(&desk);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].1.contains("loud.mkv"), "{h:?}");
    daemon.stop();
}

/// A replay: each SaveReplay → "Replay saved" naming the clip; stopping the replay without
/// save-on-stop announces nothing (no file was written).
#[test]
fn replay_saved_is_notified_and_a_discarded_replay_is_not() {
    let _g = lock();
    let (desk, _dunst) = desktop_with_dunst();
    let _daemon = Daemon::start(&desk);
    let out = tempfile::tempdir().unwrap();
    let never = out.path().join("never.mkv");
    let clip = out.path().join("clip.mkv");
    let obj = start(&desk, &never, &["replay", "d", "3"]);
    // Something in the ring to save.
    wait_recorded(&desk, &obj, 1.0);
    busctl(
        &desk,
        &[
            "call",
            NAME,
            &obj,
            "org.zerocast.Recording1",
            "SaveReplay",
            "a{sv}",
            "1",
            "path",
            "s",
            clip.to_str().unwrap(),
        ],
    );
    wait_until(
        Duration::from_secs(10),
        "the Replay saved notification",
        || history(&desk).iter().any(|(s, _)| s == "Replay saved") || displayed(&desk) >= 1,
    );
    busctl(
        &desk,
        &["call", NAME, &obj, "org.zerocast.Recording1", "Stop"],
    );
    // A (wrong) "Recording saved" for the replay would come before the control's: the daemon
    // sends its notifications in order on one connection. A normal recording stopped now must
    // be announced; once it is, everything the replay's stop sent is there too.
    let control = out.path().join("control.mkv");
    let cobj = start(&desk, &control, &[]);
    wait_recorded(&desk, &cobj, 0.5);
    busctl(
        &desk,
        &["call", NAME, &cobj, "org.zerocast.Recording1", "Stop"],
    );
    wait_until(
        Duration::from_secs(10),
        "the control's Recording saved",
        || {
            session::dunstctl(&desk, &["close-all"]).unwrap();
            history(&desk)
                .iter()
                .any(|(s, b)| s == "Recording saved" && b.contains("control.mkv"))
        },
    );
    let h = history(&desk);
    assert!(
        h.iter()
            .any(|(s, b)| s == "Replay saved" && b.contains("clip.mkv")),
        "{h:?}"
    );
    assert!(
        !h.iter()
            .any(|(s, b)| s == "Recording saved" && !b.contains("control.mkv")),
        "a discarded replay was announced as saved: {h:?}"
    );
    assert!(!never.exists());
}
