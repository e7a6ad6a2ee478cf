//! The real `zerocast daemon` inside a test desktop, and what `/proc` says about it.

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use zerocast_testdesk::Desktop;

use super::{signal_and_wait, zerocast};

pub const NAME: &str = "org.zerocast.Recorder1";
pub const MANAGER: &str = "/org/zerocast/Recorder1";
pub const RECORDING: &str = "org.zerocast.Recording1";

/// `zerocast daemon`, owning [`NAME`]; SIGTERM (finalizes running recordings) and reaped on drop.
pub struct Daemon {
    pub child: Child,
}

impl Daemon {
    /// Starts the daemon in `desk`'s environment and waits until it owns its bus name. Its log
    /// goes to `zerocast-daemon.log` in the desktop's log dir (kept when a test fails).
    pub fn start(desk: &Desktop) -> Daemon {
        let log =
            std::fs::File::create(desk.logs_dir().join("zerocast-daemon.log")).expect("daemon log");
        let child = zerocast(desk)
            .arg("daemon")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !desk.name_has_owner(NAME).unwrap_or(false) {
            assert!(Instant::now() < deadline, "daemon did not take {NAME}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = signal_and_wait(&mut self.child, libc::SIGTERM, Duration::from_secs(10));
    }
}

/// Open file descriptors of a process (`/proc/PID/fd` entries).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A `kB` field of `/proc/PID/status`, e.g. `VmRSS`, `RssAnon`, `RssFile`.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `VmRSS` of a process in kB.
pub fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS")
}

/// Threads of a process (`/proc/PID/task` entries).
pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `busctl --user ARGS` in `desk`'s session.
pub fn busctl(desk: &Desktop, args: &[&str]) -> Output {
    desk.command("busctl")
        .arg("--user")
        .args(args)
        .output()
        .expect("busctl")
}

/// `busctl call` on the daemon: (success, stdout + stderr, trimmed).
pub fn call(desk: &Desktop, obj: &str, iface: &str, method: &str, rest: &[&str]) -> (bool, String) {
    let mut args = vec!["--timeout=60", "call", "--", NAME, obj, iface, method];
    args.extend_from_slice(rest);
    let o = busctl(desk, &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text.trim().to_owned())
}

/// A property of a recording object, as busctl prints it (`s "recording"`).
pub fn get(desk: &Desktop, obj: &str, prop: &str) -> String {
    let o = busctl(desk, &["get-property", NAME, obj, RECORDING, prop]);
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}
