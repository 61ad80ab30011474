//! Chat templates of the SmolVLM / Idefics3 fixtures (chat_template.jinja and the legacy
//! chat_template.json) rendered byte for byte as transformers' `apply_chat_template(messages,
//! add_generation_prompt=True)` (tests/fixtures/*/expected.json `prompt_text`, made by
//! tools/make_smolvlm_fixtures.py), single and multi-turn.

use std::path::PathBuf;

use pinhole_core::hf::ChatTemplate;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn prompts_equal_transformers() {
    let mut checked = 0;
    for variant in ["smolvlm", "smolvlm-nosplit", "idefics3"] {
        let dir = fixtures().join(variant);
        let t = ChatTemplate::load_dir(dir.join("model"))
            .unwrap()
            .expect("a chat template");
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        for (case, e) in expected["cases"].as_object().unwrap() {
            let got = t.render(&e["messages"], true).unwrap();
            assert_eq!(got, e["prompt_text"].as_str().unwrap(), "{variant}/{case}");
            checked += 1;
        }
    }
    assert_eq!(checked, 7);
}

#[test]
fn image_question_is_the_model_card_form() {
    let t = ChatTemplate::load_dir(fixtures().join("smolvlm/model"))
        .unwrap()
        .unwrap();
    let got = t
        .render(&ChatTemplate::image_question("Describe this image."), true)
        .unwrap();
    assert_eq!(
        got,
        "<|im_start|>User:<image>Describe this image.<end_of_utterance>\nAssistant:"
    );
    let got = t
        .render(&ChatTemplate::image_question("Describe this image."), false)
        .unwrap();
    assert_eq!(got, "<|im_start|>User:<image>Describe this image.<end_of_utterance>\n");
}
