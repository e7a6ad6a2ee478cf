//! GPU-machine check and benchmark of the interop path (built here, run there; see
//! scripts/gpu/interop-check.sh).
//!
//! `interop-check`          lists the NVIDIA modifiers, then for LINEAR and every tiled
//!                          modifier makes a producer image ("compositor"), exports it as
//!                          OPAQUE_FD (the dma-buf stand-in), imports, converts, hands it to
//!                          CUDA and compares the NV12 bytes read from CUDA with the CPU
//!                          reference.
//! `interop-check --bench`  per-frame GPU time, CPU time and allocations at 1080p/1440p/4K,
//!                          against the CPU path (map, copy to host, convert, cuMemcpyHtoD).

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use zerocast_interop::cpu::{self, SrcFrame};
use zerocast_interop::cuda::cuda_init;
use zerocast_interop::testing::{HostFrame, ProducerImage};
use zerocast_interop::*;

#[global_allocator]
static GLOBAL: zerocast_interop::testing::CountingAlloc = zerocast_interop::testing::CountingAlloc;

mod cu {
    //! The few raw CUDA calls the check needs beyond the library.
    pub use cudarc::driver::sys::*;
    pub fn ok(call: &str, r: CUresult) {
        assert_eq!(r, CUresult::CUDA_SUCCESS, "{call}");
    }
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

struct Rig {
    consumer: VulkanContext,
    producer: VulkanContext,
    stream: cu::CUstream,
}

impl Rig {
    fn new() -> Result<Self, InteropError> {
        let sel = DeviceSelector {
            drm_dev: None,
            handle_type: HandleType::OpaqueFd,
        };
        let consumer = VulkanContext::new(sel)?;
        // A second VkDevice plays the compositor.
        let producer = VulkanContext::new(sel)?;
        cuda_init()?;
        Ok(Rig {
            consumer,
            producer,
            stream: std::ptr::null_mut(),
        })
    }

    fn ensure_stream(&mut self, bridge: &CudaBridge) {
        if self.stream.is_null() {
            let mut ctx = std::ptr::null_mut();
            // SAFETY: out-pointers to locals/fields. Retaining the primary context keeps it (and
            // the stream) alive when a bridge, which holds its own retain, is dropped.
            unsafe {
                cu::ok(
                    "cuDevicePrimaryCtxRetain",
                    cu::cuDevicePrimaryCtxRetain(&mut ctx, bridge.device()),
                );
                cu::ok("cuCtxSetCurrent", cu::cuCtxSetCurrent(ctx));
                cu::ok(
                    "cuStreamCreate",
                    cu::cuStreamCreate(&mut self.stream, 1 /* NON_BLOCKING */),
                );
            }
        }
    }
}

fn reference(
    fourcc: Fourcc,
    (w, h): (u32, u32),
    seed: u32,
    place: &Framing,
    layout: &FrameLayout,
) -> Vec<u8> {
    let stride = w as usize * 4;
    let mut src = vec![0u8; stride * h as usize];
    cpu::fill_pattern(&mut src, stride, w, h, seed);
    let mut want = vec![0u8; layout.size as usize];
    let code = fourcc.pixel_code().expect("accepted fourcc");
    cpu::convert_placed(
        &SrcFrame {
            data: &src,
            stride,
            width: w,
            height: h,
            code,
        },
        place,
        layout,
        &mut want,
    );
    want
}

/// One import → convert → CUDA → compare case: the `w`×`h` frame into an `out` output (the
/// same size: a plain conversion; another: scaled bilinear, aspect kept, black bars).
fn check_case(
    rig: &mut Rig,
    fourcc: Fourcc,
    modifier: Modifier,
    mode: OutputMode,
    (w, h): (u32, u32),
    out: (u32, u32),
) -> Result<String, String> {
    let e = |e: InteropError| format!("{e} (fallback {:?})", e.fallback());
    let seed = (modifier.0 as u32) ^ fourcc.0 ^ w;
    let prod = ProducerImage::new(&rig.producer, fourcc, modifier, w, h, seed).map_err(e)?;
    let mut importer = DmabufImporter::new(&rig.consumer).map_err(e)?;
    let planes = [DmabufPlane {
        fd: prod.fd.as_fd(),
        offset: prod.offset,
        stride: prod.stride,
    }];
    let desc = DmabufDesc {
        width: w,
        height: h,
        fourcc,
        modifier: prod.modifier,
        planes: &planes,
        memory_size: Some(prod.alloc_size),
    };
    let mut conv =
        GpuConverter::new(&rig.consumer, ConverterConfig::new(mode, out.0, out.1)).map_err(e)?;
    let bridge = CudaBridge::new(&rig.consumer, &conv).map_err(e)?;
    rig.ensure_stream(&bridge);
    let place = Framing::fit(Region::whole(w, h), out.0, out.1);
    let want = reference(fourcc, (w, h), seed, &place, conv.layout());
    let mut got = PinnedBuffer::new(conv.layout().size as usize).map_err(e)?;
    // SAFETY: a live stream of the bridge's (primary) context, destroyed at exit.
    let stream = unsafe { CudaStream::from_raw(rig.stream) };
    let mut syncs = Vec::new();
    for _ in 0..4 {
        let frame = conv
            .convert_synced(importer.import(1, &desc).map_err(e)?, place, None)
            .map_err(e)?;
        syncs.push(bridge.wait(&frame, stream).map_err(e)?);
        bridge.download_async(&frame, &mut got, stream).map_err(e)?;
        bridge.release(&frame, stream).map_err(e)?;
        // SAFETY: our stream.
        cu::ok("cuStreamSynchronize", unsafe {
            cu::cuStreamSynchronize(rig.stream)
        });
        cpu::compare(&frame.layout, got.as_slice(), &want)?;
    }
    let kind = importer.get(1).map(|f| f.kind());
    Ok(format!(
        "stride {} offset {}, {:?} import, sync {:?}, 4 frames byte-exact",
        prod.stride, prod.offset, kind, syncs[0]
    ))
}

fn run_checks(rig: &mut Rig) -> bool {
    let set = match ModifierSet::query(&rig.consumer) {
        Ok(s) => s,
        Err(e) => {
            println!("FAIL modifier query: {e}");
            return false;
        }
    };
    println!("== (a) importable modifiers (OPAQUE_FD stands in for DMA_BUF)\n{set}");
    println!("== (b) producer image -> import -> convert -> CUDA -> compare");
    let mut ok = true;
    let mut cases = Vec::new();
    for fourcc in [Fourcc::XRGB8888, Fourcc::ARGB8888] {
        for m in set.modifiers(fourcc) {
            cases.push((fourcc, m, OutputMode::Nv12, (1920, 1080), (1920, 1080)));
        }
    }
    // Odd sizes, BGRx passthrough, the other byte order and 10-bit on a tiled and LINEAR modifier.
    let tiled = set
        .modifiers(Fourcc::XRGB8888)
        .find(|m| *m != Modifier::LINEAR);
    for m in [Some(Modifier::LINEAR), tiled].into_iter().flatten() {
        let same = |w, h| ((w, h), (w, h));
        let (a, b) = same(1366, 769);
        cases.push((Fourcc::XRGB8888, m, OutputMode::Nv12, a, b));
        cases.push((Fourcc::XRGB8888, m, OutputMode::Bgrx, a, b));
        let (a, b) = same(1280, 720);
        cases.push((Fourcc::ABGR8888, m, OutputMode::Nv12, a, b));
        if set.modifiers(Fourcc::XRGB2101010).any(|x| x == m) {
            cases.push((Fourcc::XRGB2101010, m, OutputMode::Nv12, a, b));
        }
        // Scaled bilinear (--size/--scale: down, up, a non-integer factor) and letterboxed (a
        // frame of another aspect mid-recording), through the texture path on tiled images.
        cases.push((
            Fourcc::XRGB8888,
            m,
            OutputMode::Nv12,
            (1920, 1080),
            (1280, 720),
        ));
        cases.push((
            Fourcc::XRGB8888,
            m,
            OutputMode::Nv12,
            (1280, 720),
            (1920, 1080),
        ));
        cases.push((
            Fourcc::XRGB8888,
            m,
            OutputMode::Nv12,
            (1920, 1200),
            (1280, 720),
        ));
        cases.push((
            Fourcc::XRGB8888,
            m,
            OutputMode::Bgrx,
            (1024, 768),
            (1366, 768),
        ));
    }
    for (fourcc, m, mode, (w, h), (ow, oh)) in cases {
        match check_case(rig, fourcc, m, mode, (w, h), (ow, oh)) {
            Ok(s) => println!("PASS {fourcc:?} {m:?} {mode:?} {w}x{h} -> {ow}x{oh}: {s}"),
            Err(s) => {
                ok = false;
                println!("FAIL {fourcc:?} {m:?} {mode:?} {w}x{h} -> {ow}x{oh}: {s}");
            }
        }
    }
    ok
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Device-to-device copy bandwidth (read + write bytes per second).
fn copy_bandwidth(stream: cu::CUstream) -> f64 {
    let n: usize = 512 << 20;
    let (mut a, mut b) = (0, 0);
    let (mut e0, mut e1) = (std::ptr::null_mut(), std::ptr::null_mut());
    let mut ms = 0f32;
    // SAFETY: plain driver calls on our context/stream with out-pointers to locals.
    unsafe {
        cu::ok("cuMemAlloc", cu::cuMemAlloc_v2(&mut a, n));
        cu::ok("cuMemAlloc", cu::cuMemAlloc_v2(&mut b, n));
        cu::ok("cuEventCreate", cu::cuEventCreate(&mut e0, 0));
        cu::ok("cuEventCreate", cu::cuEventCreate(&mut e1, 0));
        cu::ok(
            "cuMemcpyDtoDAsync",
            cu::cuMemcpyDtoDAsync_v2(b, a, n, stream),
        );
        cu::ok("cuEventRecord", cu::cuEventRecord(e0, stream));
        for _ in 0..10 {
            cu::ok(
                "cuMemcpyDtoDAsync",
                cu::cuMemcpyDtoDAsync_v2(b, a, n, stream),
            );
        }
        cu::ok("cuEventRecord", cu::cuEventRecord(e1, stream));
        cu::ok("cuEventSynchronize", cu::cuEventSynchronize(e1));
        cu::ok(
            "cuEventElapsedTime",
            cu::cuEventElapsedTime(&mut ms, e0, e1),
        );
        cu::cuMemFree_v2(a);
        cu::cuMemFree_v2(b);
        cu::cuEventDestroy_v2(e0);
        cu::cuEventDestroy_v2(e1);
    }
    (2.0 * n as f64 * 10.0) / (ms as f64 / 1e3)
}

fn bench(rig: &mut Rig) -> bool {
    let set = ModifierSet::query(&rig.consumer).expect("modifier query");
    // What a compositor on NVIDIA typically scans out: the first block-linear modifier.
    let modifier = set
        .modifiers(Fourcc::XRGB8888)
        .find(|m| *m != Modifier::LINEAR)
        .unwrap_or(Modifier::LINEAR);
    println!("== bench: XR24 {modifier:?} -> NV12 in CUDA (GPU semaphore sync), vs CPU path");
    let mut ok = true;
    let mut bw = 0.0;
    for (w, h) in [(1920u32, 1080u32), (2560, 1440), (3840, 2160)] {
        let prod = ProducerImage::new(&rig.producer, Fourcc::XRGB8888, modifier, w, h, 7)
            .expect("producer");
        let mut importer = DmabufImporter::new(&rig.consumer).expect("importer");
        let planes = [DmabufPlane {
            fd: prod.fd.as_fd(),
            offset: prod.offset,
            stride: prod.stride,
        }];
        let desc = DmabufDesc {
            width: w,
            height: h,
            fourcc: Fourcc::XRGB8888,
            modifier: prod.modifier,
            planes: &planes,
            memory_size: Some(prod.alloc_size),
        };
        let mut conv = GpuConverter::new(
            &rig.consumer,
            ConverterConfig {
                timestamps: true,
                slots: 3,
                ..ConverterConfig::new(OutputMode::Nv12, w, h)
            },
        )
        .expect("converter");
        let bridge = CudaBridge::new(&rig.consumer, &conv).expect("bridge");
        rig.ensure_stream(&bridge);
        if bw == 0.0 {
            bw = copy_bandwidth(rig.stream);
            println!(
                "device copy bandwidth (cuMemcpyDtoD, read+write): {:.0} GB/s",
                bw / 1e9
            );
        }
        // SAFETY: a live stream of the bridge's (primary) context, destroyed at exit.
        let cstream = unsafe { CudaStream::from_raw(rig.stream) };
        let stream = rig.stream;
        fn frame_once(
            importer: &mut DmabufImporter,
            conv: &mut GpuConverter,
            bridge: &CudaBridge,
            desc: &DmabufDesc<'_>,
            stream: CudaStream,
        ) -> ConvertedFrame {
            let imported = importer.import(1, desc).expect("import");
            let f = conv.convert(imported).expect("convert");
            bridge.wait(&f, stream).expect("wait");
            // The encoder would read planes here (bridge.frame(&f)) on `stream`.
            bridge.release(&f, stream).expect("release");
            f
        }
        macro_rules! frame_once {
            () => {
                frame_once(&mut importer, &mut conv, &bridge, &desc, cstream)
            };
        }
        for _ in 0..30 {
            frame_once!();
        }
        // SAFETY: our stream.
        cu::ok("cuStreamSynchronize", unsafe {
            cu::cuStreamSynchronize(stream)
        });
        // Steady state: CPU time and allocations per frame, pipelined as in production.
        let n = 300;
        let mut cpu_times = Vec::with_capacity(n);
        let mut alloc_frames = Vec::with_capacity(n);
        let mut last = [None; 3];
        let allocs0 = zerocast_interop::testing::CountingAlloc::count();
        let wall0 = Instant::now();
        for i in 0..n {
            let a0 = zerocast_interop::testing::CountingAlloc::count();
            let t0 = thread_cpu();
            let f = frame_once!();
            cpu_times.push((thread_cpu() - t0).as_secs_f64() * 1e6);
            last[i % 3] = Some(f);
            if zerocast_interop::testing::CountingAlloc::count() != a0 {
                alloc_frames.push(i);
            }
        }
        // SAFETY: our stream.
        cu::ok("cuStreamSynchronize", unsafe {
            cu::cuStreamSynchronize(stream)
        });
        let wall = wall0.elapsed().as_secs_f64() * 1e6 / n as f64;
        let allocs = zerocast_interop::testing::CountingAlloc::count() - allocs0;
        // GPU time of the last frames of the pipelined run (GPU busy, clocks up).
        let mut piped = Vec::new();
        for f in last.iter().flatten() {
            if let Ok(Some((disp, total))) = conv.gpu_time_split(f) {
                piped.push(format!(
                    "{:.1}/{:.1}",
                    disp.as_secs_f64() * 1e6,
                    total.as_secs_f64() * 1e6
                ));
            }
        }
        let mut disp_times = Vec::new();
        // GPU time of the convert (Vulkan timestamps), frame by frame.
        let mut gpu = Vec::with_capacity(50);
        for _ in 0..50 {
            let f = frame_once!();
            if let Ok(Some((d, t))) = conv.gpu_time_split(&f) {
                gpu.push(t.as_secs_f64() * 1e6);
                disp_times.push(d.as_secs_f64() * 1e6);
            }
        }
        // SAFETY: our stream.
        cu::ok("cuStreamSynchronize", unsafe {
            cu::cuStreamSynchronize(stream)
        });
        let cpu_us = median(&mut cpu_times);
        let gpu_us = if gpu.is_empty() {
            f64::NAN
        } else {
            median(&mut gpu)
        };
        let disp_us = if disp_times.is_empty() {
            f64::NAN
        } else {
            median(&mut disp_times)
        };
        println!(
            "  {w}x{h} detail: one frame at a time: dispatch {disp_us:.1} us of {gpu_us:.1} us; \
             pipelined (dispatch/total us): {piped:?}; frames that allocated: {alloc_frames:?}"
        );
        let bytes = (w as f64 * h as f64 * 4.0) + conv.layout().size as f64;
        let gbs = bytes / (gpu_us * 1e-6) / 1e9;

        // CPU path: map the frame, copy it to host, convert on the CPU, cuMemcpyHtoD.
        let host = HostFrame::new(&rig.producer, w, h, 7).expect("host frame");
        let layout = *conv.layout();
        let mut staging = vec![0u8; (w * h * 4) as usize];
        let mut nv12 = vec![0u8; layout.size as usize];
        let mut dptr = 0;
        // SAFETY: out-pointer to a local, context current (bridge).
        cu::ok("cuMemAlloc", unsafe {
            cu::cuMemAlloc_v2(&mut dptr, layout.size as usize)
        });
        let mut cpu_path = Vec::new();
        let mut cpu_wall = Vec::new();
        for _ in 0..10 {
            let (t0, w0) = (thread_cpu(), Instant::now());
            let mapped = host.bytes().expect("map");
            let len = staging.len();
            staging.copy_from_slice(&mapped[..len]);
            cpu::convert(
                &SrcFrame {
                    data: &staging,
                    stride: host.stride as usize,
                    width: w,
                    height: h,
                    code: zerocast_interop::format::PixelCode::Xrgb8,
                },
                &layout,
                &mut nv12,
            );
            // SAFETY: nv12 holds layout.size bytes; synchronous copy.
            cu::ok("cuMemcpyHtoD", unsafe {
                cu::cuMemcpyHtoD_v2(dptr, nv12.as_ptr() as *const _, nv12.len())
            });
            cpu_path.push((thread_cpu() - t0).as_secs_f64() * 1e6);
            cpu_wall.push(w0.elapsed().as_secs_f64() * 1e6);
        }
        // SAFETY: allocated above, no pending work.
        unsafe { cu::cuMemFree_v2(dptr) };
        let cpu_path_us = median(&mut cpu_path);
        let cpu_wall_us = median(&mut cpu_wall);
        let ratio = cpu_path_us / cpu_us;
        println!(
            "{w}x{h}: GPU convert {gpu_us:.1} us ({gbs:.0} GB/s = {:.0}% of copy bw), CPU {cpu_us:.1} us/frame on the calling thread, \
             sustained {wall:.1} us/frame wall, {allocs} allocations in {n} frames | CPU path {cpu_path_us:.0} us CPU ({cpu_wall_us:.0} us wall) = {ratio:.0}x more CPU",
            100.0 * gbs * 1e9 / bw
        );
        if w == 3840 {
            let pass = gpu_us <= 100.0 && cpu_us <= 50.0 && ratio >= 20.0 && allocs == 0;
            println!(
                "4K targets (GPU <= 100 us, CPU <= 50 us, >= 20x less CPU, 0 allocations): {}",
                if pass { "MET" } else { "MISSED" }
            );
            ok &= pass;
        }
    }
    ok
}

fn main() -> ExitCode {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let report = probe_with(DeviceSelector {
        drm_dev: None,
        handle_type: HandleType::OpaqueFd,
    });
    println!("== probe (OPAQUE_FD)\n{report}");
    let mut rig = match Rig::new() {
        Ok(r) => r,
        Err(e) => {
            println!("skipped: the GPU check needs NVIDIA Vulkan + CUDA: {e}");
            return ExitCode::from(2);
        }
    };
    let ok = if bench_mode {
        bench(&mut rig)
    } else {
        run_checks(&mut rig)
    };
    if !rig.stream.is_null() {
        // SAFETY: our stream, idle.
        unsafe { cu::cuStreamDestroy_v2(rig.stream) };
    }
    println!("{}", if ok { "RESULT: PASS" } else { "RESULT: FAIL" });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
