//! The PipeWire thread: owns the main loop, context, core and stream (all `!Send`), negotiates
//! the format and turns buffers into [`CpuFrame`]s for the encoder thread.
//!
//! Talks to the rest only through channels: commands arrive on a `pipewire::channel`, events and
//! frames leave on a tokio channel and the frame sink.

pub mod params;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use pipewire as pw;
use pw::spa;
use spa::buffer::meta::{MetaHeader, MetaHeaderFlags};
use spa::param::video::VideoInfoRaw;
use spa::param::ParamType;
use spa::pod::Pod;
use tokio::sync::mpsc::UnboundedSender;

use crate::frame::PixelFormat;
use crate::sink::FrameSink;

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
        .process(on_process)
        .register()
        .map_err(|e| e.to_string())?;

    let enum_format = params::shm_enum_format();
    let mut pods = [Pod::from_bytes(&enum_format).expect("valid pod")];
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

fn on_format(stream: &pw::stream::Stream, data: &mut StreamData, param: &Pod) {
    let mut info = VideoInfoRaw::default();
    if let Err(e) = info.parse(param) {
        tracing::warn!(error = ?e, "unparsable format");
        return;
    }
    let size = info.size();
    let Some(format) = params::pixel_format(info.format()) else {
        tracing::warn!(format = ?info.format(), "compositor chose a format we did not offer");
        return;
    };
    tracing::info!(
        ?format,
        width = size.width,
        height = size.height,
        framerate = format_args!("{}/{}", info.framerate().num, info.framerate().denom),
        max_framerate = format_args!(
            "{}/{}",
            info.max_framerate().num,
            info.max_framerate().denom
        ),
        modifier = info.modifier(),
        "negotiated format"
    );
    data.format = Some((format, size.width, size.height));
    data.sink.configure(size.width, size.height);
    let _ = data.events.send(PwEvent::Format {
        width: size.width,
        height: size.height,
        format,
    });
    let buffers = params::shm_buffers();
    let meta = params::header_meta();
    let mut pods = [
        Pod::from_bytes(&buffers).expect("valid pod"),
        Pod::from_bytes(&meta).expect("valid pod"),
    ];
    if let Err(e) = stream.update_params(&mut pods) {
        tracing::warn!(error = %e, "update_params failed");
    }
}

fn on_process(stream: &pw::stream::Stream, data: &mut StreamData) {
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
