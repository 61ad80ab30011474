//! The op graph. Model code builds one graph per forward step over tensor handles; an executor
//! (the GPU one in `pinhole-gpu`, or [`crate::reference::run_graph`] on the CPU) runs it.
//!
//! Values are added in execution order, so the node list is already topologically sorted and
//! ops that mutate state (the KV-cache writes) happen exactly where the model code put them.
//! Every builder method checks shapes and dtypes and returns a typed error, so a malformed model
//! fails when its graph is built, before anything touches the GPU.

use crate::error::{shape_err, Error, Result};
use crate::tensor::{numel, rows_of, DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

/// Attention parameters. Query rows are absolute positions `q_pos0 .. q_pos0 + S`; keys and
/// values are rows `0 .. kv_len` of `k` / `v`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnParams {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub kv_len: usize,
    pub q_pos0: usize,
    /// Multiplies q·k (usually 1/sqrt(head_dim) or 1/sqrt(query_pre_attn_scalar)).
    pub scale: f32,
    /// `cap * tanh(score / cap)` when > 0 (Gemma 2 attention soft-capping).
    pub softcap: f32,
    pub mask: AttnMask,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnMask {
    /// Query i sees key j only if j <= i (plus the prefix and window rules).
    pub causal: bool,
    /// Keys and queries both below `prefix_len` see each other bidirectionally (prefix-LM, as
    /// PaliGemma's image + prompt block). 0 = no prefix.
    pub prefix_len: usize,
    /// Sliding window: outside the bidirectional prefix block, query i sees key j only if
    /// i - j < window. 0 = no window.
    pub window: usize,
}

impl AttnMask {
    pub const FULL: AttnMask = AttnMask {
        causal: false,
        prefix_len: 0,
        window: 0,
    };
    pub const CAUSAL: AttnMask = AttnMask {
        causal: true,
        prefix_len: 0,
        window: 0,
    };

    /// The single source of truth for which (query position, key position) pairs attend.
    /// The WGSL kernel implements exactly this predicate.
    pub fn allows(&self, i: usize, j: usize) -> bool {
        if i < self.prefix_len && j < self.prefix_len {
            return true;
        }
        if self.causal && j > i {
            return false;
        }
        if self.window > 0 && i >= j && i - j >= self.window {
            return false;
        }
        true
    }
}

/// Parameters of [`Op::Sample`]. The steps follow transformers' logits processors and warpers,
/// in their order (a repetition penalty, when wanted, is the separate [`Op::RepetitionPenalty`]
/// before this op):
///
/// 1. `z = logit / temperature`;
/// 2. top-k (`top_k > 0` and below the vocabulary): keep the tokens whose logit is ≥ the k-th
///    largest logit. Every token equal to that threshold value is kept, so ties can keep more
///    than k (as transformers' `TopKLogitsWarper`, which removes `score < kth`);
/// 3. top-p (`top_p < 1`): with `w = exp(z - max z)` over the tokens kept so far, keep the
///    tokens whose logit is ≥ the largest threshold `t` such that the mass of the kept tokens
///    with logit ≥ `t` is ≥ `top_p` × their total mass. That is the smallest "all logits ≥ t"
///    set holding at least `top_p` of the probability; it always holds the largest logit, and
///    all tokens equal to the threshold are kept;
/// 4. softmax over the kept tokens, and the pick: walk the kept tokens in **ascending index
///    order** accumulating `w`, and choose the first token where the running sum exceeds
///    `uniform · Σ w` (the last kept token if rounding leaves none). Walking in index order
///    instead of descending probability changes only which `uniform` maps to which token, not
///    the distribution: each kept token is chosen with probability `w / Σ w` for a uniform
///    `uniform`. Given `uniform` the op is deterministic.
///
/// Weights with `z - max z < -80` count as exactly 0 (e^-80 ≈ 1.8e-35, far below any
/// probability that matters), so an f32 kernel and the f64 reference agree where f32 would
/// underflow. Every row of the op uses the same `uniform`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleParams {
    /// > 0; 1 leaves the logits as they are.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: u32,
    /// In (0, 1]; 1 = off.
    pub top_p: f32,
    /// A random number in [0, 1), drawn on the host (from a seeded generator) for each step.
    pub uniform: f32,
}

impl SampleParams {
    /// Plain sampling from the softmax (temperature 1, no top-k, no top-p).
    pub fn new(uniform: f32) -> Self {
        SampleParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            uniform,
        }
    }

    /// Typed errors for parameters outside their domain.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::Invalid(format!(
                "sampling temperature must be > 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Invalid(format!("top_p must be in (0, 1], got {}", self.top_p)));
        }
        if !(0.0..1.0).contains(&self.uniform) {
            return Err(Error::Invalid(format!(
                "the sampling uniform must be in [0, 1), got {}",
                self.uniform
            )));
        }
        Ok(())
    }
}

/// Weights `exp(z - max z)` below this exponent count as 0 (see [`SampleParams`]).
pub const SAMPLE_MIN_EXPONENT: f32 = -80.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// GELU with the tanh approximation (`gelu_pytorch_tanh`, `gelu_new`).
    GeluTanh,
    /// Exact GELU with erf.
    GeluErf,
    /// x·sigmoid(x) (SwiGLU's gate).
    Silu,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `y[m, n] = Σ_k x[m, k] · w[n, k] (+ bias[n])`; `w` is `[N, K]` as Hugging Face stores it.
    MatMul {
        x: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
    },
    /// Fused softmax attention; q `[S, H·D]`, k/v `[T, Hkv·D]` → `[S, H·D]`.
    Attention {
        q: TensorId,
        k: TensorId,
        v: TensorId,
        p: AttnParams,
    },
    /// Conv with kernel = stride = patch over `pixels [C, H, W]`, weight `[E, C, P, P]`, bias
    /// `[E]`, plus position embeddings `[Np, E]` → `[Np, E]` (patches in row-major order).
    PatchEmbed {
        pixels: TensorId,
        w: TensorId,
        b: TensorId,
        pos: TensorId,
        patch: usize,
    },
    LayerNorm {
        x: TensorId,
        w: TensorId,
        b: TensorId,
        eps: f32,
    },
    /// `x / rms(x) · w`, or `· (1 + w)` when `add_one` (Gemma).
    RmsNorm {
        x: TensorId,
        w: TensorId,
        eps: f32,
        add_one: bool,
    },
    Act {
        x: TensorId,
        act: Activation,
    },
    /// `act(gate) · up` (GeGLU / SwiGLU), fused.
    Gated {
        gate: TensorId,
        up: TensorId,
        act: Activation,
    },
    /// Rotary embedding with the rotate-half convention on the first `rotary_dim` dims of each
    /// head; `cos_sin` is `[S, rotary_dim]`: cos of the rotary_dim/2 frequencies then sin.
    Rope {
        x: TensorId,
        cos_sin: TensorId,
        n_heads: usize,
        head_dim: usize,
        rotary_dim: usize,
    },
    /// Rows of `table [V, E]` picked by `ids [S]` (u32).
    Embedding {
        table: TensorId,
        ids: TensorId,
    },
    Add {
        a: TensorId,
        b: TensorId,
    },
    Scale {
        x: TensorId,
        s: f32,
    },
    /// `cap · tanh(x / cap)`.
    SoftCap {
        x: TensorId,
        cap: f32,
    },
    /// A copy of `dst` with row `index[i]` replaced by row `i` of `src`.
    ScatterRows {
        dst: TensorId,
        src: TensorId,
        index: TensorId,
    },
    /// The same elements in the same (row-major) order under another shape, e.g. `[S, H·D]` ↔
    /// `[S·H, D]` so a per-head LayerNorm can run over `D` (the result's shape is the value's).
    Reshape {
        x: TensorId,
    },
    /// Rows `start .. start + count` of `x`.
    Rows {
        x: TensorId,
        start: usize,
        count: usize,
    },
    /// Index of the largest value in each row (first one on ties) → u32 `[rows]`.
    Argmax {
        x: TensorId,
    },
    /// One token id per row drawn from the row's logits as [`SampleParams`] defines → u32
    /// `[rows]`.
    Sample {
        x: TensorId,
        p: SampleParams,
    },
    /// transformers' `RepetitionPenaltyLogitsProcessor`: in every row, the logit of each token
    /// id in `ids` (u32 `[n]`, duplicates allowed) becomes `l · penalty` when `l < 0` and
    /// `l · (1 / penalty)` otherwise (the reciprocal is taken once in f32, so kernel and
    /// reference multiply the same numbers); other logits pass through.
    RepetitionPenalty {
        x: TensorId,
        ids: TensorId,
        penalty: f32,
    },
    /// Writes `src` into rows `row .. row + src.rows` of persistent `state`; the result is the
    /// state itself (so later ops depend on the write).
    WriteRows {
        state: TensorId,
        src: TensorId,
        row: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// Host data supplied by the caller for this run, by name.
    Input(String),
    /// Host data fixed when the graph was built (rope tables, small index lists).
    Const(Tensor),
    /// A weight resolved by name from the executor's weight store.
    Weight(String),
    /// A persistent buffer owned by the executor across runs (e.g. a KV cache), created zeroed.
    State(String),
    Op(Op),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub values: Vec<Value>,
    pub outputs: Vec<TensorId>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn value(&self, id: TensorId) -> Result<&Value> {
        self.values
            .get(id.0)
            .ok_or_else(|| Error::Graph(format!("no tensor #{}", id.0)))
    }

    pub fn shape(&self, id: TensorId) -> Result<&[usize]> {
        Ok(&self.value(id)?.shape)
    }

    fn push(&mut self, kind: ValueKind, shape: Vec<usize>, dtype: DType) -> TensorId {
        self.values.push(Value { kind, shape, dtype });
        TensorId(self.values.len() - 1)
    }

    pub fn input(&mut self, name: &str, shape: &[usize], dtype: DType) -> TensorId {
        self.push(ValueKind::Input(name.into()), shape.to_vec(), dtype)
    }

    pub fn constant(&mut self, t: Tensor) -> TensorId {
        let (shape, dtype) = (t.shape.clone(), t.dtype);
        self.push(ValueKind::Const(t), shape, dtype)
    }

    /// A weight; `dtype` is its storage dtype (F32 or F16).
    pub fn weight(&mut self, name: &str, shape: &[usize], dtype: DType) -> TensorId {
        self.push(ValueKind::Weight(name.into()), shape.to_vec(), dtype)
    }

    pub fn state(&mut self, name: &str, shape: &[usize]) -> TensorId {
        self.push(ValueKind::State(name.into()), shape.to_vec(), DType::F32)
    }

    /// Marks a value as an output: executors read back exactly these.
    pub fn output(&mut self, id: TensorId) {
        self.outputs.push(id);
    }

    fn float_act(&self, what: &str, id: TensorId) -> Result<&[usize]> {
        let v = self.value(id)?;
        if v.dtype != DType::F32 {
            return Err(Error::DType {
                what: what.into(),
                detail: format!("activation must be f32, got {}", v.dtype.name()),
            });
        }
        Ok(&v.shape)
    }

    fn float_any(&self, what: &str, id: TensorId) -> Result<&[usize]> {
        let v = self.value(id)?;
        if v.dtype == DType::U32 {
            return Err(Error::DType {
                what: what.into(),
                detail: "expected a float tensor, got u32".into(),
            });
        }
        Ok(&v.shape)
    }

    fn u32_vec(&self, what: &str, id: TensorId) -> Result<usize> {
        let v = self.value(id)?;
        if v.dtype != DType::U32 || v.shape.len() != 1 {
            return Err(Error::DType {
                what: what.into(),
                detail: format!("expected a u32 vector, got {} {:?}", v.dtype.name(), v.shape),
            });
        }
        Ok(v.shape[0])
    }

    fn op(&mut self, op: Op, shape: Vec<usize>, dtype: DType) -> TensorId {
        self.push(ValueKind::Op(op), shape, dtype)
    }

    pub fn matmul(&mut self, x: TensorId, w: TensorId, bias: Option<TensorId>) -> Result<TensorId> {
        let xs = self.float_act("matmul x", x)?.to_vec();
        let ws = self.float_any("matmul weight", w)?.to_vec();
        let k = *xs.last().ok_or_else(|| shape_err("matmul", "x is a scalar"))?;
        if ws.len() != 2 || ws[1] != k {
            return Err(shape_err(
                "matmul",
                format!("x {xs:?} needs a weight [N, {k}], got {ws:?}"),
            ));
        }
        if let Some(b) = bias {
            let bs = self.float_any("matmul bias", b)?;
            if bs != [ws[0]] {
                return Err(shape_err("matmul", format!("bias must be [{}], got {bs:?}", ws[0])));
            }
        }
        let mut shape = xs;
        *shape.last_mut().unwrap_or(&mut 0) = ws[0];
        Ok(self.op(Op::MatMul { x, w, bias }, shape, DType::F32))
    }

    pub fn attention(&mut self, q: TensorId, k: TensorId, v: TensorId, p: AttnParams) -> Result<TensorId> {
        let qs = self.float_act("attention q", q)?.to_vec();
        let ks = self.float_act("attention k", k)?.to_vec();
        let vs = self.float_act("attention v", v)?.to_vec();
        if p.n_kv_heads == 0 || p.head_dim == 0 || !p.n_heads.is_multiple_of(p.n_kv_heads) {
            return Err(Error::Unsupported(format!(
                "attention with {} query heads over {} kv heads",
                p.n_heads, p.n_kv_heads
            )));
        }
        if p.head_dim > 512 {
            return Err(Error::Unsupported(format!(
                "head_dim {} (at most 512 supported)",
                p.head_dim
            )));
        }
        if qs.len() != 2 || qs[1] != p.n_heads * p.head_dim {
            return Err(shape_err(
                "attention",
                format!("q must be [S, {}], got {qs:?}", p.n_heads * p.head_dim),
            ));
        }
        let kv_w = p.n_kv_heads * p.head_dim;
        if ks.len() != 2 || ks[1] != kv_w || vs != ks {
            return Err(shape_err(
                "attention",
                format!("k and v must both be [T, {kv_w}], got {ks:?} and {vs:?}"),
            ));
        }
        if p.kv_len == 0 || p.kv_len > ks[0] {
            return Err(shape_err(
                "attention",
                format!("kv_len {} outside 1..={}", p.kv_len, ks[0]),
            ));
        }
        Ok(self.op(Op::Attention { q, k, v, p }, qs, DType::F32))
    }

    pub fn patch_embed(
        &mut self,
        pixels: TensorId,
        w: TensorId,
        b: TensorId,
        pos: TensorId,
        patch: usize,
    ) -> Result<TensorId> {
        let ps = self.float_act("patch_embed pixels", pixels)?.to_vec();
        let ws = self.float_any("patch_embed weight", w)?.to_vec();
        if ps.len() != 3 || patch == 0 || ps[1] % patch != 0 || ps[2] % patch != 0 {
            return Err(shape_err(
                "patch_embed",
                format!("pixels {ps:?} must be [C, H, W] with H and W multiples of the patch size {patch}"),
            ));
        }
        if ws != [ws.first().copied().unwrap_or(0), ps[0], patch, patch] {
            return Err(shape_err(
                "patch_embed",
                format!("weight must be [E, {}, {patch}, {patch}], got {ws:?}", ps[0]),
            ));
        }
        let e = ws[0];
        let np = (ps[1] / patch) * (ps[2] / patch);
        if self.float_any("patch_embed bias", b)? != [e] {
            return Err(shape_err("patch_embed", format!("bias must be [{e}]")));
        }
        let pos_s = self.float_any("patch_embed positions", pos)?;
        if pos_s != [np, e] {
            return Err(shape_err(
                "patch_embed",
                format!("position embedding must be [{np}, {e}], got {pos_s:?}"),
            ));
        }
        Ok(self.op(
            Op::PatchEmbed {
                pixels,
                w,
                b,
                pos,
                patch,
            },
            vec![np, e],
            DType::F32,
        ))
    }

    fn check_vec(&self, what: &str, id: TensorId, n: usize) -> Result<()> {
        let s = self.float_any(what, id)?;
        if s != [n] {
            return Err(shape_err(what, format!("expected [{n}], got {s:?}")));
        }
        Ok(())
    }

    pub fn layer_norm(&mut self, x: TensorId, w: TensorId, b: TensorId, eps: f32) -> Result<TensorId> {
        let xs = self.float_act("layer_norm x", x)?.to_vec();
        let d = *xs.last().unwrap_or(&0);
        self.check_vec("layer_norm weight", w, d)?;
        self.check_vec("layer_norm bias", b, d)?;
        Ok(self.op(Op::LayerNorm { x, w, b, eps }, xs, DType::F32))
    }

    pub fn rms_norm(&mut self, x: TensorId, w: TensorId, eps: f32, add_one: bool) -> Result<TensorId> {
        let xs = self.float_act("rms_norm x", x)?.to_vec();
        self.check_vec("rms_norm weight", w, *xs.last().unwrap_or(&0))?;
        Ok(self.op(Op::RmsNorm { x, w, eps, add_one }, xs, DType::F32))
    }

    pub fn act(&mut self, x: TensorId, act: Activation) -> Result<TensorId> {
        let xs = self.float_act("activation", x)?.to_vec();
        Ok(self.op(Op::Act { x, act }, xs, DType::F32))
    }

    pub fn gated(&mut self, gate: TensorId, up: TensorId, act: Activation) -> Result<TensorId> {
        let gs = self.float_act("gated gate", gate)?.to_vec();
        if self.float_act("gated up", up)? != gs.as_slice() {
            return Err(shape_err("gated activation", "gate and up differ in shape"));
        }
        Ok(self.op(Op::Gated { gate, up, act }, gs, DType::F32))
    }

    pub fn rope(
        &mut self,
        x: TensorId,
        cos_sin: TensorId,
        n_heads: usize,
        head_dim: usize,
        rotary_dim: usize,
    ) -> Result<TensorId> {
        let xs = self.float_act("rope x", x)?.to_vec();
        if xs.len() != 2
            || xs[1] != n_heads * head_dim
            || !rotary_dim.is_multiple_of(2)
            || rotary_dim > head_dim
            || rotary_dim == 0
        {
            return Err(shape_err(
                "rope",
                format!("x {xs:?} with {n_heads} heads of {head_dim}, rotary_dim {rotary_dim}"),
            ));
        }
        let cs = self.float_act("rope cos_sin", cos_sin)?;
        if cs != [xs[0], rotary_dim] {
            return Err(shape_err(
                "rope",
                format!("cos_sin must be [{}, {rotary_dim}], got {cs:?}", xs[0]),
            ));
        }
        Ok(self.op(
            Op::Rope {
                x,
                cos_sin,
                n_heads,
                head_dim,
                rotary_dim,
            },
            xs,
            DType::F32,
        ))
    }

    /// The cos/sin table for `positions`, computed the way transformers does (f32 inverse
    /// frequencies, f32 products) with a correctly rounded cos/sin, as a constant.
    pub fn rope_table(&mut self, positions: &[u32], rotary_dim: usize, theta: f32) -> Result<TensorId> {
        let t = rope_cos_sin(positions, rotary_dim, theta)?;
        Ok(self.constant(t))
    }

    pub fn embedding(&mut self, table: TensorId, ids: TensorId) -> Result<TensorId> {
        let ts = self.float_any("embedding table", table)?.to_vec();
        let s = self.u32_vec("embedding ids", ids)?;
        if ts.len() != 2 {
            return Err(shape_err("embedding", format!("table must be [V, E], got {ts:?}")));
        }
        Ok(self.op(Op::Embedding { table, ids }, vec![s, ts[1]], DType::F32))
    }

    fn same_shape(&self, what: &str, a: TensorId, b: TensorId) -> Result<Vec<usize>> {
        let sa = self.float_act(what, a)?.to_vec();
        let sb = self.float_act(what, b)?;
        if sa != sb {
            return Err(shape_err(what, format!("{sa:?} vs {sb:?}")));
        }
        Ok(sa)
    }

    pub fn add(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        let s = self.same_shape("add", a, b)?;
        Ok(self.op(Op::Add { a, b }, s, DType::F32))
    }

    pub fn scale(&mut self, x: TensorId, s: f32) -> Result<TensorId> {
        let xs = self.float_act("scale", x)?.to_vec();
        Ok(self.op(Op::Scale { x, s }, xs, DType::F32))
    }

    pub fn softcap(&mut self, x: TensorId, cap: f32) -> Result<TensorId> {
        let xs = self.float_act("softcap", x)?.to_vec();
        if cap <= 0.0 {
            return Err(Error::Invalid(format!("soft-cap must be > 0, got {cap}")));
        }
        Ok(self.op(Op::SoftCap { x, cap }, xs, DType::F32))
    }

    pub fn scatter_rows(&mut self, dst: TensorId, src: TensorId, index: TensorId) -> Result<TensorId> {
        let ds = self.float_act("scatter dst", dst)?.to_vec();
        let ss = self.float_act("scatter src", src)?.to_vec();
        let n = self.u32_vec("scatter index", index)?;
        if ds.len() != 2 || ss.len() != 2 || ds[1] != ss[1] || ss[0] != n {
            return Err(shape_err(
                "scatter_rows",
                format!("dst {ds:?}, src {ss:?}, {n} indices"),
            ));
        }
        Ok(self.op(Op::ScatterRows { dst, src, index }, ds, DType::F32))
    }

    pub fn rows(&mut self, x: TensorId, start: usize, count: usize) -> Result<TensorId> {
        let xs = self.float_act("rows", x)?.to_vec();
        if xs.len() != 2 || start + count > xs[0] || count == 0 {
            return Err(shape_err("rows", format!("rows {start}..{} of {xs:?}", start + count)));
        }
        Ok(self.op(Op::Rows { x, start, count }, vec![count, xs[1]], DType::F32))
    }

    /// `x` under a new shape with the same number of elements (a copy on the GPU).
    pub fn reshape(&mut self, x: TensorId, shape: &[usize]) -> Result<TensorId> {
        let xs = self.float_act("reshape", x)?.to_vec();
        if numel(&xs) != numel(shape) || shape.is_empty() {
            return Err(shape_err("reshape", format!("cannot view {xs:?} as {shape:?}")));
        }
        Ok(self.op(Op::Reshape { x }, shape.to_vec(), DType::F32))
    }

    pub fn argmax(&mut self, x: TensorId) -> Result<TensorId> {
        let xs = self.float_act("argmax", x)?.to_vec();
        Ok(self.op(Op::Argmax { x }, vec![rows_of(&xs)], DType::U32))
    }

    /// Samples one token id per row; see [`SampleParams`].
    pub fn sample(&mut self, x: TensorId, p: SampleParams) -> Result<TensorId> {
        let xs = self.float_act("sample", x)?.to_vec();
        p.validate()?;
        if xs.last().copied().unwrap_or(0) == 0 {
            return Err(shape_err("sample", format!("cannot sample from an empty row {xs:?}")));
        }
        Ok(self.op(Op::Sample { x, p }, vec![rows_of(&xs)], DType::U32))
    }

    /// Applies a repetition penalty for the token ids `ids`; see [`Op::RepetitionPenalty`].
    pub fn repetition_penalty(&mut self, x: TensorId, ids: TensorId, penalty: f32) -> Result<TensorId> {
        let xs = self.float_act("repetition_penalty", x)?.to_vec();
        self.u32_vec("repetition_penalty ids", ids)?;
        if !(penalty > 0.0 && penalty.is_finite()) {
            return Err(Error::Invalid(format!(
                "the repetition penalty must be > 0, got {penalty}"
            )));
        }
        Ok(self.op(Op::RepetitionPenalty { x, ids, penalty }, xs, DType::F32))
    }

    pub fn write_rows(&mut self, state: TensorId, src: TensorId, row: usize) -> Result<TensorId> {
        let v = self.value(state)?;
        if !matches!(v.kind, ValueKind::State(_)) {
            return Err(Error::Graph("write_rows target must be a state tensor".into()));
        }
        let st = v.shape.clone();
        let ss = self.float_act("write_rows src", src)?;
        if st.len() != 2 || ss.len() != 2 || ss[1] != st[1] || row + ss[0] > st[0] {
            return Err(shape_err(
                "write_rows",
                format!("cannot write {ss:?} at row {row} of state {st:?}"),
            ));
        }
        Ok(self.op(Op::WriteRows { state, src, row }, st, DType::F32))
    }

    /// Total elements of a value.
    pub fn numel(&self, id: TensorId) -> Result<usize> {
        Ok(numel(self.shape(id)?))
    }
}

impl Op {
    /// The tensors this op reads.
    pub fn inputs(&self) -> Vec<TensorId> {
        match *self {
            Op::MatMul { x, w, bias } => [Some(x), Some(w), bias].into_iter().flatten().collect(),
            Op::Attention { q, k, v, .. } => vec![q, k, v],
            Op::PatchEmbed { pixels, w, b, pos, .. } => vec![pixels, w, b, pos],
            Op::LayerNorm { x, w, b, .. } => vec![x, w, b],
            Op::RmsNorm { x, w, .. } => vec![x, w],
            Op::Act { x, .. } | Op::Scale { x, .. } | Op::SoftCap { x, .. } | Op::Rows { x, .. } | Op::Argmax { x } => {
                vec![x]
            }
            Op::Sample { x, .. } | Op::Reshape { x } => vec![x],
            Op::RepetitionPenalty { x, ids, .. } => vec![x, ids],
            Op::Gated { gate, up, .. } => vec![gate, up],
            Op::Rope { x, cos_sin, .. } => vec![x, cos_sin],
            Op::Embedding { table, ids } => vec![table, ids],
            Op::Add { a, b } => vec![a, b],
            Op::ScatterRows { dst, src, index } => vec![dst, src, index],
            Op::WriteRows { state, src, .. } => vec![state, src],
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Op::MatMul { .. } => "matmul",
            Op::Attention { .. } => "attention",
            Op::PatchEmbed { .. } => "patch_embed",
            Op::LayerNorm { .. } => "layer_norm",
            Op::RmsNorm { .. } => "rms_norm",
            Op::Act { .. } => "activation",
            Op::Gated { .. } => "gated_activation",
            Op::Rope { .. } => "rope",
            Op::Embedding { .. } => "embedding",
            Op::Add { .. } => "add",
            Op::Scale { .. } => "scale",
            Op::SoftCap { .. } => "softcap",
            Op::ScatterRows { .. } => "scatter_rows",
            Op::Rows { .. } => "rows",
            Op::Reshape { .. } => "reshape",
            Op::Argmax { .. } => "argmax",
            Op::Sample { .. } => "sample",
            Op::RepetitionPenalty { .. } => "repetition_penalty",
            Op::WriteRows { .. } => "write_rows",
        }
    }
}

/// cos/sin table `[S, rotary_dim]` for `positions`, as transformers computes it: inverse
/// frequencies `1 / theta^(2i/rotary_dim)` in f32, the product position·inv_freq in f32, then
/// cos and sin of that f32 value.
pub fn rope_cos_sin(positions: &[u32], rotary_dim: usize, theta: f32) -> Result<Tensor> {
    if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) {
        return Err(Error::Invalid(format!(
            "rotary_dim must be even and > 0, got {rotary_dim}"
        )));
    }
    let half = rotary_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / rotary_dim as f32))
        .collect();
    let mut out = Vec::with_capacity(positions.len() * rotary_dim);
    for &p in positions {
        let f: Vec<f32> = inv.iter().map(|&iv| p as f32 * iv).collect();
        out.extend(f.iter().map(|&a| (a as f64).cos() as f32));
        out.extend(f.iter().map(|&a| (a as f64).sin() as f32));
    }
    Tensor::f32(&[positions.len(), rotary_dim], out)
}
