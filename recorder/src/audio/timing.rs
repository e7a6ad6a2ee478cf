//! The audio timeline: captured chunks (CLOCK_MONOTONIC time of their first frame + samples)
//! become samples at exact positions of the file, in frames at [`RATE`] from the first video
//! frame.
//!
//! - **Anchor**: a chunk's ideal position is its capture time minus the file's origin (the
//!   first video frame's compositor timestamp, same clock) minus the pauses before it. Samples
//!   captured during a pause are removed, exactly the span video removes.
//! - **Gaps** (xruns, a stalled consumer, a suspended sink, a vanished source): the time jumps
//!   further than the samples: silence fills the difference (`GAP_FRAMES` and more). Sources
//!   that deliver nothing at all are filled up to "now" by the track (see `track.rs`).
//! - **Overlap** (the device clock ran fast, a re-anchor): samples for positions already written
//!   are dropped.
//! - **Drift** below that threshold (two clocks at slightly different rates): the error is
//!   smoothed over chunks and corrected softly by stretching a chunk by a few frames (linear
//!   interpolation, ≤ 0.4 %: inaudible), never by a jump.

use std::collections::VecDeque;

use super::{CHANNELS, RATE};

/// Errors at least this large are corrected at once (silence inserted / samples dropped):
/// 20 ms, below the ±40 ms that EBU R37 tolerates and far above PipeWire's cycle-time jitter.
pub const HARD_FRAMES: i64 = RATE as i64 / 50;
/// Errors of at least 2 ms that two chunks in a row agree on are a step (lost or repeated
/// cycles), corrected at once; below, timestamp jitter and clock drift, corrected softly.
pub const STEP_FRAMES: i64 = RATE as i64 / 500;
/// Smoothed errors below 1 ms are left alone (no correction, no trend beyond it).
pub const DEAD_FRAMES: f64 = RATE as f64 / 1000.0;

const NS: i128 = 1_000_000_000;

/// Frames of `ns` nanoseconds (rounded to nearest).
pub fn ns_to_frames(ns: i64) -> i64 {
    let v = ns as i128 * RATE as i128;
    (if v >= 0 { v + NS / 2 } else { v - NS / 2 } / NS) as i64
}

/// Nanoseconds of `frames` frames (rounded to nearest).
pub fn frames_to_ns(frames: i64) -> i64 {
    let v = frames as i128 * NS;
    let r = RATE as i128;
    (if v >= 0 { v + r / 2 } else { v - r / 2 } / r) as i64
}

/// The file's clock as audio sees it: origin and pauses, on CLOCK_MONOTONIC. Kept in sync with
/// the video timeline by the audio thread (`RecordingClock::sync_audio_clock`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileClock {
    /// File time zero on CLOCK_MONOTONIC (the recording clock's origin less its offset).
    /// `None` until the first frame.
    pub origin: Option<i64>,
    /// Closed pauses `[start, end)`, in order.
    pub pauses: Vec<(i64, i64)>,
    /// A pause in progress since this time.
    pub paused_since: Option<i64>,
}

/// Where a capture time lands in the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Place {
    /// Before the file started (dropped).
    Before,
    /// Inside a pause; the pause ends at this time (`None`: still paused).
    Paused(Option<i64>),
    /// This many nanoseconds into the file.
    At(i64),
}

impl FileClock {
    pub fn place(&self, t: i64) -> Place {
        let Some(origin) = self.origin else {
            return Place::Before;
        };
        if t < origin {
            return Place::Before;
        }
        if self.paused_since.is_some_and(|s| t >= s) {
            return Place::Paused(None);
        }
        let mut removed = 0;
        for &(s, e) in &self.pauses {
            if t >= e {
                removed += e - s;
            } else if t >= s {
                return Place::Paused(Some(e));
            } else {
                break;
            }
        }
        Place::At(t - origin - removed)
    }
}

/// Samples of one source at consecutive file positions, waiting to be mixed. A bounded deque:
/// its capacity is reserved once.
#[derive(Debug)]
pub struct SourceBuf {
    /// File position (frames) of the first sample in `data`.
    start: i64,
    data: VecDeque<f32>,
    cap_frames: usize,
    /// Frames dropped because the mixer did not take them in time.
    pub overflow_frames: u64,
}

impl SourceBuf {
    pub fn new(cap_frames: usize) -> SourceBuf {
        SourceBuf {
            start: 0,
            data: VecDeque::with_capacity(cap_frames * CHANNELS),
            cap_frames,
            overflow_frames: 0,
        }
    }

    /// Position just after the last sample (the next write position).
    pub fn end(&self) -> i64 {
        self.start + (self.data.len() / CHANNELS) as i64
    }

    /// Empties the buffer and puts the next write at `pos`.
    pub fn reset_at(&mut self, pos: i64) {
        self.data.clear();
        self.start = pos;
    }

    fn make_room(&mut self, frames: usize) {
        let len = self.data.len() / CHANNELS;
        if len + frames > self.cap_frames {
            let drop = (len + frames - self.cap_frames).min(len);
            self.data.drain(..drop * CHANNELS);
            self.start += drop as i64;
            self.overflow_frames += drop as u64;
        }
    }

    pub fn push(&mut self, samples: &[f32]) {
        self.make_room(samples.len() / CHANNELS);
        self.data.extend(samples.iter().copied());
    }

    pub fn push_silence(&mut self, frames: usize) {
        self.make_room(frames);
        self.data
            .extend(std::iter::repeat_n(0.0, frames * CHANNELS));
    }

    /// Appends `samples` resampled to `out_frames` frames by linear interpolation (a stretch
    /// of a few frames: the drift correction).
    pub fn push_stretched(&mut self, samples: &[f32], out_frames: usize) {
        let n = samples.len() / CHANNELS;
        if n < 2 || out_frames < 2 || out_frames == n {
            return self.push(samples);
        }
        self.make_room(out_frames);
        let step = (n - 1) as f64 / (out_frames - 1) as f64;
        for j in 0..out_frames {
            let x = j as f64 * step;
            let i = (x as usize).min(n - 2);
            let f = (x - i as f64) as f32;
            for c in 0..CHANNELS {
                let a = samples[i * CHANNELS + c];
                let b = samples[(i + 1) * CHANNELS + c];
                self.data.push_back(a + (b - a) * f);
            }
        }
    }

    /// Adds frames `[pos, pos + out.len()/CHANNELS)` into `out` (mixing: a plain sum, no
    /// normalisation) and forgets everything before `pos + frames`. Positions this buffer has
    /// no samples for add nothing (silence).
    pub fn mix_into(&mut self, pos: i64, out: &mut [f32]) {
        let frames = (out.len() / CHANNELS) as i64;
        // Forget what lies before pos.
        if self.start < pos {
            let drop = ((pos - self.start) as usize).min(self.data.len() / CHANNELS);
            self.data.drain(..drop * CHANNELS);
            self.start += drop as i64;
        }
        let from = self.start.max(pos);
        let to = self.end().min(pos + frames);
        if to > from {
            let skip = ((from - self.start) as usize) * CHANNELS;
            let n = ((to - from) as usize) * CHANNELS;
            let o = ((from - pos) as usize) * CHANNELS;
            for (dst, src) in out[o..o + n]
                .iter_mut()
                .zip(self.data.range(skip..skip + n))
            {
                *dst += *src;
            }
        }
        let consumed =
            ((pos + frames - self.start).max(0) as usize).min(self.data.len() / CHANNELS);
        self.data.drain(..consumed * CHANNELS);
        self.start += consumed as i64;
        if self.start < pos + frames && self.data.is_empty() {
            self.start = pos + frames;
        }
    }
}

/// What one source's clock did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClockStats {
    /// Silence inserted for gaps (time jumped further than the samples).
    pub gap_frames: u64,
    /// Samples dropped because their positions were already written (or before the file).
    pub dropped_frames: u64,
    /// Net frames added (+) or removed (−) by soft drift correction.
    pub stretched_frames: i64,
    /// Samples captured during a pause (removed like the video).
    pub paused_frames: u64,
    /// Hard corrections (gaps + overlaps).
    pub jumps: u64,
    /// Of those, steps below the hard threshold confirmed by two chunks.
    pub steps: u64,
}

/// Places one source's chunks on the file timeline.
#[derive(Debug, Default)]
pub struct SourceClock {
    /// Smoothed error (ideal − written), frames.
    err: f64,
    /// A step error seen in the last chunk, waiting for the next to confirm it.
    pending_step: Option<i64>,
    pub stats: ClockStats,
}

impl SourceClock {
    pub fn new() -> SourceClock {
        SourceClock::default()
    }

    /// Smoothed timing error in frames (positive: audio is written earlier than it happened).
    pub fn error_frames(&self) -> f64 {
        self.err
    }

    /// Writes the chunk captured from `time_ns` (first frame) into `buf` at its place.
    /// `started` says whether `buf` already holds this source's timeline (else the first
    /// sample sets it).
    pub fn push(
        &mut self,
        clock: &FileClock,
        time_ns: i64,
        samples: &[f32],
        buf: &mut SourceBuf,
        started: &mut bool,
    ) {
        let n = samples.len() / CHANNELS;
        let mut i = 0;
        while i < n {
            let t = time_ns + frames_to_ns(i as i64);
            match clock.place(t) {
                Place::Before => {
                    // Skip to the origin (or drop the whole chunk before it).
                    let skip = match clock.origin {
                        Some(o) => (ns_to_frames(o - time_ns) - i as i64).max(1) as usize,
                        None => n - i,
                    };
                    let skip = skip.min(n - i);
                    self.stats.dropped_frames += skip as u64;
                    i += skip;
                }
                Place::Paused(end) => {
                    let skip = match end {
                        Some(e) => (ns_to_frames(e - time_ns) - i as i64).max(1) as usize,
                        None => n - i,
                    };
                    let skip = skip.min(n - i);
                    self.stats.paused_frames += skip as u64;
                    i += skip;
                }
                Place::At(file_ns) => {
                    // The segment runs to the end of the chunk or to the next pause start.
                    let seg_end = next_pause_start(clock, t)
                        .map(|s| (ns_to_frames(s - time_ns).max(i as i64 + 1) as usize).min(n))
                        .unwrap_or(n);
                    let seg = &samples[i * CHANNELS..seg_end * CHANNELS];
                    self.place_segment(ns_to_frames(file_ns), seg, buf, started);
                    i = seg_end;
                }
            }
        }
    }

    fn place_segment(&mut self, ideal: i64, seg: &[f32], buf: &mut SourceBuf, started: &mut bool) {
        let n = (seg.len() / CHANNELS) as i64;
        if !*started {
            *started = true;
            buf.reset_at(ideal);
            buf.push(seg);
            self.err = 0.0;
            return;
        }
        let err = ideal - buf.end();
        if err >= HARD_FRAMES {
            self.pending_step = None;
            // Time jumped further than the samples: a gap. Silence keeps later samples at their
            // true place.
            buf.push_silence(err as usize);
            self.stats.gap_frames += err as u64;
            self.stats.jumps += 1;
            self.err = 0.0;
            buf.push(seg);
            return;
        }
        if err <= -HARD_FRAMES {
            self.stats.jumps += 1;
            self.drop_overlap(-err, seg, buf);
            return;
        }
        // A step smaller than the hard threshold: a cycle or two of samples lost (or repeated)
        // under load, while the clock went on. Left to the soft correction it took seconds
        // (0.4 %: 5 ms in 1.3 s) and showed as a trend in the sync test. A single chunk one
        // cycle off and the next back on time is timestamp jitter, not a step: act only when
        // two chunks in a row agree.
        if err.abs() >= STEP_FRAMES {
            match self.pending_step.replace(err) {
                Some(prev)
                    if prev.signum() == err.signum() && (prev - err).abs() <= STEP_FRAMES / 2 =>
                {
                    self.pending_step = None;
                    self.stats.steps += 1;
                    if err > 0 {
                        buf.push_silence(err as usize);
                        self.stats.gap_frames += err as u64;
                        self.err = 0.0;
                        buf.push(seg);
                    } else {
                        self.drop_overlap(-err, seg, buf);
                    }
                    return;
                }
                _ => {
                    // Not confirmed yet: write it where it follows, as before.
                    buf.push(seg);
                    return;
                }
            }
        }
        self.pending_step = None;
        self.err += (err as f64 - self.err) / 8.0;
        let max_adj = (n / 256).max(1);
        let adj = if self.err.abs() > DEAD_FRAMES && n >= 64 {
            ((self.err / 16.0).round() as i64).clamp(-max_adj, max_adj)
        } else {
            0
        };
        let adj = if adj == 0 && self.err.abs() > DEAD_FRAMES && n >= 64 {
            self.err.signum() as i64
        } else {
            adj
        };
        if adj != 0 {
            buf.push_stretched(seg, (n + adj) as usize);
            self.stats.stretched_frames += adj;
            // The correction is already made: don't correct it again from the smoothed past.
            self.err -= adj as f64;
        } else {
            buf.push(seg);
        }
    }
}

impl SourceClock {
    /// Drops the first `frames` of `seg` (their positions are written already) and writes the
    /// rest.
    fn drop_overlap(&mut self, frames: i64, seg: &[f32], buf: &mut SourceBuf) {
        self.pending_step = None;
        let drop = frames.min((seg.len() / CHANNELS) as i64);
        self.stats.dropped_frames += drop as u64;
        self.err = 0.0;
        buf.push(&seg[drop as usize * CHANNELS..]);
    }
}

fn next_pause_start(clock: &FileClock, t: i64) -> Option<i64> {
    clock
        .pauses
        .iter()
        .map(|&(s, _)| s)
        .chain(clock.paused_since)
        .find(|&s| s > t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const T0: i64 = 1_000_000 * MS; // an arbitrary monotonic time

    /// A ramp, so positions can be checked from the values: sample k of the source = k.
    fn chunk(first: usize, frames: usize) -> Vec<f32> {
        (first..first + frames)
            .flat_map(|k| [k as f32, -(k as f32)])
            .collect()
    }

    fn drain(buf: &mut SourceBuf, from: i64, frames: usize) -> Vec<f32> {
        let mut out = vec![0.0; frames * CHANNELS];
        buf.mix_into(from, &mut out);
        out
    }

    fn clock() -> FileClock {
        FileClock {
            origin: Some(T0),
            ..Default::default()
        }
    }

    #[test]
    fn steady_chunks_are_contiguous_and_anchored() {
        let c = clock();
        let mut sc = SourceClock::new();
        let mut buf = SourceBuf::new(48_000 * 4);
        let mut started = false;
        // The first chunk starts 10 ms after the first video frame: 480 frames of silence.
        let mut t = T0 + 10 * MS;
        for k in 0..100 {
            sc.push(&c, t, &chunk(k * 1024, 1024), &mut buf, &mut started);
            t += frames_to_ns(1024);
        }
        let out = drain(&mut buf, 0, 480 + 1024 * 100);
        assert!(out[..480 * 2].iter().all(|&s| s == 0.0));
        for k in [0usize, 1, 1023, 1024, 50_000, 102_399] {
            assert_eq!(out[(480 + k) * 2], k as f32, "frame {k}");
        }
        assert_eq!(sc.stats, ClockStats::default());
    }

    #[test]
    fn a_gap_is_filled_with_silence_and_later_samples_stay_in_place() {
        let c = clock();
        let mut sc = SourceClock::new();
        let mut buf = SourceBuf::new(48_000 * 4);
        let mut started = false;
        sc.push(&c, T0, &chunk(0, 1024), &mut buf, &mut started);
        // A 200 ms stall: the next chunk's time is 192 ms later than its samples suggest (as
        // measured on PipeWire: the time advances, the samples in between are lost).
        let t = T0 + frames_to_ns(1024) + 170 * MS;
        sc.push(&c, t, &chunk(1024, 1024), &mut buf, &mut started);
        let gap = ns_to_frames(170 * MS) as usize;
        let out = drain(&mut buf, 0, 2048 + gap);
        assert_eq!(out[1023 * 2], 1023.0);
        assert!(out[1024 * 2..(1024 + gap) * 2].iter().all(|&s| s == 0.0));
        assert_eq!(out[(1024 + gap) * 2], 1024.0);
        assert_eq!(sc.stats.gap_frames, gap as u64);
    }

    #[test]
    fn an_overlap_drops_what_was_written() {
        let c = clock();
        let mut sc = SourceClock::new();
        let mut buf = SourceBuf::new(48_000 * 4);
        let mut started = false;
        sc.push(&c, T0, &chunk(0, 4800), &mut buf, &mut started);
        // Re-anchored 50 ms back (2400 frames): frames 2400.. of this chunk land at 4800.
        sc.push(
            &c,
            T0 + 50 * MS,
            &chunk(10_000, 4800),
            &mut buf,
            &mut started,
        );
        let out = drain(&mut buf, 0, 7200);
        assert_eq!(out[4799 * 2], 4799.0);
        assert_eq!(out[4800 * 2], 12_400.0);
        assert_eq!(buf.end(), 7200);
        assert_eq!(sc.stats.dropped_frames, 2400);
    }

    /// A device clock 200 ppm off CLOCK_MONOTONIC (far worse than real hardware): over an
    /// hour the error stays within a couple of ms and has no trend; no jump ever happens.
    #[test]
    fn drift_is_corrected_softly_both_ways() {
        for ppm in [200.0f64, -200.0] {
            let c = clock();
            let mut sc = SourceClock::new();
            let mut buf = SourceBuf::new(48_000 * 4);
            let mut started = false;
            // The device delivers 1024 frames per cycle; in monotonic time a cycle lasts
            // 1024/48000 s × (1 + ppm).
            let cycle_ns = 1024.0 / 48_000.0 * 1e9 * (1.0 + ppm * 1e-6);
            let mut worst: f64 = 0.0;
            let mut pos = 0i64;
            for k in 0..(3600 * 48_000 / 1024) {
                let t = T0 + (k as f64 * cycle_ns) as i64;
                sc.push(&c, t, &chunk(0, 1024), &mut buf, &mut started);
                // Where the next chunk belongs vs where it would be written.
                let ideal = ns_to_frames(((k + 1) as f64 * cycle_ns) as i64);
                let err = ideal - buf.end();
                if k > 200 {
                    worst = worst.max((err as f64).abs());
                }
                // Keep the buffer small: mix out what was written.
                let end = buf.end();
                let mut out = vec![0.0; ((end - pos) as usize) * CHANNELS];
                buf.mix_into(pos, &mut out);
                pos = end;
            }
            assert!(
                worst <= 2.0 * DEAD_FRAMES,
                "ppm {ppm}: worst error {worst} frames"
            );
            assert_eq!(sc.stats.jumps, 0, "ppm {ppm}");
            let expected = 3600.0 * 48_000.0 * ppm * 1e-6;
            let got = sc.stats.stretched_frames as f64;
            assert!(
                (got - expected).abs() < 100.0,
                "ppm {ppm}: stretched {got}, expected {expected}"
            );
        }
    }

    /// Feeds `chunks` chunks of 256 frames (one 5.33 ms cycle each) at their true times, except
    /// that `lose` (index) is never delivered and `late` is stamped a cycle late; returns where
    /// each delivered chunk's first sample ended up and the clock.
    fn cycles(
        chunks: usize,
        lose: Option<usize>,
        late: Option<usize>,
    ) -> (Vec<(usize, i64)>, SourceClock) {
        let c = clock();
        let mut sc = SourceClock::new();
        let mut buf = SourceBuf::new(48_000 * 4);
        let mut started = false;
        let mut placed = Vec::new();
        for k in 0..chunks {
            if Some(k) == lose {
                continue;
            }
            let mut t = T0 + frames_to_ns(256 * k as i64);
            if Some(k) == late {
                t += frames_to_ns(256);
            }
            let before = buf.end();
            sc.push(&c, t, &chunk(k * 256, 256), &mut buf, &mut started);
            // Where sample k·256 landed: the chunk's start, after any silence put before it.
            let landed = buf.end() - 256;
            placed.push((k, landed.max(before)));
        }
        (placed, sc)
    }

    /// One cycle lost under load (5.3 ms: below the hard threshold): the next chunk is written
    /// where it follows, the one after confirms the step and is back at its true place — not
    /// seconds later by soft correction.
    #[test]
    fn a_lost_cycle_is_corrected_by_the_next_chunk() {
        let (placed, sc) = cycles(400, Some(100), None);
        for &(k, at) in &placed {
            if k <= 99 || k >= 102 {
                assert_eq!(at, 256 * k as i64, "chunk {k}");
            }
        }
        assert_eq!(sc.stats.steps, 1);
        assert_eq!(sc.stats.stretched_frames, 0);
        assert!(sc.error_frames().abs() < 1.0);
    }

    /// A chunk stamped one cycle late while its samples are contiguous (seen on PipeWire when
    /// two buffers are dequeued in one cycle) is jitter: nothing is inserted or dropped.
    #[test]
    fn a_single_late_stamp_is_jitter_not_a_step() {
        let (placed, sc) = cycles(400, None, Some(100));
        for &(k, at) in &placed {
            assert_eq!(at, 256 * k as i64, "chunk {k}");
        }
        assert_eq!(sc.stats.steps, 0);
        assert_eq!(sc.stats.gap_frames, 0);
        assert_eq!(sc.stats.dropped_frames, 0);
    }

    /// The same cycle delivered twice (samples ahead of the clock): the repeat is dropped once
    /// two chunks agree.
    #[test]
    fn a_repeated_cycle_is_dropped() {
        let c = clock();
        let mut sc = SourceClock::new();
        let mut buf = SourceBuf::new(48_000 * 4);
        let mut started = false;
        for k in 0..200i64 {
            let src = if k >= 100 { k - 1 } else { k };
            let t = T0 + frames_to_ns(256 * src);
            sc.push(&c, t, &chunk(k as usize * 256, 256), &mut buf, &mut started);
        }
        // 200 chunks delivered for 199 cycles of time: 256 frames dropped, end at its true place.
        assert_eq!(buf.end(), 199 * 256);
        assert_eq!(sc.stats.steps, 1);
        assert_eq!(sc.stats.dropped_frames, 256);
    }

    #[test]
    fn pauses_remove_the_same_span_as_video() {
        // Paused from 1 s to 3.5 s after the origin.
        let c = FileClock {
            origin: Some(T0),
            pauses: vec![(T0 + 1000 * MS, T0 + 3500 * MS)],
            paused_since: None,
        };
        let mut sc = SourceClock::new();
        let mut buf = SourceBuf::new(48_000 * 8);
        let mut started = false;
        // Continuous capture for 5 s in chunks of 960 frames (20 ms).
        for k in 0..250usize {
            let t = T0 + k as i64 * 20 * MS;
            sc.push(&c, t, &chunk(k * 960, 960), &mut buf, &mut started);
        }
        // 5 s captured − 2.5 s paused = 2.5 s in the file.
        assert_eq!(buf.end(), 120_000);
        let out = drain(&mut buf, 0, 120_000);
        // Frame 48000 of the file (1 s) is the first one captured after the pause (3.5 s).
        assert_eq!(out[47_999 * 2], 47_999.0);
        assert_eq!(out[48_000 * 2], 168_000.0);
        assert_eq!(sc.stats.paused_frames, 120_000);
        assert_eq!(sc.stats.jumps, 0);
        // During a pause still open, nothing is written.
        let open = FileClock {
            origin: Some(T0),
            pauses: vec![],
            paused_since: Some(T0 + 100 * MS),
        };
        let mut buf = SourceBuf::new(48_000);
        let mut started = false;
        sc.push(&open, T0 + 200 * MS, &chunk(0, 960), &mut buf, &mut started);
        assert!(!started);
    }

    #[test]
    fn samples_before_the_first_video_frame_are_dropped() {
        let c = clock();
        let mut sc = SourceClock::new();
        let mut buf = SourceBuf::new(48_000);
        let mut started = false;
        // Starts 10 ms before the origin: frames 0..480 are dropped, frame 480 is at 0.
        sc.push(&c, T0 - 10 * MS, &chunk(0, 1024), &mut buf, &mut started);
        let out = drain(&mut buf, 0, 544);
        assert_eq!(out[0], 480.0);
        assert_eq!(buf.end(), 544);
        assert_eq!(sc.stats.dropped_frames, 480);
    }

    #[test]
    fn mixing_sums_without_normalising() {
        let mut a = SourceBuf::new(1000);
        let mut b = SourceBuf::new(1000);
        a.reset_at(0);
        a.push(&[0.25; 200]);
        b.reset_at(50);
        b.push(&[0.5; 100]);
        let mut out = vec![0.0; 200];
        a.mix_into(0, &mut out);
        b.mix_into(0, &mut out);
        assert_eq!(out[0], 0.25);
        assert_eq!(out[99], 0.25);
        assert_eq!(out[100], 0.75);
        assert_eq!(out[199], 0.75);
        assert_eq!(a.end(), 100);
        assert_eq!(b.end(), 100);
    }
}
