//! Property tests of the parsers dtc owns in its config: the file itself, route patterns,
//! templates and their JSON pointers. Whatever the text, they answer with a value or a problem,
//! never a panic; and what they accept means what it says.

use super::template::{Context, Escape, Pattern, Template};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::json;

fn config() -> Config {
    Config {
        cases: 200,
        rng_seed: RngSeed::Fixed(14),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text made mostly of the characters templates and TOML care about.
fn texty() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("/".to_string()),
            Just("body:".to_string()),
            Just("response:".to_string()),
            Just("location".to_string()),
            Just("id".to_string()),
            Just("~".to_string()),
            "[a-z0-9_.=\"\\[\\] \n-]{1,4}".prop_map(String::from),
            any::<char>().prop_map(String::from),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// A valid config's lines, to mutate.
const BASE: &str = "[listen]\naddress = \"127.0.0.1:8000\"\n[[nodes]]\nname = \"a\"\nurl = \"http://127.0.0.1:5000\"\n[limits]\nmax_connections = 10\n[[routes]]\nmethod = \"POST\"\npath = \"/v1/{id}\"\ncompensation = { method = \"DELETE\", path = \"/v1/{id}\" }\n";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_a_config_or_a_problem(text in texty()) {
        let _ = super::parse(&text, "fuzz");
    }

    #[test]
    fn a_mutated_config_is_a_config_or_a_problem(
        at in any::<prop::sample::Index>(),
        cut in 0usize..8,
        insert in texty(),
    ) {
        let mut chars: Vec<char> = BASE.chars().collect();
        let i = at.index(chars.len());
        let end = (i + cut).min(chars.len());
        chars.splice(i..end, insert.chars());
        let text: String = chars.into_iter().collect();
        if let Ok(settings) = super::parse(&text, "fuzz") {
            // Whatever was accepted is within the documented ranges.
            for (field, value, min, max) in super::bounds::counts(&settings.config) {
                prop_assert!((min..=max).contains(&value), "{} = {}", field, value);
            }
        }
    }

    #[test]
    fn any_pattern_or_template_text_compiles_or_is_a_problem(text in texty()) {
        if let Ok(p) = Pattern::compile(&text) {
            let params = p.params();
            let _ = Template::compile(&text, &params);
            let _ = p.matches(&text);
        }
        let _ = Template::compile(&text, &["id".to_string()]);
    }

    #[test]
    fn a_pattern_captures_what_was_put_in_its_segments(
        values in prop::collection::vec("[A-Za-z0-9._~-]{1,12}", 1..4),
    ) {
        let names: Vec<String> = (0..values.len()).map(|i| format!("p{i}")).collect();
        let pattern: String = names.iter().map(|n| format!("/x/{{{n}}}")).collect();
        let p = Pattern::compile(&pattern).unwrap();
        let path: String = values.iter().map(|v| format!("/x/{v}")).collect();
        let captured = p.matches(&path).expect("the path matches its own pattern");
        let want: Vec<(String, String)> = names.into_iter().zip(values).collect();
        prop_assert_eq!(captured, want);
    }

    #[test]
    fn a_json_pointer_finds_any_key_and_any_value(key in ".{0,12}", value in ".{0,24}") {
        // A placeholder ends at the first `}` and cannot hold a quote (that is JSON text): such
        // keys cannot be named in a template at all.
        prop_assume!(!key.contains(['{', '}', '"']) && !key.starts_with([' ', '\n']));
        let escaped = key.replace('~', "~0").replace('/', "~1");
        let t = Template::compile(&format!("{{body:/{escaped}}}"), &[]).unwrap();
        let body = json!({ key.clone(): value.clone() });
        let ctx = Context { body: Some(&body), ..Context::default() };
        prop_assert_eq!(t.render(&ctx, Escape::Raw).unwrap(), value);
    }

    #[test]
    fn any_pointer_text_renders_or_is_missing(ptr in texty(), doc in r#"[a-z0-9{}:,/~ \[\]"]{0,40}"#) {
        let body = serde_json::from_str(&doc).unwrap_or(serde_json::Value::Null);
        if let Ok(t) = Template::compile(&format!("{{body:/{ptr}}}"), &[]) {
            let ctx = Context { body: Some(&body), ..Context::default() };
            let _ = t.render(&ctx, Escape::Path);
            let _ = t.render(&ctx, Escape::Json);
        }
    }
}
