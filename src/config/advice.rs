//! Advice on a valid config: settings that work, but may not do what their author expects.
//! `dtc check` prints it and `dtc run` logs it at start; none of it stops dtc.

use super::{Settings, Unmatched};
use http::Method;

/// One warning per thing worth a second look, naming the field.
pub fn advice(s: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (r, cfg)) in s.routes.iter().zip(&s.config.routes).enumerate() {
        let at = format!("routes[{i}] (`{}`)", r.name);
        if r.verify.is_none() {
            out.push(format!(
                "{at}: no `verify`: where a node's answer is lost (a timeout, a 5xx, a crash) dtc cannot read the resource back, so such a write ends `failed` (listed, fenced) until the re-drive or a person decides it"
            ));
        }
        if cfg.key.is_none() && r.method == Method::POST && r.id.is_none() {
            out.push(format!(
                "{at}: a create without `key` and without `id`: if the nodes assign the new resource's id, they may assign different ones and later reads and writes by id reach different resources: declare `id` (see docs/ids.md)"
            ));
        }
        if cfg.key.is_none() && r.method == Method::POST {
            out.push(format!(
                "{at}: no `key`: each request gets a key of its own, so two POSTs here are not ordered against each other; declare `key` if two can touch one resource"
            ));
        }
        if !r.resend && r.verify.is_none() {
            out.push(format!(
                "{at}: not idempotent and no `verify`: after an attempt whose outcome is unknown the write is not sent to that node again; declare `idempotent` (`already`, `replace`, `key`) if a second copy is harmless"
            ));
        }
    }
    let keyed: Vec<&str> = s
        .routes
        .iter()
        .filter(|r| r.key.is_some())
        .map(|r| r.name.as_str())
        .collect();
    if s.unmatched() == Unmatched::Replicate && !keyed.is_empty() {
        out.push(format!(
            "writes.unmatched = \"replicate\": a write no route names is keyed by its path, so it does not wait for writes to the same resource through {} (keyed by their `key`); set `unmatched = \"refuse\"` or add a route",
            keyed.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_config_needs_no_advice_and_a_bare_create_does() {
        let shipped = super::super::parse(super::super::DEFAULT_CONFIG, "dtc.toml").unwrap();
        assert_eq!(super::advice(&shipped), Vec::<String>::new());
        let bare = super::super::parse(
            "[[nodes]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\n[[routes]]\nmethod = \"POST\"\npath = \"/items\"\n[writes]\nunmatched = \"replicate\"\n[[routes]]\nmethod = \"DELETE\"\npath = \"/items/{id}\"\nkey = \"item/{id}\"\nverify = { path = \"/items/{id}\", prior = [200] }\n",
            "t",
        )
        .unwrap();
        let said = super::advice(&bare).join("\n");
        for expected in [
            "no `verify`",
            "no `key`",
            "not idempotent",
            "writes.unmatched",
        ] {
            assert!(said.contains(expected), "{expected}: {said}");
        }
    }
}
