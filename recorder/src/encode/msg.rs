//! The encoder thread's messages: [`EncMsg`] in (from the PipeWire thread, the audio thread
//! and the control task, in stream order) and [`EncEvent`] out (to the control task). Their
//! own module so the senders (`sink`, `pw`, `recording`) name what they send without
//! reaching into the thread's body (`worker.rs`).

use std::time::Duration;

use zerocast_interop::{ConvertedFrame, CudaBridge, FrameReleaser};

/// The Vulkan memory behind a bridge, sent in [`EncMsg::Retire`].
pub(crate) use super::gpu_output::BridgeMemory;
use crate::frame::CpuFrame;
use crate::RecorderError;

/// Messages to the encoder thread, in stream order.
pub(crate) enum EncMsg {
    /// The stream's (new) size: open the encoder at this size if not open yet.
    Configure {
        width: u32,
        height: u32,
    },
    Frame(CpuFrame),
    /// Frames will come as CUDA NV12 slots of `bridge`: open a [`GpuEncoder`] on it (if no
    /// encoder is open yet). `releaser` gives slots back when a frame cannot be encoded.
    ///
    /// [`GpuEncoder`]: crate::encode::GpuEncoder
    GpuConfigure {
        bridge: Box<CudaBridge>,
        releaser: FrameReleaser,
    },
    /// A converted frame in a slot of the bridge; the encoder thread releases the slot.
    GpuFrame {
        frame: ConvertedFrame,
        pts: Duration,
    },
    /// The Vulkan memory behind a bridge, handed over by the PipeWire thread: kept until every
    /// bridge and encoder is gone.
    Retire(BridgeMemory),
    /// Samples of one audio track, contiguous, from the audio thread.
    Audio(crate::audio::Block),
    /// Replay mode: write the last seconds of the ring to a file (on a thread of its own) and
    /// answer on `reply` once it is complete.
    SaveReplay {
        request: super::replay::SaveRequest,
        reply: tokio::sync::oneshot::Sender<Result<super::replay::SavedReplay, RecorderError>>,
    },
    /// Replay mode → a normal recording to `path`, starting with what the ring holds.
    Keep {
        path: std::path::PathBuf,
        reply: tokio::sync::oneshot::Sender<Result<(), RecorderError>>,
    },
    /// Flush and finalize so the file lasts until `end`.
    Finish {
        end: Duration,
    },
}

/// What the encoder thread tells the control task.
pub(crate) enum EncEvent {
    /// The encoder opened; its FFmpeg name.
    Opened(String),
    /// The first frame is in the file.
    FirstFrame,
    Failed(RecorderError),
    /// The trailer is written (file size) or finalizing failed.
    Finished(Result<u64, RecorderError>),
}
