//! The DMA-BUF capture path on the loop thread: Vulkan import (cached per `pw_buffer`), NV12
//! conversion on the GPU into slots that CUDA maps (`dmabuf-vulkan-cuda`), or — where CUDA
//! cannot see the Vulkan device — read back into host memory for the CPU encoder
//! (`dmabuf-vulkan-cpu`).

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use pipewire::spa::param::video::VideoFormat;
use zerocast_interop::{
    BufferId, ConvertedFrame, ConverterConfig, CudaBridge, DeviceSelector, DmabufDesc,
    DmabufImporter, FrameReleaser, Framing, GpuConverter, HandleType, ImportedTimeline,
    InteropError, ModifierSet, OutputMode, Region, SyncPoints, VulkanContext,
};

use crate::drop_order::DropsBefore;
use crate::encode::msg::BridgeMemory;
use crate::CapturePath;

use super::params;

/// Set to disable the DMA-BUF path (offer SHM only), e.g. to compare the two paths.
pub(crate) const DISABLE_ENV: &str = "ZEROCAST_NO_DMABUF";
/// Set to use the DMA-BUF path even on a software Vulkan device (lavapipe): the tests do, to
/// exercise the path without a GPU. In production a CPU "GPU" converts slower than the SHM path
/// and loading it costs ~80 MB of memory and ~200 ms at start.
pub(crate) const CPU_DEVICE_ENV: &str = "ZEROCAST_DMABUF_ON_CPU";
/// Set to keep converted frames away from CUDA (read them back for the CPU encoder instead).
pub(crate) const NO_CUDA_ENV: &str = "ZEROCAST_NO_CUDA";
/// Test stand-in for machines whose Vulkan driver has no dma-buf import (headless NVIDIA
/// without nvidia-drm): the producer's "dma-bufs" are Vulkan OPAQUE_FD exports, imported with
/// the same explicit-modifier call and another handle type; `spa_data.maxsize` carries the
/// allocation size OPAQUE_FD imports need. Never set in production.
pub(crate) const OPAQUE_FD_ENV: &str = "ZEROCAST_IMPORT_OPAQUE_FD";
/// Set to never offer explicit sync (SyncTimeline), e.g. to compare with implicit sync.
pub(crate) const NO_SYNC_ENV: &str = "ZEROCAST_NO_EXPLICIT_SYNC";
/// Output slots: frames the encoder may hold (queued or being copied) plus one being written.
const SLOTS: usize = 4;
/// Longest wait for the GPU to finish reading a compositor buffer before it is given back.
const GPU_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the DMA-BUF path is not even tried, if it is not.
pub(crate) fn skip_reason() -> Option<String> {
    if std::env::var_os(DISABLE_ENV).is_some() {
        return Some(format!("disabled by {DISABLE_ENV}"));
    }
    if std::env::var_os(CPU_DEVICE_ENV).is_some() {
        return None;
    }
    // A dma-buf can only come from (and be imported into) a GPU with a DRM render node.
    let has_render_node = std::fs::read_dir("/dev/dri")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        })
        .unwrap_or(false);
    (!has_render_node).then(|| "no GPU render node in /dev/dri".to_string())
}

/// Where converted frames go.
enum Delivery {
    /// NV12 read back into host memory (`dmabuf-vulkan-cpu`).
    Host,
    /// CUDA maps the slots (`dmabuf-vulkan-cuda`). The bridge travels to the encoder thread
    /// with the first frame; until then it is kept here.
    Cuda(Option<Box<CudaBridge>>),
}

struct Output {
    /// Where frames go, dropped before the converter: a bridge still here unmaps the slots
    /// before the converter frees them.
    slots: DropsBefore<Delivery, GpuConverter>,
    releaser: FrameReleaser,
}

/// The CUDA output rebuilt for the first frame's region (see [`Gpu::size_for_first_frame`]).
pub(crate) struct Resized {
    pub bridge: Box<CudaBridge>,
    pub releaser: FrameReleaser,
    /// The previous converter: its slots are mapped by the encoder's previous bridge, so it
    /// goes to the encoder thread and is dropped after that bridge.
    pub old: BridgeMemory,
}

/// A converted frame, as [`Gpu::convert`] hands it on.
pub(crate) enum Converted {
    /// Read back and passed to `fill`; the slot is free again.
    Host,
    /// In a CUDA-mapped slot, complete on the GPU; the encoder thread releases the slot.
    Cuda(ConvertedFrame),
}

pub(crate) struct Gpu {
    // Drop order: the converter and importer free Vulkan objects of the context.
    out: Option<Output>,
    importer: DmabufImporter,
    modifiers: ModifierSet,
    ctx: VulkanContext,
    handle_type: HandleType,
    /// Why CUDA is not used (logged once), if it is not.
    no_cuda: Option<String>,
    /// Frames converted so far: the first one fixes the output size.
    frames: u64,
    /// A crop region was scaled to the output (logged once).
    scaled_logged: bool,
    /// Explicit sync: each buffer's acquire and release timelines, imported once per buffer.
    timelines: HashMap<BufferId, (ImportedTimeline, ImportedTimeline)>,
    /// The last `convert` submitted GPU work that signals the buffer's release point.
    released_by_gpu: bool,
}

/// A buffer's explicit-sync description (SyncTimeline meta + its two SyncObj datas).
#[derive(Clone, Copy)]
pub(crate) struct RawSync<'a> {
    pub acquire_fd: BorrowedFd<'a>,
    pub release_fd: BorrowedFd<'a>,
    pub acquire_point: u64,
    pub release_point: u64,
}

// The PipeWire thread hands the converter to the encoder thread when it ends (`EncMsg::Retire`).
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Gpu>()
};

/// Held while a recording sets up or rebuilds its Vulkan device and pipelines. Two recordings
/// of one process (the daemon's, the tests') doing that at the same instant on lavapipe
/// (Mesa 25, LLVM 19: Debian 13) once crashed the process (SIGSEGV) between the device's
/// creation and the modifier query; a set-up is ~0.1 s and happens once per recording (and per
/// new stream format), so taking turns costs nothing a user sees.
static VULKAN_SETUP: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn vulkan_setup_turn() -> std::sync::MutexGuard<'static, ()> {
    // A panic while holding it leaves nothing half-built that the next set-up would see.
    VULKAN_SETUP.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gpu {
    /// Opens the Vulkan device and asks which modifiers it imports. Any error means "no
    /// DMA-BUF path here": the caller offers SHM only.
    pub fn new() -> Result<Gpu, InteropError> {
        let _turn = vulkan_setup_turn();
        let t0 = std::time::Instant::now();
        // PipeWire does not say which GPU made the buffers; the compositor's Wayland dma-buf
        // feedback does. Without it (no Wayland session) interop picks the best device, and a
        // foreign dma-buf that fails to import makes us renegotiate without that modifier.
        let drm_dev = crate::wayland::compositor_drm_device();
        tracing::info!(
            drm_dev = drm_dev.map(|d| format!("{}:{}", libc::major(d), libc::minor(d))),
            "compositor's DRM device (Wayland dma-buf feedback)"
        );
        let handle_type = if std::env::var_os(OPAQUE_FD_ENV).is_some() {
            tracing::warn!(
                "{OPAQUE_FD_ENV} is set: importing OPAQUE_FD test buffers, not dma-bufs"
            );
            HandleType::OpaqueFd
        } else {
            HandleType::DmaBuf
        };
        let ctx = VulkanContext::new(DeviceSelector {
            drm_dev,
            handle_type,
        })?;
        if ctx.device_info().device_type == zerocast_interop::ash::vk::PhysicalDeviceType::CPU
            && std::env::var_os(CPU_DEVICE_ENV).is_none()
        {
            return Err(InteropError::NoDevice(format!(
                "{} is a software renderer; SHM is cheaper (set {CPU_DEVICE_ENV}=1 to use it)",
                ctx.device_info().name
            )));
        }
        let modifiers = ModifierSet::query(&ctx)?;
        let importer = DmabufImporter::new(&ctx)?;
        tracing::info!(
            device = %ctx.device_info().name,
            setup_ms = t0.elapsed().as_millis() as u64,
            "importable modifiers:\n{modifiers}"
        );
        let no_cuda = std::env::var_os(NO_CUDA_ENV)
            .is_some()
            .then(|| format!("disabled by {NO_CUDA_ENV}"));
        Ok(Gpu {
            out: None,
            importer,
            modifiers,
            ctx,
            handle_type,
            no_cuda,
            frames: 0,
            scaled_logged: false,
            timelines: HashMap::new(),
            released_by_gpu: false,
        })
    }

    /// The modifiers to offer per SHM format (formats without a DRM fourcc get none).
    pub fn offer(&self) -> Vec<(VideoFormat, Vec<u64>)> {
        params::SHM_FORMATS
            .iter()
            .filter_map(|&f| {
                let fourcc = params::drm_fourcc(f)?;
                let mods: Vec<u64> = self.modifiers.modifiers(fourcc).map(|m| m.0).collect();
                Some((f, mods))
            })
            .collect()
    }

    /// Whether explicit sync can be offered: the device imports timeline semaphores from fds.
    pub fn supports_sync(&self) -> bool {
        self.ctx.can_import_semaphores() && std::env::var_os(NO_SYNC_ENV).is_none()
    }

    /// The buffer's timelines, imported on first use.
    fn timelines(
        &mut self,
        id: BufferId,
        sync: &RawSync<'_>,
    ) -> Result<&(ImportedTimeline, ImportedTimeline), InteropError> {
        if !self.timelines.contains_key(&id) {
            let acquire = ImportedTimeline::import(&self.ctx, sync.acquire_fd)?;
            let release = ImportedTimeline::import(&self.ctx, sync.release_fd)?;
            tracing::debug!(buffer = id, "imported the buffer's sync timelines");
            self.timelines.insert(id, (acquire, release));
        }
        Ok(&self.timelines[&id])
    }

    /// Imports the buffer's timelines (once); an error means explicit sync cannot work here.
    pub fn import_sync(&mut self, id: BufferId, sync: &RawSync<'_>) -> Result<(), InteropError> {
        self.timelines(id, sync).map(|_| ())
    }

    /// Whether the last [`Gpu::convert`] submitted work that signals the release point.
    pub fn released_by_gpu(&self) -> bool {
        self.released_by_gpu
    }

    /// A buffer given back unread (skipped, paused, failed): its release point is signalled
    /// from the CPU, as explicit sync requires for every buffer.
    pub fn release_unread(&mut self, id: BufferId, sync: &RawSync<'_>) -> Result<(), InteropError> {
        let point = sync.release_point;
        self.timelines(id, sync)?.1.signal(point)
    }

    /// Whether buffers carry their allocation size in `maxsize` (OPAQUE_FD stand-ins).
    pub fn wants_memory_size(&self) -> bool {
        self.handle_type == HandleType::OpaqueFd
    }

    /// A new DMA-BUF format: drop imports of the old one; build the converter (and, where CUDA
    /// sees this device, the bridge) for `size` unless the recording already has one. Returns
    /// the capture path frames will take.
    pub fn configure(&mut self, width: u32, height: u32) -> Result<CapturePath, InteropError> {
        let _turn = vulkan_setup_turn();
        self.importer.clear()?;
        self.timelines.clear();
        if let Some(out) = &self.out {
            // Once frames were recorded the output size is the recording's: frames of a new
            // stream size are scaled to it on the GPU (the encoder, and on the CUDA path the
            // bridge's mappings of these slots, stay as they are).
            let c = out.conv().config();
            if (c.width, c.height) == (width, height)
                || self.frames > 0
                || self.bridge_handed_over()
            {
                return Ok(out.path());
            }
        }
        self.out = None;
        let cuda = match &self.no_cuda {
            None => match self.cuda_output(width, height) {
                Ok(out) => Some(out),
                Err(e) => {
                    tracing::info!(reason = %e, "CUDA cannot take the GPU frames; reading NV12 back for the CPU encoder");
                    self.no_cuda = Some(e.to_string());
                    None
                }
            },
            Some(_) => None,
        };
        let out = match cuda {
            Some(out) => out,
            None => self.host_output(width, height)?,
        };
        let path = out.path();
        self.out = Some(out);
        Ok(path)
    }

    fn host_output(&self, width: u32, height: u32) -> Result<Output, InteropError> {
        let conv = GpuConverter::new(
            &self.ctx,
            ConverterConfig {
                host_readback: true,
                ..ConverterConfig::new(OutputMode::Nv12, width, height)
            },
        )?;
        Ok(Output {
            releaser: conv.releaser(),
            slots: DropsBefore::new(Delivery::Host, conv),
        })
    }

    fn cuda_output(&self, width: u32, height: u32) -> Result<Output, InteropError> {
        // Before allocating exportable slots: most machines have no CUDA driver at all.
        zerocast_interop::cuda_init()?;
        let conv = GpuConverter::new(
            &self.ctx,
            ConverterConfig {
                slots: SLOTS,
                ..ConverterConfig::new(OutputMode::Nv12, width, height)
            },
        )?;
        let bridge = CudaBridge::new(&self.ctx, &conv)?;
        Ok(Output {
            releaser: conv.releaser(),
            slots: DropsBefore::new(Delivery::Cuda(Some(Box::new(bridge))), conv),
        })
    }

    /// PipeWire removed the buffer (or the format changed).
    pub fn forget(&mut self, id: BufferId) {
        self.timelines.remove(&id);
        if let Err(e) = self.importer.forget(id) {
            tracing::warn!(error = %e, "releasing an imported buffer failed");
        }
    }

    /// First frame: when `output` (its region's size — a window cast's crop or `--region` —
    /// or the `--size` asked) is not the size the converter was built for at the format (the
    /// stream's), rebuild the output at that size, so the file has it. On the CUDA path the encoder was already opened on the old
    /// bridge: `Some` means it must reopen on the new one (nothing was encoded yet).
    pub fn size_for_first_frame(
        &mut self,
        region: Region,
        output: (u32, u32),
    ) -> Result<Option<Resized>, InteropError> {
        let Some(out) = &self.out else {
            return Ok(None);
        };
        let c = out.conv().config();
        if self.frames > 0 || (c.width, c.height) == output {
            return Ok(None);
        }
        let new = match out.sink() {
            Delivery::Host => self.host_output(output.0, output.1)?,
            Delivery::Cuda(_) => self.cuda_output(output.0, output.1)?,
        };
        let old = self.out.replace(new).expect("checked above");
        if (region.width, region.height) == output {
            tracing::info!(
                width = output.0,
                height = output.1,
                "first frame has a crop region: recording it at its own size"
            );
        } else {
            tracing::info!(
                region_width = region.width,
                region_height = region.height,
                width = output.0,
                height = output.1,
                "first frame: recording its region scaled to the asked size"
            );
        }
        if !matches!(old.sink(), Delivery::Cuda(None)) {
            // Host path, or a bridge the encoder never got: nothing to reopen.
            return Ok(None);
        }
        let (bridge, releaser) = self
            .take_bridge()
            .expect("a new CUDA output has its bridge");
        Ok(Some(Resized {
            bridge,
            releaser,
            old: BridgeMemory::new(Box::new(old)),
        }))
    }

    /// Gives the encoder thread the bridge (once, with the first CUDA frame).
    pub fn take_bridge(&mut self) -> Option<(Box<CudaBridge>, FrameReleaser)> {
        let out = self.out.as_mut()?;
        match out.slots.user_mut() {
            Delivery::Cuda(b) => b.take().map(|b| (b, out.releaser.clone())),
            Delivery::Host => None,
        }
    }

    /// Whether frames go to CUDA (no host buffer needed).
    pub fn bridge_in_use(&self) -> bool {
        self.out
            .as_ref()
            .is_some_and(|o| matches!(o.sink(), Delivery::Cuda(_)))
    }

    /// Gives a converted slot back without encoding it.
    pub fn releaser(&self) -> Option<&FrameReleaser> {
        self.out.as_ref().map(|o| &o.releaser)
    }

    /// Whether CUDA frames went to the encoder thread, which must then outlive our converter.
    pub fn bridge_handed_over(&self) -> bool {
        self.out
            .as_ref()
            .is_some_and(|o| matches!(o.sink(), Delivery::Cuda(None)))
    }

    /// Imports (once per buffer) and converts one frame. When this returns the GPU no longer
    /// reads the compositor's buffer, so it may be queued back at once.
    ///
    /// Host path: `fill` gets the NV12 bytes and layout before the slot is reused. CUDA path:
    /// the frame stays in its slot for the encoder thread; `fill` is not called.
    ///
    /// `region` is the part of the buffer to record (a window cast's crop region). The first
    /// frame fixes the output size to the region's ([`Gpu::size_for_first_frame`], called
    /// before this). Later regions of another size are scaled to it with their aspect kept
    /// (black bars), as the CPU path's encoder scales frames of another size.
    pub fn convert(
        &mut self,
        id: BufferId,
        desc: &DmabufDesc<'_>,
        region: Region,
        sync: Option<&RawSync<'_>>,
        fill: impl FnOnce(&[u8], &zerocast_interop::FrameLayout),
    ) -> Result<Converted, InteropError> {
        self.released_by_gpu = false;
        if let Some(s) = sync {
            self.timelines(id, s)?;
        }
        let Some(out) = self.out.as_mut() else {
            return Err(InteropError::InvalidDmabuf(
                "no converter configured".into(),
            ));
        };
        let c = out.conv().config();
        // A region of another size (a mode change, a window resized) keeps its aspect: scaled
        // into the largest centred rectangle, black bars around it, as the CPU path's swscale
        // does (the same `Region::fitted` rule).
        let place = Framing::fit(region, c.width, c.height);
        if (c.width, c.height) != (region.width, region.height) && !self.scaled_logged {
            self.scaled_logged = true;
            tracing::info!(
                region = ?region,
                output = format_args!("{}x{}", c.width, c.height),
                picture = ?place.dst,
                "frame region differs from the recording's size; scaling it on the GPU, aspect kept"
            );
        }
        let imported = self.importer.import(id, desc)?;
        let points = sync.map(|s| {
            let (a, r) = &self.timelines[&id];
            SyncPoints {
                acquire: (a, s.acquire_point),
                release: (r, s.release_point),
            }
        });
        let frame: ConvertedFrame = out
            .slots
            .owner_mut()
            .convert_synced(imported, place, points)?;
        self.released_by_gpu = points.is_some();
        self.frames += 1;
        match out.sink() {
            Delivery::Host => {
                // host_frame waits for the frame's timeline value: the CPU path needs the bytes
                // now, and that same wait is what makes it safe to give the pw_buffer back.
                let result = out
                    .conv()
                    .host_frame(&frame)
                    .map(|bytes| fill(bytes, &frame.layout));
                out.releaser.release(&frame);
                result.map(|()| Converted::Host)
            }
            Delivery::Cuda(_) if sync.is_some() => {
                // Explicit sync: the GPU signals the release point after reading; the buffer
                // goes back at once and the CPU never waits.
                Ok(Converted::Cuda(frame))
            }
            Delivery::Cuda(_) => {
                // The compositor's buffer goes back as soon as the conversion (tens of µs on a
                // GPU) has read it; the NV12 slot lives on for CUDA, which waits on the GPU.
                match out.conv().wait(&frame, GPU_TIMEOUT) {
                    Ok(true) => Ok(Converted::Cuda(frame)),
                    Ok(false) => {
                        out.releaser.release(&frame);
                        Err(InteropError::DeviceLost)
                    }
                    Err(e) => {
                        out.releaser.release(&frame);
                        Err(e)
                    }
                }
            }
        }
    }
}

impl Output {
    fn sink(&self) -> &Delivery {
        self.slots.user()
    }

    fn conv(&self) -> &GpuConverter {
        self.slots.owner()
    }

    fn path(&self) -> CapturePath {
        match self.sink() {
            Delivery::Host => CapturePath::DmabufVulkanCpu,
            Delivery::Cuda(_) => CapturePath::DmabufVulkanCuda,
        }
    }
}
