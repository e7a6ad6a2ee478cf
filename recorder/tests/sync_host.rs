//! Explicit sync on the host read-back path (`dmabuf-vulkan-cpu`): what a GPU without CUDA
//! (AMD, Intel) records with. The producer's buffers carry acquire/release timelines; the
//! conversion waits for the acquire point and signals the release point on the GPU, the NV12 is
//! read back for the software encoder, and every buffer comes back released.
//!
//! Its own test binary because it turns CUDA off for the whole process (`ZEROCAST_NO_CUDA`).
//! Needs a Vulkan device that exports tiled images and timelines as OPAQUE_FD and imports
//! timelines (the GPU machine: `scripts/gpu/cuda-e2e.sh`); elsewhere it prints SKIPPED and why.

use zerocast_testproducer as producer;

use std::sync::atomic::Ordering;

use producer::{
    check_file, logged, record_with, Backing, Daemon, Offer, Producer, ProducerOptions,
};
use zerocast_recorder::CapturePath;

/// A tiled modifier the device imports, or why this machine cannot run the test.
fn device() -> Result<u64, String> {
    let (ctx, modifier) = producer::opaque_fd_device()?;
    if !ctx.can_import_semaphores() {
        return Err(format!(
            "{} cannot import timeline semaphores",
            ctx.device_info().name
        ));
    }
    Ok(modifier)
}

#[tokio::test(flavor = "multi_thread")]
async fn explicit_sync_on_the_host_readback_path() {
    producer::setup_process(
        &[
            ("ZEROCAST_IMPORT_OPAQUE_FD", "1"),
            ("ZEROCAST_DMABUF_ON_CPU", "1"),
            // What a machine without CUDA gets.
            ("ZEROCAST_NO_CUDA", "1"),
        ],
        "zerocast_recorder=info,zerocast_interop=info",
    );
    let modifier = match device() {
        Ok(m) => m,
        Err(why) => {
            producer::skipped("explicit_sync_on_the_host_readback_path", &why);
            return;
        }
    };
    let daemon = Daemon::start();
    let o = ProducerOptions {
        width: 1280,
        height: 720,
        fps: 60,
        offer: Offer::Dmabuf,
        modifiers: vec![modifier],
        backing: Backing::VulkanOpaque,
        sync: true,
        ..Default::default()
    };
    let producer = Producer::start(&daemon, o.clone());
    let (summary, _dir) = record_with(&daemon, &producer, 2.0, |r| r.max_fps = Some(30)).await;
    let st = &producer.stats;
    let (frames, seen, missing) = (
        st.sync_frames.load(Ordering::Relaxed),
        st.releases_seen.load(Ordering::Relaxed),
        st.releases_missing.load(Ordering::Relaxed),
    );
    println!(
        "host path, explicit sync: {frames} buffers with points, {seen} came back released, \
         {missing} not; {:?}",
        summary.stats
    );
    assert!(logged("offering explicit sync"));
    assert_eq!(summary.stats.capture_path, CapturePath::DmabufVulkanCpu);
    assert!(frames >= 60, "{frames} synced buffers");
    assert_eq!(missing, 0, "buffers reused without their release point");
    assert!(seen >= frames - 8, "{seen} of {frames}");
    assert!(summary.stats.frames_written >= 40, "{:?}", summary.stats);
    check_file(&summary, o.width, o.height, 40);
    producer::check_fresh_frames(&summary, o.width, o.height);
}
