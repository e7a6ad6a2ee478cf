//! GPU-machine check and benchmark of the NVENC path (issue #6). Built here, run there through
//! scripts/gpu/nvenc-check.sh.
//!
//! `nvenc-check`          (1) synthetic "compositor" frames → interop NV12 → copied into FFmpeg
//!                        CUDA pool frames (our context + stream); the pool frames are read back
//!                        through FFmpeg and compared byte-exact with the CPU reference;
//!                        (2) NVENC status per codec and `encoder=nvenc` → EncoderUnavailable;
//!                        (3) `encoder=auto` falls back to libx264 fed from the GPU's NV12
//!                        (lossless), the file is decoded and compared with the reference.
//! `nvenc-check --bench`  per-frame CPU/GPU time at 4K from the CUDA slot to the encoder input
//!                        (pool copy, zero-copy wrap, pinned download) and fallback fps at
//!                        1080p and 4K.

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ffmpeg_next::{format, frame, media};
use zerocast_interop::cpu::{self, SrcFrame};
use zerocast_interop::testing::ProducerImage;
use zerocast_interop::*;
use zerocast_recorder::encode::hwframes::{self, CudaFrames};
use zerocast_recorder::encode::{nvenc, EncoderConfig, GpuEncoder, Tuning};
use zerocast_recorder::{Codec, Container, EncoderChoice, RateControl, RecorderError};

#[global_allocator]
static GLOBAL: zerocast_interop::testing::CountingAlloc = zerocast_interop::testing::CountingAlloc;

type Res<T> = Result<T, String>;

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: out-pointer to a local.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Producer images (two patterns), importer, converter, bridge and stream at one size.
struct Pipe {
    // Field order = drop order: CUDA users before the bridge, the bridge before the converter.
    stream: OwnedStream,
    bridge: CudaBridge,
    conv: GpuConverter,
    importer: DmabufImporter,
    images: Vec<ProducerImage>,
    want: Vec<Vec<u8>>,
    w: u32,
    h: u32,
}

const SEEDS: [u32; 2] = [7, 1234];

impl Pipe {
    fn new(consumer: &VulkanContext, producer: &VulkanContext, w: u32, h: u32) -> Res<Pipe> {
        let conv =
            GpuConverter::new(consumer, ConverterConfig::new(OutputMode::Nv12, w, h)).map_err(s)?;
        let bridge = CudaBridge::new(consumer, &conv).map_err(s)?;
        let stream = OwnedStream::new(&bridge).map_err(s)?;
        let mut images = Vec::new();
        let mut want = Vec::new();
        for seed in SEEDS {
            images.push(
                ProducerImage::new(producer, Fourcc::XRGB8888, Modifier::LINEAR, w, h, seed)
                    .map_err(s)?,
            );
            want.push(reference(w, h, seed, conv.layout()));
        }
        Ok(Pipe {
            stream,
            bridge,
            conv,
            importer: DmabufImporter::new(consumer).map_err(s)?,
            images,
            want,
            w,
            h,
        })
    }

    /// Converts pattern `i % 2` into the next slot.
    fn convert(&mut self, i: usize) -> Res<ConvertedFrame> {
        let k = i % 2;
        let img = &self.images[k];
        let planes = [DmabufPlane {
            fd: img.fd.as_fd(),
            offset: img.offset,
            stride: img.stride,
        }];
        let desc = DmabufDesc {
            width: self.w,
            height: self.h,
            fourcc: Fourcc::XRGB8888,
            modifier: img.modifier,
            planes: &planes,
            memory_size: Some(img.alloc_size),
        };
        let imported = self.importer.import(k as u64 + 1, &desc).map_err(s)?;
        self.conv.convert(imported).map_err(s)
    }
}

fn reference(w: u32, h: u32, seed: u32, layout: &FrameLayout) -> Vec<u8> {
    let stride = w as usize * 4;
    let mut src = vec![0u8; stride * h as usize];
    cpu::fill_pattern(&mut src, stride, w, h, seed);
    let mut want = vec![0u8; layout.size as usize];
    let code = Fourcc::XRGB8888.pixel_code().expect("XR24");
    cpu::convert(
        &SrcFrame {
            data: &src,
            stride,
            width: w,
            height: h,
            code,
        },
        layout,
        &mut want,
    );
    want
}

/// Rearranges a host NV12 AVFrame into the slot layout, for `cpu::compare`.
fn to_layout(f: &frame::Video, l: &FrameLayout) -> Vec<u8> {
    let mut out = vec![0u8; l.size as usize];
    let row = l.written_row_bytes() as usize;
    for y in 0..l.height as usize {
        let src = &f.data(0)[y * f.stride(0)..][..row];
        out[y * l.pitch as usize..][..row].copy_from_slice(src);
    }
    for y in 0..(l.y_rows / 2) as usize {
        let src = &f.data(1)[y * f.stride(1)..][..row];
        out[l.uv_offset as usize + y * l.pitch as usize..][..row].copy_from_slice(src);
    }
    out
}

/// (1) interop → FFmpeg CUDA pool frames, read back through FFmpeg, byte-exact.
fn check_pool(p: &mut Pipe) -> Res<String> {
    let frames = CudaFrames::new(
        p.bridge.context() as _,
        p.stream.handle().as_raw() as _,
        p.w,
        p.h,
    )
    .map_err(s)?;
    let stream = p.stream.handle();
    let mut f = frame::Video::empty();
    let mut ptrs = Vec::new();
    let layout = *p.conv.layout();
    for i in 0..6 {
        let cf = p.convert(i)?;
        p.bridge.wait(&cf, stream).map_err(s)?;
        frames.get(&mut f).map_err(s)?;
        let (y, uv, pitch) = hwframes::planes(&f);
        if i == 0 && (pitch != layout.pitch as usize || uv - y != layout.uv_offset) {
            println!(
                "  note: pool pitch {pitch} / CbCr offset {} differ from the slot's {} / {}",
                uv - y,
                layout.pitch,
                layout.uv_offset
            );
        }
        ptrs.push(y);
        copy_nv12_async(&p.bridge.frame(&cf), DeviceNv12 { y, uv, pitch }, stream).map_err(s)?;
        p.bridge.release(&cf, stream).map_err(s)?;
        // FFmpeg's download runs on the device context's stream (ours), after the copy.
        let host = frames.download(&f).map_err(s)?;
        cpu::compare(&layout, &to_layout(&host, &layout), &p.want[i % 2])
            .map_err(|e| format!("frame {i}: {e}"))?;
    }
    ptrs.sort();
    ptrs.dedup();
    Ok(format!(
        "{}x{}: 6 frames byte-exact in FFmpeg CUDA pool frames ({} distinct pool buffers, pitch {} = slot pitch {})",
        p.w,
        p.h,
        ptrs.len(),
        hwframes::planes(&f).2,
        layout.pitch
    ))
}

fn cfg(
    path: &str,
    codec: Codec,
    choice: EncoderChoice,
    rate: RateControl,
    w: u32,
    h: u32,
) -> EncoderConfig {
    EncoderConfig {
        path: path.into(),
        container: Container::Mkv,
        codec,
        encoder: choice,
        rate,
        keyint: 60,
        selected: None,
        width: w,
        height: h,
        audio: None,
        replay: None,
    }
}

/// (2) NVENC status and `encoder=nvenc`.
fn check_nvenc(p: &mut Pipe, out: &str) -> Res<String> {
    for c in [Codec::Hevc, Codec::H264, Codec::Av1] {
        match nvenc::nvenc_status(c) {
            Ok(n) => println!("  {c}: NVENC available ({n})"),
            Err(r) => println!("  {c}: NVENC unavailable: {r}"),
        }
    }
    let path = format!("{out}/nvenc-forced.mkv");
    let c = cfg(
        &path,
        Codec::Hevc,
        EncoderChoice::Nvenc,
        RateControl::Quality(23),
        p.w,
        p.h,
    );
    match GpuEncoder::open(&c, &p.bridge, p.stream.handle()) {
        Ok(e) => Ok(format!(
            "encoder=nvenc opened {} (this GPU has NVENC)",
            e.name()
        )),
        Err(RecorderError::EncoderUnavailable { codec, reason }) => {
            let expected = reason.contains("no NVENC engine");
            println!("  encoder=nvenc → EncoderUnavailable({codec}): {reason}");
            if std::path::Path::new(&path).exists() {
                return Err("a failed NVENC open left a file behind".into());
            }
            if expected {
                Ok("encoder=nvenc fails with the no-NVENC-engine reason".into())
            } else {
                Err(format!("unexpected reason: {reason}"))
            }
        }
        Err(e) => Err(format!("encoder=nvenc: unexpected error {e}")),
    }
}

/// (3) auto → fallback from the GPU's NV12; decode and compare. `exact`: lossless (libx264
/// crf 0) must decode sample-exact; otherwise (libx265 crf 10) mean abs error under 2.
fn check_fallback(p: &mut Pipe, out: &str, codec: Codec, q: u32, exact: bool) -> Res<String> {
    let path = format!("{out}/fallback-{codec}.mkv");
    let c = cfg(
        &path,
        codec,
        EncoderChoice::Auto,
        RateControl::Quality(q),
        p.w,
        p.h,
    );
    let mut enc = GpuEncoder::open(&c, &p.bridge, p.stream.handle()).map_err(s)?;
    let sel = enc.selection().clone();
    println!(
        "  auto selected {} (fallback reason: {:?})",
        sel.name, sel.fallback_reason
    );
    let n = 8;
    for i in 0..n {
        let cf = p.convert(i)?;
        enc.push(&p.bridge, &cf, Duration::from_micros(i as u64 * 16_667))
            .map_err(s)?;
    }
    let size = enc
        .finish(Duration::from_micros(n as u64 * 16_667))
        .map_err(s)?;
    // Decode and compare every frame.
    let mut ictx = format::input(&path).map_err(s)?;
    let st = ictx
        .streams()
        .best(media::Type::Video)
        .ok_or("no video stream")?;
    let idx = st.index();
    let mut dec = ffmpeg_next::codec::context::Context::from_parameters(st.parameters())
        .map_err(s)?
        .decoder()
        .video()
        .map_err(s)?;
    let layout = *p.conv.layout();
    let mut got = frame::Video::empty();
    let mut k = 0usize;
    let check = |f: &frame::Video, k: usize| -> Res<()> {
        if f.format() != format::Pixel::YUV420P {
            return Err(format!("decoded format {:?}", f.format()));
        }
        let want = &p.want[k % 2];
        let (w, h) = (layout.width as usize, layout.height as usize);
        let (mut bad, mut sum) = (0usize, 0u64);
        let mut cmp = |a: u8, b: u8| {
            bad += (a != b) as usize;
            sum += a.abs_diff(b) as u64;
        };
        for y in 0..h {
            for x in 0..w {
                cmp(
                    f.data(0)[y * f.stride(0) + x],
                    want[y * layout.pitch as usize + x],
                );
            }
        }
        for y in 0..h / 2 {
            for x in 0..w / 2 {
                let o = layout.uv_offset as usize + y * layout.pitch as usize + 2 * x;
                cmp(f.data(1)[y * f.stride(1) + x], want[o]);
                cmp(f.data(2)[y * f.stride(2) + x], want[o + 1]);
            }
        }
        let mae = sum as f64 / (w * h * 3 / 2) as f64;
        if (exact && bad > 0) || mae >= 2.0 {
            return Err(format!(
                "decoded frame {k}: {bad} samples differ, mean abs error {mae:.3}"
            ));
        }
        Ok(())
    };
    for (s_, pkt) in ictx.packets() {
        if s_.index() != idx {
            continue;
        }
        dec.send_packet(&pkt).map_err(s)?;
        while dec.receive_frame(&mut got).is_ok() {
            if k < n {
                check(&got, k)?;
            }
            k += 1;
        }
    }
    dec.send_eof().map_err(s)?;
    while dec.receive_frame(&mut got).is_ok() {
        if k < n {
            check(&got, k)?;
        }
        k += 1;
    }
    if k < n {
        return Err(format!("decoded {k} frames, pushed {n}"));
    }
    Ok(format!(
        "{}: {n} frames {}x{} from CUDA NV12 via pinned download, {size} B, decoded {k} frames, first {n} {}",
        sel.name,
        p.w,
        p.h,
        if exact { "sample-exact" } else { "within mean abs error 2" }
    ))
}

struct Stat(Vec<Duration>);
impl Stat {
    fn line(&mut self) -> String {
        self.0.sort();
        let n = self.0.len();
        let mean = self.0.iter().sum::<Duration>() / n as u32;
        format!(
            "mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
            mean.as_secs_f64() * 1e6,
            self.0[n / 2].as_secs_f64() * 1e6,
            self.0[n * 99 / 100].as_secs_f64() * 1e6
        )
    }
}

/// Per-frame CPU and GPU time from the CUDA slot to the encoder's input at the pipe's size.
fn bench_input(p: &mut Pipe) -> Res<()> {
    let frames = CudaFrames::new(
        p.bridge.context() as _,
        p.stream.handle().as_raw() as _,
        p.w,
        p.h,
    )
    .map_err(s)?;
    let stream = p.stream.handle();
    let (e0, e1) = (
        CudaEvent::new(true).map_err(s)?,
        CudaEvent::new(true).map_err(s)?,
    );
    let mut pinned = PinnedBuffer::new(p.conv.layout().size as usize).map_err(s)?;
    let size = p.conv.layout().size as usize;
    let mut f = frame::Video::empty();
    let iters = 200;
    for mode in [
        "pool copy (NVENC input)",
        "zero-copy wrap of the slot",
        "pinned download (fallback input)",
    ] {
        let (mut cpu_t, mut gpu_t) = (Stat(Vec::new()), Stat(Vec::new()));
        let mut allocs = 0;
        for i in 0..iters + 20 {
            let cf = p.convert(i)?;
            // Let the conversion finish first so the GPU timing is the copy alone.
            p.bridge.wait(&cf, stream).map_err(s)?;
            p.stream.synchronize().map_err(s)?;
            let a0 = zerocast_interop::testing::CountingAlloc::count();
            let t0 = thread_cpu();
            p.bridge.wait(&cf, stream).map_err(s)?;
            e0.record(stream).map_err(s)?;
            let src = p.bridge.frame(&cf);
            match mode.as_bytes()[1] {
                b'o' => {
                    frames.get(&mut f).map_err(s)?;
                    let (y, uv, pitch) = hwframes::planes(&f);
                    copy_nv12_async(&src, DeviceNv12 { y, uv, pitch }, stream).map_err(s)?;
                }
                b'e' => frames.wrap(&mut f, src.y, src.uv, src.pitch).map_err(s)?,
                _ => download_nv12_async(&src, size, &mut pinned, stream).map_err(s)?,
            }
            e1.record(stream).map_err(s)?;
            let t1 = thread_cpu();
            let a1 = zerocast_interop::testing::CountingAlloc::count();
            e1.synchronize().map_err(s)?;
            p.bridge.release(&cf, stream).map_err(s)?;
            if i >= 20 {
                cpu_t.0.push(t1 - t0);
                gpu_t.0.push(e1.elapsed_since(&e0).map_err(s)?);
                allocs += a1 - a0;
            }
        }
        println!(
            "  {}x{} {mode}: CPU {}; GPU {}; {:.1} heap allocs/frame",
            p.w,
            p.h,
            cpu_t.line(),
            gpu_t.line(),
            allocs as f64 / iters as f64
        );
    }
    Ok(())
}

/// Fallback encoder fps (convert + download + software encode), one thread feeding it.
fn bench_fallback(p: &mut Pipe, out: &str, threads: Option<u32>) -> Res<()> {
    let path = format!("{out}/bench-{}.mkv", p.h);
    let c = cfg(
        &path,
        Codec::H264,
        EncoderChoice::Auto,
        RateControl::Quality(23),
        p.w,
        p.h,
    );
    let tuning = Tuning {
        threads,
        ..Default::default()
    };
    let mut enc = GpuEncoder::open_tuned(&c, &p.bridge, p.stream.handle(), tuning).map_err(s)?;
    let n = 150;
    let (t0, c0) = (Instant::now(), thread_cpu());
    for i in 0..n {
        let cf = p.convert(i)?;
        enc.push(&p.bridge, &cf, Duration::from_micros(i as u64 * 16_667))
            .map_err(s)?;
    }
    let (wall, cpu_t) = (t0.elapsed(), thread_cpu() - c0);
    let name = enc.name().to_owned();
    enc.finish(Duration::from_micros(n as u64 * 16_667))
        .map_err(s)?;
    let _ = std::fs::remove_file(&path);
    println!(
        "  {}x{} {name} (threads {}): {:.1} fps, {:.2} ms wall/frame, {:.2} ms feeding-thread CPU/frame",
        p.w,
        p.h,
        threads.map_or("default".into(), |t| t.to_string()),
        n as f64 / wall.as_secs_f64(),
        wall.as_secs_f64() * 1e3 / n as f64,
        cpu_t.as_secs_f64() * 1e3 / n as f64
    );
    Ok(())
}

fn main() -> ExitCode {
    let bench = std::env::args().any(|a| a == "--bench");
    let out = std::env::var("OUT").unwrap_or_else(|_| "/tmp".into());
    let sel = DeviceSelector {
        drm_dev: None,
        handle_type: HandleType::OpaqueFd,
    };
    let (consumer, producer) = match (VulkanContext::new(sel), VulkanContext::new(sel)) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(e), _) | (_, Err(e)) => {
            println!("FAIL Vulkan: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    let mut report = |what: &str, r: Res<String>| match r {
        Ok(m) => println!("PASS {what}: {m}"),
        Err(e) => {
            ok = false;
            println!("FAIL {what}: {e}");
        }
    };
    match Pipe::new(&consumer, &producer, 1920, 1080) {
        Ok(mut p) => {
            report("(1) interop → FFmpeg CUDA hw frames", check_pool(&mut p));
            report("(2) NVENC open", check_nvenc(&mut p, &out));
            report(
                "(3) auto fallback from GPU NV12 (h264, lossless)",
                check_fallback(&mut p, &out, Codec::H264, 0, true),
            );
            report(
                "(3b) auto fallback, encoder without NV12 input (hevc)",
                check_fallback(&mut p, &out, Codec::Hevc, 10, false),
            );
        }
        Err(e) => report("setup 1080p", Err(e)),
    }
    if bench {
        println!("== bench: CUDA NV12 slot → encoder input");
        match Pipe::new(&consumer, &producer, 3840, 2160) {
            Ok(mut p) => {
                if let Err(e) = bench_input(&mut p) {
                    report("bench 4K input", Err(e));
                }
                for t in [None, Some(0)] {
                    if let Err(e) = bench_fallback(&mut p, &out, t) {
                        report("bench 4K fallback", Err(e));
                    }
                }
            }
            Err(e) => report("setup 4K", Err(e)),
        }
        match Pipe::new(&consumer, &producer, 1920, 1080) {
            Ok(mut p) => {
                for t in [None, Some(0)] {
                    if let Err(e) = bench_fallback(&mut p, &out, t) {
                        report("bench 1080p fallback", Err(e));
                    }
                }
            }
            Err(e) => report("setup 1080p bench", Err(e)),
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
