//! NVENC through FFmpeg, fed from the interop bridge's CUDA NV12 slots, and the software
//! fallback fed from the same slots.
//!
//! ```text
//! CudaBridge slot (NV12, our CUcontext) ──stream wait on the Vulkan timeline──►
//!   NVENC:    cuMemcpy2DAsync into an FFmpeg CUDA pool frame (same stream) ──► hevc/h264/av1_nvenc
//!   fallback: one cuMemcpyDtoHAsync into pinned memory that an NV12 AVFrame wraps ──► libx264 …
//! ```
//!
//! Selection (`encoder=auto|nvenc|software`): auto opens an NVENC session first; when that
//! fails it logs the reason once and uses the software encoder. `nvenc` fails with
//! [`RecorderError::EncoderUnavailable`] carrying the reason (e.g. "this GPU has no NVENC
//! engine"). The reason is worked out in order: encoder in the FFmpeg build, libcuda present,
//! libnvidia-encode present, then FFmpeg's own error from `nvEncOpenEncodeSessionEx`.
//!
//! Per frame there is no allocation of device or host memory, no registration (the pool's
//! buffers are registered by NVENC once each), no `cuCtxSynchronize`: the copy, the slot
//! release and the encoder's read are ordered on one stream; only the fallback waits for its
//! download with an event, because the CPU encoder reads the bytes.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ffmpeg_next::{codec, encoder, ffi, format, frame, Rational};
use zerocast_interop::{
    copy_nv12_async, cuda_init, download_nv12_async, ConvertedFrame, CudaBridge, CudaEvent,
    CudaStream, DeviceNv12, FrameLayout, OutputMode, PinnedBuffer,
};

use super::hwframes::{self, CudaFrames};
use super::EncodeError;
use super::{candidates, present, Encoder, EncoderConfig, Input, Tuning, HARDWARE, SOFTWARE};
use crate::frame::CpuFrame;
use crate::{Codec, EncoderChoice, RecorderError};

/// The NVENC encoder FFmpeg would use for `codec` (first of [`HARDWARE`] in the build), or why
/// there is none.
pub fn nvenc_name(codec: Codec) -> Result<&'static str, String> {
    let names = candidates(HARDWARE, codec);
    if names.is_empty() {
        return Err(format!("NVENC cannot encode {codec}"));
    }
    names
        .iter()
        .copied()
        .find(|n| present(n))
        .ok_or_else(|| format!("{} is not in this FFmpeg build", names.join("/")))
}

/// An NVENC encoder name, or why there is none.
type Status = Result<&'static str, String>;

/// Whether an NVENC session for `codec` can be opened on CUDA device 0, and why not. Probed once
/// per encoder name per process (a session open takes a while on real hardware); the first
/// failure is logged once.
pub fn nvenc_status(codec: Codec) -> Result<&'static str, String> {
    static CACHE: OnceLock<Mutex<Vec<(Codec, Status)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, r)) = cache.iter().find(|(c, _)| *c == codec) {
        return r.clone();
    }
    PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let r = nvenc_name(codec).and_then(|name| probe_session(name).map(|()| name));
    if let Err(reason) = &r {
        tracing::info!("NVENC unavailable for {codec}: {reason}");
    }
    cache.push((codec, r.clone()));
    r
}

/// Probes [`nvenc_status`] made in this process (cache misses: the ones that may load the
/// driver or open a session). For tests: option parsing must make none, and a recording at
/// most one.
pub fn nvenc_probe_count() -> usize {
    PROBES.load(std::sync::atomic::Ordering::Relaxed)
}

static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether the CUDA driver library can be loaded (never panics, unlike cudarc without it).
pub fn cuda_present() -> bool {
    cuda_init().is_ok()
}

/// Why there is no CUDA/NVENC before any session is tried, or None when both libraries load.
pub fn missing_driver() -> Option<String> {
    if !cuda_present() {
        return Some("no NVIDIA CUDA driver (libcuda.so.1 could not be loaded)".into());
    }
    if !library_loads(c"libnvidia-encode.so.1") {
        return Some("the NVIDIA driver has no encode library (libnvidia-encode.so.1)".into());
    }
    None
}

fn library_loads(name: &std::ffi::CStr) -> bool {
    // SAFETY: dlopen/dlclose of a driver library; RTLD_LOCAL keeps its symbols out of ours.
    unsafe {
        let h = libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if h.is_null() {
            return false;
        }
        libc::dlclose(h);
        true
    }
}

/// Opens (and closes) a small NVENC session on a CUDA context FFmpeg creates.
fn probe_session(name: &'static str) -> Result<(), String> {
    if let Some(why) = missing_driver() {
        return Err(why);
    }
    let dev = hwframes::own_device().map_err(|e| format!("CUDA: {e}"))?;
    let codec =
        encoder::find_by_name(name).ok_or_else(|| format!("{name} is not in this build"))?;
    let mut ctx = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| e.to_string())?;
    ctx.set_width(256);
    ctx.set_height(256);
    ctx.set_format(format::Pixel::NV12);
    ctx.set_time_base(Rational(1, 60));
    // SAFETY: the context is not open yet; it takes its own reference to the device.
    unsafe { (*ctx.as_mut_ptr()).hw_device_ctx = ffi::av_buffer_ref(dev.as_ptr()) };
    let (r, lines) = super::log::capture(|| ctx.open());
    match r {
        Ok(_session) => Ok(()),
        Err(e) => Err(explain(name, &lines, &e.to_string())),
    }
}

/// Turns FFmpeg's NVENC error lines into the reason a user can act on.
pub(crate) fn explain(name: &str, lines: &[String], err: &str) -> String {
    let all = lines.join("; ");
    let has = |s: &str| all.to_ascii_lowercase().contains(s);
    // The session open itself failing with "unsupported device" (NVENCSTATUS 2,
    // NV_ENC_ERR_UNSUPPORTED_DEVICE) is what H100/H200 report: the GPU has no encoder at all.
    // Codec-level gaps show up later, as capability errors.
    if has("no encode device") {
        format!("this GPU has no NVENC engine (nvEncOpenEncodeSessionEx: NV_ENC_ERR_NO_ENCODE_DEVICE; {name})")
    } else if has("openencodesessionex failed: unsupported device") {
        format!("this GPU has no NVENC engine (nvEncOpenEncodeSessionEx: NV_ENC_ERR_UNSUPPORTED_DEVICE; {name})")
    } else if has("cannot load libnvidia-encode") {
        "the NVIDIA driver has no encode library (libnvidia-encode.so.1)".into()
    } else if has("cannot load libcuda") {
        "no NVIDIA CUDA driver (libcuda.so.1 could not be loaded)".into()
    } else if has("required nvenc api version") {
        format!("the NVIDIA driver is too old for this FFmpeg's NVENC ({all})")
    } else if has("unsupported device") || has("codec not supported") {
        format!("this GPU's NVENC cannot encode with {name} ({all})")
    } else if has("openencodesessionex failed") {
        format!("NVENC session could not be opened: {all}")
    } else if all.is_empty() {
        format!("{name} failed to open: {err}")
    } else {
        format!("{name} failed to open: {err} ({all})")
    }
}

/// Which encoder the GPU path uses and, for a fallback, why NVENC was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub name: &'static str,
    pub nvenc: bool,
    pub fallback_reason: Option<String>,
}

/// The selection rule, with the NVENC attempt and the software lookup injected (unit tests).
pub fn select(
    codec: Codec,
    choice: EncoderChoice,
    try_nvenc: impl FnOnce(Codec) -> Result<&'static str, String>,
    software: impl FnOnce(Codec) -> Result<&'static str, RecorderError>,
) -> Result<Selection, RecorderError> {
    let reason = match choice {
        EncoderChoice::Software => None,
        EncoderChoice::Nvenc | EncoderChoice::Auto => match try_nvenc(codec) {
            Ok(name) => {
                return Ok(Selection {
                    name,
                    nvenc: true,
                    fallback_reason: None,
                })
            }
            Err(reason) if choice == EncoderChoice::Nvenc => {
                return Err(RecorderError::EncoderUnavailable { codec, reason })
            }
            Err(reason) => Some(reason),
        },
    };
    Ok(Selection {
        name: software(codec)?,
        nvenc: false,
        fallback_reason: reason,
    })
}

/// The software encoder for `codec` (first present of the software table).
pub(crate) fn software_name(codec: Codec) -> Result<&'static str, RecorderError> {
    candidates(SOFTWARE, codec)
        .iter()
        .copied()
        .find(|n| present(n))
        .ok_or_else(|| RecorderError::EncoderUnavailable {
            codec,
            reason: format!("no software {codec} encoder in this FFmpeg build"),
        })
}

/// Where a CUDA frame goes on its way into the encoder.
enum GpuFeed {
    Nvenc(CudaFrames),
    Host {
        pinned: PinnedBuffer,
        done: CudaEvent,
        /// The encoder takes no NV12 (libx265, libsvtav1): it reads Y straight from the pinned
        /// buffer, and CbCr is split into its U/V planes on the CPU (a quarter of the bytes).
        split: bool,
    },
}

/// An encoder fed from the interop bridge's CUDA NV12 slots (encoder thread).
pub struct GpuEncoder {
    // Dropped first: it finalises the file and lets go of frames that point into `feed`.
    enc: Encoder,
    feed: GpuFeed,
    stream: CudaStream,
    layout: FrameLayout,
    selection: Selection,
    /// Host frames for NVENC (after a fall back to SHM): a staging frame and its converter.
    upload: Option<(frame::Video, super::CpuConverter)>,
}

// Moved to the encoder thread once.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<GpuEncoder>()
};

impl GpuEncoder {
    /// Opens NVENC on `bridge`'s context and `stream` (auto/nvenc), or the software fallback
    /// fed by one download per frame. The bridge's converter must produce NV12 at the output
    /// size (`cfg.width`/`cfg.height` rounded down to even).
    pub fn open(
        cfg: &EncoderConfig,
        bridge: &CudaBridge,
        stream: CudaStream,
    ) -> Result<GpuEncoder, RecorderError> {
        Self::open_tuned(cfg, bridge, stream, Tuning::default())
    }

    #[doc(hidden)]
    pub fn open_tuned(
        cfg: &EncoderConfig,
        bridge: &CudaBridge,
        stream: CudaStream,
        tuning: Tuning,
    ) -> Result<GpuEncoder, RecorderError> {
        super::log::init();
        let (w, h) = (cfg.width & !1, cfg.height & !1);
        let layout = FrameLayout::new(OutputMode::Nv12, w, h);
        let cuda_err = |e| RecorderError::from(EncodeError::cuda(e));
        let mut nvenc_path = None;
        let selection =
            select(
                cfg.codec,
                cfg.encoder,
                |codec| {
                    // Selected once per recording by the front door; else the cached probe:
                    // where NVENC cannot work, we know without another slow session attempt.
                    let name = match &cfg.selected {
                        Some(s) if s.nvenc => s.name,
                        Some(s) => {
                            return Err(s
                                .fallback_reason
                                .clone()
                                .unwrap_or_else(|| "a software encoder was selected".into()))
                        }
                        None => nvenc_status(codec)?,
                    };
                    let frames = CudaFrames::new(bridge.context() as _, stream.as_raw() as _, w, h)
                        .map_err(|e| format!("CUDA frames: {e}"))?;
                    // The real session, on our context and stream.
                    let enc = Encoder::open_input(cfg, tuning, name, Input::Cuda(&frames))
                        .map_err(|e| match e {
                            RecorderError::EncoderUnavailable { reason, .. } => reason,
                            e => e.to_string(),
                        })?;
                    nvenc_path = Some((enc, frames));
                    Ok(name)
                },
                software_name,
            )?;
        if let Some(reason) = &selection.fallback_reason {
            tracing::warn!(
                "NVENC unavailable ({reason}); encoding with {} from the GPU's NV12",
                selection.name
            );
        }
        let (enc, feed) = match nvenc_path {
            Some((enc, frames)) => (enc, GpuFeed::Nvenc(frames)),
            None => {
                let mut pinned = PinnedBuffer::new(layout.size as usize).map_err(cuda_err)?;
                let done = CudaEvent::new(false).map_err(cuda_err)?;
                let split = !takes_nv12(selection.name);
                let f = if split {
                    wrap_y(&mut pinned, &layout)
                } else {
                    wrap_nv12(&mut pinned, &layout)?
                };
                let enc = Encoder::open_input(cfg, tuning, selection.name, Input::Host(f))?;
                (
                    enc,
                    GpuFeed::Host {
                        pinned,
                        done,
                        split,
                    },
                )
            }
        };
        Ok(GpuEncoder {
            enc,
            feed,
            stream,
            layout,
            selection,
            upload: None,
        })
    }

    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    pub fn name(&self) -> &str {
        self.enc.name()
    }

    /// Encodes the converted `frame` at `pts` and gives its slot back to the converter.
    pub fn push(
        &mut self,
        bridge: &CudaBridge,
        frame: &ConvertedFrame,
        pts: Duration,
    ) -> Result<(), RecorderError> {
        let e = |e| RecorderError::from(EncodeError::cuda(e));
        if frame.layout != self.layout {
            return Err(EncodeError::GpuFrameSize {
                width: frame.layout.width,
                height: frame.layout.height,
                encoder_width: self.layout.width,
                encoder_height: self.layout.height,
            }
            .into());
        }
        let src = bridge.frame(frame);
        bridge.wait(frame, self.stream).map_err(e)?;
        match &mut self.feed {
            GpuFeed::Nvenc(frames) => {
                let dst = self.enc.frame_mut();
                frames.get(dst)?;
                let (y, uv, pitch) = hwframes::planes(dst);
                copy_nv12_async(&src, DeviceNv12 { y, uv, pitch }, self.stream).map_err(e)?;
                // Signalled on the stream after the copy: the converter may reuse the slot
                // while NVENC still encodes from the pool frame.
                bridge.release(frame, self.stream).map_err(e)?;
            }
            GpuFeed::Host {
                pinned,
                done,
                split,
            } => {
                if !self.enc.frame_unshared() {
                    return Err(EncodeError::HostFrameBusy.into());
                }
                download_nv12_async(&src, self.layout.size as usize, pinned, self.stream)
                    .map_err(e)?;
                bridge.release(frame, self.stream).map_err(e)?;
                done.record(self.stream).map_err(e)?;
                // The CPU encoder reads the bytes: wait for this download only.
                done.synchronize().map_err(e)?;
                if *split {
                    split_cbcr(pinned.as_slice(), &self.layout, self.enc.frame_mut());
                }
            }
        }
        self.enc.encode_frame_at(pts)
    }

    /// Encodes a host frame (after the capture fell back from DMA-BUF to SHM mid-recording):
    /// converted on the CPU into the encoder's input; for NVENC, uploaded into a pool frame.
    pub fn push_cpu(&mut self, frame: &CpuFrame) -> Result<(), RecorderError> {
        match &mut self.feed {
            GpuFeed::Host { .. } => {
                if !self.enc.frame_unshared() {
                    return Err(EncodeError::HostFrameBusy.into());
                }
                // Converts into the pinned-backed frame the GPU downloads also land in.
                self.enc.push(frame)
            }
            GpuFeed::Nvenc(frames) => {
                let (w, h) = (self.layout.width, self.layout.height);
                // Allocated once, on the first host frame: only a recording that lost its
                // DMA-BUF path pays for it.
                let (staging, conv) = self.upload.get_or_insert_with(|| {
                    (
                        frame::Video::new(format::Pixel::NV12, w, h),
                        super::CpuConverter::new(Default::default()),
                    )
                });
                conv.convert(&frame.into(), staging)?;
                let dst = self.enc.frame_mut();
                frames.get(dst)?;
                // SAFETY: `dst` is a CUDA frame of the encoder's pool and `staging` a host NV12
                // frame of the same size; FFmpeg copies on the pool's device context.
                let r =
                    unsafe { ffi::av_hwframe_transfer_data(dst.as_mut_ptr(), staging.as_ptr(), 0) };
                if r < 0 {
                    return Err(
                        EncodeError::ffmpeg("uploading a host frame to CUDA failed", r).into(),
                    );
                }
                self.enc.encode_frame_at(frame.pts)
            }
        }
    }

    /// See [`Encoder::finish`].
    pub fn finish(self, end: Duration) -> Result<u64, RecorderError> {
        let GpuEncoder { enc, feed, .. } = self;
        let r = enc.finish(end);
        drop(feed);
        r
    }

    pub fn bytes_written(&self) -> u64 {
        self.enc.bytes_written()
    }

    pub(crate) fn keep(&mut self, path: &std::path::Path) -> Result<(), RecorderError> {
        self.enc.keep(path)
    }

    pub(crate) fn save_job(
        &self,
        seconds: Option<f64>,
    ) -> Result<super::mux::SaveJob, RecorderError> {
        self.enc.save_job(seconds)
    }

    /// Encodes a block of an audio track into the same file.
    pub fn push_audio(&mut self, block: &crate::audio::Block) -> Result<(), RecorderError> {
        self.enc.push_audio(block)
    }
}

fn takes_nv12(name: &str) -> bool {
    encoder::find_by_name(name)
        .and_then(|c| c.video().ok())
        .and_then(|v| v.formats().map(|mut f| f.any(|p| p == format::Pixel::NV12)))
        .unwrap_or(false)
}

/// A YUV420P frame whose Y plane is the pinned buffer's (same pitch); U and V are its own.
fn wrap_y(pinned: &mut PinnedBuffer, l: &FrameLayout) -> frame::Video {
    let mut f = frame::Video::new(format::Pixel::YUV420P, l.width, l.height);
    // SAFETY: only the Y pointer/pitch change; the frame's own buffer stays allocated (and
    // keeps the refcount the writability check reads); the pinned memory outlives the frame.
    unsafe {
        let p = &mut *f.as_mut_ptr();
        p.data[0] = pinned.as_mut_slice().as_mut_ptr();
        p.linesize[0] = l.pitch as i32;
    }
    f
}

/// Deinterleaves the NV12 CbCr rows into the frame's U and V planes.
fn split_cbcr(nv12: &[u8], l: &FrameLayout, f: &mut frame::Video) {
    let (cw, ch, pitch) = (
        l.width as usize / 2,
        l.height as usize / 2,
        l.pitch as usize,
    );
    let uv = &nv12[l.uv_offset as usize..];
    for plane in 1..3 {
        let stride = f.stride(plane);
        let dst = f.data_mut(plane);
        for y in 0..ch {
            let src = &uv[y * pitch..][..2 * cw];
            let d = &mut dst[y * stride..][..cw];
            for (o, pair) in d.iter_mut().zip(src.chunks_exact(2)) {
                *o = pair[plane - 1];
            }
        }
    }
}

/// An NV12 frame whose planes are the pinned buffer (same pitch and CbCr offset as the slot),
/// so the download lands where the encoder reads: no CPU copy, no swscale.
fn wrap_nv12(pinned: &mut PinnedBuffer, l: &FrameLayout) -> Result<frame::Video, RecorderError> {
    unsafe extern "C" fn keep(_opaque: *mut libc::c_void, _data: *mut u8) {}
    let base = pinned.as_mut_slice().as_mut_ptr();
    let mut f = frame::Video::empty();
    // SAFETY: `f` is a fresh AVFrame we own; the buffer ref does not own the pinned memory
    // (no-op free), which outlives the frame (GpuEncoder drops the encoder first); offsets are
    // inside the layout's `size` bytes.
    unsafe {
        let buf = ffi::av_buffer_create(base, l.size as usize, Some(keep), std::ptr::null_mut(), 0);
        if buf.is_null() {
            return Err(EncodeError::BufferCreate.into());
        }
        let p = &mut *f.as_mut_ptr();
        p.buf[0] = buf;
        p.data[0] = base;
        p.data[1] = base.add(l.uv_offset as usize);
        p.linesize[0] = l.pitch as i32;
        p.linesize[1] = l.pitch as i32;
        p.format = ffi::AVPixelFormat::AV_PIX_FMT_NV12 as i32;
        p.width = l.width as i32;
        p.height = l.height as i32;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(_: Codec) -> Result<&'static str, RecorderError> {
        Ok("libx264")
    }

    #[test]
    fn auto_falls_back_with_reason() {
        let s = select(
            Codec::H264,
            EncoderChoice::Auto,
            |_| Err("this GPU has no NVENC engine".into()),
            sw,
        )
        .unwrap();
        assert_eq!(s.name, "libx264");
        assert!(!s.nvenc);
        assert_eq!(
            s.fallback_reason.as_deref(),
            Some("this GPU has no NVENC engine")
        );
    }

    #[test]
    fn nvenc_choice_fails_with_reason() {
        let e = select(
            Codec::Hevc,
            EncoderChoice::Nvenc,
            |_| Err("this GPU has no NVENC engine".into()),
            sw,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            RecorderError::EncoderUnavailable {
                codec: Codec::Hevc,
                ..
            }
        ));
        assert!(e.to_string().contains("no NVENC engine"), "{e}");
    }

    #[test]
    fn nvenc_used_when_it_opens_and_software_skips_it() {
        let s = select(Codec::Hevc, EncoderChoice::Auto, |_| Ok("hevc_nvenc"), sw).unwrap();
        assert_eq!(
            (s.name, s.nvenc, s.fallback_reason),
            ("hevc_nvenc", true, None)
        );
        let s = select(
            Codec::Hevc,
            EncoderChoice::Software,
            |_| panic!("software must not try NVENC"),
            sw,
        )
        .unwrap();
        assert_eq!(
            (s.name, s.nvenc, s.fallback_reason),
            ("libx264", false, None)
        );
    }

    #[test]
    fn explains_ffmpeg_errors() {
        let l = vec![
            "[hevc_nvenc @ 0x1] OpenEncodeSessionEx failed: no encode device (2): (no details)"
                .to_string(),
        ];
        assert!(explain("hevc_nvenc", &l, "x").contains("this GPU has no NVENC engine"));
        // Verbatim from FFmpeg 5.1 on an H200 (driver 580).
        let l = vec!["[hevc_nvenc @ 0x562f245d35c0] OpenEncodeSessionEx failed: unsupported device (2): (no details)".to_string()];
        let r = explain("hevc_nvenc", &l, "Function not implemented");
        assert!(r.starts_with("this GPU has no NVENC engine"), "{r}");
        assert!(r.contains("NV_ENC_ERR_UNSUPPORTED_DEVICE"), "{r}");
        let l = vec!["Cannot load libnvidia-encode.so.1".to_string()];
        assert!(explain("h264_nvenc", &l, "x").contains("libnvidia-encode.so.1"));
        assert!(explain("h264_nvenc", &[], "Invalid argument").contains("Invalid argument"));
    }

    /// Here and in CI there is no CUDA: the real probe says so, and auto picks software.
    #[test]
    fn no_cuda_means_software_with_reason() {
        if cuda_present() {
            return; // a machine with a driver: covered by the GPU check binary
        }
        let e = nvenc_status(Codec::Hevc).unwrap_err();
        assert!(
            e.contains("libcuda") || e.contains("not in this FFmpeg build"),
            "{e}"
        );
        let s = select(
            Codec::H264,
            EncoderChoice::Auto,
            nvenc_status,
            software_name,
        )
        .unwrap();
        assert!(!s.nvenc);
        assert!(s.name.starts_with("lib"), "{}", s.name);
        assert!(s.fallback_reason.is_some());
        let e =
            super::super::check_encoder(Codec::Hevc, EncoderChoice::Nvenc, crate::Container::Mkv)
                .unwrap_err();
        assert!(matches!(e, RecorderError::EncoderUnavailable { .. }), "{e}");
    }
}
