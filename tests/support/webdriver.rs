//! A headless Chromium driven over the W3C WebDriver protocol (chromedriver), with the few
//! commands the status-page test needs. The protocol is JSON over HTTP, so this speaks it with
//! the tests' hyper client instead of pulling in a WebDriver crate and its own HTTP stack.

use super::{Answer, client, request, send_with};
use http::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key under which WebDriver answers an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether Chromium and chromedriver are installed here.
pub fn available() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

/// One browser session; chromedriver (and with it Chromium) is killed when this drops.
pub struct Browser {
    base: String,
    _driver: Child,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium with a fresh
    /// profile in `profile` (the network is closed: nothing phones home).
    pub async fn start(profile: &Path) -> Browser {
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let mut lines = BufReader::new(driver.stdout.take().expect("chromedriver stdout")).lines();
        let port = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.expect("read chromedriver") {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').parse::<u16>().expect("a port");
                }
            }
            panic!("chromedriver exited before it listened");
        })
        .await
        .expect("chromedriver listens within 20s");
        // Keep reading, so chromedriver never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut browser = Browser {
            base: format!("http://127.0.0.1:{port}"),
            _driver: driver,
        };
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let session = browser.call(Method::POST, "/session", Some(caps)).await;
        let id = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let text = body.map(|b| b.to_string());
        let url = format!("{}{path}", self.base);
        let req = request(method.clone(), &url, text.as_deref(), &[]);
        let answer: Answer =
            tokio::time::timeout(Duration::from_secs(60), send_with(&client(false), req))
                .await
                .unwrap_or_else(|_| panic!("webdriver {method} {path}: no answer within 60s"))
                .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e:?}"));
        let (status, bytes) = (answer.status(), answer.body());
        let value: Value = serde_json::from_slice(bytes).expect("webdriver answers JSON");
        assert!(
            status.is_success(),
            "webdriver {method} {path}: {status} {value}"
        );
        value["value"].clone()
    }

    /// Loads `url` and waits for it.
    pub async fn goto(&self, url: &str) {
        self.call(Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.call(Method::POST, "/execute/sync", Some(body)).await
    }

    /// The element `css` selects, polling until it appears (within `super::DEADLINE` × 2).
    pub async fn find(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + super::DEADLINE * 2;
        loop {
            let found = self
                .eval(&format!(
                    "return document.querySelector({}) !== null;",
                    json!(css)
                ))
                .await;
            if found == json!(true) {
                let body = json!({"using": "css selector", "value": css});
                let el = self.call(Method::POST, "/element", Some(body)).await;
                return el[ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("no element id in {el}"))
                    .to_string();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for `{css}` on the page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the element `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        let body = json!({"text": text});
        self.call(Method::POST, &format!("/element/{el}/value"), Some(body))
            .await;
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call(
            Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let b64 = self.call(Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64 text"))
            .expect("a base64 PNG")
    }

    /// Ends the session (Chromium exits).
    pub async fn quit(self) {
        let _ = self.call(Method::DELETE, "", None).await;
    }
}
