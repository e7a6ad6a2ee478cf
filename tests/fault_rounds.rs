//! Fault rounds on the test desktop (sway, the portal, PipeWire), each fault repeated and
//! counted, one summary line:
//!
//! - `zerocast record` SIGKILLed mid-recording, for mkv, mp4 (fragmented) and webm: does the
//!   file exist, and does it decode to its end (`ffmpeg -xerror` over the whole file)?
//! - the daemon (D-Bus activated, as a user's is) SIGKILLed mid-recording: does its file
//!   decode, and does the next `Start` activate a new daemon that records?
//! - `zerocast record` stopped (SIGSTOP) for 5 s and continued (SIGCONT): does the recording
//!   go on (the file grows after SIGCONT, SIGTERM then exits 0), and does the file decode?
//!
//! PipeWire or the compositor dying, and a full disk, are tested once each in record_e2e.rs.
//!
//! - CI: `fault_rounds_short` (2 rounds).
//! - Full: `ZEROCAST_FAULT_ROUNDS=20 cargo test --test fault_rounds -- --ignored --nocapture`
//!   (`fault_rounds_full`, 20 rounds by default).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{MANAGER, NAME, RECORDING};
use common::*;
use zbus::zvariant::{OwnedObjectPath, Value};
use zerocast_testdesk::{session, Desktop, DesktopOptions};

/// What a file left by a fault holds.
#[derive(Debug)]
#[allow(dead_code, reason = "bytes and said are printed with the failures")]
struct Left {
    exists: bool,
    bytes: u64,
    /// `ffmpeg -xerror` decoded the whole file without an error.
    decodes: bool,
    frames: u64,
    /// What ffmpeg said (empty when it decoded cleanly).
    said: String,
}

impl Left {
    fn playable(&self) -> bool {
        self.exists && self.decodes && self.frames > 0
    }
}

fn inspect(file: &Path) -> Left {
    let bytes = std::fs::metadata(file).map(|m| m.len()).ok();
    let Some(bytes) = bytes else {
        return Left {
            exists: false,
            bytes: 0,
            decodes: false,
            frames: 0,
            said: "no file".into(),
        };
    };
    // Decodes every frame and fails at the first error, a truncated last frame included.
    // One output frame per decoded frame with its own timestamp: ffmpeg's output side would
    // otherwise complain about the VFR input's timestamps ("non monotonically increasing dts
    // to muxer"), which says nothing about the file.
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(file)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "1:1000000",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    let said = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.starts_with("[null @"))
        .collect::<Vec<_>>()
        .join("\n");
    let decodes = o.status.success() && said.is_empty();
    // ffprobe reads what ffmpeg just decoded cleanly.
    let frames = if decodes { ffprobe(file).frames } else { 0 };
    Left {
        exists: true,
        bytes,
        decodes,
        frames,
        said,
    }
}

/// Recorded for at least `secs` after frames reached the file.
fn record_a_while(file: &Path, secs: f64) {
    wait_for_data(file, 10_000);
    std::thread::sleep(Duration::from_secs_f64(secs));
}

/// `zerocast record -o FILE` SIGKILLed mid-recording.
fn kill_record(desk: &Desktop, file: &Path) -> Left {
    let mut child = spawn_record(desk, &["--fps", "30"], file);
    // Past the first mp4 fragment (one at least every second).
    record_a_while(file, 1.5);
    let res = signal_and_wait(&mut child, libc::SIGKILL, Duration::from_secs(10));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&res.status),
        Some(libc::SIGKILL),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&res.stderr)
    );
    inspect(file)
}

/// The daemon round: (the killed daemon's file, the next Start's file after it was stopped).
fn kill_daemon(desk: &Desktop, dir: &Path, round: usize) -> (Left, Left) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = zbus::connection::Builder::address(desk.bus_address())
            .unwrap()
            .build()
            .await
            .unwrap();
        let m = zbus::Proxy::new(&conn, NAME, MANAGER, NAME).await.unwrap();
        let start = |name: String| {
            let m = &m;
            let conn = &conn;
            async move {
                let file = dir.join(name);
                let opts: HashMap<&str, Value<'_>> = HashMap::from([
                    ("path", Value::from(file.display().to_string())),
                    ("framerate", Value::U32(30)),
                ]);
                // Activates the daemon when none runs; waits for the first frame.
                let obj: OwnedObjectPath = m
                    .call("Start", &(opts,))
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: Start: {e}"));
                let rec = zbus::Proxy::new(conn, NAME, obj.to_string(), RECORDING)
                    .await
                    .unwrap();
                let deadline = Instant::now() + Duration::from_secs(20);
                while rec.get_property::<u64>("Frames").await.unwrap_or(0) < 30 {
                    assert!(Instant::now() < deadline, "round {round}: no frames");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (file, rec)
            }
        };
        let (killed_file, _) = start(format!("daemon-{round}.mkv")).await;
        // Mid-recording as for `zerocast record`: data in the file, then 1.5 s more. (Killed
        // as soon as 30 frames were counted, ≈ 1 s in, 4 of 20 files held only the 538-byte
        // header: the first cluster, ≤ 1 s, was still in the muxer's memory.)
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&killed_file).map_or(0, |m| m.len()) < 10_000 {
            assert!(Instant::now() < deadline, "round {round}: nothing written");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let pid = session::kill_name_owner(desk, NAME, libc::SIGKILL, Duration::from_secs(10))
            .expect("SIGKILL the daemon");
        let killed = inspect(&killed_file);
        let (next_file, rec) = start(format!("daemon-{round}-next.mkv")).await;
        let new_pid = session::name_owner_pid(desk, NAME).unwrap();
        assert!(
            new_pid.is_some_and(|p| p != pid),
            "round {round}: the next Start was not served by a new daemon ({pid} → {new_pid:?})"
        );
        let _: String = rec.call("Stop", &()).await.expect("Stop");
        (killed, inspect(&next_file))
    })
}

/// `zerocast record` stopped for 5 s: (it went on after SIGCONT, its exit status after SIGTERM,
/// the file).
fn stop_and_continue(desk: &Desktop, file: &Path) -> (bool, Option<i32>, Left) {
    let mut child = spawn_record(desk, &["--fps", "30"], file);
    record_a_while(file, 1.0);
    let pid = child.id() as i32;
    // SAFETY: kill(2) on our own child's pid, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(5));
    let at_cont = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    // Going on: 100 kB more within 20 s (30 fps of the painter's 720p is ~100 kB a second)
    // while the process lives.
    let deadline = Instant::now() + Duration::from_secs(20);
    let went_on = loop {
        let now = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        if now >= at_cont + 100_000 {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let res = signal_and_wait(&mut child, libc::SIGTERM, Duration::from_secs(20));
    if !res.status.success() {
        eprintln!(
            "fault_rounds: after SIGSTOP/SIGCONT: {}: {}",
            res.status,
            String::from_utf8_lossy(&res.stderr)
        );
    }
    (went_on, res.status.code(), inspect(file))
}

#[derive(Default)]
struct Tally {
    rounds: usize,
    /// Playable files per kind, and the failures with what was seen.
    playable: HashMap<&'static str, usize>,
    /// The fewest frames a file of each kind held.
    frames: HashMap<&'static str, u64>,
    failures: Vec<String>,
}

impl Tally {
    fn count(&mut self, kind: &'static str, round: usize, left: &Left) {
        let f = self.frames.entry(kind).or_insert(u64::MAX);
        *f = (*f).min(left.frames);
        let n = self.playable.entry(kind).or_default();
        if left.playable() {
            *n += 1;
        } else {
            self.failures
                .push(format!("round {round}: {kind}: {left:?}"));
        }
    }
    fn got(&self, kind: &str) -> String {
        format!(
            "{}/{} (≥ {} frames)",
            self.playable.get(kind).copied().unwrap_or(0),
            self.rounds,
            self.frames.get(kind).copied().unwrap_or(0)
        )
    }
}

fn fault_rounds(rounds: usize) {
    let t0 = Instant::now();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    session::install_activatable(&desk, NAME, &format!("{} daemon", zerocast_bin().display()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Tally {
        rounds,
        ..Default::default()
    };
    let mut went_on = 0;
    let mut exit0 = 0;
    for round in 1..=rounds {
        for (kind, ext) in [
            ("record SIGKILL mkv", "mkv"),
            ("record SIGKILL mp4", "mp4"),
            ("record SIGKILL webm", "webm"),
        ] {
            let left = kill_record(&desk, &dir.path().join(format!("kill-{round}.{ext}")));
            t.count(kind, round, &left);
        }
        let (killed, next) = kill_daemon(&desk, dir.path(), round);
        t.count("daemon SIGKILL file", round, &killed);
        t.count("next Start after it", round, &next);
        let (on, code, left) =
            stop_and_continue(&desk, &dir.path().join(format!("stop-{round}.mkv")));
        went_on += usize::from(on);
        exit0 += usize::from(code == Some(0));
        if !on || code != Some(0) {
            t.failures.push(format!(
                "round {round}: SIGSTOP 5 s: went on {on}, exit {code:?}"
            ));
        }
        t.count("SIGSTOP 5 s file", round, &left);
        println!(
            "fault_rounds: round {round} done at {:.0} s",
            t0.elapsed().as_secs_f64()
        );
    }
    println!(
        "fault_rounds: {rounds} rounds: zerocast record SIGKILL: mkv {} playable, mp4 {}, webm {}; \
         daemon SIGKILL: its file {} playable, the next Start (a new daemon) {}; SIGSTOP 5 s + \
         SIGCONT: went on {went_on}/{rounds}, exit 0 after SIGTERM {exit0}/{rounds}, playable {}; \
         failures {}; total {:.0} s",
        t.got("record SIGKILL mkv"),
        t.got("record SIGKILL mp4"),
        t.got("record SIGKILL webm"),
        t.got("daemon SIGKILL file"),
        t.got("next Start after it"),
        t.got("SIGSTOP 5 s file"),
        t.failures.len(),
        t0.elapsed().as_secs_f64(),
    );
    assert!(t.failures.is_empty(), "{:#?}", t.failures);
    // The daemon the last round started: end it (it is the bus's child, not ours).
    let _ = session::kill_name_owner(&desk, NAME, libc::SIGTERM, Duration::from_secs(10));
}

/// CI: 2 rounds.
#[test]
fn fault_rounds_short() {
    fault_rounds(2);
}

/// `ZEROCAST_FAULT_ROUNDS` rounds (default 20).
#[test]
#[ignore = "faults, 20 rounds: ZEROCAST_FAULT_ROUNDS=20 cargo test --test fault_rounds -- --ignored --nocapture"]
fn fault_rounds_full() {
    let rounds = std::env::var("ZEROCAST_FAULT_ROUNDS")
        .ok()
        .map(|s| s.trim().parse().expect("ZEROCAST_FAULT_ROUNDS: a number"))
        .unwrap_or(20);
    fault_rounds(rounds);
}
