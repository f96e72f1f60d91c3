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

use super::keys_lock::KeysLock;
use super::master_key::WRAPPED_LEN;
use super::{KeyProvider, MasterKey, TenantKey};
use crate::error::{Error, Result};
use crate::fs::dir::Dir;
use crate::fs::file_id::FileId;
use crate::fs::sys;
use crate::name::TenantName;

/// How many other tenants' key files a master key must fail to open
/// before a new key is refused (one damaged file must not block a root).
const MASTER_CHECKS: usize = 3;

/// A master key refused by `count` of the root's key files, `first` the
/// first refusal; `tenant` the one whose key was to be made, if any, and
/// `done` what came of the call ("no key was made").
fn not_this_roots(
    tenant: Option<&TenantName>,
    (first, count): (Error, usize),
    done: &str,
) -> Error {
    match first {
        Error::Encryption { path, .. } => Error::Encryption {
            tenant: tenant.cloned(),
            path,
            reason: format!(
                "the master key given opens none of the root's key files it tried ({count}, this one first), so it is not this root's, or those files are damaged: give the root's master key (TENANTED_MASTER_KEY), finish a master key rotation stopped half way by running it again, or put the key files back from their backup; {done}"
            ),
        },
        e => e,
    }
}

/// `e` with its reason (an [`Error::Encryption`]'s) or its message (any
/// other error, said as a key error in the keys directory `keys`) told
/// by `more`.
fn with_reason(e: Error, keys: PathBuf, more: impl FnOnce(&str) -> String) -> Error {
    match e {
        Error::Encryption {
            tenant,
            path,
            reason,
        } => Error::Encryption {
            tenant,
            path,
            reason: more(&reason),
        },
        e => Error::Encryption {
            tenant: e.tenant().cloned(),
            path: keys,
            reason: more(&e.to_string()),
        },
    }
}

/// The error of a rotation's look at a key file that neither master key
/// opens (`e`, the current key's error): nothing was re-wrapped. Said in
/// its own words, not the current key's refusal, which a rotation's mark
/// turns into "run the rotation again", the very thing refused (a review).
fn neither_opens(e: Error, keys: PathBuf) -> Error {
    const WHY: &str = "neither the current master key nor the new one opens this key file (damaged, another root's, copied from another tenant, or under a third key an earlier rotation cut short left it with: finish that one first, with the key it started from as the current one); put it back from the keys' backup. No key file was re-wrapped";
    match e {
        Error::Encryption { tenant, path, .. } => Error::Encryption {
            tenant,
            path,
            reason: WHY.to_owned(),
        },
        e => with_reason(e, keys, |why| format!("{why}. No key file was re-wrapped")),
    }
}

/// What a key file holds, as [`RootKeyStore::look_at`] finds it.
enum KeyFile {
    /// The key, opened by the master key.
    Key(TenantKey),
    /// No key: no file, or one being destroyed (zeroed).
    NoKey,
    /// A key file the master key does not open.
    Refused(Error),
    /// A file that cannot be read, or is no key file.
    Unreadable(Error),
}

/// What trying the master key on the root's key files found.
enum Tried {
    /// One opened.
    Opened,
    /// None opened, and `count` well-formed ones refused it.
    Refused { first: Error, count: usize },
    /// No well-formed key file to ask.
    NothingDecided,
}

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
    /// of the two master keys; running it again with both finishes it.
    /// Each file is read and written back holding the keys directory's
    /// lock, which every create, destroy and re-key takes to change a key,
    /// so none of them loses a key to a rotation. A process still given the
    /// old master key cannot read the keys re-wrapped (nor can the new key
    /// read keys such a process makes meanwhile): rotate while no process
    /// creates or re-keys tenants, then give every process the new key.
    /// Every file is read before any is written: one that neither key
    /// opens (damaged, another root's) stops the rotation with no key
    /// re-wrapped; one that fails midway says how many were.
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] naming a key file neither master key opens
    /// (nothing re-wrapped), or a file that could not be read or written
    /// midway (saying how many were re-wrapped before it: run it again).
    pub fn rewrap(&self, new_master: &MasterKey) -> Result<usize> {
        let Some(dir) = self.open_keys()? else {
            return Ok(0);
        };
        let store = RootKeyStore::new(self.root.clone(), new_master.clone());
        let files = self.key_files(&dir)?;
        // Every file is looked at before any is written: one that neither
        // key opens stopped a rotation midway, the files before it under
        // the new key and the rest under the old, and the error did not
        // say so (an outside probe: 62 of 100 re-wrapped).
        for (tenant, name) in &files {
            if let Err(e) = self.read_file(&dir, tenant, name)
                && store.read_file(&dir, tenant, name).is_err()
            {
                return Err(neither_opens(e, self.keys_dir()));
            }
        }
        let rotating = |e| {
            Error::io(
                None,
                dir.join(Path::new(ROTATING)),
                "marking the rotation",
                e,
            )
        };
        if files.is_empty() {
            return Ok(0);
        }
        // Until every key is re-wrapped, no single master key opens them
        // all: fleet runs refuse the root meanwhile (`check_root_keys`),
        // which one key file proved sound to either key (an outside probe:
        // `status` called a half-rotated fleet current, exit 0).
        sys::open_or_create(dir.fd(), Path::new(ROTATING))
            .and_then(|_| dir.sync())
            .map_err(rotating)?;
        let mut count = 0;
        for (tenant, name) in &files {
            match self.rewrap_file(&dir, &store, tenant, name) {
                Ok(rewrapped) => count += usize::from(rewrapped),
                Err(e) => return Err(self.stopped(&dir, &files, e, count)),
            }
        }
        sys::unlink(dir.fd(), Path::new(ROTATING))
            .and_then(|()| dir.sync())
            .map_err(|e| Error::io(None, dir.join(Path::new(ROTATING)), "removing the mark of the finished rotation (every key was re-wrapped: remove the file by hand)", e))?;
        Ok(count)
    }

    /// The error of a rotation stopped by `e` after re-wrapping `count` of
    /// `files`. When every one still opens under this store's master key
    /// (nothing changed: another process held the keys' lock, the disk was
    /// full at the first file), the rotation's mark goes and `e` is said as
    /// it is: the mark made fleet runs refuse a root whose keys were fine
    /// (a review). Otherwise the mark stays, and the error says how many
    /// were re-wrapped and how to finish.
    fn stopped(&self, dir: &Dir, files: &[(TenantName, PathBuf)], e: Error, count: usize) -> Error {
        let untouched = files
            .iter()
            .all(|(t, name)| self.read_file(dir, t, name).is_ok());
        if untouched {
            if let Err(e) = sys::unlink(dir.fd(), Path::new(ROTATING)).and_then(|()| dir.sync()) {
                tracing::warn!(error = %e, "could not remove the mark of a rotation that changed nothing");
            }
            return e;
        }
        let total = files.len();
        with_reason(e, self.keys_dir(), |why| {
            format!(
                "{why}. The rotation stopped after re-wrapping {count} of {total} key files: the root's keys are now under both master keys; keep both, and run the rotation again with the same two keys to finish it"
            )
        })
    }

    /// The tenants' key files in `dir` (current, staged and retired ones).
    fn key_files(&self, dir: &Dir) -> Result<Vec<(TenantName, PathBuf)>> {
        let entries =
            (dir.entries()).map_err(|e| Error::io(None, self.keys_dir(), "listing the keys", e))?;
        let mut files = Vec::new();
        for entry in entries {
            let (name, _) =
                entry.map_err(|e| Error::io(None, dir.path(), "listing the keys", e))?;
            if let Some((tenant, _)) = tenant_of(&name) {
                files.push((tenant, name));
            }
        }
        Ok(files)
    }

    /// Re-wraps the key file `name` of `tenant` in `dir` for `store`'s
    /// master key: whether it did (not if it was gone, or re-wrapped
    /// already by a rotation that stopped half way).
    fn rewrap_file(
        &self,
        dir: &Dir,
        store: &RootKeyStore,
        tenant: &TenantName,
        name: &Path,
    ) -> Result<bool> {
        // Read and written back under the lock every change of a key
        // takes: a re-key committing in between would otherwise have its
        // new key overwritten with the old one.
        let handle = dir
            .duplicate()
            .map_err(|e| Error::io(None, dir.path(), "opening the keys", e))?;
        let keys = KeysLock::take(handle, Some(tenant))?;
        let key = match self.read_file(keys.dir(), tenant, name) {
            Ok(Some(key)) => key,
            // Gone since the listing: destroyed, or committed by a re-key.
            Ok(None) => return Ok(false),
            // Re-wrapped already by a rotation that stopped half way:
            // running it again finishes it.
            Err(_) if matches!(store.read_file(keys.dir(), tenant, name), Ok(Some(_))) => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        store.write_file(keys.dir(), tenant, name, &key)?;
        Ok(true)
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

    /// The keys directory, locked for a change of `tenant`'s keys (see
    /// `keys_lock.rs`); made first with `make`.
    fn locked(&self, tenant: &TenantName, make: bool) -> Result<Option<KeysLock>> {
        (self.dir(tenant, make)?)
            .map(|dir| KeysLock::take(dir, Some(tenant)))
            .transpose()
    }

    /// The keys directory, open; `None` when the root keeps none.
    fn open_keys(&self) -> Result<Option<Dir>> {
        match Dir::open(&self.root, &self.keys_dir()) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(None, self.keys_dir(), "opening the keys", e)),
        }
    }

    fn read(&self, dir: &Dir, tenant: &TenantName) -> Result<Option<TenantKey>> {
        self.read_file(dir, tenant, &file_name(tenant))
    }

    /// The key in the file `name` (`tenant`'s current or staged one). A
    /// file of zeros is a key being destroyed ([`destroy_in`] zeroes it,
    /// then unlinks it): no key, not one the master key fails to open
    /// (a destroy running meanwhile, or killed between the two, made
    /// every open and re-key say the master key was wrong).
    fn read_file(&self, dir: &Dir, tenant: &TenantName, name: &Path) -> Result<Option<TenantKey>> {
        match self.look_at(dir, tenant, name) {
            KeyFile::Key(key) => Ok(Some(key)),
            KeyFile::NoKey => Ok(None),
            KeyFile::Refused(e) | KeyFile::Unreadable(e) => Err(e),
        }
    }

    /// What the file `name` holds for `tenant` (see [`KeyFile`]).
    fn look_at(&self, dir: &Dir, tenant: &TenantName, name: &Path) -> KeyFile {
        let path = dir.join(name);
        let file = match sys::open_file(dir.fd(), name) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return KeyFile::NoKey,
            Err(e) => {
                let e = Error::io(Some(tenant), path, "opening the tenant's key", e);
                return KeyFile::Unreadable(e);
            }
        };
        let mut bytes = zeroize::Zeroizing::new([0u8; FILE_LEN + 1]);
        let content = match sys::read_at(file.as_fd(), bytes.as_mut(), 0, name) {
            Ok(read) => bytes.get(..read).unwrap_or_default(),
            Err(e) => {
                let e = Error::io(Some(tenant), path, "reading the tenant's key", e);
                return KeyFile::Unreadable(e);
            }
        };
        if content.len() == FILE_LEN && content.iter().all(|&b| b == 0) {
            return KeyFile::NoKey;
        }
        let encryption = |reason: &str| Error::Encryption {
            tenant: Some(tenant.clone()),
            path: path.clone(),
            reason: reason.to_string(),
        };
        let Some(wrapped) = Some(content)
            .filter(|b| b.len() == FILE_LEN)
            .and_then(|b| b.strip_prefix(&MAGIC[..]))
        else {
            return KeyFile::Unreadable(encryption(
                "this is not a tenanted key file (its length or first bytes are wrong: damaged, or written by something else); put it back from the keys' backup",
            ));
        };
        match self.master.unwrap(tenant.as_str(), wrapped) {
            Some(key) => KeyFile::Key(key),
            // Cut short, a rotation leaves some files under each key: say
            // so where one is refused (a re-key with the new key blamed the
            // file: an outside probe).
            None if sys::symlink_metadata(&dir.join(Path::new(ROTATING))).is_ok() => {
                KeyFile::Refused(encryption(
                    "the master key does not open this key file, and a master key rotation is running or was cut short (the keys directory holds its mark): this file may be under the other key; finish the rotation by running it again with the master key it started from as the current one and the same new one",
                ))
            }
            None => KeyFile::Refused(encryption(
                "the master key does not open this key file (another root's master key, a file copied from another tenant, or a damaged file); give the master key it was made with",
            )),
        }
    }

    /// Before a new key is written: the master key must open the key
    /// files already in `dir` (other tenants' current ones: the first it
    /// opens proves it, and [`MASTER_CHECKS`] it cannot open refuse it). A
    /// valid but wrong master key used to make new tenants under it,
    /// splitting the root between two master keys: a rotation could never
    /// finish, and the new tenants were lost with the wrong key. Checked
    /// before every new key, not once: a `master-key rotate` by another
    /// process turns a key that was right into the old one (one key file
    /// read, under the keys' lock, which a create takes anyway).
    fn check_master(&self, dir: &Dir, tenant: &TenantName) -> Result<()> {
        // A key made now would be under one of two master keys (a review).
        refuse_while_rotating(dir, Some(tenant), "no key was made")?;
        let listing = |e| Error::io(Some(tenant), dir.path(), "listing the keys", e);
        match self
            .opens_the_roots_keys(dir, Some(tenant))
            .map_err(listing)?
        {
            Tried::Opened | Tried::NothingDecided => Ok(()),
            Tried::Refused { first, count } => Err(not_this_roots(
                Some(tenant),
                (first, count),
                "no key was made",
            )),
        }
    }

    /// Tries the master key on the current key files in `dir` (but
    /// `except`'s), until one opens or [`MASTER_CHECKS`] refuse it. A
    /// file that is no key file, or cannot be read, proves nothing either
    /// way: only well-formed files the master key fails to open count.
    fn opens_the_roots_keys(&self, dir: &Dir, except: Option<&TenantName>) -> io::Result<Tried> {
        let mut refused = Vec::new();
        let opened = dir.find_entry(|name| {
            let (other, staged) = tenant_of(name)?;
            if staged || Some(&other) == except {
                return None;
            }
            match self.look_at(dir, &other, &file_name(&other)) {
                KeyFile::Key(_) => Some(true),
                KeyFile::NoKey | KeyFile::Unreadable(_) => None,
                KeyFile::Refused(e) => {
                    refused.push(e);
                    (refused.len() >= MASTER_CHECKS).then_some(false)
                }
            }
        })?;
        let count = refused.len();
        Ok(match (opened, refused.into_iter().next()) {
            (Some(true), _) => Tried::Opened,
            (_, Some(first)) => Tried::Refused { first, count },
            (_, None) => Tried::NothingDecided,
        })
    }

    fn write(&self, dir: &Dir, tenant: &TenantName, key: &TenantKey) -> Result<()> {
        self.write_file(dir, tenant, &file_name(tenant), key)
    }

    /// Writes `key` into the file `name`, replacing it atomically.
    fn write_file(
        &self,
        dir: &Dir,
        tenant: &TenantName,
        name: &Path,
        key: &TenantKey,
    ) -> Result<()> {
        let path = dir.join(name);
        let io_error = |e| Error::io(Some(tenant), &path, "storing the tenant's key", e);
        let wrapped = self.master.wrap(tenant.as_str(), key, &path)?;
        // One scratch name per key file, which a destroy also destroys: the
        // writer holds the keys directory's lock, and a crash that leaves
        // the scratch file (a wrapped key) must not outlive the tenant.
        let scratch = scratch_name(name);
        destroy_in(dir, tenant, &scratch)?;
        let written = sys::create_new_private(dir.fd(), &scratch).and_then(|mut file| {
            sys::write_all(&mut file, &[&MAGIC[..], &wrapped].concat(), &scratch)?;
            sys::sync(file.as_fd(), &scratch)?;
            sys::rename(dir.fd(), &scratch, name)?;
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
        if let Some(keys) = self.locked(tenant, true)? {
            self.check_master(keys.dir(), tenant)?;
            // A key of an earlier incarnation is overwritten first, so
            // that its bytes do not stay on the disk under a free block.
            destroy_all(keys.dir(), tenant)?;
            self.write(keys.dir(), tenant, &key)?;
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
        match self.locked(tenant, false)? {
            Some(keys) => destroy_all(keys.dir(), tenant),
            None => Ok(()),
        }
    }

    fn stage_key(&self, tenant: &TenantName) -> Result<TenantKey> {
        let key = TenantKey::generate().map_err(|e| Error::Encryption {
            tenant: Some(tenant.clone()),
            path: self.keys_dir().join(staged_name(tenant)),
            reason: format!("no randomness for a new key ({e}); retry the re-key"),
        })?;
        if let Some(keys) = self.locked(tenant, true)? {
            self.check_master(keys.dir(), tenant)?;
            destroy_in(keys.dir(), tenant, &staged_name(tenant))?;
            self.write_file(keys.dir(), tenant, &staged_name(tenant), &key)?;
        }
        Ok(key)
    }

    fn staged_key(&self, tenant: &TenantName) -> Result<Option<TenantKey>> {
        match self.dir(tenant, false)? {
            Some(dir) => self.read_file(&dir, tenant, &staged_name(tenant)),
            None => Ok(None),
        }
    }

    fn commit_staged_key(&self, tenant: &TenantName) -> Result<()> {
        match self.locked(tenant, false)? {
            Some(keys) => commit_in(keys.dir(), tenant),
            None => Ok(()),
        }
    }

    fn staged_tenants(&self) -> Result<Vec<TenantName>> {
        let Some(dir) = self.open_keys()? else {
            return Ok(Vec::new());
        };
        let listing = |e| Error::io(None, self.keys_dir(), "listing the keys", e);
        let mut staged = Vec::new();
        for entry in dir.entries().map_err(listing)? {
            let (name, _) = entry.map_err(listing)?;
            if let Some((tenant, true)) = tenant_of(&name) {
                staged.push(tenant);
            }
        }
        Ok(staged)
    }

    fn discard_staged_key(&self, tenant: &TenantName) -> Result<()> {
        match self.locked(tenant, false)? {
            Some(keys) => destroy_in(keys.dir(), tenant, &staged_name(tenant)),
            None => Ok(()),
        }
    }

    fn holds_the_roots_keys(&self) -> bool {
        let Ok(dir) = Dir::open(&self.root, &self.keys_dir()) else {
            return false;
        };
        matches!(self.opens_the_roots_keys(&dir, None), Ok(Tried::Opened))
    }

    fn key_location(&self, tenant: &TenantName) -> Option<PathBuf> {
        Some(self.key_path(tenant))
    }

    /// The master key must open the root's key files: the first it opens
    /// proves it, and one it cannot open with none opened refuses it (as
    /// before a new key is made, see `check_master`).
    fn check_root_keys(&self) -> Result<()> {
        let Some(dir) = self.open_keys()? else {
            return Ok(());
        };
        refuse_while_rotating(&dir, None, FLEET_REFUSED)?;
        let listing = |e| Error::io(None, dir.path(), "listing the keys", e);
        match self.opens_the_roots_keys(&dir, None).map_err(listing)? {
            Tried::Opened | Tried::NothingDecided => Ok(()),
            Tried::Refused { first, count } => {
                Err(not_this_roots(None, (first, count), FLEET_REFUSED))
            }
        }
    }
}

/// The mark a rotation keeps in the keys directory while keys are under
/// two master keys (see [`RootKeyStore::rewrap`]). Hidden: no tenant's.
const ROTATING: &str = ".rotating";

/// Refuses what would rely on one master key opening every key file (a
/// fleet run, a new key for `tenant`) while a rotation's mark is in the
/// keys directory `dir`; `done` says what came of the call.
///
/// # Errors
///
/// [`Error::Encryption`] naming the mark and how to finish the rotation.
fn refuse_while_rotating(dir: &Dir, tenant: Option<&TenantName>, done: &str) -> Result<()> {
    let mark = dir.join(Path::new(ROTATING));
    if sys::symlink_metadata(&mark).is_err() {
        return Ok(());
    }
    Err(Error::Encryption {
        tenant: tenant.cloned(),
        path: mark,
        reason: format!(
            "a master key rotation is running, or was cut short, so the keys may be under two master keys and neither opens them all; wait for it, or finish it by running it again with the master key it started from as the current one and the same new one (`tenanted master-key rotate`); {done}"
        ),
    })
}

/// What a fleet run refused by [`RootKeyStore::check_root_keys`] did.
const FLEET_REFUSED: &str = "no tenant was looked at (their versions and sizes can be read without the key, but no process given this master key can open them)";

impl fmt::Debug for RootKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootKeyStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Destroys every key file of `tenant`: its current key, a staged one and
/// one a crashed commit left retired.
fn destroy_all(dir: &Dir, tenant: &TenantName) -> Result<()> {
    for name in [file_name(tenant), staged_name(tenant)] {
        destroy_in(dir, tenant, &scratch_name(&name))?;
    }
    destroy_in(dir, tenant, &staged_name(tenant))?;
    forget_retired(dir, tenant)?;
    destroy_in(dir, tenant, &file_name(tenant))
}

/// Makes the staged key current: the current file is first linked under
/// a retired name, the staged file renamed over it (one step: a reader
/// finds one whole key file or the other), the directory synced, and only
/// then the retired one destroyed. A crash leaves the staged key current,
/// or both kept, never neither.
fn commit_in(dir: &Dir, tenant: &TenantName) -> Result<()> {
    let (current, staged, retired) = (file_name(tenant), staged_name(tenant), retired_name(tenant));
    let path = dir.join(&staged);
    if !sys::exists(&path) {
        return Ok(());
    }
    forget_retired(dir, tenant)?;
    let swapped = match sys::link(dir.fd(), &current, &retired) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .and_then(|()| sys::rename(dir.fd(), &staged, &current))
    .and_then(|()| dir.sync());
    swapped.map_err(|e| Error::io(Some(tenant), path, "making the staged key current", e))?;
    destroy_in(dir, tenant, &retired)
}

/// Removes a retired key file a crashed commit left. Still a second name
/// of the current key (the crash came before the rename), it is only
/// unlinked: zeroing it would zero the current key.
fn forget_retired(dir: &Dir, tenant: &TenantName) -> Result<()> {
    let (current, retired) = (file_name(tenant), retired_name(tenant));
    let same = FileId::in_dir(dir, &retired)
        .and_then(|r| Ok(r.is_some() && r == FileId::in_dir(dir, &current)?));
    match same {
        Ok(true) => match sys::unlink(dir.fd(), &retired) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(
                Some(tenant),
                dir.join(&retired),
                "removing a retired key",
                e,
            )),
            _ => Ok(()),
        },
        Ok(false) => destroy_in(dir, tenant, &retired),
        Err(e) => Err(Error::io(
            Some(tenant),
            dir.join(&retired),
            "looking at a retired key",
            e,
        )),
    }
}

/// Overwrites `tenant`'s key file `name` with zeros, syncs it, removes it
/// and syncs the directory: once this returns, no crash brings the key
/// back.
fn destroy_in(dir: &Dir, tenant: &TenantName, name: &Path) -> Result<()> {
    let path = dir.join(name);
    let destroyed = sys::open_file(dir.fd(), name)
        .and_then(|_| sys::open_or_create(dir.fd(), name))
        .and_then(|mut file| {
            sys::write_all(&mut file, &[0u8; FILE_LEN], name)?;
            sys::sync(file.as_fd(), name)?;
            sys::unlink(dir.fd(), name)?;
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
    PathBuf::from(format!("{tenant}{CURRENT}"))
}

/// The scratch name a key file is written under before its rename.
fn scratch_name(name: &Path) -> PathBuf {
    let mut scratch = std::ffi::OsString::from(".");
    scratch.push(name);
    scratch.push(".tmp");
    PathBuf::from(scratch)
}

/// A key staged by a re-key: no tenant's current key file ends so.
fn staged_name(tenant: &TenantName) -> PathBuf {
    PathBuf::from(format!("{tenant}{STAGED}"))
}

/// The key a commit replaces, until it is destroyed.
fn retired_name(tenant: &TenantName) -> PathBuf {
    PathBuf::from(format!("{tenant}{RETIRED}"))
}

const CURRENT: &str = ".key";
const STAGED: &str = ".next-key";
const RETIRED: &str = ".retired-key";

/// The tenant a key file's name is for, and whether the key is staged
/// (scratch files and others: none). A retired key is not re-wrapped: it
/// is destroyed by the next commit or destroy of its tenant.
fn tenant_of(name: &Path) -> Option<(TenantName, bool)> {
    let name = name.to_str()?;
    let (stem, staged) = match name.strip_suffix(CURRENT) {
        Some(stem) => (stem, false),
        None => (name.strip_suffix(STAGED)?, true),
    };
    TenantName::new(stem).ok().map(|t| (t, staged))
}
