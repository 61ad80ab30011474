//! The sampling kernels against the CPU reference: the chosen token id must be identical, on
//! both test devices, over odd vocabulary sizes and parameter combinations; plus a
//! statistical check of the reference itself.

mod common;

use common::{gpus, Case};
use pinhole_core::reference;
use pinhole_core::rng::Rng;
use pinhole_core::{SampleParams, Tensor};

fn params(temperature: f32, top_k: u32, top_p: f32, uniform: f32) -> SampleParams {
    SampleParams {
        temperature,
        top_k,
        top_p,
        uniform,
    }
}

fn logits(rng: &mut Rng, rows: usize, n: usize, scale: f32) -> Tensor {
    Tensor::f32(&[rows, n], rng.vec(rows * n, -scale, scale)).unwrap()
}

const COMBOS: [(f32, u32, f32); 9] = [
    (1.0, 0, 1.0),
    (0.7, 0, 1.0),
    (1.3, 50, 1.0),
    (1.0, 0, 0.9),
    (0.8, 40, 0.95),
    (1.0, 1, 1.0),
    (2.0, 5, 0.5),
    (0.5, 0, 0.3),
    (1.0, 1000, 0.999),
];

const UNIFORMS: [f32; 5] = [0.0, 1e-6, 0.37, 0.8, 0.9999];

#[test]
fn sample_matches_reference_exactly() {
    let mut rng = Rng::new(41);
    for &n in &[1usize, 7, 1000, 50_001] {
        let x = logits(&mut rng, 1, n, 8.0);
        for &(t, k, tp) in &COMBOS {
            for &u in &UNIFORMS {
                let p = params(t, k, tp, u);
                let mut c = Case::new();
                let xi = c.input("x", x.clone());
                let s = c.graph.sample(xi, p).unwrap();
                c.graph.output(s);
                c.check(0.0, &format!("sample n={n} {p:?}"));
            }
        }
    }
}

#[test]
fn sample_several_rows_and_ties() {
    let mut rng = Rng::new(42);
    // Rows with many equal values (ties at the top-k / top-p thresholds keep them all).
    let n = 777;
    let v: Vec<f32> = (0..3 * n).map(|_| (rng.below(9) as f32) - 4.0).collect();
    let x = Tensor::f32(&[3, n], v).unwrap();
    for &(t, k, tp) in &COMBOS {
        for &u in &[0.0f32, 0.5, 0.999] {
            let p = params(t, k, tp, u);
            let mut c = Case::new();
            let xi = c.input("x", x.clone());
            let s = c.graph.sample(xi, p).unwrap();
            c.graph.output(s);
            c.check(0.0, &format!("sample ties {p:?}"));
        }
    }
    // And 5 random rows at once.
    let x = logits(&mut rng, 5, 3001, 5.0);
    let mut c = Case::new();
    let xi = c.input("x", x);
    let s = c.graph.sample(xi, params(0.9, 20, 0.8, 0.42)).unwrap();
    c.graph.output(s);
    c.check(0.0, "sample 5 rows");
}

#[test]
fn top_k_one_is_argmax() {
    let mut rng = Rng::new(43);
    for &n in &[1usize, 7, 1000, 50_001] {
        let x = logits(&mut rng, 2, n, 3.0);
        let want = reference::argmax(x.as_f32().unwrap(), n);
        for &u in &UNIFORMS {
            let mut c = Case::new();
            let xi = c.input("x", x.clone());
            let s = c.graph.sample(xi, params(0.7, 1, 1.0, u)).unwrap();
            c.graph.output(s);
            assert_eq!(c.cpu()[0].as_u32().unwrap(), want.as_slice());
            for gpu in gpus() {
                assert_eq!(c.gpu_on(&gpu)[0].as_u32().unwrap(), want.as_slice(), "n={n} u={u}");
            }
        }
    }
}

#[test]
fn repetition_penalty_then_sample() {
    let mut rng = Rng::new(44);
    for &n in &[7usize, 1000, 50_001] {
        let x = logits(&mut rng, 2, n, 4.0);
        let mut idv: Vec<u32> = (0..37).map(|_| rng.below(n as u32)).collect();
        idv.push(idv[0]); // a duplicate applies once
        for &pen in &[1.3f32, 0.7] {
            let mut c = Case::new();
            let xi = c.input("x", x.clone());
            let ids = c.graph.constant(Tensor::u32(&[idv.len()], idv.clone()).unwrap());
            let y = c.graph.repetition_penalty(xi, ids, pen).unwrap();
            let s = c.graph.sample(y, params(1.0, 0, 0.9, 0.6)).unwrap();
            c.graph.output(y);
            c.graph.output(s);
            c.check(0.0, &format!("repetition penalty n={n} {pen}"));
        }
    }
    // The reference against transformers' rule, by hand.
    let x = [2.0f32, -2.0, 0.5, -0.5];
    let y = reference::repetition_penalty(&x, 4, &[0, 1, 1], 2.0).unwrap();
    assert_eq!(y, vec![1.0, -4.0, 0.5, -0.5]);
}

#[test]
fn bad_parameters_are_typed_errors() {
    let mut c = Case::new();
    let xi = c.input("x", Tensor::f32(&[1, 4], vec![0.0; 4]).unwrap());
    let ids = c.graph.constant(Tensor::u32(&[1], vec![0]).unwrap());
    for p in [
        params(0.0, 0, 1.0, 0.5),
        params(-1.0, 0, 1.0, 0.5),
        params(1.0, 0, 0.0, 0.5),
        params(1.0, 0, 1.5, 0.5),
        params(1.0, 0, 1.0, 1.0),
    ] {
        assert!(
            matches!(c.graph.sample(xi, p), Err(pinhole_core::Error::Invalid(_))),
            "{p:?}"
        );
    }
    for pen in [0.0f32, -1.0, f32::NAN] {
        assert!(matches!(
            c.graph.repetition_penalty(xi, ids, pen),
            Err(pinhole_core::Error::Invalid(_))
        ));
    }
}

/// Counts over many uniforms follow the kept-token softmax (CPU reference only).
#[test]
fn reference_distribution_matches_probabilities() {
    let mut rng = Rng::new(45);
    let n = 50;
    let x = rng.vec(n, -2.0, 2.0);
    for &(t, k, tp) in &[(1.0f32, 0u32, 1.0f32), (0.7, 10, 1.0), (1.5, 0, 0.8), (1.0, 20, 0.6)] {
        let probs = reference::sample_probs(&x, &params(t, k, tp, 0.0));
        let draws = 40_000;
        let mut counts = vec![0usize; n];
        let mut u_rng = Rng::new(7);
        for _ in 0..draws {
            let id = reference::sample(&x, n, &params(t, k, tp, u_rng.next_f32()))[0] as usize;
            counts[id] += 1;
        }
        for i in 0..n {
            let f = counts[i] as f64 / draws as f64;
            if probs[i] == 0.0 {
                assert_eq!(counts[i], 0, "token {i} was removed but drawn");
            } else {
                // 5 standard deviations of a binomial proportion, plus a little slack.
                let sd = (probs[i] * (1.0 - probs[i]) / draws as f64).sqrt();
                assert!(
                    (f - probs[i]).abs() <= 5.0 * sd + 1e-3,
                    "token {i}: frequency {f} vs probability {} ({t}, {k}, {tp})",
                    probs[i]
                );
            }
        }
        if k > 0 {
            assert!(probs.iter().filter(|&&p| p > 0.0).count() <= k as usize);
        }
    }
}
