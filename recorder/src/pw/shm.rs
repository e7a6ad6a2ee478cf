//! The SHM capture path: the newest buffer's mapped memory (MemFd/MemPtr) goes to the frame
//! sink, which converts it to I420 straight out of the mapping.

use pipewire as pw;
use pw::spa::buffer::ChunkFlags;
use pw::spa::sys::SPA_DATA_FLAG_READABLE;

use super::buffer::{Dequeued, FrameMeta};
use super::monotonic_ns;
use super::stream::StreamData;

/// The stream's `process` callback on an SHM format.
pub(super) fn process(stream: &pw::stream::Stream, data: &mut StreamData) {
    let Some(mut buffer) = Dequeued::newest(stream, |_| data.sink.stale()) else {
        return;
    };
    let Some((format, width, height)) = data.format else {
        return;
    };
    let meta = FrameMeta::read(&buffer);
    if meta.corrupted {
        return;
    }
    let id = buffer.id();
    let datas = buffer.datas_mut();
    let Some(d) = datas.first_mut() else { return };
    if d.as_raw().chunk.is_null() {
        return;
    }
    let chunk = d.chunk();
    let (offset, size, stride) = (
        chunk.offset() as usize,
        chunk.size() as usize,
        chunk.stride(),
    );
    if size == 0 || chunk.flags().contains(ChunkFlags::CORRUPTED) {
        return;
    }
    let Some(pts_ns) = meta.pts_ns() else { return };
    let stride = if stride > 0 {
        stride as usize
    } else {
        width as usize * format.bytes_per_pixel()
    };
    // Without READABLE, PipeWire 1.6 mapped the memory PROT_NONE: read our own mapping.
    let bytes = if d.as_raw().flags & SPA_DATA_FLAG_READABLE != 0 {
        let Some(bytes) = d.data() else { return };
        &*bytes
    } else {
        match data.read_maps.bytes(id, d.as_raw()) {
            Ok(bytes) => bytes,
            Err(e) => {
                if !std::mem::replace(&mut data.unreadable_warned, true) {
                    tracing::warn!(error = %e, "frames skipped: the buffer is not readable");
                }
                return;
            }
        }
    };
    let needed = stride * (height as usize - 1) + width as usize * format.bytes_per_pixel();
    if bytes.len() < offset + needed {
        tracing::warn!(len = bytes.len(), offset, needed, "short buffer skipped");
        return;
    }
    // Recording the whole buffer of a window cast would add garbage borders.
    let (x, y, width, height) = data.geometry.region(&meta, width, height);
    let offset = offset + y as usize * stride + x as usize * format.bytes_per_pixel();
    let end = (offset + stride * height as usize).min(bytes.len());
    data.sink.submit(
        pts_ns,
        monotonic_ns(),
        width,
        height,
        format,
        stride,
        &bytes[offset..end],
    );
}
