//! `dtc check`: the shipped configs are valid; every mistake names its field and line.

use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dtc.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const NODES: &str = "[[nodes]]\nname = \"a\"\nurl = \"http://127.0.0.1:5000\"\n";

#[test]
fn the_shipped_configs_are_valid_and_print_the_effective_config() {
    for file in ["config/dtc.toml", "config/items.toml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_dtc"))
            .args(["check", "--config", file])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}: {stderr}");
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            printed.contains("max_body = 1048576"),
            "defaults are printed: {printed}"
        );
        assert!(stderr.contains("ok (3 nodes"), "{stderr}");
    }
}

#[test]
fn a_syntax_error_names_the_line() {
    let (code, _, err) = check(&format!("{NODES}[retry\nattempts = 3\n"));
    assert_eq!(code, 64);
    assert!(err.contains("line 4"), "{err}");
}

#[test]
fn an_unknown_field_is_named() {
    let (code, _, err) = check(&format!("{NODES}[retry]\nattempt = 3\n"));
    assert_eq!(code, 64);
    assert!(err.contains("unknown field `attempt`"), "{err}");
    assert!(err.contains("line 5"), "{err}");
}

#[test]
fn zero_nodes_is_refused() {
    let (code, _, err) = check("[retry]\nattempts = 3\n");
    assert_eq!(code, 64);
    assert!(err.contains("`nodes`: no nodes"), "{err}");
}

#[test]
fn every_problem_is_listed_with_its_field_and_line() {
    let text = "[[nodes]]\nname = \"a\"\nurl = \"127.0.0.1:5000\"\n\n[[nodes]]\nname = \"a\"\nurl = \"ftp://x:1\"\n\n[retry]\nattempts = 0\njitter = 2.0\ninitial_backoff = \"10s\"\n\n[[routes]]\nmethod = \"GET\"\npath = \"v1/group\"\n";
    let (code, _, err) = check(text);
    assert_eq!(code, 64);
    for expected in [
        "line 3: `nodes[0].url`: url `127.0.0.1:5000` has no scheme: write `http://127.0.0.1:5000`",
        "line 6: `nodes[1].name`: node name `a` is used twice",
        "line 7: `nodes[1].url`",
        "line 10: `retry.attempts`",
        "line 11: `retry.jitter`",
        "line 12: `retry.initial_backoff`",
        "`routes[0].method`: GET is not in writes.methods",
        "`routes[0].path`: path `v1/group` must start with `/`",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn route_templates_are_checked() {
    let text = format!(
        "{NODES}[[routes]]\nmethod = \"POST\"\npath = \"/items/{{id}}\"\nkey = \"{{response:/id}}\"\ncompensation = {{ method = \"DELETE\", path = \"/items/{{nope}}\", body = \"snapshot\" }}\n"
    );
    let (code, _, err) = check(&text);
    assert_eq!(code, 64);
    assert!(
        err.contains("`routes[0].key`: a key is known before the write"),
        "{err}"
    );
    assert!(err.contains("`{nope}`"), "{err}");
    assert!(err.contains("needs a `snapshot` rule"), "{err}");
}

#[test]
fn a_bad_duration_says_how_to_write_one() {
    let (code, _, err) = check(&format!("{NODES}[retry]\ndeadline = \"5 parsecs\"\n"));
    assert_eq!(code, 64);
    assert!(err.contains("write it like \"250ms\""), "{err}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .args(["check", "--config", "/nonexistent/dtc.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read config file /nonexistent/dtc.toml")
    );
}

#[test]
fn a_verify_rule_must_be_renderable_before_the_write_and_name_its_statuses() {
    let text = format!(
        "{NODES}[[routes]]\nmethod = \"POST\"\npath = \"/items\"\nverify = {{ path = \"/items/{{response:/id}}\", expect = [] }}\n"
    );
    let (code, _, err) = check(&text);
    assert_eq!(code, 64);
    assert!(
        err.contains("`routes[0].verify.path`: runs before the write"),
        "{err}"
    );
    let text = format!(
        "{NODES}[[routes]]\nmethod = \"POST\"\npath = \"/x\"\nverify = {{ path = \"/x\", expect = [] }}\n"
    );
    let (_, _, err) = check(&text);
    assert!(
        err.contains("`routes[0].verify.prior`: list the statuses"),
        "{err}"
    );
}

#[test]
fn a_read_back_must_tell_the_target_state_from_the_prior_one() {
    let route = |verify: &str| {
        format!(
            "{NODES}[[routes]]\nmethod = \"POST\"\npath = \"/x\"\nverify = {{ path = \"/x\", {verify} }}\n"
        )
    };
    let (code, _, err) = check(&route("prior = [404], target = [404]"));
    assert_eq!(code, 64);
    assert!(
        err.contains("`routes[0].verify.target`: 404 is listed as both"),
        "{err}"
    );
    let (_, _, err) = check(&route("prior = [409]"));
    assert!(
        err.contains(
            "cannot derive the target state's statuses from prior = [409]: set `target` too"
        ),
        "{err}"
    );
    // One side is enough when the other follows: 404 before a create means 200 after it, and
    // `expect` still reads as the prior state's statuses.
    for ok in ["prior = [404]", "target = [404]", "expect = [200]"] {
        let (code, _, err) = check(&route(ok));
        assert_eq!(code, 0, "{ok}: {err}");
    }
}
