//! What `zerocast-painter` draws, as pure functions of the output size and a frame counter.
//!
//! The painter paints with these functions and tests use them to compute the colour expected
//! at a coordinate, so both sides share one definition.
//!
//! ```text
//! +---------------------------------------------------------------+  y = 0
//! | counter: 24 cells, MSB left, white = 1, black = 0             |
//! +---------------------------------------------------------------+  y = strip_height / 2
//! | dark grey band with a yellow bar that moves with the counter  |
//! +-------------------------------+-------------------------------+  y = strip_height
//! |             RED               |             GREEN             |
//! +-------------------------------+-------------------------------+  y = quadrant_split_y
//! |             BLUE              |             WHITE             |
//! +-------------------------------+-------------------------------+  y = height
//!                                 x = width / 2
//! ```

/// An sRGB colour, 8 bits per channel.
pub type Rgb = [u8; 3];

pub const RED: Rgb = [255, 0, 0];
pub const GREEN: Rgb = [0, 255, 0];
pub const BLUE: Rgb = [0, 0, 255];
pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
/// Background of the bar band.
pub const BAND_GREY: Rgb = [64, 64, 64];
/// The moving bar.
pub const YELLOW: Rgb = [255, 255, 0];

/// Number of counter cells; the counter wraps at 2^24 (about 78 hours at 60 fps).
pub const COUNTER_BITS: u32 = 24;
pub const COUNTER_MASK: u32 = (1 << COUNTER_BITS) - 1;

/// One of the four solid quadrants below the strip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quadrant {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Quadrant {
    pub const ALL: [Quadrant; 4] = [
        Quadrant::TopLeft,
        Quadrant::TopRight,
        Quadrant::BottomLeft,
        Quadrant::BottomRight,
    ];

    pub const fn color(self) -> Rgb {
        match self {
            Quadrant::TopLeft => RED,
            Quadrant::TopRight => GREEN,
            Quadrant::BottomLeft => BLUE,
            Quadrant::BottomRight => WHITE,
        }
    }
}

/// A half-open rectangle: x in `x..x + w`, y in `y..y + h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && x < self.x + self.w && y >= self.y && y < self.y + self.h
    }

    pub fn center(&self) -> (u32, u32) {
        (self.x + self.w / 2, self.y + self.h / 2)
    }
}

/// The painter's layout for one output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
}

impl Layout {
    pub fn new(width: u32, height: u32) -> Layout {
        Layout { width, height }
    }

    /// Height of the animated strip at the top: 1/8 of the output (90 px at 720p), at least
    /// 2 px so that both bands exist.
    pub fn strip_height(&self) -> u32 {
        (self.height / 8).max(2).min(self.height)
    }

    /// The counter band: the top half of the strip.
    pub fn counter_band(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            w: self.width,
            h: self.strip_height() / 2,
        }
    }

    /// The bar band: the bottom half of the strip.
    pub fn bar_band(&self) -> Rect {
        let c = self.counter_band();
        Rect {
            x: 0,
            y: c.h,
            w: self.width,
            h: self.strip_height() - c.h,
        }
    }

    /// The whole strip; the only part of the screen that changes.
    pub fn strip(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            w: self.width,
            h: self.strip_height(),
        }
    }

    /// Counter cell of `bit` (0 = least significant; the most significant cell is leftmost).
    pub fn counter_cell(&self, bit: u32) -> Rect {
        assert!(bit < COUNTER_BITS);
        let i = COUNTER_BITS - 1 - bit;
        let x0 = i * self.width / COUNTER_BITS;
        let x1 = (i + 1) * self.width / COUNTER_BITS;
        Rect {
            x: x0,
            y: 0,
            w: x1 - x0,
            h: self.counter_band().h,
        }
    }

    /// Width of the moving bar.
    pub fn bar_width(&self) -> u32 {
        (self.width / 16).max(1)
    }

    /// The moving bar for `counter`: it advances width/128 px per frame and wraps.
    pub fn bar(&self, counter: u32) -> Rect {
        let band = self.bar_band();
        let step = (self.width / 128).max(1) as u64;
        let span = (self.width - self.bar_width() + 1) as u64;
        let x = ((counter as u64 * step) % span) as u32;
        Rect {
            x,
            y: band.y,
            w: self.bar_width(),
            h: band.h,
        }
    }

    /// Y where the top quadrants end and the bottom ones begin.
    pub fn quadrant_split_y(&self) -> u32 {
        let s = self.strip_height();
        s + (self.height - s) / 2
    }

    /// X where the left quadrants end and the right ones begin.
    pub fn quadrant_split_x(&self) -> u32 {
        self.width / 2
    }

    /// The rectangle of a quadrant.
    pub fn quadrant_rect(&self, q: Quadrant) -> Rect {
        let (sx, sy, top) = (
            self.quadrant_split_x(),
            self.quadrant_split_y(),
            self.strip_height(),
        );
        match q {
            Quadrant::TopLeft => Rect {
                x: 0,
                y: top,
                w: sx,
                h: sy - top,
            },
            Quadrant::TopRight => Rect {
                x: sx,
                y: top,
                w: self.width - sx,
                h: sy - top,
            },
            Quadrant::BottomLeft => Rect {
                x: 0,
                y: sy,
                w: sx,
                h: self.height - sy,
            },
            Quadrant::BottomRight => Rect {
                x: sx,
                y: sy,
                w: self.width - sx,
                h: self.height - sy,
            },
        }
    }

    /// Which quadrant holds (x, y); `None` in the strip or outside the output.
    pub fn quadrant_at(&self, x: u32, y: u32) -> Option<Quadrant> {
        if x >= self.width || y >= self.height || y < self.strip_height() {
            return None;
        }
        let right = x >= self.quadrant_split_x();
        let bottom = y >= self.quadrant_split_y();
        Some(match (right, bottom) {
            (false, false) => Quadrant::TopLeft,
            (true, false) => Quadrant::TopRight,
            (false, true) => Quadrant::BottomLeft,
            (true, true) => Quadrant::BottomRight,
        })
    }

    /// The static colour at (x, y): the quadrant colour, `None` in the (animated) strip.
    pub fn expected_color(&self, x: u32, y: u32) -> Option<Rgb> {
        self.quadrant_at(x, y).map(Quadrant::color)
    }

    /// The exact colour the painter puts at (x, y) in the frame showing `counter`.
    pub fn color_at(&self, x: u32, y: u32, counter: u32) -> Rgb {
        if let Some(q) = self.quadrant_at(x, y) {
            return q.color();
        }
        if self.counter_band().contains(x, y) {
            // The cells tile the band exactly, so one of them contains x.
            let bit = (0..COUNTER_BITS)
                .find(|&b| self.counter_cell(b).contains(x, y))
                .unwrap_or(0);
            return if counter & COUNTER_MASK & (1 << bit) != 0 {
                WHITE
            } else {
                BLACK
            };
        }
        if self.bar(counter).contains(x, y) {
            YELLOW
        } else {
            BAND_GREY
        }
    }

    /// One row of the counter band for `counter`, as XRGB8888 little-endian pixels.
    pub fn counter_row(&self, counter: u32, row: &mut [u32]) {
        row.fill(xrgb(BLACK));
        for bit in 0..COUNTER_BITS {
            if counter & (1 << bit) != 0 {
                let c = self.counter_cell(bit);
                row[c.x as usize..(c.x + c.w) as usize].fill(xrgb(WHITE));
            }
        }
    }

    /// One row of the bar band for `counter`, as XRGB8888 little-endian pixels.
    pub fn bar_row(&self, counter: u32, row: &mut [u32]) {
        row.fill(xrgb(BAND_GREY));
        let b = self.bar(counter);
        row[b.x as usize..(b.x + b.w) as usize].fill(xrgb(YELLOW));
    }

    /// Reads the counter back from a captured frame: samples the centre of each counter cell
    /// and treats luma > 127 as a 1. Robust to chroma subsampling and mild compression.
    pub fn decode_counter(&self, pixel: impl Fn(u32, u32) -> Rgb) -> u32 {
        (0..COUNTER_BITS).fold(0, |acc, bit| {
            let (x, y) = self.counter_cell(bit).center();
            let [r, g, b] = pixel(x, y);
            let luma = (299 * r as u32 + 587 * g as u32 + 114 * b as u32) / 1000;
            if luma > 127 {
                acc | (1 << bit)
            } else {
                acc
            }
        })
    }
}

/// What the painter shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Content {
    /// The layout above: four static quadrants under a strip (1/8 of the screen) holding the
    /// frame counter and a moving bar. What the end-to-end tests decode.
    #[default]
    Strip,
    /// Full motion: a page of coloured text scrolls up by [`MOTION_STEP`] rows every frame, so
    /// every pixel changes every frame (like scrolling a page or playing a video). No counter.
    /// The pixels are [`Layout::motion_texture`] rows from [`Layout::motion_offset`] on, so a
    /// benchmark can feed an encoder exactly what was on screen.
    FullMotion,
}

/// Rows the full-motion page scrolls per frame (240 px/s at 60 fps). Even, so that every frame
/// starts on an even texture row: the 4:2:0 chroma rows of a frame are then the chroma rows of
/// the texture, and a frame's I420 is a window of the texture's I420.
pub const MOTION_STEP: u32 = 4;

/// Full-motion glyphs: 8×14 px cells on an 18 px line pitch.
const GLYPH_W: usize = 8;
const GLYPH_H: usize = 14;
const LINE_PITCH: usize = 18;

impl Layout {
    /// Rows of the full-motion page before it repeats: about twice the output height, a whole
    /// number of text lines, even.
    pub fn motion_period(&self) -> u32 {
        let lines = (2 * self.height as usize).div_ceil(LINE_PITCH).max(1);
        (lines * LINE_PITCH) as u32
    }

    /// First texture row shown in the full-motion frame for `counter`; always even.
    pub fn motion_offset(&self, counter: u32) -> u32 {
        ((counter as u64 * MOTION_STEP as u64) % self.motion_period() as u64) as u32
    }

    /// The full-motion page as XRGB8888 pixels, `width` per row and `height + motion_period()`
    /// rows (the last `height` rows repeat the first ones), so that any frame is one contiguous
    /// slice: `&texture[offset * width..][..width * height]`.
    ///
    /// Background: red rises by 3 per row (a sawtooth; a 4-row scroll changes it by 12, never a
    /// multiple of 256), green by one per 5 columns, blue a slow vertical triangle; so even
    /// "empty" page changes under a scroll, as video does. Text: random 8×14 glyphs in words,
    /// darkened background (it changes too). Deterministic: the same pixels on every call.
    pub fn motion_texture(&self) -> Vec<u32> {
        let (w, period) = (self.width as usize, self.motion_period() as usize);
        let rows = self.height as usize + period;
        let bg = |x: usize, y: usize| -> [u8; 3] {
            let tri = (y % 512) as i32 - 256;
            [
                (3 * y + x / 9) as u8,
                ((x / 5 + y / 7) % 256) as u8,
                (tri.unsigned_abs() / 2 + 64) as u8,
            ]
        };
        let mut page = vec![0u32; w * period];
        for y in 0..period {
            for x in 0..w {
                page[y * w + x] = xrgb(bg(x, y));
            }
        }
        // Glyphs from a tiny xorshift PRNG: no dependency, same text every time.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rng = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let glyphs: Vec<[u8; GLYPH_H]> = (0..96)
            .map(|_| std::array::from_fn(|_| (rng() & rng() & 0xff) as u8))
            .collect();
        for line in 0..period / LINE_PITCH {
            let mut x = 8;
            while x + GLYPH_W + 8 < w {
                let word = 2 + (rng() % 9) as usize;
                for _ in 0..word {
                    if x + GLYPH_W + 8 >= w {
                        break;
                    }
                    let g = &glyphs[(rng() % 96) as usize];
                    for (gy, bits) in g.iter().enumerate() {
                        let y = line * LINE_PITCH + 2 + gy;
                        for gx in 0..GLYPH_W {
                            if bits >> gx & 1 == 1 {
                                let [r, g, b] = bg(x + gx, y);
                                page[y * w + x + gx] = xrgb([r / 4, g / 4, b / 4]);
                            }
                        }
                    }
                    x += GLYPH_W;
                }
                x += GLYPH_W;
            }
        }
        let mut texture = Vec::with_capacity(w * rows);
        while texture.len() < w * rows {
            let n = (w * rows - texture.len()).min(page.len());
            texture.extend_from_slice(&page[..n]);
        }
        texture
    }
}

/// An XRGB8888 pixel (wl_shm / DRM little-endian: bytes B, G, R, X in memory).
pub const fn xrgb(c: Rgb) -> u32 {
    0xff00_0000 | (c[0] as u32) << 16 | (c[1] as u32) << 8 | c[2] as u32
}

/// Whether two colours are within `tol` per channel (captures may be lossy or dithered).
pub fn close(a: Rgb, b: Rgb, tol: u8) -> bool {
    a.iter().zip(b.iter()).all(|(x, y)| x.abs_diff(*y) <= tol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadrants_cover_everything_below_the_strip() {
        for (w, h) in [(1280, 720), (1920, 1080), (321, 241), (64, 48)] {
            let l = Layout::new(w, h);
            let area: u32 = Quadrant::ALL
                .iter()
                .map(|q| l.quadrant_rect(*q))
                .map(|r| r.w * r.h)
                .sum();
            assert_eq!(area, w * (h - l.strip_height()));
            for q in Quadrant::ALL {
                let (x, y) = l.quadrant_rect(q).center();
                assert_eq!(l.quadrant_at(x, y), Some(q));
            }
        }
    }

    #[test]
    fn counter_roundtrips_through_rows_and_color_at() {
        let l = Layout::new(1280, 720);
        let mut row = vec![0u32; 1280];
        for counter in [0, 1, 2, 0x5a5a5a, COUNTER_MASK, 123_456] {
            l.counter_row(counter, &mut row);
            let from_row = l.decode_counter(|x, _| {
                let p = row[x as usize];
                [(p >> 16) as u8, (p >> 8) as u8, p as u8]
            });
            assert_eq!(from_row, counter);
            assert_eq!(l.decode_counter(|x, y| l.color_at(x, y, counter)), counter);
            for x in 0..1280 {
                assert_eq!(xrgb(l.color_at(x, 0, counter)), row[x as usize]);
            }
        }
    }

    #[test]
    fn bar_moves_and_stays_inside() {
        let l = Layout::new(1280, 720);
        assert_ne!(l.bar(0), l.bar(1));
        for c in 0..1000 {
            let b = l.bar(c);
            assert!(b.x + b.w <= 1280);
        }
        let mut row = vec![0u32; 1280];
        l.bar_row(7, &mut row);
        let y = l.bar_band().y;
        for x in 0..1280 {
            assert_eq!(xrgb(l.color_at(x, y, 7)), row[x as usize]);
        }
    }

    #[test]
    fn fixed_colours_at_720p() {
        let l = Layout::new(1280, 720);
        assert_eq!(l.strip_height(), 90);
        assert_eq!(l.expected_color(100, 200), Some(RED));
        assert_eq!(l.expected_color(1000, 200), Some(GREEN));
        assert_eq!(l.expected_color(100, 600), Some(BLUE));
        assert_eq!(l.expected_color(1000, 600), Some(WHITE));
        assert_eq!(l.expected_color(100, 10), None);
    }

    #[test]
    fn full_motion_changes_every_pixel_every_frame() {
        let l = Layout::new(1280, 720);
        let t = l.motion_texture();
        let (w, h) = (l.width as usize, l.height as usize);
        assert_eq!(t.len(), w * (h + l.motion_period() as usize));
        let frame = |c: u32| &t[l.motion_offset(c) as usize * w..][..w * h];
        // Across the wrap of the page too.
        let wrap = l.motion_period() / MOTION_STEP;
        for c in [0, 1, 100, wrap - 1, wrap, wrap + 1] {
            assert_eq!(l.motion_offset(c) % 2, 0);
            let (a, b) = (frame(c), frame(c + 1));
            let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
            assert!(
                same * 1000 < w * h,
                "frame {c} → {}: {same} of {} pixels unchanged",
                c + 1,
                w * h
            );
        }
        // Deterministic, so a benchmark regenerates what the painter drew.
        assert!(t == l.motion_texture());
    }
}
