//! [`EncodeError`]: what went wrong in the encoder thread's FFmpeg and CUDA work, one variant
//! per failure with its typed cause as `source()`.
//!
//! Every message reads as the string the recorder built here before (they reach users as
//! `RecorderError::Encode`'s `encoder: …`, the D-Bus `Failed` message and the log), so each
//! variant's `Display` names its cause too; the CLI's one-line chain (`zerocast_app::report`)
//! shows a cause whose text is already there once.

use std::path::PathBuf;

use crate::cause::Cause;
use crate::frame::PixelFormat;
use crate::Container;

/// One failure of encoding or writing, `Clone` like [`crate::RecorderError`] that carries it
/// (non-`Clone` causes are shared through [`Cause`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EncodeError {
    /// An encoder call failed (`libx264: Invalid argument`).
    #[error("{encoder}: {source}")]
    Codec {
        encoder: &'static str,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// Another FFmpeg call failed; `what` names it (`frame buffer`, `av_hwframe_get_buffer`).
    #[error("{what}: {source}")]
    Ffmpeg {
        what: &'static str,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// The muxer could not write to the file (`writing the header /v/a.mkv: …`).
    #[error("{what} {}: {source}", path.display())]
    Write {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// Replay mode: the muxer context without a file could not be made.
    #[error("creating the {container:?} muxer: {source}")]
    Muxer {
        container: Container,
        #[source]
        source: ffmpeg_next::Error,
    },
    #[error("audio encoder {encoder}: not in this FFmpeg build")]
    AudioEncoderMissing { encoder: &'static str },
    #[error("audio encoder {encoder}: {source}")]
    AudioEncoderOpen {
        encoder: &'static str,
        #[source]
        source: ffmpeg_next::Error,
    },
    #[error("output size {width}x{height} is too small")]
    TooSmall { width: u32, height: u32 },
    #[error("empty frame {width}x{height}")]
    EmptyFrame { width: usize, height: usize },
    #[error("frame buffer too small: {width}x{height} {format:?} stride {stride} needs {needed} bytes, has {has}")]
    FrameTooSmall {
        width: usize,
        height: usize,
        format: PixelFormat,
        stride: usize,
        needed: usize,
        has: usize,
    },
    #[error("swscale cannot convert {from:?} {from_width}x{from_height} to {to:?} {to_width}x{to_height}")]
    Swscale {
        from: PixelFormat,
        from_width: u32,
        from_height: u32,
        to: ffmpeg_next::format::Pixel,
        to_width: u32,
        to_height: u32,
    },
    #[error("GPU frame {width}x{height} does not match the encoder's {encoder_width}x{encoder_height} NV12")]
    GpuFrameSize {
        width: u32,
        height: u32,
        encoder_width: u32,
        encoder_height: u32,
    },
    /// A pooled I420 frame could not be allocated (first use or a size change).
    #[error(transparent)]
    FrameAlloc(#[from] crate::frame::AllocError),
    #[error("encoder still holds the previous host frame")]
    HostFrameBusy,
    #[error("av_buffer_create failed")]
    BufferCreate,
    /// A CUDA call of the GPU encoder (copy, wait, release, pinned memory).
    #[error("{0}")]
    Cuda(#[source] Cause<zerocast_interop::InteropError>),
    #[error("CUDA stream: {0}")]
    CudaStream(#[source] Cause<zerocast_interop::InteropError>),
    #[error("encoder already finished")]
    AlreadyFinished,
    /// SaveReplay/Keep before the encoder opened.
    #[error("the replay holds no frame yet")]
    NoFrameYet,
    #[error("cannot start encoder thread: {0}")]
    Thread(#[source] Cause<std::io::Error>),
    /// The encoder thread's event channel closed before `Finished` (it panicked or quit).
    #[error("encoder thread ended early")]
    EndedEarly,
    #[error("encoder thread ended")]
    Ended,
    /// The recording's control task is gone without an outcome.
    #[error("recording task vanished")]
    TaskVanished,
    /// The encoder selection (which may load the NVENC driver) panicked on its blocking thread.
    #[error("encoder selection panicked: {0}")]
    SelectionPanicked(#[source] Cause<tokio::task::JoinError>),
}

impl EncodeError {
    /// A CUDA failure of the GPU encoder.
    pub(crate) fn cuda(e: zerocast_interop::InteropError) -> Self {
        EncodeError::Cuda(Cause::new(e))
    }

    /// A failed FFmpeg call that returned the negative error code `r`.
    pub(crate) fn ffmpeg(what: &'static str, r: i32) -> Self {
        EncodeError::Ffmpeg {
            what,
            source: ffmpeg_next::Error::from(r),
        }
    }
}

/// Why the output file could not be created or written (`RecorderError::OutputNotWritable`,
/// after the path's name: `cannot write /v/a.mkv: Permission denied`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutputCause {
    #[error(transparent)]
    Ffmpeg(#[from] ffmpeg_next::Error),
    #[error(transparent)]
    Io(Cause<std::io::Error>),
    /// The file was unlinked under the recorder (its folder removed, or it deleted): writing
    /// on would fill an inode nobody can reach and end with "saved" and no file.
    #[error("it was deleted while recording (was its folder removed?); what was recorded is lost with it")]
    Removed,
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::RecorderError;

    /// The messages read as the strings built here before (users, D-Bus `Failed` and the log
    /// see them), and the typed cause is still there under them.
    #[test]
    fn messages_unchanged_and_cause_kept() {
        let einval = ffmpeg_next::Error::from(-libc::EINVAL);
        let e = RecorderError::from(EncodeError::Codec {
            encoder: "libx264",
            source: einval,
        });
        assert_eq!(e.to_string(), format!("encoder: libx264: {einval}"));
        let cause = e.source().and_then(|s| s.source()).expect("a cause");
        assert_eq!(
            cause.downcast_ref::<ffmpeg_next::Error>(),
            Some(&einval),
            "{cause:?}"
        );
        let e = RecorderError::from(EncodeError::Write {
            what: "writing the header of",
            path: "/v/a.mkv".into(),
            source: einval,
        });
        assert_eq!(
            e.to_string(),
            format!("encoder: writing the header of /v/a.mkv: {einval}")
        );
        assert_eq!(
            EncodeError::ffmpeg("frame buffer", -libc::ENOMEM).to_string(),
            format!("frame buffer: {}", ffmpeg_next::Error::from(-libc::ENOMEM))
        );
        assert_eq!(
            EncodeError::Thread(Cause::new(std::io::Error::other("no threads"))).to_string(),
            "cannot start encoder thread: no threads"
        );
        assert_eq!(
            RecorderError::from(EncodeError::NoFrameYet).to_string(),
            "encoder: the replay holds no frame yet"
        );
        assert_eq!(
            EncodeError::FrameTooSmall {
                width: 4,
                height: 2,
                format: PixelFormat::Bgrx,
                stride: 16,
                needed: 32,
                has: 8
            }
            .to_string(),
            "frame buffer too small: 4x2 Bgrx stride 16 needs 32 bytes, has 8"
        );
        let e = RecorderError::OutputNotWritable {
            path: "/v/a.mkv".into(),
            source: OutputCause::Io(Cause::new(std::io::Error::from(
                std::io::ErrorKind::PermissionDenied,
            ))),
        };
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(e.to_string(), format!("cannot write /v/a.mkv: {io}"));
        assert!(e.source().is_some());
    }
}
