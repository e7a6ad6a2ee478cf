//! SPA pods the consumer offers: EnumFormat, Buffers and Meta params.
//!
//! Built as owned byte vectors so the caller can keep them alive across `connect` /
//! `update_params` (PipeWire copies them, but the `&Pod`s must outlive the call).

use pipewire::spa;
use spa::param::format::{FormatProperties, MediaSubtype, MediaType};
use spa::param::video::VideoFormat;
use spa::param::ParamType;
use spa::pod::serialize::PodSerializer;
use spa::pod::{ChoiceValue, Object, Property, PropertyFlags, Value};
use spa::utils::{Choice, ChoiceEnum, ChoiceFlags, Fraction, Id, Rectangle, SpaTypes};

use zerocast_interop::Fourcc;

use crate::frame::PixelFormat;

/// SHM formats we accept, in preference order. BGRx first: it is what wlroots and most
/// compositors produce natively, so it costs them no conversion.
pub const SHM_FORMATS: &[VideoFormat] = &[
    VideoFormat::BGRx,
    VideoFormat::BGRA,
    VideoFormat::RGBx,
    VideoFormat::RGBA,
    VideoFormat::xRGB,
    VideoFormat::xBGR,
];

/// Maps a negotiated SPA video format to our frame layout.
pub fn pixel_format(f: VideoFormat) -> Option<PixelFormat> {
    Some(match f {
        VideoFormat::BGRx => PixelFormat::Bgrx,
        VideoFormat::BGRA => PixelFormat::Bgra,
        VideoFormat::RGBx => PixelFormat::Rgbx,
        VideoFormat::RGBA => PixelFormat::Rgba,
        VideoFormat::xRGB => PixelFormat::Xrgb,
        VideoFormat::xBGR => PixelFormat::Xbgr,
        _ => return None,
    })
}

fn serialize(obj: Object) -> Vec<u8> {
    PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &Value::Object(obj))
        .expect("serializing a well-formed pod into a Vec cannot fail")
        .0
        .into_inner()
}

/// The DRM fourcc of a packed SPA format (SPA names bytes in memory order, DRM names a
/// little-endian 32-bit word, so SPA BGRx is DRM XRGB8888).
pub fn drm_fourcc(f: VideoFormat) -> Option<Fourcc> {
    Some(match f {
        VideoFormat::BGRx => Fourcc::XRGB8888,
        VideoFormat::BGRA => Fourcc::ARGB8888,
        VideoFormat::RGBx => Fourcc::XBGR8888,
        VideoFormat::RGBA => Fourcc::ABGR8888,
        _ => return None,
    })
}

/// Properties every EnumFormat pod shares: raw video, any size, any rate.
fn video_props(format: Value) -> Vec<Property> {
    vec![
        Property::new(
            FormatProperties::MediaType.as_raw(),
            Value::Id(Id(MediaType::Video.as_raw())),
        ),
        Property::new(
            FormatProperties::MediaSubtype.as_raw(),
            Value::Id(Id(MediaSubtype::Raw.as_raw())),
        ),
        Property::new(FormatProperties::VideoFormat.as_raw(), format),
    ]
}

fn size_and_rate() -> [Property; 2] {
    [
        Property::new(
            FormatProperties::VideoSize.as_raw(),
            Value::Choice(ChoiceValue::Rectangle(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Range {
                    default: Rectangle {
                        width: 1920,
                        height: 1080,
                    },
                    min: Rectangle {
                        width: 1,
                        height: 1,
                    },
                    max: Rectangle {
                        width: 16384,
                        height: 16384,
                    },
                },
            ))),
        ),
        Property::new(
            FormatProperties::VideoFramerate.as_raw(),
            Value::Choice(ChoiceValue::Fraction(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Range {
                    default: Fraction { num: 60, denom: 1 },
                    min: Fraction { num: 0, denom: 1 },
                    max: Fraction {
                        num: 1000,
                        denom: 1,
                    },
                },
            ))),
        ),
    ]
}

/// EnumFormat for DMA-BUFs of one format with any of `modifiers` (non-empty, preference order).
///
/// The modifier is MANDATORY (a producer without DMA-BUF must not match this pod and falls
/// through to the SHM pods) and DONT_FIXATE (the producer picks the modifier it can allocate,
/// not PipeWire's default). Like libspa's C users (OBS), the default is written and then
/// repeated as the first alternative.
pub fn dmabuf_enum_format(format: VideoFormat, modifiers: &[u64]) -> Vec<u8> {
    assert!(!modifiers.is_empty(), "a DMA-BUF pod needs a modifier");
    let mut props = video_props(Value::Id(Id(format.as_raw())));
    props.push(Property {
        key: FormatProperties::VideoModifier.as_raw(),
        flags: PropertyFlags::MANDATORY | PropertyFlags::DONT_FIXATE,
        value: Value::Choice(ChoiceValue::Long(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Enum {
                default: modifiers[0] as i64,
                alternatives: modifiers.iter().map(|&m| m as i64).collect(),
            },
        ))),
    });
    props.extend(size_and_rate());
    serialize(Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: ParamType::EnumFormat.as_raw(),
        properties: props,
    })
}

/// EnumFormat for shared-memory buffers: raw video in any of [`SHM_FORMATS`], any size, any rate.
pub fn shm_enum_format() -> Vec<u8> {
    let formats: Vec<Id> = SHM_FORMATS.iter().map(|f| Id(f.as_raw())).collect();
    let mut props = video_props(Value::Choice(ChoiceValue::Id(Choice(
        ChoiceFlags::empty(),
        ChoiceEnum::Enum {
            default: formats[0],
            alternatives: formats,
        },
    ))));
    props.extend(size_and_rate());
    serialize(Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: ParamType::EnumFormat.as_raw(),
        properties: props,
    })
}

/// The EnumFormat pods to offer: one DMA-BUF pod per format that has importable modifiers (in
/// [`SHM_FORMATS`] order), then the SHM pod. An empty `modifiers` offers SHM only.
pub fn enum_formats(modifiers: &[(VideoFormat, Vec<u64>)]) -> Vec<Vec<u8>> {
    SHM_FORMATS
        .iter()
        .filter_map(|f| {
            let (_, mods) = modifiers.iter().find(|(g, m)| g == f && !m.is_empty())?;
            Some(dmabuf_enum_format(*f, mods))
        })
        .chain(std::iter::once(shm_enum_format()))
        .collect()
}

/// Buffers param: `1<<DmaBuf` once a modifier was negotiated; otherwise memfd or plain pointers,
/// which MAP_BUFFERS maps for us.
pub fn buffers(dmabuf: bool) -> Vec<u8> {
    let types = if dmabuf {
        1i32 << spa::sys::SPA_DATA_DmaBuf
    } else {
        (1i32 << spa::sys::SPA_DATA_MemFd) | (1i32 << spa::sys::SPA_DATA_MemPtr)
    };
    serialize(Object {
        type_: SpaTypes::ObjectParamBuffers.as_raw(),
        id: ParamType::Buffers.as_raw(),
        properties: vec![buffer_count(), data_types(types)],
    })
}

/// The Buffers param's `buffers`: [`MIN_BUFFERS`]..=[`MAX_BUFFERS`], the minimum preferred.
/// Both Buffers params ask it: an explicit-sync producer (mutter, KWin) is held to the same
/// two-in-flight arithmetic as xdpw.
fn buffer_count() -> Property {
    Property {
        key: spa::sys::SPA_PARAM_BUFFERS_buffers,
        flags: PropertyFlags::empty(),
        value: Value::Choice(ChoiceValue::Int(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Range {
                default: MIN_BUFFERS,
                min: MIN_BUFFERS,
                max: MAX_BUFFERS,
            },
        ))),
    }
}

/// The Buffers param's `dataType`: the accepted memory types as one flags value, as libspa's
/// SPA_POD_CHOICE_FLAGS_Int writes it.
fn data_types(types: i32) -> Property {
    Property {
        key: spa::sys::SPA_PARAM_BUFFERS_dataType,
        flags: PropertyFlags::empty(),
        value: Value::Choice(ChoiceValue::Int(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Flags {
                default: types,
                flags: vec![],
            },
        ))),
    }
}

/// Buffers asked of the producer, at least. xdg-desktop-portal-wlr 0.7 offers 2 by default:
/// one being filled by the compositor and one that we hold while converting a frame, so it
/// runs "out of buffers" whenever a conversion is slower than a refresh (a loaded machine);
/// mostly it skips that frame, but in the endurance benchmark (issue 23) its screencopy loop
/// once stopped for good after 70 s, and the rest of the recording had no video. With 4 a
/// slow frame leaves it two to fill.
pub const MIN_BUFFERS: i32 = 4;
/// More would only hold more frames of memory (a 1080p BGRx buffer is 8 MB).
pub const MAX_BUFFERS: i32 = 16;

/// Buffers param that applies only when the SyncTimeline meta is negotiated too (explicit
/// sync): `metaType` = 1<<SyncTimeline, MANDATORY. Offered before the plain one, which is the
/// fallback when the producer has no explicit sync.
pub fn buffers_sync() -> Vec<u8> {
    serialize(Object {
        type_: SpaTypes::ObjectParamBuffers.as_raw(),
        id: ParamType::Buffers.as_raw(),
        properties: vec![
            buffer_count(),
            data_types(1i32 << spa::sys::SPA_DATA_DmaBuf),
            Property {
                key: spa::sys::SPA_PARAM_BUFFERS_metaType,
                flags: PropertyFlags::MANDATORY,
                value: Value::Int(1i32 << spa::sys::SPA_META_SyncTimeline),
            },
        ],
    })
}

/// Meta param for explicit sync: acquire/release timeline points on every buffer.
pub fn sync_timeline_meta() -> Vec<u8> {
    meta(
        spa::sys::SPA_META_SyncTimeline,
        std::mem::size_of::<spa::sys::spa_meta_sync_timeline>(),
    )
}

fn meta(type_: u32, size: usize) -> Vec<u8> {
    serialize(Object {
        type_: SpaTypes::ObjectParamMeta.as_raw(),
        id: ParamType::Meta.as_raw(),
        properties: vec![
            Property::new(spa::sys::SPA_PARAM_META_type, Value::Id(Id(type_))),
            Property::new(spa::sys::SPA_PARAM_META_size, Value::Int(size as i32)),
        ],
    })
}

/// Meta param asking for the SPA header (PTS, CORRUPTED flag) on every buffer.
pub fn header_meta() -> Vec<u8> {
    meta(
        spa::sys::SPA_META_Header,
        std::mem::size_of::<spa::sys::spa_meta_header>(),
    )
}

/// Meta param for the crop region (window casts of a larger buffer).
pub fn video_crop_meta() -> Vec<u8> {
    meta(
        spa::sys::SPA_META_VideoCrop,
        std::mem::size_of::<spa::sys::spa_meta_region>(),
    )
}

/// Largest cursor bitmap we accept as metadata (what OBS asks for too).
pub const CURSOR_MAX: u32 = 64;

/// Meta param for cursor metadata (portal cursor mode "metadata"): position plus a bitmap of
/// up to [`CURSOR_MAX`]² BGRA pixels.
pub fn cursor_meta() -> Vec<u8> {
    let size = std::mem::size_of::<spa::sys::spa_meta_cursor>()
        + std::mem::size_of::<spa::sys::spa_meta_bitmap>()
        + (CURSOR_MAX * CURSOR_MAX * 4) as usize;
    meta(spa::sys::SPA_META_Cursor, size)
}

/// What to ask for once the format is fixed.
pub fn after_format(dmabuf: bool, cursor: bool, sync: bool) -> Vec<Vec<u8>> {
    let mut pods = Vec::with_capacity(6);
    if dmabuf && sync {
        pods.push(buffers_sync());
    }
    pods.extend([buffers(dmabuf), header_meta(), video_crop_meta()]);
    if dmabuf && sync {
        pods.push(sync_timeline_meta());
    }
    if cursor {
        pods.push(cursor_meta());
    }
    pods
}

#[cfg(test)]
mod tests {
    use super::*;
    use spa::pod::deserialize::PodDeserializer;

    #[test]
    fn enum_format_round_trips() {
        let bytes = shm_enum_format();
        let (_, value) = PodDeserializer::deserialize_any_from(&bytes).unwrap();
        let Value::Object(obj) = value else {
            panic!("not an object")
        };
        assert_eq!(obj.id, ParamType::EnumFormat.as_raw());
        let fmt = obj
            .properties
            .iter()
            .find(|p| p.key == FormatProperties::VideoFormat.as_raw())
            .unwrap();
        let Value::Choice(ChoiceValue::Id(Choice(_, ChoiceEnum::Enum { alternatives, .. }))) =
            &fmt.value
        else {
            panic!("format is not an enum choice: {:?}", fmt.value)
        };
        assert_eq!(alternatives.len(), SHM_FORMATS.len());
    }
}

/// Byte-for-byte comparison with libspa's C builder (`golden.c`, compiled by build.rs).
#[cfg(test)]
mod golden {
    use super::*;

    extern "C" {
        fn golden_dmabuf_enum_format(
            buf: *mut u8,
            len: usize,
            format: u32,
            mods: *const u64,
            n_mods: u32,
        ) -> usize;
        fn golden_shm_enum_format(buf: *mut u8, len: usize) -> usize;
        fn golden_buffers(buf: *mut u8, len: usize, data_types: i32) -> usize;
        fn golden_buffers_sync(buf: *mut u8, len: usize, data_types: i32) -> usize;
        fn golden_meta(buf: *mut u8, len: usize, type_: u32, size: i32) -> usize;
    }

    /// Runs a C builder into a fresh buffer and returns the pod's bytes.
    fn c_pod(build: impl FnOnce(*mut u8, usize) -> usize) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let n = build(buf.as_mut_ptr(), buf.len());
        assert!(n > 0 && n <= buf.len(), "C builder overflowed");
        buf.truncate(n);
        buf
    }

    #[test]
    fn dmabuf_enum_format_matches_libspa() {
        for mods in [
            vec![0u64],
            vec![0, 0x0100_0000_0000_0002, 0x0300_0000_0060_6014],
        ] {
            let want = c_pod(|b, l| {
                // SAFETY: `b` is valid for `l` bytes; `mods` outlives the call.
                unsafe {
                    golden_dmabuf_enum_format(
                        b,
                        l,
                        VideoFormat::BGRx.as_raw(),
                        mods.as_ptr(),
                        mods.len() as u32,
                    )
                }
            });
            assert_eq!(dmabuf_enum_format(VideoFormat::BGRx, &mods), want);
        }
    }

    #[test]
    fn shm_enum_format_matches_libspa() {
        // SAFETY: `b` is valid for `l` bytes.
        let want = c_pod(|b, l| unsafe { golden_shm_enum_format(b, l) });
        assert_eq!(shm_enum_format(), want);
    }

    #[test]
    fn buffers_match_libspa() {
        for (dmabuf, types) in [
            (true, 1i32 << spa::sys::SPA_DATA_DmaBuf),
            (
                false,
                (1 << spa::sys::SPA_DATA_MemFd) | (1 << spa::sys::SPA_DATA_MemPtr),
            ),
        ] {
            // SAFETY: `b` is valid for `l` bytes.
            let want = c_pod(|b, l| unsafe { golden_buffers(b, l, types) });
            assert_eq!(buffers(dmabuf), want, "dmabuf={dmabuf}");
        }
    }

    #[test]
    fn sync_buffers_match_libspa() {
        // SAFETY: `b` is valid for `l` bytes.
        let want =
            c_pod(|b, l| unsafe { golden_buffers_sync(b, l, 1 << spa::sys::SPA_DATA_DmaBuf) });
        assert_eq!(buffers_sync(), want);
        // Offered first, then the plain fallback; the meta last. Never for SHM.
        let pods = after_format(true, false, true);
        assert_eq!(pods[0], buffers_sync());
        assert_eq!(pods[1], buffers(true));
        assert_eq!(pods.last(), Some(&sync_timeline_meta()));
        assert_eq!(
            after_format(false, false, true),
            after_format(false, false, false)
        );
    }

    #[test]
    fn metas_match_libspa() {
        for (pod, ty) in [
            (sync_timeline_meta(), spa::sys::SPA_META_SyncTimeline),
            (header_meta(), spa::sys::SPA_META_Header),
            (video_crop_meta(), spa::sys::SPA_META_VideoCrop),
            (cursor_meta(), spa::sys::SPA_META_Cursor),
        ] {
            let size = i32::from_ne_bytes(pod[pod.len() - 8..pod.len() - 4].try_into().unwrap());
            // SAFETY: `b` is valid for `l` bytes.
            let want = c_pod(|b, l| unsafe { golden_meta(b, l, ty, size) });
            assert_eq!(pod, want, "meta type {ty}");
        }
    }

    #[test]
    fn offer_is_dmabuf_first_then_shm() {
        let pods = enum_formats(&[
            (VideoFormat::RGBx, vec![0]),
            (VideoFormat::BGRx, vec![0, 5]),
            (VideoFormat::BGRA, vec![]),
        ]);
        assert_eq!(pods.len(), 3);
        assert_eq!(pods[0], dmabuf_enum_format(VideoFormat::BGRx, &[0, 5]));
        assert_eq!(pods[1], dmabuf_enum_format(VideoFormat::RGBx, &[0]));
        assert_eq!(pods[2], shm_enum_format());
        assert_eq!(enum_formats(&[]), vec![shm_enum_format()]);
    }
}
