//! Test stand-ins for the other processes: a "compositor" that produces frames and a
//! "CUDA" that re-imports exported slots into a second Vulkan device.
//!
//! Used by the integration tests (lavapipe, CI) and by the `interop-check` binary on the GPU
//! machine. Not part of the recorder's API.

use crate::convert::SlotExport;
use crate::cpu::fill_pattern;
use crate::error::{InteropError, Result};
use crate::format::{Fourcc, Modifier};
use crate::vk::context::{ContextInner, VulkanContext};
use crate::vk::memory::{create_buffer, import_fd, DedicatedTo, OwnedBuffer, Placement};
use ash::vk;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

/// Records one command buffer with `f`, submits it and waits.
pub fn one_shot(
    ctx: &VulkanContext,
    f: impl FnOnce(&ash::Device, vk::CommandBuffer),
) -> Result<()> {
    let s = &ctx.shared;
    let d = &s.device;
    let info = vk::CommandPoolCreateInfo::default().queue_family_index(s.queue_family);
    // SAFETY: valid create info; the pool is destroyed below after the wait.
    let pool = unsafe { d.create_command_pool(&info, None) }
        .map_err(InteropError::vk("vkCreateCommandPool"))?;
    let r = (|| {
        let alloc = vk::CommandBufferAllocateInfo::default()
            .command_pool(pool)
            .command_buffer_count(1);
        // SAFETY: valid allocate info.
        let cmd = unsafe { d.allocate_command_buffers(&alloc) }
            .map_err(InteropError::vk("vkAllocateCommandBuffers"))?[0];
        let begin = vk::CommandBufferBeginInfo::default()
            .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
        // SAFETY: fresh command buffer.
        unsafe { d.begin_command_buffer(cmd, &begin) }
            .map_err(InteropError::vk("vkBeginCommandBuffer"))?;
        f(d, cmd);
        // SAFETY: recording.
        unsafe { d.end_command_buffer(cmd) }.map_err(InteropError::vk("vkEndCommandBuffer"))?;
        s.submit_and_wait(cmd)
    })();
    // SAFETY: the submission completed (or never happened).
    unsafe { d.destroy_command_pool(pool, None) };
    r
}

/// A memfd holding a LINEAR frame: what lavapipe accepts as a DMA_BUF.
pub fn memfd_frame(width: u32, height: u32, stride: u32, seed: u32) -> Result<OwnedFd> {
    let size = stride as usize * height as usize;
    let mut data = vec![0u8; size];
    fill_pattern(&mut data, stride as usize, width, height, seed);
    memfd_bytes(&data)
}

/// A memfd holding `data` (a LINEAR frame drawn by the test).
pub fn memfd_bytes(data: &[u8]) -> Result<OwnedFd> {
    // SAFETY: memfd_create with a static name; returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"zerocast-frame".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, data)?;
    Ok(file.into())
}

/// A "compositor" frame made by a producer Vulkan device and exported as OPAQUE_FD.
pub struct ProducerImage {
    shared: Arc<ContextInner>,
    image: vk::Image,
    memory: vk::DeviceMemory,
    pub fd: OwnedFd,
    pub modifier: Modifier,
    pub offset: u32,
    pub stride: u32,
    pub alloc_size: u64,
}

impl Drop for ProducerImage {
    fn drop(&mut self) {
        // SAFETY: the producer's one-shot work completed; importers hold their own references.
        unsafe {
            self.shared.device.destroy_image(self.image, None);
            self.shared.device.free_memory(self.memory, None);
        }
    }
}

impl ProducerImage {
    /// Creates a `modifier`-tiled image as a compositor would, fills it with
    /// [`crate::cpu::pattern_pixel`]`(x, y, seed)` (through a staging copy, so the driver tiles
    /// it) and exports its memory.
    pub fn new(
        ctx: &VulkanContext,
        fourcc: Fourcc,
        modifier: Modifier,
        width: u32,
        height: u32,
        seed: u32,
    ) -> Result<Self> {
        Self::with_pixels(ctx, fourcc, modifier, width, height, |bytes, stride| {
            fill_pattern(bytes, stride, width, height, seed)
        })
    }

    /// Like [`ProducerImage::new`], with the pixels written by `fill(bytes, stride)` (LINEAR,
    /// 4 bytes per pixel, in `fourcc`'s byte order).
    pub fn with_pixels(
        ctx: &VulkanContext,
        fourcc: Fourcc,
        modifier: Modifier,
        width: u32,
        height: u32,
        fill: impl FnOnce(&mut [u8], usize),
    ) -> Result<Self> {
        let s = &ctx.shared;
        let d = &s.device;
        let drm = s
            .drm_modifier
            .as_ref()
            .ok_or_else(|| InteropError::MissingFeature {
                device: s.info.name.clone(),
                what: "VK_EXT_image_drm_format_modifier",
            })?;
        let format = fourcc
            .vk_format()
            .ok_or(InteropError::UnsupportedFormat(fourcc))?;
        let opaque = vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD;
        let mods = [modifier.0];
        let mut list =
            vk::ImageDrmFormatModifierListCreateInfoEXT::default().drm_format_modifiers(&mods);
        let mut ext = vk::ExternalMemoryImageCreateInfo::default().handle_types(opaque);
        let create = vk::ImageCreateInfo::default()
            .image_type(vk::ImageType::TYPE_2D)
            .format(format)
            .extent(vk::Extent3D {
                width,
                height,
                depth: 1,
            })
            .mip_levels(1)
            .array_layers(1)
            .samples(vk::SampleCountFlags::TYPE_1)
            .tiling(vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT)
            .usage(vk::ImageUsageFlags::TRANSFER_DST | vk::ImageUsageFlags::SAMPLED)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            .initial_layout(vk::ImageLayout::UNDEFINED)
            .push_next(&mut list)
            .push_next(&mut ext);
        // SAFETY: valid create info.
        let image = unsafe { d.create_image(&create, None) }
            .map_err(InteropError::vk("vkCreateImage(producer)"))?;
        // SAFETY: image of this device.
        let req = unsafe { d.get_image_memory_requirements(image) };
        let mem_type = s
            .memory_type(
                req.memory_type_bits,
                vk::MemoryPropertyFlags::DEVICE_LOCAL,
                vk::MemoryPropertyFlags::empty(),
            )
            .ok_or_else(|| InteropError::OutOfMemory("no device-local type".into()))?;
        let mut export = vk::ExportMemoryAllocateInfo::default().handle_types(opaque);
        let mut ded = vk::MemoryDedicatedAllocateInfo::default().image(image);
        let alloc = vk::MemoryAllocateInfo::default()
            .allocation_size(req.size)
            .memory_type_index(mem_type)
            .push_next(&mut export)
            .push_next(&mut ded);
        // SAFETY: valid chain.
        let memory = unsafe { d.allocate_memory(&alloc, None) }
            .map_err(InteropError::vk("vkAllocateMemory(producer)"))?;
        // SAFETY: dedicated memory for this image.
        unsafe { d.bind_image_memory(image, memory, 0) }
            .map_err(InteropError::vk("vkBindImageMemory"))?;
        let mut mp = vk::ImageDrmFormatModifierPropertiesEXT::default();
        // SAFETY: image created with DRM_FORMAT_MODIFIER_EXT tiling.
        unsafe { drm.get_image_drm_format_modifier_properties(image, &mut mp) }
            .map_err(InteropError::vk("vkGetImageDrmFormatModifierPropertiesEXT"))?;
        let sub = vk::ImageSubresource {
            aspect_mask: vk::ImageAspectFlags::MEMORY_PLANE_0_EXT,
            mip_level: 0,
            array_layer: 0,
        };
        // SAFETY: VUID-vkGetImageSubresourceLayout-tiling-02271: MEMORY_PLANE_i aspect for this tiling.
        let layout = unsafe { d.get_image_subresource_layout(image, sub) };

        upload(s, image, width, height, Upload::Initial, fill)?;
        let info = vk::MemoryGetFdInfoKHR::default()
            .memory(memory)
            .handle_type(opaque);
        // SAFETY: memory allocated exportable as OPAQUE_FD.
        let fd = unsafe { s.mem_fd.get_memory_fd(&info) }
            .map_err(InteropError::vk("vkGetMemoryFdKHR"))?;
        Ok(ProducerImage {
            shared: s.clone(),
            image,
            memory,
            // SAFETY: a new fd we own.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            modifier: Modifier(mp.drm_format_modifier),
            offset: layout.offset as u32,
            stride: layout.row_pitch as u32,
            alloc_size: req.size,
        })
    }
}

impl ProducerImage {
    /// Redraws the top-left `width`×`height` pixels (LINEAR, 4 bytes per pixel, written by
    /// `fill(bytes, stride)`), as a compositor re-rendering part of a buffer it got back.
    /// Synchronous (test producer only).
    pub fn write_region(
        &self,
        width: u32,
        height: u32,
        fill: impl FnOnce(&mut [u8], usize),
    ) -> Result<()> {
        upload(
            &self.shared,
            self.image,
            width,
            height,
            Upload::Redraw,
            fill,
        )
    }
}

/// Which state a [`ProducerImage`] is in before an upload.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Upload {
    /// Just created: contents undefined, owned by nobody yet.
    Initial,
    /// Handed out before: GENERAL, released to the foreign queue family (the consumer's).
    Redraw,
}

/// Copies `width`×`height` pixels written by `fill` into the top-left of `image`, then leaves
/// it the way a compositor hands a finished buffer to a client: GENERAL, released to the
/// foreign queue family. Waits for the copy.
fn upload(
    s: &Arc<ContextInner>,
    image: vk::Image,
    width: u32,
    height: u32,
    state: Upload,
    fill: impl FnOnce(&mut [u8], usize),
) -> Result<()> {
    let stride = width * 4;
    let mut staging = create_buffer(
        s,
        stride as u64 * height as u64,
        vk::BufferUsageFlags::TRANSFER_SRC,
        Placement::Host,
    )?;
    fill(staging.host_bytes_mut(), stride as usize);
    staging.flush()?;
    let range = vk::ImageSubresourceRange {
        aspect_mask: vk::ImageAspectFlags::COLOR,
        base_mip_level: 0,
        level_count: 1,
        base_array_layer: 0,
        layer_count: 1,
    };
    let (foreign, qf) = (s.foreign_family(), s.queue_family);
    // A redraw acquires the image back from the consumer's side; a new image has no owner.
    let (old_layout, src_qf, dst_qf) = match state {
        Upload::Initial => (
            vk::ImageLayout::UNDEFINED,
            vk::QUEUE_FAMILY_IGNORED,
            vk::QUEUE_FAMILY_IGNORED,
        ),
        Upload::Redraw => (vk::ImageLayout::GENERAL, foreign, qf),
    };
    let ctx = VulkanContext {
        shared: Arc::clone(s),
    };
    one_shot(&ctx, |d, cmd| {
        let to_dst = [vk::ImageMemoryBarrier::default()
            .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE)
            .old_layout(old_layout)
            .new_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
            .src_queue_family_index(src_qf)
            .dst_queue_family_index(dst_qf)
            .image(image)
            .subresource_range(range)];
        let release = [vk::ImageMemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
            .old_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
            .new_layout(vk::ImageLayout::GENERAL)
            .src_queue_family_index(qf)
            .dst_queue_family_index(foreign)
            .image(image)
            .subresource_range(range)];
        let region = [vk::BufferImageCopy::default()
            .image_subresource(vk::ImageSubresourceLayers {
                aspect_mask: vk::ImageAspectFlags::COLOR,
                mip_level: 0,
                base_array_layer: 0,
                layer_count: 1,
            })
            .image_extent(vk::Extent3D {
                width,
                height,
                depth: 1,
            })];
        // SAFETY: recording into a fresh command buffer; all handles live until the wait.
        unsafe {
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::TOP_OF_PIPE,
                vk::PipelineStageFlags::TRANSFER,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &to_dst,
            );
            d.cmd_copy_buffer_to_image(
                cmd,
                staging.buffer,
                image,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                &region,
            );
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &release,
            );
        }
    })
}

/// Reads an exported slot back through a second device (the stand-in for CUDA in CI).
pub fn read_exported(ctx: &VulkanContext, export: &SlotExport, size: u64) -> Result<Vec<u8>> {
    let s = &ctx.shared;
    let d = &s.device;
    let opaque = vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD;
    let mut ext = vk::ExternalMemoryBufferCreateInfo::default().handle_types(opaque);
    let info = vk::BufferCreateInfo::default()
        .size(size)
        .usage(vk::BufferUsageFlags::TRANSFER_SRC)
        .sharing_mode(vk::SharingMode::EXCLUSIVE)
        .push_next(&mut ext);
    // SAFETY: valid create info.
    let buffer =
        unsafe { d.create_buffer(&info, None) }.map_err(InteropError::vk("vkCreateBuffer"))?;
    // SAFETY: buffer of this device.
    let req = unsafe { d.get_buffer_memory_requirements(buffer) };
    let ded = if export.dedicated {
        DedicatedTo::Buffer(buffer)
    } else {
        DedicatedTo::None
    };
    let fd = export.fd.try_clone()?;
    let r = (|| {
        let mem = import_fd(
            s,
            std::os::fd::AsFd::as_fd(&fd),
            opaque,
            export.size,
            req.memory_type_bits,
            Some(export.memory_type),
            ded,
        )?;
        // SAFETY: fresh buffer, imported memory of at least `size` bytes.
        unsafe { d.bind_buffer_memory(buffer, mem.memory, 0) }
            .map_err(InteropError::vk("vkBindBufferMemory"))?;
        let host: OwnedBuffer =
            create_buffer(s, size, vk::BufferUsageFlags::TRANSFER_DST, Placement::Host)?;
        let res = one_shot(ctx, |d, cmd| {
            let region = [vk::BufferCopy {
                src_offset: 0,
                dst_offset: 0,
                size,
            }];
            // SAFETY: both buffers live until the wait.
            unsafe { d.cmd_copy_buffer(cmd, buffer, host.buffer, &region) };
        });
        let out = res.and_then(|_| Ok(host.host_bytes()?[..size as usize].to_vec()));
        // SAFETY: the copy completed.
        unsafe { d.free_memory(mem.memory, None) };
        out
    })();
    // SAFETY: no pending work uses the buffer.
    unsafe { d.destroy_buffer(buffer, None) };
    r
}

/// A host-visible LINEAR frame (stands in for an mmapped dma-buf on the CPU path).
pub struct HostFrame {
    buf: OwnedBuffer,
    pub stride: u32,
}

impl HostFrame {
    pub fn new(ctx: &VulkanContext, width: u32, height: u32, seed: u32) -> Result<Self> {
        let stride = width * 4;
        let mut buf = create_buffer(
            &ctx.shared,
            stride as u64 * height as u64,
            vk::BufferUsageFlags::TRANSFER_SRC,
            Placement::Host,
        )?;
        fill_pattern(buf.host_bytes_mut(), stride as usize, width, height, seed);
        buf.flush()?;
        Ok(HostFrame { buf, stride })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> Result<&[u8]> {
        self.buf.host_bytes()
    }
}

/// A global allocator that counts allocations, so the GPU-machine benchmarks can show that the
/// steady state allocates nothing. Install with `#[global_allocator]` in a benchmark binary.
pub struct CountingAlloc;

static ALLOCATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl CountingAlloc {
    /// Allocations (and reallocations) so far in this process.
    pub fn count() -> u64 {
        ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed)
    }
}

// SAFETY: forwards every call to the system allocator, only adding a counter.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.realloc(p, l, n) }
    }
}

/// A "compositor" timeline for explicit-sync tests: a Vulkan timeline semaphore exported as
/// OPAQUE_FD (the stand-in for a DRM syncobj where there is no DRM device), signalled and read
/// from the CPU by the test producer.
pub struct ProducerTimeline {
    shared: Arc<ContextInner>,
    timeline: crate::vk::sync::TimelineSemaphore,
    pub fd: OwnedFd,
}

impl ProducerTimeline {
    pub fn new(ctx: &VulkanContext) -> Result<Self> {
        let s = &ctx.shared;
        let timeline = crate::vk::sync::TimelineSemaphore::new(
            &s.instance.instance,
            s.physical,
            &s.device,
            s.sem_fd.is_some(),
            true,
        )?;
        let fd = match timeline.export_fd(s.sem_fd.as_ref()) {
            Ok(Some(fd)) => fd,
            other => {
                // SAFETY: unused semaphore.
                unsafe { timeline.destroy(&s.device) };
                return Err(other.err().unwrap_or(InteropError::MissingFeature {
                    device: s.info.name.clone(),
                    what: "exportable timeline semaphores",
                }));
            }
        };
        Ok(ProducerTimeline {
            shared: Arc::clone(s),
            timeline,
            fd,
        })
    }

    pub fn value(&self) -> Result<u64> {
        self.timeline.value(&self.shared.device)
    }

    pub fn signal(&self, value: u64) -> Result<()> {
        let info = vk::SemaphoreSignalInfo::default()
            .semaphore(self.timeline.sem)
            .value(value);
        // SAFETY: the caller signals increasing values.
        unsafe { self.shared.device.signal_semaphore(&info) }
            .map_err(InteropError::vk("vkSignalSemaphore"))
    }

    /// Waits until the timeline reaches `value`; `Ok(false)` on timeout.
    pub fn wait(&self, value: u64, timeout: std::time::Duration) -> Result<bool> {
        self.timeline.wait(&self.shared.device, value, timeout)
    }
}

impl Drop for ProducerTimeline {
    fn drop(&mut self) {
        // SAFETY: only the CPU used it on this device; importers hold their own references.
        unsafe { self.timeline.destroy(&self.shared.device) };
    }
}
