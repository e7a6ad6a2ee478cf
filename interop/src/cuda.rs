//! The CUDA side: import the converter's exported slots and timelines once, then hand out
//! device pointers and stream-side waits per frame.
//!
//! cudarc's safe wrapper cannot import dedicated allocations and has no semaphore API, so this
//! module uses `cudarc::driver::sys` directly, in small unsafe functions.

use crate::convert::{ConvertedFrame, FrameReleaser, GpuConverter};
use crate::cpu::FrameLayout;
use crate::error::{InteropError, Result};
use crate::vk::context::{uuid_string, VulkanContext};
use cudarc::driver::sys;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use sys::{CUcontext, CUdeviceptr, CUstream};

fn check(call: &'static str, r: sys::CUresult) -> Result<()> {
    if r == sys::CUresult::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(InteropError::Cuda { call, code: r })
    }
}

/// Loads libcuda and initialises the driver API. Never panics: cudarc's loader panics when the
/// library is missing, so presence is checked first.
pub fn cuda_init() -> Result<()> {
    // SAFETY: dlopen probe only.
    if !unsafe { sys::is_culib_present() } {
        return Err(InteropError::NoCudaLibrary);
    }
    // SAFETY: cuInit is safe to call repeatedly from any thread.
    check("cuInit", unsafe { sys::cuInit(0) })
}

/// One CUDA device as `probe` shows it.
#[derive(Debug, Clone)]
pub struct CudaDeviceInfo {
    pub ordinal: i32,
    pub name: String,
    pub uuid: [u8; 16],
}

/// Lists CUDA devices (after [`cuda_init`]).
pub fn cuda_devices() -> Result<Vec<CudaDeviceInfo>> {
    cuda_init()?;
    let mut n = 0;
    // SAFETY: out-pointer to a local.
    check("cuDeviceGetCount", unsafe { sys::cuDeviceGetCount(&mut n) })?;
    (0..n)
        .map(|i| {
            let mut dev = 0;
            // SAFETY: ordinal in range, out-pointers to locals.
            unsafe {
                check("cuDeviceGet", sys::cuDeviceGet(&mut dev, i))?;
                let mut name = [0 as std::ffi::c_char; 256];
                check(
                    "cuDeviceGetName",
                    sys::cuDeviceGetName(name.as_mut_ptr(), 256, dev),
                )?;
                let mut uuid: sys::CUuuid = std::mem::zeroed();
                check("cuDeviceGetUuid", sys::cuDeviceGetUuid(&mut uuid, dev))?;
                Ok(CudaDeviceInfo {
                    ordinal: i,
                    name: std::ffi::CStr::from_ptr(name.as_ptr())
                        .to_string_lossy()
                        .into_owned(),
                    uuid: uuid.bytes.map(|b| b as u8),
                })
            }
        })
        .collect()
}

/// The CUDA driver version (e.g. 13000), after [`cuda_init`].
pub fn cuda_driver_version() -> Result<i32> {
    let mut v = 0;
    // SAFETY: out-pointer to a local.
    check("cuDriverGetVersion", unsafe {
        sys::cuDriverGetVersion(&mut v)
    })?;
    Ok(v)
}

/// A CUDA stream of the bridge's context, checked once at construction so the per-frame
/// methods can be safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaStream(CUstream);

// SAFETY: a CUDA stream handle may be used from any thread.
unsafe impl Send for CudaStream {}

impl CudaStream {
    /// # Safety
    /// `stream` must be a live stream of the [`CudaBridge::context`] (or null for the legacy
    /// default stream) and outlive every use of this value.
    pub unsafe fn from_raw(stream: CUstream) -> Self {
        CudaStream(stream)
    }

    pub fn as_raw(self) -> CUstream {
        self.0
    }
}

/// One output slot as CUDA sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaFrame {
    /// Y plane (or the BGRx plane).
    pub y: CUdeviceptr,
    /// CbCr plane (NV12 only; 0 for BGRx).
    pub uv: CUdeviceptr,
    pub pitch: usize,
    pub width: u32,
    pub height: u32,
}

struct CudaSlot {
    ext: sys::CUexternalMemory,
    ptr: CUdeviceptr,
}

/// How a frame was made visible to the CUDA stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSync {
    /// The stream waits on the Vulkan timeline on the GPU; the CPU did not block.
    GpuWait,
    /// No exportable semaphore: the calling thread waited for the frame.
    CpuWait,
}

/// Page-locked host memory for async downloads (CPU-encoder fallback).
pub struct PinnedBuffer {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: owned page-locked memory, accessed through &/&mut borrows.
unsafe impl Send for PinnedBuffer {}

impl PinnedBuffer {
    pub fn new(len: usize) -> Result<Self> {
        cuda_init()?;
        let mut p = std::ptr::null_mut();
        // SAFETY: out-pointer to a local; PORTABLE so any context may use it.
        check("cuMemHostAlloc", unsafe {
            sys::cuMemHostAlloc(&mut p, len.max(1), sys::CU_MEMHOSTALLOC_PORTABLE)
        })?;
        Ok(PinnedBuffer {
            ptr: p as *mut u8,
            len,
        })
    }

    /// The bytes (only meaningful after the download's stream work completed).
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: len bytes allocated in new().
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, exclusive borrow.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated by cuMemHostAlloc; callers synchronise streams before dropping.
        unsafe { sys::cuMemFreeHost(self.ptr as *mut _) };
    }
}

/// Imports a [`GpuConverter`]'s slots into the CUDA device with the same UUID as the Vulkan
/// device. Create once per converter; use from the encoder thread (`Send`).
pub struct CudaBridge {
    slots: Vec<CudaSlot>,
    frame_sem: Option<sys::CUexternalSemaphore>,
    release_sem: Option<sys::CUexternalSemaphore>,
    last_release: AtomicU64,
    layout: FrameLayout,
    releaser: FrameReleaser,
    vk: VulkanContext,
    ctx: sys::CUcontext,
    dev: sys::CUdevice,
}

// SAFETY: CUDA driver handles may be used from any thread once the context is made current,
// which every method does; the atomics make `release` safe from several threads.
unsafe impl Send for CudaBridge {}

impl CudaBridge {
    pub fn new(vk: &VulkanContext, conv: &GpuConverter) -> Result<Self> {
        cuda_init()?;
        let want = vk.device_info().device_uuid;
        let devices = cuda_devices()?;
        let Some(d) = devices.iter().find(|d| d.uuid == want) else {
            return Err(InteropError::CudaDeviceMismatch {
                vk_uuid: uuid_string(&want),
                cuda: if devices.is_empty() {
                    "none".into()
                } else {
                    devices
                        .iter()
                        .map(|d| format!("{} {}", d.name, uuid_string(&d.uuid)))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        };
        let mut dev = 0;
        let mut ctx = std::ptr::null_mut();
        // SAFETY: valid ordinal; the primary context is retained here and released in Drop.
        unsafe {
            check("cuDeviceGet", sys::cuDeviceGet(&mut dev, d.ordinal))?;
            check(
                "cuDevicePrimaryCtxRetain",
                sys::cuDevicePrimaryCtxRetain(&mut ctx, dev),
            )?;
        }
        let mut bridge = CudaBridge {
            slots: Vec::new(),
            frame_sem: None,
            release_sem: None,
            last_release: AtomicU64::new(0),
            layout: *conv.layout(),
            releaser: conv.releaser(),
            vk: vk.clone(),
            ctx,
            dev,
        };
        bridge.make_current()?;
        for s in conv.export_slots()? {
            let ext = import_memory(s.fd, s.size, s.dedicated)?;
            // Push first so Drop frees it even if mapping fails.
            bridge.slots.push(CudaSlot { ext, ptr: 0 });
            let ptr = map_buffer(ext, bridge.layout.size)?;
            bridge.slots.last_mut().expect("just pushed").ptr = ptr;
        }
        if let Some(fd) = conv.frame_semaphore_fd()? {
            bridge.frame_sem = Some(import_timeline(fd)?);
        }
        if let Some(fd) = conv.release_semaphore_fd()? {
            bridge.release_sem = Some(import_timeline(fd)?);
        }
        tracing::info!(
            cuda_device = %d.name,
            slots = bridge.slots.len(),
            gpu_sync = bridge.frame_sem.is_some(),
            "CUDA bridge ready"
        );
        Ok(bridge)
    }

    fn make_current(&self) -> Result<()> {
        // SAFETY: the context is retained for our lifetime.
        check("cuCtxSetCurrent", unsafe { sys::cuCtxSetCurrent(self.ctx) })
    }

    /// Layout of every slot (the converter's output).
    pub fn layout(&self) -> &FrameLayout {
        &self.layout
    }

    /// The CUDA context (the device's primary context), e.g. for FFmpeg's AVCUDADeviceContext.
    pub fn context(&self) -> CUcontext {
        self.ctx
    }

    pub fn device(&self) -> sys::CUdevice {
        self.dev
    }

    /// Whether CUDA streams wait for frames on the GPU (else the CPU waits per frame).
    pub fn gpu_sync(&self) -> bool {
        self.frame_sem.is_some()
    }

    /// Device pointers of `frame`'s slot. Read them only after [`CudaBridge::wait`] on the
    /// reading stream.
    pub fn frame(&self, frame: &ConvertedFrame) -> CudaFrame {
        let base = self.slots[frame.slot].ptr;
        CudaFrame {
            y: base,
            uv: if self.layout.uv_offset > 0 {
                base + self.layout.uv_offset
            } else {
                0
            },
            pitch: self.layout.pitch as usize,
            width: self.layout.width,
            height: self.layout.height,
        }
    }

    /// Makes `stream` wait until the GPU has written `frame`: a semaphore wait queued on the
    /// stream, or — where the semaphore could not be shared — a CPU wait here.
    pub fn wait(&self, frame: &ConvertedFrame, stream: CudaStream) -> Result<FrameSync> {
        self.make_current()?;
        match self.frame_sem {
            Some(sem) => {
                // SAFETY: plain C struct, all-zero is valid.
                let mut p: sys::CUDA_EXTERNAL_SEMAPHORE_WAIT_PARAMS = unsafe { std::mem::zeroed() };
                p.params.fence.value = frame.value;
                // SAFETY: imported semaphore, params live across the call.
                check("cuWaitExternalSemaphoresAsync", unsafe {
                    sys::cuWaitExternalSemaphoresAsync(&sem, &p, 1, stream.0)
                })?;
                Ok(FrameSync::GpuWait)
            }
            None => {
                if !self.vk.wait_for(frame.value, Duration::from_secs(5))? {
                    return Err(InteropError::DeviceLost);
                }
                Ok(FrameSync::CpuWait)
            }
        }
    }

    /// Gives `frame`'s slot back once the work queued on `stream` so far (the consumer's
    /// reads) completes. Call in frame order. Without a shared release semaphore this
    /// synchronises the stream on the CPU.
    pub fn release(&self, frame: &ConvertedFrame, stream: CudaStream) -> Result<()> {
        self.make_current()?;
        let in_order = self.last_release.fetch_max(frame.value, Ordering::AcqRel) < frame.value;
        match (self.release_sem, in_order) {
            (Some(sem), true) => {
                // SAFETY: plain C struct, all-zero is valid.
                let mut p: sys::CUDA_EXTERNAL_SEMAPHORE_SIGNAL_PARAMS =
                    unsafe { std::mem::zeroed() };
                p.params.fence.value = frame.value;
                // SAFETY: imported semaphore; values only grow (checked above).
                check("cuSignalExternalSemaphoresAsync", unsafe {
                    sys::cuSignalExternalSemaphoresAsync(&sem, &p, 1, stream.0)
                })?;
                self.releaser.release_after_signal(frame);
            }
            _ => {
                // SAFETY: a stream of our context.
                check("cuStreamSynchronize", unsafe {
                    sys::cuStreamSynchronize(stream.0)
                })?;
                self.releaser.release(frame);
            }
        }
        Ok(())
    }

    /// Queues a copy of `frame` into pinned host memory on `stream` (after [`CudaBridge::wait`]):
    /// the CPU-encoder fallback. The bytes are valid once the stream has completed.
    pub fn download_async(
        &self,
        frame: &ConvertedFrame,
        dst: &mut PinnedBuffer,
        stream: CudaStream,
    ) -> Result<()> {
        self.make_current()?;
        let n = (self.layout.size as usize).min(dst.len);
        // SAFETY: dst holds n bytes and outlives the copy (caller syncs before reading or
        // dropping); the source is a mapped slot of `n` <= size bytes.
        check("cuMemcpyDtoHAsync", unsafe {
            sys::cuMemcpyDtoHAsync_v2(dst.ptr as *mut _, self.slots[frame.slot].ptr, n, stream.0)
        })
    }
}

impl Drop for CudaBridge {
    fn drop(&mut self) {
        let _ = self.make_current();
        // SAFETY: objects imported in new(); the caller has finished all stream work on them.
        unsafe {
            sys::cuCtxSynchronize();
            for s in &self.slots {
                if s.ptr != 0 {
                    sys::cuMemFree_v2(s.ptr);
                }
                sys::cuDestroyExternalMemory(s.ext);
            }
            for sem in [self.frame_sem, self.release_sem].into_iter().flatten() {
                sys::cuDestroyExternalSemaphore(sem);
            }
            sys::cuDevicePrimaryCtxRelease_v2(self.dev);
        }
    }
}

/// Imports one OPAQUE_FD allocation; CUDA owns the fd on success.
fn import_memory(fd: OwnedFd, size: u64, dedicated: bool) -> Result<sys::CUexternalMemory> {
    let raw = fd.into_raw_fd();
    // Built field by field: the handle-type enum has no zero value, so mem::zeroed is invalid.
    let desc = sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC {
        type_: sys::CUexternalMemoryHandleType::CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD,
        handle: sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC_st__bindgen_ty_1 { fd: raw },
        size,
        // Vulkan made a dedicated allocation: CUDA must be told, or the import fails.
        flags: if dedicated {
            sys::CUDA_EXTERNAL_MEMORY_DEDICATED
        } else {
            0
        },
        reserved: [0; 16],
    };
    let mut ext = std::ptr::null_mut();
    // SAFETY: desc lives across the call.
    let r = unsafe { sys::cuImportExternalMemory(&mut ext, &desc) };
    if r != sys::CUresult::CUDA_SUCCESS {
        // SAFETY: on failure CUDA did not take ownership of the fd.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
    }
    check("cuImportExternalMemory", r)?;
    Ok(ext)
}

/// Maps the whole frame once; the pointer stays valid until the bridge drops.
fn map_buffer(ext: sys::CUexternalMemory, size: u64) -> Result<CUdeviceptr> {
    // SAFETY: plain C struct, all-zero is valid.
    let mut desc: sys::CUDA_EXTERNAL_MEMORY_BUFFER_DESC = unsafe { std::mem::zeroed() };
    desc.offset = 0;
    desc.size = size;
    let mut ptr = 0;
    // SAFETY: ext is a live import of at least `size` bytes.
    check("cuExternalMemoryGetMappedBuffer", unsafe {
        sys::cuExternalMemoryGetMappedBuffer(&mut ptr, ext, &desc)
    })?;
    Ok(ptr)
}

fn import_timeline(fd: OwnedFd) -> Result<sys::CUexternalSemaphore> {
    let raw = fd.into_raw_fd();
    // Built field by field: the handle-type enum has no zero value.
    let desc = sys::CUDA_EXTERNAL_SEMAPHORE_HANDLE_DESC {
        type_: sys::CUexternalSemaphoreHandleType::CU_EXTERNAL_SEMAPHORE_HANDLE_TYPE_TIMELINE_SEMAPHORE_FD,
        handle: sys::CUDA_EXTERNAL_SEMAPHORE_HANDLE_DESC_st__bindgen_ty_1 { fd: raw },
        flags: 0,
        reserved: [0; 16],
    };
    let mut sem = std::ptr::null_mut();
    // SAFETY: desc lives across the call.
    let r = unsafe { sys::cuImportExternalSemaphore(&mut sem, &desc) };
    if r != sys::CUresult::CUDA_SUCCESS {
        // SAFETY: on failure CUDA did not take ownership of the fd.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
    }
    check("cuImportExternalSemaphore", r)?;
    Ok(sem)
}
