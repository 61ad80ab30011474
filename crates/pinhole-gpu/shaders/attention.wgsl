// attention.wgsl — fused softmax attention: scores, scale, optional tanh soft-cap, mask,
// streaming (online) softmax and ·V in one kernel; the score matrix is never stored.
//
// Layouts (row-major f32):
//   q   [S, H·D]     query rows; row r is absolute position q_pos0 + r
//   k,v [T, Hkv·D]   keys/values (a fresh projection or a KV cache); rows 0 .. kv_len are used
//   out [S, H·D]
// Grouped/multi-query attention: query head h reads kv head h / (H / Hkv).
// Mask (mirrors AttnMask::allows in pinhole-core): pairs inside the prefix block
// (i, j < prefix_len) always attend; otherwise causal forbids j > i and a sliding window
// forbids i − j ≥ window. The same kernel is the decode variant: S = 1 over the cache.
// Dispatch: one 64-thread workgroup per (query row, head): (gx, gy, 1) with
// wg.x + wg.y·gx = r·H + h. Keys are walked in blocks of 64 (one score per thread); each thread
// owns output dims t, t+64, … (head_dim ≤ 512).

struct Params {
    s: u32,
    n_heads: u32,
    n_kv: u32,
    head_dim: u32,
    kv_len: u32,
    q_pos0: u32,
    causal: u32,
    prefix_len: u32,
    window: u32,
    gx: u32,
    scale: f32,
    softcap: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// #include "common/reduce.wgsl"
// #include "common/tanh.wgsl"
// #include "common/grid.wgsl"

const BK: u32 = 64u;
const RED_N: u32 = BK; // the workgroup size
// A large finite "minus infinity": WGSL lets implementations assume no infinities.
const NEG: f32 = -3.0e38;

var<workgroup> qs: array<f32, 512>;
var<workgroup> probs: array<f32, 64>;

fn allowed(i: u32, j: u32) -> bool {
    if (i < p.prefix_len && j < p.prefix_len) {
        return true;
    }
    if (p.causal != 0u && j > i) {
        return false;
    }
    if (p.window > 0u && i >= j && i - j >= p.window) {
        return false;
    }
    return true;
}

@compute @workgroup_size(64)
fn attend(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = group_index(wg);
    if (idx >= p.s * p.n_heads) {
        return;
    }
    let r = idx / p.n_heads;
    let h = idx % p.n_heads;
    let kh = h / (p.n_heads / p.n_kv);
    let i = p.q_pos0 + r;
    let d = p.head_dim;
    let qw = p.n_heads * d;
    let kw = p.n_kv * d;
    for (var t = li; t < d; t += BK) {
        qs[t] = q[r * qw + h * d + t];
    }
    workgroupBarrier();

    // Causal attention never looks past i (or past the prefix, for prefix rows).
    var j_end = p.kv_len;
    if (p.causal != 0u) {
        var lim = i + 1u;
        if (i < p.prefix_len) {
            lim = max(lim, p.prefix_len);
        }
        j_end = min(j_end, lim);
    }

    var m_run = NEG;
    var l_run = 0.0;
    var acc: array<f32, 8>;
    for (var j0 = 0u; j0 < j_end; j0 += BK) {
        let j = j0 + li;
        let ok = j < j_end && allowed(i, j);
        var s = NEG;
        if (ok) {
            let kb = j * kw + kh * d;
            var dot = 0.0;
            for (var t = 0u; t < d; t++) {
                dot = fma(qs[t], k[kb + t], dot);
            }
            s = dot * p.scale;
            if (p.softcap > 0.0) {
                s = p.softcap * tanh_acc(s / p.softcap);
            }
        }
        let m_new = max(m_run, reduce_max(li, s));
        let pj = select(0.0, exp(s - m_new), ok);
        probs[li] = pj;
        let l_blk = reduce_sum(li, pj);
        let alpha = exp(m_run - m_new);
        l_run = l_run * alpha + l_blk;
        let n_blk = min(BK, j_end - j0);
        for (var c = 0u; c < 8u; c++) {
            let t = li + c * BK;
            if (t < d) {
                var a = acc[c] * alpha;
                for (var jj = 0u; jj < n_blk; jj++) {
                    a = fma(probs[jj], v[(j0 + jj) * kw + kh * d + t], a);
                }
                acc[c] = a;
            }
        }
        m_run = m_new;
        workgroupBarrier();
    }
    let inv = select(0.0, 1.0 / l_run, l_run > 0.0);
    for (var c = 0u; c < 8u; c++) {
        let t = li + c * BK;
        if (t < d) {
            out[r * qw + h * d + t] = acc[c] * inv;
        }
    }
}
