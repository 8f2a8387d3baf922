//! A newcomer's first hour, through the real binary: the README's "Break it on purpose" session
//! run exactly as written (on the demo's own ports, in a network namespace of its own, so it
//! needs root: it skips with a message otherwise), and the demo's flags on free ports: a node
//! broken at start, the fault switch, the startup warning, a busy port's message, `dtc node
//! --down` that can be lifted.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DTC: &str = env!("CARGO_BIN_EXE_dtc");

/// One command of the README's block and what its comment expects.
#[derive(Debug)]
struct Step {
    command: String,
    exits: Option<i32>,
    prints: Option<String>,
}

/// The commands of the README block marked `<!-- break-it -->`.
fn readme_steps() -> Vec<Step> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("<!-- break-it -->\n```bash\n")
        .nth(1)
        .expect("the README has the break-it block")
        .split("\n```")
        .next()
        .unwrap();
    block
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (command, comment) = match l.find("  # ") {
                Some(i) => (l[..i].trim_end(), &l[i + 4..]),
                None => (l, ""),
            };
            let exits = comment
                .split("exits: ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(|n| n.parse().unwrap());
            let prints = comment
                .split("prints: ")
                .nth(1)
                .map(|p| p.trim().to_string());
            Step {
                command: command.to_string(),
                exits,
                prints,
            }
        })
        .collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn the_readme_break_it_session_works_as_written() {
    if !is_root() {
        eprintln!(
            "skipped: needs root for a network namespace of its own (the demo's fixed ports)"
        );
        return;
    }
    let steps = readme_steps();
    assert!(steps.len() >= 10, "{steps:?}");
    let dir = tempfile::tempdir().unwrap();
    // `export PATH=$PWD/target/release:$PATH` finds this build's dtc.
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::os::unix::fs::symlink(DTC, dir.path().join("target/release/dtc")).unwrap();
    let mut script = String::from(
        "ip link set lo up\n\
         target/release/dtc demo > demo.out 2> demo.err &\n\
         for i in $(seq 200); do curl -sf http://127.0.0.1:9901/healthz > /dev/null && break; sleep 0.05; done\n",
    );
    for (i, s) in steps.iter().enumerate() {
        script.push_str(&format!(
            "{{ {}\n}} > out.{i} 2>&1; echo $? > code.{i}\n",
            s.command
        ));
    }
    script.push_str("kill %1; wait\n");
    std::fs::write(dir.path().join("session.sh"), &script).unwrap();
    let status = Command::new("timeout")
        .args(["180", "unshare", "-n", "bash", "session.sh"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success() || status.code() == Some(143), "{status:?}");
    let read = |name: String| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let demo = read("demo.out".into()) + &read("demo.err".into());
    for (i, s) in steps.iter().enumerate() {
        let out = read(format!("out.{i}"));
        let code: i32 = read(format!("code.{i}")).trim().parse().unwrap_or(-1);
        let seen = format!(
            "step {i} `{}` exited {code}:\n{out}\n--- demo:\n{demo}",
            s.command
        );
        if let Some(e) = s.exits {
            assert_eq!(code, e, "{seen}");
        } else {
            assert_eq!(code, 0, "{seen}");
        }
        if let Some(p) = &s.prints {
            assert!(out.contains(p.as_str()), "expected {p:?} in {seen}");
        }
    }
}

/// A running `dtc demo` on free ports, killed when dropped.
struct Demo {
    child: Child,
    proxy: String,
    admin: String,
    switch: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn demo(dir: &Path, extra: &[&str]) -> Demo {
    let mut child = Command::new(DTC)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--nodes-from",
            "127.0.0.1:0",
            "--node-admin",
            "127.0.0.1:0",
        ])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let err = BufReader::new(child.stderr.take().unwrap());
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = out.next().expect("the banner").unwrap();
    std::thread::spawn(move || for _ in out {});
    // dtc demo: proxy on http://A, admin on http://B, fault switch on http://C
    let url = |after: &str| {
        first
            .split(after)
            .nth(1)
            .unwrap()
            .split([',', ' '])
            .next()
            .unwrap()
            .to_string()
    };
    Demo {
        proxy: url("proxy on "),
        admin: url("admin on "),
        switch: url("fault switch on "),
        child,
        stderr,
    }
}

fn dtc(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(DTC)
        .args(args)
        .env_remove("DTC_ADMIN")
        .env_remove("DTC_ADMIN_TOKEN")
        .env_remove("DTC_NODE_ADMIN")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Polls `ok` every 100 ms until it holds; fails the test with `what` after 20 s.
fn poll(what: &str, mut ok: impl FnMut() -> bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn a_demo_broken_at_start_warns_shows_it_and_heals_through_the_fault_switch() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path(), &["--fault", "node-3=down"]);
    poll("the start-up warning about node-3", || {
        let e = d.stderr.lock().unwrap();
        e.contains("node cannot be reached at start") && e.contains("node-3")
    });
    let (code, out, _) = dtc(&["status", "--admin", &d.admin]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("node-3"), "{out}");
    assert!(
        out.contains("node node-3") && out.contains("connect failed"),
        "the problem names node-3 and its last error: {out}"
    );
    let (code, out, err) = dtc(&["demo", "fault", "--node-admin", &d.switch]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("node-3") && out.contains("DOWN (connects refused)"),
        "{out}"
    );
    let (code, out, err) = dtc(&["demo", "fault", "--node-admin", &d.switch, "node-3", "up"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": healthy"), "{out}");
    poll("dtc status is all well", || {
        dtc(&["status", "--admin", &d.admin]).0 == 0
    });
    let (code, _, err) = dtc(&["demo", "fault", "--node-admin", &d.switch, "node-9", "down"]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("no node `node-9`"), "{err}");
    let (code, _, err) = dtc(&[
        "demo",
        "fault",
        "--node-admin",
        &d.switch,
        "node-3",
        "sideways",
    ]);
    assert_eq!(code, 64, "{err}");

    // A second demo on the same proxy port says which flag to change.
    let taken = d.proxy.trim_start_matches("http://").to_string();
    let o = Command::new(DTC)
        .args([
            "demo",
            "--listen",
            &taken,
            "--admin",
            "127.0.0.1:0",
            "--nodes-from",
            "127.0.0.1:0",
            "--node-admin",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(69), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {taken}")) && err.contains("--listen ADDR"),
        "{err}"
    );
    assert!(
        !err.contains("listen.address"),
        "the demo has no config file: {err}"
    );
}

#[test]
fn a_node_started_down_says_so_and_comes_up_through_its_fault_switch() {
    let mut child = Command::new(DTC)
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--name",
            "n1",
            "--down",
            "--admin",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(!first.contains("listening"), "{first}");
    assert!(
        first.contains("n1 is down on http://127.0.0.1:") && first.contains("bring it up with"),
        "{first}"
    );
    let switch = second
        .split("fault switch on ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let url = first
        .split(" is down on ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let healthz = || {
        Command::new("curl")
            .args(["-sf", &format!("{url}/healthz")])
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(!healthz(), "a node started down refuses connections");
    let (code, out, err) = dtc(&["demo", "fault", "--node-admin", &switch, "n1", "up"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("n1 http://127.0.0.1:") && out.contains("healthy"),
        "{out}"
    );
    poll("the node answers", healthz);
    let _ = child.kill();
    let _ = child.wait();
}
