// row_sum, subgroup variant: same contract as common/row_sum_wg.wgsl (includer declares
// `const TPR: u32`, a power of two dividing 256, and runs 256 invocations per workgroup; all
// call it in uniform control flow; the total is returned in the row's first invocation).
// Only built when the adapter has subgroups and the device was created with them (wgsl.rs
// swaps this file in; see executor/matmul.rs for which adapters get it).
//
// Correct for every subgroup size S from 4 to 128 (both powers of two, so either S divides
// TPR or TPR divides S). It relies on subgroups of a 1-D workgroup being runs of S consecutive
// local_invocation_index values starting at a multiple of S (subgroup lane = li % S), which
// is how Vulkan, Metal and D3D12 drivers lay out compute subgroups.
// - S >= TPR: a subgroup holds S / TPR whole rows. subgroupAdd would mix rows, so an XOR
//   butterfly over lane offsets 1, 2, …, TPR/2 adds within each aligned TPR-lane group; the
//   row's first lane ends with the row total.
// - S < TPR: a row spans TPR / S subgroups, each entirely inside the row. subgroupAdd gives
//   each subgroup's share; its first lane stores it in row_part, and after one barrier the
//   row's first invocation adds the TPR / S shares (stride S) instead of TPR partial sums.
// S is read with subgroupAdd(1u) (every lane is active here) rather than the subgroup_size
// builtin so that row_sum keeps the fallback's signature and the entry points stay shared.
// The barrier is taken in both cases: which case applies is only subgroup-uniform, and WGSL
// needs workgroup-uniform control flow around workgroupBarrier.

var<workgroup> row_part: array<vec4<f32>, 256>;

fn row_sum(li: u32, v: vec4<f32>) -> vec4<f32> {
    let sg = subgroupAdd(1u);
    var s = v;
    if (sg >= TPR) {
        for (var o = 1u; o < TPR; o <<= 1u) {
            s += subgroupShuffleXor(s, o);
        }
    } else {
        s = subgroupAdd(v);
        row_part[li] = s;
    }
    workgroupBarrier();
    if (sg < TPR && li % TPR == 0u) {
        var t = vec4<f32>(0.0);
        for (var j = 0u; j < TPR; j += sg) {
            t += row_part[li + j];
        }
        s = t;
    }
    return s;
}
