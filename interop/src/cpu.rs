//! Output frame layout and the CPU reference conversion.
//!
//! The reference is bit-exact with `shaders/*.wgsl` (same integer BT.709 math, same edge
//! clamping), so tests compare every written byte. It is also the converter of the CPU path
//! that the benchmark measures against.

use crate::format::PixelCode;

/// What the converter writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputMode {
    /// NV12 (Y plane, then interleaved CbCr at half resolution), BT.709 limited range.
    Nv12,
    /// Packed B, G, R, 0xff bytes: for encoders that take RGB (passthrough, any input order).
    Bgrx,
}

/// Row pitch alignment of the output. 256 bytes satisfies NVENC's and CUDA's pitch rules and
/// `optimalBufferCopyRowPitchAlignment` everywhere we have seen.
pub const PITCH_ALIGN: u32 = 256;

/// Where the planes of one output frame lie in its slot's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameLayout {
    pub mode: OutputMode,
    pub width: u32,
    pub height: u32,
    /// Bytes per row, of both NV12 planes (or of the BGRx plane).
    pub pitch: u32,
    /// Byte offset of the CbCr plane (NV12); 0 for BGRx.
    pub uv_offset: u64,
    /// Rows in the Y plane: the height rounded up to even, so 4:2:0 blocks are whole.
    pub y_rows: u32,
    /// Bytes of the whole frame.
    pub size: u64,
}

fn align(v: u32, a: u32) -> u32 {
    v.div_ceil(a) * a
}

impl FrameLayout {
    pub fn new(mode: OutputMode, width: u32, height: u32) -> Self {
        match mode {
            OutputMode::Nv12 => {
                let pitch = align(align(width, 4), PITCH_ALIGN);
                let y_rows = align(height, 2);
                let uv_offset = pitch as u64 * y_rows as u64;
                FrameLayout {
                    mode,
                    width,
                    height,
                    pitch,
                    uv_offset,
                    y_rows,
                    size: uv_offset + pitch as u64 * (y_rows / 2) as u64,
                }
            }
            OutputMode::Bgrx => {
                let pitch = align(align(width, 4) * 4, PITCH_ALIGN);
                FrameLayout {
                    mode,
                    width,
                    height,
                    pitch,
                    uv_offset: 0,
                    y_rows: height,
                    size: pitch as u64 * height as u64,
                }
            }
        }
    }

    /// Bytes per row that the converter writes (the rest of the pitch is padding).
    pub fn written_row_bytes(&self) -> u32 {
        match self.mode {
            OutputMode::Nv12 => align(self.width, 4),
            OutputMode::Bgrx => self.width * 4,
        }
    }

    /// (row offset, length) of every written row, Y then UV.
    pub fn written_rows(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let len = self.written_row_bytes() as usize;
        let pitch = self.pitch as usize;
        let uv_rows = match self.mode {
            OutputMode::Nv12 => self.y_rows / 2,
            OutputMode::Bgrx => 0,
        };
        (0..self.y_rows as usize)
            .map(move |r| (r * pitch, len))
            .chain((0..uv_rows as usize).map(move |r| (self.uv_offset as usize + r * pitch, len)))
    }
}

// BT.709 limited range, x 65536. Keep in sync with shaders/common.wgsl.
const KY: [i32; 3] = [11966, 40254, 4064];
const KCB: [i32; 3] = [-6596, -22188, 28784];
const KCR: [i32; 3] = [28784, -26145, -2639];

#[inline]
fn unpack(w: u32, code: PixelCode) -> [i32; 3] {
    let (r, g, b) = match code {
        PixelCode::Xrgb8 => ((w >> 16) & 0xff, (w >> 8) & 0xff, w & 0xff),
        PixelCode::Xbgr8 => (w & 0xff, (w >> 8) & 0xff, (w >> 16) & 0xff),
        PixelCode::Xrgb10 => (
            ((w >> 20) & 0x3ff) >> 2,
            ((w >> 10) & 0x3ff) >> 2,
            (w & 0x3ff) >> 2,
        ),
        PixelCode::Xbgr10 => (
            (w & 0x3ff) >> 2,
            ((w >> 10) & 0x3ff) >> 2,
            ((w >> 20) & 0x3ff) >> 2,
        ),
    };
    [r as i32, g as i32, b as i32]
}

#[inline]
fn luma(c: [i32; 3]) -> u8 {
    (((KY[0] * c[0] + KY[1] * c[1] + KY[2] * c[2] + 32768) >> 16) + 16) as u8
}

#[inline]
fn chroma(s: [i32; 3], k: [i32; 3]) -> u8 {
    ((k[0] * s[0] + k[1] * s[1] + k[2] * s[2] + (128 << 18) + (1 << 17)) >> 18) as u8
}

/// A source frame in host memory: 32-bit pixels, `stride` bytes per row.
#[derive(Clone, Copy)]
pub struct SrcFrame<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: u32,
    pub height: u32,
    pub code: PixelCode,
}

impl SrcFrame<'_> {
    #[inline]
    fn px(&self, x: u32, y: u32) -> [i32; 3] {
        let x = x.min(self.width - 1) as usize;
        let y = y.min(self.height - 1) as usize;
        let o = y * self.stride + x * 4;
        let w = u32::from_le_bytes(self.data[o..o + 4].try_into().expect("4 bytes"));
        unpack(w, self.code)
    }
}

/// Converts `src` into `dst` (at least `layout.size` bytes) exactly as the GPU does.
/// Padding bytes beyond [`FrameLayout::written_row_bytes`] are left alone.
pub fn convert(src: &SrcFrame<'_>, layout: &FrameLayout, dst: &mut [u8]) {
    assert!(
        dst.len() as u64 >= layout.size,
        "dst smaller than the frame layout"
    );
    assert!(src.width == layout.width && src.height == layout.height);
    let pitch = layout.pitch as usize;
    match layout.mode {
        OutputMode::Nv12 => {
            let w4 = layout.written_row_bytes();
            for by in (0..layout.y_rows).step_by(2) {
                let (ys, uvs) = dst.split_at_mut(layout.uv_offset as usize);
                let (y0, rest) = ys[by as usize * pitch..].split_at_mut(pitch);
                let y1 = &mut rest[..pitch];
                let uv = &mut uvs[(by / 2) as usize * pitch..][..pitch];
                for cx in 0..w4 / 2 {
                    let x = cx * 2;
                    let a = src.px(x, by);
                    let b = src.px(x + 1, by);
                    let c = src.px(x, by + 1);
                    let d = src.px(x + 1, by + 1);
                    y0[x as usize] = luma(a);
                    y0[x as usize + 1] = luma(b);
                    y1[x as usize] = luma(c);
                    y1[x as usize + 1] = luma(d);
                    let s = [
                        a[0] + b[0] + c[0] + d[0],
                        a[1] + b[1] + c[1] + d[1],
                        a[2] + b[2] + c[2] + d[2],
                    ];
                    uv[x as usize] = chroma(s, KCB);
                    uv[x as usize + 1] = chroma(s, KCR);
                }
            }
        }
        OutputMode::Bgrx => {
            for y in 0..layout.height {
                let row = &mut dst[y as usize * pitch..][..layout.width as usize * 4];
                for x in 0..layout.width {
                    let c = src.px(x, y);
                    row[x as usize * 4..][..4]
                        .copy_from_slice(&[c[2] as u8, c[1] as u8, c[0] as u8, 0xff]);
                }
            }
        }
    }
}

/// Compares the written bytes of two frames; `Err` names the first mismatch and the count.
pub fn compare(layout: &FrameLayout, got: &[u8], want: &[u8]) -> Result<(), String> {
    let mut bad = 0u64;
    let mut first = None;
    for (off, len) in layout.written_rows() {
        for i in off..off + len {
            if got[i] != want[i] {
                bad += 1;
                first.get_or_insert((i, got[i], want[i]));
            }
        }
    }
    match first {
        None => Ok(()),
        Some((i, g, w)) => Err(format!(
            "{bad} bytes differ; first at offset {i} (row {}, col {}): got {g}, want {w}",
            i / layout.pitch as usize,
            i % layout.pitch as usize
        )),
    }
}

/// A deterministic test pattern: pseudo-random pixels, so every value range and every
/// byte position is exercised (a gradient would hide swapped channels at the edges).
pub fn pattern_pixel(x: u32, y: u32, seed: u32) -> u32 {
    let mut h =
        x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77) ^ seed.wrapping_mul(0xC2B2_AE3D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h
}

/// Fills `dst` (rows of `stride` bytes) with [`pattern_pixel`].
pub fn fill_pattern(dst: &mut [u8], stride: usize, width: u32, height: u32, seed: u32) {
    for y in 0..height {
        let row = &mut dst[y as usize * stride..][..width as usize * 4];
        for x in 0..width {
            row[x as usize * 4..][..4].copy_from_slice(&pattern_pixel(x, y, seed).to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_range_extremes() {
        assert_eq!(luma([0, 0, 0]), 16);
        assert_eq!(luma([255, 255, 255]), 235);
        let white = [1020, 1020, 1020];
        assert_eq!(chroma(white, KCB), 128);
        assert_eq!(chroma(white, KCR), 128);
        assert_eq!(chroma([0, 0, 1020], KCB), 240);
        assert_eq!(chroma([1020, 0, 0], KCR), 240);
        assert_eq!(chroma([1020, 1020, 0], KCB), 16);
    }

    #[test]
    fn layout_odd_sizes() {
        let l = FrameLayout::new(OutputMode::Nv12, 1921, 1081);
        assert_eq!(l.pitch, 2048);
        assert_eq!(l.y_rows, 1082);
        assert_eq!(l.size, 2048 * 1082 + 2048 * 541);
        let l = FrameLayout::new(OutputMode::Nv12, 3840, 2160);
        assert_eq!(l.pitch, 3840);
    }
}
