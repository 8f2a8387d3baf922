//! Getting a broken writer back to a file it can trust: the fsyncgate rule.
//!
//! After a failed fdatasync Linux may already have marked the failed pages clean (their data
//! lost, or only in the cache), and reports the error once: a second fdatasync that succeeds
//! proves nothing about the first one's data (PostgreSQL's "fsyncgate", 2018). So dtc never
//! retries a sync and trusts it. Instead, on a backoff, a probe:
//!
//! 1. reopens the file by its path (a new descriptor; a file gone from its path, or its
//!    directory, is written anew from the old descriptor, which still holds it, and so is
//!    every sealed segment whose file is gone: the writer keeps them open for this);
//! 2. cuts it back to the last acknowledged record — everything after it was refused to its
//!    caller, and a record that was refused must not come back at the next start;
//! 3. syncs that, then grows the file by a chunk of zeros and syncs again: the probe of the
//!    disk (a full disk fails here, cheaply; one too full for a chunk is probed with a page,
//!    and the writer then appends: [`super::prealloc`]);
//! 4. drops the file's pages from the cache and reads every record back from the disk, checking
//!    every frame: only a file that reads back exactly as acknowledged is written to again.
//!
//! The records read back are handed to the owner ([`super::Log::take_reread`]), whose state
//! then follows them: what the disk holds is what dtc remembers.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read},
    os::unix::fs::{FileExt, MetadataExt},
};

use super::format::{self, Format};
use super::writer::{Repair, Writer, sync_dir, tmp_path};
use crate::journal::JournalError;

impl Writer {
    /// Re-establishes a file to write to; returns the records it holds, as read back.
    pub(super) fn repair(&mut self, how: Repair) -> Result<Vec<Vec<u8>>, JournalError> {
        match how {
            Repair::Replaced => Err(self.replaced()),
            Repair::CopyForward => self.copy_forward(),
            Repair::CutBack => match fs::metadata(&self.path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => self.copy_forward(),
                Ok(m) if (m.dev(), m.ino()) != self.id => Err(self.replaced()),
                _ => self.cut_back(),
            },
        }
    }

    fn replaced(&self) -> JournalError {
        JournalError::Replaced {
            path: self.path.clone(),
        }
    }

    fn err(&self, op: &'static str) -> impl Fn(io::Error) -> JournalError + '_ {
        move |e| JournalError::write(self.path.clone(), op, e)
    }

    /// Steps 1-4 on the file where it is.
    fn cut_back(&mut self) -> Result<Vec<Vec<u8>>, JournalError> {
        let acked = self.acked;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(self.err("reopen"))?;
        file.set_len(acked)
            .and_then(|()| self.faults.sync())
            .and_then(|()| file.sync_all())
            .map_err(self.err("cut back to the acknowledged records, and fsync"))?;
        let allocated = self.probe_space(&file)?;
        let records = self.read_back(&file)?;
        self.install(file, acked);
        self.allocated = allocated;
        Ok(records)
    }

    /// Writes the acknowledged records, read from the descriptor dtc still holds, to a new
    /// file at the path (its directory made again, private, if it is gone).
    fn copy_forward(&mut self) -> Result<Vec<Vec<u8>>, JournalError> {
        let acked = self.acked;
        let mut bytes = vec![0; acked as usize];
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(self.err("read the open journal"))?;
        let records = verify(&bytes, acked).map_err(self.err("check the open journal"))?;
        super::private::prepare_dir(&self.dir)?;
        self.restore_sealed()
            .map_err(self.err("write a sealed segment anew"))?;
        let tmp = tmp_path(&self.path);
        let file = super::private::create_file(&tmp)
            .and_then(|f| {
                self.write_at(&f, &bytes, 0)?;
                self.sync_data(&f)?;
                Ok(f)
            })
            .and_then(|f| fs::rename(&tmp, &self.path).map(|()| f))
            .and_then(|f| sync_dir(&self.dir).map(|()| f))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                self.err("write the journal anew")(e)
            })?;
        // The new file is opened for reading too, for later read-backs.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(self.err("reopen"))
            .inspect(|_| drop(file))?;
        let allocated = self.probe_space(&file)?;
        self.install(file, acked);
        self.allocated = allocated;
        tracing::warn!(path = %self.path.display(), bytes = acked, "the journal file was gone: written anew from the open descriptor");
        Ok(records)
    }

    /// Writes every sealed segment whose file is gone anew from the descriptor dtc still holds
    /// (the directory's fsync follows with the active segment's). The records sealed segments
    /// hold were acknowledged long ago: a removed directory must not lose them.
    fn restore_sealed(&self) -> io::Result<()> {
        for s in &self.sealed {
            if s.path.exists() {
                continue;
            }
            let mut bytes = vec![0; s.len as usize];
            s.file.read_exact_at(&mut bytes, 0)?;
            let tmp = tmp_path(&s.path);
            let f = super::private::create_file(&tmp)?;
            self.write_at(&f, &bytes, 0)?;
            self.sync_data(&f)?;
            fs::rename(&tmp, &s.path)?;
            tracing::warn!(path = %s.path.display(), bytes = s.len, "a sealed journal segment was gone: written anew from the open descriptor");
        }
        Ok(())
    }

    /// Grows the file past the acknowledged records and syncs ([`Writer::probe_room`]): fails
    /// while the disk is full, read-only or failing. Returns how long the file now is.
    fn probe_space(&mut self, file: &File) -> Result<u64, JournalError> {
        let acked = self.acked;
        self.probe_room(file, acked)
            .map_err(|e| self.err("probe (grow and fdatasync)")(e))
    }

    /// Reads the acknowledged bytes back from the disk (not the cache) and checks them.
    fn read_back(&self, file: &File) -> Result<Vec<Vec<u8>>, JournalError> {
        let acked = self.acked;
        // Advice only: where the filesystem has no page cache to drop (tmpfs) it is a no-op.
        let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
        let mut bytes = Vec::with_capacity(acked as usize);
        Read::take(file, acked)
            .read_to_end(&mut bytes)
            .map_err(self.err("read back"))?;
        verify(&bytes, acked).map_err(self.err("read back"))
    }
}

/// The records of `bytes`, if they are exactly `acked` bytes of intact format-1 frames.
fn verify(bytes: &[u8], acked: u64) -> io::Result<Vec<Vec<u8>>> {
    let lost = |what: String| {
        io::Error::other(format!(
            "the journal no longer holds what it acknowledged ({what}); restart dtc to read it back and decide"
        ))
    };
    if bytes.len() as u64 != acked {
        return Err(lost(format!("{} of {acked} bytes", bytes.len())));
    }
    let read = format::read(bytes).map_err(|r| lost(format!("{r:?}")))?;
    if let Some(d) = read.damage.first() {
        return Err(lost(d.reason.clone()));
    }
    if !matches!(read.format, Format::V1 { .. }) || read.end != acked {
        return Err(lost(format!("records end at {} of {acked}", read.end)));
    }
    Ok(read.records.into_iter().map(|(_, p)| p).collect())
}
