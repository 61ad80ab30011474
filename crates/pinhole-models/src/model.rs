//! [`Model`]: a model family ([`Architecture`], picked from config.json's `model_type` by
//! [`crate::registry`]). The loaders, the processor, the generation loop, the CLI and the
//! browser go through it; it derefs to the architecture, so `model.image_graph(..)` and the
//! like are the family's own, and nothing outside the model files matches on the family.

use std::ops::Deref;

use pinhole_core::Result;

use crate::arch::Architecture;
use crate::layers::{weights_of, ExpectedWeight, TokenChoice};

pub struct Model {
    arch: Box<dyn Architecture>,
}

impl Deref for Model {
    type Target = dyn Architecture;

    fn deref(&self) -> &Self::Target {
        self.arch.as_ref()
    }
}

impl Model {
    pub fn new(arch: Box<dyn Architecture>) -> Model {
        Model { arch }
    }

    /// The family's own type (`model.downcast_ref::<SmolVlm>()`), for code that needs its
    /// config; `None` for another family.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        // Through the trait object's vtable: with `AsAny` in scope, `self.arch.as_any()`
        // would be the blanket impl of the `Box` itself.
        (*self.arch).as_any().downcast_ref::<T>()
    }

    /// Every weight the model's graphs read (image encode, prefill, decode), with its shape:
    /// read off the graphs themselves ([`weights_of`]), so the loaders check exactly what the
    /// graphs will ask for.
    pub fn expected_weights(&self) -> Result<Vec<ExpectedWeight>> {
        // The weights do not depend on the prompt: any prompt with image rows will do, and the
        // smallest keeps the probe graphs small (the prefill's RoPE table alone is 64 MiB for a
        // 65 536-row prompt).
        let n = self.min_image_tokens();
        let ids = vec![0; n + 1];
        let rows: Vec<u32> = (0..n as u32).collect();
        let max_len = n + 2;
        let image = self.image_graph(0, false)?;
        let (prefill, _) = self.prefill_graph(&ids, &rows, max_len, false, &TokenChoice::Greedy)?;
        let (decode, _) = self.decode_graph(0, n + 1, n + 1, max_len, false, &TokenChoice::Greedy)?;
        weights_of([&image, &prefill, &decode])
    }
}
