//! `dtc check`: the shipped configs are valid; every mistake names its field and line.

use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    check_env(text, None)
}

fn check_env(text: &str, database_url: Option<&str>) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dtc.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dtc"));
    cmd.args(["check", "--config"]).arg(&path);
    match database_url {
        Some(url) => cmd.env("DTC_DATABASE_URL", url),
        None => cmd.env_remove("DTC_DATABASE_URL"),
    };
    let out = cmd.output().unwrap();
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
    assert_eq!(code, 78);
    assert!(err.contains("line 4"), "{err}");
}

#[test]
fn an_unknown_field_is_named() {
    let (code, _, err) = check(&format!("{NODES}[retry]\nattempt = 3\n"));
    assert_eq!(code, 78);
    assert!(err.contains("unknown field `attempt`"), "{err}");
    assert!(err.contains("line 5"), "{err}");
}

#[test]
fn zero_nodes_is_refused() {
    let (code, _, err) = check("[retry]\nattempts = 3\n");
    assert_eq!(code, 78);
    assert!(err.contains("`nodes`: no nodes"), "{err}");
}

#[test]
fn every_problem_is_listed_with_its_field_and_line() {
    let text = "[[nodes]]\nname = \"a\"\nurl = \"127.0.0.1:5000\"\n\n[[nodes]]\nname = \"a\"\nurl = \"ftp://x:1\"\n\n[retry]\nattempts = 0\njitter = 2.0\ninitial_backoff = \"10s\"\n\n[[routes]]\nmethod = \"GET\"\npath = \"v1/group\"\n";
    let (code, _, err) = check(text);
    assert_eq!(code, 78);
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
    assert_eq!(code, 78);
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
    assert_eq!(code, 78);
    assert!(err.contains("write it like \"250ms\""), "{err}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .args(["check", "--config", "/nonexistent/dtc.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
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
    assert_eq!(code, 78);
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
    assert_eq!(code, 78);
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

/// Issue 14, finding 4: ports out of range and credentials in node URLs are errors naming the
/// field, and the password is never echoed.
#[test]
fn node_urls_with_bad_ports_or_credentials_are_refused_without_echoing_the_password() {
    for (url, says) in [
        ("http://127.0.0.1:92703", "port 92703 is out of range"),
        ("http://127.0.0.1:99999", "port 99999 is out of range"),
        ("http://127.0.0.1:0", "port 0 is out of range"),
        ("http://admin:hunter2@127.0.0.1:5000", "carries credentials"),
    ] {
        let (code, _, err) = check(&format!("[[nodes]]\nname = \"a\"\nurl = \"{url}\"\n"));
        assert_eq!(code, 78, "{url}");
        assert!(
            err.contains("`nodes[0].url`") && err.contains(says),
            "{url}: {err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}

/// Issue 14, finding 6: values `dtc run` cannot live with are refused by `dtc check`, naming
/// the field and the valid range.
#[test]
fn values_out_of_their_documented_range_are_refused() {
    for (section, line, field) in [
        (
            "limits",
            "max_connections = 9223372036854775807",
            "limits.max_connections",
        ),
        ("listen", "workers = 100000000", "listen.workers"),
        (
            "limits",
            "max_header_bytes = 4294967296",
            "limits.max_header_bytes",
        ),
        ("retry", "attempts = 0", "retry.attempts"),
        (
            "timeouts",
            "header_read = \"100years\"",
            "timeouts.header_read",
        ),
        ("timeouts", "read_idle = \"0s\"", "timeouts.read_idle"),
        ("journal", "redrive_max = \"30d\"", "journal.redrive_max"),
    ] {
        let (code, _, err) = check(&format!("{NODES}[{section}]\n{line}\n"));
        assert_eq!(code, 78, "{line}");
        assert!(err.contains(&format!("`{field}`: ")), "{line}: {err}");
        assert!(err.contains("out of range: use"), "{line}: {err}");
    }
}

/// Issue 14, finding 6: an empty admin token is an error (an empty bearer would match it); a
/// token file that is missing or empty is one too, and naming both forms is ambiguous.
#[test]
fn admin_tokens_must_be_non_empty_and_token_files_readable() {
    let (code, _, err) = check(&format!("[listen]\nadmin_token = \"\"\n{NODES}"));
    assert_eq!(code, 78);
    assert!(err.contains("`listen.admin_token`: is empty"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let with_file = format!(
        "[listen]\nadmin_token_file = \"{}\"\n{NODES}",
        file.display()
    );
    let (code, _, err) = check(&with_file);
    assert_eq!(code, 78);
    assert!(err.contains("cannot read listen.admin_token_file"), "{err}");
    std::fs::write(&file, "\n").unwrap();
    let (_, _, err) = check(&with_file);
    assert!(err.contains("is empty"), "{err}");
    std::fs::write(&file, "s3cret-from-a-secret\n").unwrap();
    let (code, _, err) = check(&with_file);
    assert_eq!(code, 0, "{err}");
    let both = format!(
        "[listen]\nadmin_token = \"x1234\"\nadmin_token_file = \"{}\"\n{NODES}",
        file.display()
    );
    let (code, out, _) = check(
        "[listen]\nadmin_token = \"s3cret-in-the-file\"\n[[nodes]]\nname = \"a\"\nurl = \"http://127.0.0.1:5000\"\n",
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("admin_token = \"***\"") && !out.contains("s3cret"),
        "{out}"
    );
    let (code, _, err) = check(&both);
    assert_eq!(code, 78);
    assert!(err.contains("not both"), "{err}");
}

/// Issue 14, finding 7: a refused config (as a reload refuses it) never repeats the admin
/// token or a URL's password, even where a problem would quote the value.
#[test]
fn problems_never_repeat_secrets() {
    let text = "[listen]\nadmin_token = \"hunter2-token\"\n[retry]\nattempts = \"hunter2-token\"\n";
    let err = dtc::config::parse(text, "dtc.toml")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    let text = "[alerts]\nwebhook = \"ftp://u:hunter2@x\"\n[[nodes]]\nname = \"hunter2-token\"\nurl = \"http://u:hunter2@x:1\"\n";
    let err = dtc::config::parse(text, "dtc.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("***@"), "{err}");
    assert!(!err.contains("hunter2@"), "{err}");
}

#[test]
fn the_cluster_section_is_checked_and_its_password_never_printed() {
    let (code, _, err) = check(&format!(
        "{NODES}[cluster]\ndatabase_url = \"postgresql://dtc@db:notaport/dtc\"\nlease = \"1s\"\nsurprise = 1\n"
    ));
    assert_eq!(code, 78);
    assert!(err.contains("unknown field `surprise`"), "{err}");
    let (code, _, err) = check(&format!(
        "{NODES}[cluster]\ndatabase_url = \"postgresql://dtc@db:notaport/dtc\"\nlease = \"1s\"\n"
    ));
    assert_eq!(code, 78);
    assert!(
        err.contains("`cluster.database_url`: `postgresql://")
            && err.contains("@db:notaport/dtc` is not a PostgreSQL connection string"),
        "{err}"
    );
    assert!(
        err.contains("`cluster.lease`: must be longer than timeouts.attempt"),
        "{err}"
    );
    let (code, _, err) = check(&format!("{NODES}[cluster]\nlease = \"20s\"\n"));
    assert_eq!(code, 78);
    assert!(err.contains("`cluster.database_url`: is required"), "{err}");
    let (code, out, err) = check(&format!(
        "{NODES}[cluster]\ndatabase_url = \"postgresql://dtc:s3cret@db:5432/dtc\"\n"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("postgresql://dtc:***@db:5432/dtc") && out.contains("lease = \"10s\""),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
    let (code, out, err) = check_env(NODES, Some("postgresql://dtc:fr0mSecret@db/dtc"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[cluster]") && out.contains("postgresql://dtc:***@db/dtc"),
        "the environment turns cluster mode on: {out}"
    );
    assert!(!out.contains("fr0mSecret"), "{out}");
}

#[test]
fn a_wrong_command_line_exits_64_whatever_the_subcommand() {
    for args in [
        &["check", "--bogus"][..],
        &["run", "--workers", "many"][..],
        &["node", "--error-rate", "2"][..],
        &["bogus"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_dtc"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains("error:"), "{args:?}: {err}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .args(["check", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
}

#[test]
fn every_wrong_type_names_its_field_line_and_expected_form_all_at_once() {
    let (code, _, err) = check(&format!(
        "{NODES}[health]\ninterval = 2\nunhealthy_threshold = \"3\"\n[retry]\nattempts = 2.5\n"
    ));
    assert_eq!(code, 78);
    for expected in [
        "line 5: `health.interval`: invalid type: integer `2`, expected a duration in quotes, like \"2s\"",
        "line 6: `health.unhealthy_threshold`: invalid type: string \"3\", expected u32; write a whole number",
        "line 8: `retry.attempts`",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn offline_check_of_the_shipped_configmap_reports_the_token_file_and_passes() {
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/base/configmap.yaml"),
    )
    .unwrap();
    let doc: serde_json::Value = serde_norway::from_str(&manifest).unwrap();
    let text = doc["data"]["dtc.toml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dtc.toml");
    std::fs::write(&path, text).unwrap();
    let run = |offline: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dtc"));
        cmd.args(["check", "--config"]).arg(&path);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().unwrap()
    };
    let strict = run(false);
    assert_eq!(strict.status.code(), Some(78));
    let offline = run(true);
    let err = String::from_utf8_lossy(&offline.stderr);
    assert_eq!(offline.status.code(), Some(0), "{err}");
    assert!(
        err.contains("not checked (--offline): listen.admin_token_file"),
        "{err}"
    );
}

/// Runs `dtc check [--offline]` on `text`; `(exit code, stderr)`.
fn check_mode(text: &str, offline: bool) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dtc.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dtc"));
    cmd.args(["check", "--config"]).arg(&path);
    if offline {
        cmd.arg("--offline");
    }
    let out = cmd.env_remove("DTC_DATABASE_URL").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn offline_tls_files_only_the_pod_has_are_reported_and_the_store_is_not_contacted() {
    // TLS files that exist only where dtc runs (mounted Secrets), and a shared store whose CA
    // file is one too.
    let text = "[[nodes]]\nname = \"a\"\nurl = \"https://node-a.example:8443\"\n\
        [tls]\nca_file = \"/etc/dtc-tls/ca.pem\"\ncert_file = \"/etc/dtc-tls/client.pem\"\n\
        key_file = \"/etc/dtc-tls/client.key\"\n\
        [cluster]\ndatabase_url = \"postgresql://dtc@127.0.0.1:1/dtc?sslmode=verify-full&sslrootcert=/etc/dtc-tls/db-ca.pem\"\n";
    let (code, err) = check_mode(text, false);
    assert_eq!(
        code, 78,
        "without --offline a missing TLS file is a problem: {err}"
    );
    assert!(err.contains("`tls.ca_file`"), "{err}");
    let (code, err) = check_mode(text, true);
    assert_eq!(code, 0, "{err}");
    for field in ["tls.ca_file", "tls.cert_file", "tls.key_file"] {
        assert!(
            err.contains(&format!(
                "`{field}`: not checked (--offline): `/etc/dtc-tls/"
            )),
            "{field} in:\n{err}"
        );
    }
    assert!(
        err.contains(
            "not checked (--offline): the shared store of `cluster.database_url` was not contacted"
        ),
        "{err}"
    );
    // A file that is here is still checked offline.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("ca.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let text = format!(
        "[[nodes]]\nname = \"a\"\nurl = \"https://node-a.example:8443\"\n[tls]\nca_file = \"{}\"\n",
        junk.display()
    );
    let (code, err) = check_mode(&text, true);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("`tls.ca_file`") && !err.contains("not checked"),
        "{err}"
    );
}
