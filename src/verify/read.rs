//! Reading one key on every node and judging what they hold: the read the route defines
//! (`verify`, else `snapshot`), each node's answer reduced to [`Held`], and the [`Judgment`]:
//! agree, or which nodes are the odd ones and what they should hold.

use super::keys::KeyHistory;
use crate::config::template::{Context, Escape};
use crate::retry::Backoff;
use crate::runtime::Runtime;
use crate::saga::attempt::{Call, CallLimits, call_with_retries};
use crate::saga::recover::header_map;
use crate::txn::TxnState;
use crate::upstream::Node;
use bytes::Bytes;
use http::{HeaderMap, Method};
use std::sync::Arc;

/// The read of a key on a node.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    pub method: Method,
    pub path: String,
    /// The end-to-end headers (authorization and the like) journaled with the transaction the
    /// read comes from; repairs carry them too.
    pub headers: HeaderMap,
}

/// What one node holds for the key.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    /// A 2xx answer: the representation and its content type.
    Present {
        status: u16,
        body: Bytes,
        content_type: Option<String>,
    },
    /// 404 or 410.
    Absent { status: u16 },
    /// Any other answer, or none: this node's state is not known.
    Unknown { error: String },
}

impl Held {
    /// `200 crc32=1a2b3c4d`, `404`, `error (...)`: the evidence shown per node.
    pub fn describe(&self) -> String {
        match self {
            Held::Present { status, body, .. } => {
                format!(
                    "{status} crc32={:08x} {}B",
                    crc32fast::hash(body),
                    body.len()
                )
            }
            Held::Absent { status } => status.to_string(),
            Held::Unknown { error } => format!("unknown ({error})"),
        }
    }

    /// Whether the node holds what `target` says.
    pub fn matches(&self, target: &Target) -> bool {
        match (self, target) {
            (Held::Absent { .. }, Target::Absent) => true,
            (Held::Present { body, .. }, Target::Present { body: want, .. }) => body == want,
            _ => false,
        }
    }

    fn same_state(&self, other: &Held) -> bool {
        match (self, other) {
            (Held::Absent { .. }, Held::Absent { .. }) => true,
            (Held::Present { body: a, .. }, Held::Present { body: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// What the odd nodes should be brought to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Absent,
    Present {
        body: Bytes,
        content_type: Option<String>,
    },
}

impl Target {
    fn of(held: &Held) -> Option<Target> {
        match held {
            Held::Absent { .. } => Some(Target::Absent),
            Held::Present {
                body, content_type, ..
            } => Some(Target::Present {
                body: body.clone(),
                content_type: content_type.clone(),
            }),
            Held::Unknown { .. } => None,
        }
    }

    /// `absent`, or `present crc32=...`.
    pub fn describe(&self) -> String {
        match self {
            Target::Absent => "absent".into(),
            Target::Present { body, .. } => format!("present crc32={:08x}", crc32fast::hash(body)),
        }
    }
}

/// What the last transaction that changed the key left on every node, per the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journaled {
    /// A delete succeeded last.
    Absent,
    /// A create or replace succeeded last (its body is not journaled).
    Present,
}

/// The verdict on one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgment {
    /// Every node holds the same.
    Agree,
    /// Some node could not be read: nothing can be said.
    Unreadable,
    /// The nodes differ and `target` is known (`by` says from where).
    Divergent {
        odd: Vec<usize>,
        target: Target,
        by: &'static str,
    },
    /// The nodes differ and nothing says which of them is right.
    NoMajority,
    /// A majority holds something the journal's last outcome contradicts: not guessed at.
    Contradicted { majority: Target },
}

/// Judges what the nodes hold: the majority wins; without one, the journal's last outcome
/// decides when it names a single state the present nodes share; otherwise nothing is decided.
pub fn judge(held: &[Held], journaled: Option<Journaled>) -> Judgment {
    if held.iter().any(|h| matches!(h, Held::Unknown { .. })) {
        return Judgment::Unreadable;
    }
    if held.windows(2).all(|w| w[0].same_state(&w[1])) {
        return Judgment::Agree;
    }
    let majority = held
        .iter()
        .find(|h| held.iter().filter(|o| o.same_state(h)).count() * 2 > held.len());
    let target = match (majority.and_then(Target::of), journaled) {
        (Some(m), Some(j)) if !agrees(&m, j) => return Judgment::Contradicted { majority: m },
        (Some(m), _) => (m, "majority"),
        (None, Some(Journaled::Absent)) => (Target::Absent, "journal"),
        (None, Some(Journaled::Present)) => {
            let mut present = held.iter().filter(|h| matches!(h, Held::Present { .. }));
            let first = present.next().expect("nodes differ, so one is present");
            if !present.all(|h| h.same_state(first)) {
                return Judgment::NoMajority;
            }
            (Target::of(first).expect("present"), "journal")
        }
        (None, None) => return Judgment::NoMajority,
    };
    let odd = (0..held.len())
        .filter(|&i| !held[i].matches(&target.0))
        .collect();
    Judgment::Divergent {
        odd,
        target: target.0,
        by: target.1,
    }
}

fn agrees(t: &Target, j: Journaled) -> bool {
    matches!(
        (t, j),
        (Target::Absent, Journaled::Absent) | (Target::Present { .. }, Journaled::Present)
    )
}

/// The outcome of the newest transaction on the key that changed every node (`succeeded`);
/// those that changed nothing (rejected, to be retried, rolled back) are looked past.
pub fn journaled(history: &KeyHistory) -> Option<Journaled> {
    let last = history
        .txns
        .iter()
        .find(|e| e.state == TxnState::Succeeded)?;
    Some(if last.begin.method == "DELETE" {
        Journaled::Absent
    } else {
        Journaled::Present
    })
}

/// The read of the key: a journaled `verify` read-back, else the route's `snapshot` read
/// rendered from the write's path. `None` when the key's routes define neither.
pub fn plan(rt: &Runtime, history: &KeyHistory) -> Option<ReadPlan> {
    let from_verify = history.txns.iter().find_map(|e| {
        let v = e.begin.verify.as_ref()?;
        Some(ReadPlan {
            method: Method::from_bytes(v.method.as_bytes()).ok()?,
            path: v.path.clone(),
            headers: header_map(&e.begin.headers),
        })
    });
    from_verify.or_else(|| {
        history.txns.iter().find_map(|e| {
            let route = rt
                .settings
                .routes
                .iter()
                .find(|r| Some(&r.name) == e.begin.route.as_ref())?;
            let rule = route.snapshot.as_ref()?;
            let path = e.begin.path.split('?').next().unwrap_or("/");
            let path = match &rule.path {
                None => path.to_string(),
                Some(t) => {
                    let params = route.pattern.matches(path)?;
                    let ctx = Context {
                        params: &params,
                        ..Context::default()
                    };
                    t.render(&ctx, Escape::Path).ok()?
                }
            };
            Some(ReadPlan {
                method: rule.method.clone(),
                path,
                headers: header_map(&e.begin.headers),
            })
        })
    })
}

/// Reads the key on `node`, retried under the config's policy.
pub async fn read(rt: &Runtime, node: &Arc<Node>, plan: &ReadPlan) -> Held {
    let call = Call {
        node,
        method: plan.method.clone(),
        path_and_query: plan.path.clone(),
        headers: plan.headers.clone(),
        body: Bytes::new(),
        already: &[404, 410],
    };
    let limits = CallLimits {
        attempt_timeout: rt.settings.config.timeouts.attempt,
        max_body: rt.settings.config.limits.max_body,
    };
    let r = call_with_retries(&call, &Backoff::from(&rt.settings.config.retry), limits).await;
    match r.answer {
        Ok(resp) if resp.status.is_success() => Held::Present {
            status: resp.status.as_u16(),
            content_type: resp
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            body: resp.body,
        },
        Ok(resp) if matches!(resp.status.as_u16(), 404 | 410) => Held::Absent {
            status: resp.status.as_u16(),
        },
        Ok(resp) => Held::Unknown {
            error: format!("answered {}", resp.status.as_u16()),
        },
        Err(e) => Held::Unknown {
            error: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(body: &str) -> Held {
        Held::Present {
            status: 200,
            body: Bytes::from(body.to_string()),
            content_type: None,
        }
    }
    const ABSENT: Held = Held::Absent { status: 404 };

    #[test]
    fn the_majority_names_the_odd_node() {
        let held = [present("x"), ABSENT, present("x")];
        match judge(&held, Some(Journaled::Present)) {
            Judgment::Divergent { odd, by, target } => {
                assert_eq!((odd, by), (vec![1], "majority"));
                assert!(matches!(target, Target::Present { .. }));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(judge(&[ABSENT, ABSENT], None), Judgment::Agree);
    }

    #[test]
    fn without_a_majority_only_the_journal_decides_and_never_by_guessing_a_body() {
        let split = [present("x"), ABSENT];
        assert_eq!(judge(&split, None), Judgment::NoMajority);
        assert!(matches!(
            judge(&split, Some(Journaled::Absent)),
            Judgment::Divergent { by: "journal", ref odd, .. } if odd == &vec![0]
        ));
        assert!(matches!(
            judge(&split, Some(Journaled::Present)),
            Judgment::Divergent { by: "journal", ref odd, .. } if odd == &vec![1]
        ));
        let three = [present("x"), present("y"), ABSENT];
        assert_eq!(
            judge(&three, Some(Journaled::Present)),
            Judgment::NoMajority
        );
    }

    #[test]
    fn a_majority_the_journal_contradicts_is_not_repaired_and_an_unread_node_stops_all() {
        let held = [ABSENT, ABSENT, present("x")];
        assert!(matches!(
            judge(&held, Some(Journaled::Present)),
            Judgment::Contradicted { .. }
        ));
        let unread = [
            present("x"),
            Held::Unknown {
                error: "down".into(),
            },
            ABSENT,
        ];
        assert_eq!(judge(&unread, None), Judgment::Unreadable);
    }
}
