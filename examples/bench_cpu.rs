//! CPU benchmark (issues #2, #10): frames per CPU-second and peak RSS of `zerocast record`
//! against wf-recorder and a portal + GStreamer pipeline, all recording the same headless test
//! desktop (1280×720 @ 120 Hz, painter at 60 fps) with libx264 ultrafast, CRF 23, 4:2:0,
//! keyint 250, for two kinds of content:
//!
//! - `strip`: the painter's default, a 1/8 strip animates and the rest is static;
//! - `full-motion`: a text page scrolls 4 rows per frame, every pixel changes every frame.
//!
//! For each, an **encoder-only floor**: libx264 opened through the recorder's own `Encoder`
//! with the recorder's settings, fed the same frames (the painter's pixels, regenerated from
//! `zerocast_testdesk::layout`) as the I420 the recorder's converter makes of them, without
//! capture; so "zerocast / floor" is one number (goal on full motion: ≥ 90 %). The parent checks
//! that x264's settings SEI of the floor's file equals zerocast's.
//!
//! ```text
//! scripts/build-xdpw.sh                       # once, if target/xdpw/ is missing
//! cargo build --release -p zerocast -p zerocast-testdesk --bins --examples
//! cargo run --release --example bench_cpu [-- --seconds N --content strip|full-motion|both --no-t1]
//! ```
//!
//! CPU time and peak RSS come from `wait4(2)`'s rusage of each recorder process (exact, no
//! sampling; children of the measured process that it waited for are included). Compositor,
//! xdpw and PipeWire time is not included; their CPU over each run is printed separately.
//! zerocast's CPU is also split by thread (`/proc/PID/task/*/stat`, sampled every 100 ms).
//! Output: tables on stdout and `target/bench/cpu.json`.
//!
//! The GStreamer run needs a portal session held by a process inside the desktop's
//! environment: the example re-executes itself with `ZEROCAST_BENCH_MODE=gst`; the floor runs
//! in a child too (`ZEROCAST_BENCH_MODE=floor`), so its RSS and CPU are its own.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use zerocast_testdesk::layout::xrgb;
use zerocast_testdesk::{Component, Content, Desktop, DesktopOptions, Layout};

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
fn measure(cmd: Command, stop_after: Option<Duration>, deadline: Duration) -> Result<Usage> {
    measure_sampled(cmd, stop_after, deadline, None)
}

/// `measure`, also reading the per-thread CPU of the process every 100 ms into `threads`.
fn measure_sampled(
    mut cmd: Command,
    stop_after: Option<Duration>,
    deadline: Duration,
    mut threads: Option<&mut ThreadCpu>,
) -> Result<Usage> {
    let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let t0 = Instant::now();
    let mut interrupted = false;
    let mut killed = false;
    let mut polls = 0u32;
    loop {
        if let Some(t) = threads.as_deref_mut() {
            if polls.is_multiple_of(5) {
                t.sample(pid as u32);
            }
            if polls.is_multiple_of(50) {
                t.sample_smaps(pid as u32);
            }
            polls += 1;
        }
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
    ticks / clk_tck()
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// Per-thread CPU of a running process, from `/proc/PID/task/*/stat`, as last seen. A thread's
/// figure is its CPU at the last sample (every 100 ms), so the final moments (flush, trailer)
/// are missing from the sum; the difference to the process's exact rusage is shown as such.
#[derive(Debug, Default)]
struct ThreadCpu {
    /// tid → (name, CPU seconds)
    seen: std::collections::BTreeMap<u32, (String, f64)>,
    /// The resident memory by kind (`/proc/PID/smaps`) at the sample with the most of it.
    smaps: Smaps,
}

/// Resident kB of a process by kind of mapping, and of its largest shared libraries.
#[derive(Debug, Clone, Default)]
struct Smaps {
    total_kb: u64,
    /// (kind, kB): anonymous, shared libraries, the binary, shared memory (memfd, /dev/shm: the
    /// compositor's buffers), other files.
    kinds: Vec<(&'static str, u64)>,
    /// The largest shared libraries (file name, kB).
    libs: Vec<(String, u64)>,
    /// Shared libraries with resident pages.
    lib_count: usize,
}

impl Smaps {
    fn read(pid: u32) -> Option<Smaps> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let mut kinds: std::collections::BTreeMap<&'static str, u64> = Default::default();
        let mut libs: std::collections::BTreeMap<String, u64> = Default::default();
        let mut current: Option<(&'static str, String)> = None;
        let mut total = 0;
        for line in text.lines() {
            if let Some(kb) = line.strip_prefix("Rss:") {
                let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                total += kb;
                if let Some((kind, path)) = &current {
                    *kinds.entry(kind).or_default() += kb;
                    if *kind == "libraries" {
                        let name = path.rsplit('/').next().unwrap_or(path).to_string();
                        *libs.entry(name).or_default() += kb;
                    }
                }
                continue;
            }
            // A mapping's header: address perms offset dev inode [path].
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 5
                && f[0].contains('-')
                && f[0].chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            {
                let path = f[5..].join(" ");
                let kind = if path.is_empty() || path.starts_with('[') {
                    "anonymous"
                } else if path.starts_with("/memfd:") || path.starts_with("/dev/shm") {
                    "shared memory"
                } else if exe.as_deref().is_some_and(|e| Path::new(&path) == e) {
                    "binary"
                } else if path.contains(".so") {
                    "libraries"
                } else {
                    "other files"
                };
                current = Some((kind, path));
            }
        }
        let mut libs: Vec<(String, u64)> = libs.into_iter().collect();
        libs.sort_by_key(|l| std::cmp::Reverse(l.1));
        let count = libs.len();
        libs.truncate(8);
        Some(Smaps {
            lib_count: count,
            total_kb: total,
            kinds: kinds.into_iter().collect(),
            libs,
        })
    }

    fn line(&self) -> String {
        let mb = |kb: u64| kb as f64 / 1024.0;
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .map(|(k, kb)| format!("{k} {:.1}", mb(*kb)))
            .collect();
        let libs: Vec<String> = self
            .libs
            .iter()
            .map(|(l, kb)| format!("{l} {:.1}", mb(*kb)))
            .collect();
        format!(
            "{:.1} MB = {}; {} libraries, the largest: {}",
            mb(self.total_kb),
            kinds.join(", "),
            self.lib_count,
            libs.join(", ")
        )
    }
}

impl ThreadCpu {
    /// Keeps the smaps breakdown if the process holds more now than at the last kept sample.
    fn sample_smaps(&mut self, pid: u32) {
        if let Some(s) = Smaps::read(pid) {
            if s.total_kb > self.smaps.total_kb {
                self.smaps = s;
            }
        }
    }

    fn sample(&mut self, pid: u32) {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // comm is between the first "(" and the last ")"; utime and stime are fields 14/15.
            let (Some(open), Some((head, rest))) = (stat.find('('), stat.rsplit_once(')')) else {
                continue;
            };
            let name = head[open + 1..].to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
                + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
            self.seen.insert(tid, (name, ticks / clk_tck()));
        }
    }

    /// CPU seconds per thread name (threads of the same name summed), largest first.
    fn by_name(&self) -> Vec<(String, f64)> {
        let mut m: std::collections::BTreeMap<&str, f64> = Default::default();
        for (name, s) in self.seen.values() {
            *m.entry(name.as_str()).or_default() += s;
        }
        let mut v: Vec<(String, f64)> = m.into_iter().map(|(k, s)| (k.to_string(), s)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
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
    /// CPU seconds per thread name (zerocast only).
    threads: Vec<(String, f64)>,
    /// Resident memory by kind at its largest sample (zerocast only).
    smaps: Smaps,
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
            "thread_cpu_s": self.threads.iter().map(|(n, s)| json!([n, s])).collect::<Vec<_>>(),
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

/// One content type's runs: its desktop, where files go, how long each run lasts.
struct Session<'a> {
    desk: &'a Desktop,
    dir: &'a Path,
    seconds: u64,
    content: Content,
}

impl Session<'_> {
    /// Output/log name of `tool` for this content, e.g. `motion-zerocast`.
    fn name(&self, tool: &str) -> String {
        format!("{}-{tool}", content_tag(self.content))
    }
}

fn content_tag(c: Content) -> &'static str {
    match c {
        Content::Strip => "strip",
        Content::FullMotion => "motion",
    }
}

fn run_zerocast(s: &Session<'_>, bin: &Path, tool: &str) -> Result<Run> {
    let name = s.name(tool);
    let out = s.dir.join(format!("{name}.mkv"));
    let stats = s.dir.join(format!("{name}-stats.json"));
    fresh(&out)?;
    fresh(&stats)?;
    let mut cmd = s.desk.command(bin);
    cmd.args([
        "record",
        "--no-restore",
        "--duration",
        &s.seconds.to_string(),
    ])
    .arg("-o")
    .arg(&out)
    .arg("--stats-json")
    .arg(&stats)
    .stdin(Stdio::null())
    .stdout(log_file(s.dir, &name)?)
    .stderr(log_file(s.dir, &format!("{name}.err"))?);
    let command = cmd_string(&cmd);
    let cpu = DesktopCpu::start(s.desk);
    let mut threads = ThreadCpu::default();
    let usage = measure_sampled(
        cmd,
        None,
        Duration::from_secs(s.seconds + 30),
        Some(&mut threads),
    )?;
    let desktop_cpu_s = cpu.elapsed();
    let st: Value = std::fs::read(&stats)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let (_, file_duration_s) = probe(&out).unwrap_or((0, 0.0));
    Ok(Run {
        tool: tool.into(),
        command,
        frames_received: st["frames_received"].as_u64(),
        frames_written: st["frames_written"].as_u64().unwrap_or(0),
        frames_dropped: st["frames_dropped"].as_u64(),
        usage,
        file_duration_s,
        x264: x264_options(&out),
        desktop_cpu_s,
        attempts: 0,
        smaps: threads.smaps.clone(),
        threads: threads.by_name(),
    })
}

fn run_wf(s: &Session<'_>, threads: Option<u32>) -> Result<Run> {
    let tool = match threads {
        Some(t) => format!("wf-recorder-t{t}"),
        None => "wf-recorder".into(),
    };
    let name = s.name(&tool);
    let out = s.dir.join(format!("{name}.mkv"));
    fresh(&out)?;
    let mut cmd = s.desk.command("wf-recorder");
    cmd.args(["-c", "libx264", "-p", "preset=ultrafast", "-p", "crf=23"])
        .args(["-p", "g=250"]);
    if let Some(t) = threads {
        cmd.args(["-p", &format!("threads={t}")]);
    }
    // wf-recorder 0.3 ignores -x for libx264 and encodes 4:4:4; the filter forces 4:2:0.
    cmd.args(["-x", "yuv420p", "-F", "format=yuv420p", "-f"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(log_file(s.dir, &name)?)
        .stderr(log_file(s.dir, &format!("{name}.err"))?);
    let command = cmd_string(&cmd);
    let cpu = DesktopCpu::start(s.desk);
    let usage = measure(
        cmd,
        Some(Duration::from_secs(s.seconds)),
        Duration::from_secs(s.seconds + 20),
    )?;
    let desktop_cpu_s = cpu.elapsed();
    let (frames, file_duration_s) = probe(&out).unwrap_or((0, 0.0));
    Ok(Run {
        tool,
        command,
        frames_received: None,
        frames_written: frames,
        frames_dropped: None,
        usage,
        file_duration_s,
        x264: x264_options(&out),
        desktop_cpu_s,
        attempts: 0,
        threads: Vec::new(),
        smaps: Smaps::default(),
    })
}

/// Parent side of the GStreamer run: a child of this example, in the desktop's environment,
/// holds the portal session and measures gst-launch; it prints its figures as JSON.
fn run_gst(s: &Session<'_>, threads: Option<u32>) -> Result<Run> {
    let tool = match threads {
        Some(t) => format!("gstreamer-t{t}"),
        None => "gstreamer".into(),
    };
    let name = s.name(&tool);
    let out = s.dir.join(format!("{name}.mkv"));
    fresh(&out)?;
    let mut cmd = s.desk.command(std::env::current_exe()?);
    cmd.env("ZEROCAST_BENCH_MODE", "gst")
        .env("ZEROCAST_BENCH_OUT", &out)
        .env("ZEROCAST_BENCH_SECONDS", s.seconds.to_string())
        .env(
            "ZEROCAST_BENCH_THREADS",
            threads.map(|t| t.to_string()).unwrap_or_default(),
        )
        .stdin(Stdio::null())
        .stderr(log_file(s.dir, &format!("{name}.err"))?);
    let cpu = DesktopCpu::start(s.desk);
    let o = cmd.output().context("running the gst child")?;
    let desktop_cpu_s = cpu.elapsed();
    let v: Value = serde_json::from_slice(&o.stdout).with_context(|| {
        format!(
            "gst child ({}) printed no figures; see {}",
            o.status,
            s.dir.join(format!("{name}.err.log")).display()
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
        tool,
        command: v["command"].as_str().unwrap_or("").to_string(),
        frames_received: None,
        frames_written: frames,
        frames_dropped: None,
        usage,
        file_duration_s,
        x264: x264_options(&out),
        desktop_cpu_s,
        attempts: 0,
        threads: Vec::new(),
        smaps: Smaps::default(),
    })
}

/// Child side of the GStreamer run (`ZEROCAST_BENCH_MODE=gst`).
fn gst_child() -> Result<()> {
    let out = std::env::var("ZEROCAST_BENCH_OUT").context("ZEROCAST_BENCH_OUT")?;
    let threads = std::env::var("ZEROCAST_BENCH_THREADS").unwrap_or_default();
    let seconds: u64 = std::env::var("ZEROCAST_BENCH_SECONDS")
        .context("ZEROCAST_BENCH_SECONDS")?
        .parse()?;
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
        Some(Duration::from_secs(seconds)),
        Duration::from_secs(seconds + 20),
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

/// What the encoder-only floor measured.
#[derive(Debug, Default)]
struct Floor {
    frames: u64,
    /// x264 (+ the muxer and the encoder's I420 plane copy): process CPU minus our thread's
    /// frame building, conversion and packing.
    encode_cpu_s: f64,
    /// BGRx → I420 with the recorder's converter, for the same frames (this thread).
    convert_cpu_s: f64,
    max_rss_kb: i64,
    x264: Option<String>,
}

impl Floor {
    fn fps_per_cpu(&self) -> f64 {
        self.frames as f64 / self.encode_cpu_s.max(1e-9)
    }
    fn ms_per_frame(s: f64, frames: u64) -> f64 {
        s * 1e3 / frames.max(1) as f64
    }
    fn json(&self) -> Value {
        json!({
            "frames": self.frames,
            "encode_cpu_s": self.encode_cpu_s,
            "frames_per_cpu_s": self.fps_per_cpu(),
            "convert_cpu_s": self.convert_cpu_s,
            "convert_ms_per_frame": Floor::ms_per_frame(self.convert_cpu_s, self.frames),
            "peak_rss_mb": self.max_rss_kb as f64 / 1024.0,
            "x264_options": self.x264,
        })
    }
}

/// Parent side of the floor: the child encodes `frames` frames of `content` (the painter's
/// pixels for counters 0, 1, 2, …) with the recorder's encoder and prints its figures.
fn run_floor(dir: &Path, content: Content, frames: u64, width: u32, height: u32) -> Result<Floor> {
    let name = format!("{}-floor", content_tag(content));
    let out = dir.join(format!("{name}.mkv"));
    fresh(&out)?;
    let o = Command::new(std::env::current_exe()?)
        .env("ZEROCAST_BENCH_MODE", "floor")
        .env("ZEROCAST_BENCH_OUT", &out)
        .env("ZEROCAST_BENCH_CONTENT", content_tag(content))
        .env("ZEROCAST_BENCH_FRAMES", frames.to_string())
        .env("ZEROCAST_BENCH_SIZE", format!("{width}x{height}"))
        .stdin(Stdio::null())
        .stderr(log_file(dir, &format!("{name}.err"))?)
        .output()
        .context("running the floor child")?;
    let v: Value = serde_json::from_slice(&o.stdout)
        .with_context(|| format!("floor child ({}) printed no figures", o.status))?;
    let (written, _) = probe(&out)?;
    if written != frames {
        bail!(
            "floor: {written} frames in {}, {frames} pushed",
            out.display()
        );
    }
    Ok(Floor {
        frames,
        encode_cpu_s: v["encode_cpu_s"].as_f64().unwrap_or(0.0),
        convert_cpu_s: v["convert_cpu_s"].as_f64().unwrap_or(0.0),
        max_rss_kb: v["max_rss_kb"].as_i64().unwrap_or(0),
        x264: x264_options(&out),
    })
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we own.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The painter's frames as BGRx bytes, for counters in order.
enum Source {
    /// Quadrants painted once; the strip rows rewritten per frame (as the painter does).
    Strip { layout: Layout, px: Vec<u32> },
    /// Frame n is a window of the page (no copy).
    Motion { layout: Layout, texture: Vec<u32> },
}

impl Source {
    fn new(layout: Layout, content: Content) -> Source {
        match content {
            Content::Strip => {
                let (w, h) = (layout.width, layout.height);
                let px = (0..h)
                    .flat_map(|y| (0..w).map(move |x| (x, y)))
                    .map(|(x, y)| xrgb(layout.color_at(x, y, 0)))
                    .collect();
                Source::Strip { layout, px }
            }
            Content::FullMotion => Source::Motion {
                layout,
                texture: layout.motion_texture(),
            },
        }
    }

    fn frame(&mut self, counter: u32) -> &[u8] {
        let px: &[u32] = match self {
            Source::Strip { layout, px } => {
                let w = layout.width as usize;
                let mut row = vec![0u32; w];
                layout.counter_row(counter, &mut row);
                let cb = layout.counter_band();
                for y in cb.y..cb.y + cb.h {
                    px[y as usize * w..][..w].copy_from_slice(&row);
                }
                layout.bar_row(counter, &mut row);
                let bb = layout.bar_band();
                for y in bb.y..bb.y + bb.h {
                    px[y as usize * w..][..w].copy_from_slice(&row);
                }
                px
            }
            Source::Motion { layout, texture } => {
                let w = layout.width as usize;
                let o = layout.motion_offset(counter) as usize * w;
                &texture[o..o + w * layout.height as usize]
            }
        };
        // SAFETY: u32 has no padding, any byte is a valid u8, the length covers the same memory
        // and u8's alignment divides u32's. Little-endian: XRGB8888 pixels are B, G, R, X bytes,
        // i.e. what PipeWire delivers as BGRx.
        unsafe { std::slice::from_raw_parts(px.as_ptr().cast::<u8>(), std::mem::size_of_val(px)) }
    }
}

/// Child side of the encoder-only floor (`ZEROCAST_BENCH_MODE=floor`): libx264 opened through
/// the recorder's own `Encoder` with the settings `zerocast record` uses (so preset, tune, CRF,
/// keyint, threads and pixel format are the recorder's by construction; the parent compares
/// x264's settings SEI of both files), fed the I420 that the recorder's converter makes of the
/// painter's frames, at 60 fps timestamps. No capture, no PipeWire, no second thread of ours.
fn floor_child() -> Result<()> {
    use zerocast_recorder::encode::{
        ConverterChoice, CpuConverter, Encoder, EncoderConfig, FrameRef,
    };
    use zerocast_recorder::frame::{CpuFrame, PixelFormat};
    use zerocast_recorder::{Codec, Container, EncoderChoice, RateControl};

    let var = |k: &str| std::env::var(k).with_context(|| k.to_string());
    let out = PathBuf::from(var("ZEROCAST_BENCH_OUT")?);
    let frames: u64 = var("ZEROCAST_BENCH_FRAMES")?.parse()?;
    let content = match var("ZEROCAST_BENCH_CONTENT")?.as_str() {
        "motion" => Content::FullMotion,
        _ => Content::Strip,
    };
    let size = var("ZEROCAST_BENCH_SIZE")?;
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .context("ZEROCAST_BENCH_SIZE")?;
    let (ew, eh) = (w & !1, h & !1);
    let mut source = Source::new(Layout::new(w, h), content);
    let mut conv = CpuConverter::new(ConverterChoice::Auto);
    // The PipeWire thread's frames: I420 in pooled FFmpeg frames the encoder sends as they are
    // (it holds the last one, so two cycle).
    let mut pool: Vec<CpuFrame> = (0..2).map(|_| CpuFrame::empty()).collect();
    let cfg = EncoderConfig {
        path: out,
        container: Container::Mkv,
        codec: Codec::H264,
        encoder: EncoderChoice::Software,
        selected: None,
        rate: RateControl::Quality(23),
        keyint: 250,
        width: w,
        height: h,
        audio: None,
        replay: None,
    };
    let process0 = clock(libc::CLOCK_PROCESS_CPUTIME_ID);
    let mut ours = Duration::ZERO;
    let mut convert = Duration::ZERO;
    let mut enc = Encoder::open(&cfg)?;
    let frame_us = 16_667;
    for i in 0..frames {
        let t0 = clock(libc::CLOCK_THREAD_CPUTIME_ID);
        let bgrx = source.frame(i as u32);
        let src = FrameRef {
            width: w,
            height: h,
            format: PixelFormat::Bgrx,
            stride: w as usize * 4,
            pts: Duration::ZERO,
            data: bgrx,
        };
        let mut i420 = pool
            .pop()
            .context("the encoder holds one frame, two cycle")?;
        let t1 = clock(libc::CLOCK_THREAD_CPUTIME_ID);
        let stride = conv
            .rgb_to_i420(&src, &mut i420.yuv)?
            .context("this CPU has no SIMD converter (the recorder would send RGB)")?;
        let t2 = clock(libc::CLOCK_THREAD_CPUTIME_ID);
        ours += t2 - t0;
        convert += t2 - t1;
        (i420.width, i420.height, i420.format, i420.stride) = (ew, eh, PixelFormat::I420, stride);
        i420.pts = Duration::from_micros(i * frame_us);
        enc.push_pooled(i420, |f| pool.push(f))?;
    }
    enc.finish(Duration::from_micros(frames * frame_us))?;
    let total = clock(libc::CLOCK_PROCESS_CPUTIME_ID) - process0;
    // SAFETY: rusage is plain data; getrusage fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    println!(
        "{}",
        json!({
            "frames": frames,
            "encode_cpu_s": (total - ours).as_secs_f64(),
            "convert_cpu_s": convert.as_secs_f64(),
            "max_rss_kb": ru.ru_maxrss,
        })
    );
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Command line: `[--seconds N] [--content strip|full-motion|both] [--no-t1] [--baseline BIN]
/// [--repeat N] [--no-peers]`.
struct Args {
    seconds: u64,
    contents: Vec<Content>,
    /// Also run wf-recorder and GStreamer with one x264 thread.
    t1: bool,
    /// Another `zerocast` binary (e.g. built from the previous commit), run alternately with
    /// this one on the same desktop, so a change is measured as a ratio of one session.
    baseline: Option<PathBuf>,
    /// Runs of zerocast (and of the baseline) per content, alternating.
    repeat: u32,
    /// Only zerocast (and the baseline): no wf-recorder, no GStreamer.
    peers: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        seconds: 10,
        contents: vec![Content::Strip, Content::FullMotion],
        t1: true,
        baseline: None,
        repeat: 1,
        peers: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => a.seconds = it.next().context("--seconds N")?.parse()?,
            "--content" => {
                a.contents = match it.next().as_deref() {
                    Some("strip") => vec![Content::Strip],
                    Some("full-motion") => vec![Content::FullMotion],
                    Some("both") => vec![Content::Strip, Content::FullMotion],
                    other => bail!("--content strip|full-motion|both, not {other:?}"),
                }
            }
            "--no-t1" => a.t1 = false,
            "--baseline" => a.baseline = Some(it.next().context("--baseline BIN")?.into()),
            "--repeat" => a.repeat = it.next().context("--repeat N")?.parse::<u32>()?.max(1),
            "--no-peers" => a.peers = false,
            other => bail!(
                "unknown argument {other:?}; usage: bench_cpu [--seconds N] \
                 [--content strip|full-motion|both] [--no-t1] [--baseline BIN] [--repeat N] \
                 [--no-peers]"
            ),
        }
    }
    Ok(a)
}

/// Everything measured for one content type.
struct Measured {
    content: Content,
    runs: Vec<Run>,
    floor: Floor,
}

fn describe(c: Content) -> &'static str {
    match c {
        Content::Strip => "strip: a 1/8 strip animates (counter + bar), the rest is static",
        Content::FullMotion => "full motion: a text page scrolls 4 px/frame, every pixel changes",
    }
}

fn measure_content(a: &Args, c: Content, bin: &Path, dir: &Path) -> Result<Measured> {
    let desk = Desktop::start(DesktopOptions {
        painter_content: c,
        ..DesktopOptions::default()
    })?;
    let (w, h) = (desk.options().width, desk.options().height);
    eprintln!(
        "bench: desktop up in {:?} ({w}x{h}@120Hz, painter 60 fps, {}); {} s per run",
        desk.startup_time(),
        describe(c),
        a.seconds
    );
    let s = Session {
        desk: &desk,
        dir,
        seconds: a.seconds,
        content: c,
    };
    // zerocast first (the ratios are over its first run), then its repeats and the baseline,
    // alternating so that a change of load hits both alike.
    let mut runs = Vec::new();
    let mut others = Vec::new();
    for i in 1..=a.repeat {
        if let Some(base) = &a.baseline {
            let tool = format!("baseline#{i}");
            others.push(with_retry(&tool, || run_zerocast(&s, base, &tool))?);
        }
        let tool = if i == 1 {
            "zerocast".to_string()
        } else {
            format!("zerocast#{i}")
        };
        let run = with_retry(&tool, || run_zerocast(&s, bin, &tool))?;
        if i == 1 {
            runs.push(run);
        } else {
            others.push(run);
        }
    }
    runs.append(&mut others);
    if a.peers {
        runs.push(with_retry("wf-recorder", || run_wf(&s, None))?);
        runs.push(with_retry("gstreamer", || run_gst(&s, None))?);
    }
    if a.peers && a.t1 {
        // zerocast runs x264 with 1 thread at 720p; the others pick x264's automatic count.
        // Also measure them with 1 thread, like for like.
        runs.push(with_retry("wf-recorder-t1", || run_wf(&s, Some(1)))?);
        runs.push(with_retry("gstreamer-t1", || run_gst(&s, Some(1)))?);
    }
    drop(desk);
    // Same number of frames as zerocast wrote, with the desktop gone (nothing else of ours runs).
    let floor = run_floor(dir, c, runs[0].frames_written.max(1), w, h)?;
    Ok(Measured {
        content: c,
        runs,
        floor,
    })
}

fn print_content(m: &Measured) -> Value {
    println!("\n== {}", describe(m.content));
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
    for r in &m.runs {
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
    let f = &m.floor;
    println!(
        "{:<16} {:>8} {:>8} {:>7} {:>7.2} {:>11.1} {:>8.1} {:>6} {:>8}  {}",
        "floor (x264)",
        "-",
        f.frames,
        "-",
        f.encode_cpu_s,
        f.fps_per_cpu(),
        f.max_rss_kb as f64 / 1024.0,
        "-",
        "-",
        f.x264.as_deref().map(x264_summary).unwrap_or_default(),
    );
    let z = &m.runs[0];
    let mut ratios = serde_json::Map::new();
    for r in &m.runs[1..] {
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
    // The floor's x264 must be ours: compare the settings SEI (identical apart from nothing).
    let same = match (&z.x264, &f.x264) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    let of_floor = z.fps_per_cpu() / f.fps_per_cpu().max(1e-9);
    println!(
        "zerocast/floor          {:.1}% of the encoder-only floor (goal on full motion ≥ 90%); \
         x264 settings {}",
        of_floor * 100.0,
        if same {
            "identical to zerocast's"
        } else {
            "DIFFER from zerocast's (see cpu.json)"
        }
    );
    // Where zerocast's CPU goes, per frame written.
    let n = z.frames_written.max(1) as f64;
    let ms = |s: f64| s * 1e3 / n;
    let floor_ms = Floor::ms_per_frame(f.encode_cpu_s, f.frames);
    let conv_ms = Floor::ms_per_frame(f.convert_cpu_s, f.frames);
    let total_ms = ms(z.usage.cpu_s());
    println!(
        "zerocast per frame: {total_ms:.2} ms CPU = floor x264 {floor_ms:.2} + BGRx→I420 \
         conversion {conv_ms:.2} (measured alone) + rest {:.2}",
        total_ms - floor_ms - conv_ms
    );
    let sampled: f64 = z.threads.iter().map(|t| t.1).sum();
    let by_thread: Vec<String> = z
        .threads
        .iter()
        .filter(|t| t.1 > 0.0)
        .map(|(name, s)| format!("{name} {:.2}", ms(*s)))
        .collect();
    println!(
        "  by thread (ms/frame, /proc samples every 100 ms): {}; not sampled (last 100 ms, exit) \
         {:.2}",
        by_thread.join(", "),
        ms(z.usage.cpu_s() - sampled)
    );
    for r in m.runs.iter().filter(|r| r.smaps.total_kb > 0) {
        println!(
            "  {} resident (smaps, largest sample): {}",
            r.tool,
            r.smaps.line()
        );
    }
    json!({
        "content": content_tag(m.content),
        "description": describe(m.content),
        "runs": m.runs.iter().map(Run::json).collect::<Vec<_>>(),
        "floor": f.json(),
        "x264_identical_to_floor": same,
        "zerocast_of_floor": of_floor,
        "zerocast_ms_per_frame": {
            "total": total_ms,
            "floor_x264": floor_ms,
            "conversion_alone": conv_ms,
            "rest": total_ms - floor_ms - conv_ms,
        },
        "ratios_zerocast_over": ratios,
    })
}

fn uptime_load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() -> Result<()> {
    match std::env::var("ZEROCAST_BENCH_MODE").as_deref() {
        Ok("gst") => return gst_child(),
        Ok("floor") => return floor_child(),
        _ => {}
    }
    let a = args()?;
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
    let load_before = uptime_load();
    let mut measured = Vec::new();
    for &c in &a.contents {
        measured.push(measure_content(&a, c, &bin, &dir)?);
    }
    let load_after = uptime_load();
    println!(
        "load average before {load_before}, after {load_after}; {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let contents: Vec<Value> = measured.iter().map(print_content).collect();
    let report = json!({
        "desktop": "zerocast-testdesk 1280x720@120Hz, painter 60 fps",
        "seconds": a.seconds,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_before": load_before,
        "load_after": load_after,
        "contents": contents,
    });
    let path = dir.join("cpu.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}
