//! The lean binary (`cargo build --no-default-features`): the data path without the Kubernetes
//! integration. Its `dtc inject` and `dtc webhook` say which feature they need and exit 69;
//! `--help` marks them as not in this build. Run with `cargo test --no-default-features --test lean`.
#![cfg(not(feature = "k8s"))]

use std::process::Command;

fn dtc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_kubernetes_commands_say_they_need_the_k8s_feature() {
    for (args, command) in [
        (&["inject", "-f", "deploy.yaml", "--quiet"][..], "inject"),
        (&["inject"][..], "inject"),
        (&["webhook", "--listen", "0.0.0.0:8443"][..], "webhook"),
    ] {
        let (code, out, err) = dtc(args);
        assert_eq!(code, 69, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(
            err.contains(&format!(
                "dtc {command}: this dtc is built without the `k8s` feature"
            )),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn help_marks_them_as_not_in_this_build() {
    let (code, out, _) = dtc(&["--help"]);
    assert_eq!(code, 0);
    for command in ["inject", "webhook"] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(command))
            .unwrap_or_else(|| panic!("{command} in:\n{out}"));
        assert!(line.contains("Not in this build"), "{line}");
    }
}

#[test]
fn the_data_path_commands_are_there() {
    let (code, _, err) = dtc(&["check", "--config", "config/dtc.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ok (3 nodes"), "{err}");
}
