//! Audio encoders (Opus, AAC, FLAC) for the file's audio tracks. Runs on the encoder thread
//! next to the video encoder and writes into the same muxer.
//!
//! Input is the audio thread's [`Block`]s: F32 interleaved stereo at 48 kHz, contiguous per
//! track, positions in frames from the first video frame. The encoder cuts them into the
//! codec's frame size (Opus 960, AAC 1024, FLAC 4608) in one reused frame, converting the
//! sample layout by hand (interleaved F32 → planar F32 for AAC, → S16 for FLAC), so no
//! resampler library is needed. Timestamps are sample counts (time base 1/48000): exact.

use ffmpeg_next::{
    codec, encoder, ffi, format, frame, ChannelLayout, Dictionary, Packet, Rational,
};

use super::EncodeError;
use crate::audio::{AudioCodec, Block, CHANNELS, RATE};
use crate::RecorderError;

/// Time base of audio timestamps: one tick per sample.
pub const AUDIO_TIME_BASE: Rational = Rational(1, RATE as i32);

/// One audio track's encoder.
pub struct AudioEncoder {
    enc: encoder::Audio,
    codec: AudioCodec,
    /// Our stream in the muxer.
    stream: super::mux::StreamIndex,
    /// Reused input frame of `frame_size` samples.
    frame: frame::Audio,
    frame_size: usize,
    /// Samples in `frame` so far.
    fill: usize,
    /// Position (frames) of the next sample the encoder gets.
    next_pos: i64,
    pkt: Packet,
    finished: bool,
}

// Owned by the encoder thread.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<AudioEncoder>()
};

impl AudioEncoder {
    /// Opens the encoder and adds its stream to `mux` (before the header is written).
    /// `bitrate` in kbit/s (ignored by FLAC).
    pub(crate) fn open(
        mux: &mut super::mux::MuxerSetup,
        codec: AudioCodec,
        bitrate: Option<u32>,
        global_header: bool,
    ) -> Result<AudioEncoder, RecorderError> {
        let name = codec.encoder_name();
        let unavailable = |source| EncodeError::AudioEncoderOpen {
            encoder: name,
            source,
        };
        let av_codec = encoder::find_by_name(name)
            .ok_or(EncodeError::AudioEncoderMissing { encoder: name })?;
        let mut ctx = codec::context::Context::new_with_codec(av_codec)
            .encoder()
            .audio()
            .map_err(unavailable)?;
        let sample_fmt = match codec {
            AudioCodec::Opus => format::Sample::F32(format::sample::Type::Packed),
            AudioCodec::Aac => format::Sample::F32(format::sample::Type::Planar),
            AudioCodec::Flac => format::Sample::I16(format::sample::Type::Packed),
        };
        ctx.set_rate(RATE as i32);
        ctx.set_format(sample_fmt);
        ctx.set_channel_layout(ChannelLayout::STEREO);
        // FFmpeg 7 removed the old channel API (`channels` with it): there the layout alone
        // says how many channels there are. Before 7, the encoder still reads `channels`.
        #[cfg(not(ffmpeg_7_0))]
        ctx.set_channels(CHANNELS as i32);
        ctx.set_time_base(AUDIO_TIME_BASE);
        if global_header {
            ctx.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut opts = Dictionary::new();
        match codec {
            AudioCodec::Opus | AudioCodec::Aac => {
                let kbps = bitrate.or(codec.default_bitrate()).unwrap_or(128);
                ctx.set_bit_rate(kbps as usize * 1000);
                if codec == AudioCodec::Opus {
                    // Screen recordings mix speech and anything else: the general mode; 20 ms
                    // frames (Opus' default, one packet = 20 ms of sync granularity).
                    opts.set("application", "audio");
                }
            }
            AudioCodec::Flac => {
                // Fast and still lossless; level 5 costs ~3× the CPU for ~3% smaller files.
                opts.set("compression_level", "1");
            }
        }
        let enc = ctx.open_with(opts).map_err(unavailable)?;
        let frame_size = match enc.frame_size() {
            0 => 1024,
            n => n as usize,
        };
        let stream = mux.add_audio_stream(av_codec, &enc, AUDIO_TIME_BASE)?;
        let mut frame = frame::Audio::new(sample_fmt, frame_size, ChannelLayout::STEREO);
        frame.set_rate(RATE);
        Ok(AudioEncoder {
            enc,
            codec,
            stream,
            frame,
            frame_size,
            fill: 0,
            next_pos: 0,
            pkt: Packet::empty(),
            finished: false,
        })
    }

    pub fn name(&self) -> &'static str {
        self.codec.encoder_name()
    }

    /// A failed call of this encoder, named by it.
    fn codec_error(&self, source: ffmpeg_next::Error) -> RecorderError {
        EncodeError::Codec {
            encoder: self.name(),
            source,
        }
        .into()
    }

    /// Encodes `block`. Blocks of a track are contiguous; a block that starts later than the
    /// previous one ended is preceded by silence, one that overlaps is cut.
    pub(crate) fn push(
        &mut self,
        block: &Block,
        mux: &mut super::mux::Muxer,
    ) -> Result<(), RecorderError> {
        if self.finished {
            return Ok(());
        }
        let mut data = &block.data[..];
        let mut pos = block.pos;
        if pos < self.next_pos {
            let cut = ((self.next_pos - pos) as usize).min(data.len() / CHANNELS);
            data = &data[cut * CHANNELS..];
            pos += cut as i64;
        }
        while self.next_pos < pos {
            let n = ((pos - self.next_pos) as usize).min(self.frame_size - self.fill);
            self.put(None, n, mux)?;
        }
        while !data.is_empty() {
            let n = (data.len() / CHANNELS).min(self.frame_size - self.fill);
            self.put(Some(&data[..n * CHANNELS]), n, mux)?;
            data = &data[n * CHANNELS..];
        }
        Ok(())
    }

    /// Copies `n` frames (or silence) into the pending frame; encodes it when full.
    fn put(
        &mut self,
        src: Option<&[f32]>,
        n: usize,
        mux: &mut super::mux::Muxer,
    ) -> Result<(), RecorderError> {
        if self.fill == 0 {
            // SAFETY: a valid, allocated AVFrame we own; reallocates only if the encoder still
            // holds a reference to its buffer.
            let r = unsafe { ffi::av_frame_make_writable(self.frame.as_mut_ptr()) };
            if r < 0 {
                return Err(EncodeError::ffmpeg("audio frame buffer", r).into());
            }
        }
        let at = self.fill;
        match self.codec {
            AudioCodec::Opus => {
                let dst = &mut self.frame.plane_mut::<f32>(0)[at * CHANNELS..(at + n) * CHANNELS];
                match src {
                    Some(s) => dst.copy_from_slice(s),
                    None => dst.fill(0.0),
                }
            }
            AudioCodec::Aac => {
                for c in 0..CHANNELS {
                    let dst = &mut self.frame.plane_mut::<f32>(c)[at..at + n];
                    match src {
                        Some(s) => {
                            for (d, v) in dst.iter_mut().zip(s.iter().skip(c).step_by(CHANNELS)) {
                                *d = *v;
                            }
                        }
                        None => dst.fill(0.0),
                    }
                }
            }
            AudioCodec::Flac => {
                let dst = &mut self.frame.plane_mut::<i16>(0)[at * CHANNELS..(at + n) * CHANNELS];
                match src {
                    Some(s) => {
                        for (d, v) in dst.iter_mut().zip(s) {
                            *d = (v.clamp(-1.0, 1.0) * 32767.0).round() as i16;
                        }
                    }
                    None => dst.fill(0),
                }
            }
        }
        self.fill += n;
        self.next_pos += n as i64;
        if self.fill == self.frame_size {
            self.encode_pending(mux)?;
        }
        Ok(())
    }

    fn encode_pending(&mut self, mux: &mut super::mux::Muxer) -> Result<(), RecorderError> {
        if self.fill == 0 {
            return Ok(());
        }
        self.frame.set_samples(self.fill);
        self.frame.set_pts(Some(self.next_pos - self.fill as i64));
        self.fill = 0;
        self.enc
            .send_frame(&self.frame)
            .map_err(|e| self.codec_error(e))?;
        self.frame.set_samples(self.frame_size);
        self.drain(mux)
    }

    fn drain(&mut self, mux: &mut super::mux::Muxer) -> Result<(), RecorderError> {
        loop {
            match self.enc.receive_packet(&mut self.pkt) {
                Ok(()) => {
                    mux.write(self.stream, &mut self.pkt)?;
                }
                Err(ffmpeg_next::Error::Other {
                    errno: libc::EAGAIN,
                })
                | Err(ffmpeg_next::Error::Eof) => return Ok(()),
                Err(e) => return Err(self.codec_error(e)),
            }
        }
    }

    /// Pads or cuts the track to end exactly at `end_frames`, flushes the encoder. Every step is
    /// tried; the first error is returned.
    pub(crate) fn finish(
        &mut self,
        end_frames: i64,
        mux: &mut super::mux::Muxer,
    ) -> Result<(), RecorderError> {
        if self.finished {
            return Ok(());
        }
        let mut r = Ok(());
        while self.next_pos < end_frames && r.is_ok() {
            let n = ((end_frames - self.next_pos) as usize).min(self.frame_size - self.fill);
            r = self.put(None, n, mux);
        }
        // The last, partial frame (every encoder here takes a small last frame).
        let r2 = self.encode_pending(mux);
        self.finished = true;
        let r3 = self
            .enc
            .send_eof()
            .map_err(|e| self.codec_error(e))
            .and_then(|_| self.drain(mux));
        r.and(r2).and(r3)
    }
}
