//! Deployment packages on disk, content-addressed by the SHA-256 of the zip.
//!
//! Layout under the data directory: `blobs/{hex}.zip` (the package as uploaded, served back by
//! GetFunction's `Code.Location`) and `code/{hex}/` (the package unpacked once, read-only, shared
//! by every environment of that code). Both are written atomically (temporary name, then rename),
//! so a crash never leaves a half-written package under its final name.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::code::{self, PackageInfo};
use crate::StoreError;

/// The package directory of a data directory.
#[derive(Debug, Clone)]
pub struct Blobs {
    zips: PathBuf,
    trees: PathBuf,
}

impl Blobs {
    /// Use (and create) `blobs/` and `code/` under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Blobs, StoreError> {
        let blobs = Blobs {
            zips: data_dir.join("blobs"),
            trees: data_dir.join("code"),
        };
        for dir in [&blobs.zips, &blobs.trees] {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            blobs.sweep(dir);
        }
        Ok(blobs)
    }

    /// Remove what a crash left half-written: hidden `.{name}.tmp...` files and trees (complete
    /// packages only ever appear under their final names).
    fn sweep(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with('.') && name.contains(".tmp")) {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                code::remove_tree(&path).map_err(|e| e.to_string())
            } else {
                std::fs::remove_file(&path).map_err(|e| e.to_string())
            };
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a leftover temporary file");
            }
        }
    }

    /// Where the zip with this hash is kept.
    pub fn zip_path(&self, sha256_hex: &str) -> PathBuf {
        self.zips.join(format!("{sha256_hex}.zip"))
    }

    /// Where the zip with this hash is unpacked.
    pub fn code_dir(&self, sha256_hex: &str) -> PathBuf {
        self.trees.join(sha256_hex)
    }

    /// Store an inspected package: keep the zip and unpack it, unless already there. Blocking.
    pub fn put(&self, zip: &[u8], info: &PackageInfo) -> Result<(), StoreError> {
        let hex = info.sha256_hex();
        let path = self.zip_path(&hex);
        if !path.exists() {
            let tmp = self
                .zips
                .join(format!(".{hex}.{}.tmp", uuid::Uuid::new_v4()));
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(zip)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)
            };
            if let Err(e) = write() {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(&path, e));
            }
        }
        let dir = self.code_dir(&hex);
        if !dir.exists() {
            code::unpack(zip, &dir).map_err(|e| StoreError::Io {
                path: dir.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        Ok(())
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_of_a_crash_are_swept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let half_tree = dir.path().join("code/.abc.tmp-1-2-3");
        std::fs::create_dir_all(half_tree.join("sub")).unwrap();
        let half_zip = dir.path().join("blobs/.abc.1234.tmp");
        std::fs::write(&half_zip, b"partial").unwrap();
        let kept = blobs.zip_path("abc");
        std::fs::write(&kept, b"complete").unwrap();
        Blobs::open(dir.path()).unwrap();
        assert!(!half_tree.exists() && !half_zip.exists());
        assert!(kept.exists());
    }
}
