//! Audio capture against a real PipeWire daemon (+ WirePlumber) with null sinks standing in for
//! the speakers and the microphone: `desktop`, `mic` and `app:NAME` record what is played there
//! (checked by the tone's frequency), and nothing else; an unknown name is a named error.
//!
//! Needs `pipewire`, `wireplumber`, `pw-play` (pipewire-bin) and `ffmpeg` (to make the tones).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use zerocast_recorder::audio::timing::FileClock;
use zerocast_recorder::audio::{
    self, AudioError, AudioSource, AudioThread, NodeKind, TrackSet, TrackSpec, CHANNELS, RATE,
};

/// PIDs of the daemons and the dir, for the exit handler: a static is never dropped, so the
/// daemons are ended when the test process exits (the harness calls `exit`, which runs
/// `atexit` handlers).
static CLEANUP: Mutex<(Vec<i32>, Option<PathBuf>)> = Mutex::new((Vec::new(), None));

extern "C" fn cleanup() {
    if let Ok(mut c) = CLEANUP.lock() {
        for pid in c.0.drain(..).rev() {
            // SAFETY: kill/waitpid on PIDs of our own children; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        if let Some(d) = c.1.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// pipewire + wireplumber with two null sinks (`test-speakers`, the default sink, and
/// `test-mic`, whose monitor is the default source); this process's PipeWire clients connect
/// to it. One per test binary; tests take `lock()`.
struct Daemon {
    dir: PathBuf,
    /// Ended by [`cleanup`] at exit.
    _children: Vec<Child>,
}

fn daemon() -> &'static Daemon {
    static D: OnceLock<Daemon> = OnceLock::new();
    D.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("zerocast-audio-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let conf = dir.join("config/pipewire/pipewire.conf.d");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(dir.join("config/wireplumber/wireplumber.conf.d")).unwrap();
        std::fs::write(conf.join("50-test-sinks.conf"), zerocast_testdesk_sinks()).unwrap();
        std::fs::write(
            dir.join("config/wireplumber/wireplumber.conf.d/50-headless.conf"),
            "wireplumber.profiles = { main = { monitor.alsa = disabled monitor.bluez = disabled \
             monitor.v4l2 = disabled monitor.libcamera = disabled monitor.alsa-midi = disabled \
             monitor.bluez-midi = disabled } }\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        // SAFETY: set once, before this binary's first PipeWire connection, under the OnceLock.
        unsafe {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
            std::env::set_var("PIPEWIRE_RUNTIME_DIR", &dir);
            std::env::set_var("XDG_CONFIG_HOME", dir.join("config"));
            std::env::set_var("XDG_STATE_HOME", dir.join("state"));
            std::env::set_var("DBUS_SESSION_BUS_ADDRESS", "disabled:");
        }
        let spawn = |prog: &str| {
            Command::new(prog)
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join(format!("{prog}.log"))).unwrap(),
                ))
                .spawn()
                .unwrap_or_else(|e| panic!("{prog}: {e}"))
        };
        let mut children = vec![spawn("pipewire")];
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(dir.join("pipewire-0")).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "pipewire did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        children.push(spawn("wireplumber"));
        {
            let mut c = CLEANUP.lock().unwrap();
            c.0 = children.iter().map(|c| c.id() as i32).collect();
            c.1 = Some(dir.clone());
        }
        // SAFETY: registers a plain extern "C" function once (under the OnceLock).
        unsafe { libc::atexit(cleanup) };
        // Wait for WirePlumber to pick the default sink, then make test-mic's monitor the
        // default source (what a microphone is to us).
        let t0 = Instant::now();
        loop {
            let out = Command::new("pw-metadata").args(["0"]).output().unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("default.audio.sink") {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "no default sink");
            std::thread::sleep(Duration::from_millis(50));
        }
        let st = Command::new("pw-metadata")
            .args([
                "0",
                "default.configured.audio.source",
                r#"{"name":"test-mic"}"#,
                "Spa:String:JSON",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        tone(&dir, 440);
        tone(&dir, 1000);
        Daemon {
            dir,
            _children: children,
        }
    })
}

/// The same null sinks as the test desktop's (tests/desktop writes this drop-in too).
fn zerocast_testdesk_sinks() -> &'static str {
    "context.objects = [\n\
     { factory = adapter args = { factory.name = support.null-audio-sink node.name = test-speakers \
       node.description = \"Test speakers\" media.class = Audio/Sink object.linger = true \
       audio.position = [ FL FR ] priority.session = 2000 priority.driver = 2000 } }\n\
     { factory = adapter args = { factory.name = support.null-audio-sink node.name = test-mic \
       node.description = \"Test microphone\" media.class = Audio/Sink object.linger = true \
       audio.position = [ FL FR ] priority.session = 1000 priority.driver = 1000 } }\n\
     ]\n"
}

fn tone(dir: &Path, hz: u32) -> PathBuf {
    let p = dir.join(format!("tone{hz}.wav"));
    if !p.exists() {
        let st = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("sine=f={hz}:d=30"))
            .args(["-ar", "48000", "-ac", "2"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
    }
    p
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|e| e.into_inner())
}

/// A pw-play process, killed on drop.
struct Player(Child);

impl Player {
    fn start(hz: u32, app: &str, target: Option<&str>) -> Player {
        let d = daemon();
        let mut c = Command::new("pw-play");
        c.arg("-P")
            .arg(format!("{{ application.name={app} node.name={app}-out }}"));
        if let Some(t) = target {
            c.args(["--target", t]);
        }
        c.arg(tone(&d.dir, hz))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Player(c.spawn().expect("pw-play"))
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Records `tracks` for `secs` through the audio thread (file origin = now) and returns each
/// track's samples (interleaved stereo).
fn capture(tracks: Vec<TrackSpec>, secs: f64) -> Vec<Vec<f32>> {
    let set = TrackSet::new(tracks.clone());
    let out: Arc<Mutex<Vec<Vec<f32>>>> = Arc::new(Mutex::new(vec![Vec::new(); tracks.len()]));
    let origin = zerocast_recorder::audio::monotonic_ns();
    let sink_out = Arc::clone(&out);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let slot: Arc<Mutex<Option<zerocast_recorder::audio::BlockReturn>>> =
        Arc::new(Mutex::new(None));
    let ret = Arc::clone(&slot);
    let thread = AudioThread::start(
        &set,
        None,
        Box::new(move |c: &mut FileClock| c.origin = Some(origin)),
        Box::new(move |b| {
            let mut o = sink_out.lock().unwrap();
            let track = &mut o[b.track];
            assert_eq!(
                track.len() / CHANNELS,
                b.pos as usize,
                "blocks are contiguous"
            );
            track.extend_from_slice(&b.data);
            if let Some(r) = ret.lock().unwrap().as_ref() {
                r.give_back(b);
            }
            true
        }),
        tx,
        tracing::Span::none(),
    )
    .expect("audio thread");
    *slot.lock().unwrap() = Some(thread.block_return());
    std::thread::sleep(Duration::from_secs_f64(secs));
    // The end is "now", as a recording's stop decides it.
    let end = Duration::from_nanos((zerocast_recorder::audio::monotonic_ns() - origin) as u64);
    let summary = thread.finish(end);
    eprintln!("summary {summary:?}");
    let o = out.lock().unwrap().clone();
    for t in &o {
        assert_eq!(
            t.len() / CHANNELS,
            audio::timing::ns_to_frames(end.as_nanos() as i64) as usize,
            "every track lasts exactly the recording"
        );
    }
    o
}

/// Power of `hz` in the left channel of `s` (Goertzel), normalised to a full-scale sine = 1.
fn power(s: &[f32], hz: f64) -> f64 {
    let x: Vec<f64> = s.iter().step_by(CHANNELS).map(|&v| v as f64).collect();
    let n = x.len() as f64;
    let w = 2.0 * std::f64::consts::PI * hz / RATE as f64;
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in &x {
        let s0 = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    4.0 * p / (n * n)
}

/// The last second (the players need a moment to start and to be linked).
fn tail(s: &[f32]) -> &[f32] {
    &s[s.len().saturating_sub(RATE as usize * CHANNELS)..]
}

fn track(s: &str) -> TrackSpec {
    s.parse().unwrap()
}

#[test]
fn desktop_mic_and_app_record_what_plays_there_and_nothing_else() {
    let _l = lock();
    daemon();
    let _speakers = Player::start(440, "other", None);
    let _mic = Player::start(1000, "talker", Some("test-mic"));
    std::thread::sleep(Duration::from_millis(500));
    let t = capture(
        vec![track("desktop"), track("mic"), track("desktop+mic")],
        2.0,
    );
    let (d, m, mix) = (tail(&t[0]), tail(&t[1]), tail(&t[2]));
    eprintln!(
        "desktop 440 {:.3} 1k {:.3}; mic 440 {:.3} 1k {:.3}; mix {:.3} {:.3}",
        power(d, 440.0),
        power(d, 1000.0),
        power(m, 440.0),
        power(m, 1000.0),
        power(mix, 440.0),
        power(mix, 1000.0)
    );
    // pw-play's sine is at 1/8 full scale (−18 dBFS): power ≈ 0.0156.
    assert!(power(d, 440.0) > 0.005 && power(d, 1000.0) < 1e-5);
    assert!(power(m, 1000.0) > 0.005 && power(m, 440.0) < 1e-5);
    // Mixed: both, each at its own level (a sum, not an average).
    assert!((power(mix, 440.0) / power(d, 440.0) - 1.0).abs() < 0.1);
    assert!((power(mix, 1000.0) / power(m, 1000.0) - 1.0).abs() < 0.1);
}

#[test]
fn an_application_is_recorded_alone() {
    let _l = lock();
    daemon();
    let _beeper = Player::start(1000, "beeper", None);
    let _other = Player::start(440, "other", None);
    std::thread::sleep(Duration::from_millis(500));
    let nodes = audio::list_sources().unwrap();
    assert!(nodes
        .iter()
        .any(|n| n.kind == NodeKind::App && n.matches_app("beeper")));
    assert!(nodes
        .iter()
        .any(|n| n.kind == NodeKind::Sink && n.name == "test-speakers"));
    let tracks = audio::resolve(&[track("app:beeper")]).unwrap();
    let t = capture(tracks, 2.0);
    let a = tail(&t[0]);
    eprintln!("app 1k {:.4} 440 {:.6}", power(a, 1000.0), power(a, 440.0));
    assert!(power(a, 1000.0) > 0.005);
    assert!(power(a, 440.0) < 1e-5, "the other application is absent");
}

#[test]
fn unknown_sources_are_named_errors() {
    let _l = lock();
    daemon();
    let e = audio::resolve(&[track("node:no-such-sink")]).unwrap_err();
    assert!(matches!(e, AudioError::UnknownSource { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("no-such-sink") && msg.contains("node:test-speakers"),
        "{msg}"
    );
    assert!(audio::resolve(&[track("app:nothing-plays")]).is_err());
    assert_eq!(
        audio::resolve(&[track("desktop")]).unwrap(),
        vec![TrackSpec {
            sources: vec![AudioSource::Desktop]
        }]
    );
}

/// A source that is silent for a while (nothing plays) still gives a track of the full length:
/// the sink is suspended after a few seconds without clients, and silence fills in.
#[test]
fn a_silent_desktop_is_a_silent_track_of_full_length() {
    let _l = lock();
    daemon();
    let t = capture(vec![track("desktop")], 1.5);
    assert!(t[0].iter().all(|&v| v == 0.0));
}
