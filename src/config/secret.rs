//! The admin token: written in the config (`listen.admin_token`) or read from a file
//! (`listen.admin_token_file`, e.g. a mounted Kubernetes Secret).
//!
//! The file is read when it is needed rather than once, so a rotated Secret takes effect
//! without a reload, and an unreadable or empty file fails closed.

use super::Listen;

/// Why the admin token file cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TokenError {
    #[error("cannot read listen.admin_token_file `{path}`: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("listen.admin_token_file `{path}` is empty: write the token into it")]
    Empty { path: String },
}

/// The token the admin API requires, if any.
pub(crate) fn admin_token(listen: &Listen) -> Result<Option<String>, TokenError> {
    if let Some(token) = &listen.admin_token {
        return Ok(Some(token.clone()));
    }
    let Some(path) = &listen.admin_token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| TokenError::Unreadable {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let token = text.trim_end();
    if token.is_empty() {
        return Err(TokenError::Empty { path: path.clone() });
    }
    Ok(Some(token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(token: Option<&str>, file: Option<&str>) -> Listen {
        Listen {
            admin_token: token.map(String::from),
            admin_token_file: file.map(String::from),
            ..Listen::default()
        }
    }

    #[test]
    fn a_token_file_is_read_and_trimmed_and_an_empty_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let file = path.to_str().unwrap();
        assert_eq!(
            admin_token(&listen(None, Some(file))),
            Ok(Some("s3cret".into()))
        );
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(
            admin_token(&listen(None, Some(file))),
            Err(TokenError::Empty { .. })
        ));
        let missing = dir.path().join("missing");
        let err = admin_token(&listen(None, Some(missing.to_str().unwrap()))).unwrap_err();
        assert!(err.to_string().contains("listen.admin_token_file"), "{err}");
        assert_eq!(admin_token(&listen(None, None)), Ok(None));
        assert_eq!(admin_token(&listen(Some("t"), None)), Ok(Some("t".into())));
    }
}
