//! End-to-end audio: `zerocast record --audio …` on the test desktop, whose PipeWire has null
//! sinks for the speakers and the microphone. `zerocast-avsync` flashes the screen and beeps at
//! the same instant about once a second (uneven intervals, so a shift by whole beeps shows);
//! the file's flash onsets (blackdetect) and beep onsets (silencedetect) give the A/V offset.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use zerocast_testdesk::{audio, avsync, Desktop, DesktopOptions};

static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A desktop with nothing on screen but the A/V client.
fn desktop() -> Desktop {
    Desktop::start(DesktopOptions {
        painter_fps: None,
        ..DesktopOptions::default()
    })
    .expect("test desktop")
}

/// Median |offset| allowed: one video frame (60 Hz) + one audio packet (Opus: 20 ms; AAC:
/// 21.3 ms).
const MAX_MEDIAN: f64 = 1.0 / 60.0 + 0.0213;

struct Client(Child);

impl Client {
    /// Starts the flash+beep client (beeping to the default sink, or `target`).
    fn avsync(desk: &Desktop, seconds: f64, target: Option<&str>, app: &str) -> Client {
        Client::avsync_logged(desk, seconds, target, app, None)
    }

    /// The same, writing what it presented and played to `log` (see `avsync::ClientLog`).
    fn avsync_logged(
        desk: &Desktop,
        seconds: f64,
        target: Option<&str>,
        app: &str,
        log: Option<&Path>,
    ) -> Client {
        let bin = avsync::binary().expect(
            "zerocast-avsync not built (cargo build -p zerocast-testdesk --bins, or cargo test --workspace)",
        );
        let mut c = desk.command(bin);
        c.args([
            "--seconds",
            &seconds.to_string(),
            "--lead-in-ms",
            "700",
            "--app",
            app,
        ]);
        if let Some(t) = target {
            c.args(["--target", t]);
        }
        if let Some(l) = log {
            c.arg("--log").arg(l);
        }
        Client(
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("avsync"),
        )
    }

    /// A continuous tone from an application named `app` (to the default sink, or `target`).
    fn tone(desk: &Desktop, dir: &Path, hz: u32, app: &str, target: Option<&str>) -> Client {
        let wav = dir.join(format!("tone{hz}.wav"));
        if !wav.exists() {
            run_ok(
                Command::new("ffmpeg")
                    .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
                    .arg(format!("sine=f={hz}:d=120"))
                    .args(["-ar", "48000", "-ac", "2"])
                    .arg(&wav),
            );
        }
        let mut c = desk.command("pw-play");
        c.arg("-P")
            .arg(format!("{{ application.name={app} node.name={app} }}"));
        if let Some(t) = target {
            c.args(["--target", t]);
        }
        Client(
            c.arg(&wav)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("pw-play"),
        )
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `zerocast record` with `args` for `secs` seconds (`--duration`), output checked.
fn record(desk: &Desktop, file: &Path, secs: f64, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = zerocast(desk);
    c.arg("record")
        .args(args)
        .args(["--duration", &secs.to_string(), "--overwrite", "-o"])
        .arg(file);
    for (k, v) in env {
        c.env(k, v);
    }
    // A recording that never ends (a graph that never runs) fails here with the recorder's
    // log, instead of hanging the suite: SIGTERM after the duration + 60 s.
    let log = file.with_extension("stderr");
    c.stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = c.spawn().expect("spawn zerocast record");
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(secs + 60.0);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            panic!(
                "zerocast record {args:?} --duration {secs} still running after {:.0} s:\n{}",
                secs + 60.0,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "zerocast record {args:?} failed ({status}):\n{stderr}"
    );
    stderr
}

#[derive(Debug)]
struct Stream {
    codec: String,
    kind: String,
    duration: f64,
}

/// Streams of `file` with their durations from the last packet (containers differ in what they
/// write as stream duration).
fn streams(file: &Path) -> Vec<Stream> {
    let out = run_ok(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=index,codec_name,codec_type",
                "-of",
                "json",
            ])
            .arg(file),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let idx = s["index"].as_u64().unwrap();
            let pk = run_ok(
                Command::new("ffprobe")
                    .args(["-v", "error", "-select_streams", &idx.to_string()])
                    .args([
                        "-show_entries",
                        "packet=pts_time,duration_time",
                        "-of",
                        "csv=p=0",
                    ])
                    .arg(file),
            );
            let end = String::from_utf8_lossy(&pk.stdout)
                .lines()
                .filter_map(|l| {
                    let mut it = l.split(',');
                    let p: f64 = it.next()?.parse().ok()?;
                    let d: f64 = it.next().and_then(|d| d.parse().ok()).unwrap_or(0.0);
                    Some(p + d)
                })
                .fold(0.0, f64::max);
            Stream {
                codec: s["codec_name"].as_str().unwrap_or("").into(),
                kind: s["codec_type"].as_str().unwrap_or("").into(),
                duration: end,
            }
        })
        .collect()
}

/// Every track decodes without an error, and each audio track ends within one audio packet
/// (and the encoder's padding) of the video.
fn check_tracks(file: &Path, audio_codec: &str, n_audio: usize) -> Vec<Stream> {
    // Video frames pass as they are, in a 1 µs time base: with few frames (a screen that
    // changes only at the flashes) ffmpeg guesses ~5 fps and encodes in 1/5 s, where two frames
    // under 200 ms apart collide ("non monotonically increasing dts") though the file's
    // timestamps are fine. (`-enc_time_base -1`, "the input's", is refused by FFmpeg 9.)
    let out = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(file)
            .args([
                "-map",
                "0",
                "-fps_mode",
                "passthrough",
                "-enc_time_base:v",
                "1:1000000",
            ])
            .args(["-f", "null", "-"]),
    );
    assert!(
        out.stderr.is_empty(),
        "decoding errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = streams(file);
    let video = s
        .iter()
        .find(|s| s.kind == "video")
        .expect("a video stream");
    let audio: Vec<&Stream> = s.iter().filter(|s| s.kind == "audio").collect();
    assert_eq!(audio.len(), n_audio, "{s:?}");
    for a in &audio {
        assert_eq!(a.codec, audio_codec);
        assert!(
            (a.duration - video.duration).abs() < 0.05,
            "audio lasts {:.3} s, video {:.3} s",
            a.duration,
            video.duration
        );
    }
    s
}

/// Power of `hz` (Goertzel, full-scale sine = 1) in the decoded audio track `index` of `file`.
fn tone_power(file: &Path, index: usize, from: f64, len: f64, hz: f64) -> f64 {
    // -ss after -i: decoded from the start and cut, exact. Seeking the input instead fails on
    // a file whose screen did not move (two video frames: ffmpeg finds no codec parameters
    // for the video after the seek and writes nothing).
    let out = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(file)
            .args(["-ss", &from.to_string(), "-t", &len.to_string()])
            .args([
                "-map",
                &format!("0:a:{index}"),
                "-ac",
                "1",
                "-ar",
                "48000",
                "-f",
                "f32le",
                "-",
            ]),
    );
    let x: Vec<f64> = out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
        .collect();
    // Averaged over 200 ms segments: a gap or a relink inside the window shifts the tone's
    // phase, and one Goertzel over the whole window would sum the parts against each other
    // (down to nothing at half a cycle). The tones used are multiples of 5 Hz, so each fills
    // whole cycles of a segment and does not leak into another's bin.
    let w = 2.0 * std::f64::consts::PI * hz / 48000.0;
    let goertzel = |x: &[f64]| {
        let n = x.len() as f64;
        let (mut s1, mut s2) = (0.0, 0.0);
        for v in x {
            let s0 = v + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        4.0 * (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (n * n)
    };
    let seg = 9600;
    if x.len() < seg {
        return goertzel(&x);
    }
    let p: Vec<f64> = x.chunks_exact(seg).map(goertzel).collect();
    p.iter().sum::<f64>() / p.len() as f64
}

fn out_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The A/V offset over 60 s: median within a frame + a packet, no trend, and a 200 ms stall of
/// our audio capture thread (at 30 s) costs at most a second of sync.
#[test]
fn av_offset_is_small_has_no_trend_and_recovers_from_a_stall() {
    let _g = lock();
    let desk = desktop();
    let dir = out_dir();
    let file = dir.path().join("av.mkv");
    let client_log = dir.path().join("avsync.log");
    let _c = Client::avsync_logged(&desk, 66.0, None, "avsync", Some(&client_log));
    // The client's stream plays (its beeps reach the sink from now on).
    desk.wait_node_running("avsync", Duration::from_secs(30))
        .expect("the A/V client's stream");
    let log = record(
        &desk,
        &file,
        60.0,
        &["--audio", "desktop"],
        &[(zerocast_recorder::audio::STALL_ENV, "30000:200")],
    );
    assert!(log.contains("stalling the audio capture thread"), "{log}");
    // The stall really lost samples (PipeWire's time jumped): silence filled ≥ 100 ms.
    let gap: u64 = log
        .split("gap_frames: ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(gap >= 4800, "no gap after the stall ({gap} frames): {log}");
    check_tracks(&file, "opus", 1);
    for l in log
        .lines()
        .filter(|l| l.contains("DIAG") || l.contains("audio finished"))
    {
        eprintln!("{l}");
    }
    let o = avsync::measure(&file, 0).unwrap();
    eprintln!("zerocast mkv/opus 60 s, in the file: {}", o.summary());
    eprintln!("{}", o.table());
    assert!(o.pairs.len() >= 50, "{}", o.summary());
    assert!(o.median_abs() <= MAX_MEDIAN, "{}", o.summary());
    // The flashes the compositor presented late under load (a 2-core CI machine) would read as
    // the recorder's error: compare each pair with what the client really presented and played.
    let client = avsync::ClientLog::read(&client_log).unwrap();
    let zero = avsync::zero_from_log(&log).expect("zerocast logs the file's time zero");
    let r = o.against(&client, zero);
    eprintln!(
        "recorder's error (file offset − presented offset; {} of {} flashes presented > 10 ms late): {}",
        client.late(10),
        client.events.len(),
        r.summary()
    );
    eprintln!("{}", r.table());
    assert!(r.pairs.len() >= 50, "{}", r.summary());
    assert!(r.median_abs() <= MAX_MEDIAN, "{}", r.summary());
    assert!(r.slope_ms_per_min().abs() < 1.0, "{}", r.summary());
    // The stall happened ~30 s after start (the file starts ~1 s after that): from 1 s after
    // it every flash is back within the bound (a sample-counting clock would stay 170 ms off).
    let after = r.after(32.5);
    assert!(after.pairs.len() >= 20, "{}", after.summary());
    assert!(
        after.worst_abs() < 0.06,
        "after the stall: {}",
        after.summary()
    );
    assert!(
        after.median_abs() <= MAX_MEDIAN,
        "after the stall: {}",
        after.summary()
    );
}

/// Desktop and mic as two tracks (mp4: AAC), and mixed as one (webm: Opus); each track holds
/// what was played to its device; the mixed one holds both at full level.
#[test]
fn desktop_and_mic_as_two_tracks_and_mixed() {
    let _g = lock();
    let desk = desktop();
    let dir = out_dir();
    let _c = Client::avsync(&desk, 16.0, None, "avsync");
    let _mic = Client::tone(&desk, dir.path(), 440, "talker", Some(audio::MIC));
    // Both players really playing before the recording starts (a loaded machine takes its time).
    for node in ["avsync", "talker"] {
        desk.wait_node_running(node, Duration::from_secs(30))
            .unwrap();
    }

    let mp4 = dir.path().join("two.mp4");
    record(
        &desk,
        &mp4,
        5.0,
        &["--audio", "desktop", "--audio", "mic"],
        &[],
    );
    check_tracks(&mp4, "aac", 2);
    let d = avsync::measure(&mp4, 0).unwrap();
    eprintln!("mp4/aac desktop: {}", d.summary());
    assert!(
        d.pairs.len() >= 3 && d.median_abs() <= MAX_MEDIAN,
        "{}",
        d.summary()
    );
    // The mic track: the 440 Hz tone, no beeps; the desktop track: no 440 Hz.
    let powers = [
        tone_power(&mp4, 1, 1.0, 3.0, 440.0),
        tone_power(&mp4, 1, 1.0, 3.0, 1000.0),
        tone_power(&mp4, 0, 1.0, 3.0, 440.0),
    ];
    assert!(
        powers[0] > 0.003 && powers[1] < 1e-4 && powers[2] < 1e-4,
        "mic 440 Hz {:.2e} (> 3e-3), mic 1 kHz {:.2e} (< 1e-4), desktop 440 Hz {:.2e} (< 1e-4); \
         tracks {:?}",
        powers[0],
        powers[1],
        powers[2],
        streams(&mp4)
    );

    let webm = dir.path().join("mixed.webm");
    record(&desk, &webm, 5.0, &["--audio", "desktop+mic"], &[]);
    check_tracks(&webm, "opus", 1);
    // The tone at the level the mic track had (a sum, not an average), and the beeps in sync.
    let mic_level = tone_power(&mp4, 1, 1.0, 3.0, 440.0);
    let mixed_level = tone_power(&webm, 0, 1.0, 3.0, 440.0);
    assert!(
        (mixed_level / mic_level - 1.0).abs() < 0.2,
        "{mixed_level} vs {mic_level}"
    );
    // The tone under the beeps would fill the silences silencedetect needs: filtered out (it is
    // at 440 Hz, the beeps at 1 kHz). Mixing must not move the desktop's beeps against the
    // video: the same bound as the desktop track alone.
    let m = avsync::measure_above(&webm, 0, 800).unwrap();
    eprintln!("webm/opus desktop+mic: {}", m.summary());
    assert!(
        m.pairs.len() >= 3 && m.median_abs() <= MAX_MEDIAN,
        "{}",
        m.summary()
    );
}

/// An application's audio alone: the beeping client is recorded, another application's tone is
/// absent; flac in mkv.
#[test]
fn an_application_alone_flac() {
    let _g = lock();
    let desk = desktop();
    let dir = out_dir();
    let _c = Client::avsync(&desk, 12.0, None, "beeper");
    let _other = Client::tone(&desk, dir.path(), 440, "other-app", None);
    for node in ["beeper", "other-app"] {
        desk.wait_node_running(node, Duration::from_secs(30))
            .unwrap();
    }
    let file = dir.path().join("app.mkv");
    record(
        &desk,
        &file,
        5.0,
        &["--audio", "app:beeper", "--audio-codec", "flac"],
        &[],
    );
    check_tracks(&file, "flac", 1);
    let o = avsync::measure(&file, 0).unwrap();
    eprintln!("app/flac: {}", o.summary());
    assert!(
        o.pairs.len() >= 3 && o.median_abs() <= MAX_MEDIAN,
        "{}",
        o.summary()
    );
    assert!(
        tone_power(&file, 0, 1.0, 3.0, 440.0) < 1e-5,
        "the other application is absent"
    );
}

/// Pause removes the same span from audio and video: flashes and beeps stay paired after it,
/// and the file is shorter by the pause.
#[test]
fn pause_removes_the_same_span_from_both() {
    let _g = lock();
    let desk = desktop();
    let dir = out_dir();
    let file = dir.path().join("pause.mkv");
    let _c = Client::avsync(&desk, 20.0, None, "avsync");
    // The client's stream plays (its beeps reach the sink from now on).
    desk.wait_node_running("avsync", Duration::from_secs(30))
        .expect("the A/V client's stream");
    let t0 = std::time::Instant::now();
    let mut rec = spawn_record(&desk, &["--audio", "desktop", "--overwrite"], &file);
    wait_for_data(&file, 2000);
    std::thread::sleep(Duration::from_millis(3000));
    // SAFETY: kill() on our own child's PID.
    unsafe { libc::kill(rec.id() as i32, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: as above, our own child.
    unsafe { libc::kill(rec.id() as i32, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(4000));
    let wall = t0.elapsed().as_secs_f64();
    let out = signal_and_wait(&mut rec, libc::SIGINT, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = check_tracks(&file, "opus", 1);
    let v = s.iter().find(|s| s.kind == "video").unwrap().duration;
    // Everything from spawn to SIGINT but the 2.5 s pause and the start-up (portal, first
    // frame: well under 2 s).
    assert!(
        v < wall - 2.5 + 0.2 && v > wall - 2.5 - 2.0,
        "the pause is not right in the file: {v:.2} s of {wall:.2} s; {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o = avsync::measure(&file, 0).unwrap();
    eprintln!("pause: {}", o.summary());
    assert!(o.pairs.len() >= 6, "{}", o.summary());
    assert!(o.worst_abs() < 0.06, "{}", o.summary());
}

/// SIGTERM mid-recording leaves every track playable; after the default sink changes
/// mid-recording the desktop track holds what is played to the new default, not the old one.
/// Proven by where the sound went: a 500 Hz tone plays into the new default all along, and
/// after the change a 300 Hz tone plays into the old one. Both players are pinned to their
/// sinks (neither was the default when it was linked, so WirePlumber moves neither), so the
/// desktop track must gain the 500 Hz at the change and never hold the 300 Hz. A recorder left
/// on the old sink's monitor would hold the 300 Hz and no 500 Hz.
#[test]
fn sigterm_and_default_sink_change_keep_every_track() {
    let _g = lock();
    let desk = desktop();
    let dir = out_dir();
    let file = dir.path().join("term.mkv");
    // The beeps go to the default sink and follow it (WirePlumber moves the player too).
    let _c = Client::avsync(&desk, 30.0, None, "avsync");
    let _new = Client::tone(&desk, dir.path(), 500, "new-sink-tone", Some(audio::MIC));
    for node in ["avsync", "new-sink-tone"] {
        desk.wait_node_running(node, Duration::from_secs(30))
            .unwrap();
    }
    let mut rec = spawn_record(
        &desk,
        &["--audio", "desktop", "--audio", "mic", "--overwrite"],
        &file,
    );
    wait_for_data(&file, 2000);
    // Seconds of the old default in the file.
    std::thread::sleep(Duration::from_millis(3000));
    let switched = avsync::monotonic_ns();
    desk.set_default_sink(audio::MIC).unwrap();
    // Pinned to the old sink, which is no longer the default: it stays there. (A stream whose
    // target is the default when it is linked follows the default, as in PulseAudio: hence
    // started only now.)
    let _old = Client::tone(
        &desk,
        dir.path(),
        300,
        "old-sink-tone",
        Some(audio::SPEAKERS),
    );
    // WirePlumber moves the recorder's desktop stream (and the beeping player) in its own time.
    // Not fatal here: a recorder that never moves is caught by what the file holds.
    let followed = desk.wait_links(
        "the recorder and the player on the new default sink, the old sink's tone playing",
        Duration::from_secs(15),
        |l| {
            let has = |o: &str, i: &str| l.iter().any(|(a, b)| a == o && b == i);
            !has(audio::SPEAKERS, "zerocast-audio")
                && l.iter()
                    .filter(|(o, i)| o == audio::MIC && i == "zerocast-audio")
                    .count()
                    >= 4
                && has("avsync", audio::MIC)
                && has("old-sink-tone", audio::SPEAKERS)
        },
    );
    if let Err(e) = &followed {
        eprintln!("{e:#}");
    }
    desk.wait_node_running("old-sink-tone", Duration::from_secs(30))
        .unwrap();
    let moved = avsync::monotonic_ns();
    // Seconds of the new default in the file.
    std::thread::sleep(Duration::from_millis(4000));
    assert_eq!(desk.default_sink().unwrap().as_deref(), Some(audio::MIC));
    let out = signal_and_wait(&mut rec, libc::SIGTERM, Duration::from_secs(20));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let s = check_tracks(&file, "opus", 2);
    let v = s.iter().find(|s| s.kind == "video").unwrap().duration;
    let zero = avsync::zero_from_log(&log).expect("zerocast logs the file's time zero");
    let at = |ns: i64| (ns - zero) as f64 * 1e-9;
    let (switched, moved) = (at(switched), at(moved));
    eprintln!(
        "file {v:.2} s; default sink changed at {switched:.2} s, streams moved by {moved:.2} s"
    );
    assert!(switched > 2.0 && v - moved > 2.5, "{log}");
    // Before the change: not the new default's tone.
    let before = (1.0, switched - 1.2);
    let new_before = tone_power(&file, 0, before.0, before.1, 500.0);
    // After it: the new default's tone, not the old one's.
    let after = (moved + 0.3, v - moved - 0.6);
    let old_after = tone_power(&file, 0, after.0, after.1, 300.0);
    let new_after = tone_power(&file, 0, after.0, after.1, 500.0);
    eprintln!(
        "desktop track: 500 Hz (new sink) {new_before:.2e} before, {new_after:.2e} after; 300 Hz (old sink) after {old_after:.2e}"
    );
    assert!(new_before < 1e-4, "the new sink's sound before the change");
    assert!(
        new_after > 0.003 && old_after < 1e-4,
        "after the change the desktop track is not the new default sink's sound"
    );
    // The mic (the new sink's monitor, the default source throughout) had the 500 Hz all along:
    // the desktop track's change is its own.
    let (mic_before, mic_after) = (
        tone_power(&file, 1, before.0, before.1, 500.0),
        tone_power(&file, 1, after.0, after.1, 500.0),
    );
    eprintln!("mic track: 500 Hz {mic_before:.2e} before, {mic_after:.2e} after");
    assert!(mic_before > 0.003 && mic_after > 0.003);
    // The beeps are in the desktop track before the change (from the old default) and after it
    // (they followed to the new one), in sync. The tones are filtered out to find them.
    let o = avsync::measure_above(&file, 0, 800).unwrap();
    eprintln!("{}", o.table());
    let (b, a) = (o.after(1.0), o.after(after.0));
    let b = avsync::Offsets {
        pairs: b.pairs.into_iter().filter(|p| p.0 < switched).collect(),
        ..b
    };
    eprintln!(
        "before the default sink changed: {}\nafter: {}",
        b.summary(),
        a.summary()
    );
    assert!(!b.pairs.is_empty(), "{}", b.summary());
    assert!(a.pairs.len() >= 2, "{}", a.summary());
    assert!(a.median_abs() <= MAX_MEDIAN, "{}", a.summary());
}

/// `--audio node:NAME` records that node and nothing else: a sink the test creates, with a
/// tone played into it, while other tones play to the default sink (the desktop) and to the
/// microphone. A recorder that ignored the name would get the default's sound instead.
#[test]
fn a_named_node_alone() {
    let _g = lock();
    let desk = desktop();
    let dir = out_dir();
    desk.create_sink("test-line", Duration::from_secs(30))
        .unwrap();
    let _line = Client::tone(&desk, dir.path(), 660, "line-player", Some("test-line"));
    let _speakers = Client::tone(&desk, dir.path(), 440, "speaker-player", None);
    let _mic = Client::tone(&desk, dir.path(), 550, "mic-player", Some(audio::MIC));
    for node in ["line-player", "speaker-player", "mic-player"] {
        desk.wait_node_running(node, Duration::from_secs(30))
            .unwrap();
    }
    // The line player really feeds the new sink (not a fallback to the default).
    desk.wait_links("line-player → test-line", Duration::from_secs(15), |l| {
        l.iter()
            .any(|(o, i)| o == "line-player" && i == "test-line")
    })
    .unwrap();
    let file = dir.path().join("node.mkv");
    record(&desk, &file, 4.0, &["--audio", "node:test-line"], &[]);
    check_tracks(&file, "opus", 1);
    let (line, speakers, mic) = (
        tone_power(&file, 0, 1.0, 2.5, 660.0),
        tone_power(&file, 0, 1.0, 2.5, 440.0),
        tone_power(&file, 0, 1.0, 2.5, 550.0),
    );
    eprintln!("node:test-line: 660 Hz {line:.2e}, default sink's 440 Hz {speakers:.2e}, mic's 550 Hz {mic:.2e}");
    assert!(line > 0.003, "the named sink's sound is missing");
    assert!(speakers < 1e-4 && mic < 1e-4, "another device's sound");
}

/// `app:NAME` also records streams the application opens after the recording started: its
/// first stream plays (a 440 Hz tone, as when the user starts the recording) and ends; later a
/// new stream of the same application plays 660 Hz. The 660 Hz is in the file from its start
/// on, and not before; another application's tone never is.
#[test]
fn an_application_stream_opened_later() {
    let _g = lock();
    let desk = desktop();
    let dir = out_dir();
    let first = Client::tone(&desk, dir.path(), 440, "player", None);
    let _other = Client::tone(&desk, dir.path(), 550, "other-app", None);
    for node in ["player", "other-app"] {
        desk.wait_node_running(node, Duration::from_secs(30))
            .unwrap();
    }
    let file = dir.path().join("later.mkv");
    let mut rec = spawn_record(&desk, &["--audio", "app:player", "--overwrite"], &file);
    wait_for_data(&file, 2000);
    // Seconds of the first stream in the file.
    std::thread::sleep(Duration::from_millis(2500));
    let first_ended = avsync::monotonic_ns();
    drop(first);
    desk.wait_node_gone("player", Duration::from_secs(15))
        .unwrap();
    let later_started = avsync::monotonic_ns();
    let _later = Client::tone(&desk, dir.path(), 660, "player", None);
    desk.wait_node_running("player", Duration::from_secs(30))
        .unwrap();
    let later_running = avsync::monotonic_ns();
    // Seconds of the later stream in the file.
    std::thread::sleep(Duration::from_millis(3500));
    let out = signal_and_wait(&mut rec, libc::SIGINT, Duration::from_secs(20));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let s = check_tracks(&file, "opus", 1);
    let v = s.iter().find(|s| s.kind == "video").unwrap().duration;
    let zero = avsync::zero_from_log(&log).expect("zerocast logs the file's time zero");
    let at = |ns: i64| (ns - zero) as f64 * 1e-9;
    let (ended, started, running) = (at(first_ended), at(later_started), at(later_running));
    eprintln!("file {v:.2} s; first stream ended {ended:.2} s, the later one started {started:.2} s, running {running:.2} s");
    assert!(ended > 2.0 && v - running > 2.5, "{log}");
    let first_440 = tone_power(&file, 0, 1.0, ended - 1.2, 440.0);
    let before_660 = tone_power(&file, 0, 0.5, started - 0.7, 660.0);
    // The recorder attaches when the stream appears; half a second for that on a loaded machine.
    let after_660 = tone_power(&file, 0, running + 0.5, v - running - 0.8, 660.0);
    let other = tone_power(&file, 0, 0.5, v - 1.0, 550.0);
    eprintln!("app:player: 440 Hz (first stream) {first_440:.2e}; 660 Hz (later stream) before {before_660:.2e}, after {after_660:.2e}; other app {other:.2e}");
    assert!(first_440 > 0.003, "the first stream is missing");
    assert!(
        before_660 < 1e-4,
        "the later stream's sound before it started"
    );
    assert!(
        after_660 > 0.003,
        "the stream opened later is not recorded: {log}"
    );
    assert!(other < 1e-4, "another application's sound");
}

/// Bad audio input fails before the portal is asked, with the source named; no audio server
/// is an error only when audio is asked for.
#[test]
fn unknown_sources_and_no_audio_server() {
    let _g = lock();
    let desk = desktop();
    let dir = out_dir();
    let file = dir.path().join("x.mkv");
    let out = zerocast(&desk)
        .args([
            "record",
            "--audio",
            "node:no-such-sink",
            "--duration",
            "1",
            "-o",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no audio source named \"no-such-sink\"")
            && err.contains("node:test-speakers"),
        "{err}"
    );
    assert_eq!(desk.source_selections(), 0, "the portal was asked");
    assert!(!file.exists());
    // Audio's daemon is unreachable (the portal's PipeWire remote is still fine for video).
    let out = zerocast(&desk)
        .env("PIPEWIRE_REMOTE", "/nonexistent/pipewire-0")
        .args(["record", "--audio", "desktop", "--duration", "1", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no audio server"), "{err}");
    assert_eq!(desk.source_selections(), 0);
    let _c = Client::avsync(&desk, 6.0, None, "avsync");
    // The client's stream plays (its beeps reach the sink from now on).
    desk.wait_node_running("avsync", Duration::from_secs(30))
        .expect("the A/V client's stream");
    record(
        &desk,
        &file,
        1.5,
        &[],
        &[("PIPEWIRE_REMOTE", "/nonexistent/pipewire-0")],
    );
    assert_eq!(streams(&file).len(), 1);
}
