//! zerocast recorder: consumes a PipeWire screen-cast stream and writes a video file.
//!
//! Threads (see docs/ARCHITECTURE.md):
//! - the PipeWire thread owns every PipeWire object (`pw` module) and talks to the rest through
//!   channels; frames leave through the `FrameSink` (`sink` module);
//! - the encoder thread owns FFmpeg (`encode::worker`, the encoders and muxer in `encode`);
//! - [`Recording`] is the async handle the CLI and the D-Bus service hold.

pub mod audio;
mod cause;
mod clock;
mod drop_order;
pub mod encode;
pub mod frame;
pub mod options;
mod pw;
mod recording;
mod sink;
mod stats;
mod wayland;

pub use cause::Cause;
pub use encode::EncodeError;
pub use options::{
    Codec, CodecNotInContainer, Container, EncoderChoice, OptionError, OutputSize,
    ParseOptionError, RateControl, RecordingOptions, Region,
};
pub use pw::PwError;
pub use recording::{PipeWireSource, Recording, RecordingId, RecordingMode};
pub use stats::{CapturePath, EndReason, RecordingState, Stats, Summary};

use std::path::PathBuf;

/// Why a recording could not start or did not finish cleanly.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecorderError {
    #[error("no encoder for {codec}: {reason}")]
    EncoderUnavailable { codec: Codec, reason: String },
    #[error("cannot write {path}: {source}")]
    OutputNotWritable {
        path: PathBuf,
        #[source]
        source: encode::OutputCause,
    },
    #[error("out of disk space writing {path}; everything recorded until then is kept there")]
    OutOfDiskSpace { path: PathBuf },
    #[error("the screen-cast stream was lost: {0}")]
    StreamLost(String),
    #[error("PipeWire: {0}")]
    PipeWire(#[from] PwError),
    #[error("encoder: {0}")]
    Encode(#[from] EncodeError),
    #[error("the recording is not running (state {0})")]
    NotRecording(RecordingState),
    #[error("invalid option: {0}")]
    InvalidOption(#[from] OptionError),
    #[error("audio: {0}")]
    Audio(#[from] audio::AudioError),
    #[error("this recording is not a replay (start it with the replay option)")]
    NotReplay,
    /// SaveReplay/Keep before the replay's ring holds a complete frame (right after the start).
    #[error("the replay holds no complete frame yet")]
    ReplayEmpty,
}
