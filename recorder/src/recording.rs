//! The async handle to one recording: owns the PipeWire and encoder threads through channels.

use std::os::fd::OwnedFd;
use std::path::Path;

use tokio::sync::watch;

use crate::{RecorderError, RecordingOptions, Stats, Summary};

/// Where frames come from: the portal's PipeWire remote and the stream's node.
#[derive(Debug)]
pub struct PipeWireSource {
    /// Remote from `OpenPipeWireRemote` (dup'ed internally; the caller may close its copy).
    pub fd: OwnedFd,
    pub node_id: u32,
    /// Size the portal announced, if any (the negotiated size wins).
    pub size: Option<(u32, u32)>,
}

/// Process-unique id of a recording; carried by tracing spans and D-Bus object paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId(pub u64);

impl std::fmt::Display for RecordingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A running (or ended) recording. `Send + Sync`; share it in an `Arc`.
pub struct Recording {
    id: RecordingId,
    opts: RecordingOptions,
    stats: watch::Receiver<Stats>,
}

impl Recording {
    /// Connects to the stream, negotiates, opens the encoder and returns once the first frame
    /// has been received (or fails with a named error).
    pub async fn start(
        _source: PipeWireSource,
        _opts: RecordingOptions,
    ) -> Result<Recording, RecorderError> {
        Err(RecorderError::PipeWire("not implemented yet".into()))
    }

    pub fn id(&self) -> RecordingId {
        self.id
    }

    pub fn options(&self) -> &RecordingOptions {
        &self.opts
    }

    pub fn path(&self) -> &Path {
        &self.opts.path
    }

    /// Live figures; changes at most a few times per second plus every state change.
    pub fn stats(&self) -> watch::Receiver<Stats> {
        self.stats.clone()
    }

    /// Stops adding frames; the paused time is absent from the file.
    pub fn pause(&self) -> Result<(), RecorderError> {
        Err(RecorderError::PipeWire("not implemented yet".into()))
    }

    pub fn resume(&self) -> Result<(), RecorderError> {
        Err(RecorderError::PipeWire("not implemented yet".into()))
    }

    /// Stops and finalizes the file; returns after the trailer is written. Calling it on an
    /// ended recording returns `NotRecording`.
    pub async fn stop(&self) -> Result<Summary, RecorderError> {
        Err(RecorderError::PipeWire("not implemented yet".into()))
    }

    /// Resolves when the recording ends for any reason (stop, `duration`, stream lost).
    pub async fn finished(&self) -> Result<Summary, RecorderError> {
        Err(RecorderError::PipeWire("not implemented yet".into()))
    }
}
