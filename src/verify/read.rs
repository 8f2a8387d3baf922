//! Reading one key on every node and judging what they hold: the read the route defines
//! (`verify`, else `snapshot`), each node's answer reduced to [`Held`], and the [`Judgment`]:
//! agree, or which nodes are the odd ones and what they should hold.
//!
//! The judgment rests on the key's last acknowledged write ([`journaled`]): it wins, and a
//! majority never outvotes it. A majority that holds something else is listed, not repaired;
//! among nodes holding different bodies, the one holding the last acknowledged write's body (by
//! its hash) is the target; when nothing tells which body is the newest, the key is listed.
//! Only a key with no acknowledged write in the journal goes by the majority.

use super::keys::KeyHistory;
use crate::config::template::{Context, Escape};
use crate::journal::record::body_hash;
use crate::runtime::Runtime;
use crate::saga::readback::fetch;
use crate::saga::recover::header_map;
use crate::txn::TxnState;
use crate::upstream::Node;
use bytes::Bytes;
use http::{HeaderMap, Method};
use std::sync::Arc;

/// The read of a key on a node.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ReadPlan {
    pub method: Method,
    pub path: String,
    /// The end-to-end headers (authorization and the like) journaled with the transaction the
    /// read comes from; repairs carry them too.
    pub headers: HeaderMap,
    /// Per node, `path` in that node's own ids, when the resource's id is mapped and the
    /// journal kept them with the read-back (empty otherwise).
    pub node_paths: Vec<String>,
}

/// What one node holds for the key.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Held {
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
    pub(super) fn describe(&self) -> String {
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
    pub(super) fn matches(&self, target: &Target) -> bool {
        match (self, target) {
            (Held::Absent { .. }, Target::Absent) => true,
            (Held::Present { body, .. }, Target::Present { body: want, .. }) => body == want,
            _ => false,
        }
    }

    /// [`body_hash`] of what a present node holds.
    fn hash(&self) -> Option<u32> {
        match self {
            Held::Present { body, .. } => Some(body_hash(body)),
            _ => None,
        }
    }

    /// Whether two nodes hold the same: both absent, or the same representation.
    pub(super) fn same_state(&self, other: &Held) -> bool {
        match (self, other) {
            (Held::Absent { .. }, Held::Absent { .. }) => true,
            (Held::Present { body: a, .. }, Held::Present { body: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// What the odd nodes should be brought to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Target {
    Absent,
    Present {
        body: Bytes,
        content_type: Option<String>,
    },
}

impl Target {
    /// What `held` is, as a target for another node (`None` when it is not known).
    pub(super) fn of(held: &Held) -> Option<Target> {
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
    pub(super) fn describe(&self) -> String {
        match self {
            Target::Absent => "absent".into(),
            Target::Present { body, .. } => format!("present crc32={:08x}", crc32fast::hash(body)),
        }
    }
}

/// What the last transaction that changed the key left on every node, per the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Journaled {
    /// A delete succeeded last.
    Absent,
    /// A create or replace succeeded last, with the hash of its body when journaled.
    Present { hash: Option<u32> },
}

/// The verdict on one key.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Judgment {
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

/// Judges what the nodes hold against the last acknowledged write (see the module docs).
pub(super) fn judge(held: &[Held], journaled: Option<Journaled>) -> Judgment {
    if held.iter().any(|h| matches!(h, Held::Unknown { .. })) {
        return Judgment::Unreadable;
    }
    if held.windows(2).all(|w| w[0].same_state(&w[1])) {
        return Judgment::Agree;
    }
    let majority = held
        .iter()
        .find(|h| held.iter().filter(|o| o.same_state(h)).count() * 2 > held.len());
    let (target, by) = match journaled {
        None => match majority.and_then(Target::of) {
            Some(m) => (m, "majority"),
            None => return Judgment::NoMajority,
        },
        Some(Journaled::Absent) => (Target::Absent, LAST_ACKNOWLEDGED),
        Some(Journaled::Present { hash }) => match acknowledged_body(held, hash) {
            Some(t) => (t, LAST_ACKNOWLEDGED),
            // Present nodes hold different bodies and none is the last acknowledged one.
            None => return Judgment::NoMajority,
        },
    };
    if let Some(m) = majority
        && !m.matches(&target)
    {
        let majority = Target::of(m).expect("a majority is present or absent");
        return Judgment::Contradicted { majority };
    }
    let odd = (0..held.len())
        .filter(|&i| !held[i].matches(&target))
        .collect();
    Judgment::Divergent { odd, target, by }
}

/// Whether `target` contradicts what the key's last acknowledged write left (`journaled`):
/// absent where a create or replace succeeded last, or present where a delete did. A body is
/// not judged by its hash here: a node's representation need not be the body written, and
/// [`judge`] too uses the hash only to choose among bodies that differ.
pub(super) fn contradicts(target: &Target, journaled: Option<Journaled>) -> bool {
    matches!(
        (journaled, target),
        (Some(Journaled::Absent), Target::Present { .. })
            | (Some(Journaled::Present { .. }), Target::Absent)
    )
}

/// How a target decided by the key's last acknowledged write is labelled.
const LAST_ACKNOWLEDGED: &str = "last acknowledged write";

/// The body the last acknowledged create or replace left: the one whose hash it journaled, else
/// the one every present node shares; `None` when the present nodes differ and none matches.
fn acknowledged_body(held: &[Held], hash: Option<u32>) -> Option<Target> {
    if let Some(h) = hash
        && let Some(found) = held.iter().find(|x| x.hash() == Some(h))
    {
        return Target::of(found);
    }
    let mut present = held.iter().filter(|h| matches!(h, Held::Present { .. }));
    let first = present.next()?;
    present
        .all(|h| h.same_state(first))
        .then(|| Target::of(first))?
}

/// The outcome of the newest transaction on the key that changed every node (`succeeded`);
/// those that changed nothing (rejected, to be retried, rolled back) are looked past.
pub(super) fn journaled(history: &KeyHistory) -> Option<Journaled> {
    let last = history
        .txns
        .iter()
        .find(|e| e.state == TxnState::Succeeded)?;
    Some(if last.begin.method == Method::DELETE {
        Journaled::Absent
    } else {
        Journaled::Present {
            hash: last.begin.body_hash,
        }
    })
}

/// The read of the key: a journaled `verify` read-back, else the route's `snapshot` read
/// rendered from the write's path. `None` when the key's routes define neither.
pub(super) fn plan(rt: &Runtime, history: &KeyHistory) -> Option<ReadPlan> {
    let from_verify = history.txns.iter().find_map(|e| {
        let v = e.begin.verify.as_ref()?;
        Some(ReadPlan {
            method: v.method.clone(),
            path: v.path.clone(),
            headers: header_map(&e.begin.headers),
            node_paths: v.node_paths.clone(),
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
                node_paths: Vec::new(),
            })
        })
    })
}

/// Reads the key on `node`, retried under the config's policy.
pub(super) async fn read(rt: &Runtime, node: &Arc<Node>, plan: &ReadPlan) -> Held {
    let answer = fetch(rt, node, &plan.method, &plan.path, &plan.headers).await;
    match answer {
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
    fn the_last_acknowledged_write_names_the_odd_node() {
        let held = [present("x"), ABSENT, present("x")];
        match judge(&held, Some(Journaled::Present { hash: None })) {
            Judgment::Divergent { odd, by, target } => {
                assert_eq!((odd, by), (vec![1], LAST_ACKNOWLEDGED));
                assert!(matches!(target, Target::Present { .. }));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(judge(&[ABSENT, ABSENT], None), Judgment::Agree);
    }

    #[test]
    fn a_backfill_source_contradicts_the_journal_only_by_presence() {
        let x = Target::of(&present("x")).unwrap();
        assert!(contradicts(&x, Some(Journaled::Absent)));
        assert!(contradicts(
            &Target::Absent,
            Some(Journaled::Present { hash: Some(1) })
        ));
        // A representation need not be the body written: its hash decides nothing here.
        assert!(!contradicts(&x, Some(Journaled::Present { hash: Some(1) })));
        assert!(!contradicts(&Target::Absent, Some(Journaled::Absent)));
        assert!(!contradicts(&x, None));
    }

    #[test]
    fn without_an_acknowledged_write_only_a_majority_decides() {
        let split = [present("x"), ABSENT];
        assert_eq!(judge(&split, None), Judgment::NoMajority);
        assert!(matches!(
            judge(&[present("x"), ABSENT, ABSENT], None),
            Judgment::Divergent { by: "majority", ref odd, .. } if odd == &vec![0]
        ));
        assert!(matches!(
            judge(&split, Some(Journaled::Absent)),
            Judgment::Divergent { by: LAST_ACKNOWLEDGED, ref odd, .. } if odd == &vec![0]
        ));
        assert!(matches!(
            judge(&split, Some(Journaled::Present { hash: None })),
            Judgment::Divergent { by: LAST_ACKNOWLEDGED, ref odd, .. } if odd == &vec![1]
        ));
        let three = [present("x"), present("y"), ABSENT];
        assert_eq!(
            judge(&three, Some(Journaled::Present { hash: None })),
            Judgment::NoMajority
        );
    }

    #[test]
    fn the_body_of_the_last_acknowledged_write_wins_but_a_majority_against_it_is_listed() {
        let y = Some(body_hash(b"{\"v\": 2}"));
        let three = [
            present("{\"v\":1}"),
            present("{\"v\":3}"),
            present("{\"v\":2}"),
        ];
        assert!(matches!(
            judge(&three, Some(Journaled::Present { hash: y })),
            Judgment::Divergent { ref odd, .. } if odd == &vec![0, 1]
        ));
        let older = [
            present("{\"v\":1}"),
            present("{\"v\":1}"),
            present("{\"v\":2}"),
        ];
        assert!(matches!(
            judge(&older, Some(Journaled::Present { hash: y })),
            Judgment::Contradicted { .. }
        ));
        let none = [present("{\"v\":1}"), present("{\"v\":3}"), ABSENT];
        assert_eq!(
            judge(&none, Some(Journaled::Present { hash: y })),
            Judgment::NoMajority
        );
    }

    #[test]
    fn a_majority_the_journal_contradicts_is_not_repaired_and_an_unread_node_stops_all() {
        let held = [ABSENT, ABSENT, present("x")];
        assert!(matches!(
            judge(&held, Some(Journaled::Present { hash: None })),
            Judgment::Contradicted { .. }
        ));
        assert!(matches!(
            judge(
                &[ABSENT, present("x"), present("x")],
                Some(Journaled::Absent)
            ),
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
