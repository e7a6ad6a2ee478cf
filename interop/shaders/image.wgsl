// Source: an imported VkImage (explicit DRM modifier, any tiling) read with texelFetch, so the
// driver untiles; the Vulkan format already maps DRM byte order to RGBA.

@group(0) @binding(0) var src_tex: texture_2d<f32>;

// Source pixel (x, y) of the frame.
fn load_px(x: u32, y: u32) -> vec3<i32> {
    let c = textureLoad(src_tex, vec2<i32>(i32(x), i32(y)), 0);
    // UNORM -> integer is exact after rounding; 10-bit formats keep their top 8 bits, as the
    // buffer path does.
    if (p.fmt >= 2u) {
        return vec3<i32>(round(c.rgb * 1023.0)) >> vec3<u32>(2u);
    }
    return vec3<i32>(round(c.rgb * 255.0));
}

@compute @workgroup_size(16, 8, 1)
fn nv12(@builtin(global_invocation_id) gid: vec3<u32>) {
    nv12_block(gid);
}

@compute @workgroup_size(16, 8, 1)
fn bgrx_copy(@builtin(global_invocation_id) gid: vec3<u32>) {
    bgrx_block(gid);
}
