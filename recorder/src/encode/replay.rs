//! Replay mode: the muxer keeps encoded packets in memory instead of writing a file, bounded by
//! both seconds and bytes, and writes the last N seconds on demand ([`ReplayRing::clip`] →
//! [`write_clip`], on a thread of its own: a save never holds up capture or encoding).
//!
//! - **Bounded by time and bytes.** Packets are evicted a whole GOP at a time from the front
//!   (the ring always starts at a video keyframe), while the ring without its first GOP still
//!   covers the asked seconds, and while it holds more bytes than allowed (hard content at a
//!   high bitrate: the time bound alone would not bound memory; gsr bounds by packet count and
//!   its manual tells users to switch to CBR).
//! - **Keyframes every second.** The encoder forces one at least every [`KEY_EVERY`] (by time,
//!   not frame count: a static screen sends few frames), so a clip starts within a second of
//!   the asked length.
//! - **One common offset.** A clip's timestamps are shifted by the start keyframe's time, the
//!   same for every stream, so audio and video keep their relative timing (gsr shifts each
//!   stream to zero separately, which can misalign them).
//! - **No copies.** Packets are moved from the encoder into the ring (refcounted FFmpeg
//!   buffers); a clip takes references, not copies.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ffmpeg_next::{codec, format, Packet, Rational};

use super::mux::{io_error, muxer_options, StreamIndex};
use super::muxer_name;
use crate::{Container, RecorderError};

/// Keyframe interval in replay mode: the most a clip can be longer than asked.
pub const KEY_EVERY: Duration = Duration::from_secs(1);

/// How much a replay keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayLimits {
    pub seconds: Duration,
    pub max_bytes: u64,
    /// Write the ring to the recording's path when it stops.
    pub save_on_stop: bool,
}

/// A stream of the clip: what the muxer needs to add it again.
pub(crate) struct StreamInfo {
    pub params: codec::Parameters,
    /// Time base of the packets as the encoder produced them.
    pub time_base: Rational,
}

// SAFETY: the codec parameters are an owned AVCodecParameters copy that nothing else
// references; moving it to the saving thread is as safe as moving a Vec.
unsafe impl Send for StreamInfo {}
// SAFETY: shared (in an Arc) only to be read: `Parameters::clone` copies from it
// (avcodec_parameters_copy reads the source), nothing writes it after the muxer took it.
unsafe impl Sync for StreamInfo {}

/// The ring of encoded packets of every stream, in the order the encoders produced them.
pub(crate) struct ReplayRing {
    limits: ReplayLimits,
    video: StreamIndex,
    /// Time base of each stream's packets, by stream index.
    time_bases: Vec<Rational>,
    packets: VecDeque<(StreamIndex, Packet)>,
    /// Presentation times (µs) of the video keyframes in the ring, oldest first.
    keys: VecDeque<i64>,
    bytes: u64,
    /// Newest video packet's end (pts + duration, µs).
    newest_us: i64,
    /// Packets evicted so far (for the log).
    pub evicted: u64,
}

// SAFETY: the packets are owned AVPackets (refcounted buffers FFmpeg allows to be used from any
// thread); the ring is moved to, and used on, one thread at a time.
unsafe impl Send for ReplayRing {}

/// Packets of one clip, ready to write.
pub(crate) struct Clip {
    pub packets: Vec<(StreamIndex, Packet)>,
    /// Subtracted from every timestamp (µs): the first keyframe's decode time.
    pub offset_us: i64,
    /// The clip's length.
    pub seconds: f64,
    /// Shorter than asked: the ring did not hold that much.
    pub whole_ring: bool,
}

// SAFETY: as for ReplayRing: owned packet references, used by one thread.
unsafe impl Send for Clip {}

/// A new reference to `p`'s buffer (no copy of the data: `Packet::clone` also makes it
/// writable, which copies a shared buffer).
fn packet_ref(p: &Packet) -> Packet {
    use ffmpeg_next::packet::{Mut, Ref};
    let mut out = Packet::empty();
    // SAFETY: both are valid AVPackets; `out` is blank, so av_packet_ref only adds a reference
    // to `p`'s refcounted buffer (or copies an unrefcounted one) and copies its properties.
    let r = unsafe { ffmpeg_next::ffi::av_packet_ref(out.as_mut_ptr(), p.as_ptr()) };
    if r < 0 {
        // Out of memory for a reference: fall back to a copy.
        return p.clone();
    }
    out
}

fn to_us(ts: i64, tb: Rational) -> i64 {
    let (n, d) = (tb.numerator() as i128, tb.denominator().max(1) as i128);
    (ts as i128 * n * 1_000_000 / d) as i64
}

fn from_us(us: i64, tb: Rational) -> i64 {
    let (n, d) = (tb.numerator().max(1) as i128, tb.denominator() as i128);
    (us as i128 * d / (n * 1_000_000)) as i64
}

impl ReplayRing {
    pub fn new(limits: ReplayLimits, video: StreamIndex, time_bases: Vec<Rational>) -> Self {
        // Room for the asked seconds at 60 fps plus one audio packet per 20 ms per track, so
        // the deque does not grow in steady state.
        let per_s = 60 + 50 * (time_bases.len().saturating_sub(1));
        let cap = (limits.seconds.as_secs_f64().ceil() as usize + 2) * per_s;
        ReplayRing {
            limits,
            video,
            time_bases,
            packets: VecDeque::with_capacity(cap),
            keys: VecDeque::with_capacity(limits.seconds.as_secs() as usize + 4),
            bytes: 0,
            newest_us: i64::MIN,
            evicted: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Seconds the ring covers (from its first keyframe).
    #[cfg(test)]
    pub fn seconds(&self) -> f64 {
        match self.keys.front() {
            Some(&k) if self.newest_us > k => (self.newest_us - k) as f64 / 1e6,
            _ => 0.0,
        }
    }

    fn pts_us(&self, stream: StreamIndex, pkt: &Packet) -> i64 {
        let tb = self.time_bases[stream.index()];
        to_us(pkt.pts().or(pkt.dts()).unwrap_or(0), tb)
    }

    /// Takes `pkt` (leaving an empty packet behind) and evicts what the limits no longer cover.
    pub fn push(&mut self, stream: StreamIndex, pkt: &mut Packet) {
        let pkt = std::mem::replace(pkt, Packet::empty());
        self.bytes += pkt.size() as u64;
        if stream == self.video {
            let pts = self.pts_us(stream, &pkt);
            let tb = self.time_bases[stream.index()];
            self.newest_us = self.newest_us.max(pts + to_us(pkt.duration(), tb));
            if pkt.is_key() {
                self.keys.push_back(pts);
            }
        }
        self.packets.push_back((stream, pkt));
        self.evict();
    }

    fn evict(&mut self) {
        let keep_us = self.limits.seconds.as_micros() as i64;
        // Whole GOPs while the rest still covers the seconds, or while over the byte bound.
        while self.keys.len() >= 2
            && (self.newest_us - self.keys[1] >= keep_us || self.bytes > self.limits.max_bytes)
        {
            let next_key = self.keys[1];
            self.keys.pop_front();
            while let Some((s, p)) = self.packets.front() {
                if *s == self.video && p.is_key() && self.pts_us(*s, p) == next_key {
                    break;
                }
                self.pop_front();
            }
        }
        // One GOP alone over the byte bound (a tiny bound): drop from the front anyway; a clip
        // then starts at the next keyframe.
        while self.bytes > self.limits.max_bytes && self.packets.len() > 1 {
            if let Some((s, p)) = self.packets.front() {
                if *s == self.video && p.is_key() {
                    self.keys.pop_front();
                }
            }
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, p)) = self.packets.pop_front() {
            self.bytes -= p.size() as u64;
            self.evicted += 1;
        }
    }

    /// The last `seconds` (the whole ring when `None` or more than it holds), from the latest
    /// keyframe that still gives that much. References, not copies.
    pub fn clip(&self, seconds: Option<f64>) -> Option<Clip> {
        let first_key = *self.keys.front()?;
        let want_us = seconds.map(|s| (s * 1e6) as i64);
        let start = match want_us {
            Some(w) => self
                .keys
                .iter()
                .rev()
                .find(|&&k| self.newest_us - k >= w)
                .copied()
                .unwrap_or(first_key),
            None => first_key,
        };
        let whole_ring =
            start == first_key && want_us.is_some_and(|w| self.newest_us - first_key < w - 20_000);
        let mut packets = Vec::with_capacity(self.packets.len());
        let mut offset_us = None;
        let mut in_video = false;
        for (s, p) in &self.packets {
            let pts = self.pts_us(*s, p);
            if *s == self.video {
                if !in_video {
                    if !(p.is_key() && pts == start) {
                        continue;
                    }
                    in_video = true;
                    let tb = self.time_bases[s.index()];
                    offset_us = Some(to_us(p.dts().unwrap_or(pts), tb).min(pts));
                }
            } else if pts < start {
                continue;
            }
            packets.push((*s, packet_ref(p)));
        }
        Some(Clip {
            packets,
            offset_us: offset_us?,
            seconds: (self.newest_us - start) as f64 / 1e6,
            whole_ring,
        })
    }
}

/// Writes `clip` to `path` as a complete file of `container` with `streams`. A failure removes
/// what was written (no half clip is left behind). Returns the file size.
pub(crate) fn write_clip(
    path: &Path,
    container: Container,
    streams: &[StreamInfo],
    clip: Clip,
) -> Result<u64, RecorderError> {
    let existed = path.exists();
    let r = write_clip_inner(path, container, streams, clip);
    if r.is_err() && !existed {
        let _ = std::fs::remove_file(path);
    }
    r
}

fn write_clip_inner(
    path: &Path,
    container: Container,
    streams: &[StreamInfo],
    clip: Clip,
) -> Result<u64, RecorderError> {
    let (mut octx, out_tbs) = open_output(path, container, streams)?;
    let mut end_us = 0i64;
    for (s, mut p) in clip.packets {
        let tb = streams[s.index()].time_base;
        shift_packet(&mut p, clip.offset_us, tb);
        if let Some(pts) = p.pts() {
            end_us = end_us.max(to_us(pts + p.duration(), tb));
        }
        p.set_stream(s.index());
        p.set_position(-1);
        p.rescale_ts(tb, out_tbs[s.index()]);
        p.write_interleaved(&mut octx)
            .map_err(|e| io_error(path, e, "writing"))?;
    }
    octx.write_trailer()
        .map_err(|e| io_error(path, e, "writing the trailer of"))?;
    drop(octx);
    tracing::debug!(path = %path.display(), seconds = end_us as f64 / 1e6, "replay clip written");
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| RecorderError::OutputNotWritable {
            path: path.to_owned(),
            source: super::OutputCause::Io(e.into()),
        })
}

/// Creates `path` as a `container` file with `streams` and writes its header; returns the
/// output and each stream's time base in the file.
pub(crate) fn open_output(
    path: &Path,
    container: Container,
    streams: &[StreamInfo],
) -> Result<(format::context::Output, Vec<Rational>), RecorderError> {
    let mut octx = format::output_as(path, muxer_name(container)).map_err(|e| {
        RecorderError::OutputNotWritable {
            path: path.to_owned(),
            source: e.into(),
        }
    })?;
    for s in streams {
        let mut st = octx
            .add_stream(ffmpeg_next::encoder::find(s.params.id()))
            .map_err(|e| io_error(path, e, "adding a stream to"))?;
        st.set_parameters(s.params.clone());
        st.set_time_base(s.time_base);
    }
    if streams.len() > 1 {
        // As for recordings (mux.rs): audio is not held back more than a second.
        // SAFETY: a plain integer field of the output context we own, set before the header.
        unsafe { (*octx.as_mut_ptr()).max_interleave_delta = 1_000_000 };
    }
    octx.write_header_with(muxer_options(container))
        .map_err(|e| io_error(path, e, "writing the header of"))?;
    let out_tbs = (0..streams.len())
        .map(|i| {
            octx.stream(i)
                .map_or(streams[i].time_base, |s| s.time_base())
        })
        .collect();
    Ok((octx, out_tbs))
}

/// Moves a packet's timestamps (in `tb`) back by `offset_us`.
pub(crate) fn shift_packet(p: &mut Packet, offset_us: i64, tb: Rational) {
    let shift = from_us(offset_us, tb);
    if let Some(pts) = p.pts() {
        p.set_pts(Some(pts - shift));
    }
    if let Some(dts) = p.dts() {
        p.set_dts(Some(dts - shift));
    }
}

/// Where a save goes and what it asked for.
#[derive(Debug, Clone)]
pub struct SaveRequest {
    pub path: PathBuf,
    /// Seconds to save (`None`: the whole ring).
    pub seconds: Option<f64>,
}

/// A written clip.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedReplay {
    pub path: PathBuf,
    pub seconds: f64,
    pub bytes: u64,
    /// Fewer seconds than asked were in the ring: this is all of it.
    pub whole_ring: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TB: Rational = Rational(1, 1_000_000);
    const ATB: Rational = Rational(1, 48_000);

    fn pkt(pts_us: i64, dur: i64, key: bool, size: usize) -> Packet {
        let mut p = Packet::new(size);
        p.set_pts(Some(pts_us));
        p.set_dts(Some(pts_us));
        p.set_duration(dur);
        if key {
            p.set_flags(ffmpeg_next::packet::Flags::KEY);
        }
        p
    }

    fn ring(seconds: u64, max_bytes: u64) -> ReplayRing {
        ReplayRing::new(
            ReplayLimits {
                seconds: Duration::from_secs(seconds),
                max_bytes,
                save_on_stop: false,
            },
            StreamIndex::new(0),
            vec![TB, ATB],
        )
    }

    /// 30 fps video with a keyframe every 30 frames, and 20 ms audio packets.
    fn feed(r: &mut ReplayRing, secs: i64, size: usize) {
        let v = StreamIndex::new(0);
        let a = StreamIndex::new(1);
        let mut next_audio = 0i64;
        for f in 0..secs * 30 {
            let pts = f * 33_333;
            r.push(v, &mut pkt(pts, 33_333, f % 30 == 0, size));
            while next_audio * 20_000 <= pts {
                let mut p = pkt(next_audio * 960, 960, true, 100);
                r.push(a, &mut p);
                next_audio += 1;
            }
        }
    }

    #[test]
    fn keeps_the_asked_seconds_plus_at_most_a_gop_from_a_keyframe() {
        let mut r = ring(5, u64::MAX);
        feed(&mut r, 20, 1000);
        let s = r.seconds();
        assert!((5.0..=6.05).contains(&s), "{s}");
        let (first_s, first) = r.packets.front().unwrap();
        assert_eq!(*first_s, StreamIndex::new(0));
        assert!(first.is_key());
        assert!(r.evicted > 0);
    }

    /// Hard content: frames grow from 500 B to ~12.5 kB over 20 s (30 fps, a keyframe every 30
    /// frames, 20 ms audio), under a 60 s time bound that never decides and a 1 MB byte bound
    /// that holds several GOPs at the start and fewer than three at the end. After every push
    /// the ring is checked against a model of everything pushed: within the byte bound, exactly
    /// the pushed sequence from a video keyframe on (GOPs leave whole, from the front, nothing
    /// is dropped from the middle or the back), and no more evicted than the bound needs.
    #[test]
    fn the_byte_bound_holds_when_frames_get_bigger() {
        const MAX: u64 = 1_000_000;
        let mut r = ring(60, MAX);
        let (v, a) = (StreamIndex::new(0), StreamIndex::new(1));
        // (stream, pts in its time base, size, key) of every packet pushed, in order.
        let mut pushed: Vec<(StreamIndex, i64, usize, bool)> = Vec::new();
        let mut next_audio = 0i64;
        let mut seconds_kept = Vec::new();
        for f in 0..20 * 30i64 {
            let pts = f * 33_333;
            let size = 500 + 20 * f as usize;
            let mut batch = vec![(v, pts, size, f % 30 == 0)];
            while next_audio * 20_000 <= pts {
                batch.push((a, next_audio * 960, 100, true));
                next_audio += 1;
            }
            for (s, ts, size, key) in batch {
                let mut p = pkt(ts, if s == v { 33_333 } else { 960 }, key, size);
                r.push(s, &mut p);
                pushed.push((s, ts, size, key));
                check_ring(&r, &pushed, MAX);
            }
            if f % 30 == 29 {
                seconds_kept.push(r.seconds());
            }
        }
        // The byte bound decided, more so as frames grew: fewer seconds kept at the end than
        // half-way, and far fewer than the 20 s pushed.
        let (mid, end) = (seconds_kept[9], *seconds_kept.last().unwrap());
        assert!(
            end < mid && end < 4.0,
            "kept {mid} s half-way, {end} s at the end"
        );
        assert!(r.evicted > 0);
    }

    /// The ring is the suffix of `pushed` from a video keyframe on, its byte count is right
    /// and within `max`, and the GOP before it would not have fit.
    fn check_ring(r: &ReplayRing, pushed: &[(StreamIndex, i64, usize, bool)], max: u64) {
        let n = pushed.len();
        let kept = r.packets.len();
        assert!(kept > 0 && kept <= n);
        let start = n - kept;
        let held: u64 = r.packets.iter().map(|(_, p)| p.size() as u64).sum();
        assert_eq!(held, r.bytes(), "byte count after {n} pushes");
        assert!(
            r.bytes() <= max,
            "{} bytes held after {n} pushes",
            r.bytes()
        );
        for ((s, p), (ws, wts, wsize, wkey)) in r.packets.iter().zip(&pushed[start..]) {
            assert_eq!(
                (*s, p.pts(), p.size(), p.is_key()),
                (*ws, Some(*wts), *wsize, *wkey),
                "the ring is not the pushed packets {start}..{n}"
            );
        }
        let (s, first) = r.packets.front().unwrap();
        assert!(
            *s == StreamIndex::new(0) && first.is_key(),
            "after {n} pushes the ring starts at {s:?} pts {:?}, not a video keyframe",
            first.pts()
        );
        // No more evicted than the bound needs: with the GOP before it, the ring would be over
        // the bound (it was when that GOP went, and bytes were only added since).
        if start > 0 {
            let gop = pushed[..start]
                .iter()
                .rposition(|&(s, _, _, key)| s == StreamIndex::new(0) && key)
                .expect("everything pushed starts with a keyframe");
            let with_gop: u64 = pushed[gop..].iter().map(|p| p.2 as u64).sum();
            assert!(
                with_gop > max,
                "after {n} pushes a GOP was dropped that fitted ({with_gop} bytes with it)"
            );
        }
    }

    #[test]
    fn a_clip_starts_at_a_keyframe_with_one_offset_for_all_streams() {
        let mut r = ring(10, u64::MAX);
        feed(&mut r, 20, 1000);
        let c = r.clip(Some(3.0)).unwrap();
        assert!(!c.whole_ring);
        assert!((3.0..=4.05).contains(&c.seconds), "{}", c.seconds);
        let (s0, p0) = &c.packets[0];
        assert_eq!(*s0, StreamIndex::new(0));
        assert!(p0.is_key());
        assert_eq!(c.offset_us, p0.pts().unwrap());
        // Audio in the clip starts at or after the keyframe (same clock).
        for (s, p) in &c.packets {
            if *s == StreamIndex::new(1) {
                assert!(to_us(p.pts().unwrap(), ATB) >= c.offset_us);
            }
        }
        let all = r.clip(Some(60.0)).unwrap();
        assert!(all.whole_ring);
        assert!(all.seconds >= 10.0);
    }
}
