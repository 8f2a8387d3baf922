//! Exit codes: one table for every subcommand. The failures use the codes of BSD's
//! `sysexits.h`; the verdicts that scripts check (`dtc status`, `dtc verify`) are dtc's own small
//! codes. Every failure also prints one line on stderr saying what went wrong.
//!
//! | code | name | meaning |
//! |---:|---|---|
//! | 0 | [`OK`] | done; `dtc status`: nothing needs attention; `dtc verify`: every checked key agrees (or was repaired) |
//! | 1 | [`ATTENTION`] | `dtc status`: something needs attention (a node down, a failed transaction, ...) |
//! | 1 | [`DIVERGENT`] | `dtc verify`: a divergence remains |
//! | 3 | [`INCOMPLETE`] | `dtc verify`: no divergence remains, but some keys could not be checked |
//! | 64 | [`USAGE`] | the command line is wrong: an unknown flag, a bad value, `--admin` not `http://HOST:PORT`, sidecar flags Kubernetes would refuse |
//! | 65 | [`DATA`] | the input is not what it should be: YAML that is not Kubernetes objects; the admin API refused the action; a damaged, foreign or newer journal (`dtc run`, `dtc journal`) |
//! | 66 | [`NO_INPUT`] | something named does not exist: the file to inject, the transaction id |
//! | 69 | [`UNAVAILABLE`] | a service cannot start or be reached: a port in use, a journal directory locked by another dtc, the admin listener unreachable, `dtc verify` cannot run, `dtc inject` or `dtc webhook` in a build without the `k8s` feature |
//! | 70 | [`SOFTWARE`] | dtc itself failed (a bug: please report it) |
//! | 71 | [`OS`] | the operating system refused (e.g. dtc cannot wait for signals) |
//! | 74 | [`IO`] | the output cannot be written |
//! | 76 | [`PROTOCOL`] | the answer was not dtc's admin API |
//! | 77 | [`NO_PERM`] | the admin token is missing or wrong |
//! | 78 | [`CONFIG`] | the config file cannot be read or is invalid; the webhook's certificate or key is unusable |
//!
//! This module imports nothing of dtc, so every command can use it.

/// Done; nothing needs attention; every checked key agrees.
pub(crate) const OK: u8 = 0;
/// `dtc status`: something needs attention.
pub(crate) const ATTENTION: u8 = 1;
/// `dtc verify`: a divergence remains (not repaired, not repairable, or its repair did not
/// converge).
pub(crate) const DIVERGENT: u8 = 1;
/// `dtc verify`: no divergence remains, but some keys could not be checked (a node did not
/// answer, or a failed transaction fences the key).
pub(crate) const INCOMPLETE: u8 = 3;
/// The command line is wrong (EX_USAGE).
pub(crate) const USAGE: u8 = 64;
/// The input is not what it should be (EX_DATAERR).
pub(crate) const DATA: u8 = 65;
/// Something named does not exist: an input file, a transaction (EX_NOINPUT).
pub(crate) const NO_INPUT: u8 = 66;
/// A service cannot start or be reached (EX_UNAVAILABLE).
pub(crate) const UNAVAILABLE: u8 = 69;
/// dtc itself failed (EX_SOFTWARE).
pub(crate) const SOFTWARE: u8 = 70;
/// The operating system refused (EX_OSERR).
pub(crate) const OS: u8 = 71;
/// The output cannot be written (EX_IOERR).
pub(crate) const IO: u8 = 74;
/// The other side does not speak the expected protocol (EX_PROTOCOL).
pub(crate) const PROTOCOL: u8 = 76;
/// Not allowed: a missing or wrong token (EX_NOPERM).
pub(crate) const NO_PERM: u8 = 77;
/// The configuration cannot be read or is invalid (EX_CONFIG).
pub(crate) const CONFIG: u8 = 78;
