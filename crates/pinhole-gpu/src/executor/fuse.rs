//! Epilogue fusion: a matmul whose only reader is the op right after it — a residual add, an
//! activation, or the gated activation of a GeGLU/SwiGLU MLP — runs as one dispatch that
//! applies that op to each output element before storing it (common/epilogue.wgsl). The
//! matmul's own output is then never written or read, and the step has one dispatch fewer:
//! on CPU adapters every dispatch costs a wake-up of all worker threads (~60 µs on llvmpipe,
//! the whole step of a small model), on GPUs a pass over the output in memory.
//!
//! Likewise a matmul or RoPE whose only reader is a `write_rows` into a state (this step's K
//! or V rows into the KV cache) writes straight into the state's rows (`y_off`/`out_off`),
//! with no copy after it.
//!
//! The fused arithmetic is the unfused kernels' in the same order, so results do not change
//! by a bit; `Executor::fuse = false` plans every op on its own (tests compare the two).

use pinhole_core::graph::{Graph, Op, TensorId, ValueKind};

use super::elementwise::act_code;

/// The `epi` codes of common/epilogue.wgsl.
pub(crate) const EPI_ADD: u32 = 1;
pub(crate) const EPI_ACT: u32 = 2;
pub(crate) const EPI_UP: u32 = 3;
pub(crate) const EPI_GATE: u32 = 4;

/// What the matmul at some index takes over from the op at `into`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fusion {
    /// The consumer op's index: the fused dispatch writes its output.
    pub into: usize,
    /// `code | activation << 8`, as common/epilogue.wgsl reads it.
    pub epi: u32,
    /// The consumer's other input (the residual, the gate or the up projection).
    pub aux: Option<TensorId>,
}

/// Whether the op at `j`, the one reader of value `i`, is a `write_rows` of it into a state
/// that no op between them reads (it would see the rows early) and that exists when `i` is
/// planned: defined before it, or a plain state (models declare the caches after computing
/// K and V).
fn cache_write(g: &Graph, i: usize, j: usize) -> Option<Fusion> {
    let ValueKind::Op(Op::WriteRows { state, src, .. }) = g.values[j].kind else {
        return None;
    };
    let between_reads_state = g.values[i + 1..j].iter().any(|v| match &v.kind {
        ValueKind::Op(op) => op.inputs().contains(&state),
        _ => false,
    });
    let ready = state.0 < i || matches!(g.values[state.0].kind, ValueKind::State(_));
    (src == TensorId(i) && ready && !between_reads_state).then_some(Fusion {
        into: j,
        epi: 0,
        aux: None,
    })
}

/// For each value of `g`, the fusion of the matmul or RoPE that defines it, if any.
/// `readers[i]` counts the ops reading value i (twice if one op reads it twice), `last_use[i]`
/// is the index of the last of them, `usize::MAX` for the graph's outputs (which must stay
/// materialised).
pub(crate) fn find(g: &Graph, readers: &[usize], last_use: &[usize]) -> Vec<Option<Fusion>> {
    let mut out = vec![None; g.values.len()];
    for (i, v) in g.values.iter().enumerate() {
        let is_matmul = match v.kind {
            ValueKind::Op(Op::MatMul { .. }) => true,
            ValueKind::Op(Op::Rope { .. }) => false,
            _ => continue,
        };
        if readers[i] != 1 || last_use[i] == usize::MAX {
            continue;
        }
        // The one reader.
        let j = last_use[i];
        if let Some(f) = cache_write(g, i, j) {
            out[i] = Some(f);
            continue;
        }
        // An epilogue only for the op right after the matmul: its other input is then defined
        // before the matmul (it is not the matmul), so it is ready when the fused dispatch runs.
        if !is_matmul || j != i + 1 {
            continue;
        }
        let ValueKind::Op(next) = &g.values[j].kind else {
            continue;
        };
        let me = TensorId(i);
        let (epi, aux) = match *next {
            Op::Add { a, b } if a == me && b != me => (EPI_ADD, Some(b)),
            Op::Add { a, b } if b == me && a != me => (EPI_ADD, Some(a)),
            Op::Act { x, act } if x == me => (EPI_ACT | act_code(act) << 8, None),
            Op::Gated { gate, up, act } if up == me && gate != me => (EPI_UP | act_code(act) << 8, Some(gate)),
            Op::Gated { gate, up, act } if gate == me && up != me => (EPI_GATE | act_code(act) << 8, Some(up)),
            _ => continue,
        };
        if g.values[j].shape != v.shape {
            continue;
        }
        out[i] = Some(Fusion { into: j, epi, aux });
    }
    out
}
