//! SmolVLM / Idefics3 prompt ids as transformers' processor makes them: chat template →
//! `<image>` expanded into the tile tokens of the image's split → tokenizer.json, compared
//! with the fixtures' `input_ids` (tests/fixtures/*/expected.json, tools/make_smolvlm_fixtures.py).

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;

use pinhole_core::hf::image::load_image;
use pinhole_core::hf::smolvlm_image::preprocess_tiles;
use pinhole_core::hf::ChatTemplate;
use pinhole_models::smolvlm_processor::prompt_ids;

#[test]
fn input_ids_equal_transformers() {
    let mut checked = 0;
    for variant in ["smolvlm", "smolvlm-nosplit", "idefics3"] {
        let dir = common::fixtures().join(variant);
        let model = dir.join("model");
        let (cfg, proc) = common::smolvlm_configs(&model);
        assert_eq!(proc.image_seq_len, Some(cfg.image_seq_len()), "{variant}");
        let template = ChatTemplate::load_dir(&model).unwrap().unwrap();
        let tok = tokenizers::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
        let expected = common::expected_json(&dir);
        for (case, e) in expected["cases"].as_object().unwrap() {
            let img = load_image(common::fixtures().join("images").join(e["image"].as_str().unwrap())).unwrap();
            let tiles = preprocess_tiles(&img, &proc).unwrap();
            let prompt = template.render(&e["messages"], true).unwrap();
            let ids = prompt_ids(
                &tok,
                &prompt,
                tiles.rows,
                tiles.cols,
                cfg.image_seq_len(),
                cfg.image_token_id,
            )
            .unwrap();
            assert_eq!(ids, common::ids(e, "input_ids"), "{variant}/{case}");
            checked += 1;
        }
    }
    assert_eq!(checked, 7);
}

#[test]
fn prompt_errors() {
    let model = common::fixtures().join("smolvlm/model");
    let tok = tokenizers::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    // The question itself holding `<image>` is two placeholders.
    let e = prompt_ids(&tok, "User:<image>what is <image>?", 0, 0, 4, 381)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 `<image>`"), "{e}");
    // An image token id that is not the tokenizer's `<image>`.
    let e = prompt_ids(&tok, "User:<image>", 0, 0, 4, 5).unwrap_err().to_string();
    assert!(e.contains("image_token_id"), "{e}");
    // A split beyond the tokenizer's <row_R_col_C> tokens.
    let e = prompt_ids(&tok, "User:<image>", 7, 1, 4, 381).unwrap_err().to_string();
    assert!(e.contains("<row_7_col_1>"), "{e}");
}
