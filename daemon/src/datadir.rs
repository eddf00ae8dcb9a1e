//! The data directory: created private (0700), and held by one ccrd at a
//! time through an exclusive `flock` on `ccrd.lock`, which names the
//! process holding it. Two writers on one journal would fork its history.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{} is in use by another ccrd ({holder}): one data directory, one ccrd — stop it first, or give this one \
         its own --data-dir",
        dir.display()
    )]
    Locked { dir: PathBuf, holder: String },
}

/// The lock on a data directory, released when dropped (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Creates `dir` (0700) if needed.
pub fn create(dir: &Path) -> Result<(), DataDirError> {
    let io = |source| DataDirError::Io { path: dir.to_owned(), source };
    if !dir.exists() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    }
    let mode = fs::metadata(dir).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "data directory is readable by others: it holds the private key and every contact's data (chmod 700)");
    }
    Ok(())
}

/// Takes the data directory for this process, or says who has it.
pub fn lock(dir: &Path) -> Result<DirLock, DataDirError> {
    create(dir)?;
    let path = dir.join("ccrd.lock");
    let io = |source| DataDirError::Io { path: path.clone(), source };
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path).map_err(io)?;
    // SAFETY: flock on a descriptor we own; it touches no memory.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io(err));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => "a process that has not written its id yet".to_owned(),
            pid => format!("pid {pid}"),
        };
        return Err(DataDirError::Locked { dir: dir.to_owned(), holder });
    }
    file.set_len(0).and_then(|_| file.rewind()).and_then(|_| writeln!(file, "{}", std::process::id())).map_err(io)?;
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ccr-datadir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_second_lock_on_a_directory_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = scratch("lock");
        let first = lock(&dir).expect("first");
        match lock(&dir) {
            Err(DataDirError::Locked { holder, .. }) => assert_eq!(holder, format!("pid {}", std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(first);
        lock(&dir).expect("free again");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_new_data_directory_is_private() {
        let dir = scratch("private");
        let data = dir.join("a/b");
        create(&data).expect("created");
        assert_eq!(fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
        let _ = fs::remove_dir_all(&dir);
    }
}
