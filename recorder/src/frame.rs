//! The unit handed from the PipeWire thread to the encoder thread.
//!
//! CPU frames live in a fixed pool: the PipeWire thread takes a free buffer, copies the mapped
//! SHM frame into it and sends it on; the encoder gives it back after encoding. When no buffer is
//! free the encoder is behind and the frame is dropped (and counted) — the pool *is* the bounded
//! queue, and steady state allocates nothing.

use std::sync::mpsc;
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
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Nv12 => 1,
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
pub struct FramePool {
    free_tx: mpsc::SyncSender<CpuFrame>,
    free_rx: mpsc::Receiver<CpuFrame>,
}

impl FramePool {
    /// `n` buffers; they grow to the frame size on first use and are then reused.
    pub fn new(n: usize) -> Self {
        let (free_tx, free_rx) = mpsc::sync_channel(n);
        for _ in 0..n {
            free_tx
                .send(CpuFrame::empty())
                .expect("pool has room for its own buffers");
        }
        FramePool { free_tx, free_rx }
    }

    /// A free buffer, or `None` when all are queued or being encoded.
    pub fn try_take(&self) -> Option<CpuFrame> {
        self.free_rx.try_recv().ok()
    }

    /// Handle the encoder uses to give buffers back.
    pub fn returner(&self) -> FrameReturn {
        FrameReturn(self.free_tx.clone())
    }
}

/// Gives frame buffers back to their pool.
#[derive(Clone)]
pub struct FrameReturn(mpsc::SyncSender<CpuFrame>);

impl FrameReturn {
    pub fn give_back(&self, frame: CpuFrame) {
        // The pool is sized for every buffer, so this never blocks; if the pool is gone the
        // recording is over and the buffer is simply freed.
        let _ = self.0.try_send(frame);
    }
}
