//! Bad input to the executor gives typed errors, never panics.

mod common;

use std::collections::HashMap;

use common::gpus;
use pinhole_core::{DType, Graph, Tensor};
use pinhole_gpu::{Executor, GpuError, WeightStore};

fn run(g: &Graph, store: &WeightStore, inputs: &HashMap<String, Tensor>) -> Result<Vec<Tensor>, GpuError> {
    let gpu = gpus()[0].clone();
    let mut ex = Executor::new(gpu);
    pollster::block_on(ex.run(g, store, inputs))
}

#[test]
fn missing_weight_and_input_are_errors() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 3], DType::F32);
    let w = g.weight("layer.weight", &[4, 3], DType::F32);
    let y = g.matmul(x, w, None).unwrap();
    g.output(y);
    let err = run(&g, &WeightStore::new(), &HashMap::new()).unwrap_err();
    assert!(err.to_string().contains("'x'"), "{err}");
    let mut inputs = HashMap::new();
    inputs.insert("x".into(), Tensor::f32(&[2, 3], vec![1.0; 6]).unwrap());
    let err = run(&g, &WeightStore::new(), &inputs).unwrap_err();
    assert!(err.to_string().contains("layer.weight"), "{err}");
}

#[test]
fn wrong_input_shape_and_bad_ids() {
    let gpu = gpus()[0].clone();
    let mut g = Graph::new();
    let x = g.input("x", &[2, 3], DType::F32);
    g.output(x);
    let mut inputs = HashMap::new();
    inputs.insert("x".into(), Tensor::f32(&[3, 2], vec![1.0; 6]).unwrap());
    assert!(matches!(run(&g, &WeightStore::new(), &inputs), Err(GpuError::Core(_))));

    let mut store = WeightStore::new();
    store
        .upload(&gpu, "emb", &Tensor::f32(&[5, 2], vec![0.5; 10]).unwrap())
        .unwrap();
    let mut g = Graph::new();
    let t = g.weight("emb", &[5, 2], DType::F32);
    let ids = g.constant(Tensor::u32(&[2], vec![1, 9]).unwrap());
    let e = g.embedding(t, ids).unwrap();
    g.output(e);
    let err = run(&g, &store, &HashMap::new()).unwrap_err();
    assert!(err.to_string().contains("9 is outside 0..5"), "{err}");
}

#[test]
fn activation_over_binding_limit_is_a_clear_error() {
    let gpu = gpus()[0].clone();
    let limit = gpu.activation_binding_limit();
    let rows = (limit / 4 / 1024 + 1) as usize;
    let mut g = Graph::new();
    let x = g.input("x", &[1, 1024], DType::F32);
    let w = g.weight("w", &[rows, 1024], DType::F32);
    // A [rows, 1024] activation larger than one binding: built from a tiny input by matmul.
    let big = g.matmul(x, w, None);
    let Ok(big) = big else { return };
    g.output(big);
    let store = WeightStore::new();
    let mut inputs = HashMap::new();
    inputs.insert("x".into(), Tensor::f32(&[1, 1024], vec![0.1; 1024]).unwrap());
    // The weight itself is never uploaded: the planner must fail on the missing weight or the
    // limit, with an error rather than a panic or a driver crash.
    assert!(run(&g, &store, &inputs).is_err());
    let mut g2 = Graph::new();
    let s = g2.state("huge", &[rows * 2, 1024]);
    g2.output(s);
    let err = run(&g2, &store, &HashMap::new()).unwrap_err();
    assert!(matches!(err, GpuError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("max_storage_buffer_binding_size"), "{err}");
}

#[test]
fn every_kernel_compiles_for_both_weight_dtypes() {
    for gpu in gpus() {
        let n = pollster::block_on(gpu.compile_all()).unwrap();
        assert!(n >= 18);
        // Every kernel of the table, and its f16-weight variant where it has one; the
        // f16-math variants of those with one, for each weight dtype, where the device has
        // shader-f16.
        let all = pinhole_gpu::kernels::Kernel::ALL;
        let dtypes = |k: &&pinhole_gpu::kernels::Kernel| if k.has_weight_dtype() { 2 } else { 1 };
        let f16_math = match gpu.has_shader_f16() {
            true => all.iter().filter(|k| k.has_f16_math()).map(|k| dtypes(&k)).sum(),
            false => 0,
        };
        assert_eq!(n, all.iter().map(|k| dtypes(&k)).sum::<usize>() + f16_math);
        assert!(all.contains(&pinhole_gpu::kernels::Kernel::Sample));
        assert!(all.contains(&pinhole_gpu::kernels::Kernel::RepetitionPenalty));
    }
}
