//! The unit handed from the PipeWire thread to the encoder thread.
//!
//! CPU frames live in a fixed pool: the PipeWire thread takes a free buffer, copies the mapped
//! SHM frame into it and sends it on; the encoder gives it back after encoding. When no buffer is
//! free the encoder is behind and the frame is dropped (and counted) — the pool *is* the bounded
//! queue, and steady state allocates nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// holds 1.5 bytes per pixel instead of 4 and the encoder only copies planes.
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
    /// Pixel bytes. Capacity is kept across uses; never shrunk.
    pub data: Vec<u8>,
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
        }
    }
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
}
