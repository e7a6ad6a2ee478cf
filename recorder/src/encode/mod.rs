//! FFmpeg encoder + muxer. Runs on the encoder thread only.
//!
//! CONTRACT (implemented by the encode work item):
//! - `Encoder::open(&EncoderConfig)` opens the software encoder for the codec (libx264 default,
//!   libx265, libsvtav1/libaom-av1, libvpx-vp9), and the muxer (mkv; mp4 fragmented; webm), and
//!   writes the header. Errors map to `RecorderError::{EncoderUnavailable, OutputNotWritable, ..}`.
//! - `push(&mut self, &CpuFrame)` converts (swscale, context cached per input format/size) into
//!   a reused YUV420P/NV12 frame and encodes it at `frame.pts` (µs time base, VFR).
//! - `finish(self, end: Duration)` makes the file last until `end` (repeats the last frame at
//!   `end` when the screen was static), flushes the encoder, writes the trailer.
//! - `bytes_written()` and `name()` for stats.
//! - `available_encoders(codec)` lists encoder names present in this FFmpeg build.

use std::path::PathBuf;
use std::time::Duration;

use crate::frame::CpuFrame;
use crate::{Codec, Container, EncoderChoice, RateControl, RecorderError};

/// Everything needed to open the output.
#[derive(Debug, Clone)]
pub struct EncoderConfig {
    pub path: PathBuf,
    pub container: Container,
    pub codec: Codec,
    pub encoder: EncoderChoice,
    pub rate: RateControl,
    pub keyint: u32,
    /// Output size (the negotiated stream size); frames of another size are scaled to it.
    pub width: u32,
    pub height: u32,
}

/// An open encoder + muxer writing one file.
pub struct Encoder {
    _private: (),
}

impl Encoder {
    pub fn open(cfg: &EncoderConfig) -> Result<Encoder, RecorderError> {
        Err(RecorderError::EncoderUnavailable {
            codec: cfg.codec,
            reason: "not implemented yet".into(),
        })
    }

    pub fn push(&mut self, _frame: &CpuFrame) -> Result<(), RecorderError> {
        unimplemented!()
    }

    pub fn finish(self, _end: Duration) -> Result<u64, RecorderError> {
        unimplemented!()
    }

    pub fn bytes_written(&self) -> u64 {
        0
    }

    pub fn name(&self) -> &str {
        ""
    }
}

/// Encoder names present in this FFmpeg build for `codec` (software first).
pub fn available_encoders(_codec: Codec) -> Vec<&'static str> {
    Vec::new()
}

/// Checks, before anything is started, that `codec` can be encoded with `choice` into
/// `container`; returns the encoder name. Errors list what is available.
pub fn check_encoder(
    codec: Codec,
    choice: EncoderChoice,
    container: Container,
) -> Result<&'static str, RecorderError> {
    let _ = (choice, container);
    available_encoders(codec)
        .first()
        .copied()
        .ok_or_else(|| RecorderError::EncoderUnavailable {
            codec,
            reason: "not implemented yet".into(),
        })
}
