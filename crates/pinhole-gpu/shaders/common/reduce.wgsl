// common/reduce.wgsl — sum and max over all threads of a workgroup, by halving in workgroup
// memory. Every thread must call them (they contain barriers) and every thread gets the result.
// Includer provides: `const RED_N: u32`, its workgroup size (a power of two).

var<workgroup> red: array<f32, RED_N>;

fn reduce_sum(li: u32, val: f32) -> f32 {
    red[li] = val;
    workgroupBarrier();
    for (var s = RED_N / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            red[li] += red[li + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_max(li: u32, val: f32) -> f32 {
    red[li] = val;
    workgroupBarrier();
    for (var s = RED_N / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            red[li] = max(red[li], red[li + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
