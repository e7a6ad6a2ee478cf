//! The PipeWire thread: owns the main loop, context, core and stream (all `!Send`), negotiates
//! the format and turns buffers into [`CpuFrame`]s for the encoder thread.
//!
//! Talks to the rest only through channels: commands arrive on a `pipewire::channel`, events and
//! frames leave on a tokio channel and the frame sink.

mod gpu;
mod negotiate;
pub mod params;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use pipewire as pw;
use pw::spa;
use spa::buffer::meta::{MetaHeader, MetaHeaderFlags, MetaVideoCrop};
use spa::param::video::{VideoFlags, VideoFormat, VideoInfoRaw};
use spa::param::ParamType;
use spa::pod::Pod;
use tokio::sync::mpsc::UnboundedSender;

use crate::frame::{CpuFrame, PixelFormat};
use crate::sink::FrameSink;
use crate::CapturePath;
use gpu::{Converted, Gpu, RawSync};
use negotiate::{Negotiation, Negotiator};
use zerocast_interop::{DmabufDesc, DmabufPlane, Fallback};

/// Commands for the loop thread.
#[derive(Debug)]
pub(crate) enum PwCommand {
    /// Disconnect and end the loop.
    Stop,
}

/// What the loop thread reports.
#[derive(Debug)]
pub(crate) enum PwEvent {
    /// A format was negotiated (also after a renegotiation).
    Format {
        width: u32,
        height: u32,
        format: PixelFormat,
        path: CapturePath,
    },
    /// The stream reached Streaming.
    Streaming,
    /// The compositor or PipeWire ended the stream; no more frames will come.
    Lost(String),
}

/// Handle to a running PipeWire thread.
pub(crate) struct PwThread {
    commands: pw::channel::Sender<PwCommand>,
    join: Option<JoinHandle<()>>,
}

impl PwThread {
    /// Connects to the remote `fd` (dup'ed: the portal's copy stays with the caller) and records
    /// `node_id`.
    pub fn spawn(
        fd: &OwnedFd,
        node_id: u32,
        sink: FrameSink,
        events: UnboundedSender<PwEvent>,
        span: tracing::Span,
    ) -> std::io::Result<PwThread> {
        let fd = fd.as_fd().try_clone_to_owned()?;
        let (tx, rx) = pw::channel::channel();
        let join = std::thread::Builder::new()
            .name("zerocast-pipewire".into())
            .spawn(move || {
                let _enter = span.enter();
                if let Err(e) = run(fd, node_id, sink, events.clone(), rx) {
                    tracing::error!(error = %e, "PipeWire stream failed");
                    let _ = events.send(PwEvent::Lost(e));
                }
            })?;
        Ok(PwThread {
            commands: tx,
            join: Some(join),
        })
    }

    /// Asks the loop to disconnect and waits for the thread to end. Blocking: call from a
    /// blocking context (`spawn_blocking`) or when the loop is known to be ending.
    pub fn stop(mut self) {
        let _ = self.commands.send(PwCommand::Stop);
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

impl Drop for PwThread {
    fn drop(&mut self) {
        let _ = self.commands.send(PwCommand::Stop);
    }
}

struct StreamData {
    sink: FrameSink,
    events: UnboundedSender<PwEvent>,
    format: Option<(PixelFormat, u32, u32)>,
    streamed: bool,
    negotiator: Negotiator,
    /// `None`: no usable Vulkan dma-buf import here; SHM only.
    gpu: Option<Gpu>,
    /// Explicit sync is offered with DMA-BUF buffers (turned off for the stream when the
    /// compositor's timelines cannot be imported).
    sync_allowed: bool,
}

impl Drop for StreamData {
    fn drop(&mut self) {
        // The encoder thread may still be encoding from CUDA mappings of the converter's slots:
        // it drops the converter after its last frame. Blocking send: the encoder drains its
        // queue until it is told to finish, which happens only after this thread has ended.
        if let Some(gpu) = self.gpu.take() {
            if gpu.bridge_handed_over() {
                if let Err(e) = self
                    .sink
                    .tx
                    .send(crate::sink::EncMsg::Retire(Box::new(gpu)))
                {
                    // The encoder thread is gone, and with it every use of the bridge.
                    drop(e);
                }
            }
        }
    }
}

fn run(
    fd: OwnedFd,
    node_id: u32,
    sink: FrameSink,
    events: UnboundedSender<PwEvent>,
    commands: pw::channel::Receiver<PwCommand>,
) -> Result<(), String> {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(pw::init);

    let mainloop = pw::main_loop::MainLoopRc::new(None).map_err(|e| e.to_string())?;
    let context = pw::context::ContextRc::new(&mainloop, None).map_err(|e| e.to_string())?;
    let core = context
        .connect_fd_rc(fd, None)
        .map_err(|e| format!("cannot connect to the portal's PipeWire remote: {e}"))?;

    let lost_tx = events.clone();
    let quit_loop = mainloop.downgrade();
    // A broken pipe on the core means the remote (the portal's PipeWire connection) went away.
    let _core_listener = core
        .add_listener_local()
        .error(move |id, _seq, res, msg| {
            tracing::warn!(id, res, msg, "PipeWire core error");
            if id == pw::core::PW_ID_CORE && res == -libc::EPIPE {
                let _ = lost_tx.send(PwEvent::Lost(format!("PipeWire connection lost: {msg}")));
                if let Some(l) = quit_loop.upgrade() {
                    l.quit();
                }
            }
        })
        .register();

    // The portal's node disappearing (compositor or portal backend gone) is the most reliable
    // "stream lost" signal: the stream itself may just sit in Paused afterwards.
    let registry = core.get_registry_rc().map_err(|e| e.to_string())?;
    let removed_tx = events.clone();
    let quit_on_remove = mainloop.downgrade();
    let _registry_listener = registry
        .add_listener_local()
        .global_remove(move |id| {
            if id == node_id {
                let _ = removed_tx.send(PwEvent::Lost(
                    "the screen-cast node was removed (compositor or portal ended the cast)".into(),
                ));
                if let Some(l) = quit_on_remove.upgrade() {
                    l.quit();
                }
            }
        })
        .register();

    let gpu = if let Some(reason) = gpu::skip_reason() {
        tracing::info!(%reason, "no DMA-BUF path; offering SHM only");
        None
    } else {
        match Gpu::new() {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::info!(reason = %e, "no DMA-BUF import path; offering SHM only");
                None
            }
        }
    };
    let negotiator = Negotiator::new(gpu.as_ref().map(Gpu::offer).unwrap_or_default());
    let enum_formats = negotiator.enum_formats();
    tracing::info!(
        dmabuf = negotiator.offers_dmabuf(),
        pods = enum_formats.len(),
        "offering formats"
    );

    let stream = pw::stream::StreamRc::new(
        core.clone(),
        "zerocast",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        },
    )
    .map_err(|e| e.to_string())?;

    let data = StreamData {
        sink,
        events: events.clone(),
        format: None,
        streamed: false,
        sync_allowed: gpu.as_ref().is_some_and(Gpu::supports_sync) && pipewire_has_sync_timeline(),
        negotiator,
        gpu,
    };
    let quit_on_end = mainloop.downgrade();
    // Listener before stream in drop order: it must not outlive the stream it points into.
    let _listener = stream
        .add_local_listener_with_user_data(data)
        .state_changed(move |_stream, data, old, new| {
            tracing::info!(?old, ?new, "stream state");
            match new {
                pw::stream::StreamState::Streaming => {
                    data.streamed = true;
                    let _ = data.events.send(PwEvent::Streaming);
                }
                pw::stream::StreamState::Error(msg) => {
                    let _ = data.events.send(PwEvent::Lost(msg));
                    if let Some(l) = quit_on_end.upgrade() {
                        l.quit();
                    }
                }
                pw::stream::StreamState::Unconnected if data.streamed => {
                    let _ = data
                        .events
                        .send(PwEvent::Lost("the compositor closed the stream".into()));
                    if let Some(l) = quit_on_end.upgrade() {
                        l.quit();
                    }
                }
                _ => {}
            }
        })
        .param_changed(|stream, data, id, param| {
            if id != ParamType::Format.as_raw() {
                return;
            }
            let Some(param) = param else { return };
            on_format(stream, data, param);
        })
        .remove_buffer(|_stream, data, buffer| {
            if let Some(gpu) = data.gpu.as_mut() {
                gpu.forget(buffer as u64);
            }
        })
        .process(on_process)
        .register()
        .map_err(|e| e.to_string())?;

    let mut pods = pods(&enum_formats);
    stream
        .connect(
            spa::utils::Direction::Input,
            Some(node_id),
            pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
            &mut pods,
        )
        .map_err(|e| format!("cannot connect to node {node_id}: {e}"))?;

    let quit = mainloop.downgrade();
    let stream_for_cmd = stream.clone();
    let _commands = commands.attach(mainloop.loop_(), move |cmd| match cmd {
        PwCommand::Stop => {
            let _ = stream_for_cmd.disconnect();
            if let Some(l) = quit.upgrade() {
                l.quit();
            }
        }
    });

    mainloop.run();
    Ok(())
}

/// Whether the PipeWire library negotiates the SyncTimeline meta (1.2 and later).
fn pipewire_has_sync_timeline() -> bool {
    // SAFETY: returns a static NUL-terminated version string owned by libpipewire.
    let v = unsafe { std::ffi::CStr::from_ptr(pw::sys::pw_get_library_version()) };
    let mut parts = v
        .to_str()
        .unwrap_or("0")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let ok = (major, minor) >= (1, 2);
    if !ok {
        tracing::info!(version = %v.to_string_lossy(), "PipeWire older than 1.2: no explicit sync");
    }
    ok
}

/// Borrows pod bytes as `&Pod`s for `connect`/`update_params`.
fn pods(bytes: &[Vec<u8>]) -> Vec<&Pod> {
    bytes
        .iter()
        .map(|b| Pod::from_bytes(b).expect("our serializer writes valid pods"))
        .collect()
}

fn on_format(stream: &pw::stream::Stream, data: &mut StreamData, param: &Pod) {
    let mut info = VideoInfoRaw::default();
    if let Err(e) = info.parse(param) {
        tracing::warn!(error = ?e, "unparsable format");
        return;
    }
    let flags = info.flags();
    if flags.contains(VideoFlags::MODIFIER_FIXATION_REQUIRED) {
        // The producer still has to pick one modifier of the list and will send the fixed
        // format again; buffers are negotiated then.
        tracing::debug!("format with an unfixed modifier; waiting for the producer to fixate");
        return;
    }
    let modifier = flags
        .contains(VideoFlags::MODIFIER)
        .then(|| info.modifier());
    let size = info.size();
    let (width, height) = (size.width, size.height);
    let negotiated = match data.negotiator.on_format(info.format(), modifier) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "the producer chose a format we did not offer");
            return;
        }
    };
    let (format, path, dmabuf) = match negotiated {
        Negotiation::Dmabuf { .. } => {
            let gpu = data
                .gpu
                .as_mut()
                .expect("DMA-BUF is only offered with a GPU");
            match gpu.configure(width, height) {
                Ok(path) => {
                    if let Some((bridge, releaser)) = gpu.take_bridge() {
                        data.sink.configure_gpu(bridge, releaser);
                    }
                    (PixelFormat::Nv12, path, true)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot set up the GPU converter");
                    renegotiate(stream, data, e.fallback());
                    return;
                }
            }
        }
        Negotiation::Shm { format } => {
            if data.negotiator.offers_dmabuf() {
                tracing::info!(
                    "producer chose SHM although DMA-BUF was offered: no format/modifier in common"
                );
            }
            let f = params::pixel_format(format).expect("negotiator checked the format");
            (f, CapturePath::ShmCpu, false)
        }
        Negotiation::Offered => unreachable!("on_format never returns Offered"),
    };
    tracing::info!(
        format = ?info.format(),
        width,
        height,
        framerate = format_args!("{}/{}", info.framerate().num, info.framerate().denom),
        max_framerate = format_args!(
            "{}/{}",
            info.max_framerate().num,
            info.max_framerate().denom
        ),
        modifier = ?modifier.map(zerocast_interop::Modifier),
        %path,
        renegotiations = data.negotiator.renegotiations(),
        "negotiated format"
    );
    data.format = Some((format, width, height));
    data.sink.configure(width, height);
    let _ = data.events.send(PwEvent::Format {
        width,
        height,
        format,
        path,
    });
    let sync = dmabuf && data.sync_allowed;
    if sync {
        tracing::info!("offering explicit sync (SyncTimeline) with the DMA-BUF buffers");
    }
    let bytes = params::after_format(dmabuf, false, sync);
    if let Err(e) = stream.update_params(&mut pods(&bytes)) {
        tracing::warn!(error = %e, "update_params failed");
    }
}

/// Takes the recovery an interop error asks for; renegotiates when it means a new offer.
fn renegotiate(stream: &pw::stream::Stream, data: &mut StreamData, fallback: Fallback) {
    let Some(enum_formats) = data.negotiator.on_import_failure(fallback) else {
        return;
    };
    tracing::info!(
        ?fallback,
        dmabuf = data.negotiator.offers_dmabuf(),
        renegotiation = data.negotiator.renegotiations(),
        "renegotiating"
    );
    if let Err(e) = stream.update_params(&mut pods(&enum_formats)) {
        tracing::warn!(error = %e, "update_params (renegotiation) failed");
    }
}

fn on_process(stream: &pw::stream::Stream, data: &mut StreamData) {
    match data.negotiator.state() {
        Negotiation::Shm { .. } => on_process_shm(stream, data),
        Negotiation::Dmabuf { format, modifier } => {
            on_process_dmabuf(stream, data, format, modifier)
        }
        // Buffers of a format being replaced: give them straight back (Buffer requeues on drop).
        Negotiation::Offered => while stream.dequeue_buffer().is_some() {},
    }
}

fn on_process_shm(stream: &pw::stream::Stream, data: &mut StreamData) {
    // Drain to the newest buffer: older ones are stale frames we could only drop anyway.
    let mut newest = None;
    while let Some(buffer) = stream.dequeue_buffer() {
        if newest.is_some() {
            data.sink
                .counters
                .skipped_stale
                .fetch_add(1, Ordering::Relaxed);
        }
        newest = Some(buffer);
    }
    let Some(mut buffer) = newest else { return };
    let Some((format, width, height)) = data.format else {
        return;
    };
    let header = buffer
        .find_meta::<MetaHeader>()
        .map(|h| (h.flags(), h.pts()));
    // Window casts (GNOME, KDE) send buffers sized for the largest window and say which part
    // holds the window in the crop region; recording the whole buffer would add garbage borders.
    let crop = buffer
        .find_meta::<MetaVideoCrop>()
        .map(|c| c.meta_region().clone())
        .filter(|r| r.is_valid())
        .map(|r| (r.position(), r.size()));
    if let Some((flags, _)) = header {
        if flags.contains(MetaHeaderFlags::CORRUPTED) {
            return;
        }
    }
    let datas = buffer.datas_mut();
    let Some(d) = datas.first_mut() else { return };
    let chunk = d.chunk();
    let (offset, size, stride) = (
        chunk.offset() as usize,
        chunk.size() as usize,
        chunk.stride(),
    );
    if size == 0 || chunk.flags().contains(spa::buffer::ChunkFlags::CORRUPTED) {
        return;
    }
    // xdpw can send one stamp-less buffer (pts 0) while starting; it is not a real frame.
    let pts_ns = match header {
        Some((_, pts)) if pts > 0 => pts,
        Some(_) => return,
        None => monotonic_ns(),
    };
    let stride = if stride > 0 {
        stride as usize
    } else {
        width as usize * format.bytes_per_pixel()
    };
    let Some(bytes) = d.data() else { return };
    let needed = stride * (height as usize - 1) + width as usize * format.bytes_per_pixel();
    if bytes.len() < offset + needed {
        tracing::warn!(len = bytes.len(), offset, needed, "short buffer skipped");
        return;
    }
    let (x, y, width, height) = crop_rect(crop, width, height);
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

/// The part of a `width`×`height` frame to record: the crop region when it is valid and inside
/// the frame, else the whole frame.
fn crop_rect(
    crop: Option<(spa::utils::Point, spa::utils::Rectangle)>,
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

/// Memory planes a modifier may have (e.g. a colour plane plus CCS planes).
const MAX_PLANES: usize = 4;

/// One memory plane of a DMA-BUF buffer: fd, offset and stride from its `spa_data`/chunk.
#[derive(Clone, Copy, Default)]
struct RawPlane {
    fd: RawFd,
    offset: u32,
    stride: i32,
}

/// What the DMA-BUF path needs from a `spa_buffer`.
struct RawDmabuf {
    planes: [RawPlane; MAX_PLANES],
    n_planes: usize,
    corrupted: bool,
    /// Header PTS, if the buffer has a header.
    pts: Option<i64>,
    /// `maxsize` of plane 0: the allocation size for OPAQUE_FD test buffers.
    maxsize: u32,
    /// VideoCrop region (x, y, w, h), if the buffer has one.
    crop: Option<(spa::utils::Point, spa::utils::Rectangle)>,
    /// Explicit sync: (acquire fd, release fd, acquire point, release point).
    sync: Option<(RawFd, RawFd, u64, u64)>,
}

impl RawDmabuf {
    /// The explicit-sync description, borrowing the buffer's fds.
    ///
    /// # Safety
    /// The buffer this was read from is still dequeued (its fds are open).
    unsafe fn sync(&self) -> Option<RawSync<'_>> {
        self.sync.map(|(a, r, ap, rp)| RawSync {
            // SAFETY: per the caller's contract the fds stay open while we use them.
            acquire_fd: unsafe { BorrowedFd::borrow_raw(a) },
            // SAFETY: as above.
            release_fd: unsafe { BorrowedFd::borrow_raw(r) },
            acquire_point: ap,
            release_point: rp,
        })
    }
}

/// Dequeues every ready buffer, queues all but the newest straight back (after `on_skip` saw
/// it: explicit sync must release it), returns the newest.
///
/// # Safety
/// Must run on the loop thread of `stream`; the returned buffer must be queued back with
/// `queue_raw_buffer` on the same stream.
unsafe fn newest_raw(
    stream: &pw::stream::Stream,
    skipped: &AtomicU64,
    mut on_skip: impl FnMut(*mut pw::sys::pw_buffer),
) -> *mut pw::sys::pw_buffer {
    let mut newest = std::ptr::null_mut();
    loop {
        // SAFETY: the caller runs on the loop thread; a null return ends the drain.
        let b = unsafe { stream.dequeue_raw_buffer() };
        if b.is_null() {
            return newest;
        }
        if !newest.is_null() {
            skipped.fetch_add(1, Ordering::Relaxed);
            on_skip(newest);
            // SAFETY: `newest` was dequeued from this stream and is not used afterwards.
            unsafe { stream.queue_raw_buffer(newest) };
        }
        newest = b;
    }
}

/// Reads plane 0 and the header of a dequeued buffer.
///
/// # Safety
/// `b` is a buffer dequeued from a live stream and not yet queued back.
unsafe fn read_dmabuf(b: *mut pw::sys::pw_buffer) -> Option<RawDmabuf> {
    // SAFETY: PipeWire keeps the pw_buffer, its spa_buffer, metas, datas and chunks valid while
    // the buffer is dequeued (caller contract); every array is indexed within its n_* count.
    unsafe {
        let sb = (*b).buffer;
        if sb.is_null() || (*sb).n_datas == 0 {
            return None;
        }
        let mut pts = None;
        let mut corrupted = false;
        let mut crop = None;
        let mut points = None;
        for i in 0..(*sb).n_metas as usize {
            let m = &*(*sb).metas.add(i);
            if m.type_ == spa::sys::SPA_META_Header
                && m.size as usize >= std::mem::size_of::<spa::sys::spa_meta_header>()
            {
                let h = &*(m.data as *const spa::sys::spa_meta_header);
                pts = Some(h.pts);
                corrupted |= h.flags & spa::sys::SPA_META_HEADER_FLAG_CORRUPTED != 0;
            }
            if m.type_ == spa::sys::SPA_META_SyncTimeline
                && m.size as usize >= std::mem::size_of::<spa::sys::spa_meta_sync_timeline>()
            {
                let t = &*(m.data as *const spa::sys::spa_meta_sync_timeline);
                points = Some((t.acquire_point, t.release_point));
            }
            if m.type_ == spa::sys::SPA_META_VideoCrop
                && m.size as usize >= std::mem::size_of::<spa::sys::spa_meta_region>()
            {
                let r = &(*(m.data as *const spa::sys::spa_meta_region)).region;
                crop = Some((
                    spa::utils::Point {
                        x: r.position.x,
                        y: r.position.y,
                    },
                    spa::utils::Rectangle {
                        width: r.size.width,
                        height: r.size.height,
                    },
                ));
            }
        }
        let n_datas = (*sb).n_datas as usize;
        // With explicit sync the two SyncObj datas (acquire, release) follow the planes.
        let data_type = |i: usize| (*(*sb).datas.add(i)).type_;
        let sync = match points {
            Some((ap, rp))
                if n_datas >= 3
                    && data_type(n_datas - 2) == spa::sys::SPA_DATA_SyncObj
                    && data_type(n_datas - 1) == spa::sys::SPA_DATA_SyncObj =>
            {
                let fd = |i: usize| (*(*sb).datas.add(i)).fd as RawFd;
                Some((fd(n_datas - 2), fd(n_datas - 1), ap, rp))
            }
            _ => None,
        };
        let n = (n_datas - if sync.is_some() { 2 } else { 0 }).min(MAX_PLANES);
        let mut raw = RawDmabuf {
            planes: [RawPlane::default(); MAX_PLANES],
            n_planes: n,
            corrupted,
            pts,
            maxsize: (*(*sb).datas).maxsize,
            crop,
            sync,
        };
        for (i, plane) in raw.planes.iter_mut().enumerate().take(n) {
            let d = &*(*sb).datas.add(i);
            if d.type_ != spa::sys::SPA_DATA_DmaBuf || d.fd < 0 || d.chunk.is_null() {
                return None;
            }
            let c = &*d.chunk;
            raw.corrupted |= c.flags & spa::sys::SPA_CHUNK_FLAG_CORRUPTED as i32 != 0;
            *plane = RawPlane {
                fd: d.fd as RawFd,
                offset: c.offset,
                stride: c.stride,
            };
        }
        Some(raw)
    }
}

fn on_process_dmabuf(
    stream: &pw::stream::Stream,
    data: &mut StreamData,
    format: VideoFormat,
    modifier: zerocast_interop::Modifier,
) {
    // Cloned (one atomic increment, no allocation) so the skip callback may borrow `data`.
    let counters = std::sync::Arc::clone(&data.sink.counters);
    // SAFETY: process runs on the loop thread; every buffer is queued back on every path. The
    // callback gets each skipped buffer while it is still dequeued.
    let b = unsafe {
        newest_raw(stream, &counters.skipped_stale, |old| {
            // SAFETY: `old` is still dequeued while the callback runs.
            if let Some(raw) = read_dmabuf(old) {
                release_unread(stream, data, old as u64, &raw);
            }
        })
    };
    if b.is_null() {
        return;
    }
    // SAFETY: `b` is dequeued until queued back below.
    let raw = unsafe { read_dmabuf(b) };
    let gpu_releases = match &raw {
        Some(raw) => process_dmabuf(stream, data, b, raw, format, modifier),
        None => false,
    };
    if let (false, Some(raw)) = (gpu_releases, &raw) {
        // SAFETY: `b` is still dequeued.
        unsafe { release_unread(stream, data, b as u64, raw) };
    }
    // Safe to give back: `process_dmabuf` returns only after the GPU finished reading `b`
    // (host read-back or a wait for the frame's timeline value), after a submission that signals
    // the buffer's release point (explicit sync), or without having used it.
    // SAFETY: `b` came from `newest_raw` on this stream and is queued exactly once.
    unsafe { stream.queue_raw_buffer(b) };
}

/// Explicit sync: a buffer given back without a GPU read still gets its release point, or the
/// compositor would wait for it forever. A compositor whose timelines cannot be imported gets
/// buffers without explicit sync from now on (renegotiated once).
///
/// # Safety
/// The buffer `raw` was read from is still dequeued (its fds are open).
unsafe fn release_unread(
    stream: &pw::stream::Stream,
    data: &mut StreamData,
    id: u64,
    raw: &RawDmabuf,
) {
    // SAFETY: per the caller's contract.
    let Some(sync) = (unsafe { raw.sync() }) else {
        return;
    };
    let Some(gpu) = data.gpu.as_mut() else { return };
    if let Err(e) = gpu.release_unread(id, &sync) {
        sync_failed(stream, data, &e);
    }
}

fn sync_failed(
    stream: &pw::stream::Stream,
    data: &mut StreamData,
    e: &zerocast_interop::InteropError,
) {
    if !data.sync_allowed {
        return;
    }
    data.sync_allowed = false;
    tracing::warn!(error = %e, "cannot use the compositor's sync timelines; renegotiating buffers without explicit sync");
    if let Err(e) = stream.update_params(&mut pods(&params::after_format(true, false, false))) {
        tracing::warn!(error = %e, "update_params (no explicit sync) failed");
    }
}

/// Imports and converts the dequeued buffer `b`. Returns whether a GPU submission will signal
/// the buffer's explicit-sync release point (else the caller signals it from the CPU).
fn process_dmabuf(
    stream: &pw::stream::Stream,
    data: &mut StreamData,
    b: *mut pw::sys::pw_buffer,
    raw: &RawDmabuf,
    format: VideoFormat,
    modifier: zerocast_interop::Modifier,
) -> bool {
    let Some((_, width, height)) = data.format else {
        return false;
    };
    if raw.corrupted {
        return false;
    }
    let pts_ns = match raw.pts {
        Some(pts) if pts > 0 => pts,
        Some(_) => return false,
        None => monotonic_ns(),
    };
    let Some(fourcc) = params::drm_fourcc(format) else {
        return false;
    };
    // Ask before converting: a paused or fps-capped frame costs no GPU work.
    let Some(pts) = data.sink.admit_pts(pts_ns, monotonic_ns()) else {
        return false;
    };
    // SAFETY: `b` is dequeued, so the sync fds are open.
    let sync = unsafe { raw.sync() };
    if let Some(s) = &sync {
        let gpu = data
            .gpu
            .as_mut()
            .expect("DMA-BUF is only negotiated with a GPU");
        if let Err(e) = gpu.import_sync(b as u64, s) {
            sync_failed(stream, data, &e);
            return false;
        }
    }
    // An array, not a Vec: the per-frame path does not allocate. Entries past `n_planes`
    // repeat plane 0 and are not passed on.
    let planes: [DmabufPlane<'_>; MAX_PLANES] = std::array::from_fn(|i| {
        let p = raw.planes[if i < raw.n_planes { i } else { 0 }];
        DmabufPlane {
            // SAFETY: the fd belongs to the dequeued buffer and stays open while it is
            // dequeued; the importer dups it when it keeps it.
            fd: unsafe { BorrowedFd::borrow_raw(p.fd) },
            offset: p.offset,
            // Some producers leave the stride 0 for LINEAR; the tightest packing is implied.
            stride: if p.stride > 0 {
                p.stride as u32
            } else {
                width * 4
            },
        }
    });
    let gpu = data
        .gpu
        .as_mut()
        .expect("DMA-BUF is only negotiated with a GPU");
    let desc = DmabufDesc {
        width,
        height,
        fourcc,
        modifier,
        planes: &planes[..raw.n_planes],
        memory_size: gpu.wants_memory_size().then_some(raw.maxsize as u64),
    };
    // The host path reads back into a pooled buffer: take it first, so a busy encoder costs
    // no GPU work. CUDA frames stay in the converter's slots.
    let mut host = None;
    if !gpu.bridge_in_use() {
        match data.sink.pool.try_take() {
            Some(mut f) => {
                f.pts = pts;
                host = Some(f);
            }
            None => {
                data.sink.dropped();
                return false;
            }
        }
    }
    let (x, y, w, h) = crop_rect(raw.crop, width, height);
    let region = zerocast_interop::Region {
        x,
        y,
        width: w,
        height: h,
    };
    match gpu.size_for_first_frame(region) {
        Ok(Some(r)) => data.sink.reconfigure_gpu(r.bridge, r.releaser, r.old),
        Ok(None) => {}
        // Still recordable: the region is scaled to the stream's size.
        Err(e) => tracing::warn!(error = %e, "cannot resize the GPU output for the crop region"),
    }
    let result = gpu.convert(b as u64, &desc, region, sync.as_ref(), |bytes, layout| {
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
fn fill_nv12(frame: &mut CpuFrame, bytes: &[u8], layout: &zerocast_interop::FrameLayout) {
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

/// CLOCK_MONOTONIC in nanoseconds — the clock compositors stamp PipeWire buffers with.
pub(crate) fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
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
