//! Helpers shared by the end-to-end tests: run zerocast inside a test desktop, inspect files
//! with ffprobe, decode pixels with ffmpeg.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the shared helpers"
)]

pub mod daemon;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use zerocast_testdesk::{Desktop, DesktopOptions, Flavour, Layout};

/// Defines `fn name(flavour: Flavour)` and runs it on every test desktop, as the tests
/// `name::sway` (sway + xdg-desktop-portal-wlr), `name::gnome` (gnome-shell +
/// xdg-desktop-portal-gnome) and `name::kde` (kwin_wayland --virtual + xdg-desktop-portal-kde).
///
/// These tests record the monitor (zerocast's default source). KDE's monitor casts give nothing
/// on these machines (5.27: the virtual output is never announced, 0 frames; 6.x without a
/// render node: kwin refuses every cast), so `name::kde` prints `SKIPPED` with that reason
/// (`kde_monitor_cast_unsupported`) and returns, and runs the body where a monitor cast works.
/// What KDE can record, a window, is tested in tests/kde_e2e.rs. A test that records nothing
/// starts with `no_monitor_cast;` and then runs on KDE too (skipped only without kwin). A test
/// that starts with `window_on_kde;` records with [`source_args`] (on KDE the painter's
/// window, a fullscreen toplevel: the same pixels) and runs on KDE wherever window casts work
/// (5.27; `kde_window_cast_unsupported` says why not).
#[macro_export]
macro_rules! on_both_desktops {
    (window_on_kde; $(#[$m:meta])* fn $name:ident($flavour:ident: Flavour) $body:block) => {
        $(#[$m])*
        fn $name($flavour: zerocast_testdesk::Flavour) $body

        mod $name {
            #[test]
            fn sway() {
                super::$name(zerocast_testdesk::Flavour::Sway)
            }

            #[test]
            fn gnome() {
                super::$name(zerocast_testdesk::Flavour::Gnome)
            }

            #[test]
            fn kde() {
                if let Some(why) = zerocast_testdesk::desktop::kde_window_cast_unsupported() {
                    zerocast_testdesk::skipped(concat!(module_path!(), "::kde"), &why);
                    return;
                }
                super::$name(zerocast_testdesk::Flavour::Kde)
            }
        }
    };
    (no_monitor_cast; $(#[$m:meta])* fn $name:ident($flavour:ident: Flavour) $body:block) => {
        $(#[$m])*
        fn $name($flavour: zerocast_testdesk::Flavour) $body

        mod $name {
            #[test]
            fn sway() {
                super::$name(zerocast_testdesk::Flavour::Sway)
            }

            #[test]
            fn gnome() {
                super::$name(zerocast_testdesk::Flavour::Gnome)
            }

            #[test]
            fn kde() {
                if zerocast_testdesk::desktop::kwin_version().is_none() {
                    zerocast_testdesk::skipped(
                        concat!(module_path!(), "::kde"),
                        "kwin_wayland is not installed (scripts/install-deps.sh)",
                    );
                    return;
                }
                super::$name(zerocast_testdesk::Flavour::Kde)
            }
        }
    };
    ($(#[$m:meta])* fn $name:ident($flavour:ident: Flavour) $body:block) => {
        $(#[$m])*
        fn $name($flavour: zerocast_testdesk::Flavour) $body

        mod $name {
            #[test]
            fn sway() {
                super::$name(zerocast_testdesk::Flavour::Sway)
            }

            #[test]
            fn gnome() {
                super::$name(zerocast_testdesk::Flavour::Gnome)
            }

            #[test]
            fn kde() {
                if let Some(why) = zerocast_testdesk::desktop::kde_monitor_cast_unsupported() {
                    zerocast_testdesk::skipped(concat!(module_path!(), "::kde"), &why);
                    return;
                }
                super::$name(zerocast_testdesk::Flavour::Kde)
            }
        }
    };
}

/// A default desktop of the given flavour.
pub fn desktop_of(flavour: Flavour) -> Desktop {
    Desktop::start(DesktopOptions {
        flavour,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{flavour} test desktop: {e:#}"))
}

/// A frame-count threshold per desktop: sway delivers every frame of the 60 fps painter;
/// gnome-shell renders with llvmpipe and sends ~18 fps on 2 cores
/// ([`Flavour::min_recorded_fps`]: 6 fps, a third of that, for CI load). KWin renders with
/// llvmpipe too (~29 fps of a window cast idle): GNOME's threshold.
pub fn per_desktop(flavour: Flavour, sway: u64, gnome: u64) -> u64 {
    match flavour {
        Flavour::Sway => sway,
        Flavour::Gnome | Flavour::Kde => gnome,
    }
}

/// The `zerocast record` arguments that pick what `on_both_desktops! { window_on_kde; .. }`
/// tests record: the monitor (the default) on sway and GNOME, the painter's window on KDE
/// (monitor casts give nothing there; the painter is a fullscreen window, the harness seeded a
/// restore token for it).
pub fn source_args(flavour: Flavour) -> &'static [&'static str] {
    match flavour {
        Flavour::Kde => &["--source", "window"],
        Flavour::Sway | Flavour::Gnome => &[],
    }
}

/// Frames a recording of `secs` seconds must at least hold on `flavour`'s desktop.
pub fn min_frames(flavour: Flavour, secs: f64) -> u64 {
    (flavour.min_recorded_fps() * secs).floor() as u64
}

/// What the compositor painted while a recording ran. On GNOME mutter renders on the CPU, and
/// its rate is the machine's load's (~18 fps idle, a few when oversubscribed): the flavour's
/// fixed floor there only catches a stalled stream, so a frame count is held against mutter's
/// own stage paint count over the same time. sway and KWin: the fixed floor.
pub struct Paints {
    flavour: Flavour,
    start: Option<(u64, std::time::Instant)>,
    cap: Option<f64>,
}

impl Paints {
    /// Starts counting (call it just before the recording starts).
    pub fn start(desk: &Desktop) -> Self {
        let start = (desk.flavour() == Flavour::Gnome).then(|| {
            (
                desk.compositor_frames().expect("mutter's paint count"),
                std::time::Instant::now(),
            )
        });
        Paints {
            flavour: desk.flavour(),
            start,
            cap: None,
        }
    }

    /// The recording's frame-rate cap (`framerate`): mutter may paint faster than it.
    pub fn capped(self, fps: f64) -> Self {
        Paints {
            cap: Some(fps),
            ..self
        }
    }

    /// mutter's paint rate since [`Paints::start`] (None elsewhere).
    pub fn fps(&self, desk: &Desktop) -> Option<f64> {
        let (before, t0) = self.start?;
        let after = desk.compositor_frames().expect("mutter's paint count");
        Some((after - before) as f64 / t0.elapsed().as_secs_f64())
    }

    /// The fewest frames `secs` recorded seconds may hold: on GNOME 60 % of what mutter painted
    /// in that time (the rest is the portal's start-up and jitter; a stream that loses every
    /// other frame fails), never below the flavour's floor.
    pub fn min_frames(&self, desk: &Desktop, secs: f64) -> u64 {
        let floor = min_frames(self.flavour, secs);
        match self.fps(desk) {
            Some(fps) => {
                let fps = self.cap.map_or(fps, |cap| fps.min(cap));
                floor.max((0.6 * fps * secs).floor() as u64)
            }
            None => floor,
        }
    }
}

/// The decoded frame shows what the compositor showed: the four quadrants of `rgb` match a
/// screenshot taken from the compositor itself (grim on sway, org.gnome.Shell.Screenshot on
/// GNOME) and the painter's colours.
///
/// KDE: the recording is the painter's window and the flavour takes no screenshots (KWin's
/// ScreenShot2 hands images over a file descriptor): the painter's colours only.
pub fn assert_matches_screen(rgb: &[u8], desk: &Desktop, layout: Layout) {
    use zerocast_testdesk::layout::{close, Quadrant};
    if desk.flavour() == Flavour::Kde {
        assert_quadrants(rgb, layout);
        return;
    }
    let shot = desk.screenshot().expect("screenshot of the compositor");
    assert_eq!(
        (shot.width, shot.height),
        (layout.width, layout.height),
        "{}: screenshot size",
        desk.flavour()
    );
    for q in Quadrant::ALL {
        let r = layout.quadrant_rect(q);
        for (fx, fy) in [(0.25, 0.25), (0.5, 0.5), (0.75, 0.75)] {
            let x = r.x + (r.w as f64 * fx) as u32;
            let y = r.y + (r.h as f64 * fy) as u32;
            let i = ((y * layout.width + x) * 3) as usize;
            let got = [rgb[i], rgb[i + 1], rgb[i + 2]];
            let shown = shot.pixel(x, y);
            assert!(
                close(got, shown, 12),
                "{} {q:?} at ({x},{y}): file has {got:?}, the compositor showed {shown:?}",
                desk.flavour()
            );
        }
    }
    assert_quadrants(rgb, layout);
}

pub fn zerocast_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zerocast"))
}

/// `zerocast` inside the desktop's environment.
pub fn zerocast(desk: &Desktop) -> Command {
    let mut c = desk.command(zerocast_bin());
    c.env("ZEROCAST_LOG", "info,zbus=warn");
    c
}

/// `zerocast-tray`, next to `zerocast`. Test binaries of the root package do not get other
/// packages' binaries built, so it is built here when missing (the full suite builds it anyway).
pub fn tray_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let zc = zerocast_bin();
        let dir = zc.parent().unwrap();
        let bin = dir.join("zerocast-tray");
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "zerocast-tray", "--bin", "zerocast-tray"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        // Always ask cargo: it is a no-op when the binary is fresh, and a stale one would test
        // old code.
        run_ok(&mut cmd);
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

/// `zerocast record <args> -o <file>` in the background, output captured.
pub fn spawn_record(desk: &Desktop, args: &[&str], file: &Path) -> std::process::Child {
    zerocast(desk)
        .arg("record")
        .args(args)
        .arg("-o")
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn zerocast record")
}

/// Waits until `file` holds at least `bytes` bytes (frames are being written).
pub fn wait_for_data(file: &Path, bytes: u64) {
    let t0 = std::time::Instant::now();
    while std::fs::metadata(file).map(|m| m.len()).unwrap_or(0) < bytes {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no data written to {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `swaymsg` on the sway desktop's IPC socket with `args`; its stdout.
pub fn swaymsg(desk: &Desktop, args: &[&str]) -> String {
    let sock = desk.swaysock().expect("sway's IPC socket");
    let o = run_ok(desk.command("swaymsg").arg("-s").arg(&sock).args(args));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Sets the sway test desktop's output to `mode` (e.g. "1024x768"): a monitor's mode change.
pub fn set_output_mode(desk: &Desktop, mode: &str) {
    swaymsg(
        desk,
        &[
            "output",
            zerocast_testdesk::desktop::OUTPUT_NAME,
            "mode",
            mode,
        ],
    );
}

/// The desktop's `XDG_STATE_HOME` (where zerocast keeps its restore tokens).
pub fn state_home(desk: &Desktop) -> PathBuf {
    desk.env()
        .into_iter()
        .find(|(k, _)| k == "XDG_STATE_HOME")
        .map(|(_, v)| PathBuf::from(v))
        .expect("desktop sets XDG_STATE_HOME")
}

/// Runs a command and fails the test with its output if it did not exit 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What ffprobe says about the first video stream.
#[derive(Debug)]
pub struct Probe {
    pub width: u32,
    pub height: u32,
    pub codec: String,
    pub pix_fmt: String,
    pub duration: f64,
    pub frames: u64,
}

pub fn ffprobe(path: &Path) -> Probe {
    let out = run_ok(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height,codec_name,pix_fmt,nb_read_frames:format=duration",
                "-of",
                "json",
            ])
            .arg(path),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let s = &v["streams"][0];
    let num = |x: &serde_json::Value| -> f64 {
        x.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| x.as_f64())
            .unwrap_or(f64::NAN)
    };
    Probe {
        width: s["width"].as_u64().unwrap_or(0) as u32,
        height: s["height"].as_u64().unwrap_or(0) as u32,
        codec: s["codec_name"].as_str().unwrap_or("").to_string(),
        pix_fmt: s["pix_fmt"].as_str().unwrap_or("").to_string(),
        duration: num(&v["format"]["duration"]),
        frames: num(&s["nb_read_frames"]) as u64,
    }
}

/// Decodes the frame at `at` seconds to packed RGB24.
pub fn frame_rgb(path: &Path, at: f64, width: u32, height: u32) -> Vec<u8> {
    let out = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-ss", &format!("{at:.3}"), "-i"])
            .arg(path)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
    );
    assert_eq!(
        out.stdout.len(),
        (width * height * 3) as usize,
        "decoded frame has the wrong size"
    );
    out.stdout
}

/// Decodes every frame's counter (the painter's frame number) from the top band.
pub fn frame_counters(path: &Path, layout: Layout) -> Vec<u32> {
    let band = layout.counter_band();
    // Even: ffmpeg crops 4:2:0 frames to whole chroma rows, so an odd height (720p's band is 45
    // rows) came out one row shorter and every frame after the first was read shifted, a few
    // frames fewer in all.
    let rows = (band.h + 1) & !1;
    let out = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args([
                // One output frame per coded frame: rawvideo would otherwise be made CFR.
                "-fps_mode",
                "passthrough",
                // Output timestamps in µs: every frame of a VFR file keeps a distinct one.
                "-enc_time_base",
                "1:1000000",
                "-vf",
                &format!("crop={}:{rows}:0:0", layout.width),
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-",
            ]),
    );
    let frame_len = (layout.width * rows * 3) as usize;
    assert_eq!(
        out.stdout.len() % frame_len,
        0,
        "{}: ffmpeg's frames are not {}x{rows}",
        path.display(),
        layout.width
    );
    out.stdout
        .chunks_exact(frame_len)
        .map(|f| {
            layout.decode_counter(|x, y| {
                let i = ((y * layout.width + x) * 3) as usize;
                [f[i], f[i + 1], f[i + 2]]
            })
        })
        .collect()
}

/// Asserts the four quadrant colours of the painter are in `rgb` (within YUV rounding).
pub fn assert_quadrants(rgb: &[u8], layout: Layout) {
    use zerocast_testdesk::layout::{close, Quadrant};
    for q in Quadrant::ALL {
        let r = layout.quadrant_rect(q);
        // Sample inside the rectangle, away from edges where chroma subsampling blends colours.
        for (fx, fy) in [(0.25, 0.25), (0.5, 0.5), (0.75, 0.75)] {
            let x = r.x + (r.w as f64 * fx) as u32;
            let y = r.y + (r.h as f64 * fy) as u32;
            let i = ((y * layout.width + x) * 3) as usize;
            let got = [rgb[i], rgb[i + 1], rgb[i + 2]];
            assert!(
                close(got, q.color(), 12),
                "{q:?} at ({x},{y}): got {got:?}, painter drew {:?}",
                q.color()
            );
        }
    }
}

/// Sends `sig` to a child and waits for it with a timeout.
pub fn signal_and_wait(child: &mut std::process::Child, sig: i32, timeout: Duration) -> Output {
    // SAFETY: kill() with a PID we own (our child) has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, sig) };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "child did not exit after signal {sig}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    use std::io::Read;
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut stderr);
    }
    Output {
        status: child.try_wait().unwrap().unwrap(),
        stdout,
        stderr,
    }
}
