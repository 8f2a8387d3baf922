//! The health state machine on paused time: what marks a node down, and how fast it comes back.

use super::*;

fn cfg() -> HealthConfig {
    HealthConfig::default()
}

fn refused() -> Reach {
    Reach::Unreachable("connect failed: connection refused".into())
}

/// Records `n` calls sent now with `reach`.
fn calls(h: &Health, n: usize, reach: &Reach) {
    for _ in 0..n {
        h.record(reach, Instant::now(), &cfg());
    }
}

/// Marks `h` down with refused calls; returns when that happened.
fn take_down(h: &Health) -> Instant {
    calls(h, 3, &refused());
    assert!(!h.is_up());
    Instant::now()
}

#[tokio::test(start_paused = true)]
async fn answers_of_any_status_and_resets_never_mark_a_node_down() {
    let h = Health::default();
    // A node answering 500 to every other call and resetting a third of the connections is
    // talking: `Reached` and `Unclear` only.
    for i in 0..10_000 {
        let reach = if i % 3 == 0 {
            Reach::Unclear
        } else {
            Reach::Reached
        };
        h.record(&reach, Instant::now(), &cfg());
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    assert!(h.is_up());
    assert_eq!(h.view().state, "up");
}

#[tokio::test(start_paused = true)]
async fn refused_connections_mark_it_down_once_they_are_the_share_of_the_window() {
    let h = Health::default();
    calls(&h, 10, &Reach::Reached);
    // Three refusals against ten answers in the window: 23 %, below `failure_rate`.
    calls(&h, 3, &refused());
    assert!(
        h.is_up(),
        "a few refusals among many answers are not an outage"
    );
    // An answer between them: not in a row (that rule has its own test).
    calls(&h, 1, &Reach::Reached);
    // The answers age out of the window; refusals keep coming.
    tokio::time::advance(cfg().window).await;
    h.record(&refused(), Instant::now(), &cfg());
    assert!(h.is_up(), "one refusal is below unhealthy_threshold");
    calls(&h, 2, &refused());
    assert!(!h.is_up(), "three refusals, all the window holds");
    let v = h.view();
    assert_eq!(v.state, "down");
    assert!(v.down_since.is_some());
    let reason = v.reason.unwrap();
    assert!(
        reason.contains("3 of 3 calls") && reason.contains("connection refused"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn attempt_timeouts_count_like_refusals_and_a_lone_one_does_not_trip() {
    let h = Health::default();
    let timeout = Reach::Unreachable("no answer within 2s".into());
    calls(&h, 2, &timeout);
    assert!(h.is_up());
    calls(&h, 1, &timeout);
    assert!(!h.is_up());
}

#[tokio::test(start_paused = true)]
async fn without_probes_a_node_is_never_marked_down() {
    let h = Health::default();
    let off = HealthConfig {
        path: String::new(),
        ..cfg()
    };
    for _ in 0..100 {
        h.record(&refused(), Instant::now(), &off);
    }
    assert!(h.is_up());
}

#[tokio::test(start_paused = true)]
async fn a_returning_node_is_used_within_the_half_open_schedule() {
    let h = Health::default();
    let down_at = take_down(&h);
    let c = cfg();
    // The node stays away for 3 s; each trial the probe loop is given fails.
    let returns_at = down_at + Duration::from_secs(3);
    let mut trials = Vec::new();
    loop {
        match h.poll(&c) {
            Step::Wait(until) => tokio::time::sleep_until(until).await,
            Step::Probe => {
                let now = Instant::now();
                trials.push(now - down_at);
                let reach = if now >= returns_at {
                    Reach::Reached
                } else {
                    refused()
                };
                h.record(&reach, now, &c);
                h.probed(&reach, &c);
                if h.is_up() {
                    break;
                }
            }
        }
    }
    let back = Instant::now() - returns_at;
    assert!(
        back <= c.trial_max,
        "up {back:?} after the node returned; trials at {trials:?}"
    );
    assert!(
        trials[0] <= c.trial_initial,
        "the first trial comes well under a second: {trials:?}"
    );
    let gaps: Vec<Duration> = trials.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g <= c.trial_max),
        "never more than trial_max between trials: {gaps:?}"
    );
    assert!(
        gaps.first() < gaps.last(),
        "the wait grows after failed trials: {gaps:?}"
    );
    assert_eq!(h.view().state, "up");
}

#[tokio::test(start_paused = true)]
async fn answers_to_calls_sent_before_the_node_went_down_change_nothing() {
    let h = Health::default();
    let before = Instant::now();
    tokio::time::advance(Duration::from_millis(10)).await;
    take_down(&h);
    h.record(&Reach::Reached, before, &cfg());
    assert!(!h.is_up(), "a straggler's answer is not a trial");
    h.record(&Reach::Reached, Instant::now(), &cfg());
    assert!(h.is_up(), "a call sent after it went down reached it");
}

#[tokio::test(start_paused = true)]
async fn a_write_is_refused_until_the_trial_is_due_then_one_undoable_write_is_the_trial() {
    let h = Health::default();
    take_down(&h);
    let c = cfg();
    match h.admit_write(true, &c) {
        Admission::Refused(wait) => assert!(wait <= c.trial_initial, "{wait:?}"),
        other => panic!("{other:?}"),
    }
    tokio::time::advance(c.trial_initial).await;
    assert!(
        matches!(h.admit_write(false, &c), Admission::Refused(_)),
        "a write that cannot be undone is never the trial"
    );
    assert_eq!(h.admit_write(true, &c), Admission::Trial);
    assert_eq!(h.view().state, "half_open");
    assert!(
        matches!(h.admit_write(true, &c), Admission::Refused(_)),
        "one trial at a time"
    );
    // The trial write finds the node still gone: down again, the next trial later.
    h.record(&refused(), Instant::now(), &c);
    let v = h.view();
    assert_eq!((v.state, v.failed_trials), ("down", 1));
    assert!(v.next_trial_in.unwrap() <= c.trial_initial * 2);
    assert!(v.reason.unwrap().contains("last trial"));
    // The next trial reaches it.
    tokio::time::advance(c.trial_initial * 2).await;
    assert_eq!(h.admit_write(true, &c), Admission::Trial);
    h.record(&Reach::Reached, Instant::now(), &c);
    assert_eq!(h.admit_write(false, &c), Admission::Up);
}

#[tokio::test(start_paused = true)]
async fn a_trial_write_that_never_answers_fails_after_the_health_timeout() {
    let h = Health::default();
    take_down(&h);
    let c = cfg();
    tokio::time::advance(c.trial_initial).await;
    assert_eq!(h.admit_write(true, &c), Admission::Trial);
    // The write was refused for another reason after it claimed the trial: no evidence comes.
    assert_eq!(h.poll(&c), Step::Wait(Instant::now() + c.timeout));
    tokio::time::advance(c.timeout).await;
    assert!(matches!(h.poll(&c), Step::Wait(_)));
    let v = h.view();
    assert_eq!((v.state, v.failed_trials), ("down", 1));
    assert!(
        v.reason
            .unwrap()
            .contains("no answer within health.timeout")
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_node_that_died_is_found_by_probes_within_a_second() {
    let h = Health::default();
    let c = cfg();
    let died = Instant::now();
    while h.is_up() {
        match h.poll(&c) {
            Step::Wait(until) => tokio::time::sleep_until(until).await,
            Step::Probe => {
                h.record(&refused(), Instant::now(), &c);
                h.probed(&refused(), &c);
            }
        }
    }
    assert!(
        Instant::now() - died < Duration::from_secs(1),
        "{:?}",
        Instant::now() - died
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_node_that_goes_away_is_down_after_refusals_in_a_row_though_its_answers_fill_the_window()
 {
    let h = Health::default();
    // A second of traffic answered, then the node goes: its answers are still in the window.
    for _ in 0..100 {
        h.record(&Reach::Reached, Instant::now(), &cfg());
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    calls(&h, 4, &refused());
    assert!(
        h.is_up(),
        "four refusals in a row, below consecutive_unreachable"
    );
    calls(&h, 1, &refused());
    assert!(
        !h.is_up(),
        "five in a row: gone, with 100 answers in the window"
    );
    let reason = h.view().reason.unwrap();
    assert!(reason.contains("5 calls in a row"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn refusals_between_answers_are_not_in_a_row() {
    let h = Health::default();
    calls(&h, 100, &Reach::Reached);
    // A blip: refusals, each followed by an answer (resets say nothing either way).
    for _ in 0..30 {
        calls(&h, 4, &refused());
        calls(&h, 1, &Reach::Unclear);
        calls(&h, 1, &Reach::Reached);
        calls(&h, 3, &Reach::Reached);
    }
    assert!(
        h.is_up(),
        "never five refusals without an answer between them, and 120 of 340 calls is below the rate"
    );
}
