//! One server per database: an advisory lock on `DATABASE.lock`.
//!
//! The lock is `flock(2)` (through `File::try_lock`), so the kernel drops it when
//! the holding process ends, however it ends: the file a `kill -9` leaves behind
//! never blocks a restart. Readers (`report`, `transcript`) never take it.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The held lock; released when dropped or when the process dies.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

/// The lock file of `database`: `DATABASE.lock` beside it.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = OsString::from(database.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of `database` and writes this process's id into the lock file,
/// or says which process holds it.
pub fn acquire(database: &Path) -> Result<DatabaseLock, StoreError> {
    let path = lock_path(database);
    let io_error = |source| StoreError::Io {
        what: format!("lock file {}", path.display()),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = match holder.trim() {
                "" => "unknown".to_owned(),
                pid => pid.to_owned(),
            };
            return Err(StoreError::InUse {
                path: database.display().to_string(),
                pid,
            });
        }
        Err(TryLockError::Error(source)) => return Err(io_error(source)),
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(io_error)?;
    Ok(DatabaseLock { _file: file })
}
