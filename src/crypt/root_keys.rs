//! The default key provider: each tenant's key in a small file of the
//! root's own, `.tenanted/keys/NAME.key`, wrapped by the operator's master
//! key.
//!
//! Beside the root's other records rather than beside each database: the
//! keys are then one directory to back up, apart from the data (a backup
//! of the data alone, or a replica, holds no key), and a destroy that
//! removes the database's directory cannot leave its key behind unnoticed
//! in a copy of that directory. One file per tenant, replaced whole when
//! the tenant is created again: one incarnation's key at a time.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::master_key::WRAPPED_LEN;
use super::{KeyProvider, MasterKey, TenantKey};
use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::siblings::scratch_path;
use crate::fs::sys;
use crate::name::TenantName;

/// The first bytes of every key file (its format's version).
const MAGIC: &[u8; 16] = b"tenanted-key-v1\n";
const FILE_LEN: usize = MAGIC.len() + WRAPPED_LEN;

/// Keeps tenant keys in the root, wrapped by a [`MasterKey`]: the
/// [`KeyProvider`] to use unless keys live in a key management service.
///
/// Back up `ROOT/.tenanted/keys/` (and keep the master key) to be able to
/// read backups of encrypted tenants on another machine.
pub struct RootKeyStore {
    root: PathBuf,
    master: MasterKey,
}

impl RootKeyStore {
    /// The keys of the tenants under `root`, wrapped by `master`.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>, master: MasterKey) -> RootKeyStore {
        RootKeyStore {
            root: root.into(),
            master,
        }
    }

    /// The directory the key files are in: `ROOT/.tenanted/keys`.
    #[must_use]
    pub fn keys_dir(&self) -> PathBuf {
        crate::root_description::keys_dir(&self.root)
    }

    /// The file that holds `tenant`'s key.
    #[must_use]
    pub fn key_path(&self, tenant: &TenantName) -> PathBuf {
        self.keys_dir().join(file_name(tenant))
    }

    /// Re-wraps every tenant key with `new_master` (rotating the master
    /// key: no database is touched), and returns how many. Each file is
    /// replaced atomically, so a crash leaves every key readable with one
    /// of the two master keys; running it again with both finishes it. Run
    /// it while no process creates or destroys tenants in the root.
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] naming a key file this store's master key
    /// does not open; [`Error::Io`] when a file cannot be read or written.
    pub fn rewrap(&self, new_master: &MasterKey) -> Result<usize> {
        let dir = match Dir::open(&self.root, &self.keys_dir()) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(None, self.keys_dir(), "opening the keys", e)),
        };
        let entries =
            (dir.entries()).map_err(|e| Error::io(None, self.keys_dir(), "listing the keys", e))?;
        let mut count = 0;
        for entry in entries {
            let (name, _) =
                entry.map_err(|e| Error::io(None, dir.path(), "listing the keys", e))?;
            let Some(tenant) = tenant_of(&name) else {
                continue;
            };
            let key = self
                .read(&dir, &tenant)?
                .ok_or_else(|| vanished(&tenant, &dir, &name))?;
            let store = RootKeyStore::new(self.root.clone(), new_master.clone());
            store.write(&dir, &tenant, &key)?;
            count += 1;
        }
        Ok(count)
    }

    fn dir(&self, tenant: &TenantName, make: bool) -> Result<Option<Dir>> {
        let path = self.keys_dir();
        let opened = if make {
            Dir::make(&self.root, &path)
        } else {
            Dir::open(&self.root, &path)
        };
        match opened {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !make => Ok(None),
            Err(e) => Err(Error::io(
                Some(tenant),
                path,
                "opening the keys directory",
                e,
            )),
        }
    }

    fn read(&self, dir: &Dir, tenant: &TenantName) -> Result<Option<TenantKey>> {
        let name = file_name(tenant);
        let path = dir.join(&name);
        let file = match sys::open_file(dir.fd(), &name) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(Some(tenant), path, "opening the tenant's key", e)),
        };
        let mut bytes = zeroize::Zeroizing::new([0u8; FILE_LEN + 1]);
        let read = sys::read_at(file.as_fd(), bytes.as_mut(), 0, &name)
            .map_err(|e| Error::io(Some(tenant), &path, "reading the tenant's key", e))?;
        let wrapped = (bytes.get(..read))
            .filter(|b| b.len() == FILE_LEN)
            .and_then(|b| b.strip_prefix(&MAGIC[..]));
        let key = wrapped.and_then(|w| self.master.unwrap(tenant.as_str(), w));
        key.map(Some).ok_or_else(|| Error::Encryption {
            tenant: Some(tenant.clone()),
            path,
            reason: "the master key does not open this key file (another root's master key, a file copied from another tenant, or a damaged file); give the master key it was made with".to_string(),
        })
    }

    fn write(&self, dir: &Dir, tenant: &TenantName, key: &TenantKey) -> Result<()> {
        let name = file_name(tenant);
        let path = dir.join(&name);
        let io_error = |e| Error::io(Some(tenant), &path, "storing the tenant's key", e);
        let wrapped = self.master.wrap(tenant.as_str(), key, &path)?;
        let scratch = scratch_path(&name);
        let written = sys::create_new(dir.fd(), &scratch).and_then(|mut file| {
            sys::write_all(&mut file, &[&MAGIC[..], &wrapped].concat(), &scratch)?;
            sys::sync(file.as_fd(), &scratch)?;
            sys::rename(dir.fd(), &scratch, &name)?;
            dir.sync()
        });
        if written.is_err() {
            let _ = sys::unlink(dir.fd(), &scratch);
        }
        written.map_err(io_error)
    }
}

impl KeyProvider for RootKeyStore {
    fn create_key(&self, tenant: &TenantName) -> Result<TenantKey> {
        let key = TenantKey::generate().map_err(|e| Error::Encryption {
            tenant: Some(tenant.clone()),
            path: self.key_path(tenant),
            reason: format!("no randomness for a new key ({e}); retry the create"),
        })?;
        if let Some(dir) = self.dir(tenant, true)? {
            // A key of an earlier incarnation is overwritten first, so
            // that its bytes do not stay on the disk under a free block.
            destroy_in(&dir, tenant)?;
            self.write(&dir, tenant, &key)?;
        }
        Ok(key)
    }

    fn key(&self, tenant: &TenantName) -> Result<Option<TenantKey>> {
        match self.dir(tenant, false)? {
            Some(dir) => self.read(&dir, tenant),
            None => Ok(None),
        }
    }

    fn destroy_key(&self, tenant: &TenantName) -> Result<()> {
        match self.dir(tenant, false)? {
            Some(dir) => destroy_in(&dir, tenant),
            None => Ok(()),
        }
    }

    fn key_location(&self, tenant: &TenantName) -> Option<PathBuf> {
        Some(self.key_path(tenant))
    }
}

impl fmt::Debug for RootKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootKeyStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Overwrites `tenant`'s key file with zeros, syncs it, removes it and
/// syncs the directory: once this returns, no crash brings the key back.
fn destroy_in(dir: &Dir, tenant: &TenantName) -> Result<()> {
    let name = file_name(tenant);
    let path = dir.join(&name);
    let destroyed = sys::open_file(dir.fd(), &name)
        .and_then(|_| sys::open_or_create(dir.fd(), &name))
        .and_then(|mut file| {
            sys::write_all(&mut file, &[0u8; FILE_LEN], &name)?;
            sys::sync(file.as_fd(), &name)?;
            sys::unlink(dir.fd(), &name)?;
            dir.sync()
        });
    match destroyed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(
            Some(tenant),
            path,
            "destroying the tenant's key",
            e,
        )),
    }
}

fn file_name(tenant: &TenantName) -> PathBuf {
    PathBuf::from(format!("{tenant}.key"))
}

/// The tenant a key file's name is for (scratch files and others: none).
fn tenant_of(name: &Path) -> Option<TenantName> {
    let stem = name.to_str()?.strip_suffix(".key")?;
    TenantName::new(stem).ok()
}

fn vanished(tenant: &TenantName, dir: &Dir, name: &Path) -> Error {
    Error::Encryption {
        tenant: Some(tenant.clone()),
        path: dir.join(name),
        reason: "the key file went away while the keys were re-wrapped (a destroy meanwhile); run rewrap again once no process creates or destroys tenants".to_string(),
    }
}
