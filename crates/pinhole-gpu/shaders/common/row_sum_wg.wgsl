// row_sum, workgroup-memory variant (the fallback, valid on every adapter): the GEMV kernels
// split each weight row over TPR consecutive invocations and add the TPR partial sums here.
// The includer declares `const TPR: u32` (a power of two dividing 256) and runs 256
// invocations per workgroup; every invocation must call row_sum (it holds a barrier, so the
// call sits in uniform control flow). The result is the row's total in the row's first
// invocation (li % TPR == 0); other invocations get an unspecified value.
// One barrier, then the first invocation of each row adds its row's TPR partial sums: a
// halving tree would cost log2(TPR) barriers, each a full coroutine round on a CPU adapter.
// common/row_sum_sg.wgsl is the subgroup variant with the same contract; wgsl.rs swaps one
// for the other (SUBGROUP_SWAPS).

var<workgroup> row_part: array<vec4<f32>, 256>;

fn row_sum(li: u32, v: vec4<f32>) -> vec4<f32> {
    row_part[li] = v;
    workgroupBarrier();
    var s = vec4<f32>(0.0);
    if (li % TPR == 0u) {
        for (var j = 0u; j < TPR; j++) {
            s += row_part[li + j];
        }
    }
    return s;
}
