// Source: a LINEAR frame bound as a storage buffer of 32-bit pixels (the VkBuffer import path).

@group(0) @binding(0) var<storage, read> src: array<u32>;

// Source pixel (x, y) of the frame.
fn load_px(x: u32, y: u32) -> vec3<i32> {
    return unpack_word(src[p.src_offset + y * p.src_stride + x]);
}

@compute @workgroup_size(16, 8, 1)
fn nv12(@builtin(global_invocation_id) gid: vec3<u32>) {
    nv12_block(gid);
}

@compute @workgroup_size(16, 8, 1)
fn bgrx_copy(@builtin(global_invocation_id) gid: vec3<u32>) {
    bgrx_block(gid);
}
