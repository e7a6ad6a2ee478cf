//! FFmpeg CUDA hardware contexts that share *our* CUDA context and stream.
//!
//! The device context is an `AVCUDADeviceContext` filled with the interop bridge's `CUcontext`
//! and the encoder's stream before `av_hwdevice_ctx_init`, so FFmpeg (and NVENC through it,
//! which also takes its IO stream from here) orders its work after our copies on the GPU: no
//! CPU synchronisation between the conversion and the encoder. FFmpeg does not destroy a
//! context it did not create.
//!
//! The frames context is NV12 with a small preallocated pool; `av_hwframe_get_buffer` reuses the
//! pool's device buffers, so steady-state frames allocate no device memory and NVENC registers
//! each buffer once.

use std::ffi::c_void;
use std::ptr;

use ffmpeg_next::{ffi, format, frame};

use crate::RecorderError;

/// Buffers preallocated in the frame pool: NVENC may hold a few frames in flight (async depth)
/// while we fill the next.
pub const POOL_SIZE: i32 = 4;

fn err(what: &'static str, r: i32) -> RecorderError {
    super::EncodeError::ffmpeg(what, r).into()
}

/// An owned `AVBufferRef`, unreferenced on drop.
struct BufRef(*mut ffi::AVBufferRef);

impl Drop for BufRef {
    fn drop(&mut self) {
        // SAFETY: a reference we own (or null, which av_buffer_unref ignores).
        unsafe { ffi::av_buffer_unref(&mut self.0) };
    }
}

/// FFmpeg CUDA device + NV12 frames contexts.
pub struct CudaFrames {
    frames: BufRef,
    device: BufRef,
    pub width: u32,
    pub height: u32,
}

// SAFETY: the AVBufferRefs are refcounted atomically by FFmpeg; the encoder thread owns this.
unsafe impl Send for CudaFrames {}

impl CudaFrames {
    /// Wraps an existing CUDA context and stream. Both must outlive this value and every frame
    /// or encoder that took a reference to it.
    pub fn new(
        cuda_ctx: *mut c_void,
        stream: *mut c_void,
        width: u32,
        height: u32,
    ) -> Result<Self, RecorderError> {
        super::log::init();
        let device = device_with(cuda_ctx, stream)?;
        let frames = frames_ctx(&device, width, height)?;
        Ok(CudaFrames {
            frames,
            device,
            width,
            height,
        })
    }

    /// The frames context, for `AVCodecContext.hw_frames_ctx` (the caller takes a new ref).
    pub fn frames_ref(&self) -> *mut ffi::AVBufferRef {
        self.frames.0
    }

    /// The device context, for `AVCodecContext.hw_device_ctx`.
    pub fn device_ref(&self) -> *mut ffi::AVBufferRef {
        self.device.0
    }

    /// Replaces `dst` with a pool frame (device pointers in `data[0..2]`, pitch in
    /// `linesize`). The previous buffer goes back to the pool once no one else holds it.
    pub fn get(&self, dst: &mut frame::Video) -> Result<(), RecorderError> {
        // SAFETY: dst is a valid AVFrame we own exclusively; the frames ctx is initialised.
        let r = unsafe {
            ffi::av_frame_unref(dst.as_mut_ptr());
            ffi::av_hwframe_get_buffer(self.frames.0, dst.as_mut_ptr(), 0)
        };
        if r < 0 {
            return Err(err("av_hwframe_get_buffer", r));
        }
        Ok(())
    }

    /// Makes `dst` a CUDA frame of this context over existing device memory (an interop slot
    /// with FFmpeg's NV12 layout): the zero-copy alternative to [`CudaFrames::get`] + copy.
    /// The memory must stay unwritten until every reference to `dst` is gone (for NVENC: until
    /// its packet is out), which ties up a converter slot per frame in flight; benchmarked in
    /// nvenc-check, not used by [`super::GpuEncoder`].
    pub fn wrap(
        &self,
        dst: &mut frame::Video,
        y: u64,
        uv: u64,
        pitch: usize,
    ) -> Result<(), RecorderError> {
        unsafe extern "C" fn keep(_opaque: *mut c_void, _data: *mut u8) {}
        // SAFETY: dst is a valid AVFrame we own; the buffer does not own the device memory
        // (no-op free) and only carries the refcount; the frames ref is a new reference.
        unsafe {
            let f = dst.as_mut_ptr();
            ffi::av_frame_unref(f);
            let buf = ffi::av_buffer_create(y as *mut u8, 1, Some(keep), ptr::null_mut(), 0);
            let hw = ffi::av_buffer_ref(self.frames.0);
            if buf.is_null() || hw.is_null() {
                let (mut b, mut h) = (buf, hw);
                ffi::av_buffer_unref(&mut b);
                ffi::av_buffer_unref(&mut h);
                return Err(err("wrap", ffi::AVERROR(libc::ENOMEM)));
            }
            (*f).buf[0] = buf;
            (*f).hw_frames_ctx = hw;
            (*f).data[0] = y as *mut u8;
            (*f).data[1] = uv as *mut u8;
            (*f).linesize[0] = pitch as i32;
            (*f).linesize[1] = pitch as i32;
            (*f).format = ffi::AVPixelFormat::AV_PIX_FMT_CUDA as i32;
            (*f).width = self.width as i32;
            (*f).height = self.height as i32;
        }
        Ok(())
    }

    /// Copies a CUDA frame to host memory through FFmpeg's own path (tests compare what the
    /// pool holds with it). Synchronous.
    pub fn download(&self, src: &frame::Video) -> Result<frame::Video, RecorderError> {
        let mut dst = frame::Video::new(format::Pixel::NV12, self.width, self.height);
        // SAFETY: both frames are valid; dst is an allocated NV12 frame of the same size.
        let r = unsafe { ffi::av_hwframe_transfer_data(dst.as_mut_ptr(), src.as_ptr(), 0) };
        if r < 0 {
            return Err(err("av_hwframe_transfer_data", r));
        }
        Ok(dst)
    }
}

/// Device pointers and pitch of a CUDA frame (`data[0]`, `data[1]`, `linesize[0]`).
pub fn planes(f: &frame::Video) -> (u64, u64, usize) {
    // SAFETY: reading fields of a valid AVFrame.
    unsafe {
        let p = &*f.as_ptr();
        (p.data[0] as u64, p.data[1] as u64, p.linesize[0] as usize)
    }
}

fn device_with(cuda_ctx: *mut c_void, stream: *mut c_void) -> Result<BufRef, RecorderError> {
    // SAFETY: alloc returns an owned ref or null; hwctx of a CUDA device ctx is an
    // AVCUDADeviceContext (layout bound by ffmpeg-sys); init loads libcuda and keeps our
    // context (FFmpeg only frees contexts it created itself).
    unsafe {
        let dev = BufRef(ffi::av_hwdevice_ctx_alloc(
            ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
        ));
        if dev.0.is_null() {
            return Err(err("av_hwdevice_ctx_alloc", ffi::AVERROR(libc::ENOMEM)));
        }
        let devctx = (*dev.0).data as *mut ffi::AVHWDeviceContext;
        let hw = (*devctx).hwctx as *mut ffi::AVCUDADeviceContext;
        // ffmpeg-sys stubs CUcontext/CUstream with its own opaque types: same pointers.
        (*hw).cuda_ctx = cuda_ctx as ffi::CUcontext;
        (*hw).stream = stream as ffi::CUstream;
        let r = ffi::av_hwdevice_ctx_init(dev.0);
        if r < 0 {
            return Err(err("CUDA device context", r));
        }
        Ok(dev)
    }
}

/// A device context FFmpeg creates itself on CUDA device 0 (the NVENC probe, which has no
/// context of ours at hand).
pub(crate) fn own_device() -> Result<BufRef2, RecorderError> {
    super::log::init();
    let mut r = ptr::null_mut();
    // SAFETY: out-pointer to a local; returns an owned ref on success.
    let ret = unsafe {
        ffi::av_hwdevice_ctx_create(
            &mut r,
            ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
            ptr::null(),
            ptr::null_mut(),
            0,
        )
    };
    if ret < 0 {
        return Err(err("CUDA device", ret));
    }
    Ok(BufRef2(BufRef(r)))
}

/// An owned device context from [`own_device`].
pub(crate) struct BufRef2(BufRef);

impl BufRef2 {
    pub(crate) fn as_ptr(&self) -> *mut ffi::AVBufferRef {
        self.0 .0
    }
}

fn frames_ctx(device: &BufRef, width: u32, height: u32) -> Result<BufRef, RecorderError> {
    // SAFETY: alloc returns an owned ref or null; its data is an AVHWFramesContext that we
    // fill before init.
    unsafe {
        let fr = BufRef(ffi::av_hwframe_ctx_alloc(device.0));
        if fr.0.is_null() {
            return Err(err("av_hwframe_ctx_alloc", ffi::AVERROR(libc::ENOMEM)));
        }
        let fc = (*fr.0).data as *mut ffi::AVHWFramesContext;
        (*fc).format = ffi::AVPixelFormat::AV_PIX_FMT_CUDA;
        (*fc).sw_format = ffi::AVPixelFormat::AV_PIX_FMT_NV12;
        (*fc).width = width as i32;
        (*fc).height = height as i32;
        // Preallocated at init, so no cuMemAlloc happens while recording.
        (*fc).initial_pool_size = POOL_SIZE;
        let r = ffi::av_hwframe_ctx_init(fr.0);
        if r < 0 {
            return Err(err("CUDA frames context", r));
        }
        Ok(fr)
    }
}
