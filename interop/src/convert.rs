//! GPU conversion of an imported frame into a ring of exportable output slots.
//!
//! Per frame: one pre-allocated command buffer is re-recorded (a few commands), one
//! `vkQueueSubmit` signals the context timeline. No allocation, no import, no CPU wait in steady
//! state; the only CPU wait is the rare case where a slot's previous command buffer is still
//! pending when the ring wraps.

use crate::cpu::{FrameLayout, OutputMode};
pub use crate::cpu::{Framing, Region};
use crate::error::{InteropError, Result};
use crate::explicit_sync::SyncPoints;
use crate::format::ImportKind;
use crate::import::{ImportedFrame, Source};
use crate::vk::context::{ContextInner, VulkanContext};
use crate::vk::kernels::{kind_index, mode_index, Params, WG_X, WG_Y};
use crate::vk::memory::{create_buffer, OwnedBuffer, Placement};
use crate::vk::sync::TimelineSemaphore;
use ash::vk;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `ZEROCAST_QFOT=all|none|foreign|external` (diagnosis) overrides which queue-family
/// ownership transfers are recorded; `None`: the default policy.
fn qfot_override(which: &str) -> Option<bool> {
    std::env::var("ZEROCAST_QFOT")
        .ok()
        .map(|v| v == "all" || v == which)
}

/// Timestamps per slot: start, after the dispatch, end.
const QUERIES: u32 = 3;

/// How to build a [`GpuConverter`].
#[derive(Debug, Clone, Copy)]
pub struct ConverterConfig {
    pub mode: OutputMode,
    pub width: u32,
    pub height: u32,
    /// Output slots in the ring: frames the consumer may hold at once, plus one being written.
    pub slots: usize,
    /// Also copy each frame into host-visible memory (CPU-encoder fallback, tests).
    pub host_readback: bool,
    /// Record GPU timestamps around each conversion ([`GpuConverter::gpu_time`]).
    pub timestamps: bool,
}

impl ConverterConfig {
    pub fn new(mode: OutputMode, width: u32, height: u32) -> Self {
        ConverterConfig {
            mode,
            width,
            height,
            slots: 3,
            host_readback: false,
            timestamps: false,
        }
    }
}

/// A converted frame in slot `slot`, complete once the context timeline reaches `value`.
///
/// Hand it to the consumer (CUDA bridge, or [`GpuConverter::host_frame`]) and give the slot back
/// through [`FrameReleaser`]; until then the converter will not write that slot again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertedFrame {
    pub slot: usize,
    pub value: u64,
    pub layout: FrameLayout,
}

/// Memory of one output slot, as CUDA (or another Vulkan device) must import it.
#[derive(Debug)]
pub struct SlotExport {
    /// OPAQUE_FD of the slot's memory (a new fd; the importer takes it).
    pub fd: OwnedFd,
    /// `allocationSize` (CUDA's `size`).
    pub size: u64,
    pub memory_type: u32,
    /// Vulkan made it a dedicated allocation: CUDA must pass `CUDA_EXTERNAL_MEMORY_DEDICATED`.
    pub dedicated: bool,
}

struct SlotState {
    /// Value of the frame the consumer holds in this slot; 0 when free.
    held: AtomicU64,
    /// Release-semaphore value the next write must wait for on the GPU (0: none).
    reuse_wait: AtomicU64,
}

/// Gives slots back to the converter; `Clone + Send`, for the encoder thread.
#[derive(Clone)]
pub struct FrameReleaser(Arc<[SlotState]>);

impl FrameReleaser {
    /// The consumer is done with `frame` (its reads are complete, as seen from the CPU).
    pub fn release(&self, frame: &ConvertedFrame) {
        let s = &self.0[frame.slot];
        let _ = s
            .held
            .compare_exchange(frame.value, 0, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The consumer's reads are queued on a GPU stream that will signal the converter's release
    /// semaphore with `frame.value`; the next write of the slot waits for it on the GPU.
    pub(crate) fn release_after_signal(&self, frame: &ConvertedFrame) {
        let s = &self.0[frame.slot];
        s.reuse_wait.store(frame.value, Ordering::Release);
        let _ = s
            .held
            .compare_exchange(frame.value, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

struct Slot {
    out: OwnedBuffer,
    host: Option<OwnedBuffer>,
    set: vk::DescriptorSet,
    cmd: vk::CommandBuffer,
    /// Timeline value of the last submission that used `cmd`.
    last_value: u64,
}

/// Converts imported frames of one size into NV12 (or BGRx) in exportable memory.
pub struct GpuConverter {
    slots: Vec<Slot>,
    state: Arc<[SlotState]>,
    next: usize,
    layout: FrameLayout,
    cfg: ConverterConfig,
    cmd_pool: vk::CommandPool,
    set_pool: vk::DescriptorPool,
    query_pool: vk::QueryPool,
    /// Override of the per-import foreign acquire/release policy (diagnosis only).
    qfot_foreign: Option<bool>,
    /// Release the output to QUEUE_FAMILY_EXTERNAL for CUDA (measured free on NVIDIA).
    qfot_external: bool,
    /// Signalled by the consumer (CUDA) when it is done reading a slot.
    release: TimelineSemaphore,
    shared: Arc<ContextInner>,
}

impl GpuConverter {
    pub fn new(ctx: &VulkanContext, cfg: ConverterConfig) -> Result<Self> {
        let shared = ctx.shared.clone();
        let d = &shared.device;
        if cfg.width == 0 || cfg.height == 0 || cfg.slots == 0 {
            return Err(InteropError::InvalidDmabuf(format!(
                "converter {}x{} x{}",
                cfg.width, cfg.height, cfg.slots
            )));
        }
        let layout = FrameLayout::new(cfg.mode, cfg.width, cfg.height);
        let n = cfg.slots as u32;
        let release = TimelineSemaphore::new(
            &shared.instance.instance,
            shared.physical,
            d,
            shared.info.has_external_semaphore_fd,
            true,
        )?;
        let mut conv = GpuConverter {
            slots: Vec::with_capacity(cfg.slots),
            state: (0..cfg.slots)
                .map(|_| SlotState {
                    held: AtomicU64::new(0),
                    reuse_wait: AtomicU64::new(0),
                })
                .collect(),
            next: 0,
            layout,
            cfg,
            cmd_pool: vk::CommandPool::null(),
            set_pool: vk::DescriptorPool::null(),
            query_pool: vk::QueryPool::null(),
            qfot_foreign: qfot_override("foreign"),
            qfot_external: qfot_override("external").unwrap_or(true),
            release,
            shared: shared.clone(),
        };
        // From here on, Drop cleans up whatever exists.
        let pool_info = vk::CommandPoolCreateInfo::default()
            .queue_family_index(shared.queue_family)
            // Each slot's buffer is re-recorded per frame.
            .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER);
        // SAFETY: valid create info.
        conv.cmd_pool = unsafe { d.create_command_pool(&pool_info, None) }
            .map_err(InteropError::vk("vkCreateCommandPool"))?;
        let sizes = [vk::DescriptorPoolSize {
            ty: vk::DescriptorType::STORAGE_BUFFER,
            descriptor_count: n,
        }];
        let set_info = vk::DescriptorPoolCreateInfo::default()
            .max_sets(n)
            .pool_sizes(&sizes);
        // SAFETY: valid create info.
        conv.set_pool = unsafe { d.create_descriptor_pool(&set_info, None) }
            .map_err(InteropError::vk("vkCreateDescriptorPool"))?;
        if cfg.timestamps && shared.timestamps {
            let q = vk::QueryPoolCreateInfo::default()
                .query_type(vk::QueryType::TIMESTAMP)
                .query_count(QUERIES * n);
            // SAFETY: valid create info.
            conv.query_pool = unsafe { d.create_query_pool(&q, None) }
                .map_err(InteropError::vk("vkCreateQueryPool"))?;
        }
        let alloc = vk::CommandBufferAllocateInfo::default()
            .command_pool(conv.cmd_pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(n);
        // SAFETY: valid allocate info.
        let cmds = unsafe { d.allocate_command_buffers(&alloc) }
            .map_err(InteropError::vk("vkAllocateCommandBuffers"))?;
        let layouts = vec![shared.kernels.dst_layout; cfg.slots];
        let set_alloc = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(conv.set_pool)
            .set_layouts(&layouts);
        // SAFETY: the pool was sized for n sets.
        let sets = unsafe { d.allocate_descriptor_sets(&set_alloc) }
            .map_err(InteropError::vk("vkAllocateDescriptorSets"))?;
        for (cmd, set) in cmds.into_iter().zip(sets) {
            let out = create_buffer(
                &shared,
                layout.size,
                vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_SRC,
                Placement::Exportable,
            )?;
            let host = if cfg.host_readback {
                Some(create_buffer(
                    &shared,
                    layout.size,
                    vk::BufferUsageFlags::TRANSFER_DST,
                    Placement::Host,
                )?)
            } else {
                None
            };
            let info = [vk::DescriptorBufferInfo {
                buffer: out.buffer,
                offset: 0,
                range: vk::WHOLE_SIZE,
            }];
            let write = vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(0)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .buffer_info(&info);
            // SAFETY: fresh set, live buffer.
            unsafe { d.update_descriptor_sets(&[write], &[]) };
            conv.slots.push(Slot {
                out,
                host,
                set,
                cmd,
                last_value: 0,
            });
        }
        tracing::info!(
            ?layout,
            slots = cfg.slots,
            dedicated = conv.slots[0].out.dedicated,
            "converter ready"
        );
        Ok(conv)
    }

    pub fn layout(&self) -> &FrameLayout {
        &self.layout
    }

    pub fn config(&self) -> &ConverterConfig {
        &self.cfg
    }

    /// Handle for giving slots back (from any thread).
    pub fn releaser(&self) -> FrameReleaser {
        FrameReleaser(self.state.clone())
    }

    /// Fds of every slot's memory, for the CUDA side to import once.
    pub fn export_slots(&self) -> Result<Vec<SlotExport>> {
        self.slots
            .iter()
            .map(|s| {
                Ok(SlotExport {
                    fd: s.out.export_fd()?,
                    size: s.out.alloc_size,
                    memory_type: s.out.memory_type,
                    dedicated: s.out.dedicated,
                })
            })
            .collect()
    }

    /// The context timeline (signalled with [`ConvertedFrame::value`]) as an OPAQUE_FD, for
    /// CUDA to wait on; `None` where semaphores cannot be exported.
    pub fn frame_semaphore_fd(&self) -> Result<Option<OwnedFd>> {
        self.shared.timeline.export_fd(self.shared.sem_fd.as_ref())
    }

    /// The release timeline (the consumer signals [`ConvertedFrame::value`] when done).
    pub fn release_semaphore_fd(&self) -> Result<Option<OwnedFd>> {
        self.release.export_fd(self.shared.sem_fd.as_ref())
    }

    /// Records and submits the conversion of all of `src` into the next free slot (scaled to
    /// the output size if it differs).
    pub fn convert(&mut self, src: &ImportedFrame) -> Result<ConvertedFrame> {
        self.convert_region(src, Region::whole(src.width(), src.height()))
    }

    /// Converts the `region` of `src` (a window cast's crop region) over the whole output,
    /// scaled bilinear when the sizes differ.
    pub fn convert_region(
        &mut self,
        src: &ImportedFrame,
        region: Region,
    ) -> Result<ConvertedFrame> {
        let place = Framing::fill(region, self.layout.width, self.layout.height);
        self.convert_synced(src, place, None)
    }

    /// Converts `place.src` of `src` into `place.dst` of the output (bilinear where the sizes
    /// differ, black around it: a frame of another aspect letterboxed); under explicit sync the
    /// GPU waits for the compositor's acquire point before reading `src` and signals its
    /// release point when done.
    pub fn convert_synced(
        &mut self,
        src: &ImportedFrame,
        place: Framing,
        sync: Option<SyncPoints<'_>>,
    ) -> Result<ConvertedFrame> {
        let region = place.src;
        if !region.fits(src.width(), src.height()) {
            return Err(InteropError::SizeMismatch {
                width: src.width(),
                height: src.height(),
                expected_w: region.x + region.width,
                expected_h: region.y + region.height,
            });
        }
        if !place.dst.fits(self.layout.width, self.layout.height) {
            return Err(InteropError::SizeMismatch {
                width: self.layout.width,
                height: self.layout.height,
                expected_w: place.dst.x + place.dst.width,
                expected_h: place.dst.y + place.dst.height,
            });
        }
        let i = self.next;
        if self.state[i].held.load(Ordering::Acquire) != 0 {
            return Err(InteropError::RingFull(self.slots.len()));
        }
        let d = &self.shared.device;
        let last = self.slots[i].last_value;
        // The slot's command buffer must not be pending before it is reset. With a ring of
        // several slots this is already true; the wait is a safety net.
        if last > 0
            && self.shared.timeline.value(d)? < last
            && !self.shared.timeline.wait(d, last, Duration::from_secs(5))?
        {
            return Err(InteropError::DeviceLost);
        }
        let cmd = self.slots[i].cmd;
        self.record(i, src, &place)?;
        let reuse_wait = self.state[i].reuse_wait.swap(0, Ordering::AcqRel);
        let wait = (reuse_wait > 0).then_some((self.release.sem, reuse_wait));
        let value = self.shared.submit_frame_sync(
            cmd,
            wait,
            sync.map(|s| (s.acquire.0.raw(), s.acquire.1)),
            sync.map(|s| (s.release.0.raw(), s.release.1)),
        )?;
        self.slots[i].last_value = value;
        self.state[i].held.store(value, Ordering::Release);
        src.last_use.set(value);
        if let Source::Image { first_use, .. } = &src.source {
            first_use.set(false);
        }
        self.next = (i + 1) % self.slots.len();
        Ok(ConvertedFrame {
            slot: i,
            value,
            layout: self.layout,
        })
    }

    fn record(&self, i: usize, src: &ImportedFrame, place: &Framing) -> Result<()> {
        let d = &self.shared.device;
        let slot = &self.slots[i];
        let cmd = slot.cmd;
        let (ours, foreign) = if self.qfot_foreign.unwrap_or(src.foreign_acquire) {
            (self.shared.queue_family, self.shared.foreign_family())
        } else {
            (vk::QUEUE_FAMILY_IGNORED, vk::QUEUE_FAMILY_IGNORED)
        };
        let begin = vk::CommandBufferBeginInfo::default()
            .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
        // SAFETY: the command buffer is not pending (checked by the caller) and from a pool with
        // RESET_COMMAND_BUFFER; every handle recorded lives until the submission completes
        // (imports wait for `last_use` before destruction, slots live as long as self).
        unsafe {
            d.reset_command_buffer(cmd, vk::CommandBufferResetFlags::empty())
                .map_err(InteropError::vk("vkResetCommandBuffer"))?;
            d.begin_command_buffer(cmd, &begin)
                .map_err(InteropError::vk("vkBeginCommandBuffer"))?;
            if self.query_pool != vk::QueryPool::null() {
                d.cmd_reset_query_pool(cmd, self.query_pool, QUERIES * i as u32, QUERIES);
                d.cmd_write_timestamp(
                    cmd,
                    vk::PipelineStageFlags::TOP_OF_PIPE,
                    self.query_pool,
                    QUERIES * i as u32,
                );
            }
            let mut release_buf = [vk::BufferMemoryBarrier::default()];
            let mut release_img = [vk::ImageMemoryBarrier::default()];
            let (acquire_buf, acquire_img);
            let [src_xy, src_wh, dst_xy, dst_wh] = place.packed();
            let (step_x, step_y) = place.steps();
            let mut params = Params {
                width: self.layout.width,
                height: self.layout.height,
                dst_pitch: self.layout.pitch / 4,
                dst_uv_offset: (self.layout.uv_offset / 4) as u32,
                fmt: src.code as u32,
                src_xy,
                src_wh,
                dst_xy,
                dst_wh,
                step_x,
                step_y,
                ..Default::default()
            };
            match &src.source {
                Source::Buffer {
                    buffer,
                    offset_words,
                    stride_words,
                } => {
                    params.src_offset = *offset_words;
                    params.src_stride = *stride_words;
                    // Acquire from the compositor (VK_EXT_queue_family_foreign) before reading.
                    acquire_buf = [vk::BufferMemoryBarrier::default()
                        .src_access_mask(vk::AccessFlags::empty())
                        .dst_access_mask(vk::AccessFlags::SHADER_READ)
                        .src_queue_family_index(foreign)
                        .dst_queue_family_index(ours)
                        .buffer(*buffer)
                        .offset(0)
                        .size(vk::WHOLE_SIZE)];
                    release_buf = [vk::BufferMemoryBarrier::default()
                        .src_access_mask(vk::AccessFlags::SHADER_READ)
                        .dst_access_mask(vk::AccessFlags::empty())
                        .src_queue_family_index(ours)
                        .dst_queue_family_index(foreign)
                        .buffer(*buffer)
                        .offset(0)
                        .size(vk::WHOLE_SIZE)];
                    d.cmd_pipeline_barrier(
                        cmd,
                        vk::PipelineStageFlags::TOP_OF_PIPE,
                        vk::PipelineStageFlags::COMPUTE_SHADER,
                        vk::DependencyFlags::empty(),
                        &[],
                        &acquire_buf,
                        &[],
                    );
                }
                Source::Image {
                    image, first_use, ..
                } => {
                    let range = vk::ImageSubresourceRange {
                        aspect_mask: vk::ImageAspectFlags::COLOR,
                        base_mip_level: 0,
                        level_count: 1,
                        base_array_layer: 0,
                        layer_count: 1,
                    };
                    // First use: PREINITIALIZED (the creation layout, contents preserved) ->
                    // GENERAL; afterwards the image stays GENERAL, the layout dma-buf sharing
                    // assumes, and only ownership moves.
                    let old = if first_use.get() {
                        vk::ImageLayout::PREINITIALIZED
                    } else {
                        vk::ImageLayout::GENERAL
                    };
                    acquire_img = [vk::ImageMemoryBarrier::default()
                        .src_access_mask(vk::AccessFlags::empty())
                        .dst_access_mask(vk::AccessFlags::SHADER_READ)
                        .old_layout(old)
                        .new_layout(vk::ImageLayout::GENERAL)
                        .src_queue_family_index(foreign)
                        .dst_queue_family_index(ours)
                        .image(*image)
                        .subresource_range(range)];
                    release_img = [vk::ImageMemoryBarrier::default()
                        .src_access_mask(vk::AccessFlags::SHADER_READ)
                        .dst_access_mask(vk::AccessFlags::empty())
                        .old_layout(vk::ImageLayout::GENERAL)
                        .new_layout(vk::ImageLayout::GENERAL)
                        .src_queue_family_index(ours)
                        .dst_queue_family_index(foreign)
                        .image(*image)
                        .subresource_range(range)];
                    d.cmd_pipeline_barrier(
                        cmd,
                        vk::PipelineStageFlags::TOP_OF_PIPE,
                        vk::PipelineStageFlags::COMPUTE_SHADER,
                        vk::DependencyFlags::empty(),
                        &[],
                        &[],
                        &acquire_img,
                    );
                }
            }
            let k = &self.shared.kernels;
            let ki = kind_index(src.kind());
            d.cmd_bind_pipeline(
                cmd,
                vk::PipelineBindPoint::COMPUTE,
                // The plain pipeline (one read per pixel, no filter code) unless the picture is
                // scaled or framed.
                k.pipelines[ki]
                    [usize::from(!place.is_direct(self.layout.width, self.layout.height))]
                    [mode_index(self.layout.mode)],
            );
            d.cmd_bind_descriptor_sets(
                cmd,
                vk::PipelineBindPoint::COMPUTE,
                k.pipeline_layouts[ki],
                0,
                &[src.set, slot.set],
                &[],
            );
            d.cmd_push_constants(
                cmd,
                k.pipeline_layouts[ki],
                vk::ShaderStageFlags::COMPUTE,
                0,
                &params.bytes(),
            );
            let blocks_x = self.layout.width.div_ceil(4);
            let blocks_y = self.layout.height.div_ceil(2);
            d.cmd_dispatch(cmd, blocks_x.div_ceil(WG_X), blocks_y.div_ceil(WG_Y), 1);
            if self.query_pool != vk::QueryPool::null() {
                d.cmd_write_timestamp(
                    cmd,
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    self.query_pool,
                    QUERIES * i as u32 + 1,
                );
            }
            // Give the source back to the compositor.
            match src.kind() {
                ImportKind::Buffer => d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                    vk::DependencyFlags::empty(),
                    &[],
                    &release_buf,
                    &[],
                ),
                ImportKind::Image => d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &release_img,
                ),
            }
            if let Some(host) = &slot.host {
                let to_copy = [vk::BufferMemoryBarrier::default()
                    .src_access_mask(vk::AccessFlags::SHADER_WRITE)
                    .dst_access_mask(vk::AccessFlags::TRANSFER_READ)
                    .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                    .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                    .buffer(slot.out.buffer)
                    .offset(0)
                    .size(vk::WHOLE_SIZE)];
                d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &to_copy,
                    &[],
                );
                let region = [vk::BufferCopy {
                    src_offset: 0,
                    dst_offset: 0,
                    size: self.layout.size,
                }];
                d.cmd_copy_buffer(cmd, slot.out.buffer, host.buffer, &region);
                let to_host = [vk::BufferMemoryBarrier::default()
                    .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                    .dst_access_mask(vk::AccessFlags::HOST_READ)
                    .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                    .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                    .buffer(host.buffer)
                    .offset(0)
                    .size(vk::WHOLE_SIZE)];
                d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::PipelineStageFlags::HOST,
                    vk::DependencyFlags::empty(),
                    &[],
                    &to_host,
                    &[],
                );
            }
            // Make the writes available to the external consumer (CUDA) that waits on the
            // timeline: a release to QUEUE_FAMILY_EXTERNAL. The next write of this slot takes it
            // back without an acquire, which only discards contents we overwrite anyway.
            let to_external = [vk::BufferMemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::SHADER_WRITE | vk::AccessFlags::TRANSFER_READ)
                .dst_access_mask(vk::AccessFlags::empty())
                .src_queue_family_index(if self.qfot_external {
                    self.shared.queue_family
                } else {
                    vk::QUEUE_FAMILY_IGNORED
                })
                .dst_queue_family_index(if self.qfot_external {
                    vk::QUEUE_FAMILY_EXTERNAL
                } else {
                    vk::QUEUE_FAMILY_IGNORED
                })
                .buffer(slot.out.buffer)
                .offset(0)
                .size(vk::WHOLE_SIZE)];
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::COMPUTE_SHADER | vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                vk::DependencyFlags::empty(),
                &[],
                &to_external,
                &[],
            );
            if self.query_pool != vk::QueryPool::null() {
                d.cmd_write_timestamp(
                    cmd,
                    vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                    self.query_pool,
                    QUERIES * i as u32 + 2,
                );
            }
            d.end_command_buffer(cmd)
                .map_err(InteropError::vk("vkEndCommandBuffer"))?;
        }
        Ok(())
    }

    /// Blocks until `frame` is complete (CPU fallback when no GPU-side wait is possible).
    pub fn wait(&self, frame: &ConvertedFrame, timeout: Duration) -> Result<bool> {
        self.shared
            .timeline
            .wait(&self.shared.device, frame.value, timeout)
    }

    /// The frame's bytes in host memory (needs `host_readback`); waits for completion.
    pub fn host_frame(&self, frame: &ConvertedFrame) -> Result<&[u8]> {
        let host =
            self.slots[frame.slot]
                .host
                .as_ref()
                .ok_or_else(|| InteropError::MissingFeature {
                    device: self.shared.info.name.clone(),
                    what: "host_readback in ConverterConfig",
                })?;
        if !self.wait(frame, Duration::from_secs(5))? {
            return Err(InteropError::DeviceLost);
        }
        Ok(&host.host_bytes()?[..self.layout.size as usize])
    }

    /// GPU execution time of `frame`'s conversion (needs `timestamps` and a device with
    /// timestamp support); waits for completion.
    pub fn gpu_time(&self, frame: &ConvertedFrame) -> Result<Option<Duration>> {
        Ok(self.gpu_time_split(frame)?.map(|(_, total)| total))
    }

    /// (start → end of the dispatch, start → end of the submission incl. ownership barriers).
    pub fn gpu_time_split(&self, frame: &ConvertedFrame) -> Result<Option<(Duration, Duration)>> {
        if self.query_pool == vk::QueryPool::null() {
            return Ok(None);
        }
        self.wait(frame, Duration::from_secs(5))?;
        let mut ts = [0u64; QUERIES as usize];
        // SAFETY: both queries of the slot were written by the completed submission.
        unsafe {
            self.shared.device.get_query_pool_results(
                self.query_pool,
                QUERIES * frame.slot as u32,
                &mut ts,
                vk::QueryResultFlags::TYPE_64,
            )
        }
        .map_err(InteropError::vk("vkGetQueryPoolResults"))?;
        let period = self.shared.info.timestamp_period_ns as f64;
        let dur =
            |a: u64, b: u64| Duration::from_nanos((b.saturating_sub(a) as f64 * period) as u64);
        Ok(Some((dur(ts[0], ts[1]), dur(ts[0], ts[2]))))
    }
}

impl Drop for GpuConverter {
    fn drop(&mut self) {
        let d = &self.shared.device;
        let last = self.slots.iter().map(|s| s.last_value).max().unwrap_or(0);
        if last > 0 {
            let _ = self.shared.timeline.wait(d, last, Duration::from_secs(5));
        }
        // SAFETY: no submission of ours is pending (waited above); null handles are ignored.
        unsafe {
            d.destroy_query_pool(self.query_pool, None);
            d.destroy_command_pool(self.cmd_pool, None);
            d.destroy_descriptor_pool(self.set_pool, None);
            self.release.destroy(d);
        }
        self.slots.clear();
    }
}
