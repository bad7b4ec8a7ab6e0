//! One process per data directory: an exclusive advisory lock (`flock`) on
//! `<data-dir>/lock`, taken before anything in the directory is read and held for the
//! process's life. Two brokers appending to one log, or two controllers persisting one state,
//! would each overwrite what the other made durable; the lock makes the second one exit at
//! once, naming the directory and the holder's pid (written into the lock file by the holder).
//!
//! The lock belongs to the open file: it goes away when the process exits, however it exits
//! (SIGKILL included), so a crash never leaves a stale lock. The file itself is left in place:
//! deleting it on exit would let a newcomer lock a fresh file while a slow starter still
//! holds the unlinked one. std's `File::try_lock` (stable since Rust 1.89) is `flock` on
//! Linux and the BSDs, so no crate is needed.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// File name of the lock inside the data directory.
pub const LOCK_FILE_NAME: &str = "lock";

/// Why the directory could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data directory {} is in use by another process (pid {holder}): one broker or \
         controller per data directory",
        dir.display()
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock data directory {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    dir: PathBuf,
}

impl DataDirLock {
    /// Creates `dir` if needed and locks it, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let failed = |source| LockError::Io {
            dir: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(failed)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE_NAME))
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    holder: holder_pid(&mut file),
                })
            }
            Err(TryLockError::Error(source)) => return Err(failed(source)),
        }
        // The pid is for the message a second process prints; not fsynced, as it means
        // nothing after a crash (the lock is gone with the process).
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        Ok(DataDirLock {
            _file: file,
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The pid the holder wrote, or a word saying why there is none yet.
fn holder_pid(file: &mut File) -> String {
    let mut text = String::new();
    let read = file.take(32).read_to_string(&mut text);
    match text.trim() {
        pid if read.is_ok() && !pid.is_empty() => pid.to_owned(),
        _ => "unknown: it is starting".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_directory_names_the_holder_and_a_released_one_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("broker-1");
        let held = DataDirLock::acquire(&data).unwrap();
        let error = DataDirLock::acquire(&data).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&data.display().to_string()), "{message}");
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(held);
        let again = DataDirLock::acquire(&data).unwrap();
        assert_eq!(again.dir(), data);
    }
}
