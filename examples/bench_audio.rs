//! Audio benchmark (issue #13): A/V offset and the CPU cost of audio, zerocast against
//! `wf-recorder --audio` (PulseAudio API, through pipewire-pulse), in the same run, on the
//! same test desktop: `zerocast-avsync` flashes the screen and beeps at the same instant about
//! once a second; each file's flash onsets (blackdetect) and beep onsets (silencedetect) give the
//! offsets.
//!
//! ```text
//! scripts/build-xdpw.sh                       # once, if target/xdpw/ is missing
//! cargo build --release -p zerocast -p zerocast-testdesk --bins
//! cargo run --release --example bench_audio   # ZEROCAST_BENCH_SECONDS=N (default 30)
//! ```
//!
//! Runs: zerocast without audio, zerocast `--audio desktop` (Opus), wf-recorder with audio
//! from the speakers' monitor (its default codec for mkv audio), all libx264 ultrafast. CPU
//! time from `wait4(2)` rusage of each recorder process. Output: a table and
//! `target/bench/audio.json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use zerocast_testdesk::{audio, avsync, Desktop, DesktopOptions};

#[derive(Debug, Clone, Default)]
struct Usage {
    cpu_s: f64,
    max_rss_kb: i64,
    status: i32,
}

/// Spawns `cmd`, SIGINT after `stop_after`, SIGKILL 30 s later; exact rusage from wait4.
fn measure(mut cmd: Command, stop_after: Duration) -> Result<Usage> {
    let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let t0 = Instant::now();
    let (mut interrupted, mut killed) = (false, false);
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data; wait4 fills it in.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return Ok(Usage {
                cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
                max_rss_kb: ru.ru_maxrss,
                status,
            });
        }
        if r < 0 {
            bail!("wait4({pid}): {}", std::io::Error::last_os_error());
        }
        let el = t0.elapsed();
        if !interrupted && el >= stop_after {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGINT) };
            interrupted = true;
        }
        if !killed && el >= stop_after + Duration::from_secs(30) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn duration(path: &Path) -> f64 {
    Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0.0)
}

struct Run {
    name: String,
    usage: Usage,
    file_s: f64,
    offsets: Option<avsync::Offsets>,
}

impl Run {
    fn cpu_per_min(&self) -> f64 {
        self.usage.cpu_s / (self.file_s / 60.0)
    }
}

fn run(
    desk: &Desktop,
    dir: &Path,
    name: &str,
    mut cmd: Command,
    secs: u64,
    audio: bool,
) -> Result<Run> {
    let file = dir.join(format!("{name}.mkv"));
    let _ = std::fs::remove_file(&file);
    let av = avsync::binary().context("zerocast-avsync not built")?;
    let client = Killed(
        desk.command(av)
            .args(["--seconds", &(secs + 10).to_string(), "--lead-in-ms", "700"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    std::thread::sleep(Duration::from_millis(300));
    cmd.arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(
            dir.join(format!("{name}.out")),
        )?))
        .stderr(Stdio::from(std::fs::File::create(
            dir.join(format!("{name}.err")),
        )?));
    let usage = measure(cmd, Duration::from_secs(secs))?;
    drop(client);
    let offsets = if audio {
        Some(avsync::measure(&file, 0)?)
    } else {
        None
    };
    Ok(Run {
        name: name.into(),
        usage,
        file_s: duration(&file),
        offsets,
    })
}

/// A child killed and reaped when dropped (also on an error path).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn main() -> Result<()> {
    let secs: u64 = std::env::var("ZEROCAST_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let target = target_dir();
    let profile = if target.join("release/zerocast").is_file() {
        "release"
    } else {
        "debug"
    };
    let bin = target.join(profile).join("zerocast");
    if std::env::var_os("ZEROCAST_AVSYNC").is_none() {
        // SAFETY: single-threaded here, before anything reads the environment.
        unsafe {
            std::env::set_var(
                "ZEROCAST_AVSYNC",
                target.join(profile).join("zerocast-avsync"),
            )
        };
    }
    let desk = Desktop::start(DesktopOptions {
        painter_fps: None,
        ..DesktopOptions::default()
    })?;
    // wf-recorder speaks PulseAudio: pipewire-pulse in the desktop's environment.
    let _pulse = Killed(
        desk.command("pipewire-pulse")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("pipewire-pulse (apt: pipewire-pulse)")?,
    );
    let dir = target.join("bench/audio");
    std::fs::create_dir_all(&dir)?;
    let zc = |audio: bool| {
        let mut c = desk.command(&bin);
        c.args([
            "record",
            "--overwrite",
            "--codec",
            "h264",
            "--quality",
            "23",
        ]);
        if audio {
            c.args(["--audio", "desktop"]);
        }
        c.arg("-o");
        c
    };
    let mut runs = Vec::new();
    runs.push(run(&desk, &dir, "zerocast", zc(false), secs, false)?);
    runs.push(run(&desk, &dir, "zerocast-audio", zc(true), secs, true)?);
    let mut wf = desk.command("wf-recorder");
    wf.args([
        "-c",
        "libx264",
        "-p",
        "preset=ultrafast",
        "-p",
        "crf=23",
        "-p",
        "g=250",
    ])
    .arg(format!("--audio={}.monitor", audio::SPEAKERS))
    .args(["-x", "yuv420p", "-F", "format=yuv420p", "-f"]);
    runs.push(run(&desk, &dir, "wf-recorder-audio", wf, secs, true)?);

    println!("\n{secs} s per run, 1280×720 test desktop, flash+beep about once a second\n");
    println!(
        "{:<20} {:>8} {:>10} {:>9} {:>8} {:>8} {:>10} {:>7}",
        "recorder", "file s", "CPU s/min", "RSS MB", "med ms", "worst", "trend/min", "pairs"
    );
    for r in &runs {
        let (med, worst, slope, pairs) = match &r.offsets {
            Some(o) => (
                format!("{:+.1}", o.median() * 1e3),
                format!("{:.1}", o.worst_abs() * 1e3),
                format!("{:+.2}", o.slope_ms_per_min()),
                o.pairs.len().to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<20} {:>8.2} {:>10.3} {:>9.1} {:>8} {:>8} {:>10} {:>7}",
            r.name,
            r.file_s,
            r.cpu_per_min(),
            r.usage.max_rss_kb as f64 / 1024.0,
            med,
            worst,
            slope,
            pairs
        );
    }
    let base = runs[0].cpu_per_min();
    println!(
        "\naudio adds {:.3} CPU-s per recorded minute to zerocast (×{:.3} of the video-only run)",
        runs[1].cpu_per_min() - base,
        runs[1].cpu_per_min() / base
    );
    let json = json!(runs
        .iter()
        .map(|r| json!({
            "recorder": r.name,
            "file_s": r.file_s,
            "cpu_s": r.usage.cpu_s,
            "cpu_s_per_min": r.cpu_per_min(),
            "max_rss_kb": r.usage.max_rss_kb,
            "exit_status": r.usage.status,
            "offsets": r.offsets.as_ref().map(|o| json!({
                "median_ms": o.median() * 1e3,
                "median_abs_ms": o.median_abs() * 1e3,
                "worst_ms": o.worst_abs() * 1e3,
                "trend_ms_per_min": o.slope_ms_per_min(),
                "pairs": o.pairs.len(),
                "flashes": o.flashes.len(),
                "beeps": o.beeps.len(),
            })),
        }))
        .collect::<Vec<_>>());
    std::fs::write(
        target.join("bench/audio.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    Ok(())
}
