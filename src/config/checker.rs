//! Collects a config's problems while it is validated, each pointed at its line in the file.
//! [`super::validate`] and [`super::bounds`] both report through it.

use super::Problem;
use super::locate::locate;
use http::Method;

pub(super) struct Checker<'a> {
    pub(super) text: &'a str,
    pub(super) problems: Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn problem(&mut self, field: impl Into<String>, message: impl std::fmt::Display) {
        let field = field.into();
        let line = locate(self.text, &field);
        self.problems.push(Problem {
            field,
            line,
            message: message.to_string(),
        });
    }
}

/// Why a method in the config is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum MethodError {
    #[error("`{0}` is not an HTTP method (write it in capitals, like `POST`)")]
    NotCapitals(String),
    #[error("`{0}` is not an HTTP method")]
    Invalid(String),
}

/// An HTTP method as the config spells it (in capitals).
pub(super) fn parse_method(m: &str) -> Result<Method, MethodError> {
    if m.is_empty() || m.bytes().any(|b| !b.is_ascii_uppercase()) {
        return Err(MethodError::NotCapitals(m.to_string()));
    }
    Method::from_bytes(m.as_bytes()).map_err(|_| MethodError::Invalid(m.to_string()))
}

/// Statuses of an `already` list: real HTTP statuses, and none a success.
pub(super) fn check_statuses(c: &mut Checker, field: &str, statuses: &[u16]) {
    for s in statuses {
        if !(100..=599).contains(s) {
            c.problem(field, format!("{s} is not an HTTP status"));
        } else if (200..300).contains(s) {
            c.problem(
                field,
                format!("{s} is a success already; list only non-2xx statuses here"),
            );
        }
    }
}
