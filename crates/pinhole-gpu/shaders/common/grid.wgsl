// common/grid.wgsl — linear indices of a split dispatch grid. The executor spreads N workgroups
// over (gx, gy) to stay within max_compute_workgroups_per_dimension (kernels::grid); the linear
// workgroup index is wg.x + wg.y·gx.
// Includer provides: the uniform `p` with a field `gx`.

fn group_index(wg: vec3<u32>) -> u32 {
    return wg.x + wg.y * p.gx;
}

// Element index of lane `li` of a 256-thread workgroup (one thread per element).
fn elem_index(wg: vec3<u32>, li: u32) -> u32 {
    return group_index(wg) * 256u + li;
}
