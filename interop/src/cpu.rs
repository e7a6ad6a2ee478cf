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

/// A rectangle in pixels: the part of a source frame to convert, or where the picture goes in
/// the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Region {
    pub fn whole(width: u32, height: u32) -> Self {
        Region {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// Non-empty, inside a `width`×`height` frame, and small enough for the shader's 16-bit
    /// fields.
    pub fn fits(&self, width: u32, height: u32) -> bool {
        self.width > 0
            && self.height > 0
            && self.x as u64 + self.width as u64 <= width as u64
            && self.y as u64 + self.height as u64 <= height as u64
            && width < 1 << 16
            && height < 1 << 16
    }

    /// Where a `sw`×`sh` picture goes in a `dw`×`dh` output with its aspect kept: the largest
    /// rectangle of that aspect inside the output, centred, with even size and offsets (whole
    /// 4:2:0 chroma samples). Within a pixel or two of the output's aspect it fills the output
    /// (a 1366×768 monitor into 1280×720), as bars of one pixel would only look like a bug.
    /// The one rule of both paths: the CPU path's swscale places frames here too.
    pub fn fitted(sw: u32, sh: u32, dw: u32, dh: u32) -> Region {
        let (sw64, sh64, dw64, dh64) = (sw as u64, sh as u64, dw as u64, dh as u64);
        let (w, h) = if sw64 * dh64 > dw64 * sh64 {
            // Wider than the output: full width, bars above and below.
            (dw64, (sh64 * dw64 + sw64 / 2) / sw64.max(1))
        } else {
            ((sw64 * dh64 + sh64 / 2) / sh64.max(1), dh64)
        };
        let even = |v: u64, max: u32| ((v.min(max as u64) as u32) & !1).max(2.min(max));
        let (w, h) = (even(w, dw), even(h, dh));
        if dw - w <= 2 && dh - h <= 2 {
            return Region::whole(dw, dh);
        }
        Region {
            x: ((dw - w) / 2) & !1,
            y: ((dh - h) / 2) & !1,
            width: w,
            height: h,
        }
    }
}

/// Which source pixels make which output pixels: `src` (in the source frame) is scaled into
/// `dst` (in the output); the output outside `dst` is black (letterbox bars).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub src: Region,
    pub dst: Region,
}

impl Framing {
    /// `src` stretched over the whole `width`×`height` output.
    pub fn fill(src: Region, width: u32, height: u32) -> Self {
        Framing {
            src,
            dst: Region::whole(width, height),
        }
    }

    /// `src` in the output with its aspect kept ([`Region::fitted`]); the whole output when the
    /// sizes are the same.
    pub fn fit(src: Region, width: u32, height: u32) -> Self {
        Framing {
            src,
            dst: Region::fitted(src.width, src.height, width, height),
        }
    }

    /// Whether every output pixel is one source pixel: no filter, no bars — the common case,
    /// which must stay as cheap (and as exact) as a plain conversion.
    pub fn is_direct(&self, width: u32, height: u32) -> bool {
        self.dst == Region::whole(width, height)
            && (self.src.width, self.src.height) == (width, height)
    }

    /// Source pixels per output pixel, 16.16 fixed point. `src.width << 16` fits in u32
    /// (sizes < 2^16), and so does `i * step` for every output index `i < dst.width`.
    pub fn steps(&self) -> (u32, u32) {
        (
            (self.src.width << 16) / self.dst.width.max(1),
            (self.src.height << 16) / self.dst.height.max(1),
        )
    }

    /// Packs the rectangles as the shader's `Params` takes them (x | y << 16, w | h << 16).
    pub fn packed(&self) -> [u32; 4] {
        let p = |a: u32, b: u32| a | (b << 16);
        [
            p(self.src.x, self.src.y),
            p(self.src.width, self.src.height),
            p(self.dst.x, self.dst.y),
            p(self.dst.width, self.dst.height),
        ]
    }
}

/// One axis of the bilinear filter: output index `i` (inside the destination) → the two source
/// indices (relative to the source rectangle) and the weight of the second, 0..=255 of 256.
/// Pixel centres line up (`(i + ½) · step − ½`), so a 0.5 scale averages pixel pairs and a
/// step of exactly 1 picks single pixels. Keep in sync with `tap` in shaders/common.wgsl.
#[inline]
pub fn tap(i: u32, step: u32, n: u32) -> (u32, u32, i32) {
    let p = i * step + (step >> 1);
    // Left of the first pixel's centre (upscaling): the first pixel.
    let q = p.saturating_sub(32768);
    let i0 = (q >> 16).min(n - 1);
    (i0, (i0 + 1).min(n - 1), ((q >> 8) & 0xff) as i32)
}

/// Bilinear blend of four pixels with 8-bit weights, rounded: integer maths, so that the
/// shader's copy gives the same bytes. The largest sum, 255 · 65536 + 32768, fits in i32.
#[inline]
pub fn blend(a: i32, b: i32, c: i32, d: i32, fx: i32, fy: i32) -> i32 {
    let top = a * (256 - fx) + b * fx;
    let bottom = c * (256 - fx) + d * fx;
    (top * (256 - fy) + bottom * fy + 32768) >> 16
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

/// What the shader's `px` computes per output pixel, precomputed once per frame.
struct Sampler<'a> {
    src: &'a SrcFrame<'a>,
    place: Framing,
    direct: bool,
    steps: (u32, u32),
    size: (u32, u32),
}

impl Sampler<'_> {
    /// Output pixel (x, y), as the shader's `px`.
    #[inline]
    fn px(&self, x: u32, y: u32) -> [i32; 3] {
        // Clamped to the output first: odd sizes replicate the last column/row into the
        // padding.
        let (x, y) = (x.min(self.size.0 - 1), y.min(self.size.1 - 1));
        let (s, d) = (self.place.src, self.place.dst);
        if self.direct {
            return self.src.px(s.x + x, s.y + y);
        }
        if x < d.x || x >= d.x + d.width || y < d.y || y >= d.y + d.height {
            return [0; 3];
        }
        let (x0, x1, fx) = tap(x - d.x, self.steps.0, s.width);
        let (y0, y1, fy) = tap(y - d.y, self.steps.1, s.height);
        let at = |x: u32, y: u32| self.src.px(s.x + x, s.y + y);
        let (a, b, c, e) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
        std::array::from_fn(|k| blend(a[k], b[k], c[k], e[k], fx, fy))
    }
}

/// Converts `src` into `dst` (at least `layout.size` bytes) exactly as the GPU does.
/// Padding bytes beyond [`FrameLayout::written_row_bytes`] are left alone.
pub fn convert(src: &SrcFrame<'_>, layout: &FrameLayout, dst: &mut [u8]) {
    assert!(src.width == layout.width && src.height == layout.height);
    let whole = Region::whole(src.width, src.height);
    convert_placed(
        src,
        &Framing::fill(whole, src.width, src.height),
        layout,
        dst,
    );
}

/// Converts `place.src` of `src` into `place.dst` of the output, bilinear where the sizes
/// differ, black around it — exactly as the GPU does.
pub fn convert_placed(src: &SrcFrame<'_>, place: &Framing, layout: &FrameLayout, dst: &mut [u8]) {
    assert!(
        dst.len() as u64 >= layout.size,
        "dst smaller than the frame layout"
    );
    assert!(
        place.src.fits(src.width, src.height),
        "{place:?} outside the source"
    );
    assert!(
        place.dst.fits(layout.width, layout.height),
        "{place:?} outside the output"
    );
    let sampler = Sampler {
        src,
        place: *place,
        direct: place.is_direct(layout.width, layout.height),
        steps: place.steps(),
        size: (layout.width, layout.height),
    };
    let px = |x: u32, y: u32| sampler.px(x, y);
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
                    let a = px(x, by);
                    let b = px(x + 1, by);
                    let c = px(x, by + 1);
                    let d = px(x + 1, by + 1);
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
                    let c = px(x, y);
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

    /// The filter's taps: a step of one picks single pixels (no blur when only one axis is
    /// scaled), a half step averages pairs, pixel centres line up, and nothing reads outside
    /// the source rectangle.
    #[test]
    fn bilinear_taps() {
        for i in 0..100 {
            assert_eq!(tap(i, 1 << 16, 100), (i, (i + 1).min(99), 0));
            assert_eq!(tap(i, 2 << 16, 200), (2 * i, 2 * i + 1, 128));
        }
        // 2x up: output 0 sits left of source 0's centre, output 1 a quarter past it.
        assert_eq!(tap(0, 1 << 15, 50), (0, 1, 0));
        assert_eq!(tap(1, 1 << 15, 50), (0, 1, 64));
        // The last one a quarter past the last centre: both taps on it.
        assert_eq!(tap(99, 1 << 15, 50), (49, 49, 64));
        // Every size pair within the shader's 16 bits stays in the source (no overflow either:
        // the largest output index times the step).
        for (sw, dw) in [(65535, 1), (65535, 2), (1, 65535), (3840, 641), (641, 3840)] {
            let step = (sw << 16) / dw;
            let (i0, i1, f) = tap(dw - 1, step, sw);
            assert!(i0 < sw && i1 < sw && (0..256).contains(&f), "{sw} → {dw}");
        }
        assert_eq!(blend(0, 255, 0, 255, 128, 0), 128);
        assert_eq!(blend(10, 10, 10, 10, 77, 201), 10);
        assert_eq!(blend(0, 255, 255, 0, 128, 128), 128);
    }

    #[test]
    fn fitted_keeps_the_aspect_centred_on_even_pixels() {
        let r = |x, y, width, height| Region {
            x,
            y,
            width,
            height,
        };
        // 4:3 into 16:9: pillarboxed; 16:10 too; 21:9 letterboxed.
        assert_eq!(Region::fitted(1024, 768, 1280, 720), r(160, 0, 960, 720));
        assert_eq!(Region::fitted(1920, 1200, 1280, 720), r(64, 0, 1152, 720));
        assert_eq!(Region::fitted(2560, 1080, 1280, 720), r(0, 90, 1280, 540));
        // Same aspect, and within a pixel of it: the whole output.
        assert_eq!(
            Region::fitted(1920, 1080, 1280, 720),
            Region::whole(1280, 720)
        );
        assert_eq!(
            Region::fitted(1366, 768, 1280, 720),
            Region::whole(1280, 720)
        );
        let f = Region::fitted(1001, 999, 640, 360);
        assert!(
            [f.width, f.height, f.x, f.y]
                .iter()
                .all(|v| v.is_multiple_of(2)),
            "{f:?}"
        );
        assert!(f.x + f.width <= 640 && f.y + f.height <= 360, "{f:?}");
    }

    /// Bars are black in both outputs (Y 16, Cb/Cr 128 in NV12), the picture is where
    /// `fitted` puts it, and a direct framing gives what `convert` gives.
    #[test]
    fn framed_picture_has_black_bars() {
        let (w, h) = (64u32, 48u32);
        let data = vec![0xffu8; (w * h * 4) as usize];
        let src = SrcFrame {
            data: &data,
            stride: (w * 4) as usize,
            width: w,
            height: h,
            code: PixelCode::Xrgb8,
        };
        let layout = FrameLayout::new(OutputMode::Nv12, 128, 48);
        let place = Framing::fit(Region::whole(w, h), 128, 48);
        assert_eq!(
            place.dst,
            Region {
                x: 32,
                y: 0,
                width: 64,
                height: 48
            }
        );
        let mut dst = vec![0u8; layout.size as usize];
        convert_placed(&src, &place, &layout, &mut dst);
        let p = layout.pitch as usize;
        for y in 0..48 {
            for x in 0..128 {
                let want = if (32..96).contains(&x) { 235 } else { 16 };
                assert_eq!(dst[y * p + x], want, "Y ({x}, {y})");
            }
        }
        for y in 0..24 {
            assert!(dst[layout.uv_offset as usize + y * p..][..128]
                .iter()
                .all(|&v| v == 128));
        }
        let same = FrameLayout::new(OutputMode::Nv12, w, h);
        let (mut a, mut b) = (vec![0u8; same.size as usize], vec![0u8; same.size as usize]);
        convert(&src, &same, &mut a);
        convert_placed(
            &src,
            &Framing::fit(Region::whole(w, h), w, h),
            &same,
            &mut b,
        );
        assert_eq!(a, b);
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

/// The colour maths against BT.709 written out here from the standard (ITU-R BT.709-6 items
/// 3.2 and 3.3, 8-bit limited range), not from the fixed-point constants: the GPU checks
/// compare the shaders with this reference byte for byte, so this is what anchors both.
#[cfg(test)]
mod bt709_reference_tests {
    use super::*;

    /// (Y, Cb, Cr) of 8-bit R'G'B' (0–255), unrounded: E'Y = Kr R + Kg G + Kb B,
    /// Cb = (B - E'Y) / (2 (1 - Kb)), Cr = (R - E'Y) / (2 (1 - Kr)), scaled to 219 (luma) and
    /// 224 (chroma) codes over 16 and 128.
    fn bt709(r: f64, g: f64, b: f64) -> [f64; 3] {
        const KR: f64 = 0.2126;
        const KB: f64 = 0.0722;
        const KG: f64 = 1.0 - KR - KB;
        let ey = (KR * r + KG * g + KB * b) / 255.0;
        let (er, eb) = (r / 255.0, b / 255.0);
        [
            16.0 + 219.0 * ey,
            128.0 + 224.0 * (eb - ey) / (2.0 * (1.0 - KB)),
            128.0 + 224.0 * (er - ey) / (2.0 * (1.0 - KR)),
        ]
    }

    /// Rounded to nearest, the result is within 1 code of the exact value.
    fn within_one(got: u8, want: f64) -> bool {
        (got as f64 - want).abs() <= 1.0
    }

    /// Every 8-bit colour, through the per-pixel functions the converter (and the shaders'
    /// copy of them) use.
    #[test]
    fn every_colour_matches_the_bt709_equations() {
        for r in 0..=255 {
            for g in 0..=255 {
                for b in 0..=255 {
                    let want = bt709(r as f64, g as f64, b as f64);
                    // Chroma takes the sums of a 2×2 block: a block of one colour.
                    let s = [4 * r, 4 * g, 4 * b];
                    let got = [luma([r, g, b]), chroma(s, KCB), chroma(s, KCR)];
                    for i in 0..3 {
                        assert!(
                            within_one(got[i], want[i]),
                            "RGB ({r}, {g}, {b}): got Y/Cb/Cr {got:?}, BT.709 says {want:?}"
                        );
                    }
                }
            }
        }
    }

    /// The 32-bit word of an 8-bit colour in `code` (10-bit channels: the usual 8→10 bit
    /// expansion, so the exact value is still the 8-bit colour's).
    fn word(code: PixelCode, [r, g, b]: [u32; 3]) -> u32 {
        let e = |c: u32| (c << 2) | (c >> 6);
        match code {
            PixelCode::Xrgb8 => (r << 16) | (g << 8) | b,
            PixelCode::Xbgr8 => (b << 16) | (g << 8) | r,
            PixelCode::Xrgb10 => (e(r) << 20) | (e(g) << 10) | e(b),
            PixelCode::Xbgr10 => (e(b) << 20) | (e(g) << 10) | e(r),
        }
    }

    /// Frames of channel gradients and pseudo-random colours in 2×2 blocks of one colour, then
    /// pseudo-random pixels (chroma is then the equations applied to the block's mean: the
    /// 2×2 box filter), through [`convert`] in every input layout.
    #[test]
    fn gradients_and_random_pixels_match_the_bt709_equations() {
        let mut colours: Vec<[u32; 3]> = Vec::new();
        for c in 0..=255 {
            colours.extend([[c, 0, 0], [0, c, 0], [0, 0, c], [c, c, c]]);
            colours.extend([[c, 255 - c, c / 2], [255, c, 255 - c], [255 - c, 255, c]]);
        }
        // xorshift32: deterministic, and no dependency for it.
        let mut state = 0x2545_f491u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let mut rgb = move || {
            let [r, g, b, _] = next().to_le_bytes();
            [r as u32, g as u32, b as u32]
        };
        while colours.len() < 8192 {
            colours.push(rgb());
        }
        let (w, per_row) = (600usize, 300usize);
        let block_rows = colours.len().div_ceil(per_row);
        let h = 2 * block_rows + 16;
        let mut pixels = vec![[0u32; 3]; w * h];
        for (i, c) in colours.iter().enumerate() {
            let (bx, by) = (i % per_row, i / per_row);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                pixels[(2 * by + dy) * w + 2 * bx + dx] = *c;
            }
        }
        for p in &mut pixels[2 * block_rows * w..] {
            *p = rgb();
        }
        let layout = FrameLayout::new(OutputMode::Nv12, w as u32, h as u32);
        let pitch = layout.pitch as usize;
        let f = |c: u32| c as f64;
        for code in [
            PixelCode::Xrgb8,
            PixelCode::Xbgr8,
            PixelCode::Xrgb10,
            PixelCode::Xbgr10,
        ] {
            let stride = 4 * w + 12;
            let mut data = vec![0u8; stride * h];
            for (i, c) in pixels.iter().enumerate() {
                let o = (i / w) * stride + 4 * (i % w);
                data[o..o + 4].copy_from_slice(&word(code, *c).to_le_bytes());
            }
            let src = SrcFrame {
                data: &data,
                stride,
                width: w as u32,
                height: h as u32,
                code,
            };
            let mut dst = vec![0u8; layout.size as usize];
            convert(&src, &layout, &mut dst);
            for (i, [r, g, b]) in pixels.iter().enumerate() {
                let (x, y) = (i % w, i / w);
                let want = bt709(f(*r), f(*g), f(*b))[0];
                let got = dst[y * pitch + x];
                assert!(
                    within_one(got, want),
                    "{code:?} Y at ({x}, {y}), RGB ({r}, {g}, {b}): got {got}, want {want}"
                );
            }
            for cy in 0..h / 2 {
                for cx in 0..w / 2 {
                    let block = [(0, 0), (1, 0), (0, 1), (1, 1)]
                        .map(|(dx, dy)| pixels[(2 * cy + dy) * w + 2 * cx + dx]);
                    let mean = |c: usize| block.iter().map(|p| f(p[c])).sum::<f64>() / 4.0;
                    let want = bt709(mean(0), mean(1), mean(2));
                    let o = layout.uv_offset as usize + cy * pitch + 2 * cx;
                    let got = [dst[o], dst[o + 1]];
                    assert!(
                        within_one(got[0], want[1]) && within_one(got[1], want[2]),
                        "{code:?} Cb/Cr at ({cx}, {cy}), block {block:?}: got {got:?}, \
                         want {:?}",
                        &want[1..]
                    );
                }
            }
        }
    }
}
