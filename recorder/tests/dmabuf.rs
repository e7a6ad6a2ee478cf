//! The DMA-BUF capture path against a real PipeWire daemon and a test producer: negotiation,
//! Vulkan import (lavapipe: memfd-backed LINEAR buffers), GPU NV12 conversion, fallbacks.
//!
//! Needs `pipewire`, `wireplumber`, `ffmpeg` and a Vulkan driver with dma-buf import
//! (mesa-vulkan-drivers' lavapipe in CI).

use zerocast_testproducer as producer;

use producer::{
    check_file, decode_rgb, logged, quadrant_rgb, record, Daemon, Offer, Producer, ProducerOptions,
};
use zerocast_recorder::CapturePath;

fn setup() {
    // lavapipe is a CPU device, which production skips; these tests are about the path.
    producer::setup_process(&[("ZEROCAST_DMABUF_ON_CPU", "1")], "zerocast_recorder=info");
}

#[tokio::test(flavor = "multi_thread")]
async fn dmabuf_linear_frames_reach_the_file() {
    setup();
    let daemon = Daemon::start();
    let opts = ProducerOptions::default();
    let producer = Producer::start(&daemon, opts.clone());
    let (summary, _dir) = record(&daemon, &producer, 1.5).await;
    assert_eq!(summary.stats.capture_path, CapturePath::DmabufVulkanCpu);
    assert_eq!(
        producer
            .stats
            .dmabuf_formats
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let n = check_file(&summary, opts.width, opts.height, 10);
    producer::check_fresh_frames(&summary, opts.width, opts.height);
    eprintln!("dmabuf: {n} frames decoded, stats {:?}", summary.stats);
}

#[tokio::test(flavor = "multi_thread")]
async fn unimportable_modifiers_end_on_shm() {
    setup();
    let daemon = Daemon::start();
    let opts = ProducerOptions {
        offer: Offer::Both,
        // I915_FORMAT_MOD_X_TILED: lavapipe imports LINEAR only.
        modifiers: vec![0x0100_0000_0000_0001],
        ..Default::default()
    };
    let producer = Producer::start(&daemon, opts.clone());
    let (summary, _dir) = record(&daemon, &producer, 1.5).await;
    assert_eq!(summary.stats.capture_path, CapturePath::ShmCpu);
    assert!(logged("producer chose SHM although DMA-BUF was offered"));
    check_file(&summary, opts.width, opts.height, 10);
    producer::check_fresh_frames(&summary, opts.width, opts.height);
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_imports_renegotiate_once_to_shm() {
    setup();
    let daemon = Daemon::start();
    let opts = ProducerOptions {
        offer: Offer::Both,
        bad_from: Some(2),
        shm_rotated: true,
        ..Default::default()
    };
    let producer = Producer::start(&daemon, opts.clone());
    let (summary, _dir) = record(&daemon, &producer, 2.0).await;
    let st = &producer.stats;
    assert_eq!(
        st.dmabuf_formats.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(st.shm_formats.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(summary.stats.capture_path, CapturePath::ShmCpu);
    assert!(logged("renegotiating"));
    // No frame of a failed import (half a memfd) made it into the file.
    producer::check_fallback_file(&summary, opts.width, opts.height);
    producer::check_fresh_frames(&summary, opts.width, opts.height);
}

/// One run per path at 1080p30 on the test producer; prints CPU ms per frame per thread.
/// `cargo test -p zerocast-recorder --test dmabuf -- --ignored --nocapture` (the recorder and
/// interop crates are built with opt-level 3 even in the dev profile).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: prints figures, asserts nothing about speed"]
async fn bench_cpu_per_frame_dmabuf_vs_shm() {
    setup();
    let opts = |offer| ProducerOptions {
        width: 1920,
        height: 1080,
        fps: 30,
        offer,
        ..Default::default()
    };
    producer::bench_paths(&[("shm", opts(Offer::Shm)), ("dmabuf", opts(Offer::Dmabuf))]).await;
}

/// Window casts send a crop region, and `--region` asks for one: the file holds just that
/// region, at its size — on the SHM path (CPU crop) and on the DMA-BUF path (the GPU converter
/// reads only the region).
async fn crop_region_is_recorded_at_its_size(offer: Offer, path: CapturePath, by_option: bool) {
    setup();
    let daemon = Daemon::start();
    // 96x64 at 128,16 of the 320x240 frame: x 128..224 straddles the middle (160), so the left
    // part is in the red quadrant and the right part in the green one.
    let (x, y, w, h) = (128, 16, 96, 64);
    let producer = Producer::start(
        &daemon,
        ProducerOptions {
            offer,
            crop: (!by_option).then_some((x, y, w, h)),
            ..Default::default()
        },
    );
    let (summary, _dir) = producer::record_with(&daemon, &producer, 1.5, |o| {
        if by_option {
            // No portal geometry here: the region is in the frame's pixels.
            o.region = Some(zerocast_recorder::Region {
                x: x as i32,
                y: y as i32,
                width: w,
                height: h,
            });
        }
    })
    .await;
    assert_eq!(summary.stats.capture_path, path);
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(
            summary
                .path
                .as_deref()
                .expect("a normal recording writes its file"),
        )
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "96,64");
    let frames = decode_rgb(
        summary
            .path
            .as_deref()
            .expect("a normal recording writes its file"),
        96,
        64,
    );
    assert!(frames.len() > 10, "{} frames", frames.len());
    for f in &frames {
        let px = |x: u32, y: u32| {
            let i = ((y * 96 + x) * 3) as usize;
            [f[i], f[i + 1], f[i + 2]]
        };
        let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(p, q)| p.abs_diff(q) <= 16);
        // Left part of the crop: the red quadrant; right part: the green one.
        assert!(
            close(px(8, 32), quadrant_rgb(0, 0, 320, 240)),
            "{:?}",
            px(8, 32)
        );
        assert!(
            close(px(88, 32), quadrant_rgb(319, 0, 320, 240)),
            "{:?}",
            px(88, 32)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shm_crop_region_is_recorded_at_its_size() {
    crop_region_is_recorded_at_its_size(Offer::Shm, CapturePath::ShmCpu, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dmabuf_crop_region_is_recorded_at_its_size() {
    crop_region_is_recorded_at_its_size(Offer::Dmabuf, CapturePath::DmabufVulkanCpu, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shm_user_region_is_recorded_at_its_size() {
    crop_region_is_recorded_at_its_size(Offer::Shm, CapturePath::ShmCpu, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dmabuf_user_region_is_recorded_at_its_size() {
    crop_region_is_recorded_at_its_size(Offer::Dmabuf, CapturePath::DmabufVulkanCpu, true).await;
}

/// `--scale 0.5`: the file is half the frame's size on both paths, each quadrant's colour where
/// it belongs.
async fn scale_halves_the_picture(offer: Offer, path: CapturePath) {
    setup();
    let daemon = Daemon::start();
    let producer = Producer::start(
        &daemon,
        ProducerOptions {
            offer,
            ..Default::default()
        },
    );
    let (summary, _dir) = producer::record_with(&daemon, &producer, 1.5, |o| {
        o.output_size = zerocast_recorder::OutputSize::Scale(0.5);
    })
    .await;
    assert_eq!(summary.stats.capture_path, path);
    let frames = producer::frames_of(&summary, 160, 120, 11);
    producer::assert_half_scale_quadrants(&frames, 320, 240);
}

#[tokio::test(flavor = "multi_thread")]
async fn shm_scale_halves_the_picture() {
    scale_halves_the_picture(Offer::Shm, CapturePath::ShmCpu).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dmabuf_scale_halves_the_picture() {
    scale_halves_the_picture(Offer::Dmabuf, CapturePath::DmabufVulkanCpu).await;
}

/// The picture changes size mid-stream (a mode change: here the crop region becomes a 2:1
/// strip of the 4:3 frame after 40 frames): the file keeps the first size and the new frames
/// are scaled into it with their aspect kept — letterboxed, black bars above and below — on
/// both paths (the SHM path's swscale and the GPU converter place them by the same rule).
async fn size_change_is_letterboxed(offer: Offer, path: CapturePath) {
    setup();
    let daemon = Daemon::start();
    let o = ProducerOptions {
        offer,
        ..Default::default()
    };
    let o = ProducerOptions {
        crop_from: Some((40, producer::letterbox_strip(o.width, o.height))),
        ..o
    };
    let producer = Producer::start(&daemon, o.clone());
    let (summary, _dir) = record(&daemon, &producer, 2.0).await;
    assert_eq!(summary.stats.capture_path, path);
    let frames = producer::frames_of(&summary, o.width, o.height, 20);
    producer::assert_letterboxed_after_size_change(&frames, o.width, o.height);
}

#[tokio::test(flavor = "multi_thread")]
async fn shm_size_change_is_letterboxed() {
    size_change_is_letterboxed(Offer::Shm, CapturePath::ShmCpu).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dmabuf_size_change_is_letterboxed() {
    size_change_is_letterboxed(Offer::Dmabuf, CapturePath::DmabufVulkanCpu).await;
}
