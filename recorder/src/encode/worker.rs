//! The encoder thread (one per recording): owns FFmpeg. It takes [`EncMsg`]s in stream order
//! from the PipeWire thread (frames), the audio thread (sample blocks) and the control task
//! (`SaveReplay`, `Keep`, `Finish`), and reports [`EncEvent`]s back to the control task.
//!
//! Its lifecycle is [`Stage`]:
//!
//! ```text
//! Idle ──Configure──► Open(Cpu)  ──push fails──► Failed(Some) ──Finish──► Finished
//!      ──GpuConfigure► Open(Gpu)                 (open fails: Failed(None))
//! ```
//!
//! A failed encoder is kept, not dropped: `Finish` still finalizes what it wrote, so a failure
//! mid-way leaves a playable file.
//!
//! One video stream and the audio tracks, each with its encoder, write into one muxer
//! ([`super::mux::Muxer`], streams added by index and interleaved). Audio blocks that arrive
//! before the video encoder (and with it the muxer) is open wait in `early_audio`. In replay
//! mode the packets go to the ring ([`super::replay`]) instead of the file until a save or
//! `Keep`.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use zerocast_interop::{ConvertedFrame, CudaBridge, FrameReleaser};

use super::gpu_output::{DropsBefore, GpuOutput};
use super::msg::{BridgeMemory, EncEvent, EncMsg};
use super::{Encoder, EncoderConfig};
use crate::audio::BlockReturn;
use crate::frame::{CpuFrame, FrameReturn};
use crate::stats::Counters;
use crate::{EncoderChoice, RecorderError};

/// The encoder the stream chose: CPU frames, or CUDA slots of a bridge. Boxed: allocated once
/// per recording, and the enum stays small.
enum Encoding {
    Cpu(Box<Encoder>),
    Gpu(Box<GpuOutput>),
}

impl Encoding {
    fn name(&self) -> &str {
        match self {
            Encoding::Cpu(e) => e.name(),
            Encoding::Gpu(g) => g.name(),
        }
    }

    fn bytes_written(&self) -> u64 {
        match self {
            Encoding::Cpu(e) => e.bytes_written(),
            Encoding::Gpu(g) => g.bytes_written(),
        }
    }

    fn push_audio(&mut self, block: &crate::audio::Block) -> Result<(), RecorderError> {
        match self {
            Encoding::Cpu(e) => e.push_audio(block),
            Encoding::Gpu(g) => g.push_audio(block),
        }
    }

    fn keep(&mut self, path: &std::path::Path) -> Result<(), RecorderError> {
        match self {
            Encoding::Cpu(e) => e.keep(path),
            Encoding::Gpu(g) => g.keep(path),
        }
    }

    fn save_job(&self, seconds: Option<f64>) -> Result<super::mux::SaveJob, RecorderError> {
        match self {
            Encoding::Cpu(e) => e.save_job(seconds),
            Encoding::Gpu(g) => g.save_job(seconds),
        }
    }

    fn finish(self, end: Duration) -> Result<u64, RecorderError> {
        match self {
            Encoding::Cpu(e) => (*e).finish(end),
            Encoding::Gpu(g) => (*g).finish(end),
        }
    }
}

/// The encoder thread's lifecycle.
enum Stage {
    /// No encoder yet: the size (or the bridge) comes with the first `Configure` /
    /// `GpuConfigure`.
    Idle,
    /// Encoding frames.
    Open(Encoding),
    /// Opening or encoding failed (reported once). Nothing more is encoded; an encoder that
    /// failed mid-way is kept so that `Finish` finalizes what it wrote.
    Failed(Option<Encoding>),
    /// The trailer is written.
    Finished,
}

/// The encoder thread's state. Its stage (and through it the CUDA bridge) is dropped before
/// the Vulkan memory the bridge maps.
struct Worker {
    cfg: EncoderConfig,
    returner: FrameReturn,
    /// Where audio blocks go back to the audio thread's pool (`None`: no audio).
    blocks: Option<BlockReturn>,
    /// Audio that arrived before the first frame opened the encoder (at most the block pool).
    early_audio: Vec<crate::audio::Block>,
    counters: Arc<Counters>,
    events: UnboundedSender<EncEvent>,
    stage: DropsBefore<Stage, Vec<BridgeMemory>>,
}

/// Starts the encoder thread: it opens the encoder when the stream's size is known, encodes
/// frames in order, gives their buffers back to the pool, finalizes on `Finish`.
pub(crate) fn spawn(
    cfg: EncoderConfig,
    rx: mpsc::Receiver<EncMsg>,
    returner: FrameReturn,
    blocks: Option<BlockReturn>,
    counters: Arc<Counters>,
    events: UnboundedSender<EncEvent>,
    span: tracing::Span,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("zerocast-encoder".into())
        .spawn(move || {
            let _enter = span.enter();
            let stage = DropsBefore::new(Stage::Idle, Vec::new());
            Worker {
                cfg,
                returner,
                blocks,
                early_audio: Vec::new(),
                counters,
                events,
                stage,
            }
            .run(rx)
        })
}

impl Worker {
    fn run(mut self, rx: mpsc::Receiver<EncMsg>) {
        // Ask the driver about NVENC now, while the portal and PipeWire negotiate: a session
        // attempt takes ~0.25 s, which would otherwise be spent (and frames dropped) when the
        // first GPU frames are already arriving.
        // (Not when the front door already selected the encoder: it probed then.)
        if self.cfg.selected.is_none()
            && self.cfg.encoder != EncoderChoice::Software
            && super::nvenc::cuda_present()
        {
            let _ = super::nvenc_status(self.cfg.codec);
        }
        while let Ok(msg) = rx.recv() {
            match msg {
                EncMsg::Configure { width, height } => self.configure_cpu(width, height),
                EncMsg::GpuConfigure { bridge, releaser } => self.configure_gpu(bridge, releaser),
                EncMsg::Frame(frame) => self.frame(frame),
                EncMsg::GpuFrame { frame, pts } => self.gpu_frame(&frame, pts),
                EncMsg::Retire(memory) => self.stage.owner_mut().push(memory),
                EncMsg::Audio(block) => self.audio(block),
                EncMsg::SaveReplay { request, reply } => self.save_replay(request, reply),
                EncMsg::Keep { path, reply } => {
                    let r = match self.stage() {
                        Stage::Open(enc) => enc.keep(&path),
                        _ => Err(super::EncodeError::NoFrameYet.into()),
                    };
                    if r.is_ok() {
                        tracing::info!(path = %path.display(), "replay kept: recording from the ring's start on");
                    }
                    let _ = reply.send(r);
                }
                EncMsg::Finish { end } => {
                    let result = self.finish(end);
                    let _ = self.events.send(EncEvent::Finished(result));
                    return;
                }
            }
        }
        // Channel closed without Finish (the recording was dropped): still finalize the file.
        let _ = self.finish(Duration::ZERO);
    }

    fn stage(&mut self) -> &mut Stage {
        self.stage.user_mut()
    }

    /// Enters `Open`, or `Failed(None)` when opening failed.
    fn opened(&mut self, r: Result<Encoding, RecorderError>) {
        match r {
            Ok(enc) => {
                let _ = self.events.send(EncEvent::Opened(enc.name().to_string()));
                *self.stage() = Stage::Open(enc);
            }
            Err(e) => {
                *self.stage() = Stage::Failed(None);
                let _ = self.events.send(EncEvent::Failed(e));
            }
        }
    }

    /// Enters `Failed`, keeping the encoder for `Finish`.
    fn failed(&mut self, e: RecorderError) {
        let stage = std::mem::replace(self.stage(), Stage::Failed(None));
        if let Stage::Open(enc) = stage {
            *self.stage() = Stage::Failed(Some(enc));
        }
        let _ = self.events.send(EncEvent::Failed(e));
    }

    fn configure_cpu(&mut self, width: u32, height: u32) {
        if !matches!(self.stage(), Stage::Idle) {
            return; // later size changes are scaled to the first size
        }
        self.cfg.width = width;
        self.cfg.height = height;
        let r = Encoder::open(&self.cfg).map(|e| Encoding::Cpu(Box::new(e)));
        self.opened(r);
    }

    fn configure_gpu(&mut self, bridge: Box<CudaBridge>, releaser: FrameReleaser) {
        let nothing_written = self.counters.written.load(Ordering::Relaxed) == 0;
        match self.stage() {
            Stage::Idle => {}
            // A window cast's first frame is smaller than the stream the encoder was opened
            // for: reopen at its size. Nothing was written yet; the old encoder, stream and
            // bridge go first (the old converter arrives next, in `Retire`), and the new encoder
            // truncates the file.
            Stage::Open(Encoding::Gpu(_)) if nothing_written => *self.stage() = Stage::Idle,
            _ => return,
        }
        let r =
            GpuOutput::open(&mut self.cfg, bridge, releaser).map(|g| Encoding::Gpu(Box::new(g)));
        self.opened(r);
    }

    fn frame(&mut self, frame: CpuFrame) {
        let returner = &self.returner;
        let r = match self.stage.user_mut() {
            // An I420 frame goes to the encoder without a copy; the encoder gives it back.
            Stage::Open(Encoding::Cpu(enc)) => {
                Some(enc.push_pooled(frame, |f| returner.give_back(f)))
            }
            // After a renegotiation from DMA-BUF to SHM the GPU encoder takes CPU frames.
            Stage::Open(Encoding::Gpu(enc)) => {
                let r = enc.push_cpu(&frame);
                returner.give_back(frame);
                Some(r)
            }
            _ => {
                returner.give_back(frame);
                None
            }
        };
        match r {
            Some(Ok(())) => self.written(),
            Some(Err(e)) => self.failed(e),
            None => {}
        }
    }

    fn gpu_frame(&mut self, frame: &ConvertedFrame, pts: Duration) {
        match self.stage() {
            // A failed push gives the slot back.
            Stage::Open(Encoding::Gpu(enc)) => match enc.push(frame, pts) {
                Ok(()) => self.written(),
                Err(e) => self.failed(e),
            },
            // Nothing can encode this slot (the GPU encoder failed). The PipeWire thread only
            // sends GPU frames after GpuConfigure, so a CPU encoder never sees one.
            stage => {
                if let Stage::Failed(Some(Encoding::Gpu(enc))) = stage {
                    enc.release(frame);
                }
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A block of an audio track: encoded once the video encoder (and with it the muxer) is
    /// open, kept until then; dropped once encoding failed or finished. Its buffer goes back
    /// to the audio thread either way.
    fn audio(&mut self, block: crate::audio::Block) {
        if matches!(self.stage(), Stage::Idle) {
            self.early_audio.push(block);
            return;
        }
        let early = std::mem::take(&mut self.early_audio);
        let mut r = Ok(());
        for b in early.into_iter().chain(std::iter::once(block)) {
            if r.is_ok() {
                if let Stage::Open(enc) = self.stage() {
                    r = enc.push_audio(&b);
                }
            }
            if let Some(ret) = &self.blocks {
                ret.give_back(b);
            }
        }
        if let Err(e) = r {
            self.failed(e);
        }
    }

    /// Takes the clip (references to the ring's packets: no copy, no wait) and writes it on a
    /// thread of its own, so encoding goes on meanwhile and no frame is dropped for a save.
    fn save_replay(
        &mut self,
        request: super::replay::SaveRequest,
        reply: tokio::sync::oneshot::Sender<Result<super::replay::SavedReplay, RecorderError>>,
    ) {
        let replay = self.cfg.replay.is_some();
        let job = match self.stage() {
            Stage::Open(enc) | Stage::Failed(Some(enc)) => enc.save_job(request.seconds),
            _ if !replay => Err(RecorderError::NotReplay),
            _ => Err(super::EncodeError::NoFrameYet.into()),
        };
        let job = match job {
            Ok(job) => job,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let span = tracing::Span::current();
        let spawned = std::thread::Builder::new()
            .name("zerocast-replay-save".into())
            .spawn(move || {
                let _enter = span.enter();
                let seconds = job.clip.seconds;
                let whole_ring = job.clip.whole_ring;
                let r = super::replay::write_clip(&request.path, job.container, &job.streams, job.clip)
                    .map(|bytes| super::replay::SavedReplay {
                        path: request.path.clone(),
                        seconds,
                        bytes,
                        whole_ring,
                    });
                match &r {
                    Ok(s) => tracing::info!(path = %s.path.display(), seconds = s.seconds, bytes = s.bytes, "replay saved"),
                    Err(e) => tracing::warn!(path = %request.path.display(), "replay save failed: {e}"),
                }
                let _ = reply.send(r);
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the replay save thread: {e}");
        }
    }

    fn written(&mut self) {
        if self.counters.written.fetch_add(1, Ordering::Relaxed) == 0 {
            let _ = self.events.send(EncEvent::FirstFrame);
        }
        if let Stage::Open(enc) = self.stage.user() {
            let bytes = enc.bytes_written();
            self.counters.bytes.store(bytes, Ordering::Relaxed);
        }
    }

    /// Finalizes whatever encoder there is (also a failed one) and enters `Finished`.
    fn finish(&mut self, end: Duration) -> Result<u64, RecorderError> {
        match std::mem::replace(self.stage(), Stage::Finished) {
            Stage::Open(enc) | Stage::Failed(Some(enc)) => enc.finish(end),
            Stage::Idle | Stage::Failed(None) | Stage::Finished => Err(RecorderError::StreamLost(
                "no frame was received; nothing to write".into(),
            )),
        }
    }
}
