//! End-to-end: the D-Bus service against the real stack (sway headless, xdg-desktop-portal,
//! patched xdpw, PipeWire), driven by the real `busctl`. The daemon is `zerocast daemon`.
//!
//! Latency benchmark: `cargo test --release --test dbus_e2e -- --ignored --nocapture bench_start_latency`.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::daemon::{call, get};
use common::*;
use zbus::zvariant::{OwnedObjectPath, Value};
use zerocast_testdesk::{Component, Desktop, DesktopOptions, Layout};

static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const NAME: &str = "org.zerocast.Recorder1";
const MANAGER: &str = "/org/zerocast/Recorder1";

/// `zerocast daemon` in the desktop's environment.
fn daemon_command(desk: &Desktop) -> Command {
    let mut c = zerocast(desk);
    c.arg("daemon");
    c
}

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM: the daemon finalizes running recordings; then reap it.
        let _ = signal_and_wait(&mut self.child, libc::SIGTERM, Duration::from_secs(10));
    }
}

fn start_daemon(desk: &Desktop) -> Daemon {
    let child = daemon_command(desk)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn daemon");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !desk.name_has_owner(NAME).unwrap_or(false) {
        assert!(Instant::now() < deadline, "daemon did not take {NAME}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon { child }
}

/// `Start` with only a path, through busctl: the recording's object path.
fn start_at(desk: &Desktop, file: &Path) -> String {
    let (ok, reply) = call(
        desk,
        MANAGER,
        NAME,
        "Start",
        &["a{sv}", "1", "path", "s", file.to_str().unwrap()],
    );
    assert!(ok, "{reply}");
    object_of(&reply)
}

fn object_of(reply: &str) -> String {
    reply.trim_start_matches("o ").trim_matches('"').to_owned()
}

fn wait_state(desk: &Desktop, obj: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let s = get(desk, obj, "State");
        if s == format!("s \"{want}\"") {
            return;
        }
        assert!(Instant::now() < deadline, "state {s}, wanted {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the recording's `Duration` reaches `secs`: frames are being recorded (a
/// recording that stalls fails here instead of after a fixed sleep).
fn wait_recorded(desk: &Desktop, obj: &str, secs: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30) + Duration::from_secs_f64(secs);
    loop {
        let v = get(desk, obj, "Duration");
        let d: f64 = v.trim_start_matches("d ").parse().unwrap_or(0.0);
        if d >= secs {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{secs} s never recorded: Duration {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn decodes(path: &Path) {
    run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-f", "null", "-"]),
    );
}

on_both_desktops! { window_on_kde;
/// On KDE the recording is the painter's window (the `source` option), as `source_args` does
/// for the CLI.
fn busctl_start_pause_resume_stop(flavour: Flavour) {
    let _g = lock();
    let desk = desktop_of(flavour);
    let _daemon = start_daemon(&desk);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("dbus.mkv");
    let mut monitor = desk
        .command("busctl")
        .args(["--user", "monitor", "--json=short", NAME])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The monitor's lines, read as they come: it is subscribed once it shows a call made after
    // it started.
    let lines = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        use std::io::BufRead;
        let lines = lines.clone();
        let stdout = monitor.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lines.lock().unwrap().iter().any(|l| l.contains("\"Version\"")) {
        assert!(Instant::now() < deadline, "busctl monitor never saw a call");
        call(&desk, MANAGER, "org.freedesktop.DBus.Properties", "Get", &["ss", NAME, "Version"]);
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut options = vec![
        "a{sv}",
        "3",
        "path",
        "s",
        file.to_str().unwrap(),
        "framerate",
        "u",
        "30",
        "cursor",
        "s",
        "embedded",
    ];
    if flavour == zerocast_testdesk::Flavour::Kde {
        options[1] = "4";
        options.extend(["source", "s", "window"]);
    }
    let paints = Paints::start(&desk).capped(30.0);
    let (ok, reply) = call(&desk, MANAGER, NAME, "Start", &options);
    assert!(ok, "Start: {reply}");
    // The busctl that called Start has exited here; the recording goes on without it: 1.5 s
    // get recorded after its caller left.
    let obj = object_of(&reply);
    assert_eq!(get(&desk, &obj, "State"), "s \"recording\"");
    wait_recorded(&desk, &obj, 1.5);
    let (ok, o) = call(&desk, &obj, "org.zerocast.Recording1", "Pause", &[]);
    assert!(ok, "{o}");
    let at_pause = wait_recorded(&desk, &obj, 0.0);
    // The pause itself: 2 s of wall time that must not reach the file.
    std::thread::sleep(Duration::from_millis(2000));
    let (ok, o) = call(&desk, &obj, "org.zerocast.Recording1", "Resume", &[]);
    assert!(ok, "{o}");
    wait_recorded(&desk, &obj, at_pause + 1.5);
    let (ok, o) = call(&desk, &obj, "org.zerocast.Recording1", "Stop", &[]);
    assert!(ok, "{o}");
    assert_eq!(o, format!("s \"{}\"", file.display()));
    assert_eq!(get(&desk, &obj, "State"), "s \"finished\"");
    let floor = paints.min_frames(&desk, 3.0);

    decodes(&file);
    let p = ffprobe(&file);
    // 1.5 s + 1.5 s recorded; the 2 s pause is absent.
    assert!(
        (p.duration - 3.0).abs() < 0.6,
        "duration without the pause: {p:?}"
    );
    assert!(
        p.frames > per_desktop(flavour, 30, floor),
        "{p:?}"
    );
    assert_matches_screen(
        &frame_rgb(&file, 2.0, 1280, 720),
        &desk,
        Layout::new(1280, 720),
    );

    // The Finished signal precedes Stop's reply on the bus; the monitor prints it before it
    // prints the reply it saw after it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines.lock().unwrap().iter().any(|l| l.contains("\"member\":\"Finished\"")) {
        assert!(Instant::now() < deadline, "busctl monitor never saw Finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    let _ = reader.join();
    let text = lines.lock().unwrap().join("\n");
    let mut states: Vec<String> = text
        .lines()
        .filter(|l| l.contains("PropertiesChanged") && l.contains(&obj))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["payload"]["data"][1]["State"]["data"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    states.dedup();
    assert_eq!(
        states.first().map(String::as_str),
        Some("starting"),
        "{states:?}"
    );
    for s in ["recording", "paused", "finished"] {
        assert!(states.iter().any(|x| x == s), "{s} missing in {states:?}");
    }
}
}

#[test]
fn portal_unavailable_is_named() {
    let _g = lock();
    let mut desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    desk.stop_portal().unwrap();
    let _daemon = start_daemon(&desk);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("x.mkv");
    let conn = zbus::blocking::connection::Builder::address(desk.bus_address())
        .unwrap()
        .build()
        .unwrap();
    let m = zbus::blocking::Proxy::new(&conn, NAME, MANAGER, NAME).unwrap();
    let opts: HashMap<&str, Value<'_>> =
        HashMap::from([("path", Value::from(file.to_str().unwrap()))]);
    match m.call::<_, _, OwnedObjectPath>("Start", &(opts,)) {
        Err(zbus::Error::MethodError(n, msg, _)) => {
            assert_eq!(
                n.as_str(),
                "org.zerocast.Error.PortalUnavailable",
                "{msg:?}"
            )
        }
        r => panic!("expected PortalUnavailable, got {r:?}"),
    }
    // And the daemon still answers.
    let (ok, _) = call(
        &desk,
        MANAGER,
        "org.freedesktop.DBus.Properties",
        "Get",
        &["ss", NAME, "Version"],
    );
    assert!(ok);
}

#[test]
fn stream_lost_fails_and_keeps_the_file() {
    let _g = lock();
    let mut desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let _daemon = start_daemon(&desk);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("lost.mkv");
    let obj = start_at(&desk, &file);
    wait_recorded(&desk, &obj, 1.5);
    // The compositor side of the cast goes away.
    desk.stop(Component::Xdpw).unwrap();
    wait_state(&desk, &obj, "failed", Duration::from_secs(15));
    decodes(&file);
    assert!(ffprobe(&file).duration > 1.0);
}

/// D-Bus `Start` → first frame encoded, with a stored restore token; median of 10.
#[test]
#[ignore = "benchmark: cargo test --release --test dbus_e2e -- --ignored --nocapture bench_start_latency"]
fn bench_start_latency() {
    let _g = lock();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let _daemon = start_daemon(&desk);
    let out = tempfile::tempdir().unwrap();
    let conn = zbus::blocking::connection::Builder::address(desk.bus_address())
        .unwrap()
        .build()
        .unwrap();
    let m = zbus::blocking::Proxy::new(&conn, NAME, MANAGER, NAME).unwrap();
    let mut start_ms = Vec::new();
    let mut first_frame_ms = Vec::new();
    // Run 0 stores the restore token; runs 1..=10 use it.
    for i in 0..=10 {
        let file = out.path().join(format!("b{i}.mkv"));
        let opts: HashMap<&str, Value<'_>> =
            HashMap::from([("path", Value::from(file.to_str().unwrap()))]);
        let t0 = Instant::now();
        let obj: OwnedObjectPath = m.call("Start", &(opts,)).expect("Start");
        let t_start = t0.elapsed();
        let rec = zbus::blocking::Proxy::new(&conn, NAME, obj.as_str(), "org.zerocast.Recording1")
            .unwrap();
        // Frames is throttled in signals, but Get reads the live value.
        loop {
            let frames: u64 = rec.get_property("Frames").unwrap_or(0);
            if frames >= 1 || t0.elapsed() > Duration::from_secs(10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let t_frame = t0.elapsed();
        let _: String = rec.call("Stop", &()).expect("Stop");
        if i > 0 {
            start_ms.push(t_start.as_secs_f64() * 1e3);
            first_frame_ms.push(t_frame.as_secs_f64() * 1e3);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "D-Bus Start latency, restore token, median of 10: Start returned {:.0} ms, first frame encoded {:.0} ms",
        median(&mut start_ms),
        median(&mut first_frame_ms)
    );
}

/// `zerocast ctl` as a script would use it, with `-o` relative to the working directory.
fn ctl_in(desk: &Desktop, cwd: &Path, args: &[&str]) -> Output {
    let mut c = zerocast(desk);
    c.current_dir(cwd).arg("ctl").args(args);
    run_ok(&mut c)
}

fn stdout_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The one recording `ctl status --json` reports.
fn ctl_status(desk: &Desktop, cwd: &Path, obj: &str) -> serde_json::Value {
    let out = ctl_in(desk, cwd, &["status", "--json", obj]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    v["recordings"][0].clone()
}

/// Polls `ctl status --json` until `pred` holds; returns that status.
fn wait_ctl_status(
    desk: &Desktop,
    cwd: &Path,
    obj: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = ctl_status(desk, cwd, obj);
        if pred(&st) {
            return st;
        }
        assert!(Instant::now() < deadline, "{what}: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `zerocast ctl` is a thin client of the daemon: start → status --json says `recording` →
/// pause: `paused`, the recorded time stands still → resume → stop: the file lacks the pause.
#[test]
fn ctl_drives_the_daemon() {
    let _g = lock();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let _daemon = start_daemon(&desk);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path();
    let file = dir.join("ctl.mkv");
    let obj = stdout_line(&ctl_in(&desk, dir, &["start", "-o", "ctl.mkv"]));
    assert!(
        obj.starts_with("/org/zerocast/Recorder1/recording/"),
        "{obj}"
    );
    let st = wait_ctl_status(&desk, dir, &obj, "1.5 s recorded", |s| {
        s["duration"].as_f64().unwrap_or(0.0) >= 1.5
    });
    assert_eq!(st["state"], "recording", "{st}");
    assert_eq!(st["object"], obj.as_str(), "{st}");
    assert_eq!(
        st["path"],
        file.to_str().unwrap(),
        "relative -o from the cwd: {st}"
    );
    assert!(st["frames"].as_u64().unwrap() > 0, "{st}");

    ctl_in(&desk, dir, &["pause", &obj]);
    // Frames captured before the pause may still be in the encoder's queue and be counted just
    // after it (117 vs 116 seen under load): the count must settle — two reads 300 ms apart
    // agree — and then stand still. A pause that kept capturing never settles at 30 fps.
    let settle = Instant::now() + Duration::from_secs(10);
    let mut paused = ctl_status(&desk, dir, &obj);
    loop {
        assert_eq!(paused["state"], "paused", "{paused}");
        std::thread::sleep(Duration::from_millis(300));
        let again = ctl_status(&desk, dir, &obj);
        if again["frames"] == paused["frames"] {
            break;
        }
        assert!(
            Instant::now() < settle,
            "frames still counted 10 s into the pause: {paused} → {again}"
        );
        paused = again;
    }
    // The pause itself: 2 s of wall time that must not reach the file.
    std::thread::sleep(Duration::from_secs(2));
    let still = ctl_status(&desk, dir, &obj);
    assert_eq!(still["state"], "paused", "{still}");
    assert!(
        still["duration"].as_f64().unwrap() - paused["duration"].as_f64().unwrap() < 0.2,
        "the recorded time moved while paused: {paused} → {still}"
    );
    assert_eq!(still["frames"], paused["frames"], "frames while paused");

    ctl_in(&desk, dir, &["resume", &obj]);
    assert_eq!(ctl_status(&desk, dir, &obj)["state"], "recording");
    let before = paused["duration"].as_f64().unwrap();
    let st = wait_ctl_status(&desk, dir, &obj, "1.5 s more recorded", |s| {
        s["duration"].as_f64().unwrap_or(0.0) >= before + 1.5
    });
    let recorded = st["duration"].as_f64().unwrap();
    let stopped = ctl_in(&desk, dir, &["stop", &obj]);
    assert_eq!(stdout_line(&stopped), file.to_str().unwrap());
    decodes(&file);
    let p = ffprobe(&file);
    // ~3 s recorded around a 2 s pause: the file is the recorded time, not the wall time.
    assert!(
        p.duration >= recorded - 0.3 && p.duration < recorded + 1.0,
        "{recorded:.1} s recorded (the pause left out): {p:?}"
    );
    // Stopping again is a named error and a non-zero exit.
    let again = zerocast(&desk)
        .args(["ctl", "stop", &obj])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("org.zerocast.Error."),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// `ctl save-replay` writes the last seconds while the replay goes on; `ctl keep` turns the
/// replay into a recording that starts with what the ring held; `ctl stop` ends it there.
#[test]
fn ctl_save_replay_and_keep() {
    let _g = lock();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let _daemon = start_daemon(&desk);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path();
    let obj = stdout_line(&ctl_in(
        &desk,
        dir,
        &["start", "--replay", "3", "--fps", "30", "-o", "never.mkv"],
    ));
    wait_ctl_status(&desk, dir, &obj, "5 s in the replay", |s| {
        s["duration"].as_f64().unwrap_or(0.0) >= 5.0
    });

    let saved = ctl_in(
        &desk,
        dir,
        &["save-replay", &obj, "-o", "clip.mkv", "--seconds", "2"],
    );
    let clip = dir.join("clip.mkv");
    assert_eq!(stdout_line(&saved), clip.to_str().unwrap());
    let said = String::from_utf8_lossy(&saved.stderr);
    assert!(
        said.contains("saved 2.") || said.contains("saved 1.9"),
        "{said}"
    );
    decodes(&clip);
    let p = ffprobe(&clip);
    assert!(
        (1.8..=3.2).contains(&p.duration),
        "a 2 s clip (from a keyframe): {p:?}"
    );
    let layout = Layout::new(1280, 720);
    assert_matches_screen(&frame_rgb(&clip, 1.0, 1280, 720), &desk, layout);
    // The replay goes on, nothing written for it.
    let st = ctl_status(&desk, dir, &obj);
    assert_eq!(st["state"], "recording", "{st}");
    assert!(!dir.join("never.mkv").exists());

    let kept = ctl_in(&desk, dir, &["keep", &obj, "-o", "kept.mkv"]);
    let kept_file = dir.join("kept.mkv");
    assert_eq!(stdout_line(&kept), kept_file.to_str().unwrap());
    let at_keep = ctl_status(&desk, dir, &obj)["duration"].as_f64().unwrap();
    wait_ctl_status(&desk, dir, &obj, "2 s after keep", |s| {
        s["duration"].as_f64().unwrap_or(0.0) >= at_keep + 2.0
    });
    // No longer a replay.
    let again = zerocast(&desk)
        .current_dir(dir)
        .args(["ctl", "save-replay", &obj])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("NotReplay"),
        "{err}"
    );
    let stopped = ctl_in(&desk, dir, &["stop", &obj]);
    assert_eq!(stdout_line(&stopped), kept_file.to_str().unwrap());
    decodes(&kept_file);
    let p = ffprobe(&kept_file);
    // The ring (3–4 s) then ~2 s live: longer than what was recorded after keep.
    assert!((4.5..=7.5).contains(&p.duration), "{p:?}");
    let c = frame_counters(&kept_file, layout);
    let body = &c[..c.len() - 1];
    assert!(
        body.windows(2).all(|w| w[1] > w[0]),
        "repeated or out-of-order frames: {c:?}"
    );
    assert!(!dir.join("never.mkv").exists());
}

/// The user cancels the portal's source selection: `Start` fails with `PortalCancelled`, no file
/// is left behind, and the next `Start` (selection allowed again) records.
#[test]
fn cancelled_selection_is_portal_cancelled() {
    let _g = lock();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let _daemon = start_daemon(&desk);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("x.mkv");
    desk.cancel_source_selection(true).unwrap();
    let conn = zbus::blocking::connection::Builder::address(desk.bus_address())
        .unwrap()
        .build()
        .unwrap();
    let m = zbus::blocking::Proxy::new(&conn, NAME, MANAGER, NAME).unwrap();
    let opts: HashMap<&str, Value<'_>> = HashMap::from([
        ("path", Value::from(file.to_str().unwrap())),
        ("restore", Value::from(false)),
    ]);
    match m.call::<_, _, OwnedObjectPath>("Start", &(opts.clone(),)) {
        Err(zbus::Error::MethodError(n, msg, _)) => {
            assert_eq!(n.as_str(), "org.zerocast.Error.PortalCancelled", "{msg:?}")
        }
        r => panic!("expected PortalCancelled, got {r:?}"),
    }
    assert!(!file.exists());
    desk.cancel_source_selection(false).unwrap();
    let obj: OwnedObjectPath = m.call("Start", &(opts,)).expect("second Start records");
    wait_recorded(&desk, obj.as_str(), 1.0);
    let (ok, reply) = call(&desk, obj.as_str(), "org.zerocast.Recording1", "Stop", &[]);
    assert!(ok, "{reply}");
    decodes(&file);
}

/// The restore token stands for the monitor chosen; when the desktop's layout changes between
/// two recordings (sway: the output's mode, 1280×720 → 1024×768), the restored session says so
/// by name — a log line of `record` and the `Warnings` property of a D-Bus recording, each
/// pointing at `--no-restore` — and still records. (A moved output would do too, but
/// xdg-desktop-portal-wlr 0.7 goes on reporting the position it saw at its start.)
#[test]
fn restored_source_of_another_size_is_named() {
    let _g = lock();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let out = tempfile::tempdir().unwrap();
    let state = state_home(&desk);
    let token = state.join("zerocast/restore-token-monitor");
    let record = |name: &str| {
        let o = run_ok(
            zerocast(&desk)
                .args(["record", "--duration", "1", "-o"])
                .arg(out.path().join(name)),
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // The first recording chooses (xdpw's chooser) and stores what it chose.
    let log = record("a.mkv");
    assert!(!log.contains("restored-source-differs"), "{log}");
    let stored = std::fs::read_to_string(&token).expect("token stored");
    assert!(
        stored.contains("source=monitor") && stored.contains("position=0,0"),
        "{stored}"
    );
    // Restored, same layout: no warning.
    let log = record("b.mkv");
    assert!(!log.contains("restored-source-differs"), "{log}");
    assert_eq!(desk.source_selections(), 1);

    set_output_mode(&desk, "1024x768");
    let log = record("c.mkv");
    assert_eq!(desk.source_selections(), 1, "the session was restored");
    let line = log
        .lines()
        .find(|l| l.contains("restored-source-differs"))
        .unwrap_or_else(|| {
            let outputs = swaymsg(&desk, &["-t", "get_outputs", "-r"]);
            panic!("no warning in the log:\n{log}\noutputs: {outputs}")
        });
    for part in [
        "is monitor at 0,0 1024x768",
        "monitor at 0,0 1280x720 was chosen",
        "size differs",
        "--no-restore",
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
    assert!(ffprobe(&out.path().join("c.mkv")).frames > 10);
    // The record stays the chosen source: the warning comes again, here on D-Bus.
    let _daemon = start_daemon(&desk);
    let file = out.path().join("d.mkv");
    let obj = start_at(&desk, &file);
    let warnings = get(&desk, &obj, "Warnings");
    assert!(
        warnings.starts_with("a{ss} 1 \"restored-source-differs\"")
            && warnings.contains("--no-restore"),
        "{warnings}"
    );
    // `ctl status` shows it under the recording, and in its JSON by name.
    let text = stdout_line(&ctl_in(&desk, out.path(), &["status", &obj]));
    let warned = text
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no warning line under the recording: {text}"));
    assert!(
        warned
            .trim_start()
            .starts_with("warning restored-source-differs: ")
            && warned.contains("--no-restore"),
        "{text}"
    );
    let w = &ctl_status(&desk, out.path(), &obj)["warnings"]["restored-source-differs"];
    assert!(
        w.as_str().is_some_and(|m| m.contains("--no-restore")),
        "{w}"
    );
    let (ok, o) = call(&desk, &obj, "org.zerocast.Recording1", "Stop", &[]);
    assert!(ok, "{o}");
    // Choosing again (--no-restore) is the way out: it asks, and warns of nothing.
    let o = run_ok(
        zerocast(&desk)
            .args(["record", "--no-restore", "--duration", "1", "-o"])
            .arg(out.path().join("e.mkv")),
    );
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(!log.contains("restored-source-differs"), "{log}");
    assert_eq!(desk.source_selections(), 2);
}
