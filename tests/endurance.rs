//! Endurance (issue 23): hours, not seconds. Three ignored tests on the sway test desktop with
//! the painter (60 fps, its frame counter in the top strip) and the A/V client
//! (`zerocast-avsync --band`: a band at the bottom of the screen flashes white and a beep plays
//! at the same instant about once a second; the band leaves the painter's strip visible):
//!
//! - `recording`: one `zerocast record --audio desktop` of `ZEROCAST_ENDURANCE_MINUTES`
//!   (default 60). The recorder's A/V error at the first, middle and last minute, its trend and
//!   worst case; frames dropped (the recorder's count, and painter ticks missing from the
//!   file); RSS and fds of the `zerocast` process each minute; the file's clock against the
//!   wall clock (the painter's counter is a tick of wall time).
//! - `replay`: `zerocast record --replay 30 --audio desktop` for as long, saved by SIGUSR2
//!   twelve times (every 5 minutes of an hour): each clip's length, first keyframe, A/V.
//! - `clock_faults`: a 4-minute recording through the audio sink suspended for 10 s, the
//!   default sink switched twice, the screen stalled for 2 s (no frame from the compositor),
//!   and both cores busy for 30 s: the file is in sync after each.
//!
//! Each prints one `endurance:` summary line and fails on a missed goal.
//! `ZEROCAST_ENDURANCE_MINUTES=60 cargo test --test endurance -- --ignored --nocapture`
//! (~2 h 10 min: the three in turn; name one to run it alone; 5 for a quick look).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::daemon::{open_fds, rss_kb};
use common::*;
use zerocast_testdesk::avsync::{self, ClientLog, Offsets};
use zerocast_testdesk::{audio, Desktop, DesktopOptions, Layout};

static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Rows of the A/V client's band at the bottom of the 720-row output: the painter's counter
/// strip (the top 90 rows) stays visible above it.
const BAND: u32 = 240;
/// The painter's rate (the desktop's default).
const PAINTER_FPS: f64 = 60.0;
/// Goals (issue 23).
const MAX_ABS_MS: f64 = 20.0;
const MAX_TREND_MS_PER_MIN: f64 = 1.0;
const RSS_BAND_KB: u64 = 2 * 1024;
/// fds may differ by this much between minutes (a PipeWire or portal fd being replaced).
const FD_BAND: usize = 2;

fn minutes() -> f64 {
    std::env::var("ZEROCAST_ENDURANCE_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60.0)
}

/// The test's files: kept (and named on stderr) when the test fails, for a look at the
/// recording, the client's log and zerocast's stderr.
struct Dir(Option<tempfile::TempDir>);

impl Dir {
    fn new() -> Dir {
        Dir(Some(tempfile::tempdir().unwrap()))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(d) = self.0.take() {
                eprintln!("endurance: files kept in {}", d.keep().display());
            }
        }
    }
}

struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The desktop, the A/V client (for `seconds`, logging to `log`) and the painter over it.
/// sway 1.7 draws the surfaces of a layer newest first, i.e. the newest at the bottom: the
/// client's band is on top only when it maps before the painter, so the desktop starts
/// without one and the painter starts here, after the client.
fn desktop(seconds: f64, log: &Path) -> (Desktop, Bg, Bg) {
    let desk = Desktop::start(DesktopOptions {
        painter_fps: None,
        ..DesktopOptions::default()
    })
    .expect("test desktop");
    let client = avsync_client(&desk, seconds, log);
    let ready = log.with_file_name("painter.ready");
    let bin = zerocast_testdesk::desktop::painter_binary()
        .expect("zerocast-painter not built (cargo build -p zerocast-testdesk --bins)");
    let painter = Bg(desk
        .command(bin)
        .args(["--fps", &PAINTER_FPS.to_string(), "--ready-file"])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("zerocast-painter"));
    let t0 = Instant::now();
    while !ready.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the painter showed no frame"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (desk, client, painter)
}

/// The A/V client for `seconds`, logging what it presented and played to `log`.
fn avsync_client(desk: &Desktop, seconds: f64, log: &Path) -> Bg {
    let bin = avsync::binary()
        .expect("zerocast-avsync not built (cargo build -p zerocast-testdesk --bins)");
    let c = desk
        .command(bin)
        .args(["--seconds", &seconds.to_string(), "--lead-in-ms", "700"])
        .args(["--band", &BAND.to_string(), "--app", "avsync", "--log"])
        .arg(log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("avsync");
    let c = Bg(c);
    desk.wait_node_running("avsync", Duration::from_secs(30))
        .expect("the A/V client's stream");
    c
}

/// One sample of the recorder process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    rss_kb: u64,
    fds: usize,
}

/// Runs `cmd` (a `zerocast record`, stderr to `log`) until it exits, sampling its RSS and fds
/// every 10 s and calling `tick(seconds since spawn)` about every 200 ms (faults, saves).
/// Panics when it is still running `limit` after spawn.
fn run_sampled(
    mut cmd: Command,
    log: &Path,
    limit: Duration,
    mut tick: impl FnMut(f64, &mut Child),
) -> (std::process::ExitStatus, Vec<Sample>) {
    cmd.stderr(std::fs::File::create(log).unwrap());
    let mut child = cmd.spawn().expect("spawn zerocast record");
    let pid = child.id();
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = 10.0;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        let t = t0.elapsed().as_secs_f64();
        if t >= next_sample {
            next_sample += 10.0;
            let (rss, fds) = (rss_kb(pid), open_fds(pid));
            if rss > 0 {
                samples.push(Sample {
                    t,
                    rss_kb: rss,
                    fds,
                });
            }
        }
        tick(t, &mut child);
        if t0.elapsed() > limit {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let _ = child.wait();
            panic!(
                "zerocast record still running after {limit:?}:\n{}",
                tail(&std::fs::read_to_string(log).unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (status, samples)
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// RSS and fds per minute: the floor (lowest) of each minute's samples — a single RSS sample
/// swings with what malloc keeps (see tests/soak.rs) — and whether they are flat from minute 2
/// on: every floor within ±2 MB of their median, fds within ±[`FD_BAND`].
struct Memory {
    /// (minute, RSS floor kB, most fds) for each whole minute sampled.
    minutes: Vec<(usize, u64, usize)>,
}

impl Memory {
    fn new(samples: &[Sample]) -> Memory {
        let mut minutes = Vec::new();
        let last = samples.last().map_or(0, |s| (s.t / 60.0) as usize);
        for m in 0..=last {
            let in_m: Vec<&Sample> = samples
                .iter()
                .filter(|s| (s.t / 60.0) as usize == m)
                .collect();
            if in_m.len() < 3 {
                // The last, partial minute (the recording ended in it).
                continue;
            }
            minutes.push((
                m + 1,
                in_m.iter().map(|s| s.rss_kb).min().unwrap(),
                in_m.iter().map(|s| s.fds).max().unwrap(),
            ));
        }
        Memory { minutes }
    }

    /// Minutes after the first two.
    fn settled(&self) -> Vec<(usize, u64, usize)> {
        self.minutes.iter().copied().filter(|m| m.0 > 2).collect()
    }

    fn median_rss(&self) -> u64 {
        let mut v: Vec<u64> = self.settled().iter().map(|m| m.1).collect();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or(0)
    }

    /// Largest distance of a minute's RSS floor from the median of them (kB).
    fn rss_spread_kb(&self) -> u64 {
        let med = self.median_rss();
        self.settled()
            .iter()
            .map(|m| m.1.abs_diff(med))
            .max()
            .unwrap_or(0)
    }

    fn fds_range(&self) -> (usize, usize) {
        let s = self.settled();
        (
            s.iter().map(|m| m.2).min().unwrap_or(0),
            s.iter().map(|m| m.2).max().unwrap_or(0),
        )
    }

    fn table(&self) -> String {
        self.minutes
            .iter()
            .map(|(m, rss, fds)| format!("{m}:{:.1}MB/{fds}", *rss as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn summary(&self) -> String {
        let (lo, hi) = self.fds_range();
        format!(
            "RSS floor after minute 2: median {:.1} MB, max distance {:.2} MB (goal ±{} MB); fds {lo}–{hi}",
            self.median_rss() as f64 / 1024.0,
            self.rss_spread_kb() as f64 / 1024.0,
            RSS_BAND_KB / 1024
        )
    }

    fn check(&self) {
        assert!(
            self.settled().len() >= 2,
            "too few minutes sampled to judge: {}",
            self.table()
        );
        assert!(
            self.rss_spread_kb() <= RSS_BAND_KB,
            "RSS not flat after minute 2: {} ({})",
            self.summary(),
            self.table()
        );
        let (lo, hi) = self.fds_range();
        assert!(
            hi - lo <= FD_BAND,
            "fds not flat after minute 2: {}",
            self.table()
        );
    }
}

/// Every video frame of `path`: (pts s, the painter's counter), in presentation order. The
/// counter band is read from a 2-row crop through its cells' centres, streamed (an hour is
/// 216 000 frames), and the timestamps are the packets' (no B-frames: decode order is
/// presentation order; checked by sorting).
fn counters(path: &Path) -> Vec<(f64, u32)> {
    let layout = Layout::new(1280, 720);
    let y = layout.counter_cell(0).center().1 & !1;
    let pk = run_ok(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
            .arg(path),
    );
    let mut pts: Vec<f64> = String::from_utf8_lossy(&pk.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    pts.sort_by(f64::total_cmp);
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough"])
        .args(["-enc_time_base", "1:1000000"])
        .args(["-vf", &format!("crop={}:2:0:{y}", layout.width)])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    let mut out = child.stdout.take().unwrap();
    let row = (layout.width * 3) as usize;
    let mut buf = vec![0u8; row * 2];
    let mut counters = Vec::with_capacity(pts.len());
    while out.read_exact(&mut buf).is_ok() {
        counters.push(layout.decode_counter(|x, _| {
            let i = x as usize * 3;
            [buf[i], buf[i + 1], buf[i + 2]]
        }));
    }
    assert!(
        child.wait().unwrap().success(),
        "ffmpeg on {}",
        path.display()
    );
    assert_eq!(
        counters.len(),
        pts.len(),
        "{}: decoded frames vs packets",
        path.display()
    );
    pts.into_iter().zip(counters).collect()
}

/// What the painter's counters say about a file.
struct Painted {
    frames: usize,
    /// Painter ticks from the first frame's counter to the last's.
    span: u64,
    /// Frames showing a counter not seen in the frame before (a painter frame in the file).
    new: usize,
    /// Counters going backwards (a frame out of order or a misread counter).
    backwards: usize,
    /// File time minus wall time (counter / fps), median over the first and the last 60 new
    /// frames: the file's clock against the wall clock at both ends.
    start_offset: f64,
    end_offset: f64,
    file_duration: f64,
}

impl Painted {
    fn new(frames: &[(f64, u32)]) -> Painted {
        assert!(frames.len() > 120, "only {} frames", frames.len());
        let mut new = Vec::new();
        let mut backwards = 0;
        for (i, &(t, c)) in frames.iter().enumerate() {
            if i == 0 || c > frames[i - 1].1 {
                new.push((t, c));
            } else if c < frames[i - 1].1 {
                backwards += 1;
            }
        }
        let median_offset = |s: &[(f64, u32)]| {
            let mut v: Vec<f64> = s.iter().map(|&(t, c)| t - c as f64 / PAINTER_FPS).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let n = new.len();
        Painted {
            frames: frames.len(),
            span: (frames[frames.len() - 1].1 - frames[0].1) as u64,
            new: n,
            backwards,
            start_offset: median_offset(&new[..60.min(n)]),
            end_offset: median_offset(&new[n.saturating_sub(60)..]),
            file_duration: frames[frames.len() - 1].0 - frames[0].0,
        }
    }

    /// File time gained on the wall clock from the start to the end (s).
    fn drift(&self) -> f64 {
        self.end_offset - self.start_offset
    }

    fn missing(&self) -> u64 {
        (self.span + 1).saturating_sub(self.new as u64)
    }

    fn summary(&self) -> String {
        format!(
            "{} frames over {:.3} s of file; painter: {} ticks spanned, {} in the file, {} missing ({:.2} %), {} backwards; file vs wall clock {:+.1} ms (goal ±{:.1} ms = 1 frame)",
            self.frames,
            self.file_duration,
            self.span + 1,
            self.new,
            self.missing(),
            self.missing() as f64 * 100.0 / (self.span + 1) as f64,
            self.backwards,
            self.drift() * 1e3,
            1e3 / PAINTER_FPS
        )
    }
}

/// The recorder's stats (`--stats-json`).
fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("stats json")).unwrap()
}

/// The recording's A/V: pairs in the file, and the recorder's error (file offset less what the
/// client produced for that flash: a flash the compositor presented late is not the
/// recorder's).
struct Av {
    file: Offsets,
    error: Offsets,
}

fn av(path: &Path, client: &ClientLog, zero: i64) -> Av {
    let (flashes, beeps) = avsync::onsets(path, 0, Some(BAND)).unwrap();
    let pairs = avsync::pair_windowed(&flashes, &beeps, 60.0);
    let file = Offsets {
        flashes,
        beeps,
        pairs,
    };
    let error = file.against(client, zero);
    Av { file, error }
}

fn window(o: &Offsets, from: f64, to: f64) -> Offsets {
    Offsets {
        pairs: o
            .pairs
            .iter()
            .copied()
            .filter(|p| p.0 >= from && p.0 < to)
            .collect(),
        ..Offsets::default()
    }
}

fn ms(o: &Offsets) -> String {
    format!(
        "median {:+.1} ms, worst |{:.1}| ms ({} pairs)",
        o.median() * 1e3,
        o.worst_abs() * 1e3,
        o.pairs.len()
    )
}

/// One dropped count from the recorder's own summary; `--stats-json` has it too.
fn dropped(stats: &serde_json::Value) -> u64 {
    stats["frames_dropped"].as_u64().expect("frames_dropped")
}

#[test]
#[ignore = "endurance, ZEROCAST_ENDURANCE_MINUTES (60) + ~3 min analysis: cargo test --test endurance -- --ignored --nocapture recording"]
fn recording() {
    let _g = lock();
    let minutes = minutes();
    let secs = minutes * 60.0;
    let dir = Dir::new();
    let file = dir.path().join("endurance.mkv");
    let client_log = dir.path().join("avsync.log");
    let stats_json = dir.path().join("stats.json");
    let log = dir.path().join("zerocast.stderr");
    let (desk, _client, _painter) = desktop(secs + 60.0, &client_log);
    let mut cmd = zerocast(&desk);
    cmd.args(["record", "--audio", "desktop", "--overwrite"])
        .args(["--duration", &secs.to_string(), "--stats-json"])
        .arg(&stats_json)
        .arg("-o")
        .arg(&file)
        .stdout(Stdio::null());
    let t0 = Instant::now();
    println!("endurance: recording {minutes} min to {}", file.display());
    let mut said = 0;
    let (status, samples) =
        run_sampled(cmd, &log, Duration::from_secs_f64(secs + 120.0), |t, _| {
            // Progress, for a person watching an hour go by.
            if t as u64 / 60 > said {
                said = t as u64 / 60;
                println!("endurance: {said} min");
            }
        });
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        status.success(),
        "zerocast record: {status}\n{}",
        tail(&stderr)
    );
    let wall = t0.elapsed().as_secs_f64();
    let analysis = Instant::now();
    let st = stats(&stats_json);
    let client = ClientLog::read(&client_log).unwrap();
    let zero = avsync::zero_from_log(&stderr).expect("zerocast logs the file's time zero");
    let a = av(&file, &client, zero);
    let painted = Painted::new(&counters(&file));
    // Samples while it recorded (not while it finished the file and exited).
    let samples: Vec<Sample> = samples.into_iter().filter(|s| s.t <= secs).collect();
    let mem = Memory::new(&samples);
    let len = painted.file_duration;
    let first = window(&a.error, 0.0, 60.0_f64.min(len / 3.0));
    let mid = window(&a.error, len / 2.0 - 30.0, len / 2.0 + 30.0);
    let last = window(&a.error, len - 60.0_f64.max(0.0).min(len / 3.0), len + 1.0);
    println!(
        "endurance: RSS/fds per minute (floor MB/fds): {}",
        mem.table()
    );
    println!("endurance: in the file: {}", a.file.summary());
    println!(
        "endurance: client's flashes presented > 10 ms late: {} of {}",
        client.late(10),
        client.events.len()
    );
    println!(
        "endurance: recording {minutes} min: A/V error first minute {}, middle {}, last {}; all: {}; {}; recorder dropped {} of {} received ({} written); {}; analysis {:.0} s, wall {:.0} s",
        ms(&first),
        ms(&mid),
        ms(&last),
        a.error.summary(),
        painted.summary(),
        dropped(&st),
        st["frames_received"],
        st["frames_written"],
        mem.summary(),
        analysis.elapsed().as_secs_f64(),
        wall,
    );
    // The events: about one a second, nearly all found and paired.
    assert!(
        a.error.pairs.len() as f64 >= 0.8 * len,
        "too few A/V pairs: {}",
        a.error.summary()
    );
    assert!(
        a.error.worst_abs() * 1e3 < MAX_ABS_MS,
        "A/V error over {MAX_ABS_MS} ms: {}\n{}",
        a.error.summary(),
        a.error.table()
    );
    assert!(
        a.error.slope_ms_per_min().abs() < MAX_TREND_MS_PER_MIN,
        "A/V trend: {}",
        a.error.summary()
    );
    assert_eq!(dropped(&st), 0, "the recorder dropped frames: {st}");
    assert!(
        painted.drift().abs() <= 1.0 / PAINTER_FPS,
        "file vs wall clock: {}",
        painted.summary()
    );
    assert!(
        (len - secs).abs() < 1.0,
        "file {len:.2} s for --duration {secs}"
    );
    let fps = painted.frames as f64 / len;
    assert!(
        fps >= desk.flavour().min_recorded_fps(),
        "{fps:.1} fps recorded: {}",
        painted.summary()
    );
    assert_eq!(painted.backwards, 0, "{}", painted.summary());
    mem.check();
}

/// The clips a replay printed on stdout.
fn read_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    rx
}

/// A clip's first video packet: (pts s, is a keyframe).
fn first_video_packet(path: &Path) -> (f64, bool) {
    let o = run_ok(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
            .args(["-read_intervals", "%+#1"])
            .arg(path),
    );
    let s = String::from_utf8_lossy(&o.stdout);
    let l = s.lines().next().expect("a video packet");
    let mut it = l.split(',');
    let pts = it.next().and_then(|p| p.parse().ok()).unwrap_or(f64::NAN);
    (pts, it.next().is_some_and(|f| f.starts_with('K')))
}

#[test]
#[ignore = "endurance, ZEROCAST_ENDURANCE_MINUTES (60) + ~1 min: cargo test --test endurance -- --ignored --nocapture replay"]
fn replay() {
    let _g = lock();
    let minutes = minutes();
    let secs = minutes * 60.0;
    // Twelve saves (every 5 minutes of an hour), none before the 30 s ring is full.
    let every = (secs / 12.0).max(40.0);
    let dir = Dir::new();
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let client_log = dir.path().join("avsync.log");
    let log = dir.path().join("zerocast.stderr");
    let (desk, _client, _painter) = desktop(secs + 60.0, &client_log);
    let mut cmd = zerocast(&desk);
    cmd.env("XDG_VIDEOS_DIR", &videos)
        .args(["record", "--replay", "30", "--audio", "desktop"])
        .stdout(Stdio::piped());
    let mut lines = None;
    let mut clips: Vec<(f64, PathBuf)> = Vec::new();
    let mut next_save = every;
    let mut asked = 0;
    let (status, samples) = run_sampled(
        cmd,
        &log,
        Duration::from_secs_f64(secs + 120.0),
        |t, child| {
            let rx = lines.get_or_insert_with(|| read_lines(child));
            while let Ok(l) = rx.try_recv() {
                clips.push((t, PathBuf::from(l)));
            }
            if t >= secs {
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            } else if t >= next_save {
                next_save += every;
                asked += 1;
                // SAFETY: as above.
                unsafe { libc::kill(child.id() as i32, libc::SIGUSR2) };
            }
        },
    );
    if let Some(rx) = &lines {
        while let Ok(l) = rx.recv_timeout(Duration::from_secs(1)) {
            clips.push((secs, PathBuf::from(l)));
        }
    }
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        status.success(),
        "zerocast record --replay: {status}\n{}",
        tail(&stderr)
    );
    let mem = Memory::new(&samples);
    println!(
        "endurance: replay RSS/fds per minute (floor MB/fds): {}",
        mem.table()
    );
    let mut lens = Vec::new();
    let mut bad = Vec::new();
    for (i, (t, clip)) in clips.iter().enumerate() {
        let p = ffprobe(clip);
        let (pts, key) = first_video_packet(clip);
        let o = avsync::onsets(clip, 0, Some(BAND))
            .map(|(f, b)| avsync::pair(&f, &b))
            .unwrap_or_default();
        let o = Offsets {
            pairs: o,
            ..Offsets::default()
        };
        println!(
            "endurance: clip {} at {:.0} s: {:.2} s, {} frames, first video packet {pts:.3} s {}, A/V in the file {}",
            i + 1,
            t,
            p.duration,
            p.frames,
            if key { "keyframe" } else { "NOT a keyframe" },
            ms(&o)
        );
        lens.push(p.duration);
        // A full ring: 30 s from a keyframe, at most a GOP (~1 s) more.
        if !(key && pts.abs() < 0.05 && (29.5..=31.5).contains(&p.duration) && o.pairs.len() >= 20)
        {
            bad.push(i + 1);
        }
    }
    let (lo, hi) = (
        lens.iter().copied().fold(f64::INFINITY, f64::min),
        lens.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "endurance: replay {minutes} min: {} of {asked} saves written, clips {lo:.2}–{hi:.2} s, {} start at a keyframe, bad clips {bad:?}; {}",
        clips.len(),
        clips.len() - bad.len(),
        mem.summary()
    );
    assert_eq!(
        clips.len(),
        asked,
        "saves asked vs clips written:\n{}",
        tail(&stderr)
    );
    assert!(
        bad.is_empty(),
        "clips {bad:?} are not full-ring clips from a keyframe in sync"
    );
    mem.check();
}

/// `pipewire-pulse` on the desktop's PipeWire, for `pactl suspend-sink` (the test desktop runs
/// no PulseAudio server of its own).
fn pulse(desk: &Desktop, dir: &Path) -> (Bg, PathBuf) {
    let sock = dir.join("pulse");
    std::fs::create_dir_all(&sock).unwrap();
    let server = Bg(desk
        .command("pipewire-pulse")
        .env("PULSE_RUNTIME_PATH", &sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pipewire-pulse"));
    let native = sock.join("native");
    let t0 = Instant::now();
    while !native.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "pipewire-pulse did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, native)
}

fn pactl(desk: &Desktop, server: &Path, args: &[&str]) {
    run_ok(
        desk.command("pactl")
            .env("PULSE_SERVER", format!("unix:{}", server.display()))
            .args(args),
    );
}

/// A busy loop on every core.
fn busy() -> Vec<Bg> {
    (0..std::thread::available_parallelism().map_or(2, |n| n.get()))
        .map(|_| {
            Bg(Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .expect("sh"))
        })
        .collect()
}

#[test]
#[ignore = "clock faults, ~5 min: cargo test --test endurance -- --ignored --nocapture clock_faults"]
fn clock_faults() {
    let _g = lock();
    let secs = 240.0;
    let dir = Dir::new();
    let file = dir.path().join("faults.mkv");
    let client_log = dir.path().join("avsync.log");
    let stats_json = dir.path().join("stats.json");
    let log = dir.path().join("zerocast.stderr");
    let (desk, client, painter) = desktop(secs + 60.0, &client_log);
    let (_pulse, server) = pulse(&desk, dir.path());
    let (client_pid, painter_pid) = (client.0.id() as i32, painter.0.id() as i32);
    let mut cmd = zerocast(&desk);
    cmd.args(["record", "--audio", "desktop", "--overwrite"])
        .args(["--duration", &secs.to_string(), "--stats-json"])
        .arg(&stats_json)
        .arg("-o")
        .arg(&file)
        .stdout(Stdio::null());
    // (seconds after spawn, what) — each fault's start and end, on CLOCK_MONOTONIC.
    let mut marks: Vec<(&str, i64)> = Vec::new();
    let mut step = 0;
    let mut load = Vec::new();
    let (status, _) = run_sampled(cmd, &log, Duration::from_secs_f64(secs + 120.0), |t, _| {
        let at = [30.0, 40.0, 60.0, 80.0, 100.0, 102.0, 130.0, 160.0];
        if step >= at.len() || t < at[step] {
            return;
        }
        let now = avsync::monotonic_ns();
        match step {
            0 => {
                pactl(&desk, &server, &["suspend-sink", audio::SPEAKERS, "1"]);
                marks.push(("sink suspended", now));
            }
            1 => {
                pactl(&desk, &server, &["suspend-sink", audio::SPEAKERS, "0"]);
                marks.push(("sink resumed", now));
            }
            2 => {
                desk.set_default_sink(audio::MIC).unwrap();
                marks.push(("default sink → test-mic", now));
            }
            3 => {
                desk.set_default_sink(audio::SPEAKERS).unwrap();
                marks.push(("default sink → test-speakers", now));
            }
            4 => {
                // Nothing on screen changes: the compositor sends no frame for 2 s (the
                // client's beeps stop with it; the sink plays silence).
                // SAFETY: kill(2) on the desktop's painter and our client, both running.
                unsafe {
                    libc::kill(painter_pid, libc::SIGSTOP);
                    libc::kill(client_pid, libc::SIGSTOP);
                }
                marks.push(("screen stalled", now));
            }
            5 => {
                // SAFETY: as above.
                unsafe {
                    libc::kill(painter_pid, libc::SIGCONT);
                    libc::kill(client_pid, libc::SIGCONT);
                }
                marks.push(("screen resumed", now));
            }
            6 => {
                load = busy();
                marks.push(("CPU load on", now));
            }
            _ => {
                load.clear();
                marks.push(("CPU load off", now));
            }
        }
        step += 1;
    });
    drop(load);
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        status.success(),
        "zerocast record: {status}\n{}",
        tail(&stderr)
    );
    assert_eq!(step, 8, "not every fault happened");
    let st = stats(&stats_json);
    let client = ClientLog::read(&client_log).unwrap();
    let zero = avsync::zero_from_log(&stderr).expect("zerocast logs the file's time zero");
    let a = av(&file, &client, zero);
    let painted = Painted::new(&counters(&file));
    let len = painted.file_duration;
    let at: Vec<f64> = marks
        .iter()
        .map(|(_, ns)| (ns - zero) as f64 * 1e-9)
        .collect();
    for ((what, _), t) in marks.iter().zip(&at) {
        println!("endurance: {what} at {t:.1} s of the file");
    }
    println!("endurance: in the file: {}", a.file.summary());
    // In sync from 3 s after each fault ends until the next one starts.
    let segments = [
        ("before", 0.0, at[0]),
        ("after the suspend", at[1] + 3.0, at[2]),
        ("after the first switch", at[2] + 3.0, at[3]),
        ("after the second switch", at[3] + 3.0, at[4]),
        ("after the stall", at[5] + 3.0, at[6]),
        ("under load", at[6] + 3.0, at[7]),
        ("after the load", at[7] + 3.0, len + 1.0),
    ];
    let mut failed = Vec::new();
    let mut parts = Vec::new();
    for (name, from, to) in segments {
        let w = window(&a.error, from, to);
        parts.push(format!("{name} {}", ms(&w)));
        // Under load the encoder falls behind and frames are dropped (counted): a flash whose
        // first frames were dropped starts late in the file, which reads as a large offset
        // for that one flash though the clocks are right. The goal is the sync *afterwards*;
        // under load only the median is held to the bound.
        let worst = if name == "under load" {
            w.median_abs()
        } else {
            w.worst_abs()
        };
        if w.pairs.len() < ((to - from).min(len - from) * 0.6) as usize || worst * 1e3 >= MAX_ABS_MS
        {
            failed.push(name);
        }
    }
    println!(
        "endurance: clock faults ({:.0} s): A/V error {}; trend {:+.2} ms/min; {}; recorder dropped {}",
        len,
        parts.join("; "),
        a.error.slope_ms_per_min(),
        painted.summary(),
        dropped(&st),
    );
    if !failed.is_empty() {
        eprintln!("{}\n{}", a.error.table(), tail(&stderr));
    }
    assert!(
        failed.is_empty(),
        "out of sync (or too few pairs): {failed:?}"
    );
    assert!(
        a.error.slope_ms_per_min().abs() < MAX_TREND_MS_PER_MIN,
        "{}",
        a.error.summary()
    );
    assert_eq!(dropped(&st), 0, "{st}");
    assert!(
        painted.drift().abs() <= 1.0 / PAINTER_FPS,
        "file vs wall clock: {}",
        painted.summary()
    );
}
