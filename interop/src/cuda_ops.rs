//! Stream-ordered CUDA pieces the encoder side needs beyond [`crate::CudaBridge`]: an owned
//! stream, events (completion + GPU timing), and pitched NV12 copies out of a bridge slot.
//!
//! Everything here is created once per encoder; the per-frame calls only queue work on a stream
//! (no allocation, no context synchronisation).

use crate::cuda::{cuda_init, CudaBridge, CudaFrame, CudaStream, PinnedBuffer};
use crate::error::{InteropError, Result};
use cudarc::driver::sys;
use std::time::Duration;

fn check(call: &'static str, r: sys::CUresult) -> Result<()> {
    if r == sys::CUresult::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(InteropError::Cuda { call, code: r })
    }
}

/// Makes the bridge's context current on this thread. Set, not pushed: it stays current, so
/// there is no push/pop per frame.
pub fn make_current(bridge: &CudaBridge) -> Result<()> {
    cuda_init()?;
    // SAFETY: the bridge keeps its (primary) context retained while it lives.
    check("cuCtxSetCurrent", unsafe {
        sys::cuCtxSetCurrent(bridge.context())
    })
}

/// A non-blocking stream of one context, destroyed on drop.
pub struct OwnedStream {
    stream: sys::CUstream,
    ctx: sys::CUcontext,
}

// SAFETY: CUDA stream handles may be used from any thread of the process.
unsafe impl Send for OwnedStream {}

impl OwnedStream {
    /// Creates the stream in the bridge's context. Drop it before the bridge (which holds the
    /// context's last retain in the recorder).
    pub fn new(bridge: &CudaBridge) -> Result<Self> {
        make_current(bridge)?;
        let ctx = bridge.context();
        let mut stream = std::ptr::null_mut();
        // SAFETY: out-pointer to a local; the context is current.
        check("cuStreamCreate", unsafe {
            sys::cuStreamCreate(
                &mut stream,
                sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32,
            )
        })?;
        Ok(OwnedStream { stream, ctx })
    }

    pub fn handle(&self) -> CudaStream {
        // SAFETY: a live stream of `ctx`, valid as long as `self`.
        unsafe { CudaStream::from_raw(self.stream) }
    }

    /// Blocks until the work queued so far has finished (teardown, tests).
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: our live stream.
        check("cuStreamSynchronize", unsafe {
            sys::cuStreamSynchronize(self.stream)
        })
    }
}

impl Drop for OwnedStream {
    fn drop(&mut self) {
        // SAFETY: our stream; finishing its work first so nothing queued outlives it.
        unsafe {
            sys::cuCtxSetCurrent(self.ctx);
            sys::cuStreamSynchronize(self.stream);
            sys::cuStreamDestroy_v2(self.stream);
        }
    }
}

/// A CUDA event, created once and recorded per frame.
pub struct CudaEvent(sys::CUevent);

// SAFETY: event handles may be used from any thread of the process.
unsafe impl Send for CudaEvent {}

impl CudaEvent {
    /// `timing`: record GPU timestamps (slightly more expensive; benchmarks only).
    /// The owning context must be current.
    pub fn new(timing: bool) -> Result<Self> {
        let flags = if timing {
            sys::CUevent_flags::CU_EVENT_DEFAULT as u32
        } else {
            sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32
        };
        let mut ev = std::ptr::null_mut();
        // SAFETY: out-pointer to a local.
        check("cuEventCreate", unsafe {
            sys::cuEventCreate(&mut ev, flags)
        })?;
        Ok(CudaEvent(ev))
    }

    pub fn record(&self, stream: CudaStream) -> Result<()> {
        // SAFETY: live event and stream of the same context.
        check("cuEventRecord", unsafe {
            sys::cuEventRecord(self.0, stream.as_raw())
        })
    }

    /// Waits on the CPU for the work before the last `record` (not the whole context).
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: live event.
        check("cuEventSynchronize", unsafe {
            sys::cuEventSynchronize(self.0)
        })
    }

    /// GPU time from `start` to `self` (both recorded with timing, `self` completed).
    pub fn elapsed_since(&self, start: &CudaEvent) -> Result<Duration> {
        let mut ms = 0f32;
        // SAFETY: live events, out-pointer to a local.
        check("cuEventElapsedTime", unsafe {
            sys::cuEventElapsedTime_v2(&mut ms, start.0, self.0)
        })?;
        Ok(Duration::from_secs_f64(f64::from(ms) / 1e3))
    }
}

impl Drop for CudaEvent {
    fn drop(&mut self) {
        // SAFETY: our event; CUDA defers destruction until pending records complete.
        unsafe { sys::cuEventDestroy_v2(self.0) };
    }
}

/// Destination of an NV12 copy on the device: two planes sharing one pitch, as FFmpeg's CUDA
/// frames and NVENC want them.
#[derive(Debug, Clone, Copy)]
pub struct DeviceNv12 {
    pub y: sys::CUdeviceptr,
    pub uv: sys::CUdeviceptr,
    pub pitch: usize,
}

/// Queues the two pitched copies (Y, then CbCr) of an NV12 slot into `dst` on `stream`.
/// The source must have been made visible to `stream` with `CudaBridge::wait`.
pub fn copy_nv12_async(src: &CudaFrame, dst: DeviceNv12, stream: CudaStream) -> Result<()> {
    let (w, h) = (src.width as usize, src.height as usize);
    for (s, d, rows) in [(src.y, dst.y, h), (src.uv, dst.uv, h.div_ceil(2))] {
        // Built field by field: the memory-type enum has no zero value, so mem::zeroed is
        // invalid.
        let c = sys::CUDA_MEMCPY2D {
            srcXInBytes: 0,
            srcY: 0,
            srcMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
            srcHost: std::ptr::null(),
            srcDevice: s,
            srcArray: std::ptr::null_mut(),
            srcPitch: src.pitch,
            dstXInBytes: 0,
            dstY: 0,
            dstMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
            dstHost: std::ptr::null_mut(),
            dstDevice: d,
            dstArray: std::ptr::null_mut(),
            dstPitch: dst.pitch,
            // Whole 4:2:0 rows: width rounded up to even bytes in both planes.
            WidthInBytes: w.next_multiple_of(2),
            Height: rows,
        };
        // SAFETY: both ranges are device allocations of at least pitch × rows bytes (a bridge
        // slot and a frame of the same size); the struct lives across the call.
        check("cuMemcpy2DAsync", unsafe {
            sys::cuMemcpy2DAsync_v2(&c, stream.as_raw())
        })?;
    }
    Ok(())
}

/// Queues one flat copy of a whole NV12 slot (both planes, same pitch and offsets) into pinned
/// host memory: the software-encoder fallback's only per-frame transfer.
pub fn download_nv12_async(
    src: &CudaFrame,
    size: usize,
    dst: &mut PinnedBuffer,
    stream: CudaStream,
) -> Result<()> {
    let n = size.min(dst.as_slice().len());
    // SAFETY: `dst` holds n bytes and the caller keeps it alive until the stream has passed
    // this copy; the source slot holds `size` >= n bytes.
    check("cuMemcpyDtoHAsync", unsafe {
        sys::cuMemcpyDtoHAsync_v2(
            dst.as_mut_slice().as_mut_ptr() as *mut _,
            src.y,
            n,
            stream.as_raw(),
        )
    })
}
