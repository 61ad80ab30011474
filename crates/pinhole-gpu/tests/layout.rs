//! Every kernel's Rust side against its WGSL, by reflection (naga), without a GPU: the params
//! struct the executor fills (`pinhole_gpu::params`) must have the size, field names, types
//! and offsets of the shader's `struct Params`, and the kernel table's storage bindings must be
//! exactly the ones the entry point uses (slot and name). A mismatch fails here instead of
//! producing wrong numbers in a generation.

use std::collections::BTreeSet;

use naga::{AddressSpace, ScalarKind, TypeInner};
use pinhole_gpu::kernels::{Family, Kernel};
use pinhole_gpu::params::Scalar;

fn parse(family: Family) -> (naga::Module, naga::valid::ModuleInfo) {
    let src = family.source().unwrap();
    let module =
        naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{}: {}", family.file(), e.emit_to_string(&src)));
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {e:?}", family.file()));
    (module, info)
}

#[test]
fn params_structs_match_the_shaders() {
    for &k in Kernel::ALL {
        let (module, _) = parse(k.family());
        let want = k.params();
        let (_, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Params"))
            .unwrap_or_else(|| panic!("{}: no struct Params", k.label()));
        let TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{}: Params is not a struct", k.label())
        };
        assert_eq!(
            *span as usize,
            want.size,
            "{}: size of Params vs {}",
            k.label(),
            want.name
        );
        let got: Vec<(String, Scalar, usize)> = members
            .iter()
            .map(|m| {
                let scalar = match module.types[m.ty].inner {
                    TypeInner::Scalar(s) if s.width == 4 && s.kind == ScalarKind::Uint => Scalar::U32,
                    TypeInner::Scalar(s) if s.width == 4 && s.kind == ScalarKind::Float => Scalar::F32,
                    ref other => panic!("{}: field {:?} has type {other:?}", k.label(), m.name),
                };
                (m.name.clone().unwrap_or_default(), scalar, m.offset as usize)
            })
            .collect();
        let want_fields: Vec<(String, Scalar, usize)> =
            want.fields.iter().map(|&(n, s, o)| (n.to_string(), s, o)).collect();
        assert_eq!(got, want_fields, "{}: WGSL Params vs {}", k.label(), want.name);
    }
}

#[test]
fn kernel_table_bindings_match_the_shaders() {
    for &k in Kernel::ALL {
        let (module, info) = parse(k.family());
        let (ep_index, _) = module
            .entry_points
            .iter()
            .enumerate()
            .find(|(_, ep)| ep.name == k.entry())
            .unwrap_or_else(|| panic!("{}: no such entry point", k.label()));
        let used = info.get_entry_point(ep_index);
        let mut storage = BTreeSet::new();
        let mut uniforms = BTreeSet::new();
        for (h, var) in module.global_variables.iter() {
            let (Some(rb), false) = (&var.binding, used[h].is_empty()) else {
                continue;
            };
            assert_eq!(rb.group, 0, "{}: {:?} is not in group 0", k.label(), var.name);
            let entry = (rb.binding, var.name.clone().unwrap_or_default());
            match var.space {
                AddressSpace::Storage { .. } => storage.insert(entry),
                AddressSpace::Uniform => uniforms.insert(entry),
                other => panic!("{}: binding {entry:?} in {other:?}", k.label()),
            };
        }
        let want: BTreeSet<(u32, String)> = k.bindings().iter().map(|&(s, n)| (s, n.to_string())).collect();
        assert_eq!(
            storage,
            want,
            "{}: storage bindings (slot, name) the entry point uses",
            k.label()
        );
        assert_eq!(
            uniforms,
            BTreeSet::from([(0, "p".to_string())]),
            "{}: uniforms",
            k.label()
        );
    }
}

#[test]
fn weight_dtype_kernels_are_the_ones_with_the_override() {
    for &k in Kernel::ALL {
        let (module, _) = parse(k.family());
        let has = module.overrides.iter().any(|(_, o)| o.name.as_deref() == Some("W_F16"));
        // A family may hold both kinds (embedding: gather reads weights, scatter does not), so
        // only the direction "the kernel says it has W_F16" is checked against the module.
        if k.has_weight_dtype() {
            assert!(
                has,
                "{}: the table says W_F16 but the module has no such override",
                k.label()
            );
        }
    }
}
