//! Encodes synthetic frames and checks the files with ffprobe/ffmpeg (both must be installed).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use zerocast_recorder::encode::{
    check_encoder, ConverterChoice, CpuConverter, Encoder, EncoderConfig, OutputCause,
};
use zerocast_recorder::frame::{CpuFrame, PixelFormat};
use zerocast_recorder::{Codec, Container, EncoderChoice, RateControl, RecorderError};

const W: u32 = 1280;
const H: u32 = 720;
const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const GREY: [u8; 3] = [128, 128, 128];

fn config(path: &Path, container: Container, codec: Codec) -> EncoderConfig {
    EncoderConfig {
        path: path.to_owned(),
        container,
        codec,
        encoder: EncoderChoice::Auto,
        rate: RateControl::Quality(if codec == Codec::H264 { 23 } else { 30 }),
        keyint: 250,
        selected: None,
        width: W,
        height: H,
        audio: None,
        replay: None,
    }
}

/// BGRx frame: solid `rgb` with a white bar moving along the top 64 rows.
fn frame(w: u32, h: u32, rgb: [u8; 3], bar: u32, pts_ms: u64) -> CpuFrame {
    let mut f = CpuFrame::empty();
    f.width = w;
    f.height = h;
    f.format = PixelFormat::Bgrx;
    f.stride = w as usize * 4;
    f.pts = Duration::from_millis(pts_ms);
    let px = [rgb[2], rgb[1], rgb[0], 0];
    // `repeat` copies by doubling: fast even in a debug build.
    f.data = px.repeat(w as usize * h as usize);
    let x0 = (bar * 16) % (w - 64);
    for y in 0..64.min(h) as usize {
        let row = &mut f.data[y * f.stride..][..f.stride];
        row[x0 as usize * 4..(x0 as usize + 64) * 4].fill(255);
    }
    f
}

fn probe(path: &Path) -> HashMap<String, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
        ])
        .arg(
            "stream=codec_name,width,height,pix_fmt,nb_read_frames,color_space,color_range,\
             color_primaries,color_transfer:format=duration,format_name",
        )
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Every frame decoded as RGB24 at the file's size, in presentation order, no duplication.
fn decode_rgb(path: &Path, w: u32, h: u32) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = (w * h * 3) as usize;
    assert_eq!(out.stdout.len() % size, 0);
    out.stdout.chunks(size).map(|c| c.to_vec()).collect()
}

/// Average colour of a 16×16 block centred on the frame (away from the moving bar).
fn centre(rgb: &[u8], w: u32, h: u32) -> [u8; 3] {
    let mut sum = [0u32; 3];
    for y in h / 2 - 8..h / 2 + 8 {
        for x in w / 2 - 8..w / 2 + 8 {
            let i = ((y * w + x) * 3) as usize;
            for c in 0..3 {
                sum[c] += rgb[i + c] as u32;
            }
        }
    }
    sum.map(|s| (s / 256) as u8)
}

fn assert_colour(got: [u8; 3], want: [u8; 3], what: &str) {
    let ok = got
        .iter()
        .zip(want)
        .all(|(&g, w)| (g as i32 - w as i32).abs() <= 6);
    assert!(ok, "{what}: got {got:?}, want {want:?}");
}

fn num(p: &HashMap<String, String>, k: &str) -> f64 {
    p.get(k)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{k} missing in {p:?}"))
}

/// 30 fps: 10 red, 10 green, 10 blue frames; finish at 1 s.
fn encode_colours(path: &Path, container: Container, codec: Codec) -> u64 {
    let mut enc = Encoder::open(&config(path, container, codec)).unwrap();
    for i in 0..30u32 {
        let c = [RED, GREEN, BLUE][i as usize / 10];
        enc.push(&frame(W, H, c, i, i as u64 * 1000 / 30)).unwrap();
    }
    assert!(enc.bytes_written() > 0);
    enc.finish(Duration::from_secs(1)).unwrap()
}

fn check_colours_file(path: &Path, codec_name: &str, frames: f64) {
    let p = probe(path);
    assert_eq!(p["codec_name"], codec_name);
    assert_eq!((num(&p, "width"), num(&p, "height")), (W as f64, H as f64));
    assert_eq!(p["pix_fmt"], "yuv420p");
    assert_eq!(p["color_space"], "bt709", "{p:?}");
    assert_eq!(p["color_range"], "tv");
    assert_eq!(num(&p, "nb_read_frames"), frames, "{p:?}");
    let d = num(&p, "duration");
    assert!((d - 1.0).abs() < 0.02, "duration {d}");
    let frames = decode_rgb(path, W, H);
    for (i, want) in [(5, RED), (15, GREEN), (25, BLUE)] {
        assert_colour(centre(&frames[i], W, H), want, &format!("frame {i}"));
    }
    // The bar is white.
    let f = &frames[0];
    assert_colour(
        [
            f[(32 * W + 10) as usize * 3],
            f[(32 * W + 10) as usize * 3 + 1],
            f[(32 * W + 10) as usize * 3 + 2],
        ],
        [255; 3],
        "bar",
    );
}

#[test]
fn mkv_h264_colours_size_duration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.mkv");
    let bytes = encode_colours(&path, Container::Mkv, Codec::H264);
    assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
    // 30 frames + the last one repeated just before 1 s.
    check_colours_file(&path, "h264", 31.0);
}

#[test]
fn mp4_h264_is_fragmented_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.mp4");
    encode_colours(&path, Container::Mp4, Codec::H264);
    check_colours_file(&path, "h264", 31.0);
    let data = std::fs::read(&path).unwrap();
    assert!(
        data.windows(4).any(|w| w == b"moof"),
        "mp4 is not fragmented"
    );
}

#[test]
fn webm_vp9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.webm");
    encode_colours(&path, Container::Webm, Codec::Vp9);
    check_colours_file(&path, "vp9", 31.0);
}

#[test]
fn webm_av1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.webm");
    encode_colours(&path, Container::Webm, Codec::Av1);
    check_colours_file(&path, "av1", 31.0);
}

#[test]
fn mkv_hevc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.mkv");
    encode_colours(&path, Container::Mkv, Codec::Hevc);
    check_colours_file(&path, "hevc", 31.0);
}

/// Every codec in mp4 (HEVC tagged hvc1 for Apple players), and a late first frame still starts
/// the file at 0.
#[test]
fn mp4_all_codecs() {
    for (codec, name) in [
        (Codec::Hevc, "hevc"),
        (Codec::Av1, "av1"),
        (Codec::Vp9, "vp9"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.mp4");
        let mut enc = Encoder::open(&config(&path, Container::Mp4, codec)).unwrap();
        for i in 0..5u32 {
            enc.push(&frame(W, H, GREEN, i, 300 + i as u64 * 100))
                .unwrap();
        }
        enc.finish(Duration::from_secs(1)).unwrap();
        let p = probe(&path);
        assert_eq!(p["codec_name"], name);
        assert_eq!(num(&p, "nb_read_frames"), 6.0, "{name}");
        let d = num(&p, "duration");
        assert!((d - 1.0).abs() < 0.02, "{name}: duration {d}");
        if codec == Codec::Hevc {
            assert!(std::fs::read(&path)
                .unwrap()
                .windows(4)
                .any(|w| w == b"hvc1"));
        }
    }
}

#[test]
fn webm_rejects_h264_listing_what_it_takes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.webm");
    let err = Encoder::open(&config(&path, Container::Webm, Codec::H264))
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(msg.contains("vp9") && msg.contains("av1"), "{msg}");
    assert!(!path.exists());
    assert_eq!(
        check_encoder(Codec::Vp9, EncoderChoice::Auto, Container::Webm).unwrap(),
        "libvpx-vp9"
    );
}

#[test]
fn static_screen_lasts_until_finish() {
    for container in [Container::Mkv, Container::Mp4] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("s.{container}"));
        let mut enc = Encoder::open(&config(&path, container, Codec::H264)).unwrap();
        for (i, ms) in [0, 100, 200].into_iter().enumerate() {
            enc.push(&frame(W, H, GREY, i as u32, ms)).unwrap();
        }
        enc.finish(Duration::from_secs(3)).unwrap();
        let p = probe(&path);
        let d = num(&p, "duration");
        assert!((d - 3.0).abs() < 0.02, "{container}: duration {d}");
        assert_eq!(num(&p, "nb_read_frames"), 4.0, "{container}");
    }
}

#[test]
fn vfr_gaps_and_non_increasing_pts() {
    for container in [Container::Mp4, Container::Mkv] {
        vfr_gaps(container);
    }
}

/// The SHM path's frames — I420 converted into pooled FFmpeg frames — go to the encoder without
/// a copy: the encoder holds the last one (two buffers cycle) and gives the one before back; a
/// frame of another size is scaled into the encoder's own frame and every held buffer comes
/// back; `finish` repeats the last frame from the held buffer. The file shows every colour.
#[test]
fn pooled_i420_frames_are_encoded_without_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pooled.mkv");
    let mut enc = Encoder::open(&config(&path, Container::Mkv, Codec::H264)).unwrap();
    let mut conv = CpuConverter::new(ConverterChoice::Auto);
    let mut pool: Vec<CpuFrame> = (0..2).map(|_| CpuFrame::empty()).collect();
    // 10 red frames, a green one of half the size, 10 blue ones; finish at 2 s.
    let frames = (0..10)
        .map(|_| (RED, W))
        .chain([(GREEN, W / 2)])
        .chain((0..10).map(|_| (BLUE, W)));
    for (i, (colour, w)) in frames.enumerate() {
        let h = w * H / W;
        let rgb = frame(w, h, colour, i as u32, i as u64 * 33);
        let mut f = pool.pop().expect("a free buffer");
        let Some(stride) = conv.rgb_to_i420(&(&rgb).into(), &mut f.yuv).unwrap() else {
            let why = "this CPU has no SIMD converter: SHM frames travel as RGB";
            eprintln!("SKIPPED: pooled_i420_frames_are_encoded_without_a_copy: {why}");
            return;
        };
        (f.width, f.height, f.format, f.stride) = (w, h, PixelFormat::I420, stride);
        f.pts = rgb.pts;
        enc.push_pooled(f, |b| pool.push(b)).unwrap();
        let held = if w == W { 1 } else { 0 };
        assert_eq!(pool.len(), 2 - held, "frame {i}: buffers back in the pool");
    }
    enc.finish(Duration::from_secs(2)).unwrap();
    let decoded = decode_rgb(&path, W, H);
    // The 21 frames and the last one repeated at the end.
    assert_eq!(decoded.len(), 22);
    for (i, rgb) in decoded.iter().enumerate() {
        let want = match i {
            0..=9 => RED,
            10 => GREEN,
            _ => BLUE,
        };
        assert_colour(centre(rgb, W, H), want, &format!("frame {i}"));
    }
}

fn vfr_gaps(container: Container) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("v.{container}"));
    let mut enc = Encoder::open(&config(&path, container, Codec::H264)).unwrap();
    // A 2 s gap, then a duplicate and a backwards timestamp (adjusted, not dropped).
    for (i, ms) in [0, 33, 2033, 2066, 2066, 2000, 2100]
        .into_iter()
        .enumerate()
    {
        enc.push(&frame(W, H, BLUE, i as u32, ms)).unwrap();
    }
    assert_eq!(enc.adjusted_frames(), 2);
    // `end` only just after the last frame: no repeat, the last frame lasts until `end`.
    enc.finish(Duration::from_millis(2110)).unwrap();
    let p = probe(&path);
    assert_eq!(num(&p, "nb_read_frames"), 7.0, "{container}");
    let d = num(&p, "duration");
    assert!((d - 2.11).abs() < 0.02, "{container}: duration {d}");
}

#[test]
fn resolution_change_mid_stream_is_scaled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.mkv");
    let mut enc = Encoder::open(&config(&path, Container::Mkv, Codec::H264)).unwrap();
    let sizes = [(W, H), (640, 360), (1921, 1081), (W + 1, H + 1), (W, H)];
    let colours = [RED, GREEN, BLUE, GREY, RED];
    for (i, ((w, h), c)) in sizes.into_iter().zip(colours).enumerate() {
        let mut f = frame(w, h, c, i as u32, i as u64 * 100);
        // Mix in other layouts on the way.
        if i == 2 {
            for px in f.data.chunks_exact_mut(4) {
                px.swap(0, 2); // BGRx → RGBx
            }
            f.format = PixelFormat::Rgbx;
        }
        enc.push(&f).unwrap();
    }
    enc.finish(Duration::from_millis(500)).unwrap();
    let p = probe(&path);
    assert_eq!((num(&p, "width"), num(&p, "height")), (W as f64, H as f64));
    // 5 frames + the last one repeated before `end`.
    assert_eq!(num(&p, "nb_read_frames"), 6.0);
    let frames = decode_rgb(&path, W, H);
    for (i, c) in colours.into_iter().enumerate() {
        assert_colour(centre(&frames[i], W, H), c, &format!("frame {i}"));
    }
}

#[test]
fn unwritable_path_and_disk_full() {
    let err = Encoder::open(&config(
        Path::new("/nonexistent-dir/x.mkv"),
        Container::Mkv,
        Codec::H264,
    ))
    .err()
    .unwrap();
    assert!(
        matches!(err, RecorderError::OutputNotWritable { .. }),
        "{err:?}"
    );

    // /dev/full accepts open() and fails every write with ENOSPC.
    let full = Path::new("/dev/full");
    let err = (|| {
        let mut enc = Encoder::open(&config(full, Container::Mkv, Codec::H264))?;
        for i in 0..30 {
            enc.push(&frame(W, H, RED, i, i as u64 * 33))?;
        }
        enc.finish(Duration::from_secs(1))
    })()
    .unwrap_err();
    assert!(
        matches!(err, RecorderError::OutOfDiskSpace { .. }),
        "{err:?}"
    );
    assert!(full.exists(), "/dev/full must survive");
}

/// The output deleted mid-recording (its folder removed): every write into the unlinked file
/// succeeds, so the muxer checks by itself and names it, instead of the recording going on and
/// ending "saved" with no file (as it did in tests/fault_rounds.rs).
#[test]
fn deleted_output_fails_named() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("out");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("d.mkv");
    let mut enc = Encoder::open(&config(&path, Container::Mkv, Codec::H264)).unwrap();
    let mut i = 0u32;
    let mut push = |enc: &mut Encoder| {
        i += 1;
        enc.push(&frame(W, H, RED, i, u64::from(i) * 33))
    };
    for _ in 0..60 {
        push(&mut enc).unwrap();
    }
    std::fs::remove_dir_all(&sub).unwrap();
    // The muxer looks at most once a second.
    std::thread::sleep(Duration::from_millis(1100));
    let err = (0..120)
        .find_map(|_| push(&mut enc).err())
        .or_else(|| enc.finish(Duration::from_secs(6)).err())
        .expect("recording into a deleted file succeeded");
    assert!(
        matches!(
            err,
            RecorderError::OutputNotWritable {
                source: OutputCause::Removed,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("deleted while recording"), "{err}");
}

/// A file whose trailer was never written (encoder leaked) still decodes.
#[test]
fn no_trailer_still_decodes() {
    for container in [Container::Mp4, Container::Mkv] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("n.{container}"));
        let mut enc = Encoder::open(&config(&path, container, Codec::H264)).unwrap();
        // 3 s at 15 fps: fragments/clusters of the first ~2 s are complete on disk.
        for i in 0..45u32 {
            enc.push(&frame(W, H, GREEN, i, i as u64 * 1000 / 15))
                .unwrap();
        }
        std::mem::forget(enc);
        let p = probe(&path);
        let n = num(&p, "nb_read_frames");
        assert!(n >= 27.0, "{container}: only {n} frames survive");
        let frames = decode_rgb(&path, W, H);
        assert_colour(centre(&frames[10], W, H), GREEN, "frame 10");
    }
}

/// Dropping an encoder without `finish` (an error path) still writes a complete file.
#[test]
fn drop_without_finish_finalises() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.mp4");
    let mut enc = Encoder::open(&config(&path, Container::Mp4, Codec::H264)).unwrap();
    for i in 0..10u32 {
        enc.push(&frame(W, H, BLUE, i, i as u64 * 100)).unwrap();
    }
    drop(enc);
    let p = probe(&path);
    assert_eq!(num(&p, "nb_read_frames"), 10.0);
    let d = num(&p, "duration");
    // No `end` known: the last frame gets one nominal 60 Hz frame.
    assert!((d - 0.917).abs() < 0.02, "duration {d}");
}

const CHILD_ENV: &str = "ZEROCAST_ENCODE_TEST_CHILD";

/// Writes an mp4 in a child process, SIGKILLs it mid-recording, and decodes what is left.
#[test]
fn killed_writer_leaves_playable_mp4() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        return child_writer(PathBuf::from(path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.mp4");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "killed_writer_leaves_playable_mp4",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("CHILD-READY"))),
        "child never got ready"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let p = probe(&path);
    let n = num(&p, "nb_read_frames");
    assert!(n >= 27.0, "only {n} frames survive the kill");
    let frames = decode_rgb(&path, W, H);
    assert_colour(centre(&frames[20], W, H), RED, "frame 40");
}

fn child_writer(path: PathBuf) {
    let mut enc = Encoder::open(&config(&path, Container::Mp4, Codec::H264)).unwrap();
    for i in 0..45u32 {
        enc.push(&frame(W, H, RED, i, i as u64 * 1000 / 15))
            .unwrap();
    }
    println!("CHILD-READY");
    // Wait to be killed; never finish.
    std::thread::sleep(Duration::from_secs(60));
    std::mem::forget(enc);
}
