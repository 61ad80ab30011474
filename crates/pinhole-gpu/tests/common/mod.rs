//! Shared test harness: one device at the adapter's own binding limit and one with the limit
//! lowered to 4 KiB (so every test weight is split across many bindings), a CPU-reference
//! comparison and seeded data.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use pinhole_core::reference::{run_graph, CpuEnv};
use pinhole_core::tensor::rel_error;
use pinhole_core::{Graph, Tensor};
use pinhole_gpu::{Executor, Gpu, GpuOptions, WeightStore};

pub const LOW_LIMIT: u64 = 4096;

fn open(limit: Option<u64>) -> Arc<Gpu> {
    let mut opts = GpuOptions::from_env();
    if limit.is_some() {
        opts.max_binding_bytes = limit;
    }
    match pinhole_gpu::open_blocking(&opts) {
        Ok(g) => g,
        Err(e) => panic!("kernel tests need a GPU adapter (CI installs Mesa's llvmpipe): {e}"),
    }
}

/// A device of its own (at the adapter's binding limit), for a test that changes a device-wide
/// setting such as a forced kernel, which would leak into tests sharing [`gpus`].
pub fn fresh_gpu() -> Arc<Gpu> {
    open(None)
}

/// The adapter's device; a second one with the binding limit lowered that also runs the
/// other matmul kernel family (barrier-free CPU kernels vs GPU kernels, see
/// `Gpu::barrier_free_matmul`); and a third, limit lowered too, that runs the GPU kernels with
/// the other GEMV row reduction (subgroup vs workgroup memory, see `Gpu::subgroup_reduce`;
/// the same as the default where the adapter has no subgroups). So both kernel families and
/// both reductions are checked on whatever adapter runs the tests.
pub fn gpus() -> [Arc<Gpu>; 3] {
    static NORMAL: OnceLock<Arc<Gpu>> = OnceLock::new();
    static LOW: OnceLock<Arc<Gpu>> = OnceLock::new();
    static FALLBACK: OnceLock<Arc<Gpu>> = OnceLock::new();
    let normal = NORMAL.get_or_init(|| open(None)).clone();
    let low = LOW
        .get_or_init(|| {
            let g = open(Some(LOW_LIMIT));
            g.set_barrier_free_matmul(!normal.barrier_free_matmul());
            g
        })
        .clone();
    let other = FALLBACK
        .get_or_init(|| {
            let g = open(Some(LOW_LIMIT));
            g.set_barrier_free_matmul(false);
            g.set_subgroup_reduce(!normal.subgroup_reduce());
            g
        })
        .clone();
    [normal, low, other]
}

/// Two devices of their own (at the adapter's binding limit and lowered to [`LOW_LIMIT`]) that
/// run the GPU kernel family with f16 math on (`Gpu::set_f16_math`: the tiled GEMMs' f16
/// variant), or `None` where the adapter has no `shader-f16` (after checking that asking for
/// it is the typed error).
pub fn f16_math_gpus() -> Option<[Arc<Gpu>; 2]> {
    let gpus = [open(None), open(Some(LOW_LIMIT))];
    for g in &gpus {
        g.set_barrier_free_matmul(false);
        if !g.has_shader_f16() {
            let e = g.set_f16_math(true).unwrap_err();
            assert!(matches!(e, pinhole_gpu::GpuError::MissingFeature { .. }), "{e}");
            return None;
        }
        g.set_f16_math(true).unwrap();
    }
    Some(gpus)
}

pub struct Case {
    pub graph: Graph,
    pub weights: HashMap<String, Tensor>,
    pub inputs: HashMap<String, Tensor>,
}

impl Case {
    pub fn new() -> Self {
        Case {
            graph: Graph::new(),
            weights: HashMap::new(),
            inputs: HashMap::new(),
        }
    }

    pub fn weight(&mut self, name: &str, t: Tensor) -> pinhole_core::TensorId {
        let id = self.graph.weight(name, &t.shape, t.dtype);
        self.weights.insert(name.to_string(), t);
        id
    }

    pub fn input(&mut self, name: &str, t: Tensor) -> pinhole_core::TensorId {
        let id = self.graph.input(name, &t.shape, t.dtype);
        self.inputs.insert(name.to_string(), t);
        id
    }

    pub fn cpu(&self) -> Vec<Tensor> {
        let w = |n: &str| self.weights.get(n).cloned();
        let mut states = HashMap::new();
        run_graph(
            &self.graph,
            CpuEnv {
                weights: &w,
                inputs: &self.inputs,
                states: &mut states,
            },
        )
        .expect("cpu reference")
    }

    pub fn gpu_on(&self, gpu: &Arc<Gpu>) -> Vec<Tensor> {
        let mut store = WeightStore::new();
        for (n, t) in &self.weights {
            store.upload(gpu, n, t).expect("upload");
        }
        let mut ex = Executor::new(gpu.clone());
        ex.poison = true;
        pollster::block_on(ex.run(&self.graph, &store, &self.inputs)).expect("gpu run")
    }

    /// Runs on both devices and checks every output against the CPU reference.
    pub fn check(&self, tol: f64, what: &str) {
        let want = self.cpu();
        for gpu in gpus() {
            let got = self.gpu_on(&gpu);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.shape, w.shape, "{what}: output {i} shape");
                match (g.as_f32(), w.as_f32()) {
                    (Ok(gv), Ok(wv)) => {
                        assert!(
                            gv.iter().all(|x| x.is_finite()),
                            "{what}: output {i} has NaN/inf (an element was never written?) limit={}",
                            gpu.weight_binding_limit()
                        );
                        let e = rel_error(gv, wv);
                        assert!(
                            e <= tol,
                            "{what}: output {i} relative error {e:e} > {tol:e} (binding limit {})",
                            gpu.weight_binding_limit()
                        );
                    }
                    _ => assert_eq!(
                        g.as_u32().unwrap(),
                        w.as_u32().unwrap(),
                        "{what}: output {i} (u32) differs"
                    ),
                }
            }
        }
    }
}
