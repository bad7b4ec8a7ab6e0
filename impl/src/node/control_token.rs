//! The operator's control token: the secret that separates who may stop or inspect a node
//! (the operator, the harness, `cluster up`) from who may only ask it where the leader is
//! (any client that knows the cluster id). docs/runtime.md, "Who can do what", says why.
//!
//! The token lives in a file readable by its owner only: by default
//! `<data-dir>/control.token`, created with a fresh random secret at the first start, or any
//! file named by `--control-token-file` (created there when absent, so several processes can
//! share one). Creation is atomic: the secret is written to a private temporary file and
//! hard-linked into place, so a reader never sees a half-written token, and when two
//! processes race to create the same file, both end up with the winner's token.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::wire::handshake::{constant_time_eq, Credential, CREDENTIAL_BYTES_MAX};

/// File name of the token inside a data directory, when `--control-token-file` is not given.
pub const CONTROL_TOKEN_FILE_NAME: &str = "control.token";

/// Random bytes in a generated token (hex-encoded in the file: 64 characters).
const TOKEN_RANDOM_BYTES: usize = 32;

/// A token chosen by hand must be at least this long, or it could be guessed.
pub const TOKEN_BYTES_MIN: usize = 16;

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("control token file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "control token file {} can be read or written by others (mode {mode:03o}); \
         make it owner-only: chmod 600 {}",
        path.display(),
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("control token file {}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// The operator's secret, as a node checks it and a control client presents it. `Debug`
/// never shows it.
#[derive(Clone)]
pub struct ControlToken {
    credential: Credential,
}

impl std::fmt::Debug for ControlToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ControlToken(redacted)")
    }
}

impl ControlToken {
    /// Where a node keeps its token when no file is named.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join(CONTROL_TOKEN_FILE_NAME)
    }

    /// The token in `path`, creating the file with a fresh secret (owner-only) when absent.
    pub fn load_or_create(path: &Path) -> Result<Self, TokenError> {
        match path.try_exists() {
            Ok(true) => {}
            Ok(false) => create(path)?,
            Err(source) => return Err(io(path, source)),
        }
        Self::read(path)
    }

    /// The token in `path`, which must exist, be owner-only and hold one printable word.
    pub fn read(path: &Path) -> Result<Self, TokenError> {
        let file = File::open(path).map_err(|source| io(path, source))?;
        check_owner_only(path, &file)?;
        let mut text = String::new();
        let limit = (CREDENTIAL_BYTES_MAX + 2) as u64;
        file.take(limit)
            .read_to_string(&mut text)
            .map_err(|source| io(path, source))?;
        let secret = text.trim();
        let invalid = |reason: String| TokenError::Invalid {
            path: path.to_owned(),
            reason,
        };
        if !(TOKEN_BYTES_MIN..=CREDENTIAL_BYTES_MAX).contains(&secret.len()) {
            return Err(invalid(format!(
                "a token is {TOKEN_BYTES_MIN} to {CREDENTIAL_BYTES_MAX} printable characters"
            )));
        }
        if !secret.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(invalid("a token is printable ASCII without spaces".into()));
        }
        Ok(ControlToken {
            credential: Credential::new(secret),
        })
    }

    /// What a control client presents in the handshake.
    pub fn credential(&self) -> Credential {
        self.credential.clone()
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn admits(&self, presented: &Credential) -> bool {
        constant_time_eq(self.credential.as_bytes(), presented.as_bytes())
    }
}

fn io(path: &Path, source: std::io::Error) -> TokenError {
    TokenError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a fresh token to a private temporary file and links it into place; losing a race
/// to another creator is fine, the file then holds its token.
fn create(path: &Path) -> Result<(), TokenError> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        fs::create_dir_all(parent).map_err(|source| io(parent, source))?;
    }
    let secret = fresh_secret().map_err(|source| io(Path::new("/dev/urandom"), source))?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.{}.tmp", std::process::id(), random_suffix()));
    let temporary = PathBuf::from(temporary);
    let written =
        write_private(&temporary, &secret).and_then(|()| match fs::hard_link(&temporary, path) {
            Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => Err(error),
            _ => Ok(()),
        });
    let _ = fs::remove_file(&temporary);
    written.map_err(|source| io(path, source))
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    file.sync_all()
}

/// 32 bytes from the operating system's generator, hex-encoded. Read from `/dev/urandom`
/// rather than through a crate: one read, on the Unix systems a node runs on.
fn fresh_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Only keeps two creators' temporary names apart; not a secret.
fn random_suffix() -> u64 {
    crate::client::random_id()
}

#[cfg(unix)]
fn check_owner_only(path: &Path, file: &File) -> Result<(), TokenError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|source| io(path, source))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(TokenError::Permissions {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path, _file: &File) -> Result<(), TokenError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_token_is_owner_only_stable_and_admits_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = ControlToken::default_path(dir.path());
        let token = ControlToken::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = ControlToken::load_or_create(&path).unwrap();
        assert!(
            again.admits(&token.credential()),
            "a second start reads the same token"
        );
        assert!(!token.admits(&Credential::new("0".repeat(64))));
        assert!(!token.admits(&Credential::new("")));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 2 * TOKEN_RANDOM_BYTES);
        assert!(
            !format!("{token:?}").contains(text.trim()),
            "Debug never shows it"
        );
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        fs::write(&path, "a-long-enough-hand-made-token\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = ControlToken::read(&path).unwrap_err();
        assert!(
            matches!(error, TokenError::Permissions { mode: 0o644, .. }),
            "{error}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let token = ControlToken::read(&path).unwrap();
        assert!(token.admits(&Credential::new("a-long-enough-hand-made-token")));
    }

    #[cfg(unix)]
    #[test]
    fn short_or_spaced_tokens_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for bad in ["short", "has a space inside it", ""] {
            let path = dir.path().join("token");
            fs::write(&path, bad).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let error = ControlToken::read(&path).unwrap_err();
            assert!(
                matches!(error, TokenError::Invalid { .. }),
                "{bad:?}: {error}"
            );
        }
    }
}
