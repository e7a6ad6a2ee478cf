//! Audio tracks through the encoder and muxer, without PipeWire: synthetic frames and blocks in
//! every container/codec pair, checked with ffprobe/ffmpeg. Every audio track ends where the
//! video ends (the recording's `end`), a gap between blocks is silence, and the tone lands at its
//! position.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use zerocast_recorder::audio::{AudioCodec, AudioConfig, Block, TrackSpec, CHANNELS, RATE};
use zerocast_recorder::encode::{Encoder, EncoderConfig};
use zerocast_recorder::frame::{CpuFrame, PixelFormat};
use zerocast_recorder::{Codec, Container, EncoderChoice, RateControl};

const W: u32 = 320;
const H: u32 = 240;

fn frame(pts_ms: u64, white: bool) -> CpuFrame {
    let mut f = CpuFrame::empty();
    f.width = W;
    f.height = H;
    f.format = PixelFormat::Bgrx;
    f.stride = W as usize * 4;
    f.pts = Duration::from_millis(pts_ms);
    f.data = vec![if white { 255 } else { 0 }; (W * H * 4) as usize];
    f
}

/// `frames` frames of a 1 kHz tone (or silence) at file position `pos`.
fn block(track: usize, pos: i64, frames: usize, tone: bool) -> Block {
    let mut data = Vec::with_capacity(frames * CHANNELS);
    for i in 0..frames {
        let t = (pos + i as i64) as f64 / RATE as f64;
        let v = if tone {
            (t * 1000.0 * 2.0 * std::f64::consts::PI).sin() as f32 * 0.5
        } else {
            0.0
        };
        data.extend_from_slice(&[v, v]);
    }
    Block { track, pos, data }
}

fn stream_ends(path: &Path) -> Vec<(String, f64)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_matches(',').to_string())
        .collect();
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let pk = Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", &i.to_string()])
                .args([
                    "-show_entries",
                    "packet=pts_time,duration_time",
                    "-of",
                    "csv=p=0",
                ])
                .arg(path)
                .output()
                .unwrap();
            let end = String::from_utf8_lossy(&pk.stdout)
                .lines()
                .filter_map(|l| {
                    let mut it = l.split(',');
                    let p: f64 = it.next()?.parse().ok()?;
                    let d: f64 = it.next().and_then(|d| d.parse().ok()).unwrap_or(0.0);
                    Some(p + d)
                })
                .fold(0.0, f64::max);
            (n.clone(), end)
        })
        .collect()
}

/// Starts of white frames (ends of black) in the video.
fn flashes(path: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-vf", "blackdetect=d=0.05:pix_th=0.3"])
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr)
        .split("black_end:")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Onsets of sound (ends of silence) in audio track `track`.
fn onsets(path: &Path, track: usize) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args([
            "-map",
            &format!("0:a:{track}"),
            "-af",
            "silencedetect=n=-30dB:d=0.05",
        ])
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr)
        .split("silence_end:")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect()
}

fn encode(container: Container, codec: Codec, audio: AudioCodec) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("a.{container}"));
    let cfg = EncoderConfig {
        path: path.clone(),
        container,
        codec,
        encoder: EncoderChoice::Software,
        selected: None,
        rate: RateControl::Quality(30),
        keyint: 250,
        width: W,
        height: H,
        audio: Some(AudioConfig {
            tracks: vec![
                "desktop".parse::<TrackSpec>().unwrap(),
                "mic".parse().unwrap(),
            ],
            codec: audio,
            bitrate: None,
        }),
        replay: None,
    };
    let mut enc = Encoder::open(&cfg).unwrap();
    assert!(enc.has_audio());
    // Video: a frame every 100 ms for 3 s. Track 0: silence, a tone from 1.0 s to 1.5 s, then
    // nothing after 2.0 s (a source that stopped: the end is padded). Track 1: silence with a
    // gap between 0.5 s and 0.8 s (blocks are not contiguous) and a tone from 2.0 s.
    let mut a0 = 0i64;
    let mut a1 = 0i64;
    for k in 0..30u64 {
        enc.push(&frame(k * 100, k % 10 == 0)).unwrap();
        let to = ((k + 1) * 4800) as i64;
        while a0 < to && a0 < 96_000 {
            let tone = (48_000..72_000).contains(&a0);
            enc.push_audio(&block(0, a0, 2400, tone)).unwrap();
            a0 += 2400;
        }
        while a1 < to {
            if (24_000..38_400).contains(&a1) {
                a1 += 2400; // the gap
                continue;
            }
            enc.push_audio(&block(1, a1, 2400, a1 >= 96_000)).unwrap();
            a1 += 2400;
        }
    }
    enc.finish(Duration::from_millis(3000)).unwrap();
    let ends = stream_ends(&path);
    eprintln!("{container}/{codec}/{audio}: {ends:?}");
    assert_eq!(ends.len(), 3, "{ends:?}");
    assert_eq!(ends[1].0, audio.as_str());
    for (name, end) in &ends {
        assert!(
            (end - 3.0).abs() < 0.03,
            "{name} ends at {end:.3} s, the video at 3.0 s: {ends:?}"
        );
    }
    // Where the video's white frames (1.0 s and 2.0 s) are in the file: muxers shift streams
    // for the audio encoder's priming samples, so positions are compared with the video's.
    let white = flashes(&path);
    assert!(white.len() >= 2, "{white:?}");
    let at = |t: f64| {
        white
            .iter()
            .copied()
            .find(|w| (w - t).abs() < 0.05)
            .unwrap()
    };
    // The end of the file reads as a silence end too.
    let o0: Vec<f64> = onsets(&path, 0).into_iter().filter(|&o| o < 2.9).collect();
    let o1: Vec<f64> = onsets(&path, 1).into_iter().filter(|&o| o < 2.9).collect();
    eprintln!("white frames {white:?}, tone onsets {o0:?} {o1:?}");
    // Opus in Matroska reads back 312 samples (6.5 ms) early through FFmpeg: the muxer shifts
    // by the encoder's pre-skip and the demuxer subtracts CodecDelay as well. The ffmpeg CLI's
    // own `-c:a libopus out.mkv` gives the same −6.5 ms; everything else is sample-exact.
    let tol = if audio == AudioCodec::Opus {
        0.008
    } else {
        0.002
    };
    assert!(
        o0.len() == 1 && (o0[0] - at(1.0)).abs() < tol,
        "{o0:?} vs {white:?}"
    );
    assert!(
        o1.len() == 1 && (o1[0] - at(2.0)).abs() < tol,
        "{o1:?} vs {white:?}"
    );
}

#[test]
fn mkv_opus() {
    encode(Container::Mkv, Codec::H264, AudioCodec::Opus);
}

#[test]
fn mkv_flac() {
    encode(Container::Mkv, Codec::H264, AudioCodec::Flac);
}

#[test]
fn mp4_aac() {
    encode(Container::Mp4, Codec::H264, AudioCodec::Aac);
}

#[test]
fn webm_opus() {
    encode(Container::Webm, Codec::Vp9, AudioCodec::Opus);
}
