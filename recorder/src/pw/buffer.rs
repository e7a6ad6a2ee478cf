//! A dequeued PipeWire buffer and what its metadata says, for both capture paths.
//!
//! [`Dequeued`] owns a `pw_buffer` from `pw_stream_dequeue_buffer` until it is dropped, which
//! queues it back: every path gives the compositor its buffer exactly once, and what borrows
//! the buffer's memory or fds cannot outlive it. [`FrameMeta`] is the one reader of the
//! buffer's metadata (header, crop region, explicit-sync points), through libspa's typed metas
//! and its `spa_buffer_find_meta_data`.

use std::marker::PhantomData;
use std::ptr::NonNull;

use pipewire as pw;
use pw::spa;
use spa::buffer::meta::{MetaHeader, MetaHeaderFlags, MetaSyncTimeline, MetaVideoCrop, Metadata};
use spa::buffer::Data;
use spa::utils::{Point, Rectangle};
use zerocast_interop::BufferId;

use super::monotonic_ns;

/// A buffer dequeued from `stream`, queued back when dropped. Only exists on the loop thread,
/// inside the stream's `process` callback.
pub(super) struct Dequeued<'s> {
    buf: NonNull<pw::sys::pw_buffer>,
    stream: &'s pw::stream::Stream,
    /// Not `Send`: the buffer belongs to the loop thread.
    _loop_thread: PhantomData<*mut ()>,
}

impl<'s> Dequeued<'s> {
    /// The next ready buffer of `stream`, if any.
    pub fn next(stream: &'s pw::stream::Stream) -> Option<Dequeued<'s>> {
        // SAFETY: called on the loop thread (the only place a `Stream` is reachable); the
        // buffer is queued back exactly once, by `Drop`.
        let b = unsafe { stream.dequeue_raw_buffer() };
        NonNull::new(b).map(|buf| Dequeued {
            buf,
            stream,
            _loop_thread: PhantomData,
        })
    }

    /// Dequeues every ready buffer and returns the newest. Older ones are stale frames we
    /// could only drop anyway: each is shown to `on_stale` (explicit sync must release it)
    /// and queued straight back.
    pub fn newest(
        stream: &'s pw::stream::Stream,
        mut on_stale: impl FnMut(&Dequeued<'s>),
    ) -> Option<Dequeued<'s>> {
        let mut newest = None;
        while let Some(b) = Dequeued::next(stream) {
            if let Some(old) = newest.replace(b) {
                on_stale(&old);
            }
        }
        newest
    }

    /// The id PipeWire knows this buffer by for its whole life (until `remove_buffer`): the
    /// key of per-buffer caches (imports, timelines).
    pub fn id(&self) -> BufferId {
        self.buf.as_ptr() as BufferId
    }

    fn spa_buffer(&self) -> Option<NonNull<spa::sys::spa_buffer>> {
        // SAFETY: a dequeued pw_buffer stays valid until it is queued back (by our Drop).
        NonNull::new(unsafe { self.buf.as_ref() }.buffer)
    }

    /// The buffer's metadata of type `T`, if it has one of at least `T`'s size.
    pub fn find_meta<T: Metadata>(&self) -> Option<&T> {
        let sb = self.spa_buffer()?;
        // SAFETY: the spa_buffer and its metas are valid while the buffer is dequeued, i.e. for
        // the borrow of `self`; spa_buffer_find_meta_data returns null or the data of a meta of
        // `T::META_TYPE` holding at least `size_of::<T>()` bytes, and `T` is the
        // `repr(transparent)` libspa wrapper of that meta's C struct.
        unsafe {
            let p = spa::sys::spa_buffer_find_meta_data(
                sb.as_ptr(),
                T::META_TYPE,
                std::mem::size_of::<T>(),
            );
            (p as *const T).as_ref()
        }
    }

    /// The buffer's data planes (memory, dma-buf or SyncObj fds).
    pub fn datas(&self) -> &[Data] {
        let Some(sb) = self.spa_buffer() else {
            return &[];
        };
        // SAFETY: `datas` holds `n_datas` spa_data, valid while the buffer is dequeued; `Data`
        // is libspa's `repr(transparent)` wrapper of spa_data.
        unsafe {
            let sb = sb.as_ref();
            if sb.datas.is_null() || sb.n_datas == 0 {
                return &[];
            }
            std::slice::from_raw_parts(sb.datas as *const Data, sb.n_datas as usize)
        }
    }

    /// As [`Dequeued::datas`], mutably: mapping memory (`Data::data`) needs it.
    pub fn datas_mut(&mut self) -> &mut [Data] {
        let Some(sb) = self.spa_buffer() else {
            return &mut [];
        };
        // SAFETY: as in `datas`; `&mut self` makes this the only view of them.
        unsafe {
            let sb = sb.as_ref();
            if sb.datas.is_null() || sb.n_datas == 0 {
                return &mut [];
            }
            std::slice::from_raw_parts_mut(sb.datas as *mut Data, sb.n_datas as usize)
        }
    }
}

impl Drop for Dequeued<'_> {
    fn drop(&mut self) {
        // SAFETY: the buffer was dequeued from this stream by `next` and is queued back once,
        // here; nothing borrowed from it outlives `self`.
        unsafe { self.stream.queue_raw_buffer(self.buf.as_ptr()) };
    }
}

/// What a buffer's metadata says about its frame, read once per buffer the same way for the
/// SHM and the DMA-BUF path.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FrameMeta {
    /// Header PTS (compositor clock), if the buffer has a header.
    pts: Option<i64>,
    /// The header flags the frame CORRUPTED.
    pub corrupted: bool,
    /// The VideoCrop region, if the buffer has a non-empty one. Window casts (GNOME, KDE) send
    /// buffers sized for the largest window and say here which part holds the window.
    pub crop: Option<(Point, Rectangle)>,
    /// Explicit sync: the SyncTimeline meta's (acquire, release) points.
    pub sync_points: Option<(u64, u64)>,
}

impl FrameMeta {
    pub fn read(buf: &Dequeued<'_>) -> FrameMeta {
        let header = buf.find_meta::<MetaHeader>();
        FrameMeta {
            pts: header.map(MetaHeader::pts),
            corrupted: header.is_some_and(|h| h.flags().contains(MetaHeaderFlags::CORRUPTED)),
            crop: buf
                .find_meta::<MetaVideoCrop>()
                .map(MetaVideoCrop::meta_region)
                .filter(|r| r.is_valid())
                .map(|r| (r.position(), r.size())),
            sync_points: buf
                .find_meta::<MetaSyncTimeline>()
                .map(|t| (t.acquire_point(), t.release_point())),
        }
    }

    /// The frame's timestamp: the header's PTS, or now for a producer that sends no header.
    /// `None`: not a frame — xdpw can send one stamp-less buffer (pts 0) while starting.
    pub fn pts_ns(&self) -> Option<i64> {
        match self.pts {
            Some(pts) if pts > 0 => Some(pts),
            Some(_) => None,
            None => Some(monotonic_ns()),
        }
    }

    /// The part of a `width`×`height` frame to record: see [`crop_rect`].
    pub fn region(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        crop_rect(self.crop, width, height)
    }
}

/// A `--region` as the stream's frames see it: relative to the monitor's top-left corner, in the
/// desktop's logical units, which a frame's pixels scale by (a monitor at scale 2 sends twice
/// as many pixels as it has logical ones).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserCrop {
    /// Relative to the monitor, inside it.
    rel: crate::Region,
    /// The monitor's logical size, if the portal said (else the frame's pixels are logical).
    monitor: Option<(u32, u32)>,
}

impl UserCrop {
    /// `region` on the monitor at `position` of `size` (what the portal reported). `None`:
    /// the region does not touch the monitor. A region partly outside is clipped to it.
    pub fn new(
        region: crate::Region,
        position: Option<(i32, i32)>,
        size: Option<(u32, u32)>,
    ) -> Option<UserCrop> {
        let (mx, my) = position.unwrap_or((0, 0));
        let inside = match size {
            Some((w, h)) => region.intersect(&crate::Region {
                x: mx,
                y: my,
                width: w,
                height: h,
            })?,
            None => region,
        };
        Some(UserCrop {
            rel: crate::Region {
                x: inside.x - mx,
                y: inside.y - my,
                ..inside
            },
            monitor: size,
        })
    }

    /// The rectangle of a `width`×`height` frame to record (clamped to it, at least 2×2).
    pub fn pixels(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        let (sx, sy) = match self.monitor {
            Some((mw, mh)) if mw > 0 && mh > 0 => {
                (width as f64 / mw as f64, height as f64 / mh as f64)
            }
            _ => (1.0, 1.0),
        };
        // (start, length) along one axis; `as u32` saturates a negative start to 0.
        let span = |pos: i32, len: u32, s: f64, max: u32| {
            let max = max.max(2);
            let a = ((pos as f64 * s).round() as u32).min(max - 2);
            let b = (((pos as f64 + len as f64) * s).round() as u32).clamp(a + 2, max);
            (a, b - a)
        };
        let (x, w) = span(self.rel.x, self.rel.width, sx, width);
        let (y, h) = span(self.rel.y, self.rel.height, sy, height);
        (x, y, w, h)
    }
}

/// The part of a `width`×`height` frame to record: the crop region when it is valid and inside
/// the frame, else the whole frame.
pub(super) fn crop_rect(
    crop: Option<(Point, Rectangle)>,
    width: u32,
    height: u32,
) -> (u32, u32, u32, u32) {
    match crop {
        Some((pos, size))
            if pos.x >= 0
                && pos.y >= 0
                && size.width > 0
                && size.height > 0
                && pos.x as u64 + size.width as u64 <= width as u64
                && pos.y as u64 + size.height as u64 <= height as u64 =>
        {
            (pos.x as u32, pos.y as u32, size.width, size.height)
        }
        _ => (0, 0, width, height),
    }
}

#[cfg(test)]
mod user_crop_tests {
    use super::UserCrop;
    use crate::Region;

    fn r(x: i32, y: i32, width: u32, height: u32) -> Region {
        Region {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn a_region_maps_to_the_monitors_pixels() {
        // The second monitor of two, at 1280,0; the region's left part is on the first.
        let c = UserCrop::new(r(1180, 100, 400, 200), Some((1280, 0)), Some((1280, 720))).unwrap();
        assert_eq!(c.pixels(1280, 720), (0, 100, 300, 200));
        // Scale 2: twice the pixels.
        assert_eq!(c.pixels(2560, 1440), (0, 200, 600, 400));
        // Not on this monitor at all.
        assert_eq!(
            UserCrop::new(r(0, 0, 100, 100), Some((1280, 0)), Some((1280, 720))),
            None
        );
        // The portal gave no geometry: logical = pixels, clamped to the frame.
        let c = UserCrop::new(r(1200, 700, 400, 400), None, None).unwrap();
        assert_eq!(c.pixels(1280, 720), (1200, 700, 80, 20));
    }
}

#[cfg(test)]
mod crop_tests {
    use super::crop_rect;
    use pipewire::spa::utils::{Point, Rectangle};

    #[test]
    fn crop_inside_is_used_and_anything_else_means_the_whole_frame() {
        let r = |x, y, w, h| {
            Some((
                Point { x, y },
                Rectangle {
                    width: w,
                    height: h,
                },
            ))
        };
        assert_eq!(crop_rect(r(10, 20, 100, 50), 640, 480), (10, 20, 100, 50));
        assert_eq!(crop_rect(None, 640, 480), (0, 0, 640, 480));
        // Out of bounds, negative, empty: a compositor bug must not make us read past the buffer.
        assert_eq!(crop_rect(r(600, 0, 100, 50), 640, 480), (0, 0, 640, 480));
        assert_eq!(crop_rect(r(-1, 0, 100, 50), 640, 480), (0, 0, 640, 480));
        assert_eq!(crop_rect(r(0, 0, 0, 50), 640, 480), (0, 0, 640, 480));
    }
}
