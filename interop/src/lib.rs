//! zerocast-interop: the zero-copy bridge from compositor DMA-BUFs to CUDA.
//!
//! ```text
//! dma-buf (PipeWire) ──import once per buffer──► VkImage (explicit modifier) / VkBuffer (LINEAR)
//!     ──compute shader (BT.709 NV12 or BGRx)──► ring slot in OPAQUE_FD-exportable memory
//!     ──imported once into CUDA──► CUdeviceptr + pitch; the CUDA stream waits on the Vulkan
//!                                  timeline semaphore (no CPU wait), or the CPU waits (fallback)
//! ```
//!
//! # Using it from the recorder (PipeWire thread; nothing here needs tokio)
//!
//! ```no_run
//! use zerocast_interop::*;
//! # fn demo(plane_fd: std::os::fd::BorrowedFd<'_>, stream: CudaStream) -> Result<(), InteropError> {
//! // Setup, once per stream:
//! let ctx = VulkanContext::new(DeviceSelector { drm_dev: None, handle_type: HandleType::DmaBuf })?;
//! let modifiers = ModifierSet::query(&ctx)?; // offer these in the EnumFormat pods
//! let mut importer = DmabufImporter::new(&ctx)?;
//! // After format negotiation (size known):
//! let mut conv = GpuConverter::new(&ctx, ConverterConfig::new(OutputMode::Nv12, 1920, 1080))?;
//! let cuda = CudaBridge::new(&ctx, &conv)?; // Err → Fallback::CpuEncode (host readback)
//!
//! // Per frame (PipeWire `process`): cached import, one submit, no allocation.
//! let planes = [DmabufPlane { fd: plane_fd, offset: 0, stride: 1920 * 4 }];
//! let desc = DmabufDesc {
//!     width: 1920, height: 1080, fourcc: Fourcc::XRGB8888, modifier: Modifier::LINEAR,
//!     planes: &planes, memory_size: None,
//! };
//! let frame = conv.convert(importer.import(42, &desc)?)?;
//! // Hold the pw_buffer until ctx.completed_value() >= frame.value, then queue it back.
//!
//! // Encoder thread: make the stream wait on the GPU, read, give the slot back.
//! cuda.wait(&frame, stream)?;
//! let planes = cuda.frame(&frame); // y / uv device pointers + pitch for NVENC
//! // ... encode from `planes` on `stream` ...
//! cuda.release(&frame, stream)?;
//!
//! // PipeWire removed buffer 42:
//! importer.forget(42)?;
//! # Ok(()) }
//! ```
//!
//! Every error is an [`InteropError`]; [`InteropError::fallback`] names the recovery
//! (drop the modifier and renegotiate, SHM, CPU encoder, or drop the frame).
//!
//! # Threads
//! [`VulkanContext`] is `Send + Sync` (an `Arc`). [`DmabufImporter`] and [`GpuConverter`] are
//! `Send` and belong to the PipeWire thread. [`CudaBridge`] is `Send` and belongs to the
//! encoder thread; [`FrameReleaser`] (from [`GpuConverter::releaser`]) is `Clone + Send`.
//!
//! # Without CUDA
//! `ConverterConfig { host_readback: true, .. }` adds a copy into host-visible memory to each
//! frame's submission; [`GpuConverter::host_frame`] returns the NV12 bytes once the frame is done.
//! With CUDA, [`CudaBridge::download_async`] copies into a [`PinnedBuffer`] on a stream.
//!
//! # Layering
//! Read bottom-up: each module uses only modules of the layers above it in this list, never
//! its own layer or a later one, so the module graph is a DAG (`tests/layering.rs` checks it).
//!
//! 1. `format`: DRM fourccs and modifiers, how a modifier is imported ([`ImportKind`])
//! 2. `error`, `cpu`: the error type and its fallbacks; the output layout and the CPU
//!    reference conversion
//! 3. `vk::sync`, `vk::kernels`: timeline semaphores; the convert pipelines (SPIR-V)
//! 4. `vk::context`: loader, device choice, the logical device every object shares
//! 5. `vk::memory`, `modifiers`, `explicit_sync`: buffers and device memory; the importable
//!    modifiers; the compositor's acquire/release timelines
//! 6. `import`: dma-buf import cache
//! 7. `convert`: the GPU conversion into exportable ring slots
//! 8. `cuda`: the slots and timelines imported into CUDA
//! 9. `cuda_ops`, `probe`: stream-ordered CUDA copies for the encoder; `zerocast probe`
//! 10. `testing` (feature `testing`, never in the shipped build): stand-ins for the compositor
//!     and CUDA used by tests and the GPU check binary

pub mod convert;
pub mod cpu;
pub mod cuda;
pub mod cuda_ops;
pub mod error;
pub mod explicit_sync;
pub mod format;
pub mod import;
pub mod modifiers;
pub mod probe;
#[cfg(feature = "testing")]
pub mod testing;
mod vk;

pub use convert::{
    ConvertedFrame, ConverterConfig, FrameReleaser, Framing, GpuConverter, Region, SlotExport,
};
pub use cpu::{FrameLayout, OutputMode};
pub use cuda::{
    cuda_init, CUcontext, CUdeviceptr, CUstream, CudaBridge, CudaFrame, CudaStream, FrameSync,
    PinnedBuffer,
};
pub use cuda_ops::{copy_nv12_async, download_nv12_async, CudaEvent, DeviceNv12, OwnedStream};
pub use error::{Fallback, InteropError};
pub use explicit_sync::{ImportedTimeline, SyncPoints};
pub use format::{Fourcc, ImportKind, Modifier};
pub use import::{BufferId, DmabufDesc, DmabufImporter, DmabufPlane, ImportedFrame};
pub use modifiers::{FormatModifiers, ModifierInfo, ModifierSet};
pub use probe::{probe, probe_with, ProbeReport};
pub use vk::context::{DeviceSelector, HandleType, PhysicalDeviceInfo, VulkanContext};

/// Re-export for callers that need raw Vulkan handles (tests, the GPU check binary).
pub use ash;

#[cfg(test)]
mod thread_safety {
    use super::*;
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}

    /// The recorder moves these between its threads (see "Threads" above).
    #[test]
    fn bounds() {
        send::<VulkanContext>();
        sync::<VulkanContext>();
        send::<DmabufImporter>();
        send::<GpuConverter>();
        send::<CudaBridge>();
        send::<FrameReleaser>();
        sync::<FrameReleaser>();
        send::<PinnedBuffer>();
        send::<ProbeReport>();
    }
}
