//! What the store tells whoever counts (the telemetry's store metrics implement
//! [`StoreEvents`]; the journal imports nothing above it).

/// How a lease acquisition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The lease was granted.
    Granted,
    /// Another sidecar held the key for the whole `cluster.wait`.
    Busy,
    /// An unresolved transaction fences the key.
    Fenced,
}

/// What went wrong with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// No connection, or it broke.
    Unreachable,
    /// No answer within `cluster.statement_timeout`.
    Timeout,
    /// The store refused a statement.
    Query,
    /// A lease was found taken over.
    LeaseLost,
}

impl StoreErrorKind {
    /// Every kind, in a fixed order.
    pub const ALL: [StoreErrorKind; 4] = [
        StoreErrorKind::Unreachable,
        StoreErrorKind::Timeout,
        StoreErrorKind::Query,
        StoreErrorKind::LeaseLost,
    ];

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreErrorKind::Unreachable => "unreachable",
            StoreErrorKind::Timeout => "timeout",
            StoreErrorKind::Query => "query",
            StoreErrorKind::LeaseLost => "lease_lost",
        }
    }
}

/// Receives the store's events: lease acquisitions, takeovers, round trips, errors, whether the
/// store answers, steps of its clock.
pub trait StoreEvents: Send + Sync {
    /// A lease acquisition ended as `how` after `waited_seconds`.
    fn acquired(&self, how: Acquired, waited_seconds: f64);
    /// `n` expired leases were taken over.
    fn took_over(&self, n: u64);
    /// One statement took `seconds`.
    fn round_trip(&self, seconds: f64);
    /// A store operation failed.
    fn error(&self, kind: StoreErrorKind);
    /// The store answered (`true`) or not.
    fn set_up(&self, up: bool);
    /// The store's clock stepped forward.
    fn clock_step(&self);
}
