// Shared by buffer.wgsl and image.wgsl (build.rs prepends this file to each).
//
// BT.709, limited range, integer fixed point (x 65536). Integers, not floats, so that the CPU
// reference in src/cpu.rs produces byte-identical output; the coefficients are duplicated
// there and must stay in sync.

struct Params {
    width: u32,
    height: u32,
    // Source layout in 32-bit words (buffer path only).
    src_offset: u32,
    src_stride: u32,
    // Destination: row pitch in words (Y plane, or the BGRx plane) and UV plane start in words.
    dst_pitch: u32,
    dst_uv_offset: u32,
    // 0: XR24/AR24, 1: XB24/AB24, 2: XR30/AR30, 3: XB30/AB30 (see src/format.rs, PixelCode).
    fmt: u32,
    // Where the picture comes from and goes (x | y << 16, w | h << 16): the source region read
    // (a crop region, or the whole frame) is scaled into the destination rectangle of the
    // output (the whole output, or a centred part of it for a frame of another aspect); the
    // output outside it is black.
    src_xy: u32,
    src_wh: u32,
    dst_xy: u32,
    dst_wh: u32,
    // Source pixels per output pixel, 16.16 fixed point (see src/cpu.rs, Framing::steps).
    step_x: u32,
    step_y: u32,
}

var<immediate> p: Params;

// Set per pipeline by build.rs: false — the source region is the whole output at its size, one
// source pixel per output pixel (the common case, compiled without the filter); true —
// bilinear into the destination rectangle, black around it.
override SCALED: bool;

// One axis of the bilinear filter (src/cpu.rs `tap`): output index i inside the destination ->
// (first source index, second source index, weight of the second in 256ths). Pixel centres line
// up; i * step fits in u32 (see Framing::steps).
fn tap(i: u32, step: u32, n: u32) -> vec3<u32> {
    let q = i * step + (step >> 1u);
    let r = select(0u, q - 32768u, q > 32768u);
    let i0 = min(r >> 16u, n - 1u);
    return vec3<u32>(i0, min(i0 + 1u, n - 1u), (r >> 8u) & 0xffu);
}

// Output pixel (x, y) as RGB. Clamped to the output first: odd sizes replicate the last
// column/row into the padding, like the CPU reference.
fn px(x: u32, y: u32) -> vec3<i32> {
    let xc = min(x, p.width - 1u);
    let yc = min(y, p.height - 1u);
    let sx = p.src_xy & 0xffffu;
    let sy = p.src_xy >> 16u;
    if (!SCALED) {
        return load_px(sx + xc, sy + yc);
    }
    let dx = p.dst_xy & 0xffffu;
    let dy = p.dst_xy >> 16u;
    let dw = p.dst_wh & 0xffffu;
    let dh = p.dst_wh >> 16u;
    if (xc < dx || xc >= dx + dw || yc < dy || yc >= dy + dh) {
        // Black: Y 16, Cb/Cr 128 after the conversion.
        return vec3<i32>(0);
    }
    let tx = tap(xc - dx, p.step_x, p.src_wh & 0xffffu);
    let ty = tap(yc - dy, p.step_y, p.src_wh >> 16u);
    let a = load_px(sx + tx.x, sy + ty.x);
    let b = load_px(sx + tx.y, sy + ty.x);
    let c = load_px(sx + tx.x, sy + ty.y);
    let d = load_px(sx + tx.y, sy + ty.y);
    // src/cpu.rs `blend`: the same integer sums, so the same bytes.
    let fx = i32(tx.z);
    let fy = i32(ty.z);
    let top = a * (256 - fx) + b * fx;
    let bottom = c * (256 - fx) + d * fx;
    return (top * (256 - fy) + bottom * fy + vec3<i32>(32768)) >> vec3<u32>(16u);
}

fn unpack_word(w: u32) -> vec3<i32> {
    var r: u32;
    var g: u32;
    var b: u32;
    switch p.fmt {
        case 0u: { r = (w >> 16u) & 0xffu; g = (w >> 8u) & 0xffu; b = w & 0xffu; }
        case 1u: { r = w & 0xffu; g = (w >> 8u) & 0xffu; b = (w >> 16u) & 0xffu; }
        case 2u: { r = ((w >> 20u) & 0x3ffu) >> 2u; g = ((w >> 10u) & 0x3ffu) >> 2u; b = (w & 0x3ffu) >> 2u; }
        default: { r = (w & 0x3ffu) >> 2u; g = ((w >> 10u) & 0x3ffu) >> 2u; b = ((w >> 20u) & 0x3ffu) >> 2u; }
    }
    return vec3<i32>(i32(r), i32(g), i32(b));
}

fn luma(c: vec3<i32>) -> u32 {
    return u32((11966 * c.x + 40254 * c.y + 4064 * c.z + 32768) >> 16u) + 16u;
}

// `s` is the sum of four pixels (2x2 box filter), so divide by 4 * 65536.
fn chroma(s: vec3<i32>) -> u32 {
    let cb = (-6596 * s.x - 22188 * s.y + 28784 * s.z + (128 << 18u) + (1 << 17u)) >> 18u;
    let cr = (28784 * s.x - 26145 * s.y - 2639 * s.z + (128 << 18u) + (1 << 17u)) >> 18u;
    return u32(cb) | (u32(cr) << 8u);
}

fn bgrx(c: vec3<i32>) -> u32 {
    return u32(c.z) | (u32(c.y) << 8u) | (u32(c.x) << 16u) | 0xff000000u;
}

@group(1) @binding(0) var<storage, read_write> dst: array<u32>;

// One invocation converts a 4x2 pixel block: two 32-bit Y words and one UV word, so no
// sub-word writes (and no atomics) are needed.
fn nv12_block(gid: vec3<u32>) {
    let bx = gid.x * 4u;
    let by = gid.y * 2u;
    if (bx >= p.width || by >= p.height) {
        return;
    }
    var y0 = 0u;
    var y1 = 0u;
    var uv = 0u;
    for (var i = 0u; i < 2u; i++) {
        let x = bx + 2u * i;
        let a = px(x, by);
        let b = px(x + 1u, by);
        let c = px(x, by + 1u);
        let d = px(x + 1u, by + 1u);
        let sh = 16u * i;
        y0 |= (luma(a) | (luma(b) << 8u)) << sh;
        y1 |= (luma(c) | (luma(d) << 8u)) << sh;
        uv |= chroma(a + b + c + d) << sh;
    }
    let col = gid.x;
    // The Y plane has an even number of rows (see src/convert.rs), so row by + 1 exists.
    dst[by * p.dst_pitch + col] = y0;
    dst[(by + 1u) * p.dst_pitch + col] = y1;
    dst[p.dst_uv_offset + gid.y * p.dst_pitch + col] = uv;
}

fn bgrx_block(gid: vec3<u32>) {
    let bx = gid.x * 4u;
    let by = gid.y * 2u;
    if (bx >= p.width || by >= p.height) {
        return;
    }
    for (var r = 0u; r < 2u; r++) {
        let y = by + r;
        if (y < p.height) {
            for (var i = 0u; i < 4u; i++) {
                // Pitch is a multiple of 64 words >= width rounded up to 4: in bounds.
                dst[y * p.dst_pitch + bx + i] = bgrx(px(bx + i, y));
            }
        }
    }
}
