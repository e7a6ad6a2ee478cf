//! Where the PipeWire thread puts frames: maps compositor timestamps onto the recording's
//! timeline (pauses removed), applies the fps cap, copies into a pooled buffer and queues it for
//! the encoder — or counts a drop when the encoder is behind.

use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zerocast_interop::{ConvertedFrame, CudaBridge, FrameReleaser};

use crate::encode::msg::{BridgeMemory, EncMsg};

use crate::encode::CpuConverter;
use crate::frame::{CpuFrame, FramePool, PixelFormat};
use crate::stats::Counters;

/// Set to send SHM frames to the encoder as copied RGB (the pre-I420 behaviour), for A/B
/// benchmarks of the conversion on the PipeWire thread.
const SHM_COPY_ENV: &str = "ZEROCAST_SHM_COPY";

/// The recording's clock. Compositor timestamps (SPA header PTS) are in the compositor's clock;
/// pause/stop requests are in CLOCK_MONOTONIC. Frames are placed on the monotonic clock through
/// an offset, so both can be compared even if a compositor stamps with another clock.
///
/// The offset is the smallest `arrival − PTS` seen: a frame can arrive late, never early. The
/// first frame alone may be stale: mutter under load sends the frame it recorded at stream start
/// seconds later, then fresh ones; taking that frame's lag as the offset for good put a gap of
/// the lag into the file (3 s in a 3 s recording). Later frames that arrive with less lag
/// correct it, so the file follows the wall clock from the first frame's arrival on.
#[derive(Debug, Default)]
pub(crate) struct RecordingClock {
    /// Monotonic arrival of the first frame: time zero of the file.
    origin: Option<i64>,
    /// monotonic − header clock (the least lag seen).
    offset: i64,
    /// Position of the last mapped frame: corrections never move a frame before it.
    last: i64,
    paused_since: Option<i64>,
    paused_total: i64,
    /// Closed pauses `[start, end)` (monotonic), for audio, which is placed after the fact.
    pauses: Vec<(i64, i64)>,
}

/// Less lag than this below the current offset is jitter, not a stale offset.
const STALE_NS: i64 = 50_000_000;

impl RecordingClock {
    pub fn new() -> Self {
        RecordingClock::default()
    }

    /// Position of a frame stamped `pts_ns` in the file, or `None` while paused (or when a
    /// correction of the offset would place it at or before the previous frame).
    pub fn map(&mut self, pts_ns: i64, now_mono: i64) -> Option<Duration> {
        if self.paused_since.is_some() {
            return None;
        }
        let lag = now_mono - pts_ns;
        let (origin, first) = match self.origin {
            None => {
                self.offset = lag;
                // Where the file's zero lies on the frames' clock (CLOCK_MONOTONIC for every
                // compositor we know): lets a user (or the A/V test) line the file up with
                // other material stamped on that clock.
                tracing::info!(
                    zero_ns = now_mono - lag,
                    lag_ms = lag / 1_000_000,
                    "file time zero"
                );
                (*self.origin.insert(now_mono), true)
            }
            Some(origin) => {
                if lag < self.offset - STALE_NS {
                    tracing::info!(
                        zero_ns = origin - lag,
                        moved_ms = (self.offset - lag) / 1_000_000,
                        "file time zero corrected: a frame arrived with less lag"
                    );
                    self.offset = lag;
                }
                (origin, false)
            }
        };
        let rel = pts_ns + self.offset - origin - self.paused_total;
        if !first && rel <= self.last {
            // Right after a correction, frames land at or before the last one. Clamping them
            // onto it put a burst of frames ~0 ms apart into the file (one timestamp in mkv's
            // milliseconds: non-monotonic dts); the next frame lands after it again.
            return None;
        }
        let rel = rel.max(self.last);
        self.last = rel;
        Some(Duration::from_nanos(rel.max(0) as u64))
    }

    /// Recorded time up to `now_mono` (pauses excluded).
    pub fn elapsed(&self, now_mono: i64) -> Duration {
        let Some(origin) = self.origin else {
            return Duration::ZERO;
        };
        let now = self.paused_since.unwrap_or(now_mono);
        let rel = now - origin - self.paused_total;
        Duration::from_nanos(rel.max(0) as u64)
    }

    /// Brings audio's view of the file clock up to date: audio captured at monotonic `t` lands
    /// where a frame stamped `t` lands, `t + offset − origin − paused` (the same mapping as
    /// [`RecordingClock::map`]; the compositor stamps frames with CLOCK_MONOTONIC, so a flash
    /// and a beep at the same instant share a position). Its zero is therefore
    /// `origin − offset`, and follows the offset's corrections to the least lag seen.
    /// Allocates only when a pause was added.
    pub fn sync_audio_clock(&self, clock: &mut crate::audio::timing::FileClock) {
        clock.origin = self.origin.map(|o| o - self.offset);
        clock.paused_since = if self.origin.is_some() {
            self.paused_since
        } else {
            None
        };
        if clock.pauses.len() < self.pauses.len() {
            clock
                .pauses
                .extend_from_slice(&self.pauses[clock.pauses.len()..]);
        }
    }

    pub fn pause(&mut self, now_mono: i64) {
        self.paused_since.get_or_insert(now_mono);
    }

    pub fn resume(&mut self, now_mono: i64) {
        if let Some(since) = self.paused_since.take() {
            // Before the first frame there is no file time to shift.
            if self.origin.is_some() {
                self.paused_total += now_mono - since;
                self.pauses.push((since, now_mono));
            }
        }
    }
}

/// The PipeWire thread's end of the frame path: decides which frames are recorded and hands
/// them to the encoder thread.
pub(crate) struct FrameSink {
    pool: FramePool,
    tx: SyncSender<EncMsg>,
    counters: Arc<Counters>,
    clock: Arc<Mutex<RecordingClock>>,
    /// Minimum spacing of kept frames (from the fps cap), with 10% slack for jitter.
    min_interval: Option<Duration>,
    last_kept: Option<Duration>,
    /// Whether the encoder was told the output size (done with the first frame).
    encoder_sized: bool,
    /// The file's picture size for SHM frames (`--size`, `--scale`); GPU frames come converted
    /// at it already.
    output: crate::OutputSize,
    /// Requested recording length: frames stamped after it are not part of the file.
    limit: Option<Duration>,
    /// Converts SHM frames to I420 here, on the PipeWire thread, instead of copying them.
    conv: CpuConverter,
    /// `ZEROCAST_SHM_COPY` was set: copy RGB frames as before (read once, not per frame).
    shm_copy: bool,
}

impl FrameSink {
    /// A sink that fills buffers of `pool` and queues them on `tx`, keeping at most `max_fps`
    /// frames per second and none past `limit`.
    pub fn new(
        pool: FramePool,
        tx: SyncSender<EncMsg>,
        counters: Arc<Counters>,
        clock: Arc<Mutex<RecordingClock>>,
        max_fps: Option<u32>,
        limit: Option<Duration>,
    ) -> FrameSink {
        FrameSink {
            pool,
            tx,
            counters,
            clock,
            min_interval: max_fps
                .filter(|f| *f > 0)
                .map(|f| Duration::from_secs_f64(1.0 / f as f64)),
            last_kept: None,
            encoder_sized: false,
            output: crate::OutputSize::Native,
            limit,
            conv: CpuConverter::new(Default::default()),
            shm_copy: std::env::var_os(SHM_COPY_ENV).is_some(),
        }
    }

    /// The file's picture size for SHM frames (the default: as recorded).
    pub fn set_output(&mut self, output: crate::OutputSize) {
        self.output = output;
    }

    /// An SHM frame arrived from the compositor: `bytes` from the first recorded pixel on.
    #[allow(
        clippy::too_many_arguments,
        reason = "one SHM frame: the mapped bytes, their layout and its timestamps"
    )]
    pub fn submit(
        &mut self,
        pts_ns: i64,
        now_mono: i64,
        width: u32,
        height: u32,
        format: PixelFormat,
        stride: usize,
        bytes: &[u8],
    ) {
        let Some(mut frame) = self.admit(pts_ns, now_mono) else {
            return;
        };
        let src = crate::encode::FrameRef {
            width,
            height,
            format,
            stride,
            pts: frame.pts,
            data: bytes,
        };
        // Converting straight out of the mapped buffer into the FFmpeg frame the encoder sends
        // saves the copy of the RGB frame and the encoder's copy of the planes, and the pooled
        // frame holds 1.5 bytes per pixel instead of 4. The buffer is kept across uses: no
        // allocation after the first frames.
        let r = if self.shm_copy {
            Ok(None)
        } else {
            self.conv.rgb_to_i420(&src, &mut frame.yuv)
        };
        match r {
            Ok(Some(y_stride)) => {
                frame.width = width & !1;
                frame.height = height & !1;
                frame.format = PixelFormat::I420;
                frame.stride = y_stride;
            }
            // No SIMD row loop on this CPU (or a layout the encoder's swscale handles): the
            // RGB bytes travel as they are.
            Ok(None) | Err(_) => {
                frame.data.clear();
                frame.data.extend_from_slice(bytes);
                frame.width = width;
                frame.height = height;
                frame.format = format;
                frame.stride = stride;
            }
        }
        // The encoder scales to the asked size (swscale, aspect kept).
        let size = match self.output {
            crate::OutputSize::Native => (frame.width, frame.height),
            o => o.apply(width, height),
        };
        self.send_sized(frame, size);
    }

    /// Decides whether a frame stamped `pts_ns` is recorded and, if so, hands out a pooled
    /// buffer with `pts` set, to be filled and passed to [`FrameSink::send`]. Callers with
    /// costly frames (GPU conversion) ask before doing the work.
    fn admit(&mut self, pts_ns: i64, now_mono: i64) -> Option<CpuFrame> {
        let pts = self.admit_pts(pts_ns, now_mono)?;
        self.host_buffer(pts)
    }

    /// A pooled buffer for an admitted frame at `pts`, or `None` (counted as dropped) when
    /// every buffer is queued or being encoded: the encoder is behind.
    pub fn host_buffer(&mut self, pts: Duration) -> Option<CpuFrame> {
        let Some(mut frame) = self.pool.try_take() else {
            self.dropped();
            return None;
        };
        frame.pts = pts;
        Some(frame)
    }

    /// An older buffer was replaced by a newer one before it could be recorded.
    pub fn stale(&self) {
        self.counters.skipped_stale.fetch_add(1, Ordering::Relaxed);
    }

    /// The timing half of [`FrameSink::admit`]: the frame's position in the file, or `None`
    /// when it is not recorded (paused, past the duration, over the fps cap). Frames that do
    /// not travel in a pooled buffer (CUDA slots) use this directly.
    pub fn admit_pts(&mut self, pts_ns: i64, now_mono: i64) -> Option<Duration> {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let pts = {
            let mut t = self.clock.lock().unwrap_or_else(|e| e.into_inner());
            // None: paused, the frame is not part of the recording.
            t.map(pts_ns, now_mono)?
        };
        if self.limit.is_some_and(|limit| pts > limit) {
            return None;
        }
        if let (Some(min), Some(last)) = (self.min_interval, self.last_kept) {
            if pts < last + min.mul_f64(0.9) {
                self.counters.skipped_fps.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        Some(pts)
    }

    /// Opens the encoder on the CUDA bridge now (at format time), so that the encoder is ready
    /// when the first frame arrives instead of dropping frames while it opens.
    pub fn configure_gpu(&mut self, bridge: Box<CudaBridge>, releaser: FrameReleaser) {
        if self.encoder_sized {
            return;
        }
        self.encoder_sized = true;
        // The first message of the recording: the queue is empty, this does not block.
        let _ = self.tx.send(EncMsg::GpuConfigure { bridge, releaser });
    }

    /// The encoder must reopen on a new bridge (the first frame's crop region), then drop
    /// `old`, the converter behind its previous bridge.
    pub fn reconfigure_gpu(
        &mut self,
        bridge: Box<CudaBridge>,
        releaser: FrameReleaser,
        old: BridgeMemory,
    ) {
        self.encoder_sized = true;
        // Before the first frame: only the first GpuConfigure can be queued, this does not
        // block for long. If the encoder thread is gone, so is every use of the old bridge.
        let _ = self.tx.send(EncMsg::GpuConfigure { bridge, releaser });
        let _ = self.tx.send(EncMsg::Retire(old));
    }

    /// A frame that was admitted could not be recorded (the encoder is behind).
    pub fn dropped(&self) {
        let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // When frames are lost is the first question about a lost frame (start-up, a load
        // spike, a slow disk); logged at 1, 2, 4, 8, … so that a long overload stays quiet.
        if n.is_power_of_two() {
            tracing::warn!(dropped = n, "frame dropped: the encoder is behind");
        }
    }

    /// Queues a CUDA frame for the encoder (which got the bridge at the format, in
    /// `GpuConfigure`). A frame that cannot be queued gives its slot back.
    pub fn send_gpu(&mut self, frame: ConvertedFrame, pts: Duration, releaser: &FrameReleaser) {
        self.last_kept = Some(pts);
        if self.tx.try_send(EncMsg::GpuFrame { frame, pts }).is_err() {
            releaser.release(&frame);
            self.dropped();
        }
    }

    /// Queues a frame from [`FrameSink::admit`] for the encoder.
    pub fn send(&mut self, frame: CpuFrame) {
        let size = (frame.width, frame.height);
        self.send_sized(frame, size);
    }

    /// [`FrameSink::send`], the encoder opened at `size` if this is the first frame.
    fn send_sized(&mut self, frame: CpuFrame, (width, height): (u32, u32)) {
        if !self.encoder_sized {
            self.encoder_sized = true;
            // Nothing is queued before the first frame, so this cannot block.
            let _ = self.tx.send(EncMsg::Configure { width, height });
        }
        self.last_kept = Some(frame.pts);
        if let Err(e) = self.tx.try_send(EncMsg::Frame(frame)) {
            // The encoder thread is behind, or gone (failed or finishing): the frame cannot be
            // recorded.
            self.dropped();
            let (std::sync::mpsc::TrySendError::Full(EncMsg::Frame(f))
            | std::sync::mpsc::TrySendError::Disconnected(EncMsg::Frame(f))) = e
            else {
                return;
            };
            // Keep the pool whole.
            self.pool.returner().give_back(f);
        }
    }

    /// A frame admitted but not sent (the conversion failed): its buffer goes back to the pool.
    pub fn discard(&mut self, frame: CpuFrame) {
        self.pool.returner().give_back(frame);
    }

    /// The PipeWire thread ends: the Vulkan memory its converter's CUDA bridge maps goes to
    /// the encoder thread, which drops it after its last use of the bridge. Blocking: the
    /// encoder drains its queue until it is told to finish, which happens only after the
    /// PipeWire thread has ended.
    pub fn retire(&self, memory: BridgeMemory) {
        // An error means the encoder thread is gone, and with it every use of the bridge.
        let _ = self.tx.send(EncMsg::Retire(memory));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn pause_removes_time_and_foreign_clock_is_mapped() {
        // Header clock runs 5 s behind monotonic.
        let mut t = RecordingClock::new();
        assert_eq!(t.elapsed(100 * MS), Duration::ZERO);
        assert_eq!(
            t.map(1000 * MS - 5000 * MS, 1000 * MS),
            Some(Duration::ZERO)
        );
        assert_eq!(
            t.map(1500 * MS - 5000 * MS, 1500 * MS),
            Some(Duration::from_millis(500))
        );
        t.pause(2000 * MS);
        assert_eq!(t.map(2100 * MS - 5000 * MS, 2100 * MS), None);
        assert_eq!(t.elapsed(2500 * MS), Duration::from_millis(1000));
        t.resume(4000 * MS);
        assert_eq!(
            t.map(4100 * MS - 5000 * MS, 4100 * MS),
            Some(Duration::from_millis(1100))
        );
        assert_eq!(t.elapsed(5000 * MS), Duration::from_millis(2000));
    }

    #[test]
    fn audio_follows_the_frames_mapping() {
        use crate::audio::timing::{FileClock, Place};
        let mut t = RecordingClock::new();
        let mut a = FileClock::default();
        t.sync_audio_clock(&mut a);
        assert_eq!(a.origin, None, "no file time before the first frame");
        // A stale first frame (2.5 s lag), then fresh ones (20 ms lag): a beep captured when a
        // frame was stamped lands where that frame lands.
        t.map(1000 * MS, 3500 * MS);
        let frame = t.map(3980 * MS, 4000 * MS).unwrap();
        t.sync_audio_clock(&mut a);
        assert_eq!(a.place(3980 * MS), Place::At(frame.as_nanos() as i64));
        // A pause removes the same span from audio.
        t.pause(5000 * MS);
        t.sync_audio_clock(&mut a);
        assert_eq!(a.place(5100 * MS), Place::Paused(None));
        t.resume(6000 * MS);
        t.sync_audio_clock(&mut a);
        let frame = t.map(6480 * MS, 6500 * MS).unwrap();
        assert_eq!(a.place(6480 * MS), Place::At(frame.as_nanos() as i64));
        assert_eq!(a.place(5100 * MS), Place::Paused(Some(6000 * MS)));
    }

    #[test]
    fn a_stale_first_frame_leaves_no_gap() {
        // The first frame arrives 2.5 s after its timestamp, the next ones 20 ms after theirs:
        // the file follows their arrival, not the stale frame's timestamp.
        let mut t = RecordingClock::new();
        assert_eq!(t.map(1000 * MS, 3500 * MS), Some(Duration::ZERO));
        assert_eq!(
            t.map(3980 * MS, 4000 * MS),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            t.map(4080 * MS, 4100 * MS),
            Some(Duration::from_millis(600))
        );
        // 10 ms less lag is jitter: the offset stays.
        assert_eq!(
            t.map(4190 * MS, 4200 * MS),
            Some(Duration::from_millis(710))
        );
        assert_eq!(t.elapsed(4300 * MS), Duration::from_millis(800));
    }
}
