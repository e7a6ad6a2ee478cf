//! CPU cost per frame of colour conversion and of conversion + encoding.
//!
//! `cargo run --release -p zerocast-recorder --example encode_bench [-- FRAMES [FILTER [ROUNDS]]]`
//! `… --example encode_bench -- replay`: ring bytes per second of a replay at 720p/1080p/4K.
//!
//! The content is a synthetic desktop: static panels plus a window of text scrolling by 3 px a
//! frame (a heavy but typical screen-recording load; solid colours would flatter the encoder).
//! "CPU" is the whole process's CPU time (all encoder threads) divided by frames — what the
//! project is measured on; "fps" is the wall-clock throughput when frames are pushed as fast as
//! possible (must exceed 60 to keep up).

use std::time::{Duration, Instant};

use zerocast_recorder::encode::{ConverterChoice, CpuConverter, Encoder, EncoderConfig, Tuning};
use zerocast_recorder::frame::{CpuFrame, PixelFormat};
use zerocast_recorder::{Codec, Container, EncoderChoice, RateControl};

/// Distinct frames generated up front (cycled), so generation is not in the measurement.
const DISTINCT: usize = 24;

fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Tiny deterministic PRNG (xorshift) for the glyphs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A tall BGRx "document" of text lines (8×14 glyphs, 18 px line pitch).
fn document(w: usize, h: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let glyphs: Vec<[u16; 14]> = (0..96)
        .map(|_| std::array::from_fn(|_| (rng.next() & 0xff & rng.next()) as u16))
        .collect();
    let mut doc = [250u8, 250, 250, 0].repeat(w * h);
    for line in 0..h / 18 {
        let mut x = 8;
        while x + 8 < w - 8 {
            let word = 2 + (rng.next() % 9) as usize;
            for _ in 0..word {
                if x + 8 >= w - 8 {
                    break;
                }
                let g = &glyphs[(rng.next() % 96) as usize];
                for (gy, bits) in g.iter().enumerate() {
                    for gx in 0..8 {
                        if bits >> gx & 1 == 1 {
                            let i = ((line * 18 + 2 + gy) * w + x + gx) * 4;
                            doc[i..i + 3].copy_from_slice(&[40, 40, 40]);
                        }
                    }
                }
                x += 8;
            }
            x += 8;
        }
    }
    doc
}

/// Desktop frames: a dark panel on top, a coloured sidebar, and a text window scrolling 3 px per
/// frame.
fn desktop_frames(w: u32, h: u32) -> Vec<CpuFrame> {
    let (w, h) = (w as usize, h as usize);
    let (wx, wy, ww, wh) = (w / 5, 40, w * 3 / 4, h - 80);
    let doc = document(ww, wh * 2);
    (0..DISTINCT)
        .map(|i| {
            let mut data = [48u8, 40, 32, 0].repeat(w * h);
            for y in 0..h {
                for x in 0..w / 6 {
                    let p = (y * w + x) * 4;
                    data[p..p + 3].copy_from_slice(&[
                        (x * 255 / w) as u8,
                        120,
                        (y * 255 / h) as u8,
                    ]);
                }
            }
            let scroll = i * 3;
            for y in 0..wh {
                let src = &doc[((y + scroll) % (wh * 2)) * ww * 4..][..ww * 4];
                data[((wy + y) * w + wx) * 4..][..ww * 4].copy_from_slice(src);
            }
            let mut f = CpuFrame::empty();
            (f.width, f.height, f.format) = (w as u32, h as u32, PixelFormat::Bgrx);
            (f.stride, f.pts, f.data) = (w * 4, Duration::ZERO, data);
            f
        })
        .collect()
}

fn bench_convert(frames: &[CpuFrame], n: usize, choice: ConverterChoice) -> f64 {
    let f0 = &frames[0];
    let mut dst =
        ffmpeg_next::frame::Video::new(ffmpeg_next::format::Pixel::YUV420P, f0.width, f0.height);
    let mut conv = CpuConverter::new(choice);
    conv.convert(&f0.into(), &mut dst).unwrap(); // warm-up (context creation)
    let t = cpu_time();
    for i in 0..n {
        conv.convert(&(&frames[i % frames.len()]).into(), &mut dst)
            .unwrap();
    }
    (cpu_time() - t).as_secs_f64() * 1e3 / n as f64
}

struct EncodeResult {
    cpu_ms: f64,
    fps: f64,
    bytes: u64,
    threads: String,
}

fn bench_encode(frames: &mut [CpuFrame], n: usize, tuning: Tuning) -> EncodeResult {
    let path = std::env::temp_dir().join(format!("zerocast-bench-{}.mkv", std::process::id()));
    let cfg = EncoderConfig {
        path: path.clone(),
        container: Container::Mkv,
        codec: Codec::H264,
        encoder: EncoderChoice::Software,
        rate: RateControl::Quality(23),
        keyint: 250,
        selected: None,
        width: frames[0].width,
        height: frames[0].height,
        audio: None,
        replay: None,
    };
    let mut enc = Encoder::open_tuned(&cfg, tuning).unwrap();
    let (t, wall) = (cpu_time(), Instant::now());
    for i in 0..n {
        let f = &mut frames[i % DISTINCT];
        f.pts = Duration::from_micros(i as u64 * 16_667);
        enc.push(f).unwrap();
    }
    let bytes = enc
        .finish(Duration::from_micros(n as u64 * 16_667))
        .unwrap();
    let (cpu, wall) = (cpu_time() - t, wall.elapsed());
    // x264 writes its settings into an SEI; show the threading it actually used.
    let data = std::fs::read(&path).unwrap_or_default();
    let settings = String::from_utf8_lossy(&data);
    let threads: Vec<&str> = settings
        .split(' ')
        .filter(|kv| kv.contains("threads=") || kv.starts_with("rc_lookahead"))
        .take(4)
        .collect();
    let _ = std::fs::remove_file(&path);
    EncodeResult {
        cpu_ms: cpu.as_secs_f64() * 1e3 / n as f64,
        fps: n as f64 / wall.as_secs_f64(),
        bytes,
        threads: threads.join(" "),
    }
}

/// `encode_bench replay`: what a replay's ring holds per second of this content at 720p, 1080p
/// and 4K (the encoder in replay mode, keyframes every second as there, 10 s at 60 fps), and
/// the process's RSS growth while it fills: the memory a 30 s replay needs at each size.
fn replay_memory() {
    println!("replay ring, libx264 ultrafast crf 23, 60 fps scrolling-text desktop, 10 s each");
    println!("size        ring MB/s   30 s ring MB   RSS growth MB (10 s)");
    for (w, h) in [(1280u32, 720u32), (1920, 1080), (3840, 2160)] {
        let mut frames = desktop_frames(w, h);
        let cfg = EncoderConfig {
            path: std::env::temp_dir().join("zerocast-bench-replay.mkv"),
            container: Container::Mkv,
            codec: Codec::H264,
            encoder: EncoderChoice::Software,
            rate: RateControl::Quality(23),
            keyint: 250,
            selected: None,
            width: w,
            height: h,
            audio: None,
            replay: Some(zerocast_recorder::encode::replay::ReplayLimits {
                seconds: Duration::from_secs(30),
                max_bytes: u64::MAX,
                save_on_stop: false,
            }),
        };
        let mut enc = Encoder::open(&cfg).unwrap();
        let n = 600usize;
        // Warm up (the encoder's own buffers), then measure the growth from the ring.
        for i in 0..30 {
            let f = &mut frames[i % DISTINCT];
            f.pts = Duration::from_micros(i as u64 * 16_667);
            enc.push(f).unwrap();
        }
        let rss0 = rss_kb();
        for i in 30..n {
            let f = &mut frames[i % DISTINCT];
            f.pts = Duration::from_micros(i as u64 * 16_667);
            enc.push(f).unwrap();
        }
        let ring = enc.bytes_written() as f64;
        let secs = n as f64 / 60.0;
        println!(
            "{w}x{h:<6} {:9.2} {:14.1} {:16.1}",
            ring / secs / 1e6,
            ring / secs * 30.0 / 1e6,
            (rss_kb() as f64 - rss0 as f64) / 1024.0
        );
        let _ = enc.finish(Duration::from_secs_f64(secs));
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `encode_bench dump FILE FRAMES WIDTH HEIGHT`: writes the same synthetic content as raw BGRx,
/// for feeding the same frames to `ffmpeg`/`gst-launch-1.0` for comparison.
fn dump(args: &[String]) {
    let n: usize = args[3].parse().unwrap();
    let frames = desktop_frames(args[4].parse().unwrap(), args[5].parse().unwrap());
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args[2]).unwrap());
    for i in 0..n {
        std::io::Write::write_all(&mut out, &frames[i % DISTINCT].data).unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("dump") {
        return dump(&args);
    }
    if args.get(1).map(String::as_str) == Some("replay") {
        return replay_memory();
    }
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(600);
    let filter = args.get(2).cloned().unwrap_or_default();
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    println!("{n} frames per run, 60 fps pts, libx264 ultrafast crf 23, CPU = process CPU time");
    for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
        let mut frames = desktop_frames(w, h);
        println!("\n== {w}x{h}");
        if "convert".contains(&filter) {
            for (label, c) in [
                ("hand-written", ConverterChoice::Auto),
                ("swscale", ConverterChoice::Swscale),
            ] {
                let ms = bench_convert(&frames, n, c);
                println!("convert {label:<13} {ms:6.3} ms CPU/frame");
            }
        }
        let configs: &[(&str, Tuning)] = &[
            ("default (auto threads)", Tuning::default()),
            (
                "threads=1",
                Tuning {
                    threads: Some(1),
                    ..Default::default()
                },
            ),
            (
                "threads=2",
                Tuning {
                    threads: Some(2),
                    ..Default::default()
                },
            ),
            (
                "threads=0 (x264 auto)",
                Tuning {
                    threads: Some(0),
                    ..Default::default()
                },
            ),
            (
                "threads=2 zerolatency",
                Tuning {
                    threads: Some(2),
                    zerolatency: true,
                    ..Default::default()
                },
            ),
            (
                "swscale threads=0 (wf-recorder-like)",
                Tuning {
                    threads: Some(0),
                    converter: ConverterChoice::Swscale,
                    ..Default::default()
                },
            ),
        ];
        // Rounds interleave the configurations so background load hits them alike; the median
        // is printed.
        let selected: Vec<_> = configs
            .iter()
            .filter(|(label, _)| format!("encode {label}").contains(&filter))
            .collect();
        let mut results: Vec<Vec<EncodeResult>> = selected.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (i, (_, tuning)) in selected.iter().enumerate() {
                results[i].push(bench_encode(&mut frames, n, *tuning));
            }
        }
        for ((label, _), rs) in selected.iter().zip(&mut results) {
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let cpu = median(&mut rs.iter().map(|r| r.cpu_ms).collect());
            let fps = median(&mut rs.iter().map(|r| r.fps).collect());
            println!(
                "encode {label:<38} {cpu:6.2} ms CPU/frame  {fps:6.1} fps wall  {:5.0} kB/s  [{}]",
                rs[0].bytes as f64 / 1e3 / (n as f64 / 60.0),
                rs[0].threads
            );
        }
    }
}
