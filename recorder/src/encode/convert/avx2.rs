//! Packed 32-bit RGB → I420 in one pass over each pair of rows, written with AVX2 intrinsics:
//! per 16 pixels of both rows, luma of the 32 pixels and chroma of their eight 2×2 blocks,
//! straight from registers to the three planes. The fixed-point maths is the scalar code's
//! (`luma`, `chroma` in the parent module), term by term — the same truncating 16×16 → high-16
//! products and the same rounding — so the bytes are identical to the scalar reference
//! (`tests::avx2_matches_the_scalar_rows` and the BT.709 tests check every row loop).
//!
//! Why by hand: the vectorised two-pass loop (`rows`) stores luma and per-channel sums to the
//! stack and reads them back, and gathers bytes one channel at a time; here one `vpshufb` puts a
//! channel into the high byte of 16-bit lanes (`vpmulhuw` then does the scalar `mulhi(c << 8)`),
//! and one `vpshufb` + `vpmaddubsw` sums horizontal pixel pairs of all four channels at once.

use std::arch::x86_64::*;

use super::{row_pairs, span, Geom, CHUNK, UB, UG, UR, VB, VG, VR, YB, YG, YR};

/// Pixels of each row per step.
const STEP: usize = 16;

/// Shuffle masks and coefficients for one channel order.
#[derive(Clone, Copy)]
struct Kernel {
    /// Per channel (R, G, B): the channel of pixels 0–3 of a 128-bit lane into the high bytes
    /// of 16-bit lanes 0–3 (`lo`), or 4–7 (`hi`); other bytes zero.
    luma_lo: [__m256i; 3],
    luma_hi: [__m256i; 3],
    /// Bytes of horizontal pixel pairs side by side per channel: (c of px 2q, c of px 2q+1).
    pairs: __m256i,
    /// Chroma coefficient of each channel position (x: 0) in 16-bit lanes, for U and for V.
    coef_u: __m256i,
    coef_v: __m256i,
}

impl Kernel {
    #[target_feature(enable = "avx2")]
    fn new<const R: usize, const G: usize, const B: usize>() -> Kernel {
        let luma = |ch: usize, high: bool| {
            let mut m = [0x80u8; 32];
            for lane in 0..2 {
                for i in 0..4 {
                    let at = lane * 16 + if high { 8 } else { 0 } + 2 * i + 1;
                    m[at] = (4 * i + ch) as u8;
                }
            }
            bytes(m)
        };
        let mut pairs = [0u8; 32];
        for lane in 0..2 {
            for q in 0..2 {
                for ch in 0..4 {
                    let at = lane * 16 + 8 * q + 2 * ch;
                    pairs[at] = (8 * q + ch) as u8;
                    pairs[at + 1] = (8 * q + 4 + ch) as u8;
                }
            }
        }
        let coef = |r: i16, g: i16, b: i16| {
            let mut c = [0i16; 4];
            (c[R], c[G], c[B]) = (r, g, b);
            _mm256_setr_epi16(
                c[0], c[1], c[2], c[3], c[0], c[1], c[2], c[3], c[0], c[1], c[2], c[3], c[0], c[1],
                c[2], c[3],
            )
        };
        Kernel {
            luma_lo: [luma(R, false), luma(G, false), luma(B, false)],
            luma_hi: [luma(R, true), luma(G, true), luma(B, true)],
            pairs: bytes(pairs),
            coef_u: coef(UR, UG, UB),
            coef_v: coef(VR, VG, VB),
        }
    }
}

/// A 32-byte constant as a register.
#[target_feature(enable = "avx2")]
fn bytes(b: [u8; 32]) -> __m256i {
    load(&b)
}

/// 32 bytes from the start of `s`.
#[target_feature(enable = "avx2")]
#[inline]
fn load(s: &[u8]) -> __m256i {
    let s = &s[..32];
    // SAFETY: `s` holds 32 readable bytes; loadu has no alignment requirement.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// The low 16 bytes of `v` to the start of `d`.
#[target_feature(enable = "avx2")]
#[inline]
fn store16(d: &mut [u8], v: __m128i) {
    let d = &mut d[..16];
    // SAFETY: `d` holds 16 writable bytes; storeu has no alignment requirement.
    unsafe { _mm_storeu_si128(d.as_mut_ptr().cast(), v) }
}

/// The low 8 bytes of `v` to the start of `d`.
#[target_feature(enable = "avx2")]
#[inline]
fn store8(d: &mut [u8], v: __m128i) {
    let d = &mut d[..8];
    // SAFETY: `d` holds 8 writable bytes; the store has no alignment requirement.
    unsafe { _mm_storel_epi64(d.as_mut_ptr().cast(), v) }
}

/// Luma of 16 pixels (`p0`: 0–7, `p1`: 8–15) in 16-bit lanes, in the order
/// 0–3, 8–11 | 4–7, 12–15 (`vpshufb` stays within 128-bit lanes).
#[target_feature(enable = "avx2")]
#[inline]
fn luma16(k: &Kernel, p0: __m256i, p1: __m256i) -> __m256i {
    // Channel << 8 in 16-bit lanes: the scalar code's `mulhi_u16(c << 8, coefficient)`.
    let ch = |i: usize| {
        _mm256_or_si256(
            _mm256_shuffle_epi8(p0, k.luma_lo[i]),
            _mm256_shuffle_epi8(p1, k.luma_hi[i]),
        )
    };
    let y = _mm256_add_epi16(
        _mm256_add_epi16(
            _mm256_mulhi_epu16(ch(0), _mm256_set1_epi16(YR as i16)),
            _mm256_mulhi_epu16(ch(1), _mm256_set1_epi16(YG as i16)),
        ),
        _mm256_mulhi_epu16(ch(2), _mm256_set1_epi16(YB as i16)),
    );
    // + 0.5 to round, + 16 (limited range), in 1/256 units; at most 60288: no wrap.
    _mm256_srli_epi16::<8>(_mm256_add_epi16(y, _mm256_set1_epi16(128 + (16 << 8))))
}

/// Per 2×2 block of `a` (row 0) and `b` (row 1), 8 pixels each: the four channels' sums,
/// 16-bit, blocks 0, 1 | 2, 3.
#[target_feature(enable = "avx2")]
#[inline]
fn block_sums(k: &Kernel, a: __m256i, b: __m256i) -> __m256i {
    let ones = _mm256_set1_epi8(1);
    _mm256_add_epi16(
        _mm256_maddubs_epi16(_mm256_shuffle_epi8(a, k.pairs), ones),
        _mm256_maddubs_epi16(_mm256_shuffle_epi8(b, k.pairs), ones),
    )
}

/// One chroma plane's values of eight blocks (sums `s0`: blocks 0–3, `s1`: 4–7, each already
/// × 32) as 32-bit lanes in block order.
#[target_feature(enable = "avx2")]
#[inline]
fn chroma8(s0: __m256i, s1: __m256i, coef: __m256i) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    // Each term truncated like `mulhi_i16`, then the block's three terms added exactly.
    let d0 = _mm256_madd_epi16(_mm256_mulhi_epi16(s0, coef), ones);
    let d1 = _mm256_madd_epi16(_mm256_mulhi_epi16(s1, coef), ones);
    // Blocks 0, 1, 4, 5 | 2, 3, 6, 7 → 0–7.
    let c = _mm256_permutevar8x32_epi32(
        _mm256_hadd_epi32(d0, d1),
        _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7),
    );
    _mm256_add_epi32(
        _mm256_srai_epi32::<7>(_mm256_add_epi32(c, _mm256_set1_epi32(64))),
        _mm256_set1_epi32(128),
    )
}

/// 16 pixels of two rows: 16 + 16 luma bytes, 8 U and 8 V.
#[target_feature(enable = "avx2")]
#[inline]
fn step(
    k: &Kernel,
    (s0, s1): (&[u8], &[u8]),
    (y0, y1): (&mut [u8], &mut [u8]),
    (u, v): (&mut [u8], &mut [u8]),
) {
    let (a0, a1) = (load(s0), load(&s0[32..]));
    let (b0, b1) = (load(s1), load(&s1[32..]));
    let y = _mm256_permutevar8x32_epi32(
        _mm256_packus_epi16(luma16(k, a0, a1), luma16(k, b0, b1)),
        _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
    );
    store16(y0, _mm256_castsi256_si128(y));
    store16(y1, _mm256_extracti128_si256::<1>(y));

    let s_lo = _mm256_slli_epi16::<5>(block_sums(k, a0, b0));
    let s_hi = _mm256_slli_epi16::<5>(block_sums(k, a1, b1));
    let uv = _mm256_packs_epi32(chroma8(s_lo, s_hi, k.coef_u), chroma8(s_lo, s_hi, k.coef_v));
    // Words U0–3 V0–3 | U4–7 V4–7 → bytes U0–7, V0–7.
    let uv = _mm256_permutevar8x32_epi32(
        _mm256_packus_epi16(uv, uv),
        _mm256_setr_epi32(0, 4, 1, 5, 0, 4, 1, 5),
    );
    let uv = _mm256_castsi256_si128(uv);
    store8(u, uv);
    store8(v, _mm_unpackhi_epi64(uv, uv));
}

/// The row loop (same contract as the parent's `rows`): 16 pixels at a time, the last `w % 16`
/// pixels of each row pair through the scalar code.
#[target_feature(enable = "avx2")]
pub(super) fn rows<const R: usize, const G: usize, const B: usize>(
    src: &[u8],
    g: Geom,
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) {
    let w = g.w;
    let k = Kernel::new::<R, G, B>();
    let body = w - w % STEP;
    let mut sums = [[0u16; CHUNK]; 3];
    for mut p in row_pairs(src, g, y, u, v) {
        for x in (0..body).step_by(STEP) {
            step(
                &k,
                (&p.s0[4 * x..][..4 * STEP], &p.s1[4 * x..][..4 * STEP]),
                (&mut p.y0[x..][..STEP], &mut p.y1[x..][..STEP]),
                (&mut p.u[x / 2..][..STEP / 2], &mut p.v[x / 2..][..STEP / 2]),
            );
        }
        if body < w {
            // Fewer than 16 pixels (an even count: `w` is even): the scalar-shaped loop.
            span::<R, G, B>(&mut p, body, w - body, &mut sums);
        }
    }
}
