//! DMA-BUF import into Vulkan, cached per compositor buffer.
//!
//! A compositor cycles a handful of buffers; each is imported once (when PipeWire adds it) and
//! released when it goes away (`forget`), so the per-frame path is a hash lookup.

use crate::error::{InteropError, Result};
use crate::format::{Fourcc, ImportKind, Modifier, PixelCode};
use crate::modifiers::{check_image_modifier, IMPORT_BUFFER_USAGE, IMPORT_IMAGE_USAGE};
use crate::vk::context::{ContextInner, HandleType, VulkanContext};
use crate::vk::memory::{fd_size, import_fd, DedicatedTo};
use ash::vk;
use std::cell::Cell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

/// The caller's name for a compositor buffer (e.g. the pw_buffer's index or address).
pub type BufferId = u64;

/// One memory plane of a dma-buf. The fd is borrowed: the importer dups it.
#[derive(Debug, Clone, Copy)]
pub struct DmabufPlane<'a> {
    pub fd: BorrowedFd<'a>,
    pub offset: u32,
    pub stride: u32,
}

/// A compositor frame buffer as PipeWire describes it.
#[derive(Debug, Clone, Copy)]
pub struct DmabufDesc<'a> {
    pub width: u32,
    pub height: u32,
    pub fourcc: Fourcc,
    pub modifier: Modifier,
    pub planes: &'a [DmabufPlane<'a>],
    /// Size of the memory behind the fds, if known. `None`: asked from the fd (lseek), which
    /// works for dma-bufs; OPAQUE_FD stand-ins must pass the exporter's allocation size.
    pub memory_size: Option<u64>,
}

/// Cheap identity of a description, checked on every cached lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DescKey {
    width: u32,
    height: u32,
    fourcc: Fourcc,
    modifier: Modifier,
    layout: [(u32, u32); 4],
    planes: usize,
}

impl DescKey {
    fn of(d: &DmabufDesc<'_>) -> Self {
        let mut layout = [(0, 0); 4];
        for (l, p) in layout.iter_mut().zip(d.planes) {
            *l = (p.offset, p.stride);
        }
        DescKey {
            width: d.width,
            height: d.height,
            fourcc: d.fourcc,
            modifier: d.modifier,
            layout,
            planes: d.planes.len(),
        }
    }
}

pub(crate) enum Source {
    Image {
        image: vk::Image,
        view: vk::ImageView,
        first_use: Cell<bool>,
    },
    Buffer {
        buffer: vk::Buffer,
        offset_words: u32,
        stride_words: u32,
    },
}

/// An imported compositor buffer, ready for [`crate::GpuConverter::convert`].
pub struct ImportedFrame {
    shared: Arc<ContextInner>,
    key: DescKey,
    pub(crate) code: PixelCode,
    pub(crate) source: Source,
    memory: vk::DeviceMemory,
    pub(crate) set: vk::DescriptorSet,
    /// Timeline value of the last frame that read this buffer.
    pub(crate) last_use: Cell<u64>,
    /// Record the acquire from / release to VK_QUEUE_FAMILY_FOREIGN_EXT around each read.
    pub(crate) foreign_acquire: bool,
}

impl ImportedFrame {
    pub fn width(&self) -> u32 {
        self.key.width
    }
    pub fn height(&self) -> u32 {
        self.key.height
    }
    pub fn fourcc(&self) -> Fourcc {
        self.key.fourcc
    }
    pub fn modifier(&self) -> Modifier {
        self.key.modifier
    }
    pub fn kind(&self) -> ImportKind {
        match self.source {
            Source::Image { .. } => ImportKind::Image,
            Source::Buffer { .. } => ImportKind::Buffer,
        }
    }
    /// Timeline value after which the GPU no longer reads this buffer (0: never used): the
    /// compositor's buffer can be queued back once [`VulkanContext::completed_value`] reaches it.
    pub fn last_use(&self) -> u64 {
        self.last_use.get()
    }
}

impl Drop for ImportedFrame {
    fn drop(&mut self) {
        let d = &self.shared.device;
        // SAFETY: the importer waited for `last_use` before dropping; the set's pool was created
        // with FREE_DESCRIPTOR_SET and outlives frames (the importer drops frames first).
        unsafe {
            match &self.source {
                Source::Image { image, view, .. } => {
                    d.destroy_image_view(*view, None);
                    d.destroy_image(*image, None);
                }
                Source::Buffer { buffer, .. } => d.destroy_buffer(*buffer, None),
            }
            d.free_memory(self.memory, None);
        }
    }
}

/// Imports dma-bufs, caching one import per [`BufferId`]. Not `Sync`: use it from the thread
/// that owns the PipeWire stream.
pub struct DmabufImporter {
    // Frames drop before the pool they allocated sets from.
    cache: HashMap<BufferId, ImportedFrame>,
    pool: vk::DescriptorPool,
    shared: Arc<ContextInner>,
}

/// Imports alive at once: the compositor's buffer count (typically 2-4) plus renegotiation
/// overlap.
const MAX_IMPORTS: u32 = 32;

impl DmabufImporter {
    pub fn new(ctx: &VulkanContext) -> Result<Self> {
        let sizes = [
            vk::DescriptorPoolSize {
                ty: vk::DescriptorType::STORAGE_BUFFER,
                descriptor_count: MAX_IMPORTS,
            },
            vk::DescriptorPoolSize {
                ty: vk::DescriptorType::SAMPLED_IMAGE,
                descriptor_count: MAX_IMPORTS,
            },
        ];
        let info = vk::DescriptorPoolCreateInfo::default()
            // Sets are freed individually in forget().
            .flags(vk::DescriptorPoolCreateFlags::FREE_DESCRIPTOR_SET)
            .max_sets(MAX_IMPORTS)
            .pool_sizes(&sizes);
        // SAFETY: valid create info.
        let pool = unsafe { ctx.shared.device.create_descriptor_pool(&info, None) }
            .map_err(InteropError::vk("vkCreateDescriptorPool"))?;
        Ok(DmabufImporter {
            cache: HashMap::with_capacity(MAX_IMPORTS as usize),
            pool,
            shared: ctx.shared.clone(),
        })
    }

    /// The import of buffer `id`, importing `desc` on first sight (or when its layout changed).
    ///
    /// On error the caller should follow [`InteropError::fallback`]: typically drop this
    /// modifier and renegotiate.
    pub fn import(&mut self, id: BufferId, desc: &DmabufDesc<'_>) -> Result<&ImportedFrame> {
        let key = DescKey::of(desc);
        let stale = self.cache.get(&id).is_some_and(|f| f.key != key);
        if stale {
            self.forget(id)?;
        }
        if !self.cache.contains_key(&id) {
            let frame = self.import_new(key, desc)?;
            tracing::debug!(id, fourcc = ?desc.fourcc, modifier = ?desc.modifier, "imported dma-buf");
            self.cache.insert(id, frame);
        }
        Ok(&self.cache[&id])
    }

    /// A cached import.
    pub fn get(&self, id: BufferId) -> Option<&ImportedFrame> {
        self.cache.get(&id)
    }

    /// Releases the import of `id` (PipeWire removed the buffer). Waits for GPU work still
    /// reading it (at most the frame in flight).
    pub fn forget(&mut self, id: BufferId) -> Result<()> {
        let Some(frame) = self.cache.remove(&id) else {
            return Ok(());
        };
        self.retire(frame)
    }

    /// Releases every import (format renegotiated, stream stopped).
    pub fn clear(&mut self) -> Result<()> {
        let ids: Vec<_> = self.cache.keys().copied().collect();
        ids.into_iter().try_for_each(|id| self.forget(id))
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    fn retire(&mut self, frame: ImportedFrame) -> Result<()> {
        let v = frame.last_use.get();
        if v > 0
            && !self
                .shared
                .timeline
                .wait(&self.shared.device, v, Duration::from_secs(5))?
        {
            return Err(InteropError::DeviceLost);
        }
        // SAFETY: the set is no longer used by pending work (waited above).
        unsafe {
            self.shared
                .device
                .free_descriptor_sets(self.pool, &[frame.set])
        }
        .map_err(InteropError::vk("vkFreeDescriptorSets"))?;
        drop(frame);
        Ok(())
    }

    fn import_new(&self, key: DescKey, desc: &DmabufDesc<'_>) -> Result<ImportedFrame> {
        let code = desc
            .fourcc
            .pixel_code()
            .ok_or(InteropError::UnsupportedFormat(desc.fourcc))?;
        if desc.planes.is_empty() || desc.planes.len() > 4 {
            return Err(InteropError::InvalidDmabuf(format!(
                "{} planes",
                desc.planes.len()
            )));
        }
        if desc.width == 0 || desc.height == 0 {
            return Err(InteropError::InvalidDmabuf("zero size".into()));
        }
        same_memory(desc.planes)?;
        let mem_size = match desc.memory_size {
            Some(s) => s,
            None => fd_size(desc.planes[0].fd)?,
        };
        let (source, memory) = if self.shared.drm_modifier.is_some() {
            self.import_image(desc, mem_size)?
        } else if desc.modifier == Modifier::LINEAR {
            self.import_buffer(desc, mem_size)?
        } else {
            return Err(InteropError::UnsupportedModifier {
                fourcc: desc.fourcc,
                modifier: desc.modifier,
                why: "the device has no VK_EXT_image_drm_format_modifier: only LINEAR imports"
                    .into(),
            });
        };
        let mut frame = ImportedFrame {
            shared: self.shared.clone(),
            key,
            code,
            source,
            memory,
            set: vk::DescriptorSet::null(),
            last_use: Cell::new(0),
            foreign_acquire: wants_foreign_acquire(&self.shared, desc.modifier),
        };
        frame.set = self.descriptor_set(&frame)?;
        Ok(frame)
    }

    fn descriptor_set(&self, frame: &ImportedFrame) -> Result<vk::DescriptorSet> {
        let d = &self.shared.device;
        let k = &self.shared.kernels;
        let layout = [k.src_layouts[crate::vk::kernels::kind_index(frame.kind())]];
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(self.pool)
            .set_layouts(&layout);
        // SAFETY: valid allocate info; pool exhaustion is reported as an error.
        let set = unsafe { d.allocate_descriptor_sets(&info) }.map_err(|e| match e {
            vk::Result::ERROR_OUT_OF_POOL_MEMORY | vk::Result::ERROR_FRAGMENTED_POOL => {
                InteropError::OutOfMemory(format!("more than {MAX_IMPORTS} imported buffers"))
            }
            e => InteropError::vk("vkAllocateDescriptorSets")(e),
        })?[0];
        let buf_info;
        let img_info;
        let mut write = vk::WriteDescriptorSet::default()
            .dst_set(set)
            .dst_binding(0);
        match &frame.source {
            Source::Buffer { buffer, .. } => {
                buf_info = [vk::DescriptorBufferInfo {
                    buffer: *buffer,
                    offset: 0,
                    range: vk::WHOLE_SIZE,
                }];
                write = write
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(&buf_info);
            }
            Source::Image { view, .. } => {
                img_info = [vk::DescriptorImageInfo {
                    sampler: vk::Sampler::null(),
                    image_view: *view,
                    // The image stays in GENERAL: it moves between us and the compositor.
                    image_layout: vk::ImageLayout::GENERAL,
                }];
                write = write
                    .descriptor_type(vk::DescriptorType::SAMPLED_IMAGE)
                    .image_info(&img_info);
            }
        }
        // SAFETY: the set is fresh and not in use.
        unsafe { d.update_descriptor_sets(&[write], &[]) };
        Ok(set)
    }

    fn import_buffer(
        &self,
        desc: &DmabufDesc<'_>,
        mem_size: u64,
    ) -> Result<(Source, vk::DeviceMemory)> {
        let p = desc.planes[0];
        if !p.offset.is_multiple_of(4) || !p.stride.is_multiple_of(4) {
            return Err(InteropError::UnsupportedModifier {
                fourcc: desc.fourcc,
                modifier: desc.modifier,
                why: format!(
                    "offset {} / stride {} not 4-byte aligned",
                    p.offset, p.stride
                ),
            });
        }
        if p.stride < desc.width * 4 {
            return Err(InteropError::InvalidDmabuf(format!(
                "stride {} < width {} * 4",
                p.stride, desc.width
            )));
        }
        let needed =
            p.offset as u64 + p.stride as u64 * (desc.height as u64 - 1) + desc.width as u64 * 4;
        if needed > mem_size {
            return Err(InteropError::InvalidDmabuf(format!(
                "frame needs {needed} bytes, memory has {mem_size}"
            )));
        }
        if needed > self.shared.limits.max_storage_buffer_range as u64 {
            return Err(InteropError::UnsupportedModifier {
                fourcc: desc.fourcc,
                modifier: desc.modifier,
                why: format!("{needed} bytes exceed maxStorageBufferRange"),
            });
        }
        let d = &self.shared.device;
        let ht = self.shared.handle_type.vk();
        let mut ext = vk::ExternalMemoryBufferCreateInfo::default().handle_types(ht);
        let info = vk::BufferCreateInfo::default()
            .size(needed)
            .usage(IMPORT_BUFFER_USAGE)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            // VUID-VkMemoryAllocateInfo-pNext-00639-style rule for imports: the buffer declares
            // the handle type it will be bound with.
            .push_next(&mut ext);
        // SAFETY: valid create info.
        let buffer =
            unsafe { d.create_buffer(&info, None) }.map_err(InteropError::vk("vkCreateBuffer"))?;
        let r = (|| {
            // SAFETY: buffer of this device.
            let req = unsafe { d.get_buffer_memory_requirements(buffer) };
            let mem = import_fd(
                &self.shared,
                p.fd,
                ht,
                mem_size,
                req.memory_type_bits,
                None,
                DedicatedTo::None,
            )?;
            // SAFETY: `needed` fits in the imported memory (checked above).
            if let Err(e) = unsafe { d.bind_buffer_memory(buffer, mem.memory, 0) } {
                // SAFETY: unbound, unused memory.
                unsafe { d.free_memory(mem.memory, None) };
                return Err(InteropError::vk("vkBindBufferMemory")(e));
            }
            Ok(mem.memory)
        })();
        match r {
            Ok(memory) => Ok((
                Source::Buffer {
                    buffer,
                    offset_words: p.offset / 4,
                    stride_words: p.stride / 4,
                },
                memory,
            )),
            Err(e) => {
                // SAFETY: the buffer is unused.
                unsafe { d.destroy_buffer(buffer, None) };
                Err(self.import_error(desc, e))
            }
        }
    }

    fn import_image(
        &self,
        desc: &DmabufDesc<'_>,
        mem_size: u64,
    ) -> Result<(Source, vk::DeviceMemory)> {
        let format = desc
            .fourcc
            .vk_format()
            .ok_or(InteropError::UnsupportedFormat(desc.fourcc))?;
        let info = check_image_modifier(&self.shared, format, desc.modifier)?.ok_or_else(|| {
            InteropError::UnsupportedModifier {
                fourcc: desc.fourcc,
                modifier: desc.modifier,
                why: format!(
                    "not importable for sampling as {:?}",
                    self.shared.handle_type
                ),
            }
        })?;
        if desc.width > info.max_width || desc.height > info.max_height {
            return Err(InteropError::UnsupportedModifier {
                fourcc: desc.fourcc,
                modifier: desc.modifier,
                why: format!(
                    "{}x{} exceeds max {}x{}",
                    desc.width, desc.height, info.max_width, info.max_height
                ),
            });
        }
        let d = &self.shared.device;
        let ht = self.shared.handle_type.vk();
        let layouts: Vec<vk::SubresourceLayout> = desc
            .planes
            .iter()
            .map(|p| vk::SubresourceLayout {
                offset: p.offset as u64,
                // VUID-VkImageDrmFormatModifierExplicitCreateInfoEXT-size-02267: size must be 0.
                size: 0,
                row_pitch: p.stride as u64,
                // VUID-...-arrayPitch-02268 / depthPitch-02269: 0 for single-layer 2D images.
                array_pitch: 0,
                depth_pitch: 0,
            })
            .collect();
        let mut explicit = vk::ImageDrmFormatModifierExplicitCreateInfoEXT::default()
            .drm_format_modifier(desc.modifier.0)
            // VUID-...-drmFormatModifierPlaneCount-02265: one layout per memory plane of the
            // modifier; a mismatch fails creation and we report it.
            .plane_layouts(&layouts);
        let mut ext = vk::ExternalMemoryImageCreateInfo::default().handle_types(ht);
        let create = vk::ImageCreateInfo::default()
            .image_type(vk::ImageType::TYPE_2D)
            .format(format)
            .extent(vk::Extent3D {
                width: desc.width,
                height: desc.height,
                depth: 1,
            })
            .mip_levels(1)
            .array_layers(1)
            .samples(vk::SampleCountFlags::TYPE_1)
            // VUID-VkImageCreateInfo-tiling-02261: DRM_FORMAT_MODIFIER_EXT with an explicit
            // modifier in the chain.
            .tiling(vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT)
            .usage(IMPORT_IMAGE_USAGE)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            // VUID-VkImageCreateInfo-initialLayout-00993. PREINITIALIZED, not UNDEFINED: the first
            // transition must keep the compositor's pixels.
            .initial_layout(vk::ImageLayout::PREINITIALIZED)
            .push_next(&mut explicit)
            .push_next(&mut ext);
        // SAFETY: valid create info (format/modifier/usage checked with the handle type above).
        let image = unsafe { d.create_image(&create, None) }
            .map_err(|e| self.import_error(desc, InteropError::vk("vkCreateImage")(e)))?;
        let r = (|| {
            // SAFETY: image of this device.
            let req = unsafe { d.get_image_memory_requirements(image) };
            let size = if self.shared.handle_type == HandleType::OpaqueFd {
                mem_size
            } else {
                mem_size.max(req.size)
            };
            // Dedicated: required for DEDICATED_ONLY handle types, and what drivers expect for
            // images with modifiers.
            let mem = import_fd(
                &self.shared,
                desc.planes[0].fd,
                ht,
                size,
                req.memory_type_bits,
                None,
                DedicatedTo::Image(image),
            )?;
            // SAFETY: dedicated memory for this image, offset 0.
            if let Err(e) = unsafe { d.bind_image_memory(image, mem.memory, 0) } {
                // SAFETY: unbound memory.
                unsafe { d.free_memory(mem.memory, None) };
                return Err(InteropError::vk("vkBindImageMemory")(e));
            }
            let view_info = vk::ImageViewCreateInfo::default()
                .image(image)
                .view_type(vk::ImageViewType::TYPE_2D)
                .format(format)
                .subresource_range(vk::ImageSubresourceRange {
                    aspect_mask: vk::ImageAspectFlags::COLOR,
                    base_mip_level: 0,
                    level_count: 1,
                    base_array_layer: 0,
                    layer_count: 1,
                });
            // SAFETY: bound image, matching format.
            match unsafe { d.create_image_view(&view_info, None) } {
                Ok(view) => Ok((view, mem.memory)),
                Err(e) => {
                    // SAFETY: memory unused by any pending work.
                    unsafe { d.free_memory(mem.memory, None) };
                    Err(InteropError::vk("vkCreateImageView")(e))
                }
            }
        })();
        match r {
            Ok((view, memory)) => Ok((
                Source::Image {
                    image,
                    view,
                    first_use: Cell::new(true),
                },
                memory,
            )),
            Err(e) => {
                // SAFETY: unused image.
                unsafe { d.destroy_image(image, None) };
                Err(self.import_error(desc, e))
            }
        }
    }

    /// Vulkan failures during import mean "this modifier does not work here".
    fn import_error(&self, desc: &DmabufDesc<'_>, e: InteropError) -> InteropError {
        match e {
            InteropError::Vk { call, result } => InteropError::ImportFailed {
                fourcc: desc.fourcc,
                modifier: desc.modifier,
                why: format!("{call}: {result}"),
            },
            e => e,
        }
    }
}

impl Drop for DmabufImporter {
    fn drop(&mut self) {
        // Wait for everything we submitted that may read imports, then free them.
        let last = self
            .cache
            .values()
            .map(|f| f.last_use.get())
            .max()
            .unwrap_or(0);
        if last > 0 {
            let _ = self
                .shared
                .timeline
                .wait(&self.shared.device, last, Duration::from_secs(5));
        }
        self.cache.clear();
        // SAFETY: all sets of the pool are unused now.
        unsafe { self.shared.device.destroy_descriptor_pool(self.pool, None) };
    }
}

/// Whether reads of this import are bracketed by foreign-queue ownership transfers.
///
/// The transfer is what the spec asks for around memory another process (or device) writes,
/// and it matters where a modifier carries compression metadata the driver may resolve on
/// acquire (AMD DCC, Intel CCS). On NVIDIA it costs a pass over the whole image (measured on
/// H200: ~135 us at 1080p, ~530 us at 4K, against a 14/40 us convert), and NVIDIA's DRM
/// modifiers for these formats are uncompressed (LINEAR, or block-linear with compression 0):
/// the acquire has nothing to resolve there, and the byte-exact GPU checks pass without it. So
/// it is skipped for uncompressed modifiers on NVIDIA and kept everywhere else.
fn wants_foreign_acquire(shared: &ContextInner, modifier: Modifier) -> bool {
    const NVIDIA: u32 = 0x10de;
    let nvidia_uncompressed = modifier == Modifier::LINEAR
        || (modifier.vendor() == 0x03 && (modifier.0 >> 23) & 0x7 == 0);
    !(shared.info.vendor_id == NVIDIA && nvidia_uncompressed)
}

/// All planes must live in one memory object (we bind one allocation).
fn same_memory(planes: &[DmabufPlane<'_>]) -> Result<()> {
    let id = |fd: BorrowedFd<'_>| -> Result<(u64, u64)> {
        // SAFETY: fstat on an open fd into a zeroed stat buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok((st.st_dev, st.st_ino))
    };
    let first = id(planes[0].fd)?;
    for p in &planes[1..] {
        if p.fd.as_raw_fd() != planes[0].fd.as_raw_fd() && id(p.fd)? != first {
            return Err(InteropError::InvalidDmabuf(
                "planes in separate dma-bufs (disjoint) are not supported".into(),
            ));
        }
    }
    Ok(())
}
