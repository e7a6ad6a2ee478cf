//! The output file: one muxer, separate from the encoders that feed it. Streams are added by
//! index before the header ([`MuxerSetup::add_stream`]), packets are written per stream
//! ([`Muxer::write`]). Today the one stream is video; audio adds a second stream and its
//! encoder writes into the same muxer, which then interleaves the packets by timestamp.

use std::path::{Path, PathBuf};

use ffmpeg_next::{codec, ffi, format, Dictionary, Packet, Rational};

use super::replay::{self, Clip, ReplayLimits, ReplayRing, StreamInfo};
use super::{muxer_name, TIME_BASE};
use crate::{Codec, Container, RecorderError};

/// A stream of the output file, as [`MuxerSetup::add_stream`] numbered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamIndex(usize);

impl StreamIndex {
    #[cfg(test)]
    pub fn new(i: usize) -> StreamIndex {
        StreamIndex(i)
    }

    pub fn index(self) -> usize {
        self.0
    }
}

/// The output before its header: the file exists, streams are being added. Dropped without
/// [`MuxerSetup::start`] (an encoder failed to open, the header could not be written), it
/// removes the file again if it created it, so a failed start leaves no stub behind.
pub(crate) struct MuxerSetup {
    /// `Some` until `start` hands it to the [`Muxer`].
    octx: Option<format::context::Output>,
    path: PathBuf,
    container: Container,
    /// Only a file we create ourselves may be removed again (never e.g. a device node).
    existed: bool,
    /// Time base of the timestamps each stream's encoder produces, by [`StreamIndex`].
    sources: Vec<Rational>,
    /// The header is written: the file is the [`Muxer`]'s.
    started: bool,
    /// Replay mode: no file until a save; packets go to a ring.
    replay: Option<ReplayLimits>,
}

impl MuxerSetup {
    /// Creates the file and the muxer for `container`.
    pub fn create(
        path: &Path,
        container: Container,
        replay: Option<ReplayLimits>,
    ) -> Result<MuxerSetup, RecorderError> {
        let existed = path.exists();
        if replay.is_some() {
            // Nothing is written until a save: a context without a file, to add the streams to
            // and learn their parameters.
            return Ok(MuxerSetup {
                octx: Some(
                    output_without_file(container)
                        .map_err(|source| super::EncodeError::Muxer { container, source })?,
                ),
                path: path.to_owned(),
                container,
                existed,
                sources: Vec::new(),
                started: false,
                replay,
            });
        }
        let octx = format::output_as(path, muxer_name(container)).map_err(|e| match e {
            ffmpeg_next::Error::Other { errno } if is_disk_full(errno) => {
                RecorderError::OutOfDiskSpace {
                    path: path.to_owned(),
                }
            }
            e => RecorderError::OutputNotWritable {
                path: path.to_owned(),
                source: e.into(),
            },
        })?;
        Ok(MuxerSetup {
            octx: Some(octx),
            path: path.to_owned(),
            container,
            existed,
            sources: Vec::new(),
            started: false,
            replay: None,
        })
    }

    /// Adds a stream carrying what the open encoder `enc` (`av_codec`, of `codec`) produces,
    /// timestamps in [`TIME_BASE`].
    pub fn add_stream(
        &mut self,
        av_codec: ffmpeg_next::Codec,
        enc: &codec::encoder::Video,
        codec: Codec,
    ) -> Result<StreamIndex, RecorderError> {
        let container = self.container;
        let octx = self.octx.as_mut().expect("present until start");
        let r = (|| {
            let mut st = octx.add_stream(av_codec)?;
            st.set_parameters(enc);
            st.set_time_base(TIME_BASE);
            if container == Container::Mp4 && codec == Codec::Hevc {
                set_hvc1_tag(&mut st);
            }
            Ok::<_, ffmpeg_next::Error>(st.index())
        })();
        let index = r.map_err(|e| io_error(&self.path, e, "adding a stream to"))?;
        self.sources.push(TIME_BASE);
        Ok(StreamIndex(index))
    }

    /// Adds an audio stream carrying what the open encoder `enc` (`av_codec`) produces,
    /// timestamps in `time_base` (one tick per sample).
    pub fn add_audio_stream(
        &mut self,
        av_codec: ffmpeg_next::Codec,
        enc: &codec::encoder::Audio,
        time_base: Rational,
    ) -> Result<StreamIndex, RecorderError> {
        let octx = self.octx.as_mut().expect("present until start");
        let r = (|| {
            let mut st = octx.add_stream(av_codec)?;
            st.set_parameters(enc);
            st.set_time_base(time_base);
            Ok::<_, ffmpeg_next::Error>(st.index())
        })();
        let index = r.map_err(|e| io_error(&self.path, e, "adding a stream to"))?;
        if self.sources.len() == 1 {
            // A static screen sends no video for seconds: don't let the interleaver hold audio
            // back longer than the crash-safety promise (≤ 1 s lost).
            // SAFETY: a plain integer field of the output context we own, set before the
            // header is written.
            unsafe { (*octx.as_mut_ptr()).max_interleave_delta = 1_000_000 };
        }
        self.sources.push(time_base);
        Ok(StreamIndex(index))
    }

    /// Writes the header: from now on packets can be written.
    pub fn start(mut self) -> Result<Muxer, RecorderError> {
        let mut octx = self.octx.take().expect("present until start");
        if let Some(limits) = self.replay {
            // Which stream is video: the first one added (the video encoder opens first).
            let streams: Vec<StreamInfo> = (0..self.sources.len())
                .map(|i| StreamInfo {
                    params: octx.stream(i).map(|s| s.parameters()).unwrap_or_default(),
                    time_base: self.sources[i],
                })
                .collect();
            let ring = ReplayRing::new(limits, StreamIndex(0), self.sources.clone());
            self.started = true;
            return Ok(Muxer {
                target: Target::Ring(Box::new(RingTarget {
                    ring,
                    streams: std::sync::Arc::new(streams),
                    limits,
                    saved: 0,
                })),
                path: self.path.clone(),
                container: self.container,
                shift_us: 0,
                time_bases: self.sources.clone(),
                sources: std::mem::take(&mut self.sources),
                watch: None,
                whole: 0,
            });
        }
        // What comes back is the options the muxer did not take: not needed.
        let header = octx
            .write_header_with(muxer_options(self.container))
            .map(drop);
        if let Err(e) = header {
            // Nothing usable was written: close the file before our Drop removes it.
            drop(octx);
            return Err(io_error(&self.path, e, "writing the header"));
        }
        // The muxer may have picked its own time base per stream.
        let time_bases = (0..self.sources.len())
            .map(|i| octx.stream(i).map_or(self.sources[i], |s| s.time_base()))
            .collect();
        self.started = true;
        Ok(Muxer {
            target: Target::File(octx),
            watch: Watch::open(&self.path),
            whole: 0,
            path: self.path.clone(),
            container: self.container,
            shift_us: 0,
            time_bases,
            sources: std::mem::take(&mut self.sources),
        })
    }
}

impl Drop for MuxerSetup {
    fn drop(&mut self) {
        drop(self.octx.take());
        if self.started || self.replay.is_some() {
            return;
        }
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_file());
        if !self.existed && ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where packets go: the file, or (replay mode) the ring.
enum Target {
    File(format::context::Output),
    Ring(Box<RingTarget>),
}

struct RingTarget {
    ring: ReplayRing,
    streams: std::sync::Arc<Vec<StreamInfo>>,
    limits: ReplayLimits,
    /// Size of the file written at stop (`save_on_stop`).
    saved: u64,
}

/// What a save needs, taken on the encoder thread and written on another.
pub(crate) struct SaveJob {
    pub clip: Clip,
    pub streams: std::sync::Arc<Vec<StreamInfo>>,
    pub container: Container,
}

/// The output after its header: packets of every stream go through [`Muxer::write`].
pub(crate) struct Muxer {
    target: Target,
    path: PathBuf,
    container: Container,
    /// A replay kept as a recording: the file starts at the ring's first keyframe, so every
    /// later packet moves back by its time (µs); 0 otherwise.
    shift_us: i64,
    /// Each stream's time base in the file, by [`StreamIndex`].
    time_bases: Vec<Rational>,
    /// Time base of each stream's packets as written to [`Muxer::write`].
    sources: Vec<Rational>,
    /// The file being written, to notice it being deleted (see [`Muxer::check_not_removed`]).
    watch: Option<Watch>,
    /// Where the file ended after the last packet written whole (`flush_packets`: each write
    /// reaches the kernel at once), to cut a disk-full write's partial cluster off.
    whole: u64,
}

/// A second descriptor on the output file: FFmpeg's own is out of reach, and the path alone
/// would take a moved folder (the file still there) for a removed one.
struct Watch {
    file: std::fs::File,
    checked: std::time::Instant,
}

impl Watch {
    fn open(path: &Path) -> Option<Watch> {
        Some(Watch {
            file: std::fs::File::open(path).ok()?,
            checked: std::time::Instant::now(),
        })
    }
}

impl Muxer {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `pkt` (timestamps in the time base the stream was added with) to `stream`.
    pub fn write(&mut self, stream: StreamIndex, pkt: &mut Packet) -> Result<(), RecorderError> {
        pkt.set_stream(stream.0);
        let octx = match &mut self.target {
            Target::File(octx) => octx,
            Target::Ring(r) => {
                // Moved into the ring (timestamps stay in the encoder's time base).
                r.ring.push(stream, pkt);
                return Ok(());
            }
        };
        if self.shift_us != 0 {
            replay::shift_packet(pkt, self.shift_us, self.sources[stream.0]);
        }
        pkt.rescale_ts(self.sources[stream.0], self.time_bases[stream.0]);
        let r = if self.time_bases.len() == 1 {
            // One stream: nothing to interleave, and av_write_frame leaves the packet's buffer
            // to us (av_interleaved_write_frame would queue a reference per packet).
            pkt.write(octx).map(|_| ())
        } else {
            pkt.write_interleaved(octx)
        };
        if let Err(e) = r {
            let e = io_error(&self.path, e, "writing");
            if matches!(e, RecorderError::OutOfDiskSpace { .. }) {
                self.cut_partial_write();
            }
            return Err(e);
        }
        self.whole = self.bytes_written();
        self.check_not_removed()
    }

    /// Disk full mid-write: the file ends in part of a cluster/fragment, which players and
    /// `ffmpeg -xerror` read as "File ended prematurely" (20 of 20 rounds in
    /// tests/fault_rounds.rs). Cut it back to the last whole one. FFmpeg writes nothing more
    /// after the error (its AVIOContext keeps the error and drops later writes, the trailer's
    /// included), so the cut stays the end of the file.
    fn cut_partial_write(&self) {
        // Nothing whole yet, or not a file one can cut (/dev/full).
        if self.whole == 0 || !std::fs::metadata(&self.path).is_ok_and(|m| m.is_file()) {
            return;
        }
        let cut = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .and_then(|f| f.set_len(self.whole));
        if let Err(e) = cut {
            tracing::warn!(path = %self.path.display(), error = %e, "disk full: cannot cut the partial write off");
        }
    }

    /// Once a second: the file still has a name. Writes into a deleted file all succeed (the
    /// inode lives while FFmpeg holds it open), so without this a recording whose folder was
    /// removed went on and ended with "saved" and no file (tests/fault_rounds.rs).
    fn check_not_removed(&mut self) -> Result<(), RecorderError> {
        use std::os::unix::fs::MetadataExt;
        let Some(w) = &mut self.watch else {
            return Ok(());
        };
        if w.checked.elapsed() < std::time::Duration::from_secs(1) {
            return Ok(());
        }
        w.checked = std::time::Instant::now();
        match w.file.metadata() {
            Ok(m) if m.nlink() == 0 => Err(RecorderError::OutputNotWritable {
                path: self.path.clone(),
                source: super::OutputCause::Removed,
            }),
            _ => Ok(()),
        }
    }

    /// Writes the trailer (after every stream's last packet).
    pub fn finish(&mut self) -> Result<(), RecorderError> {
        match &mut self.target {
            Target::File(octx) => octx
                .write_trailer()
                .map_err(|e| io_error(&self.path, e, "writing the trailer")),
            Target::Ring(r) => {
                if !r.limits.save_on_stop {
                    return Ok(());
                }
                let Some(clip) = r.ring.clip(None) else {
                    return Ok(());
                };
                r.saved = replay::write_clip(&self.path, self.container, &r.streams, clip)?;
                Ok(())
            }
        }
    }

    /// Replay mode → a recording to `path` that starts with everything the ring holds and goes
    /// on with every later packet ("record from N seconds ago"). Runs on the encoder thread:
    /// the ring is written once (page cache: milliseconds for tens of MB); frames wait in the
    /// pool meanwhile. On failure the replay goes on unchanged.
    pub fn keep(&mut self, path: &Path) -> Result<(), RecorderError> {
        let Target::Ring(r) = &self.target else {
            return Err(RecorderError::NotReplay);
        };
        let clip = r.ring.clip(None).ok_or(RecorderError::ReplayEmpty)?;
        let (mut octx, out_tbs) = replay::open_output(path, self.container, &r.streams)?;
        let offset_us = clip.offset_us;
        let streams = std::sync::Arc::clone(&r.streams);
        let write_all = |octx: &mut format::context::Output| {
            for (s, mut p) in clip.packets {
                let tb = streams[s.index()].time_base;
                replay::shift_packet(&mut p, offset_us, tb);
                p.set_stream(s.index());
                p.set_position(-1);
                p.rescale_ts(tb, out_tbs[s.index()]);
                p.write_interleaved(octx)
                    .map_err(|e| io_error(path, e, "writing"))?;
            }
            Ok::<_, RecorderError>(())
        };
        if let Err(e) = write_all(&mut octx) {
            drop(octx);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        self.target = Target::File(octx);
        self.path = path.to_owned();
        self.time_bases = out_tbs;
        self.shift_us = offset_us;
        self.watch = Watch::open(path);
        self.whole = 0;
        Ok(())
    }

    /// Replay mode: the last `seconds` (all of the ring when `None`) as a job for
    /// [`replay::write_clip`]. `None` when not in replay mode or the ring is empty.
    pub fn save_job(&self, seconds: Option<f64>) -> Result<SaveJob, RecorderError> {
        let Target::Ring(r) = &self.target else {
            return Err(RecorderError::NotReplay);
        };
        let clip = r.ring.clip(seconds).ok_or(RecorderError::ReplayEmpty)?;
        Ok(SaveJob {
            clip,
            streams: std::sync::Arc::clone(&r.streams),
            container: self.container,
        })
    }

    /// Bytes written so far (the muxer's output position).
    pub fn bytes_written(&self) -> u64 {
        let octx = match &self.target {
            Target::File(octx) => octx,
            // What the ring holds: the memory a replay uses.
            Target::Ring(r) => return r.ring.bytes(),
        };
        // SAFETY: the output context and its pb live as long as `self`; avio_seek with offset 0
        // and SEEK_CUR only reads the position ("avio_tell").
        unsafe {
            let pb = (*octx.as_ptr()).pb;
            if pb.is_null() {
                return 0;
            }
            ffi::avio_seek(pb, 0, libc::SEEK_CUR).max(0) as u64
        }
    }

    /// The file's size once finished (the write position where it cannot be asked).
    pub fn file_size(&self) -> u64 {
        let octx = match &self.target {
            Target::File(octx) => octx,
            Target::Ring(r) => return r.saved,
        };
        // SAFETY: as in bytes_written; avio_size seeks to the end and back on a flushed file.
        let size = unsafe {
            let pb = (*octx.as_ptr()).pb;
            if pb.is_null() {
                0
            } else {
                ffi::avio_size(pb)
            }
        };
        if size > 0 {
            size as u64
        } else {
            self.bytes_written()
        }
    }
}

/// HEVC in mp4 as `hvc1` (parameter sets in the sample description) instead of FFmpeg's default
/// `hev1`: Apple's players only accept `hvc1`, and with a global header both are valid.
fn set_hvc1_tag(st: &mut ffmpeg_next::StreamMut<'_>) {
    const HVC1: u32 = u32::from_le_bytes(*b"hvc1");
    // SAFETY: the stream and its codecpar were just created by avformat_new_stream and are
    // exclusively borrowed; codec_tag is a plain integer field.
    unsafe { (*(*st.as_mut_ptr()).codecpar).codec_tag = HVC1 }
}

/// An output context for `container` with no file behind it.
fn output_without_file(
    container: Container,
) -> Result<format::context::Output, ffmpeg_next::Error> {
    let name = std::ffi::CString::new(muxer_name(container)).expect("muxer names have no NUL");
    let mut ptr = std::ptr::null_mut();
    // SAFETY: `ptr` receives a new context or stays null; the name is a valid C string for the
    // call; no file name is passed, so nothing is opened.
    let r = unsafe {
        ffi::avformat_alloc_output_context2(
            &mut ptr,
            std::ptr::null(),
            name.as_ptr(),
            std::ptr::null(),
        )
    };
    if r < 0 || ptr.is_null() {
        return Err(ffmpeg_next::Error::from(r.min(-1)));
    }
    // SAFETY: a fresh context we own; its pb is null, which the destructor's avio_close accepts.
    Ok(unsafe { format::context::Output::wrap(ptr) })
}

pub(super) fn muxer_options(container: Container) -> Dictionary<'static> {
    let mut d = Dictionary::new();
    // Hand every completed fragment/cluster to the kernel at once instead of keeping up to 32 KiB
    // in the AVIOContext buffer (FFmpeg's "flush point" markers do nothing for plain files). The
    // muxers buffer a fragment/cluster themselves, so this is one write per fragment, not per
    // packet.
    d.set("flush_packets", "1");
    match container {
        Container::Mp4 => {
            // Fragmented: each moof is self-contained, so a crash loses at most the fragment in
            // progress (≤ 1 s: a new fragment at every keyframe and at least every second).
            d.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
            d.set("frag_duration", "1000000");
        }
        Container::Mkv | Container::Webm => {
            // The muxer buffers a whole cluster in memory; keep that to ≤ 1 s (default 5 s) for
            // the same crash guarantee.
            d.set("cluster_time_limit", "1000");
        }
    }
    d
}

fn is_disk_full(errno: i32) -> bool {
    errno == libc::ENOSPC || errno == libc::EDQUOT
}

pub(super) fn io_error(path: &Path, e: ffmpeg_next::Error, what: &'static str) -> RecorderError {
    match e {
        ffmpeg_next::Error::Other { errno } if is_disk_full(errno) => {
            RecorderError::OutOfDiskSpace {
                path: path.to_owned(),
            }
        }
        source => super::EncodeError::Write {
            what,
            path: path.to_owned(),
            source,
        }
        .into(),
    }
}
