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
//! - [`MORE_FAULTS`], each mid-recording through `zerocast record` or the daemon: PipeWire,
//!   sway, xdg-desktop-portal-wlr or xdg-desktop-portal SIGKILLed (a fresh desktop for what
//!   follows), the output on a 64 KiB tmpfs that fills, the output's folder removed. Counted:
//!   the file playable (where the fault leaves one), and the failure named — `record`'s exit
//!   code and the words of its last stderr line, the daemon's `Failed` error name ([`expected`]).
//!
//! - CI: `fault_rounds_short` (2 rounds; [`MORE_FAULTS`] 1 round, ~45 s of it).
//! - Full: `ZEROCAST_FAULT_ROUNDS=20 cargo test --test fault_rounds -- --ignored --nocapture`
//!   (`fault_rounds_full`, 20 rounds by default; `ZEROCAST_FAULT_KILL_ROUNDS=N` runs N rounds of
//!   the SIGKILL/SIGSTOP faults instead).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{MANAGER, NAME, RECORDING};
use common::*;
use zbus::zvariant::{OwnedObjectPath, Value};
use zerocast_testdesk::{session, Component, Desktop, DesktopOptions};

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

/// A fault that ends (or should end) a recording from outside: what breaks, and through which
/// surface the recording was started.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// The PipeWire daemon SIGKILLed.
    PipeWire,
    /// sway SIGKILLed.
    Compositor,
    /// xdg-desktop-portal-wlr (the backend that made the stream) SIGKILLed.
    PortalBackend,
    /// xdg-desktop-portal (the frontend) SIGKILLed.
    PortalFrontend,
    /// The output on a 256 KiB tmpfs: it fills mid-recording.
    DiskFull,
    /// The output's directory removed (`rm -r`) mid-recording.
    DirRemoved,
}

impl Fault {
    /// Whether the desktop is broken afterwards (the next round needs a fresh one).
    fn kills_the_desktop(self) -> bool {
        matches!(
            self,
            Fault::PipeWire | Fault::Compositor | Fault::PortalBackend | Fault::PortalFrontend
        )
    }
}

/// What a surface said when a fault hit its recording.
#[derive(Debug)]
#[allow(dead_code, reason = "printed with the failures")]
struct Said {
    /// The recording ended by itself within 15 s of the fault (else it was stopped).
    ended: bool,
    /// `zerocast record`: its exit code and last stderr line. The daemon: `Failed(name)` or
    /// `Finished`.
    what: String,
    /// Whether the failure was named: the expected exit code and words, or the expected
    /// `org.zerocast.Error.*` name (see [`expected`]).
    named: bool,
}

/// What each surface must say for each fault: (exit code, words in `zerocast record`'s last
/// line), and the daemon's signal; `None`: the recording goes on (stopped as a user would, it
/// must then end as usual, exit 0 or `Stop` answered).
fn expected(fault: Fault) -> Option<((i32, &'static str), &'static str)> {
    match fault {
        // The stream ends: the file is saved and the exit status says "saved, stream ended".
        Fault::PipeWire | Fault::Compositor | Fault::PortalBackend => {
            Some(((3, "stream ended"), "Failed(org.zerocast.Error.StreamLost)"))
        }
        // The frontend only brokered the session: the stream is PipeWire's and the backend's,
        // and both still run.
        Fault::PortalFrontend => None,
        Fault::DiskFull => Some((
            (1, "out of disk space"),
            "Failed(org.zerocast.Error.OutOfDiskSpace)",
        )),
        Fault::DirRemoved => Some((
            (1, "was deleted while recording"),
            "Failed(org.zerocast.Error.OutputNotWritable)",
        )),
    }
}

/// How long a fault's recording may take to end by itself.
fn ends_within(fault: Fault) -> Duration {
    if expected(fault).is_some() {
        Duration::from_secs(15)
    } else {
        // Going on: 3 s more of it is enough to tell.
        Duration::from_secs(3)
    }
}

/// A small tmpfs mounted on a directory for the length of a round (root only: the daemon, a
/// child of the bus, must see it, so no private namespace here).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mount a tmpfs on {}", dir.display());
        Some(Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it open (a recorder that did not exit): detach it anyway,
            // a mount left behind would outlive the test.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Applies `fault` to the running recording whose output is `file`.
fn apply(desk: &Desktop, fault: Fault, file: &Path) {
    let kill = |c| {
        desk.signal(c, libc::SIGKILL)
            .unwrap_or_else(|e| panic!("{fault:?}: {e:#}"))
    };
    match fault {
        Fault::PipeWire => kill(Component::PipeWire),
        Fault::Compositor => kill(Component::Sway),
        Fault::PortalBackend => kill(Component::Xdpw),
        Fault::PortalFrontend => kill(Component::Portal),
        // The tmpfs fills by itself.
        Fault::DiskFull => {}
        Fault::DirRemoved => std::fs::remove_dir_all(file.parent().unwrap()).unwrap(),
    }
}

/// `zerocast record` hit by `fault` mid-recording.
fn record_fault(desk: &Desktop, fault: Fault, file: &Path) -> (Said, Left) {
    let mut child = zerocast(desk)
        // Only what a user sees: the error line is the last line.
        .env("ZEROCAST_LOG", "off")
        .args(["record", "--fps", "30", "-o"])
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn zerocast record");
    if fault == Fault::DiskFull {
        // 64 KiB is a few seconds of the painter at 30 fps (~10 kB/s): frames first, then the
        // full disk.
        wait_for_data(file, 10_000);
    } else {
        record_a_while(file, 1.5);
    }
    apply(desk, fault, file);
    let deadline = Instant::now() + ends_within(fault);
    let ended = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Went on regardless: stop it as a user would (signal 0 only reaps what already ended).
    let sig = if ended { 0 } else { libc::SIGTERM };
    let res = signal_and_wait(&mut child, sig, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&res.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    let named = match expected(fault) {
        Some(((code, words), _)) => {
            ended && res.status.code() == Some(code) && line.contains(words)
        }
        None => !ended && res.status.code() == Some(0),
    };
    let what = match res.status.code() {
        Some(c) => format!("exit {c}: {line}"),
        None => format!("{}: {line}", res.status),
    };
    let what = if ended {
        what
    } else {
        format!("went on; SIGTERM: {what}")
    };
    (Said { ended, what, named }, inspect(file))
}

/// A daemon recording (D-Bus `Start`, the daemon activated as a user's is) hit by `fault`.
fn daemon_fault(desk: &Desktop, fault: Fault, file: &Path) -> (Said, Left) {
    use futures_util::StreamExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let said = rt.block_on(async {
        let conn = zbus::connection::Builder::address(desk.bus_address())
            .unwrap()
            .build()
            .await
            .unwrap();
        let m = zbus::Proxy::new(&conn, NAME, MANAGER, NAME).await.unwrap();
        let opts: HashMap<&str, Value<'_>> = HashMap::from([
            ("path", Value::from(file.display().to_string())),
            ("framerate", Value::U32(30)),
        ]);
        let obj: OwnedObjectPath = m
            .call("Start", &(opts,))
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: Start: {e}"));
        let rec = zbus::Proxy::new(&conn, NAME, obj.to_string(), RECORDING)
            .await
            .unwrap();
        let mut failed = rec.receive_signal("Failed").await.unwrap();
        let mut finished = rec.receive_signal("Finished").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(file).map_or(0, |m| m.len()) < 10_000 {
            assert!(Instant::now() < deadline, "{fault:?}: nothing written");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if fault != Fault::DiskFull {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        apply(desk, fault, file);
        let end = tokio::time::timeout(ends_within(fault), async {
            tokio::select! {
                Some(s) = failed.next() => {
                    let (name, msg): (String, String) = s.body().deserialize().unwrap();
                    (format!("Failed({name})"), msg)
                }
                Some(_) = finished.next() => ("Finished".to_string(), String::new()),
            }
        })
        .await;
        let signal = expected(fault).map(|(_, s)| s);
        match end {
            Ok((sig, msg)) => Said {
                ended: true,
                named: Some(sig.as_str()) == signal,
                what: format!("{sig}: {msg}"),
            },
            Err(_) => {
                let stopped: zbus::Result<String> = rec.call("Stop", &()).await;
                Said {
                    ended: false,
                    named: signal.is_none() && stopped.is_ok(),
                    what: format!("went on; Stop: {stopped:?}"),
                }
            }
        }
    });
    (said, inspect(file))
}

/// One fault through one surface: its file and what was said.
fn one_fault(
    desk: &Desktop,
    fault: Fault,
    daemon: bool,
    dir: &Path,
    round: usize,
) -> Option<(Said, Left)> {
    let surface = if daemon { "daemon" } else { "record" };
    let sub = dir.join(format!("{fault:?}-{surface}-{round}"));
    let _tmpfs = if fault == Fault::DiskFull {
        // CI runs as root; elsewhere the full disk is left out, and said so.
        Some(Tmpfs::mount(&sub).or_else(|| {
            zerocast_testdesk::skipped(
                "fault_rounds: disk full",
                "mounting a tmpfs needs root (tests/record_e2e.rs tests a full disk in a user namespace)",
            );
            None
        })?)
    } else {
        std::fs::create_dir_all(&sub).unwrap();
        None
    };
    let file = sub.join("out.mkv");
    // The file is inspected before the tmpfs goes (`_tmpfs` drops last).
    Some(if daemon {
        daemon_fault(desk, fault, &file)
    } else {
        record_fault(desk, fault, &file)
    })
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

/// The faults of issue 23 beyond SIGKILL/SIGSTOP, in round order, each through a surface
/// (`true`: a daemon recording): the ones that leave the desktop standing first.
const MORE_FAULTS: [(Fault, bool); 8] = [
    (Fault::DiskFull, false),
    (Fault::DiskFull, true),
    (Fault::DirRemoved, false),
    (Fault::DirRemoved, true),
    (Fault::PipeWire, false),
    (Fault::Compositor, true),
    (Fault::PortalBackend, false),
    (Fault::PortalFrontend, false),
];

/// Per fault and surface: files playable, failures named, and what was said (numbers and paths
/// folded so that the same words count once).
#[derive(Default)]
struct Said2 {
    rounds: usize,
    playable: usize,
    named: usize,
    said: std::collections::BTreeMap<String, usize>,
}

fn fold(s: &str, dir: &Path) -> String {
    let s = s.replace(&dir.display().to_string(), "DIR");
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn new_desktop() -> Desktop {
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    session::install_activatable(&desk, NAME, &format!("{} daemon", zerocast_bin().display()))
        .unwrap();
    desk
}

/// `rounds` rounds of the SIGKILL/SIGSTOP faults, and `more_rounds` of [`MORE_FAULTS`].
fn fault_rounds(rounds: usize, more_rounds: usize) {
    let t0 = Instant::now();
    let mut desk = new_desktop();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Tally {
        rounds,
        ..Default::default()
    };
    let mut went_on = 0;
    let mut exit0 = 0;
    let mut more: Vec<Said2> = MORE_FAULTS.iter().map(|_| Said2::default()).collect();
    let mut restarts = Duration::ZERO;
    for round in 1..=rounds.max(more_rounds) {
        if round <= rounds {
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
        }
        if round <= more_rounds {
            for (i, &(fault, daemon)) in MORE_FAULTS.iter().enumerate() {
                let Some((said, left)) = one_fault(&desk, fault, daemon, dir.path(), round) else {
                    continue;
                };
                let surface = if daemon { "daemon" } else { "record" };
                println!("fault_rounds: round {round}: {fault:?} ({surface}): {said:?}; {left:?}");
                let m = &mut more[i];
                m.rounds += 1;
                m.named += usize::from(said.named);
                // The removed directory took the file with it: playable means nothing there.
                let playable = fault == Fault::DirRemoved || left.playable();
                m.playable += usize::from(left.playable());
                *m.said.entry(fold(&said.what, dir.path())).or_default() += 1;
                if !said.named || !playable {
                    t.failures.push(format!(
                        "round {round}: {fault:?} ({surface}): {said:?}; {left:?}"
                    ));
                }
                if fault.kills_the_desktop() {
                    let r0 = Instant::now();
                    // A daemon of the broken desktop is ended with it (it is the bus's child).
                    let _ = session::kill_name_owner(
                        &desk,
                        NAME,
                        libc::SIGTERM,
                        Duration::from_secs(10),
                    );
                    drop(desk);
                    desk = new_desktop();
                    restarts += r0.elapsed();
                }
            }
        }
        println!(
            "fault_rounds: round {round} done at {:.0} s",
            t0.elapsed().as_secs_f64()
        );
    }
    let more_line = MORE_FAULTS
        .iter()
        .zip(&more)
        .map(|(&(fault, daemon), m)| {
            let surface = if daemon { "daemon" } else { "record" };
            let said = m
                .said
                .iter()
                .map(|(w, n)| format!("{n}× {w:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{fault:?} ({surface}): playable {}/{}, named {}/{} [{said}]",
                m.playable, m.rounds, m.named, m.rounds
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    println!(
        "fault_rounds: {rounds} rounds: zerocast record SIGKILL: mkv {} playable, mp4 {}, webm {}; \
         daemon SIGKILL: its file {} playable, the next Start (a new daemon) {}; SIGSTOP 5 s + \
         SIGCONT: went on {went_on}/{rounds}, exit 0 after SIGTERM {exit0}/{rounds}, playable {}; \
         {more_rounds} rounds: {more_line}; failures {}; desktop restarts {:.0} s; total {:.0} s",
        t.got("record SIGKILL mkv"),
        t.got("record SIGKILL mp4"),
        t.got("record SIGKILL webm"),
        t.got("daemon SIGKILL file"),
        t.got("next Start after it"),
        t.got("SIGSTOP 5 s file"),
        t.failures.len(),
        restarts.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
    );
    assert!(t.failures.is_empty(), "{:#?}", t.failures);
    // The daemon the last round started: end it (it is the bus's child, not ours).
    let _ = session::kill_name_owner(&desk, NAME, libc::SIGTERM, Duration::from_secs(10));
}

/// CI: 2 rounds.
#[test]
fn fault_rounds_short() {
    fault_rounds(2, 1);
}

/// `ZEROCAST_FAULT_ROUNDS` rounds (default 20).
#[test]
#[ignore = "faults, 20 rounds: ZEROCAST_FAULT_ROUNDS=20 cargo test --test fault_rounds -- --ignored --nocapture"]
fn fault_rounds_full() {
    let rounds = std::env::var("ZEROCAST_FAULT_ROUNDS")
        .ok()
        .map(|s| s.trim().parse().expect("ZEROCAST_FAULT_ROUNDS: a number"))
        .unwrap_or(20);
    // The SIGKILL/SIGSTOP rounds alone (their 20 rounds are in BENCHMARKS already; the others
    // need ~45 s a round).
    let kill_rounds = std::env::var("ZEROCAST_FAULT_KILL_ROUNDS")
        .ok()
        .map(|s| {
            s.trim()
                .parse()
                .expect("ZEROCAST_FAULT_KILL_ROUNDS: a number")
        })
        .unwrap_or(rounds);
    fault_rounds(kill_rounds, rounds);
}
