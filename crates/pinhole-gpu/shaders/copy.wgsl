// copy.wgsl — data movement: ranged copies, poisoning, and the bandwidth baseline.
//
// Layouts: flat arrays of 32-bit words.
//   copy_range: dst[dst_off + i] = src[src_off + i] for i < n (row slices, KV-cache writes,
//               the copy half of scatter)
//   fill:       dst[i] = value for i < n (tests poison outputs with NaN to catch unwritten
//               elements)
//   copy_vec4:  dst4[i] = src4[i] for i < n/4 — the plain copy every benchmark is compared to
// Dispatch: 256 threads per workgroup, (gx, gy, 1), element = (wg.x + wg.y·gx)·256 + lane.

struct Params {
    n: u32,
    src_off: u32,
    dst_off: u32,
    value: u32,
    gx: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read> src4: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> dst4: array<vec4<u32>>;

// #include "common/grid.wgsl"

@compute @workgroup_size(256)
fn copy_range(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i < p.n) {
        dst[p.dst_off + i] = src[p.src_off + i];
    }
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i < p.n) {
        dst[i] = p.value;
    }
}

@compute @workgroup_size(256)
fn copy_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i < p.n / 4u) {
        dst4[i] = src4[i];
    }
}
