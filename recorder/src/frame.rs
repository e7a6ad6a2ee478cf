//! The unit handed from the PipeWire thread to the encoder thread.
//!
//! CPU frames live in a fixed pool: the PipeWire thread takes a free buffer, converts the mapped
//! SHM frame into it (I420, in an FFmpeg frame the encoder takes as it is) and sends it on; the
//! encoder gives it back after encoding. When no buffer is free the encoder is behind and the
//! frame is dropped (and counted) — the pool *is* the bounded queue, and steady state allocates
//! nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ffmpeg_next::ffi;
use ffmpeg_next::frame;

/// Packed pixel layouts the SHM path accepts (SPA names; byte order in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// B, G, R, x (DRM XR24, SPA BGRx) — what most compositors send.
    Bgrx,
    Bgra,
    Rgbx,
    Rgba,
    Xrgb,
    Xbgr,
    /// Planar Y then interleaved UV, 4:2:0 (output of the GPU convert path).
    Nv12,
    /// Planar Y, U, V, 4:2:0, even size: Y rows at `stride`, then U and V rows at `stride / 2`.
    /// What the SHM path converts into on the PipeWire thread (BT.709 limited), so the pool
    /// holds 1.5 bytes per pixel instead of 4 and the encoder sends it without a copy. In a
    /// [`CpuFrame`] the bytes live in [`CpuFrame::yuv`], not in `data`.
    I420,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Nv12 | PixelFormat::I420 => 1,
            _ => 4,
        }
    }
}

/// One video frame in host memory.
#[derive(Debug)]
pub struct CpuFrame {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// Bytes per row of `data` (for NV12: of the Y plane; UV rows have the same stride and
    /// follow the Y plane at `stride * height`).
    pub stride: usize,
    /// Presentation time relative to the start of the recording (pauses already removed).
    pub pts: Duration,
    /// Pixel bytes of every format but I420. Capacity is kept across uses; never shrunk.
    pub data: Vec<u8>,
    /// The pixels of an I420 frame: an FFmpeg frame the encoder sends as it is. Kept across
    /// uses like `data`.
    pub yuv: I420Buffer,
}

impl CpuFrame {
    pub fn empty() -> Self {
        CpuFrame {
            width: 0,
            height: 0,
            format: PixelFormat::Bgrx,
            stride: 0,
            pts: Duration::ZERO,
            data: Vec::new(),
            yuv: I420Buffer::default(),
        }
    }

    /// The pixel bytes, wherever this format keeps them.
    pub fn bytes(&self) -> &[u8] {
        match self.format {
            PixelFormat::I420 => self.yuv.bytes(),
            _ => &self.data,
        }
    }
}

/// Bytes FFmpeg may read past the end of a buffer with SIMD loads
/// (`AV_INPUT_BUFFER_PADDING_SIZE`).
const PADDING: usize = 64;

/// A YUV420P `AVFrame` whose three planes lie back to back in one refcounted FFmpeg buffer: Y
/// rows of `width` bytes, then U and V rows of `width / 2` — the packed I420 layout of
/// [`PixelFormat::I420`], so the same bytes are both a slice for the converters and a frame for
/// `avcodec_send_frame`. The PipeWire thread converts into it, the encoder sends it without a
/// copy, and the pool keeps it: after the first frame nothing is allocated, unless an encoder
/// kept a reference to the buffer (then the next [`I420Buffer::writable`] makes a new one
/// rather than write under it).
#[derive(Default)]
pub struct I420Buffer {
    frame: Option<frame::Video>,
}

impl std::fmt::Debug for I420Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.frame {
            Some(v) => write!(f, "I420Buffer({}x{})", v.width(), v.height()),
            None => f.write_str("I420Buffer(empty)"),
        }
    }
}

impl I420Buffer {
    /// Packed size of a `w`×`h` frame (both even).
    fn len(w: u32, h: u32) -> usize {
        let (w, h) = (w as usize, h as usize);
        w * h + 2 * (w / 2) * (h / 2)
    }

    /// The buffer as a `w`×`h` frame (both even, non-zero) that no one else references, its
    /// bytes to fill. Allocates only on the first use, a size change, or when the encoder still
    /// holds the previous buffer.
    pub fn writable(&mut self, w: u32, h: u32) -> Result<&mut [u8], AllocError> {
        debug_assert!(w.is_multiple_of(2) && h.is_multiple_of(2) && w > 0 && h > 0);
        let reuse = self.frame.as_ref().is_some_and(|f| {
            // SAFETY: reading a valid AVFrame's fields and its buffer's refcount.
            let shared = unsafe { ffi::av_buffer_is_writable((*f.as_ptr()).buf[0]) == 0 };
            (f.width(), f.height()) == (w, h) && !shared
        });
        if !reuse {
            self.frame = Some(alloc_packed_i420(w, h)?);
        }
        let f = self.frame.as_mut().expect("allocated above");
        let len = Self::len(w, h);
        // SAFETY: data[0] points at the start of our buffer of at least `len` bytes
        // (alloc_packed_i420), which no one else references (checked above) and which `self`
        // borrows mutably for the slice's lifetime.
        Ok(unsafe { std::slice::from_raw_parts_mut((*f.as_mut_ptr()).data[0], len) })
    }

    /// The packed bytes (empty before the first [`I420Buffer::writable`]).
    pub fn bytes(&self) -> &[u8] {
        let Some(f) = &self.frame else { return &[] };
        let len = Self::len(f.width(), f.height());
        // SAFETY: as in `writable`: data[0] starts a buffer of at least `len` bytes that lives
        // as long as the frame, borrowed here.
        unsafe { std::slice::from_raw_parts((*f.as_ptr()).data[0], len) }
    }

    /// The frame for `avcodec_send_frame` (pts and picture type are the caller's to set).
    pub fn frame_mut(&mut self) -> Option<&mut frame::Video> {
        self.frame.as_mut()
    }
}

/// The buffer for a frame could not be allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot allocate a {width}x{height} I420 frame")]
pub struct AllocError {
    pub width: u32,
    pub height: u32,
}

/// One buffer of [`I420Buffer::len`] (+ padding) bytes, wrapped as a YUV420P frame.
fn alloc_packed_i420(w: u32, h: u32) -> Result<frame::Video, AllocError> {
    let (y_len, c_len) = (w as usize * h as usize, (w as usize / 2) * (h as usize / 2));
    // SAFETY: av_buffer_alloc returns null or a buffer of the asked size that we own.
    let buf = unsafe { ffi::av_buffer_alloc(y_len + 2 * c_len + PADDING) };
    if buf.is_null() {
        return Err(AllocError {
            width: w,
            height: h,
        });
    }
    let mut f = frame::Video::empty();
    // SAFETY: `f` is a fresh, empty AVFrame we own; it takes over our reference to `buf` (freed
    // by av_frame_unref when the frame is dropped), and every plane pointer lies inside `buf`:
    // Y at 0 (h rows of w), U at y_len and V at y_len + c_len (h/2 rows of w/2 each).
    unsafe {
        let p = f.as_mut_ptr();
        let base = (*buf).data;
        (*p).buf[0] = buf;
        (*p).data[0] = base;
        (*p).data[1] = base.add(y_len);
        (*p).data[2] = base.add(y_len + c_len);
        (*p).linesize[0] = w as i32;
        (*p).linesize[1] = (w / 2) as i32;
        (*p).linesize[2] = (w / 2) as i32;
        (*p).extended_data = (*p).data.as_mut_ptr();
        (*p).width = w as i32;
        (*p).height = h as i32;
        (*p).format = ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32;
    }
    Ok(f)
}

/// The fixed set of frame buffers shared by producer and encoder.
///
/// A LIFO free list: the buffer given back last is taken next, so in steady state (encoder
/// keeping up) the same one or two buffers cycle — cache-warm, and the others are never touched,
/// which keeps a 4K pool from costing its full size in resident memory.
pub struct FramePool {
    free: Arc<Mutex<Vec<CpuFrame>>>,
}

impl FramePool {
    /// `n` buffers; they grow to the frame size on first use and are then reused.
    pub fn new(n: usize) -> Self {
        let free = (0..n).map(|_| CpuFrame::empty()).collect();
        FramePool {
            free: Arc::new(Mutex::new(free)),
        }
    }

    /// A free buffer, or `None` when all are queued or being encoded.
    pub fn try_take(&self) -> Option<CpuFrame> {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Handle the encoder uses to give buffers back.
    pub fn returner(&self) -> FrameReturn {
        FrameReturn(Arc::clone(&self.free))
    }
}

/// Gives frame buffers back to their pool.
#[derive(Clone)]
pub struct FrameReturn(Arc<Mutex<Vec<CpuFrame>>>);

impl FrameReturn {
    pub fn give_back(&self, frame: CpuFrame) {
        // The Vec was created with room for every buffer, so this never allocates.
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_bounded_and_lifo() {
        let pool = FramePool::new(2);
        let mut a = pool.try_take().unwrap();
        let b = pool.try_take().unwrap();
        assert!(pool.try_take().is_none(), "only two buffers");
        a.data.extend_from_slice(&[1, 2, 3]);
        pool.returner().give_back(b);
        pool.returner().give_back(a);
        // The last one given back comes out first (it is the warm one).
        assert_eq!(pool.try_take().unwrap().data, vec![1, 2, 3]);
    }

    #[test]
    fn i420_buffer_is_reused_until_shared_or_resized() {
        let mut b = I420Buffer::default();
        assert!(b.bytes().is_empty());
        let bytes = b.writable(64, 32).unwrap();
        assert_eq!(bytes.len(), 64 * 32 * 3 / 2);
        bytes.fill(7);
        let first = bytes.as_ptr();
        // Same size, no one else holds it: the same memory, contents kept.
        assert_eq!(b.writable(64, 32).unwrap().as_ptr(), first);
        assert!(b.bytes().iter().all(|&v| v == 7));
        // The planes of the frame are the packed layout's.
        let f = b.frame_mut().unwrap();
        assert_eq!((f.stride(0), f.stride(1), f.stride(2)), (64, 32, 32));
        assert_eq!(f.data(1).as_ptr(), first.wrapping_add(64 * 32));
        assert_eq!(f.data(2).as_ptr(), first.wrapping_add(64 * 32 + 32 * 16));
        // An encoder keeping a reference: the next write goes to a new buffer, the old one
        // stays as the encoder saw it.
        let mut kept = frame::Video::empty();
        // SAFETY: both are valid frames and `kept` is empty: it takes a new reference to the
        // same buffer, as an encoder that queues input frames does.
        let r = unsafe { ffi::av_frame_ref(kept.as_mut_ptr(), f.as_ptr()) };
        assert_eq!(r, 0);
        let second = b.writable(64, 32).unwrap();
        assert_ne!(second.as_ptr(), first);
        second.fill(9);
        assert!(kept.data(0).iter().all(|&v| v == 7));
        drop(kept);
        // Another size: a buffer of that size.
        assert_eq!(b.writable(32, 16).unwrap().len(), 32 * 16 * 3 / 2);
    }
}
