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
// Entry points:
//   attend: one 64-thread workgroup per (query row, head): (gx, gy, 1) with
//     wg.x + wg.y·gx = r·H + h. Keys are walked in blocks of 64 (one score per thread); each
//     thread owns output dims t, t+64, … (head_dim ≤ 512). Decode, GPUs, any head_dim.
//   attend_rows: CPU adapters in prefill and the vision tower (below).
//   attend_tiled: GPUs in prefill and the vision tower, head_dim ≤ 256 (below).

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

// attend_rows: the barrier-free variant for CPU adapters (llvmpipe, SwiftShader), for prefill
// and the vision tower (S ≥ ATTN_ROWS_MIN_S rows, head_dim a multiple of 4; see
// executor/attention.rs). Each thread owns AR consecutive query rows of one head and walks the
// keys in blocks of AK: the AR×AK scores of a block are a register tile (each element of q and
// k loaded once per block for AR·AK multiply-adds, as in common/reg_tile.wgsl), then the
// online softmax, then ·V into the thread's AR output rows, which hold the running sums (out
// is read and rewritten once per block, scaled by the softmax correction). No workgroup
// memory, no barrier: on llvmpipe each barrier is a coroutine switch of every SIMD group and
// each storage load is done lane by lane, so the cost is loads per multiply-add.
// Dispatch: (gx, gy, 1) with gx·gy ≥ H·ceil(S / (64·AR)); workgroup wg.x + wg.y·gx = b·H + h
// is head h, thread t of it rows AR·(64·b + t) .. + AR - 1.
const AR: u32 = 4u;
const AK: u32 = 8u;

// Four consecutive floats of a storage array as one vector.
fn q4f(i: u32) -> vec4<f32> {
    return vec4<f32>(q[i], q[i + 1u], q[i + 2u], q[i + 3u]);
}

fn k4f(i: u32) -> vec4<f32> {
    return vec4<f32>(k[i], k[i + 1u], k[i + 2u], k[i + 3u]);
}

fn v4f(i: u32) -> vec4<f32> {
    return vec4<f32>(v[i], v[i + 1u], v[i + 2u], v[i + 3u]);
}

fn o4f(i: u32) -> vec4<f32> {
    return vec4<f32>(out[i], out[i + 1u], out[i + 2u], out[i + 3u]);
}

@compute @workgroup_size(64)
fn attend_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg);
    let h = g % p.n_heads;
    let r0 = ((g / p.n_heads) * 64u + li) * AR;
    if (r0 >= p.s) {
        return;
    }
    let kh = h / (p.n_heads / p.n_kv);
    let d = p.head_dim;
    let qw = p.n_heads * d;
    let kw = p.n_kv * d;
    // Row i of the thread: q and out at rb[i] (rows past S read row S-1 and store nothing).
    var rb: array<u32, AR>;
    var pos: vec4<u32>;
    var live: vec4<bool>;
    for (var i = 0u; i < AR; i++) {
        let r = min(r0 + i, p.s - 1u);
        rb[i] = r * qw + h * d;
        pos[i] = p.q_pos0 + r;
        live[i] = r0 + i < p.s;
    }
    // Keys any of the rows may see (causal: up to the last row, or the prefix).
    var j_end = p.kv_len;
    if (p.causal != 0u) {
        var lim = pos[AR - 1u] + 1u;
        if (pos[0] < p.prefix_len) {
            lim = max(lim, p.prefix_len);
        }
        j_end = min(j_end, lim);
    }
    for (var t = 0u; t < d; t++) {
        for (var i = 0u; i < AR; i++) {
            if (live[i]) {
                out[rb[i] + t] = 0.0;
            }
        }
    }
    var m_run = vec4<f32>(NEG);
    var l_run = vec4<f32>(0.0);
    for (var j0 = 0u; j0 < j_end; j0 += AK) {
        var kb: array<u32, AK>;
        for (var jj = 0u; jj < AK; jj++) {
            kb[jj] = min(j0 + jj, j_end - 1u) * kw + kh * d;
        }
        // Scores: sc[jj] lane i = q[row i] · k[j0 + jj].
        // Zeroed explicitly each block: WGSL zero-initialises a `var` at every execution of its
        // declaration, but SwiftShader (Chromium's CPU WebGPU) kept the previous block's scores
        // here (the browser kernel cases failed by ~4 % until this loop was added).
        var sc: array<vec4<f32>, AK>;
        for (var jj = 0u; jj < AK; jj++) {
            sc[jj] = vec4<f32>(0.0);
        }
        for (var t = 0u; t < d; t += 4u) {
            // Column e: element t+e of the four rows (a transposed 4×4 block, as reg_x).
            let c = transpose(mat4x4<f32>(q4f(rb[0] + t), q4f(rb[1] + t), q4f(rb[2] + t), q4f(rb[3] + t)));
            for (var jj = 0u; jj < AK; jj++) {
                let b = k4f(kb[jj] + t);
                sc[jj] = fma(c[3], vec4<f32>(b.w), fma(c[2], vec4<f32>(b.z), fma(c[1], vec4<f32>(b.y), fma(c[0], vec4<f32>(b.x), sc[jj]))));
            }
        }
        // Scale, soft-cap, mask; the block's running maximum.
        var m_new = m_run;
        var ok: array<vec4<bool>, AK>;
        for (var jj = 0u; jj < AK; jj++) {
            let j = j0 + jj;
            var s = sc[jj] * p.scale;
            if (p.softcap > 0.0) {
                for (var i = 0u; i < AR; i++) {
                    s[i] = p.softcap * tanh_acc(s[i] / p.softcap);
                }
            }
            for (var i = 0u; i < AR; i++) {
                ok[jj][i] = j < j_end && allowed(pos[i], j);
            }
            s = select(vec4<f32>(NEG), s, ok[jj]);
            sc[jj] = s;
            m_new = max(m_new, s);
        }
        let alpha = exp(m_run - m_new);
        var l_blk = vec4<f32>(0.0);
        for (var jj = 0u; jj < AK; jj++) {
            let pj = select(vec4<f32>(0.0), exp(sc[jj] - m_new), ok[jj]);
            sc[jj] = pj;
            l_blk += pj;
        }
        l_run = l_run * alpha + l_blk;
        m_run = m_new;
        // out rows = out rows · alpha + P · V[block].
        for (var t = 0u; t < d; t += 4u) {
            let a0 = o4f(rb[0] + t) * alpha.x;
            let a1 = o4f(rb[1] + t) * alpha.y;
            let a2 = o4f(rb[2] + t) * alpha.z;
            let a3 = o4f(rb[3] + t) * alpha.w;
            var c0 = vec4<f32>(a0.x, a1.x, a2.x, a3.x);
            var c1 = vec4<f32>(a0.y, a1.y, a2.y, a3.y);
            var c2 = vec4<f32>(a0.z, a1.z, a2.z, a3.z);
            var c3 = vec4<f32>(a0.w, a1.w, a2.w, a3.w);
            for (var jj = 0u; jj < AK; jj++) {
                let b = v4f(kb[jj] + t);
                c0 = fma(sc[jj], vec4<f32>(b.x), c0);
                c1 = fma(sc[jj], vec4<f32>(b.y), c1);
                c2 = fma(sc[jj], vec4<f32>(b.z), c2);
                c3 = fma(sc[jj], vec4<f32>(b.w), c3);
            }
            for (var i = 0u; i < AR; i++) {
                if (live[i]) {
                    out[rb[i] + t] = c0[i];
                    out[rb[i] + t + 1u] = c1[i];
                    out[rb[i] + t + 2u] = c2[i];
                    out[rb[i] + t + 3u] = c3[i];
                }
            }
        }
    }
    let inv = select(vec4<f32>(0.0), 1.0 / l_run, l_run > vec4<f32>(0.0));
    for (var t = 0u; t < d; t++) {
        for (var i = 0u; i < AR; i++) {
            if (live[i]) {
                out[rb[i] + t] = out[rb[i] + t] * inv[i];
            }
        }
    }
}

// attend_tiled: GPUs in prefill and the vision tower (S ≥ 16 rows, head_dim ≤ 256; see
// executor/attention.rs). One 64-thread workgroup takes TR = 8 consecutive query rows of one
// head, TD = 8 threads per row; thread (row, e) owns dims e, e + 8, … (≤ 32 of them) of its
// row's q (in registers) and output accumulator. Keys are walked in tiles of KT = 8: the tile
// of K is staged in workgroup memory once and read by all 8 rows (`attend` reads K once per
// row), each thread leaves its partial dot products with the 8 keys, thread (row, e) then sums
// key e's 8 partials into a score (scale, soft-cap, mask as `attend`), the row's 8 threads
// update the same online softmax from the 8 scores, and the tile of V, staged in the same
// workgroup memory, is accumulated into the owned dims. 10.3 KiB of workgroup memory, four
// barriers per tile, all in uniform control flow (the key range is the workgroup's).
// Dispatch: (gx, gy, 1) with gx·gy ≥ H·ceil(S / TR); workgroup wg.x + wg.y·gx = b·H + h is
// head h, rows TR·b .. TR·b + TR - 1.
const TR: u32 = 8u;
const TD: u32 = 8u;
const KT: u32 = 8u;
const TDIM: u32 = 256u; // largest head_dim
const TOWN: u32 = TDIM / TD; // dims owned per thread

var<workgroup> kv_tile: array<f32, KT * TDIM>; // [KT][head_dim] of K, then of V
var<workgroup> partial: array<f32, TR * KT * TD>; // [row][key][e]
var<workgroup> scores: array<f32, TR * KT>; // [row][key], after the softmax: probabilities

@compute @workgroup_size(64)
fn attend_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg);
    let h = g % p.n_heads;
    let b = g / p.n_heads;
    let first = b * TR;
    if (first >= p.s) {
        return; // the whole workgroup
    }
    let kh = h / (p.n_heads / p.n_kv);
    let d = p.head_dim;
    let qw = p.n_heads * d;
    let kw = p.n_kv * d;
    let tr = li / TD; // row of the tile
    let e = li % TD;  // lane of the row
    let r = min(first + tr, p.s - 1u); // rows past S compute row S-1 and store nothing
    let i = p.q_pos0 + r;
    // Keys the workgroup's rows may see: up to its last row's position (or the prefix).
    let last = p.q_pos0 + min(first + TR, p.s) - 1u;
    var j_end = p.kv_len;
    if (p.causal != 0u) {
        var lim = last + 1u;
        if (p.q_pos0 + first < p.prefix_len) {
            lim = max(lim, p.prefix_len);
        }
        j_end = min(j_end, lim);
    }
    var qr: array<f32, TOWN>;
    var acc: array<f32, TOWN>;
    for (var c = 0u; c < TOWN; c++) {
        let t = e + c * TD;
        qr[c] = select(0.0, q[r * qw + h * d + min(t, d - 1u)], t < d);
        acc[c] = 0.0;
    }
    var m_run = NEG;
    var l_run = 0.0;
    for (var j0 = 0u; j0 < j_end; j0 += KT) {
        let n_tile = min(KT, j_end - j0);
        // Stage K[j0 .. j0 + KT] (rows past j_end as zeros).
        for (var x = li; x < KT * d; x += 64u) {
            let jj = x / d;
            let kj = min(j0 + jj, j_end - 1u);
            kv_tile[jj * d + x % d] = select(0.0, k[kj * kw + kh * d + x % d], jj < n_tile);
        }
        workgroupBarrier();
        for (var jj = 0u; jj < KT; jj++) {
            var dot = 0.0;
            for (var c = 0u; c < TOWN; c++) {
                let t = e + c * TD;
                if (t < d) {
                    dot = fma(qr[c], kv_tile[jj * d + t], dot);
                }
            }
            partial[(tr * KT + jj) * TD + e] = dot;
        }
        workgroupBarrier();
        // Thread (row, e) scores key j0 + e for its row.
        {
            let j = j0 + e;
            var sc = NEG;
            if (e < n_tile && allowed(i, j)) {
                var dot = 0.0;
                for (var x = 0u; x < TD; x++) {
                    dot += partial[(tr * KT + e) * TD + x];
                }
                sc = dot * p.scale;
                if (p.softcap > 0.0) {
                    sc = p.softcap * tanh_acc(sc / p.softcap);
                }
            }
            scores[tr * KT + e] = sc;
        }
        // Stage V over K (every read of the K tile is before the last barrier).
        for (var x = li; x < KT * d; x += 64u) {
            let jj = x / d;
            let vj = min(j0 + jj, j_end - 1u);
            kv_tile[jj * d + x % d] = select(0.0, v[vj * kw + kh * d + x % d], jj < n_tile);
        }
        workgroupBarrier();
        // The row's online softmax, the same in each of its 8 threads.
        var m_new = m_run;
        for (var jj = 0u; jj < KT; jj++) {
            m_new = max(m_new, scores[tr * KT + jj]);
        }
        let alpha = exp(m_run - m_new);
        var l_blk = 0.0;
        var pr: array<f32, KT>;
        for (var jj = 0u; jj < KT; jj++) {
            let s = scores[tr * KT + jj];
            pr[jj] = select(0.0, exp(s - m_new), s > NEG);
            l_blk += pr[jj];
        }
        l_run = l_run * alpha + l_blk;
        m_run = m_new;
        for (var c = 0u; c < TOWN; c++) {
            let t = e + c * TD;
            if (t < d) {
                var a = acc[c] * alpha;
                for (var jj = 0u; jj < KT; jj++) {
                    a = fma(pr[jj], kv_tile[jj * d + t], a);
                }
                acc[c] = a;
            }
        }
        workgroupBarrier();
    }
    if (first + tr < p.s) {
        let inv = select(0.0, 1.0 / l_run, l_run > 0.0);
        for (var c = 0u; c < TOWN; c++) {
            let t = e + c * TD;
            if (t < d) {
                out[r * qw + h * d + t] = acc[c] * inv;
            }
        }
    }
}
