//! DRM fourcc codes and modifiers, and how they map to Vulkan formats and shader decoding.

use ash::vk;
use std::fmt;

/// How a buffer of a given modifier is imported (chosen per device by
/// [`crate::ModifierSet::query`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// A `VkImage` with `VK_IMAGE_TILING_DRM_FORMAT_MODIFIER_EXT` and an explicit modifier.
    Image,
    /// LINEAR memory bound to a `VkBuffer` (no VK_EXT_image_drm_format_modifier, e.g. lavapipe).
    Buffer,
}

/// A DRM fourcc code (`drm_fourcc.h`), e.g. `XR24` = `DRM_FORMAT_XRGB8888`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fourcc(pub u32);

impl Fourcc {
    pub const fn from_chars(c: [u8; 4]) -> Self {
        Fourcc(c[0] as u32 | (c[1] as u32) << 8 | (c[2] as u32) << 16 | (c[3] as u32) << 24)
    }
    pub const XRGB8888: Fourcc = Fourcc::from_chars(*b"XR24");
    pub const ARGB8888: Fourcc = Fourcc::from_chars(*b"AR24");
    pub const XBGR8888: Fourcc = Fourcc::from_chars(*b"XB24");
    pub const ABGR8888: Fourcc = Fourcc::from_chars(*b"AB24");
    pub const XRGB2101010: Fourcc = Fourcc::from_chars(*b"XR30");
    pub const ARGB2101010: Fourcc = Fourcc::from_chars(*b"AR30");

    /// Every fourcc the interop path accepts, in preference order.
    pub const ACCEPTED: [Fourcc; 6] = [
        Fourcc::XRGB8888,
        Fourcc::ARGB8888,
        Fourcc::XBGR8888,
        Fourcc::ABGR8888,
        Fourcc::XRGB2101010,
        Fourcc::ARGB2101010,
    ];

    /// The Vulkan format whose memory layout equals this fourcc's (little-endian DRM codes).
    pub fn vk_format(self) -> Option<vk::Format> {
        Some(match self {
            Fourcc::XRGB8888 | Fourcc::ARGB8888 => vk::Format::B8G8R8A8_UNORM,
            Fourcc::XBGR8888 | Fourcc::ABGR8888 => vk::Format::R8G8B8A8_UNORM,
            Fourcc::XRGB2101010 | Fourcc::ARGB2101010 => vk::Format::A2R10G10B10_UNORM_PACK32,
            _ => return None,
        })
    }

    /// How the shaders and the CPU reference decode a 32-bit pixel of this format.
    pub fn pixel_code(self) -> Option<PixelCode> {
        Some(match self {
            Fourcc::XRGB8888 | Fourcc::ARGB8888 => PixelCode::Xrgb8,
            Fourcc::XBGR8888 | Fourcc::ABGR8888 => PixelCode::Xbgr8,
            Fourcc::XRGB2101010 | Fourcc::ARGB2101010 => PixelCode::Xrgb10,
            _ => return None,
        })
    }

    pub fn bytes_per_pixel(self) -> u32 {
        4
    }
}

impl fmt::Debug for Fourcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_le_bytes();
        if b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
            write!(f, "{}", String::from_utf8_lossy(&b).trim_end())
        } else {
            write!(f, "Fourcc({:#010x})", self.0)
        }
    }
}

impl fmt::Display for Fourcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The `fmt` push constant of the shaders (`shaders/common.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum PixelCode {
    /// B, G, R, X bytes (bits 0-7 blue).
    Xrgb8 = 0,
    /// R, G, B, X bytes.
    Xbgr8 = 1,
    /// 2:10:10:10, blue in the low bits.
    Xrgb10 = 2,
    /// 2:10:10:10, red in the low bits.
    Xbgr10 = 3,
}

/// A DRM format modifier (`drm_fourcc.h` `DRM_FORMAT_MOD_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Modifier(pub u64);

impl Modifier {
    pub const LINEAR: Modifier = Modifier(0);
    /// `DRM_FORMAT_MOD_INVALID`: "implicit modifier", never importable here.
    pub const INVALID: Modifier = Modifier(0x00ff_ffff_ffff_ffff);

    pub fn vendor(self) -> u8 {
        (self.0 >> 56) as u8
    }
}

impl fmt::Debug for Modifier {
    /// Readable names for what we meet in practice; the raw value is always printed too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        match v {
            0 => return write!(f, "LINEAR"),
            0x00ff_ffff_ffff_ffff => return write!(f, "INVALID"),
            _ => {}
        }
        match self.vendor() {
            // DRM_FORMAT_MOD_NVIDIA_BLOCK_LINEAR_2D: bits 0-3 log2(block height in GOBs), bit 4
            // marks the 2D layout, 12-19 page kind, 20-21 GOB generation, 22 sector layout,
            // 23-25 compression.
            0x03 if v & 0x10 != 0 => write!(
                f,
                "NVIDIA_BLOCK_LINEAR_2D(h={}, kind={:#x}, gen={}, sector={}, comp={}) [{v:#018x}]",
                1u32 << (v & 0xf),
                (v >> 12) & 0xff,
                (v >> 20) & 0x3,
                (v >> 22) & 0x1,
                (v >> 23) & 0x7
            ),
            0x03 => write!(f, "NVIDIA_LEGACY_{:#x} [{v:#018x}]", v & 0xf),
            0x01 => write!(f, "INTEL_{:#x} [{v:#018x}]", v & 0x00ff_ffff_ffff_ffff),
            0x02 => write!(f, "AMD [{v:#018x}]"),
            0x08 => write!(f, "ARM [{v:#018x}]"),
            vendor => write!(f, "VENDOR_{vendor:#x} [{v:#018x}]"),
        }
    }
}

impl fmt::Display for Modifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(format!("{:?}", Fourcc::XRGB8888), "XR24");
        assert_eq!(Fourcc::XRGB8888.0, 0x3432_5258);
        assert_eq!(format!("{:?}", Modifier::LINEAR), "LINEAR");
        assert_eq!(
            format!("{:?}", Modifier(0x0300000000606014)),
            "NVIDIA_BLOCK_LINEAR_2D(h=16, kind=0x6, gen=2, sector=1, comp=0) [0x0300000000606014]"
        );
    }
}
