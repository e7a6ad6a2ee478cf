//! CPU benchmark (issue #2): frames per CPU-second and peak RSS of `zerocast record` against
//! wf-recorder and a portal + GStreamer pipeline, all recording the same headless test desktop
//! (1280×720 @ 120 Hz, painter at 60 fps) for 10 s with libx264 ultrafast, CRF 23, 4:2:0,
//! keyint 250.
//!
//! ```text
//! scripts/build-xdpw.sh                       # once, if target/xdpw/ is missing
//! cargo build --release -p zerocast -p zerocast-testdesk --bins
//! cargo run --release --example bench_cpu
//! ```
//!
//! CPU time and peak RSS come from `wait4(2)`'s rusage of each recorder process (exact, no
//! sampling; children of the measured process that it waited for are included). Compositor,
//! xdpw and PipeWire time is not included; their CPU over each run is printed separately.
//! Output: a table on stdout and `target/bench/cpu.json`.
//!
//! The GStreamer run needs a portal session held by a process inside the desktop's
//! environment: the example re-executes itself with `ZEROCAST_BENCH_MODE=gst`.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use zerocast_testdesk::{Component, Desktop, DesktopOptions};

const SECONDS: u64 = 10;
/// Fewer frames than this in a run means xdpw stalled the consumer (see tests/desktop/README.md).
const STALLED_BELOW: u64 = 60;

/// What `wait4` tells about one finished process.
#[derive(Debug, Clone, Default)]
struct Usage {
    status: i32,
    user_s: f64,
    sys_s: f64,
    max_rss_kb: i64,
    wall_s: f64,
}

impl Usage {
    fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

/// Spawns `cmd`, sends SIGINT after `stop_after` (if given), SIGKILL at `deadline`, and reaps it
/// with `wait4` for its exact rusage.
fn measure(mut cmd: Command, stop_after: Option<Duration>, deadline: Duration) -> Result<Usage> {
    let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let t0 = Instant::now();
    let mut interrupted = false;
    let mut killed = false;
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data; wait4 fills it in.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our own child, not reaped yet (std's Child never waits unless asked).
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return Ok(Usage {
                status,
                user_s: tv(ru.ru_utime),
                sys_s: tv(ru.ru_stime),
                max_rss_kb: ru.ru_maxrss,
                wall_s: t0.elapsed().as_secs_f64(),
            });
        }
        if r < 0 {
            bail!("wait4({pid}): {}", std::io::Error::last_os_error());
        }
        let el = t0.elapsed();
        if !interrupted && stop_after.is_some_and(|s| el >= s) {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGINT) };
            interrupted = true;
        }
        if !killed && el >= deadline {
            eprintln!("bench: pid {pid} still running after {deadline:?}, SIGKILL");
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exit_desc(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status:#x}")
    }
}

/// Frames and duration of the first video stream, decoded by ffprobe.
fn probe(path: &Path) -> Result<(u64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames:format=duration"])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .context("running ffprobe")?;
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("ffprobe {}: {}", path.display(), out.status))?;
    let frames = v["streams"][0]["nb_read_frames"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let dur = v["format"]["duration"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    Ok((frames, dur))
}

/// x264's settings string, which it stores in an SEI of the stream ("options: cabac=0 ...").
fn x264_options(path: &Path) -> Option<String> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(4 << 20)
        .read_to_end(&mut buf)
        .ok()?;
    let key = b"options: ";
    let start = buf.windows(key.len()).position(|w| w == key)? + key.len();
    let end = buf[start..].iter().position(|&b| b == 0 || b == b'\n')? + start;
    Some(String::from_utf8_lossy(&buf[start..end]).into_owned())
}

/// The x264 settings that matter for a like-for-like comparison.
fn x264_summary(opts: &str) -> String {
    const KEYS: [&str; 8] = [
        "threads",
        "lookahead_threads",
        "sliced_threads",
        "bframes",
        "keyint",
        "rc",
        "crf",
        "rc_lookahead",
    ];
    opts.split(' ')
        .filter(|kv| KEYS.iter().any(|k| kv.split('=').next() == Some(k)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// utime + stime of a live process, in seconds.
fn proc_cpu(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the ")" that ends comm: state is field 3, utime 14, stime 15.
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// CPU seconds used by sway, xdpw and PipeWire since `before`.
struct DesktopCpu(Vec<(u32, f64)>);

impl DesktopCpu {
    fn start(desk: &Desktop) -> DesktopCpu {
        let pids = [Component::Sway, Component::Xdpw, Component::PipeWire]
            .into_iter()
            .filter_map(|c| desk.pid(c));
        DesktopCpu(pids.map(|p| (p, proc_cpu(p))).collect())
    }
    fn elapsed(&self) -> f64 {
        self.0.iter().map(|(p, t)| proc_cpu(*p) - t).sum()
    }
}

/// One measured run of one tool.
#[derive(Debug, Default)]
struct Run {
    tool: String,
    command: String,
    frames_received: Option<u64>,
    frames_written: u64,
    frames_dropped: Option<u64>,
    usage: Usage,
    file_duration_s: f64,
    x264: Option<String>,
    desktop_cpu_s: f64,
    attempts: u32,
}

impl Run {
    fn fps_per_cpu(&self) -> f64 {
        self.frames_written as f64 / self.usage.cpu_s().max(1e-9)
    }
    fn rss_mb(&self) -> f64 {
        self.usage.max_rss_kb as f64 / 1024.0
    }
    fn json(&self) -> Value {
        json!({
            "tool": self.tool,
            "command": self.command,
            "frames_received": self.frames_received,
            "frames_written": self.frames_written,
            "frames_dropped": self.frames_dropped,
            "cpu_user_s": self.usage.user_s,
            "cpu_sys_s": self.usage.sys_s,
            "cpu_s": self.usage.cpu_s(),
            "frames_per_cpu_s": self.fps_per_cpu(),
            "peak_rss_mb": self.rss_mb(),
            "wall_s": self.usage.wall_s,
            "exit": exit_desc(self.usage.status),
            "file_duration_s": self.file_duration_s,
            "x264_options": self.x264,
            "desktop_cpu_s": self.desktop_cpu_s,
            "attempts": self.attempts,
        })
    }
}

fn cmd_string(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `once` and retries it once if it got (almost) no frames: xdpw 0.7 sometimes stalls the
/// first consumer of a new cast.
fn with_retry(tool: &str, mut once: impl FnMut() -> Result<Run>) -> Result<Run> {
    let mut run = once()?;
    run.attempts = 1;
    if run.frames_written < STALLED_BELOW {
        eprintln!(
            "bench: {tool}: only {} frames ({}), retrying once",
            run.frames_written,
            exit_desc(run.usage.status)
        );
        run = once()?;
        run.attempts = 2;
    }
    Ok(run)
}

fn fresh(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn log_file(dir: &Path, name: &str) -> Result<Stdio> {
    Ok(std::fs::File::create(dir.join(format!("{name}.log")))?.into())
}

fn run_zerocast(desk: &Desktop, bin: &Path, dir: &Path) -> Result<Run> {
    let out = dir.join("zerocast.mkv");
    let stats = dir.join("zerocast-stats.json");
    fresh(&out)?;
    fresh(&stats)?;
    let mut cmd = desk.command(bin);
    cmd.args(["record", "--no-restore", "--duration", &SECONDS.to_string()])
        .arg("-o")
        .arg(&out)
        .arg("--stats-json")
        .arg(&stats)
        .stdin(Stdio::null())
        .stdout(log_file(dir, "zerocast")?)
        .stderr(log_file(dir, "zerocast.err")?);
    let command = cmd_string(&cmd);
    let cpu = DesktopCpu::start(desk);
    let usage = measure(cmd, None, Duration::from_secs(SECONDS + 30))?;
    let desktop_cpu_s = cpu.elapsed();
    let s: Value = std::fs::read(&stats)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let (_, file_duration_s) = probe(&out).unwrap_or((0, 0.0));
    Ok(Run {
        tool: "zerocast".into(),
        command,
        frames_received: s["frames_received"].as_u64(),
        frames_written: s["frames_written"].as_u64().unwrap_or(0),
        frames_dropped: s["frames_dropped"].as_u64(),
        usage,
        file_duration_s,
        x264: x264_options(&out),
        desktop_cpu_s,
        attempts: 0,
    })
}

fn run_wf(desk: &Desktop, dir: &Path, threads: Option<u32>) -> Result<Run> {
    let name = match threads {
        Some(t) => format!("wf-recorder-t{t}"),
        None => "wf-recorder".into(),
    };
    let out = dir.join(format!("{name}.mkv"));
    fresh(&out)?;
    let mut cmd = desk.command("wf-recorder");
    cmd.args(["-c", "libx264", "-p", "preset=ultrafast", "-p", "crf=23"])
        .args(["-p", "g=250"]);
    if let Some(t) = threads {
        cmd.args(["-p", &format!("threads={t}")]);
    }
    // wf-recorder 0.3 ignores -x for libx264 and encodes 4:4:4; the filter forces 4:2:0.
    cmd.args(["-x", "yuv420p", "-F", "format=yuv420p", "-f"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(log_file(dir, &name)?)
        .stderr(log_file(dir, &format!("{name}.err"))?);
    let command = cmd_string(&cmd);
    let cpu = DesktopCpu::start(desk);
    let usage = measure(
        cmd,
        Some(Duration::from_secs(SECONDS)),
        Duration::from_secs(SECONDS + 20),
    )?;
    let desktop_cpu_s = cpu.elapsed();
    let (frames, file_duration_s) = probe(&out).unwrap_or((0, 0.0));
    Ok(Run {
        tool: name,
        command,
        frames_received: None,
        frames_written: frames,
        frames_dropped: None,
        usage,
        file_duration_s,
        x264: x264_options(&out),
        desktop_cpu_s,
        attempts: 0,
    })
}

/// Parent side of the GStreamer run: a child of this example, in the desktop's environment,
/// holds the portal session and measures gst-launch; it prints its figures as JSON.
fn run_gst(desk: &Desktop, dir: &Path, threads: Option<u32>) -> Result<Run> {
    let name = match threads {
        Some(t) => format!("gstreamer-t{t}"),
        None => "gstreamer".into(),
    };
    let out = dir.join(format!("{name}.mkv"));
    fresh(&out)?;
    let mut cmd = desk.command(std::env::current_exe()?);
    cmd.env("ZEROCAST_BENCH_MODE", "gst")
        .env("ZEROCAST_BENCH_OUT", &out)
        .env(
            "ZEROCAST_BENCH_THREADS",
            threads.map(|t| t.to_string()).unwrap_or_default(),
        )
        .stdin(Stdio::null())
        .stderr(log_file(dir, &format!("{name}.err"))?);
    let cpu = DesktopCpu::start(desk);
    let o = cmd.output().context("running the gst child")?;
    let desktop_cpu_s = cpu.elapsed();
    let v: Value = serde_json::from_slice(&o.stdout).with_context(|| {
        format!(
            "gst child ({}) printed no figures; see {}",
            o.status,
            dir.join(format!("{name}.err.log")).display()
        )
    })?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let usage = Usage {
        status: v["status"].as_i64().unwrap_or(-1) as i32,
        user_s: f("user_s"),
        sys_s: f("sys_s"),
        max_rss_kb: v["max_rss_kb"].as_i64().unwrap_or(0),
        wall_s: f("wall_s"),
    };
    let (frames, file_duration_s) = probe(&out).unwrap_or((0, 0.0));
    Ok(Run {
        tool: name,
        command: v["command"].as_str().unwrap_or("").to_string(),
        frames_received: None,
        frames_written: frames,
        frames_dropped: None,
        usage,
        file_duration_s,
        x264: x264_options(&out),
        desktop_cpu_s,
        attempts: 0,
    })
}

/// Child side of the GStreamer run (`ZEROCAST_BENCH_MODE=gst`).
fn gst_child() -> Result<()> {
    let out = std::env::var("ZEROCAST_BENCH_OUT").context("ZEROCAST_BENCH_OUT")?;
    let threads = std::env::var("ZEROCAST_BENCH_THREADS").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (session, stream) = rt.block_on(zerocast_portal::ScreencastSession::open(
        &zerocast_portal::SourceOptions {
            source: zerocast_portal::SourceType::Monitor,
            cursor: zerocast_portal::CursorMode::Embedded,
            restore: false,
        },
    ))?;
    let fd = stream.fd.as_raw_fd();
    // SAFETY: fd is open and ours; clearing FD_CLOEXEC lets gst-launch inherit it.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        bail!("fcntl: {}", std::io::Error::last_os_error());
    }
    let (w, h) = stream.size.unwrap_or((1280, 720));
    let mut x264 =
        "x264enc speed-preset=ultrafast pass=qual quantizer=23 key-int-max=250".to_string();
    if !threads.is_empty() {
        x264 += &format!(" threads={threads}");
    }
    let pipeline = format!(
        "pipewiresrc fd={fd} path={node} \
         stream-properties=props,media.type=Video,media.category=Capture,media.role=Screen \
         ! video/x-raw,format=BGRx,width={w},height={h} \
         ! videoconvert ! video/x-raw,format=I420 ! {x264} \
         ! matroskamux ! filesink location={out}",
        node = stream.node_id
    );
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-e")
        .args(pipeline.split(' ').filter(|s| !s.is_empty()))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let command = cmd_string(&cmd);
    let usage = measure(
        cmd,
        Some(Duration::from_secs(SECONDS)),
        Duration::from_secs(SECONDS + 20),
    )?;
    rt.block_on(session.close());
    drop(stream);
    println!(
        "{}",
        json!({
            "command": command,
            "status": usage.status,
            "user_s": usage.user_s,
            "sys_s": usage.sys_s,
            "max_rss_kb": usage.max_rss_kb,
            "wall_s": usage.wall_s,
        })
    );
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn main() -> Result<()> {
    if std::env::var("ZEROCAST_BENCH_MODE").as_deref() == Ok("gst") {
        return gst_child();
    }
    let target = target_dir();
    let bin = target.join("release/zerocast");
    if !bin.is_file() {
        bail!(
            "{} not found: run `cargo build --release -p zerocast --bins` first",
            bin.display()
        );
    }
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir)?;

    let desk = Desktop::start(DesktopOptions::default())?;
    eprintln!(
        "bench: desktop up in {:?} (1280x720@120Hz, painter 60 fps); {SECONDS} s per run",
        desk.startup_time()
    );
    let mut runs = Vec::new();
    runs.push(with_retry("zerocast", || run_zerocast(&desk, &bin, &dir))?);
    runs.push(with_retry("wf-recorder", || run_wf(&desk, &dir, None))?);
    runs.push(with_retry("gstreamer", || run_gst(&desk, &dir, None))?);
    // zerocast runs x264 with 1 thread at 720p; the others pick x264's automatic count. Also
    // measure them with 1 thread, like for like.
    runs.push(with_retry("wf-recorder-t1", || {
        run_wf(&desk, &dir, Some(1))
    })?);
    runs.push(with_retry("gstreamer-t1", || {
        run_gst(&desk, &dir, Some(1))
    })?);
    drop(desk);

    println!(
        "{:<16} {:>8} {:>8} {:>7} {:>7} {:>10} {:>8} {:>6} {:>8}  x264",
        "tool",
        "received",
        "written",
        "dropped",
        "CPU s",
        "frames/CPUs",
        "RSS MB",
        "file s",
        "desk CPU"
    );
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    for r in &runs {
        println!(
            "{:<16} {:>8} {:>8} {:>7} {:>7.2} {:>11.1} {:>8.1} {:>6.2} {:>8.2}  {}{}",
            r.tool,
            opt(r.frames_received),
            r.frames_written,
            opt(r.frames_dropped),
            r.usage.cpu_s(),
            r.fps_per_cpu(),
            r.rss_mb(),
            r.file_duration_s,
            r.desktop_cpu_s,
            r.x264.as_deref().map(x264_summary).unwrap_or_default(),
            if r.attempts > 1 { " (retried)" } else { "" },
        );
    }
    let z = &runs[0];
    let mut ratios = serde_json::Map::new();
    for r in &runs[1..] {
        let fpc = z.fps_per_cpu() / r.fps_per_cpu().max(1e-9);
        let rss = z.rss_mb() / r.rss_mb().max(1e-9);
        println!(
            "zerocast/{:<14} frames/CPU-s ×{fpc:.2}, peak RSS ×{rss:.2}",
            r.tool
        );
        ratios.insert(
            r.tool.clone(),
            json!({ "frames_per_cpu_s": fpc, "peak_rss": rss }),
        );
    }
    let report = json!({
        "desktop": "zerocast-testdesk 1280x720@120Hz, painter 60 fps",
        "seconds": SECONDS,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "runs": runs.iter().map(Run::json).collect::<Vec<_>>(),
        "ratios_zerocast_over": ratios,
    });
    let path = dir.join("cpu.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}
