//! Collects a config's problems while it is validated, each pointed at its line in the file.
//! [`super::validate`] and [`super::bounds`] both report through it.

use super::Problem;
use super::locate::locate;

pub(super) struct Checker<'a> {
    pub(super) text: &'a str,
    pub(super) problems: Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        let line = locate(self.text, &field);
        self.problems.push(Problem {
            field,
            line,
            message: message.into(),
        });
    }
}
