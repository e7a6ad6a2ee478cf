//! Buffers and device memory: exportable (for CUDA), imported (from fds) and host-mapped.

use super::context::ContextInner;
use crate::error::{InteropError, Result};
use ash::vk;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;

/// A buffer with its own memory; freed on drop.
pub(crate) struct OwnedBuffer {
    shared: Arc<ContextInner>,
    pub buffer: vk::Buffer,
    pub memory: vk::DeviceMemory,
    /// `allocationSize` (what an importer of an exported fd must pass back).
    pub alloc_size: u64,
    pub memory_type: u32,
    pub dedicated: bool,
    /// Persistent host mapping, or null.
    pub mapped: *mut u8,
    pub coherent: bool,
}

// SAFETY: the handles are plain Vulkan handles usable from any thread; `mapped` points into
// memory owned by this object, and `&mut self`/`&self` borrows govern access to it.
unsafe impl Send for OwnedBuffer {}

impl Drop for OwnedBuffer {
    fn drop(&mut self) {
        // SAFETY: owners wait for GPU work that uses the buffer before dropping it.
        unsafe {
            self.shared.device.destroy_buffer(self.buffer, None);
            self.shared.device.free_memory(self.memory, None);
        }
    }
}

impl OwnedBuffer {
    /// The mapped bytes (host-visible buffers only). Invalidates non-coherent memory first.
    pub fn host_bytes(&self) -> Result<&[u8]> {
        assert!(!self.mapped.is_null(), "buffer is not host-mapped");
        if !self.coherent {
            let range = vk::MappedMemoryRange::default()
                .memory(self.memory)
                .size(vk::WHOLE_SIZE);
            // SAFETY: the memory is mapped (VUID-VkMappedMemoryRange-memory-00684).
            unsafe { self.shared.device.invalidate_mapped_memory_ranges(&[range]) }
                .map_err(InteropError::vk("vkInvalidateMappedMemoryRanges"))?;
        }
        // SAFETY: the mapping covers alloc_size bytes and lives as long as self.
        Ok(unsafe { std::slice::from_raw_parts(self.mapped, self.alloc_size as usize) })
    }

    /// Mutable mapped bytes (host-visible buffers only); flushes are the caller's business via
    /// [`OwnedBuffer::flush`] for non-coherent memory.
    // Only the `testing` stand-ins (never shipped) use this; the shipped build must stay warning-free.
    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "used by the testing feature's checks only")
    )]
    pub fn host_bytes_mut(&mut self) -> &mut [u8] {
        assert!(!self.mapped.is_null(), "buffer is not host-mapped");
        // SAFETY: as in host_bytes; &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.mapped, self.alloc_size as usize) }
    }

    // Only the `testing` stand-ins (never shipped) use this; the shipped build must stay warning-free.
    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "used by the testing feature's checks only")
    )]
    pub fn flush(&self) -> Result<()> {
        if !self.coherent {
            let range = vk::MappedMemoryRange::default()
                .memory(self.memory)
                .size(vk::WHOLE_SIZE);
            // SAFETY: the memory is mapped.
            unsafe { self.shared.device.flush_mapped_memory_ranges(&[range]) }
                .map_err(InteropError::vk("vkFlushMappedMemoryRanges"))?;
        }
        Ok(())
    }

    /// A new fd for the memory (OPAQUE_FD), e.g. for CUDA. Each call returns a new fd.
    pub fn export_fd(&self) -> Result<OwnedFd> {
        let info = vk::MemoryGetFdInfoKHR::default()
            .memory(self.memory)
            // VUID-VkMemoryGetFdInfoKHR-handleType-00671: allocated with this export type.
            .handle_type(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD);
        // SAFETY: memory was allocated exportable as OPAQUE_FD.
        let fd = unsafe { self.shared.mem_fd.get_memory_fd(&info) }
            .map_err(InteropError::vk("vkGetMemoryFdKHR"))?;
        // SAFETY: vkGetMemoryFdKHR returns a new fd that the caller owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// What memory a buffer wants.
#[derive(Clone, Copy)]
pub(crate) enum Placement {
    /// Device-local, exportable as OPAQUE_FD (CUDA imports it).
    Exportable,
    /// Host-visible and mapped, cached if possible (readback, staging).
    Host,
}

fn dedicated_requirements(
    shared: &ContextInner,
    buffer: vk::Buffer,
) -> (vk::MemoryRequirements, bool) {
    let mut ded = vk::MemoryDedicatedRequirements::default();
    let mut req2 = vk::MemoryRequirements2::default().push_next(&mut ded);
    let info = vk::BufferMemoryRequirementsInfo2::default().buffer(buffer);
    // SAFETY: buffer belongs to the device.
    unsafe {
        shared
            .device
            .get_buffer_memory_requirements2(&info, &mut req2)
    };
    let req = req2.memory_requirements;
    let wants = ded.prefers_dedicated_allocation != 0 || ded.requires_dedicated_allocation != 0;
    (req, wants)
}

/// Creates a buffer with fresh memory.
pub(crate) fn create_buffer(
    shared: &Arc<ContextInner>,
    size: u64,
    usage: vk::BufferUsageFlags,
    placement: Placement,
) -> Result<OwnedBuffer> {
    let dev = &shared.device;
    let export = matches!(placement, Placement::Exportable);
    let opaque = vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD;
    let mut dedicated_only = false;
    if export {
        let info = vk::PhysicalDeviceExternalBufferInfo::default()
            .usage(usage)
            .handle_type(opaque);
        let mut props = vk::ExternalBufferProperties::default();
        // SAFETY: plain query on our physical device.
        unsafe {
            shared
                .instance
                .instance
                .get_physical_device_external_buffer_properties(shared.physical, &info, &mut props)
        };
        let f = props.external_memory_properties.external_memory_features;
        if !f.contains(vk::ExternalMemoryFeatureFlags::EXPORTABLE) {
            return Err(InteropError::MissingFeature {
                device: shared.info.name.clone(),
                what: "exportable OPAQUE_FD buffers",
            });
        }
        dedicated_only = f.contains(vk::ExternalMemoryFeatureFlags::DEDICATED_ONLY);
    }
    let mut ext_info = vk::ExternalMemoryBufferCreateInfo::default().handle_types(opaque);
    let mut create = vk::BufferCreateInfo::default()
        .size(size)
        .usage(usage)
        .sharing_mode(vk::SharingMode::EXCLUSIVE);
    if export {
        // VUID-VkMemoryAllocateInfo-pNext-00639: export types must be declared at creation.
        create = create.push_next(&mut ext_info);
    }
    // SAFETY: valid create info.
    let buffer =
        unsafe { dev.create_buffer(&create, None) }.map_err(InteropError::vk("vkCreateBuffer"))?;
    let guard = BufferGuard(shared, buffer);
    let (req, wants_dedicated) = dedicated_requirements(shared, buffer);
    let dedicated = export && (dedicated_only || wants_dedicated);
    let (required, preferred) = match placement {
        Placement::Exportable => (
            vk::MemoryPropertyFlags::DEVICE_LOCAL,
            vk::MemoryPropertyFlags::empty(),
        ),
        Placement::Host => (
            vk::MemoryPropertyFlags::HOST_VISIBLE,
            vk::MemoryPropertyFlags::HOST_CACHED | vk::MemoryPropertyFlags::HOST_COHERENT,
        ),
    };
    let memory_type = shared
        .memory_type(req.memory_type_bits, required, preferred)
        .ok_or_else(|| {
            InteropError::OutOfMemory(format!(
                "no memory type {required:?} in bits {:#x}",
                req.memory_type_bits
            ))
        })?;
    let mut export_info = vk::ExportMemoryAllocateInfo::default().handle_types(opaque);
    let mut ded_info = vk::MemoryDedicatedAllocateInfo::default().buffer(buffer);
    let mut alloc = vk::MemoryAllocateInfo::default()
        .allocation_size(req.size)
        .memory_type_index(memory_type);
    if export {
        alloc = alloc.push_next(&mut export_info);
    }
    if dedicated {
        // VUID-VkMemoryAllocateInfo-pNext-00639 / DEDICATED_ONLY handle types need it.
        alloc = alloc.push_next(&mut ded_info);
    }
    // SAFETY: valid allocate info; the chain outlives the call.
    let memory = unsafe { dev.allocate_memory(&alloc, None) }.map_err(|e| match e {
        vk::Result::ERROR_OUT_OF_DEVICE_MEMORY | vk::Result::ERROR_OUT_OF_HOST_MEMORY => {
            InteropError::OutOfMemory(format!("{} bytes", req.size))
        }
        e => InteropError::vk("vkAllocateMemory")(e),
    })?;
    std::mem::forget(guard);
    let mut out = OwnedBuffer {
        shared: shared.clone(),
        buffer,
        memory,
        alloc_size: req.size,
        memory_type,
        dedicated,
        mapped: std::ptr::null_mut(),
        coherent: shared
            .memory_flags(memory_type)
            .contains(vk::MemoryPropertyFlags::HOST_COHERENT),
    };
    // SAFETY: fresh buffer and memory, sizes from its requirements.
    unsafe { dev.bind_buffer_memory(buffer, memory, 0) }
        .map_err(InteropError::vk("vkBindBufferMemory"))?;
    if matches!(placement, Placement::Host) {
        // SAFETY: host-visible memory, mapped once for its lifetime.
        out.mapped =
            unsafe { dev.map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty()) }
                .map_err(InteropError::vk("vkMapMemory"))? as *mut u8;
    }
    Ok(out)
}

/// Destroys a buffer if creation fails half-way.
struct BufferGuard<'a>(&'a Arc<ContextInner>, vk::Buffer);
impl Drop for BufferGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the buffer is unused and unbound.
        unsafe { self.0.device.destroy_buffer(self.1, None) };
    }
}

/// Size of the object behind an fd (dma-bufs and memfds report it through lseek).
pub(crate) fn fd_size(fd: BorrowedFd<'_>) -> Result<u64> {
    // SAFETY: lseek on a borrowed, open fd; restoring the offset is not needed for dma-bufs
    // (they have no file position that mmap or import uses).
    let end = unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_END) };
    if end < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: as above.
    unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_SET) };
    Ok(end as u64)
}

/// Memory imported from an fd.
pub(crate) struct ImportedMemory {
    pub memory: vk::DeviceMemory,
}

/// Where imported memory binds, for the dedicated-allocation chain.
#[derive(Clone, Copy)]
pub(crate) enum DedicatedTo {
    None,
    // A buffer only in the `testing` stand-ins (never shipped).
    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "used by the testing feature's checks only")
    )]
    Buffer(vk::Buffer),
    Image(vk::Image),
}

/// Imports `fd` (dup'ed here; Vulkan owns the dup on success, the caller keeps `fd`).
///
/// `memory_type_bits` are the object's requirements; for OPAQUE_FD `opaque_type` must be the
/// exporter's memory type (there is no vkGetMemoryFdPropertiesKHR for it).
pub(crate) fn import_fd(
    shared: &ContextInner,
    fd: BorrowedFd<'_>,
    handle_type: vk::ExternalMemoryHandleTypeFlags,
    size: u64,
    memory_type_bits: u32,
    opaque_type: Option<u32>,
    dedicated: DedicatedTo,
) -> Result<ImportedMemory> {
    let memory_type = if handle_type == vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD {
        opaque_type
            .filter(|t| memory_type_bits & (1 << t) != 0)
            .or_else(|| {
                shared.memory_type(
                    memory_type_bits,
                    vk::MemoryPropertyFlags::DEVICE_LOCAL,
                    vk::MemoryPropertyFlags::empty(),
                )
            })
    } else {
        let mut props = vk::MemoryFdPropertiesKHR::default();
        // SAFETY: fd is open; VUID-vkGetMemoryFdPropertiesKHR-handleType-00674: not OPAQUE_FD.
        unsafe {
            shared
                .mem_fd
                .get_memory_fd_properties(handle_type, fd.as_raw_fd(), &mut props)
        }
        .map_err(InteropError::vk("vkGetMemoryFdPropertiesKHR"))?;
        shared.memory_type(
            props.memory_type_bits & memory_type_bits,
            vk::MemoryPropertyFlags::empty(),
            vk::MemoryPropertyFlags::DEVICE_LOCAL,
        )
    }
    .ok_or_else(|| {
        InteropError::InvalidDmabuf(format!(
            "no memory type can hold this fd (object bits {memory_type_bits:#x})"
        ))
    })?;

    let dup = fd.try_clone_to_owned()?;
    let raw = dup.into_raw_fd();
    let mut import = vk::ImportMemoryFdInfoKHR::default()
        .handle_type(handle_type)
        .fd(raw);
    let mut ded = vk::MemoryDedicatedAllocateInfo::default();
    let mut alloc = vk::MemoryAllocateInfo::default()
        .allocation_size(size)
        .memory_type_index(memory_type);
    alloc = alloc.push_next(&mut import);
    match dedicated {
        DedicatedTo::None => {}
        DedicatedTo::Buffer(b) => {
            ded = ded.buffer(b);
            alloc = alloc.push_next(&mut ded);
        }
        DedicatedTo::Image(i) => {
            ded = ded.image(i);
            alloc = alloc.push_next(&mut ded);
        }
    }
    // SAFETY: valid chain; on success Vulkan owns `raw`.
    match unsafe { shared.device.allocate_memory(&alloc, None) } {
        Ok(memory) => Ok(ImportedMemory { memory }),
        Err(e) => {
            // SAFETY: the import failed, so ownership of `raw` stayed with us
            // (VUID-VkImportMemoryFdInfoKHR-fd: only a successful import transfers it).
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
            Err(InteropError::vk("vkAllocateMemory(import)")(e))
        }
    }
}
