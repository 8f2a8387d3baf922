//! What a reload changes: the diff between the running [`Settings`] and the next ones, and the
//! restart-only settings that a reload keeps at their running values.
//!
//! The diff names nodes (added, removed, changed URL) and the sections whose values differ, so a
//! reload logs one line an operator can read. It never decides anything about node identity:
//! [`crate::upstream::NodeSet::build`] does, by name, URL and connect timeout.

use super::Settings;

/// Settings that only take effect at start: a reload keeps their running values.
///
/// The listeners are bound once (a rebind would have to hand over established client
/// connections), the worker count sizes the Tokio runtime, and the journal directory holds
/// the open journal, `[cluster]` the store's connections and leases, and `[tracing]` the
/// span exporter. Changing them needs a
/// restart; everything else reloads live.
pub(crate) const RESTART_ONLY: [&str; 14] = [
    "listen.address",
    "listen.admin",
    "listen.workers",
    "journal.dir",
    "journal.durability",
    "journal.keep_finished",
    "limits.max_connections",
    "limits.max_header_bytes",
    "timeouts.header_read",
    "limits.max_headers",
    "timeouts.idle",
    "cluster",
    "tracing",
    "journal.segment_bytes",
];

/// How the next settings differ from the running ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConfigDiff {
    /// Node names only in the next settings.
    pub nodes_added: Vec<String>,
    /// Node names only in the running settings.
    pub nodes_removed: Vec<String>,
    /// Node names in both whose URL differs (a new node behind the same name).
    pub nodes_changed: Vec<String>,
    /// Top-level sections whose values differ: `retry`, `timeouts`, `limits`, `health`,
    /// `routes`, `writes`, `reads`, `alerts`, `journal`, `verify`, `listen`, and `nodes` when only the
    /// node order changed.
    pub sections: Vec<&'static str>,
}

impl ConfigDiff {
    /// The diff from `old` to `new`.
    pub(crate) fn between(old: &Settings, new: &Settings) -> ConfigDiff {
        let names = |s: &Settings| s.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>();
        let (old_names, new_names) = (names(old), names(new));
        let nodes_added = except(&new_names, &old_names);
        let nodes_removed = except(&old_names, &new_names);
        let nodes_changed = new
            .nodes
            .iter()
            .filter(|n| old.nodes.iter().any(|o| o.name == n.name && o.url != n.url))
            .map(|n| n.name.clone())
            .collect::<Vec<_>>();
        let (o, n) = (&old.config, &new.config);
        let reordered = nodes_added.is_empty()
            && nodes_removed.is_empty()
            && nodes_changed.is_empty()
            && o.nodes != n.nodes;
        let sections = [
            ("nodes", reordered),
            ("retry", o.retry != n.retry),
            ("timeouts", o.timeouts != n.timeouts),
            ("limits", o.limits != n.limits),
            ("health", o.health != n.health),
            ("routes", o.routes != n.routes),
            ("writes", o.writes != n.writes),
            ("reads", o.reads != n.reads),
            ("alerts", o.alerts != n.alerts),
            ("journal", o.journal != n.journal),
            ("verify", o.verify != n.verify),
            ("listen", o.listen != n.listen),
            ("cluster", o.cluster != n.cluster),
            ("tls", o.tls != n.tls),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        ConfigDiff {
            nodes_added,
            nodes_removed,
            nodes_changed,
            sections,
        }
    }

    /// Whether nothing differs.
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes_added.is_empty()
            && self.nodes_removed.is_empty()
            && self.nodes_changed.is_empty()
            && self.sections.is_empty()
    }
}

/// Resets the [`RESTART_ONLY`] settings of `next` to their values in `running`, and returns the
/// ones that differed (so the caller can say that they need a restart).
pub(crate) fn keep_restart_only(running: &Settings, next: &mut Settings) -> Vec<&'static str> {
    let (old, new) = (&running.config, &mut next.config);
    let mut kept = Vec::new();
    if new.listen.address != old.listen.address {
        kept.push(RESTART_ONLY[0]);
        new.listen.address.clone_from(&old.listen.address);
    }
    if new.listen.admin != old.listen.admin {
        kept.push(RESTART_ONLY[1]);
        new.listen.admin.clone_from(&old.listen.admin);
    }
    if new.listen.workers != old.listen.workers {
        kept.push(RESTART_ONLY[2]);
        new.listen.workers = old.listen.workers;
    }
    if new.journal.dir != old.journal.dir {
        kept.push(RESTART_ONLY[3]);
        new.journal.dir.clone_from(&old.journal.dir);
    }
    // The journal opens its log, and the listener builds its connection settings, once.
    if new.journal.durability != old.journal.durability {
        kept.push(RESTART_ONLY[4]);
        new.journal.durability = old.journal.durability;
    }
    if new.journal.keep_finished != old.journal.keep_finished {
        kept.push(RESTART_ONLY[5]);
        new.journal.keep_finished = old.journal.keep_finished;
    }
    if new.limits.max_connections != old.limits.max_connections {
        kept.push(RESTART_ONLY[6]);
        new.limits.max_connections = old.limits.max_connections;
    }
    if new.limits.max_header_bytes != old.limits.max_header_bytes {
        kept.push(RESTART_ONLY[7]);
        new.limits.max_header_bytes = old.limits.max_header_bytes;
    }
    if new.timeouts.header_read != old.timeouts.header_read {
        kept.push(RESTART_ONLY[8]);
        new.timeouts.header_read = old.timeouts.header_read;
    }
    if new.limits.max_headers != old.limits.max_headers {
        kept.push(RESTART_ONLY[9]);
        new.limits.max_headers = old.limits.max_headers;
    }
    if new.timeouts.idle != old.timeouts.idle {
        kept.push(RESTART_ONLY[10]);
        new.timeouts.idle = old.timeouts.idle;
    }
    if new.cluster != old.cluster {
        kept.push(RESTART_ONLY[11]);
        new.cluster.clone_from(&old.cluster);
    }
    // The exporter and its thread are built once, at start.
    if new.tracing != old.tracing {
        kept.push(RESTART_ONLY[12]);
        new.tracing.clone_from(&old.tracing);
    }
    // The journal's writer is built with its segment size once.
    if new.journal.segment_bytes != old.journal.segment_bytes {
        kept.push(RESTART_ONLY[13]);
        new.journal.segment_bytes = old.journal.segment_bytes;
    }
    next.listen = running.listen;
    next.admin = running.admin;
    kept
}

/// The names of `a` that are not in `b`, in `a`'s order.
fn except(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn settings(body: &str) -> Settings {
        parse(body, "test").expect("valid test config")
    }

    fn nodes(list: &[(&str, u16)]) -> String {
        list.iter()
            .map(|(name, port)| {
                format!("[[nodes]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}\"\n")
            })
            .collect()
    }

    #[test]
    fn names_added_removed_and_changed_nodes() {
        let old = settings(&nodes(&[("a", 1), ("b", 2), ("c", 3)]));
        let new = settings(&nodes(&[("a", 1), ("b", 9), ("d", 4)]));
        let diff = ConfigDiff::between(&old, &new);
        assert_eq!(diff.nodes_added, ["d"]);
        assert_eq!(diff.nodes_removed, ["c"]);
        assert_eq!(diff.nodes_changed, ["b"]);
        assert!(diff.sections.is_empty(), "{:?}", diff.sections);
    }

    #[test]
    fn names_changed_sections_and_a_reorder() {
        let base = nodes(&[("a", 1), ("b", 2)]);
        let old = settings(&base);
        let new = settings(&format!(
            "{}[retry]\nattempts = 7\n[health]\npath = \"\"\n",
            nodes(&[("b", 2), ("a", 1)])
        ));
        let diff = ConfigDiff::between(&old, &new);
        assert_eq!(diff.sections, ["nodes", "retry", "health"]);
        assert!(ConfigDiff::between(&old, &settings(&base)).is_empty());
    }

    #[test]
    fn restart_only_settings_keep_their_running_values() {
        let base = nodes(&[("a", 1)]);
        let running = settings(&base);
        let mut next = settings(&format!(
            "[listen]\naddress = \"127.0.0.1:7\"\nadmin = \"\"\nworkers = 3\n\
             [journal]\ndir = \"/elsewhere\"\ndurability = \"fsync\"\nkeep_finished = 5\n\
             segment_bytes = 1048576\n\
             [limits]\nmax_connections = 2\nmax_header_bytes = 9000\nmax_headers = 7\n\
             [timeouts]\nheader_read = \"1s\"\nidle = \"3s\"\n[retry]\nattempts = 9\n\
             [cluster]\ndatabase_url = \"postgresql://dtc@127.0.0.1:1/dtc\"\n\
             [tracing]\nsample_ratio = 0.5\n{base}"
        ));
        let kept = keep_restart_only(&running, &mut next);
        assert_eq!(kept, RESTART_ONLY);
        assert_eq!(next.config.listen, running.config.listen);
        assert_eq!(next.config.journal, running.config.journal);
        assert_eq!(next.config.limits, running.config.limits);
        assert_eq!(next.config.timeouts, running.config.timeouts);
        assert_eq!(next.config.cluster, None);
        assert_eq!(next.config.tracing, running.config.tracing);
        assert_eq!((next.listen, next.admin), (running.listen, running.admin));
        assert_eq!(next.config.retry.attempts, 9);
        assert_eq!(ConfigDiff::between(&running, &next).sections, ["retry"]);
    }
}
