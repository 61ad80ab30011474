// elementwise.wgsl — one thread per element: activations, the fused gated MLP activation,
// residual add, scaling and tanh soft-capping.
//
// Layouts: a, b, out are flat f32 arrays of n elements.
//   act:     out = f(a)              op: 0 GELU-tanh, 1 GELU-erf, 2 SiLU
//   gated:   out = f(a) · b          GeGLU / SwiGLU: a = gate projection, b = up projection
//   add:     out = a + b
//   scale:   out = a · s
//   softcap: out = s · tanh(a / s)
// Dispatch: 256 threads per workgroup, (gx, gy, 1) with element = (wg.x + wg.y·gx)·256 + lane.
// The activations are common/act.wgsl's, shared with the matmuls' fused epilogue.

struct Params {
    n: u32,
    op: u32,
    gx: u32,
    _pad: u32,
    s: f32,
    _f0: f32,
    _f1: f32,
    _f2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// #include "common/act.wgsl"
// #include "common/grid.wgsl"

@compute @workgroup_size(256)
fn act(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i < p.n) {
        out[i] = activate(p.op, a[i]);
    }
}

@compute @workgroup_size(256)
fn gated(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i < p.n) {
        out[i] = activate(p.op, a[i]) * b[i];
    }
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i < p.n) {
        out[i] = a[i] + b[i];
    }
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i < p.n) {
        out[i] = a[i] * p.s;
    }
}

@compute @workgroup_size(256)
fn softcap(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i < p.n) {
        out[i] = p.s * tanh_acc(a[i] / p.s);
    }
}
