//! Keeping the journal private: it holds client requests, `Authorization` headers included.
//!
//! The directory is created 0700 and the files 0600 (the log, and a compaction's new file
//! before its rename). An existing directory that others can enter is tightened when dtc owns
//! it, and refused when someone else does: another user could read the journal, or swap the
//! file under dtc.

use super::super::JournalError;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

/// Mode of the journal directory.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of the journal's files.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` (0700) if needed and makes sure nobody but dtc's user can enter it.
pub(super) fn prepare_dir(dir: &Path) -> Result<(), JournalError> {
    let create = |e: io::Error| JournalError::CreateDir {
        path: dir.to_path_buf(),
        source: Arc::new(e),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(create)?;
    let meta = fs::metadata(dir).map_err(create)?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    match own_uid() {
        Some(uid) if uid != meta.uid() => Err(JournalError::Exposed {
            path: dir.to_path_buf(),
            mode,
            owner: meta.uid(),
        }),
        _ => {
            fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)).map_err(create)?;
            tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "the journal directory was open to other users; it is now 0700");
            Ok(())
        }
    }
}

/// Opens (creating 0600) a journal file for reading and appending, and makes an existing one
/// 0600 too.
pub(super) fn open_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    tighten(&file)?;
    Ok(file)
}

/// Creates (0600) or truncates a file for a compaction's rewrite.
pub(super) fn create_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    tighten(&file)?;
    Ok(file)
}

fn tighten(file: &File) -> io::Result<()> {
    if file.metadata()?.mode() & 0o077 != 0 {
        file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

/// The effective user id of this process (the owner of `/proc/self`), where it can be known.
fn own_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn a_new_directory_is_0700_and_an_open_one_of_ours_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        prepare_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn files_are_0600_even_when_they_existed_open() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("f");
        fs::write(&path, b"x").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        open_file(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let tmp = root.path().join("g");
        create_file(&tmp).unwrap();
        assert_eq!(mode(&tmp), 0o600);
    }
}
