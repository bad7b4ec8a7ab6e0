//! Full disks for a chaos run: each broker's data directory is a size-limited tmpfs (which
//! needs root and `mount`), and a disk fault fills it with a file until a write fails with no
//! space left, then deletes the file. A broker whose write fails stops (a storage error ends
//! the process: fail-stop), and is started again once the disk has room.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Size of each broker's tmpfs. A run's log stays far below it (the producers are paced).
pub const DISK_MIB: u64 = 128;
/// The file that fills a disk, in the broker's data directory.
const FILLER_FILE_NAME: &str = "chaos-disk-filler";
const MIB: usize = 1024 * 1024;

/// The mounted disks; unmounted when dropped.
#[derive(Debug)]
pub struct Disks {
    mounts: Vec<PathBuf>,
}

impl Disks {
    /// Mounts a tmpfs of [`DISK_MIB`] on each directory (created if absent); on the first
    /// failure unmounts what was mounted and says why.
    pub fn mount(dirs: &[PathBuf]) -> Result<Disks, String> {
        let mut disks = Disks { mounts: Vec::new() };
        for dir in dirs {
            std::fs::create_dir_all(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
            let size = format!("size={DISK_MIB}m");
            let output = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
                .arg(dir)
                .output()
                .map_err(|error| format!("cannot run mount: {error}"))?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                return Err(format!("mount -t tmpfs failed: {}", stderr.trim()));
            }
            disks.mounts.push(dir.clone());
        }
        Ok(disks)
    }

    /// Fills the disk at `dir` until a write finds no space; returns the filler's path.
    pub fn fill(&self, dir: &Path) -> Result<PathBuf, String> {
        assert!(
            self.mounts.iter().any(|mount| mount == dir),
            "not a chaos disk"
        );
        let path = dir.join(FILLER_FILE_NAME);
        let mut file = std::fs::File::create(&path).map_err(|error| error.to_string())?;
        let chunk = vec![0u8; MIB];
        // Bounded: the tmpfs holds DISK_MIB MiB, so it is full after that many chunks.
        for _ in 0..=DISK_MIB {
            if let Err(error) = file.write_all(&chunk) {
                if error.raw_os_error() == Some(28) {
                    return Ok(path);
                }
                return Err(format!("filling {}: {error}", path.display()));
            }
        }
        Err(format!("{} never filled up", dir.display()))
    }

    /// Frees the disk a [`fill`](Self::fill) filled.
    pub fn free(&self, filler: &Path) -> Result<(), String> {
        std::fs::remove_file(filler).map_err(|error| format!("{}: {error}", filler.display()))
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        for dir in &self.mounts {
            // Lazy: a child that has not been reaped yet may still hold a file open.
            let _ = Command::new("umount").arg("-l").arg(dir).status();
        }
    }
}
