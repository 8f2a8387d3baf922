//! The background backfill in `dtc run`: a node a reload added (and, with `verify.repair = true`,
//! one `dtc verify` found behind) gets backfill passes until one leaves nothing pending; then it
//! serves reads. Passes that leave keys pending are repeated after 1 s, doubling up to 30 s;
//! a reload starts the next pass at once.

use super::Verifier;
use crate::runtime::Stop;
use crate::upstream::catchup::JoinReason;
use std::time::Duration;

/// The wait after a pass that found nothing to do.
const IDLE: Duration = Duration::from_secs(1);
/// The longest wait after a pass that left keys pending.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Runs until `stop`.
pub(crate) async fn run(verifier: Verifier, mut stop: Stop) {
    let mut generation = verifier.current.subscribe();
    let mut retry = IDLE;
    loop {
        let repair = verifier.current.load().settings.config.verify.repair;
        let passes = verifier
            .backfill_joining(|r| *r == JoinReason::Added || repair)
            .await;
        let wait = if passes.iter().all(|b| b.complete()) {
            retry = IDLE;
            IDLE
        } else {
            let wait = retry;
            retry = (retry * 2).min(MAX_RETRY);
            wait
        };
        tokio::select! {
            changed = generation.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(wait) => {}
            () = stop.stopped() => return,
        }
    }
}
