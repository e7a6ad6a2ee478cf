//! The audio thread: takes captured chunks, places them on the file's timeline (one
//! [`SourceClock`] per capture slot), mixes each track's slots and hands contiguous
//! [`Block`]s to the encoder. Owns the audio PipeWire thread's handle.
//!
//! A track is emitted up to where all of its slots have samples, but never more than `LAG`
//! behind "now": a slot that delivers nothing (a suspended sink, an application that is
//! silent or gone, a source that vanished) is filled with silence, so the track keeps going.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::capture::{AudioCapture, AudioEvent, SlotSpec};
use super::ring::{
    recycle, Block, BlockPool, BlockReturn, Chunk, ChunkPool, BLOCKS, BLOCK_FRAMES,
    CHUNKS_PER_SOURCE,
};
use super::timing::{ns_to_frames, ClockStats, FileClock, Place, SourceBuf, SourceClock};
use super::{AudioError, AudioSource, TrackSpec, CHANNELS, RATE};

/// Capture slots per application source: one per stream the application plays (a browser may
/// play several at once).
pub const APP_SLOTS: usize = 4;
/// How far behind "now" a track may wait for a slot's samples before filling it with silence.
/// Above PipeWire's largest usual quantum (8192 frames = 171 ms).
const LAG_NS: i64 = 500_000_000;
/// Nothing is emitted for the last 50 ms before "now": the file's end is decided at stop
/// (`now` minus the first frame's delivery delay), and audio must never run past it.
const HOLD_NS: i64 = 50_000_000;
/// Samples a slot may hold unmixed.
const SLOT_BUF_FRAMES: usize = 2 * RATE as usize;

/// The tracks of a recording and the capture slots behind them.
#[derive(Debug, Clone)]
pub struct TrackSet {
    pub tracks: Vec<TrackSpec>,
    /// `(track, source)` of each slot.
    slots: Vec<(usize, AudioSource)>,
}

impl TrackSet {
    pub fn new(tracks: Vec<TrackSpec>) -> TrackSet {
        let mut slots = Vec::new();
        for (t, spec) in tracks.iter().enumerate() {
            for s in &spec.sources {
                let n = if matches!(s, AudioSource::App(_)) {
                    APP_SLOTS
                } else {
                    1
                };
                slots.extend(std::iter::repeat_n((t, s.clone()), n));
            }
        }
        TrackSet { tracks, slots }
    }

    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }
}

/// What the audio thread reports when it ends.
#[derive(Debug, Clone, Default)]
pub struct AudioSummary {
    /// Frames written per track.
    pub frames: Vec<u64>,
    pub slots: Vec<ClockStats>,
    /// Frames PipeWire delivered with no free chunk.
    pub lost_frames: u64,
    /// Blocks not delivered because the encoder did not take them.
    pub dropped_blocks: u64,
}

enum Ctl {
    Finish {
        end: Duration,
        done: SyncSender<AudioSummary>,
    },
}

/// Hands a block to the encoder thread; returns false if it is gone.
pub type BlockSink = Box<dyn FnMut(Block) -> bool + Send>;
/// Refreshes the file clock from the video timeline (origin, pauses).
pub type ClockSync = Box<dyn FnMut(&mut FileClock) + Send>;

/// The running audio side of a recording: the audio PipeWire thread and the audio thread.
pub struct AudioThread {
    ctl: SyncSender<Ctl>,
    join: Option<JoinHandle<()>>,
    capture: Option<AudioCapture>,
    blocks: BlockReturn,
}

impl AudioThread {
    /// Connects the capture streams and starts placing their samples. Blocking for the
    /// connection only (a missing PipeWire daemon fails here).
    pub fn start(
        set: &TrackSet,
        limit: Option<Duration>,
        clock_sync: ClockSync,
        sink: BlockSink,
        events: UnboundedSender<AudioEvent>,
        span: tracing::Span,
    ) -> Result<AudioThread, AudioError> {
        let n = set.slot_count();
        let (filled_tx, filled_rx) = mpsc::sync_channel::<Chunk>(n * CHUNKS_PER_SOURCE);
        let mut returns = Vec::with_capacity(n);
        let mut specs = Vec::with_capacity(n);
        for (i, (_, source)) in set.slots.iter().enumerate() {
            let pool = ChunkPool::new(i);
            returns.push(pool.give_back);
            specs.push(SlotSpec {
                source: source.clone(),
                free: pool.take,
            });
        }
        let capture = AudioCapture::spawn(specs, filled_tx, events, span.clone())?;
        let blocks = BlockPool::new(BLOCKS);
        let returner = blocks.returner();
        let (ctl_tx, ctl_rx) = mpsc::sync_channel(1);
        let mut mixer = Mixer::new(set, returns, blocks, clock_sync, sink);
        mixer.limit = limit.map(|l| ns_to_frames(l.as_nanos() as i64));
        let lost = Arc::clone(&capture.lost_frames);
        let join = std::thread::Builder::new()
            .name("zerocast-audio".into())
            .spawn(move || {
                let _enter = span.enter();
                let mut summary = mixer.run(&filled_rx, &ctl_rx);
                summary.lost_frames = lost.load(std::sync::atomic::Ordering::Relaxed);
                tracing::info!(?summary, "audio finished");
                mixer.reply(summary);
            })
            .map_err(|e| AudioError::Thread(e.into()))?;
        Ok(AudioThread {
            ctl: ctl_tx,
            join: Some(join),
            capture: Some(capture),
            blocks: returner,
        })
    }

    /// Where the encoder thread gives blocks back.
    pub fn block_return(&self) -> BlockReturn {
        self.blocks.clone()
    }

    /// Stops capturing, writes every track up to `end` (silence where nothing was captured,
    /// nothing beyond it) and waits until the last block was handed over. Blocking.
    pub fn finish(mut self, end: Duration) -> AudioSummary {
        if let Some(c) = self.capture.take() {
            c.stop();
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let _ = self.ctl.send(Ctl::Finish { end, done: tx });
        let summary = rx.recv().unwrap_or_default();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
        summary
    }
}

impl Drop for AudioThread {
    fn drop(&mut self) {
        if let Some(c) = self.capture.take() {
            c.stop();
        }
    }
}

struct Slot {
    track: usize,
    clock: SourceClock,
    buf: SourceBuf,
    started: bool,
}

struct Mixer {
    slots: Vec<Slot>,
    /// Next position to emit, per track.
    emitted: Vec<i64>,
    returns: Vec<SyncSender<Chunk>>,
    blocks: BlockPool,
    clock: FileClock,
    clock_sync: ClockSync,
    sink: BlockSink,
    /// Chunks that arrived before the file's origin was known.
    stash: std::collections::VecDeque<Chunk>,
    dropped_blocks: u64,
    reply_to: Option<SyncSender<AudioSummary>>,
    sink_gone: bool,
    /// The requested recording length, frames: nothing is emitted past it.
    limit: Option<i64>,
}

impl Mixer {
    fn new(
        set: &TrackSet,
        returns: Vec<SyncSender<Chunk>>,
        blocks: BlockPool,
        clock_sync: ClockSync,
        sink: BlockSink,
    ) -> Mixer {
        Mixer {
            slots: set
                .slots
                .iter()
                .map(|(t, _)| Slot {
                    track: *t,
                    clock: SourceClock::new(),
                    buf: SourceBuf::new(SLOT_BUF_FRAMES),
                    started: false,
                })
                .collect(),
            emitted: vec![0; set.tracks.len()],
            stash: std::collections::VecDeque::with_capacity(returns.len() * CHUNKS_PER_SOURCE),
            returns,
            blocks,
            clock: FileClock::default(),
            clock_sync,
            sink,
            dropped_blocks: 0,
            reply_to: None,
            sink_gone: false,
            limit: None,
        }
    }

    fn run(&mut self, chunks: &Receiver<Chunk>, ctl: &Receiver<Ctl>) -> AudioSummary {
        loop {
            let first = chunks.recv_timeout(Duration::from_millis(20));
            (self.clock_sync)(&mut self.clock);
            let capture_gone = match first {
                Ok(c) => {
                    self.take(c);
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            while let Ok(c) = chunks.try_recv() {
                self.take(c);
            }
            // The capture thread is gone: nothing more will come; wait for the end (or for the
            // handle to be dropped) instead of spinning.
            let msg = if capture_gone {
                ctl.recv().map_err(|_| mpsc::TryRecvError::Disconnected)
            } else {
                ctl.try_recv()
            };
            if let Err(mpsc::TryRecvError::Disconnected) = msg {
                // Dropped without finish (the recording failed to start): nothing to write.
                return self.summary();
            }
            if let Ok(Ctl::Finish { end, done }) = msg {
                // The capture thread is stopped: what is queued is all there is.
                while let Ok(c) = chunks.try_recv() {
                    self.take(c);
                }
                let end = ns_to_frames(end.as_nanos() as i64);
                for t in 0..self.emitted.len() {
                    self.emit(t, end);
                }
                self.reply_to = Some(done);
                return self.summary();
            }
            self.emit_ready();
        }
    }

    fn reply(&mut self, summary: AudioSummary) {
        if let Some(tx) = self.reply_to.take() {
            let _ = tx.send(summary);
        }
    }

    fn summary(&self) -> AudioSummary {
        AudioSummary {
            frames: self.emitted.iter().map(|&e| e.max(0) as u64).collect(),
            slots: self.slots.iter().map(|s| s.clock.stats).collect(),
            lost_frames: 0,
            dropped_blocks: self.dropped_blocks,
        }
    }

    fn take(&mut self, chunk: Chunk) {
        if self.clock.origin.is_none() {
            // Before the first video frame nothing can be placed yet; keep the newest chunks
            // (about a second per slot), the older ones belong before the file anyway.
            if self.stash.len() >= self.stash.capacity().max(1) / 2 {
                if let Some(old) = self.stash.pop_front() {
                    recycle(&self.returns, old);
                }
            }
            self.stash.push_back(chunk);
            return;
        }
        while let Some(old) = self.stash.pop_front() {
            self.place(old);
        }
        self.place(chunk);
    }

    fn place(&mut self, chunk: Chunk) {
        if let Some(s) = self.slots.get_mut(chunk.source) {
            s.clock.push(
                &self.clock,
                chunk.time_ns,
                &chunk.data,
                &mut s.buf,
                &mut s.started,
            );
        }
        recycle(&self.returns, chunk);
    }

    /// Emits every track as far as its slots allow (or `LAG` behind now).
    fn emit_ready(&mut self) {
        if self.clock.origin.is_none() {
            return;
        }
        let now = crate::clock::monotonic_ns();
        let wall = self.file_pos(now - LAG_NS);
        let cap = self
            .file_pos(now - HOLD_NS)
            .min(self.limit.unwrap_or(i64::MAX));
        for t in 0..self.emitted.len() {
            let mut target = i64::MAX;
            for s in self.slots.iter_mut().filter(|s| s.track == t) {
                if s.started && s.buf.end() < wall {
                    // Nothing from this slot for too long: it records silence meanwhile.
                    let gap = (wall - s.buf.end()) as usize;
                    s.buf.push_silence(gap);
                    s.clock.stats.gap_frames += gap as u64;
                }
                let avail = if s.started { s.buf.end() } else { wall };
                target = target.min(avail.max(wall));
            }
            // Whole blocks only (the rest at stop): ~10 messages a second per track for the
            // encoder thread instead of one per PipeWire cycle.
            let to = target.min(cap);
            if to != i64::MAX && to - self.emitted[t] >= BLOCK_FRAMES as i64 {
                let whole = (to - self.emitted[t]) / BLOCK_FRAMES as i64 * BLOCK_FRAMES as i64;
                self.emit(t, self.emitted[t] + whole);
            }
        }
    }

    /// The file position (frames) of monotonic time `t`; inside a pause, where it began.
    fn file_pos(&self, t: i64) -> i64 {
        match self.clock.place(t) {
            Place::At(ns) => ns_to_frames(ns),
            Place::Before => 0,
            Place::Paused(_) => {
                let start = self
                    .clock
                    .paused_since
                    .into_iter()
                    .chain(
                        self.clock
                            .pauses
                            .iter()
                            .filter(|p| p.0 <= t && t < p.1)
                            .map(|p| p.0),
                    )
                    .min();
                match start.map(|s| self.clock.place(s - 1)) {
                    Some(Place::At(ns)) => ns_to_frames(ns),
                    _ => 0,
                }
            }
        }
    }

    /// Emits track `t` up to position `to` (exclusive).
    fn emit(&mut self, t: usize, to: i64) {
        while self.emitted[t] < to && !self.sink_gone {
            let pos = self.emitted[t];
            let frames = ((to - pos) as usize).min(BLOCK_FRAMES);
            let Some(mut block) = self.blocks.take(Duration::from_secs(2)) else {
                // The encoder has not taken a block for 2 s: it is gone or stuck. Audio
                // skips ahead rather than holding the recording back.
                self.dropped_blocks += 1;
                self.emitted[t] = pos + frames as i64;
                continue;
            };
            block.track = t;
            block.pos = pos;
            block.data.clear();
            block.data.resize(frames * CHANNELS, 0.0);
            for s in self.slots.iter_mut().filter(|s| s.track == t) {
                s.buf.mix_into(pos, &mut block.data);
            }
            // A sum of sources may exceed full scale; clip rather than turn everything down.
            for v in &mut block.data {
                *v = v.clamp(-1.0, 1.0);
            }
            self.emitted[t] = pos + frames as i64;
            if !(self.sink)(block) {
                self.sink_gone = true;
            }
        }
    }
}
