//! The async handle to one recording. A control task (tokio) owns the lifecycle; the PipeWire
//! thread and the encoder thread are reached only through channels.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc as tmpsc, oneshot, watch};
use tracing::Instrument;

use zerocast_interop::{CudaBridge, FrameReleaser, OwnedStream};

use crate::encode::{Encoder, EncoderConfig, GpuEncoder};
use crate::frame::{FramePool, FrameReturn};
use crate::pw::{monotonic_ns, PwEvent, PwThread};
use crate::sink::{Counters, EncMsg, FrameSink, Timeline};
use crate::stats::EndReason;
use crate::{RecorderError, RecordingOptions, RecordingState, Stats, Summary};

/// Frames in flight between the PipeWire thread and the encoder. Enough to ride out an encoder
/// hiccup of a few frames; beyond that dropping (and counting) beats growing latency and memory.
const POOL_FRAMES: usize = 4;
/// How long Start waits for the stream before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// A static screen sends no frames at all; after this long in Streaming without one, Start
/// returns anyway so callers are not held hostage by an idle desktop.
const STATIC_SCREEN_GRACE: Duration = Duration::from_secs(2);
/// Progress publication period (D-Bus asks for at most ~1 Hz; the CLI line wants a bit more).
const TICK: Duration = Duration::from_millis(250);

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

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

type Outcome = Option<Result<Summary, RecorderError>>;

/// State shared by the handle and the control task.
struct Shared {
    state: Mutex<RecordingState>,
    stats_tx: watch::Sender<Stats>,
    timeline: Arc<Mutex<Timeline>>,
    counters: Arc<Counters>,
}

impl Shared {
    fn set_state(&self, state: RecordingState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.publish();
    }

    fn state(&self) -> RecordingState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes the current counters and state to watchers.
    fn publish(&self) {
        let state = self.state();
        let elapsed = self
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed(monotonic_ns());
        let c = &self.counters;
        self.stats_tx.send_modify(|s| {
            s.state = state;
            if !state.is_over() {
                s.duration = elapsed;
            }
            s.frames_received = c.received.load(Ordering::Relaxed);
            s.frames_written = c.written.load(Ordering::Relaxed);
            s.frames_dropped = c.dropped.load(Ordering::Relaxed);
            s.bytes = c.bytes.load(Ordering::Relaxed);
        });
    }
}

enum Control {
    Stop,
}

/// A running (or ended) recording. `Send + Sync`; share it in an `Arc`.
pub struct Recording {
    id: RecordingId,
    opts: RecordingOptions,
    shared: Arc<Shared>,
    control: tmpsc::UnboundedSender<Control>,
    outcome: watch::Receiver<Outcome>,
}

impl Recording {
    /// Connects to the stream, negotiates, opens the encoder and returns once frames flow
    /// (or the stream is up but the screen is static), or fails with a named error.
    pub async fn start(
        source: PipeWireSource,
        opts: RecordingOptions,
    ) -> Result<Recording, RecorderError> {
        let id = RecordingId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let span = tracing::info_span!("recording", id = id.0);
        let counters = Arc::new(Counters::default());
        let timeline = Arc::new(Mutex::new(Timeline::new()));
        // The capture path is known once the format is negotiated (PwEvent::Format).
        let (stats_tx, _) = watch::channel(Stats::default());
        let shared = Arc::new(Shared {
            state: Mutex::new(RecordingState::Starting),
            stats_tx,
            timeline: Arc::clone(&timeline),
            counters: Arc::clone(&counters),
        });

        // Encoder thread first, so the sink has somewhere to send frames.
        let pool = FramePool::new(POOL_FRAMES);
        let (enc_tx, enc_rx) = mpsc::sync_channel::<EncMsg>(POOL_FRAMES + 4);
        let (enc_events_tx, enc_events) = tmpsc::unbounded_channel();
        let enc_cfg = EncoderConfig {
            path: opts.path.clone(),
            container: opts.container,
            codec: opts.codec,
            encoder: opts.encoder,
            rate: opts.rate,
            keyint: opts.keyint,
            selected: opts.selected.clone(),
            width: 0,
            height: 0,
        };
        let enc_join = {
            let returner = pool.returner();
            let counters = Arc::clone(&counters);
            let span = span.clone();
            std::thread::Builder::new()
                .name("zerocast-encoder".into())
                .spawn(move || {
                    let _enter = span.enter();
                    encoder_thread(enc_cfg, enc_rx, returner, counters, enc_events_tx)
                })
                .map_err(|e| RecorderError::Encode(format!("cannot start encoder thread: {e}")))?
        };

        let sink = FrameSink {
            pool,
            tx: enc_tx.clone(),
            counters: Arc::clone(&counters),
            timeline: Arc::clone(&timeline),
            min_interval: opts
                .max_fps
                .filter(|f| *f > 0)
                .map(|f| Duration::from_secs_f64(1.0 / f as f64)),
            last_kept: None,
            configured: None,
            encoder_sized: false,
            limit: opts.duration,
            conv: crate::encode::Converter::new(Default::default()),
            shm_copy: std::env::var_os(crate::sink::SHM_COPY_ENV).is_some(),
        };
        let (pw_events_tx, pw_events) = tmpsc::unbounded_channel();
        let pw = PwThread::spawn(&source.fd, source.node_id, sink, pw_events_tx, span.clone())
            .map_err(|e| RecorderError::PipeWire(format!("cannot start PipeWire thread: {e}")))?;
        drop(source);

        let (control, control_rx) = tmpsc::unbounded_channel();
        let (outcome_tx, outcome) = watch::channel(None);
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = ControlTask {
            opts: opts.clone(),
            shared: Arc::clone(&shared),
            pw: Some(pw),
            enc_tx,
            enc_join: Some(enc_join),
            pw_events,
            enc_events,
            control: control_rx,
            ready: Some(ready_tx),
            outcome: outcome_tx,
        };
        tokio::spawn(task.run().instrument(span));

        match ready_rx.await {
            Ok(Ok(())) => Ok(Recording {
                id,
                opts,
                shared,
                control,
                outcome,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RecorderError::PipeWire(
                "recording task ended unexpectedly".into(),
            )),
        }
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

    /// Live figures; changes a few times per second plus every state change.
    pub fn stats(&self) -> watch::Receiver<Stats> {
        self.shared.stats_tx.subscribe()
    }

    /// Stops adding frames; the paused time is absent from the file.
    pub fn pause(&self) -> Result<(), RecorderError> {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if *state != RecordingState::Recording {
            return Err(RecorderError::NotRecording(*state));
        }
        self.shared
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pause(monotonic_ns());
        *state = RecordingState::Paused;
        drop(state);
        self.shared.publish();
        Ok(())
    }

    pub fn resume(&self) -> Result<(), RecorderError> {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if *state != RecordingState::Paused {
            return Err(RecorderError::NotRecording(*state));
        }
        self.shared
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resume(monotonic_ns());
        *state = RecordingState::Recording;
        drop(state);
        self.shared.publish();
        Ok(())
    }

    /// Stops and finalizes the file; returns after the trailer is written. Calling it on an
    /// ended recording returns `NotRecording`.
    pub async fn stop(&self) -> Result<Summary, RecorderError> {
        let state = self.shared.state();
        if state.is_over() || state == RecordingState::Finishing {
            return Err(RecorderError::NotRecording(state));
        }
        let _ = self.control.send(Control::Stop);
        self.finished().await
    }

    /// Resolves when the recording ends for any reason (stop, `duration`, stream lost).
    pub async fn finished(&self) -> Result<Summary, RecorderError> {
        let mut rx = self.outcome.clone();
        let outcome = rx
            .wait_for(|o| o.is_some())
            .await
            .map_err(|_| RecorderError::Encode("recording task vanished".into()))?;
        outcome.clone().expect("wait_for guarantees Some")
    }

    /// Current state without subscribing.
    pub fn state(&self) -> RecordingState {
        self.shared.state()
    }
}

enum EncEvent {
    Opened(String),
    FirstFrame,
    Failed(RecorderError),
    Finished(Result<u64, RecorderError>),
}

struct ControlTask {
    opts: RecordingOptions,
    shared: Arc<Shared>,
    pw: Option<PwThread>,
    enc_tx: mpsc::SyncSender<EncMsg>,
    enc_join: Option<std::thread::JoinHandle<()>>,
    pw_events: tmpsc::UnboundedReceiver<PwEvent>,
    enc_events: tmpsc::UnboundedReceiver<EncEvent>,
    control: tmpsc::UnboundedReceiver<Control>,
    ready: Option<oneshot::Sender<Result<(), RecorderError>>>,
    outcome: watch::Sender<Outcome>,
}

/// Why the main loop ended.
enum Ending {
    Normal(EndReason),
    Error(RecorderError),
}

impl ControlTask {
    async fn run(mut self) {
        let ending = self.main_loop().await;
        let summary = self.finish(ending).await;
        if let Some(ready) = self.ready.take() {
            // Ended before it was ever ready: Start reports the error.
            let _ = ready.send(match &summary {
                Ok(_) => Err(RecorderError::StreamLost(
                    "the stream ended before recording began".into(),
                )),
                Err(e) => Err(e.clone()),
            });
        }
        let _ = self.outcome.send(Some(summary));
    }

    fn mark_ready(&mut self) {
        if let Some(ready) = self.ready.take() {
            self.shared.set_state(RecordingState::Recording);
            let _ = ready.send(Ok(()));
        }
    }

    async fn main_loop(&mut self) -> Ending {
        let mut tick = tokio::time::interval(TICK);
        let mut streaming_since: Option<tokio::time::Instant> = None;
        let started = tokio::time::Instant::now();
        loop {
            // Sleep exactly until the requested duration is reached, not to the next tick.
            let until_limit = self.opts.duration.map(|limit| {
                let elapsed = self
                    .shared
                    .timeline
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .elapsed(monotonic_ns());
                limit.saturating_sub(elapsed)
            });
            let paused = self.shared.state() == RecordingState::Paused;
            tokio::select! {
                _ = tokio::time::sleep(until_limit.unwrap_or(TICK)), if until_limit.is_some_and(|d| d < TICK) && !paused && self.ready.is_none() => {
                    return Ending::Normal(EndReason::Duration);
                }
                cmd = self.control.recv() => match cmd {
                    Some(Control::Stop) | None => return Ending::Normal(EndReason::Stopped),
                },
                ev = self.pw_events.recv() => match ev {
                    Some(PwEvent::Format { width, height, format, path }) => {
                        tracing::debug!(?format, %path, "format event");
                        self.shared.stats_tx.send_modify(|s| { s.width = width; s.height = height; s.capture_path = path; });
                    }
                    Some(PwEvent::Streaming) => {
                        streaming_since.get_or_insert_with(tokio::time::Instant::now);
                    }
                    Some(PwEvent::Lost(msg)) => return Ending::Normal(EndReason::StreamLost(msg)),
                    None => return Ending::Normal(EndReason::StreamLost("PipeWire thread ended".into())),
                },
                ev = self.enc_events.recv() => match ev {
                    Some(EncEvent::Opened(name)) => {
                        self.shared.stats_tx.send_modify(|s| s.encoder = name);
                    }
                    Some(EncEvent::FirstFrame) => self.mark_ready(),
                    Some(EncEvent::Failed(e)) => return Ending::Error(e),
                    Some(EncEvent::Finished(_)) | None => {
                        return Ending::Error(RecorderError::Encode("encoder thread ended early".into()))
                    }
                },
                _ = tick.tick() => {
                    if self.ready.is_some() {
                        if let Some(since) = streaming_since {
                            if since.elapsed() >= STATIC_SCREEN_GRACE {
                                tracing::info!("no frame yet (static screen?); recording anyway");
                                self.mark_ready();
                            }
                        } else if started.elapsed() >= START_TIMEOUT {
                            return Ending::Error(RecorderError::StreamLost(format!(
                                "the stream did not start within {} s", START_TIMEOUT.as_secs()
                            )));
                        }
                    }
                    if let Some(limit) = self.opts.duration {
                        let elapsed = self.shared.timeline.lock().unwrap_or_else(|e| e.into_inner()).elapsed(monotonic_ns());
                        if elapsed >= limit {
                            return Ending::Normal(EndReason::Duration);
                        }
                    }
                    self.shared.publish();
                }
            }
        }
    }

    async fn finish(&mut self, ending: Ending) -> Result<Summary, RecorderError> {
        self.shared.set_state(RecordingState::Finishing);
        // The end of the file: now, on the recording's timeline, capped at the requested duration.
        let mut end = self
            .shared
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed(monotonic_ns());
        if let Some(limit) = self.opts.duration {
            end = end.min(limit);
        }
        // Stop capturing before finalizing so no frame races the trailer.
        if let Some(pw) = self.pw.take() {
            let _ = tokio::task::spawn_blocking(move || pw.stop()).await;
        }
        let reason = match ending {
            Ending::Normal(r) => r,
            Ending::Error(e) => {
                tracing::error!(error = %e, "recording failed");
                // Still finalize what was written: a failed recording must leave a playable file.
                let _ = self.finalize(end).await;
                self.shared.set_state(RecordingState::Failed);
                return Err(e);
            }
        };
        let result = self.finalize(end).await;
        let stats = {
            self.shared.publish();
            self.shared.stats_tx.borrow().clone()
        };
        match result {
            Ok(bytes) => {
                self.shared.counters.bytes.store(bytes, Ordering::Relaxed);
                let failed = matches!(reason, EndReason::StreamLost(_));
                self.shared.stats_tx.send_modify(|s| s.duration = end);
                self.shared.set_state(if failed {
                    RecordingState::Failed
                } else {
                    RecordingState::Finished
                });
                let stats = Stats {
                    duration: end,
                    bytes,
                    state: self.shared.state(),
                    ..stats
                };
                tracing::info!(?reason, path = %self.opts.path.display(), frames = stats.frames_written, dropped = stats.frames_dropped, "recording finished");
                Ok(Summary {
                    path: self.opts.path.clone(),
                    stats,
                    reason,
                })
            }
            Err(e) => {
                self.shared.set_state(RecordingState::Failed);
                Err(e)
            }
        }
    }

    /// Tells the encoder to finish at `end` and waits for the trailer.
    async fn finalize(&mut self, end: Duration) -> Result<u64, RecorderError> {
        let tx = self.enc_tx.clone();
        // `send` can block if the queue is full; never on a tokio worker.
        let _ = tokio::task::spawn_blocking(move || tx.send(EncMsg::Finish { end })).await;
        let result = loop {
            match self.enc_events.recv().await {
                Some(EncEvent::Finished(r)) => break r,
                Some(EncEvent::Failed(e)) => break Err(e),
                Some(_) => continue,
                None => break Err(RecorderError::Encode("encoder thread ended".into())),
            }
        };
        if let Some(join) = self.enc_join.take() {
            let _ = tokio::task::spawn_blocking(move || join.join()).await;
        }
        result
    }
}

/// The encoder the first frame chose: CPU frames, or CUDA slots of a bridge.
/// Both encoders are boxed: allocated once per recording, and the enum stays small.
enum Active {
    Cpu(Box<Encoder>),
    Gpu {
        // Field order is drop order: the encoder (and its CUDA stream) before the bridge.
        enc: Box<GpuEncoder>,
        _stream: OwnedStream,
        bridge: Box<CudaBridge>,
        releaser: FrameReleaser,
    },
}

impl Active {
    fn name(&self) -> String {
        match self {
            Active::Cpu(e) => e.name().to_string(),
            Active::Gpu { enc, .. } => enc.name().to_string(),
        }
    }

    fn bytes_written(&self) -> u64 {
        match self {
            Active::Cpu(e) => e.bytes_written(),
            Active::Gpu { enc, .. } => enc.bytes_written(),
        }
    }

    fn finish(self, end: Duration) -> Result<u64, RecorderError> {
        match self {
            Active::Cpu(e) => (*e).finish(end),
            Active::Gpu {
                enc,
                _stream,
                bridge,
                ..
            } => {
                let r = (*enc).finish(end);
                // The stream finishes its queued copies before the bridge unmaps the slots.
                drop(_stream);
                drop(bridge);
                r
            }
        }
    }
}

fn open_gpu(
    cfg: &mut EncoderConfig,
    bridge: Box<CudaBridge>,
    releaser: FrameReleaser,
) -> Result<Active, RecorderError> {
    let layout = *bridge.layout();
    cfg.width = layout.width;
    cfg.height = layout.height;
    let stream = OwnedStream::new(&bridge)
        .map_err(|e| RecorderError::Encode(format!("CUDA stream: {e}")))?;
    let enc = GpuEncoder::open(cfg, &bridge, stream.handle())?;
    Ok(Active::Gpu {
        enc: Box::new(enc),
        _stream: stream,
        bridge,
        releaser,
    })
}

/// Body of the encoder thread: opens the encoder when the stream's size is known, encodes
/// frames in order, gives their buffers back, finalizes on `Finish`.
fn encoder_thread(
    mut cfg: EncoderConfig,
    rx: mpsc::Receiver<EncMsg>,
    returner: FrameReturn,
    counters: Arc<Counters>,
    events: tmpsc::UnboundedSender<EncEvent>,
) {
    // Ask the driver about NVENC now, while the portal and PipeWire negotiate: a session
    // attempt takes ~0.25 s, which would otherwise be spent (and frames dropped) when the
    // first GPU frames are already arriving.
    // (Not when the front door already selected the encoder: it probed then.)
    if cfg.selected.is_none()
        && cfg.encoder != crate::EncoderChoice::Software
        && crate::encode::nvenc::cuda_present()
    {
        let _ = crate::encode::nvenc_status(cfg.codec);
    }
    let mut encoder: Option<Active> = None;
    // What the PipeWire thread retired (the converter behind the bridge): dropped last.
    let mut retired: Vec<Box<dyn Send>> = Vec::new();
    let mut failed = false;
    let written = |enc: &Active| {
        if counters.written.fetch_add(1, Ordering::Relaxed) == 0 {
            let _ = events.send(EncEvent::FirstFrame);
        }
        counters.bytes.store(enc.bytes_written(), Ordering::Relaxed);
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            EncMsg::Configure { width, height } => {
                if encoder.is_some() || failed {
                    continue; // later size changes are scaled to the first size
                }
                cfg.width = width;
                cfg.height = height;
                match Encoder::open(&cfg) {
                    Ok(enc) => {
                        let _ = events.send(EncEvent::Opened(enc.name().to_string()));
                        encoder = Some(Active::Cpu(Box::new(enc)));
                    }
                    Err(e) => {
                        failed = true;
                        let _ = events.send(EncEvent::Failed(e));
                    }
                }
            }
            EncMsg::GpuConfigure { bridge, releaser } => {
                if failed {
                    continue;
                }
                match &encoder {
                    None => {}
                    // A window cast's first frame is smaller than the stream the encoder was
                    // opened for: reopen at its size. Nothing was written yet; the old
                    // encoder, stream and bridge go first (the old converter arrives next, in
                    // `Retire`), and the new encoder truncates the file.
                    Some(Active::Gpu { .. }) if counters.written.load(Ordering::Relaxed) == 0 => {
                        encoder = None;
                    }
                    Some(_) => continue,
                }
                match open_gpu(&mut cfg, bridge, releaser) {
                    Ok(enc) => {
                        let _ = events.send(EncEvent::Opened(enc.name()));
                        encoder = Some(enc);
                    }
                    Err(e) => {
                        failed = true;
                        let _ = events.send(EncEvent::Failed(e));
                    }
                }
            }
            EncMsg::Frame(frame) => {
                let r = match encoder.as_mut() {
                    Some(Active::Cpu(enc)) => Some(enc.push(&frame)),
                    // After a renegotiation from DMA-BUF to SHM the GPU encoder takes CPU frames.
                    Some(Active::Gpu { enc, .. }) => Some(enc.push_cpu(&frame)),
                    None => None,
                };
                match r {
                    Some(Ok(())) => written(encoder.as_ref().expect("pushed")),
                    Some(Err(e)) => {
                        failed = true;
                        let _ = events.send(EncEvent::Failed(e));
                    }
                    None => {}
                }
                returner.give_back(frame);
            }
            EncMsg::GpuFrame { frame, pts } => match encoder.as_mut() {
                Some(Active::Gpu {
                    enc,
                    bridge,
                    releaser,
                    ..
                }) => match enc.push(bridge, &frame, pts) {
                    Ok(()) => written(encoder.as_ref().expect("pushed")),
                    Err(e) => {
                        releaser.release(&frame);
                        failed = true;
                        let _ = events.send(EncEvent::Failed(e));
                    }
                },
                // No GPU encoder (it failed to open): nothing can encode this slot. The
                // PipeWire thread only sends GPU frames after GpuConfigure, so a CPU encoder
                // never sees one.
                _ => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
            EncMsg::Retire(objects) => retired.push(objects),
            EncMsg::Finish { end } => {
                let result = match encoder.take() {
                    Some(enc) => enc.finish(end),
                    None => Err(RecorderError::StreamLost(
                        "no frame was received; nothing to write".into(),
                    )),
                };
                let _ = events.send(EncEvent::Finished(result));
                drop(retired);
                return;
            }
        }
    }
    // Channel closed without Finish (the recording was dropped): still finalize the file.
    if let Some(enc) = encoder.take() {
        let end = Duration::ZERO;
        let _ = enc.finish(end);
    }
    drop(retired);
}
