//! FFmpeg encoders + muxer, and the encoder thread that runs them.
//!
//! | file | does |
//! |---|---|
//! | `msg.rs` | the encoder thread's messages (`EncMsg`) and events (`EncEvent`) |
//! | `worker.rs` | the encoder thread: its body and lifecycle (`Stage`) |
//! | `error.rs` | `EncodeError` (one variant per failure, the FFmpeg/CUDA/io cause as its source) and `OutputCause` |
//! | `gpu_output.rs` | GPU ownership as types: encoder → CUDA stream → bridge → Vulkan memory |
//! | `mod.rs` | `Encoder` (software video encoder on a muxer), encoder tables, `check_encoder` |
//! | `mux.rs` | the output file: streams added by index, header, packets, trailer |
//! | `nvenc.rs`, `hwframes.rs` | `GpuEncoder`: NVENC on our CUDA context, or a software encoder fed from CUDA |
//! | `convert.rs` | `CpuConverter`: RGB/NV12 → I420 (AVX2/SSE4.1, swscale fallback) |
//!
//! CONTRACT:
//! - `Encoder::open(&EncoderConfig)` opens the software encoder for the codec (libx264 default,
//!   libx265, libsvtav1/libaom-av1, libvpx-vp9), then the muxer (mkv; mp4 fragmented; webm) with
//!   one video stream, and writes the header. Errors map to `RecorderError::{EncoderUnavailable, OutputNotWritable, ..}`.
//! - `push(&mut self, &CpuFrame)` converts (swscale, context cached per input format/size) into
//!   a reused YUV420P/NV12 frame and encodes it at `frame.pts` (µs time base, VFR).
//! - `finish(self, end: Duration)` makes the file last until `end` (repeats the last frame at
//!   `end` when the screen was static), flushes the encoder, writes the trailer.
//! - `bytes_written()` and `name()` for stats.
//! - `available_encoders(codec)` lists encoder names present in this FFmpeg build.
//! - GPU frames (interop's CUDA NV12 slots) go through `nvenc::GpuEncoder`: NVENC on FFmpeg CUDA
//!   hw frames sharing our context/stream, or a software encoder fed by one pinned download.
//!   `check_encoder` tries NVENC first for `auto` and `nvenc` (`nvenc::nvenc_status` says why not).
//!
//! Timing: everything is in microseconds from the recording start. Frames arrive VFR (a static
//! screen sends nothing for seconds); each packet's duration is the gap to the next packet, so
//! muxers never see `duration = 0` (FFmpeg 5.1's libx264 wrapper leaves it 0, and the mp4 muxer
//! then drops the last frame from its edit list).
//!
//! Crash safety: mp4 is fragmented (moof every keyframe and at least every second), mkv/webm
//! close a cluster at least every second, and every packet is flushed to the kernel — a killed
//! process loses at most about a second. Dropping an `Encoder` without `finish` still finalises
//! the file (best effort).

pub(crate) mod audio;
mod convert;
mod error;
mod gpu_output;
pub mod hwframes;
mod log;
pub(crate) mod msg;
mod mux;
pub mod nvenc;
pub mod replay;
pub(crate) mod worker;

use std::path::PathBuf;
use std::time::Duration;

use ffmpeg_next::{codec, encoder, ffi, format, frame, Dictionary, Packet, Rational};

use crate::frame::{CpuFrame, PixelFormat};
use crate::{Codec, Container, EncoderChoice, OptionError, RateControl, RecorderError};
use mux::{Muxer, MuxerSetup, StreamIndex};

pub use convert::ConverterChoice;
#[doc(hidden)]
pub use convert::CpuConverter;
pub use error::{EncodeError, OutputCause};
pub use nvenc::{nvenc_probe_count, nvenc_status, GpuEncoder, Selection};

/// What the encoder is fed.
pub(crate) enum Input<'a> {
    /// `CpuFrame`s converted into a reused YUV420P frame (`Encoder::push`).
    Cpu,
    /// A host frame (NV12, or YUV420P for encoders without NV12) that the caller refills
    /// before each `encode_frame_at`.
    Host(frame::Video),
    /// CUDA frames of this pool (NVENC); the caller puts one in `frame_mut` per frame.
    Cuda(&'a hwframes::CudaFrames),
}

/// The least spacing of two frames' timestamps (µs): the coarsest time base of our containers
/// (mkv/webm: 1 ms).
const MIN_PTS_STEP_US: i64 = 1000;

/// Everything needed to open the output.
#[derive(Debug, Clone)]
pub struct EncoderConfig {
    pub path: PathBuf,
    pub container: Container,
    pub codec: Codec,
    pub encoder: EncoderChoice,
    pub rate: RateControl,
    pub keyint: u32,
    /// The encoder selected for the recording ([`select_encoder`], evaluated once by the front
    /// door); `None` evaluates the rule here (library use, tests, benchmarks).
    pub selected: Option<Selection>,
    /// Output size (the negotiated stream size); frames of another size are scaled to it.
    /// Odd sizes are rounded down to even (4:2:0 needs even dimensions); the extra row/column of
    /// the capture is cropped.
    pub width: u32,
    pub height: u32,
    /// Audio tracks to add next to the video (their own encoders, the same muxer).
    pub audio: Option<crate::audio::AudioConfig>,
    /// Replay mode: keep packets in a ring instead of writing the file.
    pub replay: Option<replay::ReplayLimits>,
}

/// A borrowed frame: the same fields as [`CpuFrame`] over pixels owned elsewhere, e.g. a mapped
/// PipeWire SHM buffer, so it can be converted without first copying it into a `CpuFrame`.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// Bytes per row (for NV12: of the Y plane; the UV plane follows at `stride * height`).
    pub stride: usize,
    pub pts: Duration,
    pub data: &'a [u8],
}

impl<'a> From<&'a CpuFrame> for FrameRef<'a> {
    fn from(f: &'a CpuFrame) -> Self {
        FrameRef {
            width: f.width,
            height: f.height,
            format: f.format,
            stride: f.stride,
            pts: f.pts,
            data: f.bytes(),
        }
    }
}

/// Knobs for benchmarks and experiments; `Default` is what production uses.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Tuning {
    /// Encoder threads; `None` picks by output size (see `x264_threads`).
    pub threads: Option<u32>,
    /// libx264 `tune=zerolatency` (sliced threads, no lookahead).
    pub zerolatency: bool,
    pub converter: ConverterChoice,
}

/// Microseconds: the time base of encoder and of the pts we hand it.
const TIME_BASE: Rational = Rational(1, 1_000_000);
/// Duration given to the very last packet when nothing better is known, and of the frame
/// repeated at the end of a static stretch: one 60 Hz frame.
const NOMINAL_FRAME_US: i64 = 16_667;

/// An open video encoder and the muxer writing its file.
pub struct Encoder {
    mux: Muxer,
    /// Our stream in `mux`.
    video: StreamIndex,
    enc: encoder::Video,
    name: &'static str,
    /// Reused destination of the colour conversion; also what is repeated at the end, unless
    /// the last frame was sent as it came (`last_pooled`).
    yuv: frame::Video,
    conv: CpuConverter,
    /// Whether I420 frames of the output size may be sent as they are (`push_pooled`): the
    /// encoder takes YUV420P from the CPU.
    takes_pooled: bool,
    /// The last frame, when it was sent without a copy: held until the next one (it is what
    /// `finish` repeats), then given back to its pool.
    last_pooled: Option<CpuFrame>,
    /// Receives packets from the encoder.
    pkt: Packet,
    /// The previous packet, written once the next one tells its duration.
    held: Option<Packet>,
    spare: Option<Packet>,
    last_pts: Option<i64>,
    adjusted_pts: u64,
    finished: bool,
    /// One encoder per audio track (streams 1..); with audio the muxer interleaves.
    audio: Vec<audio::AudioEncoder>,
    /// Replay mode: a keyframe at least this often (µs), by time.
    key_every_us: Option<i64>,
    last_key_pts: Option<i64>,
}

// The encoder thread owns the encoder; it is moved there once.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Encoder>()
};

impl Encoder {
    pub fn open(cfg: &EncoderConfig) -> Result<Encoder, RecorderError> {
        Self::open_tuned(cfg, Tuning::default())
    }

    #[doc(hidden)]
    pub fn open_tuned(cfg: &EncoderConfig, tuning: Tuning) -> Result<Encoder, RecorderError> {
        log::init();
        let name = match &cfg.selected {
            Some(selection) => selection.name,
            None => check_encoder(cfg.codec, cfg.encoder, cfg.container)?,
        };
        Self::open_input(cfg, tuning, name, Input::Cpu)
    }

    /// Opens encoder `name` (already chosen) for frames of `input`.
    pub(crate) fn open_input(
        cfg: &EncoderConfig,
        tuning: Tuning,
        name: &'static str,
        input: Input<'_>,
    ) -> Result<Encoder, RecorderError> {
        log::init();
        let unavailable = |reason: String| RecorderError::EncoderUnavailable {
            codec: cfg.codec,
            reason,
        };
        let av_codec = encoder::find_by_name(name)
            .ok_or_else(|| unavailable(format!("{name} is not in this FFmpeg build")))?;
        let (width, height) = (cfg.width & !1, cfg.height & !1);
        if width == 0 || height == 0 {
            return Err(EncodeError::TooSmall {
                width: cfg.width,
                height: cfg.height,
            }
            .into());
        }

        // The encoder is opened before the file is created so a bad encoder leaves no empty file.
        let mut ctx = codec::context::Context::new_with_codec(av_codec)
            .encoder()
            .video()
            .map_err(|e| unavailable(e.to_string()))?;
        ctx.set_width(width);
        ctx.set_height(height);
        ctx.set_format(match &input {
            Input::Cpu => format::Pixel::YUV420P,
            Input::Host(f) => f.format(),
            Input::Cuda(_) => format::Pixel::CUDA,
        });
        if let Input::Cuda(frames) = &input {
            // SAFETY: the context is not open yet; it takes its own reference to the pool
            // (and through it to our CUDA context and stream).
            unsafe {
                (*ctx.as_mut_ptr()).hw_frames_ctx = ffi::av_buffer_ref(frames.frames_ref());
            }
        }
        ctx.set_time_base(TIME_BASE);
        // Nominal rate only: it informs the encoders' rate-control defaults; real timing is the
        // µs pts (VFR). Not copied to the stream, so players don't assume CFR.
        ctx.set_frame_rate(Some(Rational(60, 1)));
        ctx.set_gop(cfg.keyint.max(1));
        ctx.set_max_b_frames(0);
        ctx.set_colorspace(ffmpeg_next::color::Space::BT709);
        ctx.set_color_range(ffmpeg_next::color::Range::MPEG);
        ctx.set_color_primaries(ffmpeg_next::color::Primaries::BT709);
        ctx.set_color_transfer_characteristic(ffmpeg_next::color::TransferCharacteristic::BT709);
        // The muxer is known before the file exists, so ask it now whether codec headers must go
        // out of band (mkv, mp4 and webm all say yes).
        if muxer_wants_global_header(muxer_name(cfg.container)) {
            ctx.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        if let RateControl::Bitrate(kbps) = cfg.rate {
            ctx.set_bit_rate(kbps as usize * 1000);
        }
        let mut opts = encoder_options(name, cfg, width, height, tuning);
        if cfg.replay.is_some() {
            // The keyframes forced every second (a clip starts at one) must be IDR frames, not
            // just intra frames, for a clip to decode from its start (libx264, NVENC).
            opts.0.set("forced-idr", "1");
        }
        if let Some(t) = opts.1 {
            ctx.set_threading(codec::threading::Config {
                // FFmpeg's default thread_type (frame|slice) makes its libx264 wrapper switch
                // sliced threads off, even under tune=zerolatency; say what we mean.
                kind: if tuning.zerolatency {
                    codec::threading::Type::Slice
                } else {
                    codec::threading::Type::Frame
                },
                count: t as usize,
                ..Default::default()
            });
        }
        // FFmpeg's error lines become part of the reason (NVENC says why only there).
        let (enc, lines) = log::capture(|| ctx.open_with(opts.0));
        let enc = enc.map_err(|e| unavailable(nvenc::explain(name, &lines, &e.to_string())))?;

        // A failure from here on removes the file again (MuxerSetup's Drop): no stub is left.
        let mut setup = MuxerSetup::create(&cfg.path, cfg.container, cfg.replay)?;
        let video = setup.add_stream(av_codec, &enc, cfg.codec)?;
        let mut audio_encs = Vec::new();
        if let Some(a) = &cfg.audio {
            let global = muxer_wants_global_header(muxer_name(cfg.container));
            for _ in &a.tracks {
                audio_encs.push(audio::AudioEncoder::open(
                    &mut setup, a.codec, a.bitrate, global,
                )?);
            }
        }
        let mux = setup.start()?;
        tracing::debug!(
            encoder = name,
            width,
            height,
            path = %cfg.path.display(),
            "encoder open"
        );

        Ok(Encoder {
            mux,
            video,
            enc,
            name,
            takes_pooled: matches!(input, Input::Cpu),
            last_pooled: None,
            yuv: match input {
                Input::Cpu => frame::Video::new(format::Pixel::YUV420P, width, height),
                Input::Host(f) => f,
                Input::Cuda(_) => frame::Video::empty(),
            },
            conv: CpuConverter::new(tuning.converter),
            pkt: Packet::empty(),
            held: None,
            spare: Some(Packet::empty()),
            last_pts: None,
            adjusted_pts: 0,
            finished: false,
            audio: audio_encs,
            key_every_us: cfg.replay.map(|_| replay::KEY_EVERY.as_micros() as i64),
            last_key_pts: None,
        })
    }

    /// Converts and encodes one frame at `frame.pts`. A frame whose pts is not after the previous
    /// one (or less than 1 ms after it) is encoded 1 ms after it instead (timestamps must
    /// strictly increase in every container's time base).
    pub fn push(&mut self, frame: &CpuFrame) -> Result<(), RecorderError> {
        self.push_ref(&frame.into())
    }

    /// `push` for pixels that are not in a `CpuFrame` (no copy needed first).
    pub fn push_ref(&mut self, frame: &FrameRef<'_>) -> Result<(), RecorderError> {
        let pts = self.next_pts(frame.pts)?;
        make_writable(&mut self.yuv)?;
        self.conv.convert(frame, &mut self.yuv)?;
        // The converted frame is the last one now. A pooled frame still held is not given back
        // to its pool from here; the encoder thread only pushes through `push_pooled`, which
        // gives it back first.
        self.last_pooled = None;
        self.encode_current(pts)
    }

    /// Encodes a frame of a pool: an I420 frame of the output size goes to the encoder as it
    /// is, with no copy — the encoder holds it until the next frame (it is what `finish`
    /// repeats) and gives back the one it held before; any other frame is converted (`push`)
    /// and given back at once. `give_back` returns buffers to their pool, also on errors.
    pub fn push_pooled(
        &mut self,
        mut frame: CpuFrame,
        mut give_back: impl FnMut(CpuFrame),
    ) -> Result<(), RecorderError> {
        let direct = self.takes_pooled
            && frame.format == PixelFormat::I420
            && (frame.width, frame.height) == (self.yuv.width(), self.yuv.height())
            && frame.yuv.frame_mut().is_some();
        if !direct {
            // The converted frame becomes the last one: the held one goes back first (`push`
            // would drop it).
            if let Some(prev) = self.last_pooled.take() {
                give_back(prev);
            }
            let r = self.push(&frame);
            give_back(frame);
            return r;
        }
        let pts = match self.next_pts(frame.pts) {
            Ok(pts) => pts,
            Err(e) => {
                give_back(frame);
                return Err(e);
            }
        };
        if let Some(prev) = self.last_pooled.replace(frame) {
            give_back(prev);
        }
        self.encode_current(pts)
    }

    /// The frame the next `encode_frame_at` sends (GPU paths fill it).
    pub(crate) fn frame_mut(&mut self) -> &mut frame::Video {
        &mut self.yuv
    }

    /// Whether no one but us references the frame's buffer, so it may be overwritten.
    pub(crate) fn frame_unshared(&self) -> bool {
        // SAFETY: reading a valid AVFrame and, if set, its buffer's refcount.
        unsafe {
            let b = (*self.yuv.as_ptr()).buf[0];
            b.is_null() || ffi::av_buffer_get_ref_count(b) == 1
        }
    }

    /// Encodes `frame_mut()` at `pts` (same pts rules as `push`).
    pub(crate) fn encode_frame_at(&mut self, pts: Duration) -> Result<(), RecorderError> {
        let pts = self.next_pts(pts)?;
        self.encode_current(pts)
    }

    fn next_pts(&mut self, pts: Duration) -> Result<i64, RecorderError> {
        if self.finished {
            return Err(EncodeError::AlreadyFinished.into());
        }
        let mut pts = i64::try_from(pts.as_micros()).unwrap_or(i64::MAX);
        match self.last_pts {
            // The file starts at 0 even if the first frame arrived a little after the recording
            // started: it is the best picture of that moment, and a late start would shorten
            // the file (mp4 has no edit list in fragmented mode).
            None => pts = 0,
            // Not just "after": mkv/webm store milliseconds, so a frame less than 1 ms after the
            // previous one would share its timestamp in the file (a decoder then reports
            // non-monotonic dts). The recording clock produces such frames when it corrects a
            // stale first frame's offset (it clamps to the previous position).
            Some(last) if pts < last + MIN_PTS_STEP_US => {
                pts = last + MIN_PTS_STEP_US;
                self.adjusted_pts += 1;
                if self.adjusted_pts.is_power_of_two() {
                    tracing::debug!(
                        count = self.adjusted_pts,
                        "non-increasing frame pts adjusted"
                    );
                }
            }
            Some(_) => {}
        }
        Ok(pts)
    }

    /// Makes the file last until `end`, flushes the encoder and writes the trailer. Returns the
    /// file size.
    pub fn finish(mut self, end: Duration) -> Result<u64, RecorderError> {
        let end = i64::try_from(end.as_micros()).unwrap_or(i64::MAX);
        self.finalize(Some(end))
    }

    /// Bytes written so far (the muxer's output position).
    pub fn bytes_written(&self) -> u64 {
        self.mux.bytes_written()
    }

    /// FFmpeg name of the encoder in use, e.g. `libx264`.
    pub fn name(&self) -> &str {
        self.name
    }

    /// A failed call of this encoder, named by it.
    fn codec_error(&self, source: ffmpeg_next::Error) -> RecorderError {
        EncodeError::Codec {
            encoder: self.name,
            source,
        }
        .into()
    }

    /// Frames whose pts had to be moved forward to keep timestamps increasing.
    pub fn adjusted_frames(&self) -> u64 {
        self.adjusted_pts
    }

    /// Encodes the last frame (the held pooled one, or the converted one) at `pts`.
    fn encode_current(&mut self, pts: i64) -> Result<(), RecorderError> {
        let key = self
            .key_every_us
            .is_some_and(|every| self.last_key_pts.is_none_or(|k| pts - k >= every));
        if key {
            self.last_key_pts = Some(pts);
        }
        let frame = match self.last_pooled.as_mut().and_then(|f| f.yuv.frame_mut()) {
            Some(pooled) => pooled,
            None => &mut self.yuv,
        };
        frame.set_pts(Some(pts));
        frame.set_kind(if key {
            ffmpeg_next::picture::Type::I
        } else {
            ffmpeg_next::picture::Type::None
        });
        self.enc
            .send_frame(frame)
            .map_err(|e| self.codec_error(e))?;
        self.last_pts = Some(pts);
        self.drain()
    }

    /// Moves every ready packet from the encoder to the muxer.
    fn drain(&mut self) -> Result<(), RecorderError> {
        loop {
            match self.enc.receive_packet(&mut self.pkt) {
                Ok(()) => self.on_packet()?,
                Err(ffmpeg_next::Error::Other {
                    errno: libc::EAGAIN,
                })
                | Err(ffmpeg_next::Error::Eof) => return Ok(()),
                Err(e) => return Err(self.codec_error(e)),
            }
        }
    }

    /// Holds the new packet and writes the previous one, now that its duration is known.
    fn on_packet(&mut self) -> Result<(), RecorderError> {
        let new_pkt = std::mem::replace(
            &mut self.pkt,
            self.spare.take().unwrap_or_else(Packet::empty),
        );
        if let Some(mut prev) = self.held.replace(new_pkt) {
            let next = self.held.as_ref().and_then(|p| p.dts().or(p.pts()));
            let dur = match (next, prev.dts().or(prev.pts())) {
                (Some(n), Some(p)) if n > p => n - p,
                _ => 1,
            };
            prev.set_duration(dur);
            let res = self.write(&mut prev);
            self.spare = Some(prev);
            res?;
        }
        Ok(())
    }

    fn write(&mut self, pkt: &mut Packet) -> Result<(), RecorderError> {
        self.mux.write(self.video, pkt)
    }

    /// Encodes a block of an audio track (from the audio thread) into the file.
    pub fn push_audio(&mut self, block: &crate::audio::Block) -> Result<(), RecorderError> {
        if self.finished {
            return Err(EncodeError::AlreadyFinished.into());
        }
        let Some(a) = self.audio.get_mut(block.track) else {
            return Ok(());
        };
        a.push(block, &mut self.mux)
    }

    /// Replay mode → a recording to `path` that starts with what the ring holds.
    pub(crate) fn keep(&mut self, path: &std::path::Path) -> Result<(), RecorderError> {
        self.mux.keep(path)
    }

    /// Replay mode: the last `seconds` of the ring as a job for another thread.
    pub(crate) fn save_job(&self, seconds: Option<f64>) -> Result<mux::SaveJob, RecorderError> {
        self.mux.save_job(seconds)
    }

    /// Whether the file has audio tracks.
    pub fn has_audio(&self) -> bool {
        !self.audio.is_empty()
    }

    /// The end of the recording: repeat the last frame so the file lasts until `end`, flush,
    /// write the trailer. Every step is tried even if an earlier one failed, so the file is as
    /// playable as possible; the first error is returned.
    fn finalize(&mut self, end: Option<i64>) -> Result<u64, RecorderError> {
        if self.finished {
            return Ok(self.bytes_written());
        }
        self.finished = true;
        let mut first_err: Option<RecorderError> = None;
        let mut keep = |r: Result<(), RecorderError>| {
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        };

        if let (Some(last), Some(end)) = (self.last_pts, end) {
            // A static screen sends no frames: show the last one again just before `end`, so the
            // file (last packet pts + its duration) ends exactly at `end`.
            if end - last > NOMINAL_FRAME_US {
                keep(self.encode_current(end - NOMINAL_FRAME_US));
            }
        }
        keep(self.enc.send_eof().map_err(|e| self.codec_error(e)));
        keep(self.drain());
        if let Some(mut last) = self.held.take() {
            let pts = last.pts().unwrap_or(0);
            let dur = match end {
                Some(end) if end > pts => end - pts,
                _ => NOMINAL_FRAME_US,
            };
            last.set_duration(dur);
            keep(self.write(&mut last));
        }
        // Audio tracks end where the video ends (`end`), padded with silence if need be.
        let end_frames = match end {
            Some(end) => crate::audio::timing::ns_to_frames(end * 1000),
            None => i64::MIN,
        };
        for a in &mut self.audio {
            keep(a.finish(end_frames, &mut self.mux));
        }
        keep(self.mux.finish());
        match first_err {
            Some(e) => Err(e),
            None => Ok(self.mux.file_size()),
        }
    }
}

impl Drop for Encoder {
    /// An encoder dropped without `finish` (an error path, a panic) still finalises the file.
    fn drop(&mut self) {
        if !self.finished {
            if let Err(e) = self.finalize(None) {
                tracing::warn!(path = %self.mux.path().display(), "finalising on drop failed: {e}");
            }
        }
    }
}

/// Makes the reused frame writable again; allocates only if the encoder still holds a reference
/// to its buffer (none of our encoders does once `send_frame` has returned).
fn make_writable(f: &mut frame::Video) -> Result<(), RecorderError> {
    // SAFETY: `f` is a valid, allocated AVFrame we exclusively own.
    let r = unsafe { ffi::av_frame_make_writable(f.as_mut_ptr()) };
    if r < 0 {
        return Err(EncodeError::ffmpeg("frame buffer", r).into());
    }
    Ok(())
}

fn muxer_name(container: Container) -> &'static str {
    match container {
        Container::Mkv => "matroska",
        Container::Mp4 => "mp4",
        Container::Webm => "webm",
    }
}

fn muxer_wants_global_header(muxer: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(muxer) else {
        return false;
    };
    // SAFETY: av_guess_format only reads the NUL-terminated name and returns null or a pointer to
    // a static muxer description, which we only read.
    unsafe {
        let f = ffi::av_guess_format(name.as_ptr(), std::ptr::null(), std::ptr::null());
        !f.is_null() && (*f).flags & ffi::AVFMT_GLOBALHEADER != 0
    }
}

/// Threads for libx264 at this size, chosen for the least CPU time per frame that still keeps
/// up (examples/encode_bench.rs, 2-core EPYC VM, scrolling-text desktop, CPU ms/frame incl.
/// conversion, median of 5):
///
/// | threads            | 1280×720          | 1920×1080          |
/// |--------------------|-------------------|--------------------|
/// | 1                  | **3.99** (213 fps)| 10.66 (83 fps)     |
/// | 2 (frame)          | 4.39 (232 fps)    | **10.52** (90 fps) |
/// | x264 auto (3)      | 4.55              | 12.00              |
/// | 2, zerolatency     | 4.22 (sliced)     | 11.67              |
///
/// Below 1080p one thread is cheapest by ~10% and far faster than 60 fps. At 1080p one and two
/// threads cost the same CPU, and two give headroom on busy or heavier screens, so take two.
/// Frame threads beat sliced (zerolatency) threads on CPU; their one-frame delay is irrelevant
/// for recording. Never more threads than cores.
fn x264_threads(width: u32, height: u32) -> u32 {
    let pixels = u64::from(width) * u64::from(height);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    if pixels < 1920 * 1080 {
        1
    } else if pixels <= 1920 * 1080 {
        cores.clamp(1, 2)
    } else {
        // Above 1080p one or two threads cannot keep real time (22 fps at 4K on the GPU
        // machine's CPU, 107 fps with x264's own count): real time beats CPU per frame here.
        cores.clamp(1, 16)
    }
}

/// AVOptions per encoder (private options + thread count to set on the context).
fn encoder_options(
    name: &str,
    cfg: &EncoderConfig,
    width: u32,
    height: u32,
    tuning: Tuning,
) -> (Dictionary<'static>, Option<u32>) {
    let mut d = Dictionary::new();
    let q = match cfg.rate {
        RateControl::Quality(q) => Some(q.to_string()),
        RateControl::Bitrate(_) => None,
    };
    let mut threads = tuning.threads;
    match name {
        "libx264" => {
            d.set("preset", "ultrafast");
            if tuning.zerolatency {
                d.set("tune", "zerolatency");
            }
            if let Some(q) = &q {
                d.set("crf", q);
            }
            threads = Some(threads.unwrap_or_else(|| x264_threads(width, height)));
        }
        "libx265" => {
            d.set("preset", "ultrafast");
            if let Some(q) = &q {
                d.set("crf", q);
            }
            // x265 prints to stderr itself; keep it to errors.
            d.set("x265-params", "log-level=error");
        }
        "libsvtav1" => {
            d.set("preset", "12");
            // Low-delay prediction (no future references), as a live recorder wants. With the
            // default random-access structure svt-av1 4 (FFmpeg 9's) coded the frames between a
            // red keyframe and a green alt-ref as residual-free compound predictions: the 10 red
            // frames came out as a cross-fade to green (`webm_av1`).
            d.set("svtav1-params", "pred-struct=1");
            if let Some(q) = &q {
                d.set("crf", q);
            }
        }
        "libaom-av1" => {
            d.set("usage", "realtime");
            d.set("cpu-used", "8");
            d.set("row-mt", "1");
            if let Some(q) = &q {
                d.set("crf", q);
            }
        }
        "libvpx-vp9" => {
            d.set("deadline", "realtime");
            d.set("cpu-used", "8");
            d.set("row-mt", "1");
            if let Some(q) = &q {
                // Constant quality needs b:v 0 with libvpx.
                d.set("crf", q);
                d.set("b", "0");
            }
        }
        "h264_nvenc" | "hevc_nvenc" | "av1_nvenc" => {
            // Fastest preset, low-latency tuning, no lookahead or reordering: a recorder wants
            // each frame out before the next arrives.
            d.set("preset", "p1");
            d.set("tune", "ll");
            d.set("zerolatency", "1");
            d.set("rc-lookahead", "0");
            d.set("rc", "vbr");
            if let Some(q) = &q {
                // Constant quality: VBR with a CQ target and no bitrate cap.
                d.set("cq", q);
                d.set("b", "0");
            }
        }
        _ => {}
    }
    (d, threads)
}

/// Candidate encoders per codec, software first.
const SOFTWARE: &[(Codec, &[&str])] = &[
    (Codec::H264, &["libx264"]),
    (Codec::Hevc, &["libx265"]),
    (Codec::Av1, &["libsvtav1", "libaom-av1"]),
    (Codec::Vp9, &["libvpx-vp9"]),
];
const HARDWARE: &[(Codec, &[&str])] = &[
    (Codec::H264, &["h264_nvenc"]),
    (Codec::Hevc, &["hevc_nvenc"]),
    (Codec::Av1, &["av1_nvenc"]),
];

fn candidates(
    table: &'static [(Codec, &'static [&'static str])],
    codec: Codec,
) -> &'static [&'static str] {
    table
        .iter()
        .find(|(c, _)| *c == codec)
        .map_or(&[], |(_, n)| n)
}

fn present(name: &str) -> bool {
    encoder::find_by_name(name).is_some()
}

/// Encoder names present in this FFmpeg build for `codec` (software first).
pub fn available_encoders(codec: Codec) -> Vec<&'static str> {
    log::init();
    candidates(SOFTWARE, codec)
        .iter()
        .chain(candidates(HARDWARE, codec))
        .copied()
        .filter(|n| present(n))
        .collect()
}

/// What this build can do, for error messages: `h264 (libx264), hevc (libx265), …`.
fn software_summary() -> String {
    Codec::ALL
        .iter()
        .filter_map(|&c| {
            let names: Vec<_> = candidates(SOFTWARE, c)
                .iter()
                .copied()
                .filter(|n| present(n))
                .collect();
            (!names.is_empty()).then(|| format!("{c} ({})", names.join(", ")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Validates a codec/encoder/container combination and returns the encoder that
/// `Encoder::open` will use: [`select_encoder`] for a named codec.
pub fn check_encoder(
    codec: Codec,
    choice: EncoderChoice,
    container: Container,
) -> Result<&'static str, RecorderError> {
    select_encoder(Some(codec), choice, container).map(|(_, s)| s.name)
}

/// The one encoder-selection rule. The front door (`zerocast-app`'s composition) evaluates it
/// once per recording, before the portal is asked, and hands the result to the recorder in
/// [`crate::RecordingOptions::selected`]; option parsing never does (it may open an NVENC
/// session). The NVENC probe behind it is cached per process ([`nvenc_status`]).
///
/// - No codec named: VP9 in webm; else HEVC when NVENC can encode it (same cost on the GPU,
///   smaller files) and the choice allows NVENC; else H.264, the cheapest software encoder and
///   the most widely playable. At most one NVENC probe either way.
/// - `software`: the first software encoder of the codec in this FFmpeg build.
/// - `nvenc`: NVENC, or [`RecorderError::EncoderUnavailable`] saying why not.
/// - `auto`: NVENC when a session opens (it also takes CPU frames: FFmpeg uploads them), else
///   software, keeping the reason in [`Selection::fallback_reason`].
pub fn select_encoder(
    codec: Option<Codec>,
    choice: EncoderChoice,
    container: Container,
) -> Result<(Codec, Selection), RecorderError> {
    log::init();
    let codec = match codec {
        Some(c) => c,
        None if container == Container::Webm => Codec::Vp9,
        None if choice == EncoderChoice::Software => Codec::H264,
        None => match nvenc::nvenc_status(Codec::Hevc) {
            Ok(name) => {
                return Ok((
                    Codec::Hevc,
                    Selection {
                        name,
                        nvenc: true,
                        fallback_reason: None,
                    },
                ))
            }
            // An `nvenc` request still gets H.264 on NVENC (or its reason) below.
            Err(_) if choice == EncoderChoice::Nvenc => Codec::H264,
            Err(reason) => {
                return Ok((Codec::H264, software_selection(Codec::H264, Some(reason))?))
            }
        },
    };
    container.check(codec).map_err(OptionError::from)?;
    let reason = match choice {
        EncoderChoice::Software => None,
        EncoderChoice::Nvenc | EncoderChoice::Auto => match nvenc::nvenc_status(codec) {
            Ok(name) => {
                return Ok((
                    codec,
                    Selection {
                        name,
                        nvenc: true,
                        fallback_reason: None,
                    },
                ))
            }
            Err(reason) if choice == EncoderChoice::Nvenc => {
                return Err(RecorderError::EncoderUnavailable {
                    codec,
                    reason: format!(
                        "{reason}; software encoders available: {}",
                        software_summary()
                    ),
                })
            }
            Err(reason) => Some(reason),
        },
    };
    Ok((codec, software_selection(codec, reason)?))
}

fn software_selection(codec: Codec, reason: Option<String>) -> Result<Selection, RecorderError> {
    let name = candidates(SOFTWARE, codec)
        .iter()
        .copied()
        .find(|n| present(n))
        .ok_or_else(|| RecorderError::EncoderUnavailable {
            codec,
            reason: format!(
                "none of {} is in this FFmpeg build; available: {}",
                candidates(SOFTWARE, codec).join(", "),
                software_summary()
            ),
        })?;
    Ok(Selection {
        name,
        nvenc: false,
        fallback_reason: reason,
    })
}

/// The codec [`select_encoder`] picks when the user names none (it may probe NVENC).
pub fn default_codec(container: Container, choice: EncoderChoice) -> Codec {
    match container {
        Container::Webm => Codec::Vp9,
        _ if choice != EncoderChoice::Software && nvenc::nvenc_status(Codec::Hevc).is_ok() => {
            Codec::Hevc
        }
        _ => Codec::H264,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_codec_follows_container_and_nvenc() {
        assert_eq!(
            default_codec(Container::Webm, EncoderChoice::Auto),
            Codec::Vp9
        );
        assert_eq!(
            default_codec(Container::Mkv, EncoderChoice::Software),
            Codec::H264
        );
        let with_nvenc = nvenc::nvenc_status(Codec::Hevc).is_ok();
        let expected = if with_nvenc { Codec::Hevc } else { Codec::H264 };
        assert_eq!(default_codec(Container::Mp4, EncoderChoice::Auto), expected);
    }

    use super::*;

    #[test]
    fn check_encoder_rules() {
        assert_eq!(
            check_encoder(Codec::H264, EncoderChoice::Auto, Container::Mkv).unwrap(),
            "libx264"
        );
        let e = check_encoder(Codec::H264, EncoderChoice::Auto, Container::Webm).unwrap_err();
        assert!(
            e.to_string().contains("webm takes av1, vp9")
                || e.to_string().contains("webm takes vp9, av1"),
            "{e}"
        );
        let e = check_encoder(Codec::H264, EncoderChoice::Nvenc, Container::Mkv).unwrap_err();
        assert!(matches!(e, RecorderError::EncoderUnavailable { .. }));
        assert!(e.to_string().contains("libx264"), "{e}");
        assert!(available_encoders(Codec::H264).contains(&"libx264"));
        assert_eq!(available_encoders(Codec::Av1)[0], "libsvtav1");
        for c in Container::ALL {
            assert!(muxer_wants_global_header(muxer_name(*c)), "{c}");
        }
    }
}
