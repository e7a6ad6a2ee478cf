//! The `dmabuf-vulkan-cuda` capture path end to end, against a real PipeWire daemon: the test
//! producer hands out NVIDIA-tiled Vulkan images (exported as OPAQUE_FD, the stand-in for a
//! compositor's dma-bufs where the driver has no dma-buf import), the recorder imports them
//! with the negotiated modifier, converts to NV12 on the GPU, maps the slots in CUDA and
//! encodes through `GpuEncoder` (NVENC, or the software encoder fed by one pinned download per
//! frame where the GPU has no NVENC). The decoded file is checked pixel by pixel.
//!
//! Needs CUDA and a Vulkan device with `VK_EXT_image_drm_format_modifier` that CUDA can see:
//! the GPU machine (`scripts/gpu/cuda-e2e.sh`). Elsewhere every test prints why it is skipped.

use zerocast_testproducer as producer;

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use producer::{
    check_file, decode_rgb, logged, record, Backing, Daemon, Offer, Producer, ProducerOptions,
};
use zerocast_recorder::CapturePath;

/// The modifier to test with (a tiled one if the device has any), or why this machine cannot
/// run the CUDA path.
fn gpu() -> Result<u64, String> {
    static GPU: OnceLock<Result<u64, String>> = OnceLock::new();
    GPU.get_or_init(|| {
        let devices =
            zerocast_interop::cuda::cuda_devices().map_err(|e| format!("no CUDA: {e}"))?;
        if devices.is_empty() {
            return Err("no CUDA device".into());
        }
        let (ctx, modifier) = producer::opaque_fd_device()?;
        if !devices
            .iter()
            .any(|d| d.uuid == ctx.device_info().device_uuid)
        {
            return Err(format!(
                "CUDA does not see the Vulkan device {}",
                ctx.device_info().name
            ));
        }
        Ok(modifier)
    })
    .clone()
}

/// Sets the process up once; returns the modifier, or prints why the test is skipped.
fn setup(test: &str) -> Option<u64> {
    producer::setup_process(
        &[
            // The producer's buffers are OPAQUE_FD exports, not dma-bufs.
            ("ZEROCAST_IMPORT_OPAQUE_FD", "1"),
            // No /dev/dri on the GPU machine (no nvidia-drm).
            ("ZEROCAST_DMABUF_ON_CPU", "1"),
        ],
        "zerocast_recorder=info,zerocast_interop=info",
    );
    match gpu() {
        Ok(m) => Some(m),
        Err(why) => {
            producer::skipped(test, &why);
            None
        }
    }
}

fn opts(modifier: u64) -> ProducerOptions {
    ProducerOptions {
        width: 1280,
        height: 720,
        fps: 60,
        offer: Offer::Dmabuf,
        modifiers: vec![modifier],
        backing: Backing::VulkanOpaque,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tiled_frames_travel_through_cuda_into_the_file() {
    let Some(modifier) = setup("tiled_frames_travel_through_cuda_into_the_file") else {
        return;
    };
    let daemon = Daemon::start();
    let o = opts(modifier);
    let producer = Producer::start(&daemon, o.clone());
    let (summary, _dir) = record(&daemon, &producer, 2.0).await;
    let s = &summary.stats;
    println!(
        "modifier {modifier:#018x}: path {}, encoder {}, {} received / {} written / {} dropped",
        s.capture_path, s.encoder, s.frames_received, s.frames_written, s.frames_dropped
    );
    assert_eq!(s.capture_path, CapturePath::DmabufVulkanCuda);
    assert!(logged("CUDA bridge ready"));
    assert!(s.frames_written >= 60, "{s:?}");
    // The encoder opens while the stream starts (at format time): no start-up drops. Was 13 of
    // 137 when it opened with the first frame.
    assert!(s.frames_dropped <= 3, "{s:?}");
    assert_eq!(producer.stats.dmabuf_formats.load(Ordering::Relaxed), 1);
    let n = check_file(&summary, o.width, o.height, 30);
    // Each frame is a new one: a CUDA slot encoded twice, or one never refilled, would repeat
    // a sequence stamp.
    producer::check_fresh_frames(&summary, o.width, o.height);
    println!("{n} frames decoded, every one with the producer's quadrants");
}

/// Imports that start failing mid-stream renegotiate to SHM; the encoder opened for CUDA
/// frames takes the host frames from then on, and no frame is lost or corrupt in the file.
#[tokio::test(flavor = "multi_thread")]
async fn failing_imports_fall_back_to_shm_into_the_same_file() {
    let Some(modifier) = setup("failing_imports_fall_back_to_shm_into_the_same_file") else {
        return;
    };
    let daemon = Daemon::start();
    let o = ProducerOptions {
        offer: Offer::Both,
        bad_from: Some(2),
        shm_rotated: true,
        ..opts(modifier)
    };
    let producer = Producer::start(&daemon, o.clone());
    let (summary, _dir) = record(&daemon, &producer, 2.0).await;
    let st = &producer.stats;
    assert_eq!(st.dmabuf_formats.load(Ordering::Relaxed), 1);
    assert_eq!(st.shm_formats.load(Ordering::Relaxed), 1);
    assert!(logged("renegotiating"));
    assert_eq!(summary.stats.capture_path, CapturePath::ShmCpu);
    producer::check_fallback_file(&summary, o.width, o.height);
    producer::check_fresh_frames(&summary, o.width, o.height);
}

/// A window cast's crop region on the CUDA path: the GPU reads just the region, and the file
/// is the region's size (the encoder, opened at the stream's size when the format was
/// negotiated, reopens at the first frame's region before anything is written).
#[tokio::test(flavor = "multi_thread")]
async fn crop_region_on_the_cuda_path() {
    let Some(modifier) = setup("crop_region_on_the_cuda_path") else {
        return;
    };
    let daemon = Daemon::start();
    // x 480..800 straddles the middle (640): left half red, right half green, all in the top.
    let o = ProducerOptions {
        crop: Some((480, 0, 320, 180)),
        ..opts(modifier)
    };
    let producer = Producer::start(&daemon, o.clone());
    let (summary, _dir) = record(&daemon, &producer, 1.5).await;
    assert_eq!(summary.stats.capture_path, CapturePath::DmabufVulkanCuda);
    assert!(logged("recording it at its own size"));
    let (w, h) = (320, 180);
    let frames = decode_rgb(
        summary
            .path
            .as_deref()
            .expect("a normal recording writes its file"),
        w,
        h,
    );
    assert!(frames.len() >= 30, "{} frames", frames.len());
    for f in &frames {
        let px = |x: u32, y: u32| {
            let i = ((y * w + x) * 3) as usize;
            [f[i], f[i + 1], f[i + 2]]
        };
        let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(p, q)| p.abs_diff(q) <= 16);
        let (sw, sh) = (o.width, o.height);
        assert!(close(
            px(w / 4, h / 2),
            producer::quadrant_rgb(0, 0, sw, sh)
        ));
        assert!(close(
            px(3 * w / 4, h / 2),
            producer::quadrant_rgb(sw - 1, 0, sw, sh)
        ));
    }
    let size = producer::video_size(
        summary
            .path
            .as_deref()
            .expect("a normal recording writes its file"),
    );
    assert_eq!(size, (w, h), "the file is the crop region's size");
}

/// `--region` and `--scale` on the CUDA path: the converter reads only the region (the file is
/// its size), or writes the whole frame at half size; colours where they belong.
#[tokio::test(flavor = "multi_thread")]
async fn user_region_and_scale_on_the_cuda_path() {
    let Some(modifier) = setup("user_region_and_scale_on_the_cuda_path") else {
        return;
    };
    let daemon = Daemon::start();
    let o = opts(modifier);
    let producer = Producer::start(&daemon, o.clone());
    let (sw, sh) = (o.width, o.height);
    let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(p, q)| p.abs_diff(q) <= 16);
    // x 480..800 straddles the middle (640): left half red, right half green, all in the top.
    let (summary, _dir) = producer::record_with(&daemon, &producer, 1.5, |r| {
        r.region = Some(zerocast_recorder::Region {
            x: 480,
            y: 0,
            width: 320,
            height: 180,
        })
    })
    .await;
    assert_eq!(summary.stats.capture_path, CapturePath::DmabufVulkanCuda);
    let (w, h) = (320, 180);
    let frames = producer::frames_of(&summary, w, h, 30);
    for f in &frames {
        let px = |x: u32, y: u32| {
            let i = ((y * w + x) * 3) as usize;
            [f[i], f[i + 1], f[i + 2]]
        };
        assert!(close(
            px(w / 4, h / 2),
            producer::quadrant_rgb(0, 0, sw, sh)
        ));
        assert!(close(
            px(3 * w / 4, h / 2),
            producer::quadrant_rgb(sw - 1, 0, sw, sh)
        ));
    }

    let (summary, _dir) = producer::record_with(&daemon, &producer, 1.5, |r| {
        r.output_size = zerocast_recorder::OutputSize::Scale(0.5);
    })
    .await;
    assert_eq!(summary.stats.capture_path, CapturePath::DmabufVulkanCuda);
    let frames = producer::frames_of(&summary, sw / 2, sh / 2, 30);
    producer::assert_half_scale_quadrants(&frames, sw, sh);
}

/// A size change mid-stream (the crop region becomes a wider strip after 60 frames) on the
/// CUDA path: the file keeps the first size, the new frames letterboxed by the converter.
#[tokio::test(flavor = "multi_thread")]
async fn size_change_is_letterboxed_on_the_cuda_path() {
    let Some(modifier) = setup("size_change_is_letterboxed_on_the_cuda_path") else {
        return;
    };
    let daemon = Daemon::start();
    let o = opts(modifier);
    let o = ProducerOptions {
        crop_from: Some((60, producer::letterbox_strip(o.width, o.height))),
        ..o
    };
    let producer = Producer::start(&daemon, o.clone());
    let (summary, _dir) = producer::record(&daemon, &producer, 2.0).await;
    assert_eq!(summary.stats.capture_path, CapturePath::DmabufVulkanCuda);
    let frames = producer::frames_of(&summary, o.width, o.height, 30);
    producer::assert_letterboxed_after_size_change(&frames, o.width, o.height);
}

/// Explicit sync (SyncTimeline): the producer's buffers carry acquire/release timelines
/// (Vulkan OPAQUE_FD timelines standing in for DRM syncobjs). The recorder's conversion waits
/// for the acquire point on the GPU and signals the release point on the GPU; buffers it does
/// not convert (the fps cap keeps 1 in 4 here, and stale ones are drained) get their release
/// point from the CPU. The producer checks every buffer it gets back was released.
#[tokio::test(flavor = "multi_thread")]
async fn explicit_sync_releases_every_buffer() {
    let Some(modifier) = setup("explicit_sync_releases_every_buffer") else {
        return;
    };
    let daemon = Daemon::start();
    let o = ProducerOptions {
        sync: true,
        ..opts(modifier)
    };
    let producer = Producer::start(&daemon, o.clone());
    let (summary, _dir) =
        producer::record_with(&daemon, &producer, 2.0, |r| r.max_fps = Some(15)).await;
    let st = &producer.stats;
    let (frames, seen, missing) = (
        st.sync_frames.load(Ordering::Relaxed),
        st.releases_seen.load(Ordering::Relaxed),
        st.releases_missing.load(Ordering::Relaxed),
    );
    println!(
        "explicit sync: {frames} buffers with points, {seen} came back released, {missing} not; \
         {:?}",
        summary.stats
    );
    assert!(logged("offering explicit sync"));
    assert!(frames >= 60, "{frames} synced buffers");
    assert_eq!(missing, 0, "buffers reused without their release point");
    assert!(seen >= frames - 8, "{seen} of {frames}");
    assert_eq!(summary.stats.capture_path, CapturePath::DmabufVulkanCuda);
    // 15 fps of 60: the rest were released unread from the CPU.
    assert!(summary.stats.frames_written >= 20, "{:?}", summary.stats);
    check_file(&summary, o.width, o.height, 20);
    producer::check_fresh_frames(&summary, o.width, o.height);
}

/// CPU per frame at 4K: the CUDA path vs the SHM path, one after the other in this process.
/// `scripts/gpu/cuda-e2e.sh --bench` on the GPU machine.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: prints figures, asserts nothing about speed"]
async fn bench_cpu_per_frame_cuda_vs_shm_4k() {
    let Some(modifier) = setup("bench_cpu_per_frame_cuda_vs_shm_4k") else {
        return;
    };
    let o = |offer| ProducerOptions {
        width: 3840,
        height: 2160,
        fps: 30,
        offer,
        ..opts(modifier)
    };
    producer::bench_paths(&[
        ("dmabuf-vulkan-cuda", o(Offer::Dmabuf)),
        ("shm-cpu", o(Offer::Shm)),
    ])
    .await;
}
