// sample.wgsl — token sampling on the GPU, so a sampling decode step still reads back one u32
// per step; and transformers' repetition penalty, applied to the logits before it.
//
// `sample` implements pinhole_core::graph::SampleParams exactly as the CPU reference
// (pinhole_core::reference::sample) defines it:
//   z = logit / temperature; w = exp(z - max z), 0 when z - max z < -80;
//   top-k: keep logits ≥ the k-th largest logit (all ties at the threshold are kept);
//   top-p: keep logits ≥ the largest threshold t whose set {logit ≥ t} holds ≥ top_p of the
//          mass left by top-k (ties at the threshold kept; the largest logit always kept);
//   pick:  walk the kept tokens in ASCENDING INDEX order accumulating w and choose the first
//          whose running sum exceeds uniform · Σw (the last kept token with w > 0 if rounding
//          leaves none). Index order instead of descending probability only changes which
//          uniform maps to which token, not the distribution; given `uniform` the pick is
//          deterministic. The reference computes in f64, this kernel in f32: they can differ
//          only when a running sum lands within rounding of a boundary.
// Both thresholds are found without sorting: a binary search over the order-preserving u32
// keys of the f32 logits (-0 counts as +0), 32 steps, each a strided pass over the row that
// counts (top-k) or sums the weights of (top-p) the elements with key ≥ mid, reduced across
// the workgroup. The threshold found is always the key of a logit present in the row.
//
// Layouts: x [rows, N] f32, out_id [rows] u32.
// Dispatch: one 256-thread workgroup per row, (gx, gy, 1) with row = wg.x + wg.y·gx.
//
// `repetition_penalty`: out_x is a copy of x (the executor copies it first); for each row r
// and each id in ids [n_ids] u32 (duplicates allowed: every write of an id stores the same
// value, computed from x), out_x[r, id] = x < 0 ? x · penalty : x · (1 / penalty). Ids ≥ N
// are skipped (the executor range-checks ids it knows on the host).
// Layouts: x, out_x [rows, N] f32. Dispatch: one thread per (row, id), 256 per workgroup,
// linear workgroup index wg.x + wg.y·gx.

struct Params {
    rows: u32,
    n: u32,
    gx: u32,
    top_k: u32,
    temperature: f32,
    top_p: f32,
    uniform: f32,
    n_ids: u32,
    penalty: f32,
    inv_penalty: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_id: array<u32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_x: array<f32>;

// #include "common/reduce.wgsl"
// #include "common/grid.wgsl"

const WG: u32 = 256u;
const RED_N: u32 = WG;
const NONE: u32 = 0xffffffffu;
// pinhole_core::graph::SAMPLE_MIN_EXPONENT
const MIN_EXP: f32 = -80.0;

var<workgroup> red_u: array<u32, 256>;
var<workgroup> scan: array<f32, 256>;
var<workgroup> total_mass: f32;

// Order-preserving key of an f32 (for non-NaN values), with -0 mapped to +0.
fn key_of(v: f32) -> u32 {
    let b = bitcast<u32>(select(v, 0.0, v == 0.0));
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn weight(v: f32, m: f32) -> f32 {
    let e = (v - m) / p.temperature;
    return select(exp(e), 0.0, e < MIN_EXP);
}

// op 0: sum, 1: min, 2: max.
fn reduce_u(li: u32, v: u32, op: u32) -> u32 {
    red_u[li] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (li < s) {
            let a = red_u[li];
            let b = red_u[li + s];
            var r = a + b;
            if (op == 1u) {
                r = min(a, b);
            } else if (op == 2u) {
                r = max(a, b);
            }
            red_u[li] = r;
        }
        workgroupBarrier();
    }
    let r = red_u[0];
    workgroupBarrier();
    return r;
}

// Σ w over the elements of the row whose key is ≥ k.
fn mass_at(li: u32, base: u32, k: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var t = li; t < p.n; t += WG) {
        let v = x[base + t];
        if (key_of(v) >= k) {
            s += weight(v, m);
        }
    }
    return reduce_sum(li, s);
}

@compute @workgroup_size(256)
fn sample(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = group_index(wg);
    if (row >= p.rows) {
        return;
    }
    let n = p.n;
    let base = row * n;

    var mx = -3.4e38;
    for (var t = li; t < n; t += WG) {
        mx = max(mx, x[base + t]);
    }
    let m = reduce_max(li, mx);
    let kmax = key_of(m);

    // Top-k: the largest key t with count(key ≥ t) ≥ k.
    var lo = 0u;
    if (p.top_k > 0u && p.top_k < n) {
        var hi = kmax;
        for (var it = 0u; it < 32u; it++) {
            let d = hi - lo;
            let mid = lo + (d >> 1u) + (d & 1u);
            var c = 0u;
            for (var t = li; t < n; t += WG) {
                c += select(0u, 1u, key_of(x[base + t]) >= mid);
            }
            let ok = reduce_u(li, c, 0u) >= p.top_k;
            lo = select(lo, mid, ok);
            hi = select(mid - 1u, hi, ok || d == 0u);
        }
    }

    // Top-p: the largest key t ≥ lo with mass(key ≥ t) ≥ top_p · mass(key ≥ lo).
    if (p.top_p < 1.0) {
        let goal = p.top_p * mass_at(li, base, lo, m);
        var hi = kmax;
        for (var it = 0u; it < 32u; it++) {
            let d = hi - lo;
            let mid = lo + (d >> 1u) + (d & 1u);
            let ok = mass_at(li, base, mid, m) >= goal;
            lo = select(lo, mid, ok);
            hi = select(mid - 1u, hi, ok || d == 0u);
        }
    }

    // Pick: each thread owns a contiguous chunk; an exclusive scan of the chunk sums gives
    // every thread the running sum at its chunk start.
    let chunk = (n + WG - 1u) / WG;
    let start = min(li * chunk, n);
    let end = min(start + chunk, n);
    var part = 0.0;
    for (var t = start; t < end; t++) {
        let v = x[base + t];
        if (key_of(v) >= lo) {
            part += weight(v, m);
        }
    }
    scan[li] = part;
    workgroupBarrier();
    if (li == 0u) {
        var acc = 0.0;
        for (var j = 0u; j < WG; j++) {
            let s = scan[j];
            scan[j] = acc;
            acc += s;
        }
        total_mass = acc;
    }
    workgroupBarrier();
    let goal = p.uniform * total_mass;
    var run = scan[li];
    var pick = NONE;
    var last = 0u;
    for (var t = start; t < end; t++) {
        let v = x[base + t];
        if (key_of(v) >= lo) {
            let w = weight(v, m);
            if (w > 0.0) {
                last = t + 1u;
                if (pick == NONE) {
                    run += w;
                    if (run > goal) {
                        pick = t;
                    }
                }
            }
        }
    }
    let first = reduce_u(li, pick, 1u);
    let fallback = reduce_u(li, last, 2u);
    if (li == 0u) {
        out_id[row] = select(max(fallback, 1u) - 1u, first, first != NONE);
    }
}

@compute @workgroup_size(256)
fn repetition_penalty(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i >= p.rows * p.n_ids) {
        return;
    }
    let r = i / p.n_ids;
    let id = ids[i % p.n_ids];
    if (id >= p.n) {
        return;
    }
    let v = x[r * p.n + id];
    out_x[r * p.n + id] = select(v * p.inv_penalty, v * p.penalty, v < 0.0);
}
