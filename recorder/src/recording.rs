//! The async handle to one recording. A control task (tokio) owns the lifecycle; the PipeWire
//! thread and the encoder thread are reached only through channels.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc as tmpsc, oneshot, watch};
use tracing::Instrument;

use crate::audio::{AudioThread, TrackSet};
use crate::clock::monotonic_ns;
use crate::encode::msg::{EncEvent, EncMsg};
use crate::encode::replay::ReplayLimits;
use crate::encode::worker;
use crate::encode::{EncodeError, EncoderConfig};
use crate::frame::FramePool;
use crate::pw::{PwError, PwEvent, PwThread};
use crate::sink::{FrameSink, RecordingClock};
use crate::stats::Counters;
use crate::stats::EndReason;
use crate::{OptionError, RecorderError, RecordingOptions, RecordingState, Stats, Summary};

/// Frames in flight between the PipeWire thread and the encoder. Enough to ride out an encoder
/// hiccup of a few frames; beyond that dropping (and counting) beats growing latency and memory.
/// One more than the 4 in flight: the CPU encoder holds the last frame it sent without a copy
/// (what `finish` repeats). The pool is LIFO and its buffers are allocated on first use, so the
/// ones a keeping-up encoder never needs cost no memory.
const POOL_FRAMES: usize = 5;
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
    /// Size the portal announced, if any (the negotiated size wins): the monitor's in the
    /// desktop's logical units.
    pub size: Option<(u32, u32)>,
    /// Where the portal said the monitor lies in the desktop (logical units), if it did.
    pub position: Option<(i32, i32)>,
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

/// What the handle and the control task both read and publish: the state, the recording's
/// clock and the frame counters.
struct Progress {
    state: Mutex<RecordingState>,
    stats_tx: watch::Sender<Stats>,
    clock: Arc<Mutex<RecordingClock>>,
    counters: Arc<Counters>,
    /// Normal, replay, or a replay kept as a recording.
    mode: Mutex<RecordingMode>,
}

/// What a recording writes. A replay holds its last seconds in memory and writes only what is
/// saved (and its ring at stop with `save_on_stop`); `Keep` turns it into a recording to a file.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordingMode {
    /// Every frame to the recording's path.
    Normal,
    Replay(ReplayLimits),
    /// A replay kept as a recording: its file is here.
    Kept(PathBuf),
}

impl RecordingMode {
    /// The mode a recording starts in.
    pub fn new(replay: Option<ReplayLimits>) -> Self {
        replay.map_or(RecordingMode::Normal, RecordingMode::Replay)
    }

    /// The file a recording in this mode leaves when it stops; `None` for a replay stopped
    /// without `save_on_stop` (it wrote nothing).
    pub fn output(&self, path: &Path) -> Option<PathBuf> {
        match self {
            RecordingMode::Normal => Some(path.to_owned()),
            RecordingMode::Replay(l) => l.save_on_stop.then(|| path.to_owned()),
            RecordingMode::Kept(p) => Some(p.clone()),
        }
    }
}

impl Progress {
    fn mode(&self) -> RecordingMode {
        self.mode.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

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
            .clock
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
    /// The encoder thread's queue, for replay saves (in stream order with the frames).
    saves: mpsc::SyncSender<EncMsg>,
    progress: Arc<Progress>,
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
        // A region is checked against the monitor the user picked before anything starts.
        let crop = match opts.region {
            None => None,
            Some(region) => Some(
                crate::pw::UserCrop::new(region, source.position, source.size).ok_or_else(
                    || OptionError::RegionOutside {
                        region,
                        position: source.position.unwrap_or((0, 0)),
                        size: source.size.unwrap_or((0, 0)),
                    },
                )?,
            ),
        };
        let counters = Arc::new(Counters::default());
        let clock = Arc::new(Mutex::new(RecordingClock::new()));
        // The capture path is known once the format is negotiated (PwEvent::Format).
        let (stats_tx, _) = watch::channel(Stats::default());
        let progress = Arc::new(Progress {
            state: Mutex::new(RecordingState::Starting),
            stats_tx,
            clock: Arc::clone(&clock),
            counters: Arc::clone(&counters),
            mode: Mutex::new(RecordingMode::new(opts.replay)),
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
            audio: opts.audio.clone(),
            replay: opts.replay,
        };
        // Audio before the encoder thread (which gives its blocks back) and before the video
        // stream, so it is capturing when the first frame sets the file's time zero.
        let audio = match &opts.audio {
            Some(cfg) => Some(start_audio(cfg, &opts, &clock, &enc_tx, &span).await?),
            None => None,
        };
        let enc_join = worker::spawn(
            enc_cfg,
            enc_rx,
            pool.returner(),
            audio.as_ref().map(AudioThread::block_return),
            Arc::clone(&counters),
            enc_events_tx,
            span.clone(),
        )
        .map_err(|e| EncodeError::Thread(e.into()))?;

        let mut sink = FrameSink::new(
            pool,
            enc_tx.clone(),
            Arc::clone(&counters),
            Arc::clone(&clock),
            opts.max_fps,
            opts.duration,
        );
        sink.set_output(opts.output_size);
        let geometry = crate::pw::Geometry {
            crop,
            output: opts.output_size,
        };
        let (pw_events_tx, pw_events) = tmpsc::unbounded_channel();
        let pw = PwThread::spawn(
            &source.fd,
            source.node_id,
            sink,
            geometry,
            pw_events_tx,
            span.clone(),
        )
        .map_err(|e| PwError::Thread(e.into()))?;
        drop(source);

        let (control, control_rx) = tmpsc::unbounded_channel();
        let (outcome_tx, outcome) = watch::channel(None);
        let (ready_tx, ready_rx) = oneshot::channel();
        let saves = enc_tx.clone();
        let task = ControlTask {
            opts: opts.clone(),
            progress: Arc::clone(&progress),
            pw: Some(pw),
            audio,
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
                saves,
                progress,
                control,
                outcome,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(PwError::TaskEnded.into()),
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
        self.progress.stats_tx.subscribe()
    }

    /// Stops adding frames; the paused time is absent from the file.
    pub fn pause(&self) -> Result<(), RecorderError> {
        let mut state = self
            .progress
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *state != RecordingState::Recording {
            return Err(RecorderError::NotRecording(*state));
        }
        self.progress
            .clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pause(monotonic_ns());
        *state = RecordingState::Paused;
        drop(state);
        self.progress.publish();
        Ok(())
    }

    pub fn resume(&self) -> Result<(), RecorderError> {
        let mut state = self
            .progress
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *state != RecordingState::Paused {
            return Err(RecorderError::NotRecording(*state));
        }
        self.progress
            .clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resume(monotonic_ns());
        *state = RecordingState::Recording;
        drop(state);
        self.progress.publish();
        Ok(())
    }

    /// Stops and finalizes the file; returns after the trailer is written. Calling it on an
    /// ended recording returns `NotRecording`.
    pub async fn stop(&self) -> Result<Summary, RecorderError> {
        let state = self.progress.state();
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
            .map_err(|_| EncodeError::TaskVanished)?;
        outcome.clone().expect("wait_for guarantees Some")
    }

    /// Replay mode: writes the last `seconds` (the whole ring when `None` or more than it
    /// holds) to `path` and resolves once the file is complete. The save runs on a thread of
    /// its own; capture and encoding go on. `NotReplay` on a normal recording.
    pub async fn save_replay(
        &self,
        path: PathBuf,
        seconds: Option<f64>,
    ) -> Result<crate::encode::replay::SavedReplay, RecorderError> {
        self.ask_replay(|reply| EncMsg::SaveReplay {
            request: crate::encode::replay::SaveRequest { path, seconds },
            reply,
        })
        .await
    }

    /// Replay mode → a normal recording to `path` ("record from N seconds ago"): the file
    /// starts with everything the ring holds and goes on until stop; saves end with it.
    pub async fn keep(&self, path: PathBuf) -> Result<(), RecorderError> {
        let target = path.clone();
        self.ask_replay(|reply| EncMsg::Keep { path, reply })
            .await?;
        *self.progress.mode.lock().unwrap_or_else(|e| e.into_inner()) = RecordingMode::Kept(target);
        Ok(())
    }

    /// Sends a replay request to the encoder thread (in order with the frames) and waits for
    /// its answer; `NotReplay` unless this is a running, not yet kept, replay.
    async fn ask_replay<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, RecorderError>>) -> EncMsg,
    ) -> Result<T, RecorderError> {
        if !matches!(self.progress.mode(), RecordingMode::Replay(_)) {
            return Err(RecorderError::NotReplay);
        }
        let state = self.progress.state();
        if state.is_over() || state == RecordingState::Finishing {
            return Err(RecorderError::NotRecording(state));
        }
        let (reply, rx) = oneshot::channel();
        let tx = self.saves.clone();
        let msg = make(reply);
        // The queue is bounded (frames): waiting for room must not block a tokio worker.
        let sent = tokio::task::spawn_blocking(move || tx.send(msg).is_ok())
            .await
            .unwrap_or(false);
        if !sent {
            return Err(RecorderError::NotRecording(self.progress.state()));
        }
        rx.await
            .unwrap_or_else(|_| Err(RecorderError::NotRecording(self.progress.state())))
    }

    /// Current state without subscribing.
    pub fn state(&self) -> RecordingState {
        self.progress.state()
    }
}

struct ControlTask {
    opts: RecordingOptions,
    progress: Arc<Progress>,
    pw: Option<PwThread>,
    audio: Option<AudioThread>,
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
            self.progress.set_state(RecordingState::Recording);
            let _ = ready.send(Ok(()));
        }
    }

    async fn main_loop(&mut self) -> Ending {
        let ms = |since: tokio::time::Instant| since.elapsed().as_secs_f64() * 1e3;
        let mut tick = tokio::time::interval(TICK);
        let mut streaming_since: Option<tokio::time::Instant> = None;
        let started = tokio::time::Instant::now();
        loop {
            // Sleep exactly until the requested duration is reached, not to the next tick.
            let until_limit = self.opts.duration.map(|limit| {
                let elapsed = self
                    .progress
                    .clock
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .elapsed(monotonic_ns());
                limit.saturating_sub(elapsed)
            });
            let paused = self.progress.state() == RecordingState::Paused;
            tokio::select! {
                _ = tokio::time::sleep(until_limit.unwrap_or(TICK)), if until_limit.is_some_and(|d| d < TICK) && !paused && self.ready.is_none() => {
                    return Ending::Normal(EndReason::Duration);
                }
                cmd = self.control.recv() => match cmd {
                    Some(Control::Stop) | None => return Ending::Normal(EndReason::Stopped),
                },
                ev = self.pw_events.recv() => match ev {
                    Some(PwEvent::Format { width, height, format, path }) => {
                        // With `ms` since the recorder started: the start's timeline.
                        tracing::debug!(?format, %path, ms = ms(started), "format event");
                        self.progress.stats_tx.send_modify(|s| { s.width = width; s.height = height; s.capture_path = path; });
                    }
                    Some(PwEvent::Streaming) => {
                        tracing::debug!(ms = ms(started), "stream streaming");
                        streaming_since.get_or_insert_with(tokio::time::Instant::now);
                    }
                    Some(PwEvent::Lost(msg)) => return Ending::Normal(EndReason::StreamLost(msg)),
                    None => return Ending::Normal(EndReason::StreamLost("PipeWire thread ended".into())),
                },
                ev = self.enc_events.recv() => match ev {
                    Some(EncEvent::Opened(name)) => {
                        tracing::debug!(encoder = %name, ms = ms(started), "encoder opened");
                        self.progress.stats_tx.send_modify(|s| s.encoder = name);
                    }
                    Some(EncEvent::FirstFrame) => {
                        tracing::debug!(ms = ms(started), "first frame encoded");
                        self.mark_ready();
                    }
                    Some(EncEvent::Failed(e)) => return Ending::Error(e),
                    Some(EncEvent::Finished(_)) | None => {
                        return Ending::Error(EncodeError::EndedEarly.into())
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
                        let elapsed = self.progress.clock.lock().unwrap_or_else(|e| e.into_inner()).elapsed(monotonic_ns());
                        if elapsed >= limit {
                            return Ending::Normal(EndReason::Duration);
                        }
                    }
                    self.progress.publish();
                }
            }
        }
    }

    async fn finish(&mut self, ending: Ending) -> Result<Summary, RecorderError> {
        self.progress.set_state(RecordingState::Finishing);
        // The end of the file: now, on the recording's timeline, capped at the requested duration.
        let mut end = self
            .progress
            .clock
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
        // Every audio track up to `end`, queued before Finish (same channel, in order).
        if let Some(audio) = self.audio.take() {
            let _ = tokio::task::spawn_blocking(move || audio.finish(end)).await;
        }
        let reason = match ending {
            Ending::Normal(r) => r,
            Ending::Error(e) => {
                tracing::error!(error = %e, "recording failed");
                // Still finalize what was written: a failed recording must leave a playable file.
                let _ = self.finalize(end).await;
                self.progress.set_state(RecordingState::Failed);
                return Err(e);
            }
        };
        let result = self.finalize(end).await;
        let stats = {
            self.progress.publish();
            self.progress.stats_tx.borrow().clone()
        };
        match result {
            Ok(bytes) => {
                self.progress.counters.bytes.store(bytes, Ordering::Relaxed);
                let failed = matches!(reason, EndReason::StreamLost(_));
                self.progress.stats_tx.send_modify(|s| s.duration = end);
                self.progress.set_state(if failed {
                    RecordingState::Failed
                } else {
                    RecordingState::Finished
                });
                let stats = Stats {
                    duration: end,
                    bytes,
                    state: self.progress.state(),
                    ..stats
                };
                tracing::info!(?reason, path = %self.opts.path.display(), frames = stats.frames_written, dropped = stats.frames_dropped, "recording finished");
                Ok(Summary {
                    path: self.progress.mode().output(&self.opts.path),
                    stats,
                    reason,
                })
            }
            Err(e) => {
                self.progress.set_state(RecordingState::Failed);
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
                None => break Err(EncodeError::Ended.into()),
            }
        };
        if let Some(join) = self.enc_join.take() {
            let _ = tokio::task::spawn_blocking(move || join.join()).await;
        }
        result
    }
}

/// Connects the audio capture streams (blocking PipeWire round trip: off the tokio workers) and
/// starts the audio thread, which sends its blocks into the encoder's queue.
async fn start_audio(
    cfg: &crate::audio::AudioConfig,
    opts: &RecordingOptions,
    clock: &Arc<Mutex<RecordingClock>>,
    enc_tx: &mpsc::SyncSender<EncMsg>,
    span: &tracing::Span,
) -> Result<AudioThread, RecorderError> {
    let set = TrackSet::new(cfg.tracks.clone());
    let limit = opts.duration;
    let clock = Arc::clone(clock);
    let tx = enc_tx.clone();
    let span = span.clone();
    let (events, mut events_rx) = tmpsc::unbounded_channel();
    let thread = tokio::task::spawn_blocking(move || {
        AudioThread::start(
            &set,
            limit,
            Box::new(move |file_clock| {
                clock
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .sync_audio_clock(file_clock)
            }),
            // Blocking send, on the audio thread: the encoder's queue is the backpressure.
            Box::new(move |block| tx.send(EncMsg::Audio(block)).is_ok()),
            events,
            span,
        )
    })
    .await
    .map_err(|e| crate::audio::AudioError::Panicked {
        what: "audio start",
        source: e.into(),
    })??;
    // A source that stops is silence in the file and a line in the log; the recording goes on.
    tokio::spawn(async move {
        while let Some(ev) = events_rx.recv().await {
            if let crate::audio::AudioEvent::Lost { slot, reason } = ev {
                tracing::warn!(slot, %reason, "audio source lost; recording silence for it");
            }
        }
    });
    Ok(thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_mode_leaves() {
        let path = Path::new("/v/a.mkv");
        let limits = |save_on_stop| ReplayLimits {
            seconds: Duration::from_secs(30),
            max_bytes: 1 << 20,
            save_on_stop,
        };
        assert_eq!(RecordingMode::new(None), RecordingMode::Normal);
        assert_eq!(RecordingMode::Normal.output(path), Some(path.to_owned()));
        let replay = RecordingMode::new(Some(limits(false)));
        assert_eq!(replay, RecordingMode::Replay(limits(false)));
        assert_eq!(replay.output(path), None);
        let saving = RecordingMode::Replay(limits(true));
        assert_eq!(saving.output(path), Some(path.to_owned()));
        let kept = RecordingMode::Kept(PathBuf::from("/v/kept.mkv"));
        assert_eq!(kept.output(path), Some(PathBuf::from("/v/kept.mkv")));
    }
}
