//! Who owns what on the encoder thread's GPU path, as types: a CUDA frame is read by the
//! encoder, on a CUDA stream, through the bridge's mappings of Vulkan memory that a converter
//! owns. Each of these must go before the one it reads from; [`DropsBefore`] makes that the
//! structure of the values instead of a field order someone has to keep.
//!
//! ```text
//! GpuOutput = DropsBefore< GpuEncoder, DropsBefore< OwnedStream, CudaBridge > >
//! encoder thread = DropsBefore< Stage (holds the GpuOutput), Vec<BridgeMemory> >
//! ```

use std::time::Duration;

use zerocast_interop::{ConvertedFrame, CudaBridge, FrameReleaser, OwnedStream};

pub(crate) use crate::drop_order::DropsBefore;

use super::{EncoderConfig, GpuEncoder};
use crate::frame::CpuFrame;
use crate::RecorderError;

/// The Vulkan memory a CUDA bridge maps: a converter (and the Vulkan context it was made on)
/// that the PipeWire thread retired, either when it ended or when the first frame's crop
/// region rebuilt the converter. It must outlive every bridge that maps it, so the encoder
/// thread keeps it as the owner of everything it encodes with.
pub(crate) struct BridgeMemory(
    #[allow(
        dead_code,
        reason = "held only to be dropped after everything that reads it"
    )]
    Box<dyn Send>,
);

impl BridgeMemory {
    pub fn new(owner: Box<dyn Send>) -> Self {
        BridgeMemory(owner)
    }
}

/// A CUDA stream in the bridge's context; the stream is destroyed (after its queued copies
/// finished) before the bridge unmaps the slots and releases the context.
type StreamOnBridge = DropsBefore<OwnedStream, Box<CudaBridge>>;

/// The encoder of CUDA frames, with the stream its work is queued on and the bridge whose slots
/// it reads.
pub(crate) struct GpuOutput {
    chain: DropsBefore<Box<GpuEncoder>, StreamOnBridge>,
    /// Gives a slot back to the converter when its frame cannot be encoded.
    releaser: FrameReleaser,
}

impl GpuOutput {
    /// Opens the GPU encoder at the bridge's size (written back into `cfg`).
    pub fn open(
        cfg: &mut EncoderConfig,
        bridge: Box<CudaBridge>,
        releaser: FrameReleaser,
    ) -> Result<GpuOutput, RecorderError> {
        let layout = *bridge.layout();
        cfg.width = layout.width;
        cfg.height = layout.height;
        let cfg = &*cfg;
        let stream = StreamOnBridge::try_new(bridge, |bridge| OwnedStream::new(bridge))
            .map_err(|e| super::EncodeError::CudaStream(e.into()))?;
        let chain = DropsBefore::try_new(stream, |s| {
            GpuEncoder::open(cfg, s.owner(), s.user().handle()).map(Box::new)
        })?;
        Ok(GpuOutput { chain, releaser })
    }

    pub fn name(&self) -> &str {
        self.chain.user().name()
    }

    pub fn bytes_written(&self) -> u64 {
        self.chain.user().bytes_written()
    }

    pub(crate) fn keep(&mut self, path: &std::path::Path) -> Result<(), RecorderError> {
        self.chain.user_mut().keep(path)
    }

    pub(crate) fn save_job(
        &self,
        seconds: Option<f64>,
    ) -> Result<super::mux::SaveJob, RecorderError> {
        self.chain.user().save_job(seconds)
    }

    /// Encodes a frame of the bridge; a frame that fails gives its slot back.
    pub fn push(&mut self, frame: &ConvertedFrame, pts: Duration) -> Result<(), RecorderError> {
        let (enc, stream) = self.chain.parts_mut();
        let r = enc.push(stream.owner(), frame, pts);
        if r.is_err() {
            self.releaser.release(frame);
        }
        r
    }

    /// A host frame (the capture fell back to SHM mid-recording).
    pub fn push_cpu(&mut self, frame: &CpuFrame) -> Result<(), RecorderError> {
        self.chain.user_mut().push_cpu(frame)
    }

    /// A block of an audio track, into the same file.
    pub fn push_audio(&mut self, block: &crate::audio::Block) -> Result<(), RecorderError> {
        self.chain.user_mut().push_audio(block)
    }

    /// Gives a slot back without encoding it.
    pub fn release(&self, frame: &ConvertedFrame) {
        self.releaser.release(frame);
    }

    /// Finalizes the file; then the stream finishes its queued copies and the bridge unmaps
    /// the slots, in that order.
    pub fn finish(self, end: Duration) -> Result<u64, RecorderError> {
        self.chain.finish_user(|enc| (*enc).finish(end))
    }
}
