//! What `--acme-domain` keeps in the data folder (`acme/`): the account at each CA (its key
//! is what lets the hub renew without a new account), and the current certificate with its
//! key. Keys are written readable by the hub's user only, and every file is replaced whole
//! (written beside, then renamed), so a crash leaves the old one or the new one.

use instant_acme::AccountCredentials;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ACME account this hub wrote: {source}")]
    Account {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The `acme/` folder inside the data folder.
#[derive(Debug, Clone)]
pub struct AcmeFiles {
    folder: PathBuf,
}

impl AcmeFiles {
    pub fn in_data_dir(data_dir: &Path) -> Self {
        AcmeFiles {
            folder: data_dir.join("acme"),
        }
    }

    pub fn certificate_path(&self) -> PathBuf {
        self.folder.join("certificate.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.folder.join("certificate-key.pem")
    }

    /// One account file per CA directory: switching from the staging CA to the real one must
    /// not reuse an account the other CA does not know.
    fn account_path(&self, directory: &str) -> PathBuf {
        let digest = Sha256::digest(directory.as_bytes());
        self.folder
            .join(format!("account-{}.json", &hex::encode(digest)[..12]))
    }

    pub fn read_account(&self, directory: &str) -> Result<Option<AccountCredentials>, FilesError> {
        let path = self.account_path(directory);
        let Some(text) = read_if_there(&path)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| FilesError::Account { path, source })
    }

    pub fn write_account(
        &self,
        directory: &str,
        credentials: &AccountCredentials,
    ) -> Result<(), FilesError> {
        let path = self.account_path(directory);
        let json =
            serde_json::to_vec_pretty(credentials).map_err(|source| FilesError::Account {
                path: path.clone(),
                source,
            })?;
        self.write_private(&path, &json)
    }

    /// The certificate chain and key kept from an earlier run (PEM), if both are there.
    pub fn read_certificate(&self) -> Result<Option<(String, String)>, FilesError> {
        let chain = read_if_there(&self.certificate_path())?;
        let key = read_if_there(&self.key_path())?;
        Ok(chain.zip(key))
    }

    /// Keeps a new certificate: the key first, so that a crash in between leaves a pair that
    /// does not match (and is ordered again) rather than an old key with a new certificate
    /// that looks whole.
    pub fn write_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<(), FilesError> {
        self.write_private(&self.key_path(), key_pem.as_bytes())?;
        self.write_private(&self.certificate_path(), chain_pem.as_bytes())
    }

    fn write_private(&self, path: &Path, contents: &[u8]) -> Result<(), FilesError> {
        let failed = |source| FilesError::Write {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(&self.folder).map_err(failed)?;
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(failed)?;
        file.write_all(contents).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        std::fs::rename(&temporary, path).map_err(failed)
    }
}

fn read_if_there(path: &Path) -> Result<Option<String>, FilesError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FilesError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_certificate_is_kept_with_a_key_only_its_owner_reads() {
        let dir = tempfile::tempdir().unwrap();
        let files = AcmeFiles::in_data_dir(dir.path());
        assert!(files.read_certificate().unwrap().is_none());
        files.write_certificate("CHAIN", "KEY").unwrap();
        files.write_certificate("CHAIN 2", "KEY 2").unwrap();
        assert_eq!(
            files.read_certificate().unwrap(),
            Some(("CHAIN 2".to_string(), "KEY 2".to_string()))
        );
        let mode = std::fs::metadata(files.key_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn each_ca_directory_has_its_own_account() {
        let dir = tempfile::tempdir().unwrap();
        let files = AcmeFiles::in_data_dir(dir.path());
        assert_ne!(
            files.account_path("https://a.example/dir"),
            files.account_path("https://b.example/dir")
        );
        assert!(matches!(
            files.read_account("https://a.example/dir"),
            Ok(None)
        ));
        std::fs::create_dir_all(&files.folder).unwrap();
        std::fs::write(files.account_path("https://a.example/dir"), "{").unwrap();
        let Err(err) = files.read_account("https://a.example/dir") else {
            panic!("a broken account file is refused");
        };
        assert!(err.to_string().contains("not an ACME account"), "{err}");
    }
}
