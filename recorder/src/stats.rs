//! Live figures and state of a recording, published through a `tokio::sync::watch`.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Lifecycle of a recording (the D-Bus `State` property uses these names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordingState {
    #[default]
    Starting,
    Recording,
    Paused,
    Finishing,
    Finished,
    Failed,
}

impl RecordingState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Starting => "starting",
            RecordingState::Recording => "recording",
            RecordingState::Paused => "paused",
            RecordingState::Finishing => "finishing",
            RecordingState::Finished => "finished",
            RecordingState::Failed => "failed",
        }
    }
    pub fn is_over(self) -> bool {
        matches!(self, RecordingState::Finished | RecordingState::Failed)
    }
}

impl fmt::Display for RecordingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How frames travel from the compositor to the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CapturePath {
    /// Not negotiated yet.
    #[default]
    Unknown,
    /// Shared-memory frames, converted and encoded on the CPU.
    ShmCpu,
    /// DMA-BUF imported into Vulkan, converted on the GPU, read back for a CPU encoder.
    DmabufVulkanCpu,
    /// DMA-BUF imported into Vulkan, converted on the GPU, handed to CUDA/NVENC.
    DmabufVulkanCuda,
}

impl CapturePath {
    pub fn as_str(self) -> &'static str {
        match self {
            CapturePath::Unknown => "unknown",
            CapturePath::ShmCpu => "shm-cpu",
            CapturePath::DmabufVulkanCpu => "dmabuf-vulkan-cpu",
            CapturePath::DmabufVulkanCuda => "dmabuf-vulkan-cuda",
        }
    }
}

impl fmt::Display for CapturePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Snapshot of a recording's progress.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub state: RecordingState,
    /// Recorded time (pauses excluded).
    pub duration: Duration,
    /// Frames delivered by the compositor (after skipping corrupted/empty ones).
    pub frames_received: u64,
    /// Frames handed to the encoder.
    pub frames_written: u64,
    /// Frames dropped because the encoder was behind or the fps cap skipped them.
    pub frames_dropped: u64,
    /// Bytes written to the output so far.
    pub bytes: u64,
    /// Encoder name as FFmpeg calls it (e.g. `libx264`), empty until opened.
    pub encoder: String,
    pub capture_path: CapturePath,
    /// Negotiated size of the stream.
    pub width: u32,
    pub height: u32,
}

/// Why a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// Stop was requested (CLI Ctrl-C/SIGTERM, D-Bus Stop).
    Stopped,
    /// The requested duration was reached.
    Duration,
    /// The compositor or PipeWire ended the stream; the file holds everything up to then.
    StreamLost(String),
}

/// Result of a finished recording (the file is finalized and playable).
#[derive(Debug, Clone)]
pub struct Summary {
    /// The file; `None` when nothing was written (a replay stopped without `save_on_stop`).
    pub path: Option<PathBuf>,
    pub stats: Stats,
    pub reason: EndReason,
}

/// Counters shared by all threads of one recording; read for progress reports.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub received: AtomicU64,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    /// Older buffers replaced by a newer one in the same process() call.
    pub skipped_stale: AtomicU64,
    /// Frames left out on purpose by the fps cap (not a loss).
    pub skipped_fps: AtomicU64,
    pub bytes: AtomicU64,
}
