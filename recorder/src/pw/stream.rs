//! The PipeWire thread's body: the main loop, the core (connected to the portal's remote), the
//! registry (to notice the cast's node going away) and the stream with its listeners. Format
//! negotiation happens here; each `process` call is handed to the capture path of the
//! negotiated format ([`super::shm`] or [`super::dmabuf`]).

use std::os::fd::OwnedFd;

use pipewire as pw;
use pw::spa;
use spa::param::video::{VideoFlags, VideoInfoRaw};
use spa::param::ParamType;
use spa::pod::Pod;
use tokio::sync::mpsc::UnboundedSender;

use super::buffer::Dequeued;
use super::gpu::{self, Gpu};
use super::negotiate::{Negotiation, Negotiator};
use super::readmap::ReadMaps;
use super::{dmabuf, params, shm, PwCommand, PwEvent};
use crate::encode::msg::BridgeMemory;
use crate::frame::PixelFormat;
use crate::sink::FrameSink;
use crate::CapturePath;
use zerocast_interop::Fallback;

/// What the stream's callbacks share (the listener's user data).
pub(super) struct StreamData {
    pub(super) sink: FrameSink,
    pub(super) events: UnboundedSender<PwEvent>,
    pub(super) format: Option<(PixelFormat, u32, u32)>,
    pub(super) streamed: bool,
    pub(super) negotiator: Negotiator,
    /// `None`: no usable Vulkan dma-buf import here; SHM only.
    pub(super) gpu: Option<Gpu>,
    /// Explicit sync is offered with DMA-BUF buffers (turned off for the stream when the
    /// compositor's timelines cannot be imported).
    pub(super) sync_allowed: bool,
    /// Our read-only mappings of SHM buffers that came without READABLE (`readmap`).
    pub(super) read_maps: ReadMaps,
    /// The "not readable" warning was given (once per stream, not per frame).
    pub(super) unreadable_warned: bool,
    pub(super) geometry: super::Geometry,
    /// Buffers the producer allocated for the stream (logged: too few starve the producer,
    /// see `params::MIN_BUFFERS`).
    pub(super) buffers: u32,
}

impl Drop for StreamData {
    fn drop(&mut self) {
        // The encoder thread may still be encoding from CUDA mappings of the converter's slots:
        // it drops the converter after its last frame. Blocking send: the encoder drains its
        // queue until it is told to finish, which happens only after this thread has ended.
        if let Some(gpu) = self.gpu.take() {
            if gpu.bridge_handed_over() {
                self.sink.retire(BridgeMemory::new(Box::new(gpu)));
            }
        }
    }
}

pub(super) fn run(
    fd: OwnedFd,
    node_id: u32,
    sink: FrameSink,
    geometry: super::Geometry,
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
        read_maps: ReadMaps::default(),
        unreadable_warned: false,
        geometry,
        buffers: 0,
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
        .add_buffer(|_stream, data, _buffer| {
            data.buffers += 1;
            tracing::debug!(buffers = data.buffers, "buffer added");
        })
        .remove_buffer(|_stream, data, buffer| {
            data.buffers = data.buffers.saturating_sub(1);
            data.read_maps.forget(buffer as u64);
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
pub(super) fn renegotiate(stream: &pw::stream::Stream, data: &mut StreamData, fallback: Fallback) {
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
        Negotiation::Shm { .. } => shm::process(stream, data),
        Negotiation::Dmabuf { format, modifier } => dmabuf::process(stream, data, format, modifier),
        // Buffers of a format being replaced: give them straight back (queued back on drop).
        Negotiation::Offered => while Dequeued::next(stream).is_some() {},
    }
}

pub(super) fn sync_failed(
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
