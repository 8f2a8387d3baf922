//! The status page in a real browser: headless Chromium loads it from a dtc with a token and a
//! failed transaction whose key is hostile markup, the token goes into the page's field, the
//! markup shows as text and never runs, a stopped node shows down, the operator views (version,
//! uptime, traffic columns, rolled-back list, search by key) are there and the search finds the
//! transaction, and the `resolve` button resolves the transaction (seen through the API). Its screenshots, before and after, stay in a temporary directory it names
//! (`dtc-browser-test-*`).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian: `chromium`,
//! `chromium-driver`). Without them the test says so and passes, unless
//! `DTC_REQUIRE_BROWSER=1` (set by `.ci/run`) makes their absence a failure.

mod support;

use http::Method;
use serde_json::{Value, json};
use std::time::Duration;
use support::webdriver::{self, Browser};
use support::*;

const TOKEN: &str = "s3cret-token";
/// A group id that is markup: if the page did not escape it, it would run.
const HOSTILE: &str =
    r#"<img src=x onerror="window.pwned=1"></td></code><script>window.pwned=2</script>"#;

/// `GET {admin}{path}` with the token, as JSON.
async fn api(admin: &str, path: &str) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let a = send(
        Method::GET,
        &format!("{admin}{path}"),
        None,
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(a.status(), 200, "GET {path}: {:?}", a.body());
    a.json()
}

#[tokio::test]
async fn resolving_a_failed_transaction_from_the_status_page() {
    if !webdriver::available() {
        assert!(
            std::env::var_os("DTC_REQUIRE_BROWSER").is_none(),
            "DTC_REQUIRE_BROWSER is set but {} or {} is missing",
            webdriver::CHROMIUM,
            webdriver::CHROMEDRIVER
        );
        eprintln!(
            "skipped: no Chromium/chromedriver here (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let (nodes, dtc) = cluster_with(|c| {
        c.listen.admin_token = Some(TOKEN.into());
        c.writes.fail_fast = false;
        // Without a read-back, c's 500s leave its state open: it is undone (its prior state is
        // the one a and b left), and that undo fails too.
        c.routes.iter_mut().for_each(|r| r.verify = None);
    })
    .await;
    let admin = dtc.serve_admin().await;
    // c answers 500 to everything, its undo too: the write ends failed, and c goes down.
    nodes.c().fail_next(1_000_000);
    let body = json!({"groupId": HOSTILE}).to_string();
    let a = send(Method::POST, &dtc.at("/v1/group/"), Some(&body), &[]).await;
    assert_eq!(a.state(), "failed");
    let txn = a.txn().to_string();
    // And b stops: the page shows it down.
    let down = nodes.b();
    down.set_down(true).await;
    wait_until("dtc sees b down", || !dtc.sees_up(down)).await;

    let profile = tempfile::tempdir().expect("profile dir");
    // The screenshots stay for a person to look at; the browser profile does not.
    let shots = tempfile::Builder::new()
        .prefix("dtc-browser-test-")
        .tempdir()
        .expect("screenshot dir")
        .keep();
    eprintln!("screenshots in {}", shots.display());
    let browser = Browser::start(profile.path()).await;
    browser.goto(&format!("{admin}/")).await;
    // Without the token the page shows only the token field.
    let locked = browser
        .eval("return [document.body.hasAttribute('data-locked'), document.getElementById('main').textContent];")
        .await;
    assert_eq!(locked[0], true, "{locked}");
    assert!(
        locked[1].as_str().unwrap().contains("admin_token"),
        "{locked}"
    );
    browser.type_into("#token input[name=token]", TOKEN).await;
    browser.click("#token button").await;
    let row = format!("tr[data-txn=\"{txn}\"]");
    browser.find(&row).await;

    let shown = browser
        .eval(
            "return [window.pwned === undefined, \
             document.querySelectorAll('main img, main script').length, \
             document.getElementById('main').textContent];",
        )
        .await;
    assert_eq!(shown[0], true, "the hostile key ran as script");
    assert_eq!(shown[1], 0, "the hostile key became elements");
    let text = shown[2].as_str().unwrap();
    assert!(
        text.contains(&format!("group/{HOSTILE}")),
        "key shown as text: {text}"
    );
    assert!(text.contains("c: transient 500"), "per-node detail: {text}");
    assert!(text.contains("undo failed 500"), "per-node detail: {text}");
    let health = browser
        .eval("return [...document.querySelectorAll('#nodes tbody tr')].map(r => r.textContent);")
        .await;
    assert!(
        health[1].as_str().unwrap().contains("down since"),
        "b is down, since when: {health}"
    );
    assert!(
        health[1].as_str().unwrap().contains("connect failed"),
        "b's last error: {health}"
    );
    let id_wraps = browser
        .eval(&format!(
            "const c = document.querySelector({}); return c.getClientRects().length;",
            json!(format!("tr[data-txn=\"{txn}\"] code.id"))
        ))
        .await;
    assert_eq!(id_wraps, 1, "the transaction id stays on one line");
    assert!(
        health[0].as_str().unwrap().contains("up"),
        "a is up: {health}"
    );
    // The operator views of issue 27: version and uptime, the traffic columns, the rolled-back
    // list and the search by key are on the page.
    let parts = browser
        .eval(
            "return [document.getElementById('summary').textContent, \
             document.querySelector('#nodes thead').textContent, \
             document.querySelector('#rolled-back h2') !== null, \
             document.querySelector('#search form input[name=key]') !== null];",
        )
        .await;
    let summary = parts[0].as_str().unwrap();
    assert!(
        summary.contains(&format!("dtc {}, up ", env!("CARGO_PKG_VERSION"))),
        "version and uptime: {summary}"
    );
    let columns = parts[1].as_str().unwrap();
    for column in ["p50 / p99", "requests", "errors", "retries", "last error"] {
        assert!(columns.contains(column), "column {column}: {columns}");
    }
    assert_eq!(parts[2], true, "the recently rolled back section");
    assert_eq!(parts[3], true, "the search by key");
    // Searching by the hostile key finds the transaction, and its markup stays text.
    browser
        .type_into("#search input[name=key]", &format!("group/{HOSTILE}"))
        .await;
    browser.click("#search button").await;
    eventually(
        "the search lists the transaction on that key",
        DEADLINE * 2,
        Duration::from_millis(50),
        || async {
            let found = browser
                .eval(
                    "const s = document.getElementById('search'); \
                     return [location.search, s ? s.textContent : ''];",
                )
                .await;
            found[0].as_str().unwrap_or("").starts_with("?key=")
                && found[1].as_str().unwrap_or("").contains(&txn)
        },
    )
    .await;
    let ran = browser
        .eval("return [window.pwned === undefined, document.querySelectorAll('main img, main script').length];")
        .await;
    assert_eq!(ran, json!([true, 0]), "the searched key ran as markup");
    browser.goto(&format!("{admin}/")).await;
    browser.find(&row).await;
    let before = browser.screenshot().await;
    assert!(before.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    std::fs::write(shots.join("status-failed.png"), &before).unwrap();
    if let Some(dir) = std::env::var_os("DTC_SCREENSHOT_DIR") {
        std::fs::write(std::path::Path::new(&dir).join("status-page.png"), &before).unwrap();
    }

    let reason = "fixed by hand on node c";
    browser
        .type_into(&format!("input[data-reason-for=\"{txn}\"]"), reason)
        .await;
    browser
        .click(&format!("button[data-act=resolve][data-txn=\"{txn}\"]"))
        .await;
    // Twice the usual deadline, polled every 50 ms: each check is a round trip to the browser.
    let (within, every) = (DEADLINE * 2, Duration::from_millis(50));
    eventually(
        "the API shows the transaction resolved",
        within,
        every,
        || async { api(&admin, &format!("/transactions/{txn}")).await["resolution"] == reason },
    )
    .await;
    let status = api(&admin, "/status").await;
    assert_eq!(status["failed"], 0, "{status}");
    eventually("the page drops the resolved row and says so", within, every, || async {
        let page = browser
            .eval(&format!(
                "return [document.querySelector({}) === null, document.getElementById('msg').textContent];",
                json!(row)
            ))
            .await;
        page[0] == true && page[1].as_str().unwrap_or("").contains("resolved")
    })
    .await;
    let after = browser.screenshot().await;
    assert!(after.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(shots.join("status-resolved.png"), &after).unwrap();
    browser.quit().await;
}
