//! The PipeWire thread: owns the main loop, context, core and stream (all `!Send`), negotiates
//! the format and turns buffers into frames for the encoder thread.
//!
//! Talks to the rest only through channels: commands arrive on a `pipewire::channel`, events
//! leave on a tokio channel, frames through the [`FrameSink`].
//!
//! | file | does |
//! |---|---|
//! | `stream.rs` | the loop, core, registry and stream; format negotiation; `process` dispatch |
//! | `negotiate.rs`, `params.rs` | the offer (pods) and its state machine, renegotiation |
//! | `buffer.rs` | the dequeued-buffer guard (queued back on drop) and the one metadata reader |
//! | `shm.rs` | SHM buffers → the frame sink (converted on this thread) |
//! | `dmabuf.rs` | DMA-BUF buffers → `gpu.rs` (Vulkan import, convert, CUDA) → the frame sink |

mod buffer;
pub(crate) use crate::clock::monotonic_ns;
pub(crate) use buffer::UserCrop;
mod dmabuf;
mod gpu;
mod negotiate;
pub mod params;
mod readmap;
mod shm;
mod stream;

use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;

use pipewire as pw;
use tokio::sync::mpsc::UnboundedSender;

use crate::frame::PixelFormat;
use crate::sink::FrameSink;
use crate::CapturePath;

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

/// Why the capture could not start (`RecorderError::PipeWire`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PwError {
    /// The fd could not be duplicated or the thread not spawned.
    #[error("cannot start PipeWire thread: {0}")]
    Thread(#[source] crate::Cause<std::io::Error>),
    /// The control task that waits for the stream ended without an answer (it panicked). Named
    /// here since its message has always read `PipeWire: …`.
    #[error("recording task ended unexpectedly")]
    TaskEnded,
}

/// Handle to a running PipeWire thread.
/// What part of the frames is recorded, and at what size.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Geometry {
    /// `--region`; `None`: the frame's own crop region (window casts) or all of it.
    pub crop: Option<UserCrop>,
    pub output: crate::OutputSize,
}

impl Geometry {
    /// The part of a `width`×`height` frame to record: the user's region, else the frame's own
    /// crop region (a window cast), else all of it.
    fn region(&self, meta: &buffer::FrameMeta, width: u32, height: u32) -> (u32, u32, u32, u32) {
        match &self.crop {
            Some(c) => c.pixels(width, height),
            None => meta.region(width, height),
        }
    }
}

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
        geometry: Geometry,
        events: UnboundedSender<PwEvent>,
        span: tracing::Span,
    ) -> std::io::Result<PwThread> {
        let fd = fd.as_fd().try_clone_to_owned()?;
        let (tx, rx) = pw::channel::channel();
        let join = std::thread::Builder::new()
            .name("zerocast-pipewire".into())
            .spawn(move || {
                let _enter = span.enter();
                if let Err(e) = stream::run(fd, node_id, sink, geometry, events.clone(), rx) {
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
