//! The provisioned network, persisted so it survives restarts.
//!
//! One small versioned JSON file, written atomically (temporary file in the same directory, fsync, rename,
//! fsync of the directory) with mode 0600: after a power cut either the old or the new credentials are there,
//! never a torn mix.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wifiprov_backend::{Passphrase, Ssid};
use wifiprov_manager::Credentials;

const FILE_NAME: &str = "provisioned.json";
const VERSION: u32 = 1;

/// Why the provisioned state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// File system failure.
    #[error("{path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a valid state file; it is left untouched for inspection.
    #[error("{path} is not a valid state file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    /// Hex, because SSIDs are arbitrary bytes.
    ssid_hex: String,
    passphrase: Option<String>,
}

/// The provisioned credentials on disk, in `state_dir`.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    dir: PathBuf,
}

impl CredentialStore {
    /// A store in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The state file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The saved credentials, if any.
    pub fn load(&self) -> Result<Option<Credentials>, StoreError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let corrupt = |reason: String| StoreError::Corrupt { path: path.clone(), reason };
        let disk: OnDisk = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if disk.version != VERSION {
            return Err(corrupt(format!("unknown version {}", disk.version)));
        }
        let ssid = hex::decode(&disk.ssid_hex)
            .ok()
            .and_then(|b| Ssid::try_from(b).ok())
            .ok_or_else(|| corrupt("invalid ssid".into()))?;
        let passphrase = match disk.passphrase {
            None => None,
            // Never quote the value in the error: it is a secret.
            Some(p) => Some(Passphrase::new(p).map_err(|_| corrupt("invalid passphrase".into()))?),
        };
        Ok(Some(Credentials { ssid, passphrase }))
    }

    /// Replaces the saved credentials atomically.
    pub fn save(&self, credentials: &Credentials) -> Result<(), StoreError> {
        let disk = OnDisk {
            version: VERSION,
            ssid_hex: hex::encode(credentials.ssid.as_bytes()),
            passphrase: credentials.passphrase.as_ref().map(|p| p.expose_secret().to_owned()),
        };
        let mut bytes = serde_json::to_vec_pretty(&disk)
            .map_err(|e| StoreError::Corrupt { path: self.path(), reason: e.to_string() })?;
        let result = self.write_atomically(&bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        if let Some(mut p) = disk.passphrase {
            zeroize::Zeroize::zeroize(&mut p);
        }
        result
    }

    /// Forgets the saved credentials.
    pub fn clear(&self) -> Result<(), StoreError> {
        let path = self.path();
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    fn write_atomically(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        // Only the daemon reads its state: the directory is private too, not just the file.
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).map_err(io(&self.dir))?;
        let target = self.path();
        let temp = self.dir.join(format!(".{FILE_NAME}.tmp"));
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp).map_err(io(&temp))?;
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io(&temp))?;
        drop(file);
        fs::rename(&temp, &target).map_err(io(&target))?;
        sync_dir(&self.dir)
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn creds(ssid: &str, pass: Option<&str>) -> Credentials {
        Credentials {
            ssid: Ssid::try_from(ssid).unwrap(),
            passphrase: pass.map(|p| Passphrase::new(p.to_owned()).unwrap()),
        }
    }

    #[test]
    fn save_load_clear() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::new(dir.path().join("state"));
        assert!(store.load().unwrap().is_none());
        store.save(&creds("home", Some("hunter2hunter2"))).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.ssid.as_bytes(), b"home");
        assert_eq!(loaded.passphrase.unwrap().expose_secret(), "hunter2hunter2");
        let mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join("state")).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        store.save(&creds("open-net", None)).unwrap();
        assert!(store.load().unwrap().unwrap().passphrase.is_none());
        store.clear().unwrap();
        assert!(store.load().unwrap().is_none());
        store.clear().unwrap();
    }

    #[test]
    fn a_corrupt_file_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::new(dir.path());
        fs::write(store.path(), b"{\"version\": 1, \"ssid_hex\": \"zz\"").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
        assert!(store.path().exists());
        fs::write(store.path(), br#"{"version": 9, "ssid_hex": "6869", "passphrase": null}"#).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("unknown version 9"), "{err}");
        fs::write(store.path(), br#"{"version": 1, "ssid_hex": "6869", "passphrase": "short"}"#).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(!err.contains("short"), "the passphrase must not appear in errors: {err}");
    }
}
