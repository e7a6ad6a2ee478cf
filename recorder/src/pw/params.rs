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

/// EnumFormat for shared-memory buffers: raw video in any of [`SHM_FORMATS`], any size, any rate.
pub fn shm_enum_format() -> Vec<u8> {
    let mut formats: Vec<Id> = SHM_FORMATS.iter().map(|f| Id(f.as_raw())).collect();
    let default = formats[0];
    let alternatives = std::mem::take(&mut formats);
    serialize(Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: ParamType::EnumFormat.as_raw(),
        properties: vec![
            Property::new(
                FormatProperties::MediaType.as_raw(),
                Value::Id(Id(MediaType::Video.as_raw())),
            ),
            Property::new(
                FormatProperties::MediaSubtype.as_raw(),
                Value::Id(Id(MediaSubtype::Raw.as_raw())),
            ),
            Property::new(
                FormatProperties::VideoFormat.as_raw(),
                Value::Choice(ChoiceValue::Id(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Enum {
                        default,
                        alternatives,
                    },
                ))),
            ),
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
        ],
    })
}

/// Buffers param for the SHM path: memfd or plain pointers, which MAP_BUFFERS maps for us.
pub fn shm_buffers() -> Vec<u8> {
    let types = (1i32 << spa::sys::SPA_DATA_MemFd) | (1i32 << spa::sys::SPA_DATA_MemPtr);
    serialize(Object {
        type_: SpaTypes::ObjectParamBuffers.as_raw(),
        id: ParamType::Buffers.as_raw(),
        properties: vec![Property {
            key: spa::sys::SPA_PARAM_BUFFERS_dataType,
            flags: PropertyFlags::empty(),
            value: Value::Choice(ChoiceValue::Int(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Flags {
                    default: types,
                    flags: vec![types],
                },
            ))),
        }],
    })
}

/// Meta param asking for the SPA header (PTS, CORRUPTED flag) on every buffer.
pub fn header_meta() -> Vec<u8> {
    serialize(Object {
        type_: SpaTypes::ObjectParamMeta.as_raw(),
        id: ParamType::Meta.as_raw(),
        properties: vec![
            Property::new(
                spa::sys::SPA_PARAM_META_type,
                Value::Id(Id(spa::sys::SPA_META_Header)),
            ),
            Property::new(
                spa::sys::SPA_PARAM_META_size,
                Value::Int(std::mem::size_of::<spa::sys::spa_meta_header>() as i32),
            ),
        ],
    })
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
