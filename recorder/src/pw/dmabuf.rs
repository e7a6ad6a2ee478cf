//! The DMA-BUF capture path on the loop thread: the newest buffer's planes (and explicit-sync
//! fds) go to the GPU side ([`super::gpu`]) for import and conversion; the result goes to the
//! frame sink as a host frame or a CUDA slot. The buffer is queued back when the GPU no
//! longer reads it.

use std::marker::PhantomData;
use std::os::fd::{BorrowedFd, RawFd};

use pipewire as pw;
use pw::spa;
use spa::param::video::VideoFormat;
use zerocast_interop::{BufferId, DmabufDesc, DmabufPlane, Fallback, FrameLayout, Modifier};

use super::buffer::{Dequeued, FrameMeta};
use super::gpu::{Converted, RawSync};
use super::stream::{renegotiate, sync_failed, StreamData};
use super::{monotonic_ns, params};
use crate::frame::{CpuFrame, PixelFormat};

/// Memory planes a modifier may have (e.g. a colour plane plus CCS planes).
const MAX_PLANES: usize = 4;

/// One memory plane of a DMA-BUF buffer: fd, offset and stride from its `spa_data`/chunk.
#[derive(Clone, Copy, Default)]
struct RawPlane {
    fd: RawFd,
    offset: u32,
    stride: i32,
}

/// What the DMA-BUF path needs from a dequeued buffer, borrowing its fds for `'b`.
struct DmabufFrame<'b> {
    meta: FrameMeta,
    planes: [RawPlane; MAX_PLANES],
    n_planes: usize,
    /// A plane's chunk is flagged CORRUPTED.
    corrupted: bool,
    /// `maxsize` of plane 0: the allocation size for OPAQUE_FD test buffers.
    maxsize: u32,
    /// Explicit sync: the (acquire, release) timeline fds, the buffer's last two datas.
    sync_fds: Option<(RawFd, RawFd)>,
    /// The fds are the buffer's: open while it is dequeued.
    _buffer: PhantomData<BorrowedFd<'b>>,
}

impl<'b> DmabufFrame<'b> {
    /// Reads the planes and metadata of `buf`; `None` when it is not a usable DMA-BUF buffer.
    fn read(buf: &'b Dequeued<'_>) -> Option<DmabufFrame<'b>> {
        let datas = buf.datas();
        let meta = FrameMeta::read(buf);
        let n_datas = datas.len();
        // With explicit sync the two SyncObj datas (acquire, release) follow the planes.
        let is_syncobj = |i: usize| datas[i].as_raw().type_ == spa::sys::SPA_DATA_SyncObj;
        let sync_fds = match meta.sync_points {
            Some(_) if n_datas >= 3 && is_syncobj(n_datas - 2) && is_syncobj(n_datas - 1) => {
                Some((datas[n_datas - 2].fd(), datas[n_datas - 1].fd()))
            }
            _ => None,
        };
        let first = datas.first()?;
        let n = (n_datas - if sync_fds.is_some() { 2 } else { 0 }).min(MAX_PLANES);
        let mut frame = DmabufFrame {
            meta,
            planes: [RawPlane::default(); MAX_PLANES],
            n_planes: n,
            corrupted: false,
            maxsize: first.as_raw().maxsize,
            sync_fds,
            _buffer: PhantomData,
        };
        for (plane, d) in frame.planes.iter_mut().zip(&datas[..n]) {
            let raw = d.as_raw();
            if raw.type_ != spa::sys::SPA_DATA_DmaBuf || raw.fd < 0 || raw.chunk.is_null() {
                return None;
            }
            let c = d.chunk();
            frame.corrupted |= c.flags().contains(spa::buffer::ChunkFlags::CORRUPTED);
            *plane = RawPlane {
                fd: d.fd(),
                offset: c.offset(),
                stride: c.stride(),
            };
        }
        Some(frame)
    }

    /// The explicit-sync description, if the buffer carries one.
    fn sync(&self) -> Option<RawSync<'b>> {
        let ((acquire, release), (acquire_point, release_point)) =
            self.sync_fds.zip(self.meta.sync_points)?;
        Some(RawSync {
            // SAFETY: the buffer's own fds, open while it is dequeued, i.e. for 'b.
            acquire_fd: unsafe { BorrowedFd::borrow_raw(acquire) },
            // SAFETY: as above.
            release_fd: unsafe { BorrowedFd::borrow_raw(release) },
            acquire_point,
            release_point,
        })
    }

    /// The planes for the importer. An array, not a Vec: the per-frame path does not
    /// allocate. Entries past `n_planes` repeat plane 0 and are not passed on.
    fn planes(&self, width: u32) -> [DmabufPlane<'b>; MAX_PLANES] {
        std::array::from_fn(|i| {
            let p = self.planes[if i < self.n_planes { i } else { 0 }];
            DmabufPlane {
                // SAFETY: the buffer's own fd, open while it is dequeued, i.e. for 'b; the
                // importer dups it when it keeps it.
                fd: unsafe { BorrowedFd::borrow_raw(p.fd) },
                offset: p.offset,
                // Some producers leave the stride 0 for LINEAR; the tightest packing is implied.
                stride: if p.stride > 0 {
                    p.stride as u32
                } else {
                    width * 4
                },
            }
        })
    }
}

/// The stream's `process` callback on a DMA-BUF format.
pub(super) fn process(
    stream: &pw::stream::Stream,
    data: &mut StreamData,
    format: VideoFormat,
    modifier: Modifier,
) {
    let newest = Dequeued::newest(stream, |old| {
        data.sink.stale();
        if let Some(frame) = DmabufFrame::read(old) {
            release_unread(stream, data, old.id(), &frame);
        }
    });
    let Some(buffer) = newest else { return };
    let frame = DmabufFrame::read(&buffer);
    let gpu_releases = match &frame {
        Some(frame) => convert(stream, data, buffer.id(), frame, format, modifier),
        None => false,
    };
    if let (false, Some(frame)) = (gpu_releases, &frame) {
        release_unread(stream, data, buffer.id(), frame);
    }
    // `buffer` is queued back here, which is safe: `convert` returns only after the GPU
    // finished reading it (host read-back or a wait for the frame's timeline value), after a
    // submission that signals the buffer's release point (explicit sync), or without having
    // used it.
}

/// Explicit sync: a buffer given back without a GPU read still gets its release point, or the
/// compositor would wait for it forever. A compositor whose timelines cannot be imported gets
/// buffers without explicit sync from now on (renegotiated once).
fn release_unread(
    stream: &pw::stream::Stream,
    data: &mut StreamData,
    id: BufferId,
    frame: &DmabufFrame<'_>,
) {
    let Some(sync) = frame.sync() else {
        return;
    };
    let Some(gpu) = data.gpu.as_mut() else { return };
    if let Err(e) = gpu.release_unread(id, &sync) {
        sync_failed(stream, data, &e);
    }
}

/// Imports and converts the dequeued buffer `id`. Returns whether a GPU submission will signal
/// the buffer's explicit-sync release point (else the caller signals it from the CPU).
fn convert(
    stream: &pw::stream::Stream,
    data: &mut StreamData,
    id: BufferId,
    frame: &DmabufFrame<'_>,
    format: VideoFormat,
    modifier: Modifier,
) -> bool {
    let Some((_, width, height)) = data.format else {
        return false;
    };
    if frame.meta.corrupted || frame.corrupted {
        return false;
    }
    let Some(pts_ns) = frame.meta.pts_ns() else {
        return false;
    };
    let Some(fourcc) = params::drm_fourcc(format) else {
        return false;
    };
    // Ask before converting: a paused or fps-capped frame costs no GPU work.
    let Some(pts) = data.sink.admit_pts(pts_ns, monotonic_ns()) else {
        return false;
    };
    let sync = frame.sync();
    if let Some(s) = &sync {
        let gpu = data
            .gpu
            .as_mut()
            .expect("DMA-BUF is only negotiated with a GPU");
        if let Err(e) = gpu.import_sync(id, s) {
            sync_failed(stream, data, &e);
            return false;
        }
    }
    let planes = frame.planes(width);
    let (x, y, w, h) = data.geometry.region(&frame.meta, width, height);
    let gpu = data
        .gpu
        .as_mut()
        .expect("DMA-BUF is only negotiated with a GPU");
    let desc = DmabufDesc {
        width,
        height,
        fourcc,
        modifier,
        planes: &planes[..frame.n_planes],
        memory_size: gpu.wants_memory_size().then_some(frame.maxsize as u64),
    };
    // The host path reads back into a pooled buffer: take it first, so a busy encoder costs
    // no GPU work. CUDA frames stay in the converter's slots.
    let mut host = None;
    if !gpu.bridge_in_use() {
        match data.sink.host_buffer(pts) {
            Some(f) => host = Some(f),
            None => return false,
        }
    }
    let region = zerocast_interop::Region {
        x,
        y,
        width: w,
        height: h,
    };
    let output = data.geometry.output.apply(w, h);
    match gpu.size_for_first_frame(region, output) {
        Ok(Some(r)) => data.sink.reconfigure_gpu(r.bridge, r.releaser, r.old),
        Ok(None) => {}
        // Still recordable: the region is scaled to the stream's size.
        Err(e) => tracing::warn!(error = %e, "cannot resize the GPU output for the crop region"),
    }
    let result = gpu.convert(id, &desc, region, sync.as_ref(), |bytes, layout| {
        if let Some(f) = host.as_mut() {
            fill_nv12(f, bytes, layout);
        }
    });
    let released_by_gpu = gpu.released_by_gpu();
    match result {
        Ok(Converted::Host) => {
            if let Some(f) = host {
                data.sink.send(f);
            }
        }
        Ok(Converted::Cuda(frame)) => {
            if let Some(f) = host {
                data.sink.discard(f);
            }
            let releaser = gpu.releaser().expect("a frame was converted").clone();
            data.sink.send_gpu(frame, pts, &releaser);
        }
        Err(e) => {
            if let Some(f) = host {
                data.sink.discard(f);
            }
            if e.fallback() == Fallback::DropFrame {
                // Every slot is still being encoded (or a transient GPU memory shortage): the
                // encoder is behind, like a full frame pool on the host path.
                tracing::debug!(error = %e, "GPU frame dropped");
                data.sink.dropped();
                return released_by_gpu;
            }
            tracing::warn!(error = %e, fallback = ?e.fallback(), "DMA-BUF frame not imported");
            renegotiate(stream, data, e.fallback());
        }
    }
    released_by_gpu
}

/// Copies the converter's NV12 (Y rows padded to an even count) into the encoder's layout
/// (UV right after `height` Y rows).
fn fill_nv12(frame: &mut CpuFrame, bytes: &[u8], layout: &FrameLayout) {
    let pitch = layout.pitch as usize;
    let h = layout.height as usize;
    let uv = layout.uv_offset as usize;
    frame.data.clear();
    frame.data.extend_from_slice(&bytes[..pitch * h]);
    frame
        .data
        .extend_from_slice(&bytes[uv..uv + pitch * h.div_ceil(2)]);
    frame.width = layout.width;
    frame.height = layout.height;
    frame.format = PixelFormat::Nv12;
    frame.stride = pitch;
}
