//! The one walk of the root.
//!
//! It reads the directories the path template describes, depth first, and
//! sorts every entry with one small step, [`Walker::classify`]: descend
//! into it, report a tenant, or skip it. [`Tenants`](crate::Tenants) lists
//! tenants with it ([`Mode::Tenants`]); the debris sweep finds the files
//! lying beside tenants' databases with it ([`Mode::Siblings`]). Both
//! therefore invert the template, check names and check buckets the same
//! way. It holds one open directory per template level, never every name.
//! A fleet run walks with [`Mode::Candidates`]: each tenant comes with the
//! directory it was found in, open, so that the run names its files
//! relative to it (one path component to resolve instead of the whole
//! path) and looks at the database itself instead of the walk.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::FileType;
use rustix::io::Errno;

use tracing::{debug, warn};

use super::layout::Layout;
use super::path_template::Captures;
use crate::busy::WaitedFor;
use crate::error::{Error, Result, is_fd_exhaustion};
use crate::fs::entries::{Entries, Entry};
use crate::fs::lock::held_for;
use crate::fs::siblings::{fence_path, lock_path};
use crate::fs::sys;
use crate::name::{self, TenantName};

/// What a walk looks for.
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    /// Tenants' database files. A tenant's own directory is a tenant: it
    /// is not looked into (see [`Walker::tenant_dir`]).
    Tenants,
    /// Like `Tenants`, each one found with the directory it was found in
    /// ([`Found::below`]); a fleet run's walk, which also lists a tenant
    /// whose destroy still runs (its read waits for the destroy).
    Candidates,
    /// Files in the directories that hold tenants' databases (and beside
    /// tenants' own directories) which `owner` says belong to a database
    /// (or tenant directory: it returns that name), whether or not the
    /// database exists; and tenants' own directories without their
    /// database. Entries the directory cannot return are skipped;
    /// `operation` names the walk in errors.
    Siblings {
        owner: fn(&str) -> Option<&str>,
        operation: &'static str,
    },
}

impl Mode {
    fn operation(self) -> &'static str {
        match self {
            Mode::Tenants | Mode::Candidates => "listing tenants",
            Mode::Siblings { operation, .. } => operation,
        }
    }
}

/// A tenant the walk found, and the path of its database file (for
/// [`Mode::Siblings`], the database the sibling belongs to, which may not
/// exist; empty for a tenant directory found by [`Mode::Tenants`], whose
/// callers want names only).
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) tenant: TenantName,
    pub(crate) path: PathBuf,
    /// With [`Mode::Candidates`], when the directory could be opened.
    pub(crate) below: Option<Below>,
    /// Marked by a restore replacing the tenant, or a re-key, that is not
    /// running (it died), its database fenced off: the tenant is there,
    /// old or new, once what it left is put back, which a fleet run's read
    /// does (`storage::put_back_interrupted`).
    pub(crate) interrupted: bool,
}

/// What a mark beside a tenant's directory makes of it in a walk (see
/// `Walker::mark`).
enum Mark {
    /// Listed as any tenant.
    Shown,
    /// Left out: a destroy's, with the database gone.
    Hidden,
    /// Listed, flagged [`Found::interrupted`].
    Interrupted,
}

/// The open directory a database was found below: the same directory as
/// the start of [`Found::path`] (it was read by that path).
#[derive(Debug)]
pub(crate) struct Below {
    dir: Arc<OwnedFd>,
    /// Where the database's path below `dir` starts in [`Found::path`].
    start: usize,
    /// The inode number of the entry it was found by (the tenant's
    /// directory, or the database file): where it sits on disk, near the
    /// files made just before and after it.
    inode: u64,
}

impl Found {
    /// A tenant a caller names, at `path`, with no open directory.
    pub(crate) fn listed(tenant: TenantName, path: PathBuf) -> Self {
        Found {
            tenant,
            path,
            below: None,
            interrupted: false,
        }
    }

    /// The directory the walk found the database in, and the database's
    /// path below it; `None` without [`Mode::Candidates`].
    pub(crate) fn below(&self) -> Option<(BorrowedFd<'_>, &Path)> {
        let below = self.below.as_ref()?;
        let bytes = self.path.as_os_str().as_bytes().get(below.start..)?;
        Some((below.dir.as_fd(), Path::new(OsStr::from_bytes(bytes))))
    }

    /// The inode number of the entry the walk found it by; `None` without
    /// [`Mode::Candidates`].
    pub(crate) fn inode(&self) -> Option<u64> {
        self.below.as_ref().map(|below| below.inode)
    }
}

/// What the directories above an entry captured.
#[derive(Debug, Clone, Default)]
struct Captured {
    tenant: Option<String>,
    bucket: Option<String>,
}

impl Captured {
    /// These captures, plus what one more path component captured.
    fn with(&self, more: &Captures<'_>) -> Captured {
        Captured {
            tenant: more
                .tenant
                .map(str::to_owned)
                .or_else(|| self.tenant.clone()),
            bucket: more
                .bucket
                .map(str::to_owned)
                .or_else(|| self.bucket.clone()),
        }
    }
}

/// A directory being read, and what its path captured.
struct Frame {
    dir: PathBuf,
    entries: Entries,
    captured: Captured,
}

/// What one directory entry is to the walk.
enum Step {
    /// A directory on the way to tenants' files: read it next.
    Descend(PathBuf, Captured),
    /// A tenant.
    Found(Found),
    /// Not part of the layout (or not what this walk looks for).
    Skip,
    /// Put in the root by hand where the layout has tenants, and not
    /// taken for one (see [`Error::StrayEntry`]): a fleet run's walk
    /// returns it as an error.
    Stray(Error),
    /// An entry the walk could not look at: an error of the walk.
    Unreadable(Error),
}

/// Where an entry sits in the template.
enum Level {
    /// A directory above the tenants' files.
    Dir,
    /// The tenant's own directory, whose only file of interest has a known
    /// name.
    TenantDir,
    /// The database files' level.
    File,
}

/// The walk itself: an iterator of the tenants found, in file-system order.
pub(crate) struct Walker {
    layout: Layout,
    mode: Mode,
    stack: Vec<Frame>,
    /// The directory to read first, until it is opened.
    start: Option<(PathBuf, Captured)>,
    /// The template level of `stack[0]`: 0 for the root, more for a part
    /// of a walk (see [`Walker::next_part`]).
    base: usize,
    /// The directory `start` is in (none for the root).
    above: Option<Arc<OwnedFd>>,
    /// Whether a stray entry is returned as an error (a fleet run's walk)
    /// or only warned about (see [`Walker::stray`]).
    report_strays: bool,
}

/// A piece of a walk, for a walk shared by several threads: a directory
/// below the root, for one thread to walk alone, or a tenant found at the
/// top.
pub(crate) enum Part {
    /// A walk of one directory below the root (a bucket).
    Subtree(Walker),
    /// A tenant whose database is right in the root.
    Found(Found),
}

impl Walker {
    pub(super) fn new(layout: Layout, mode: Mode) -> Self {
        let root = layout.root().to_path_buf();
        Walker {
            layout,
            mode,
            stack: Vec::new(),
            start: Some((root, Captured::default())),
            base: 0,
            above: None,
            report_strays: matches!(mode, Mode::Candidates),
        }
    }

    /// This walk, returning each stray entry as an error (as a walk in
    /// [`Mode::Candidates`] does), for a fleet run that lists tenants by
    /// name.
    pub(crate) fn reporting_strays(mut self) -> Self {
        self.report_strays = true;
        self
    }

    /// The next part of a walk that has not descended anywhere: each
    /// directory of the root as a walk of its own, each tenant in the root
    /// as itself. Threads that share a fleet run take parts and walk them
    /// apart, instead of each tenant through one lock. The rest of the
    /// walk is still this iterator.
    pub(crate) fn next_part(&mut self) -> Option<Result<Part>> {
        loop {
            match self.next_step()? {
                Ok(Step::Descend(dir, captured)) => {
                    return Some(Ok(Part::Subtree(Walker {
                        layout: self.layout.clone(),
                        mode: self.mode,
                        stack: Vec::new(),
                        start: Some((dir, captured)),
                        base: self.base + self.stack.len(),
                        above: self
                            .stack
                            .last()
                            .map(|frame| Arc::clone(frame.entries.dir())),
                        report_strays: self.report_strays,
                    })));
                }
                Ok(Step::Found(found)) => return Some(Ok(Part::Found(found))),
                Ok(Step::Skip | Step::Stray(_) | Step::Unreadable(_)) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The next entry of the directory on top of the stack, sorted (the
    /// start opened first): `None` when the stack is empty.
    fn next_step(&mut self) -> Option<Result<Step>> {
        if let Err(e) = self.open_start() {
            // An iterator that failed to start ends: it is not retried.
            self.start = None;
            return Some(Err(e));
        }
        loop {
            let frame = self.stack.last_mut()?;
            let index = match frame.entries.advance() {
                None => {
                    self.stack.pop();
                    continue;
                }
                Some(Ok(index)) => index,
                Some(Err(_)) if matches!(self.mode, Mode::Siblings { .. }) => continue,
                Some(Err(e)) => {
                    let dir = frame.dir.clone();
                    return Some(Err(self.error(dir, e)));
                }
            };
            match self.classify(index) {
                Step::Skip => {}
                Step::Stray(e) | Step::Unreadable(e) => return Some(Err(e)),
                step => return Some(Ok(step)),
            }
        }
    }

    /// Opens the directory this walk starts in (a part's bucket) if it is
    /// not open yet. When that fails for want of descriptors (EMFILE,
    /// ENFILE) the walk stays unstarted ([`Walker::unstarted`]), so that a
    /// fleet worker holding other directories open can hand it back and
    /// try it again once it has closed them.
    ///
    /// # Errors
    ///
    /// The directory cannot be opened or read.
    pub(crate) fn open_start(&mut self) -> Result<()> {
        let Some((dir, captured)) = self.start.take() else {
            return Ok(());
        };
        let again = (dir.clone(), captured.clone());
        let opened = self.open(dir, captured);
        if let Err(Error::Io { cause, .. }) = &opened
            && is_fd_exhaustion(cause)
        {
            self.start = Some(again);
        }
        opened
    }

    /// Whether the directory this walk starts in is still to be opened.
    pub(crate) fn unstarted(&self) -> bool {
        self.start.is_some()
    }

    /// Starts reading `dir`: the root, or an entry of the directory on
    /// top of the stack (or above the start), opened through it.
    fn open(&mut self, dir: PathBuf, captured: Captured) -> Result<()> {
        let parent = (self.stack.last())
            .map(|frame| Arc::clone(frame.entries.dir()))
            .or_else(|| self.above.clone());
        let opened = match &parent {
            Some(parent) => open_below(parent.as_fd(), &dir),
            None => sys::open_root(&dir),
        };
        // A bucket of tenants' own directories, for a walk that lists
        // tenants: the marks of destroys first.
        let whole = matches!(self.mode, Mode::Tenants | Mode::Candidates)
            && self.layout.template().owns_directory()
            && self.base + self.stack.len() + 2 == self.layout.template().depth();
        let entries = opened.and_then(|fd| match whole {
            true => Entries::read_whole(Arc::new(fd)),
            false => Ok(Entries::streamed(Arc::new(fd))),
        });
        match entries {
            Ok(entries) => {
                self.stack.push(Frame {
                    dir,
                    entries,
                    captured,
                });
                Ok(())
            }
            // A directory removed under us (a tenant destroyed mid-walk) is not an error.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            // Replaced by a link or a file since it was listed.
            Err(e) if parent.is_some() && is_no_directory(&e) => {
                let reason = "it is no longer a directory, and tenanted never follows links inside the root; move it out of the root";
                match self.stray(None, dir, reason.to_owned()) {
                    Step::Stray(e) => Err(e),
                    _ => Ok(()),
                }
            }
            Err(e) => Err(self.error(dir, e)),
        }
    }

    fn error(&self, dir: PathBuf, e: io::Error) -> Error {
        Error::io(None, dir, self.mode.operation(), e)
    }

    /// Sorts entry `index` of the directory on top of the stack.
    fn classify(&self, index: usize) -> Step {
        let Some(frame) = self.stack.last() else {
            return Step::Skip;
        };
        let Some(entry) = frame.entries.get(index) else {
            return Step::Skip;
        };
        let entry = &Named { frame, entry };
        let depth = self.base + self.stack.len() - 1;
        let Some(name) = entry.name().to_str() else {
            debug!(path = %entry.path().display(), "skipping non-UTF-8 entry");
            return Step::Skip;
        };
        if let Mode::Siblings { owner, .. } = self.mode {
            let beside_tenant_dirs = self.layout.template().owns_directory()
                && depth + 2 == self.layout.template().depth()
                && name.starts_with('.');
            if beside_tenant_dirs || matches!(self.level(depth, false), Level::File) {
                return self.sibling(frame, depth, entry, owner(name));
            }
        }
        let template = self.layout.template();
        let Some(captures) = template.match_component(depth, name, self.layout.bucket_width())
        else {
            return Step::Skip;
        };
        // A captured name that is not a valid tenant is skipped before
        // descending into it.
        if let Some(tenant) = captures.tenant
            && let Err(e) = name::validate(tenant)
        {
            return self.not_a_tenant_name(entry, name, &e);
        }
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(e) => return self.unknown_type(entry, e),
        };
        match self.level(depth, captures.tenant.is_some()) {
            Level::Dir if file_type == FileType::Directory => {
                Step::Descend(entry.path(), frame.captured.with(&captures))
            }
            Level::Dir => self.not_what_the_layout_has(entry, file_type, "a directory"),
            Level::TenantDir => self.tenant_dir(frame, (entry, name), file_type, depth, &captures),
            Level::File => self.database_file(frame, entry, file_type, &captures),
        }
    }

    /// An entry of the layout whose type the directory listing did not
    /// give (some file systems do not) and a `stat` could not find out.
    /// One removed since it was listed (a destroy) is gone; any other is
    /// an error of the walk, as a directory that cannot be read is: a
    /// run that left it out must not call itself complete. (A sweep
    /// skips it, as it skips every entry it cannot read.)
    fn unknown_type(&self, entry: &Named<'_>, e: io::Error) -> Step {
        match (e.kind(), self.mode) {
            (io::ErrorKind::NotFound, _) | (_, Mode::Siblings { .. }) => Step::Skip,
            _ => Step::Unreadable(self.error(entry.path(), e)),
        }
    }

    fn level(&self, depth: usize, tenant_here: bool) -> Level {
        let levels = self.layout.template().depth();
        if depth + 1 == levels {
            Level::File
        } else if tenant_here && depth + 2 == levels {
            Level::TenantDir
        } else {
            Level::Dir
        }
    }

    /// The tenant's own directory. A create publishes it whole, with its
    /// database in it, and a destroy hides it before removing it (see
    /// `storage/coordination/tenant_path.rs`): a listing trusts the entry and never
    /// looks inside. The debris sweep looks: a directory without its
    /// database was made by hand or had it moved away, and one with
    /// it may hold debris beside the database.
    fn tenant_dir(
        &self,
        frame: &Frame,
        (entry, name): (&Named<'_>, &str),
        file_type: FileType,
        depth: usize,
        captures: &Captures<'_>,
    ) -> Step {
        if file_type != FileType::Directory {
            return self.not_what_the_layout_has(entry, file_type, "a directory");
        }
        let Some(tenant) = self.tenant(&frame.captured, captures) else {
            return self.skip_misplaced(entry.path(), &frame.captured, captures);
        };
        let destroying = frame.entries.being_destroyed(OsStr::new(name));
        let replacing = !destroying && frame.entries.being_replaced(OsStr::new(name));
        let marked = destroying || replacing;
        if let (Mode::Tenants, false) = (self.mode, marked) {
            // Names only: no path to build.
            return Step::Found(Found {
                tenant,
                path: PathBuf::new(),
                below: None,
                interrupted: false,
            });
        }
        // The tenant's directory and the file in it, in one allocation.
        let mut path = entry.path_with_room(LONGEST_FILE_NAME);
        let file_start = path.as_os_str().len() + 1;
        self.layout
            .push_component(depth + 1, tenant.as_str(), &mut path);
        let below_len = path.as_os_str().len() - file_start + name.len() + 1;
        let interrupted = match self.mark(frame, name, (destroying, replacing), (&path, below_len))
        {
            Ok(Mark::Shown) => false,
            Ok(Mark::Interrupted) => true,
            Ok(Mark::Hidden) => {
                debug!(path = %entry.path().display(), "skipping a tenant being destroyed");
                return Step::Skip;
            }
            // Whether it is there cannot be told: an error of the walk,
            // as in `unknown_type` (a second review: it was left out).
            Err(e) => return Step::Unreadable(self.error(path, e)),
        };
        match self.mode {
            Mode::Tenants => Step::Found(Found {
                tenant,
                path: PathBuf::new(),
                below: None,
                interrupted,
            }),
            Mode::Candidates => Step::Found(Found {
                below: below((frame, entry), &path, below_len),
                tenant,
                path,
                interrupted,
            }),
            Mode::Siblings { .. } => match stat_below(frame, &path, below_len) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Step::Found(Found {
                    tenant,
                    path,
                    below: None,
                    interrupted,
                }),
                _ => Step::Descend(entry.path(), frame.captured.with(captures)),
            },
        }
    }

    /// What the mark of a destroy (`destroying`) or a replace
    /// (`replacing`) beside the tenant directory `name` makes of it (its
    /// database at `path`, whose last `below_len` bytes are below
    /// `frame`'s directory).
    ///
    /// A mark is a hint to look (rare). A destroy fences the database
    /// right after marking, and puts it back before it unmarks: the tenant
    /// is there exactly when its database is, but to a fleet run while the
    /// destroy still runs (its entry lock held): it may give up (another
    /// process holds the tenant), and a backup run that left the tenant
    /// out would report success without it; its read waits for the
    /// destroy, then copies the tenant or finds it gone. A destroy that
    /// died leaves it hidden until `remove_debris` finishes it.
    ///
    /// A replace (a restore, a re-key) always leaves a tenant, old or new:
    /// one still running is waited for by the read
    /// (`storage/coordination/undecided.rs`); one that died, with the
    /// database fenced off, is [`Mark::Interrupted`]: listed, and put back
    /// by the read of a fleet run. (It was hidden until a checkout or a
    /// sweep put it back, and a backup run reported success without it.)
    ///
    /// # Errors
    ///
    /// The database could not be looked at (not for being missing).
    fn mark(
        &self,
        frame: &Frame,
        name: &str,
        (destroying, replacing): (bool, bool),
        (path, below_len): (&Path, usize),
    ) -> io::Result<Mark> {
        // Unmarked (nearly every tenant): no lock probed, no file looked at.
        if !(destroying || replacing) || matches!(self.mode, Mode::Siblings { .. }) {
            return Ok(Mark::Shown);
        }
        if replacing {
            if running(frame, name, &[WaitedFor::Restore, WaitedFor::Rekey]) {
                return Ok(Mark::Shown);
            }
            return match stat_below(frame, path, below_len) {
                Ok(FileType::RegularFile) => Ok(Mark::Shown),
                Ok(_) => Ok(Mark::Hidden),
                Err(e) if e.kind() == io::ErrorKind::NotFound || is_no_directory(&e) => {
                    fenced_below(frame, path, below_len)
                }
                Err(e) => Err(e),
            };
        }
        if matches!(self.mode, Mode::Candidates) && running(frame, name, &[WaitedFor::Destroy]) {
            return Ok(Mark::Shown);
        }
        match stat_below(frame, path, below_len) {
            Ok(FileType::RegularFile) => Ok(Mark::Shown),
            Ok(_) => Ok(Mark::Hidden),
            Err(e) if e.kind() == io::ErrorKind::NotFound || is_no_directory(&e) => {
                Ok(Mark::Hidden)
            }
            Err(e) => Err(e),
        }
    }

    /// An entry at the database files' level.
    fn database_file(
        &self,
        frame: &Frame,
        entry: &Named<'_>,
        file_type: FileType,
        captures: &Captures<'_>,
    ) -> Step {
        if file_type != FileType::RegularFile {
            return self.not_what_the_layout_has(entry, file_type, "a tenant's database file");
        }
        match self.tenant(&frame.captured, captures) {
            Some(tenant) => {
                let path = entry.path();
                Step::Found(Found {
                    below: below((frame, entry), &path, entry.name().len()),
                    tenant,
                    path,
                    interrupted: false,
                })
            }
            None => self.skip_misplaced(entry.path(), &frame.captured, captures),
        }
    }

    /// An entry beside the database files (or beside the tenants' own
    /// directories), which belongs to the database (or tenant directory)
    /// named `owner` if that name is a tenant's in this directory.
    fn sibling(&self, frame: &Frame, depth: usize, entry: &Named<'_>, owner: Option<&str>) -> Step {
        let (Ok(_), Some(owner)) = (entry.file_type(), owner) else {
            return Step::Skip;
        };
        let template = self.layout.template();
        let Some(captures) = template.match_component(depth, owner, self.layout.bucket_width())
        else {
            return Step::Skip;
        };
        let Some(tenant) = self.tenant(&frame.captured, &captures) else {
            return Step::Skip;
        };
        let mut path = frame.dir.join(owner);
        if depth + 1 < template.depth() {
            self.layout
                .push_component(depth + 1, tenant.as_str(), &mut path);
        }
        Step::Found(Found {
            tenant,
            path,
            below: None,
            interrupted: false,
        })
    }

    /// The tenant the directories above (`above`) and this entry
    /// (`here`) name, if valid and in its own bucket.
    fn tenant(&self, above: &Captured, here: &Captures<'_>) -> Option<TenantName> {
        let tenant = here.tenant.or(above.tenant.as_deref());
        let bucket = here.bucket.or(above.bucket.as_deref());
        self.layout.captured_tenant(tenant, bucket)
    }

    /// An entry that is no tenant of this root: a tenant's name in a
    /// bucket not its own (put there by hand) is invisible to every
    /// listing, status, migration, backup and cleanup, so it is a stray;
    /// anything else is skipped quietly.
    fn skip_misplaced(&self, path: PathBuf, above: &Captured, here: &Captures<'_>) -> Step {
        let tenant = here.tenant.or(above.tenant.as_deref());
        let bucket = here.bucket.or(above.bucket.as_deref());
        match self.layout.misplaced(tenant, bucket) {
            Some((tenant, own)) => {
                let reason = format!(
                    "tenant {tenant} belongs in bucket {own}, not here, so no listing, status, migrate, backup or cleanup takes it for a tenant; move it to its bucket (or out of the root)"
                );
                self.stray(Some(tenant), path, reason)
            }
            None => {
                debug!(path = %path.display(), "skipping an entry that is no tenant of this root");
                Step::Skip
            }
        }
    }

    /// Skips a link (or a file, or a directory) where the layout has
    /// `wanted`: tenanted never follows one, since it could lead outside
    /// the root. Someone put it there, and it may stand for tenants no
    /// listing shows: a stray.
    fn not_what_the_layout_has(
        &self,
        entry: &Named<'_>,
        file_type: FileType,
        wanted: &str,
    ) -> Step {
        let what = if file_type == FileType::Symlink {
            "a symbolic link"
        } else if file_type == FileType::Directory {
            "a directory"
        } else {
            "some other kind of file"
        };
        let reason = format!(
            "it is {what} where the layout has {wanted}, and tenanted never follows links inside the root; move it out of the root"
        );
        self.stray(None, entry.path(), reason)
    }

    /// An entry skipped because the name it gives is not a valid tenant
    /// name. Hidden names are tenanted's own (`.tenanted`, scratch files,
    /// locks): expected, so only logged at debug. Anything else was put
    /// there by hand (a restore, a copy) and holds data no listing will
    /// show: a stray.
    fn not_a_tenant_name(&self, entry: &Named<'_>, name: &str, e: &Error) -> Step {
        let path = entry.path();
        if name.starts_with('.') {
            debug!(path = %path.display(), "skipping hidden entry: not a tenant name");
            return Step::Skip;
        }
        let reason = format!(
            "its name is not a valid tenant name ({e}), so it is not listed as a tenant; rename or move it"
        );
        self.stray(None, path, reason)
    }

    /// An entry that is no tenant but may hold one's data (see
    /// [`Error::StrayEntry`]). A fleet run's walk ([`Mode::Candidates`],
    /// or [`Walker::reporting_strays`]) returns it as an error, which the
    /// run reports among its listing errors: a backup or a migration that
    /// left it out must not call itself complete. Other walks
    /// (`tenants()`, the debris sweeps) log a warning and go on.
    fn stray(&self, tenant: Option<TenantName>, path: PathBuf, reason: String) -> Step {
        if self.report_strays {
            return Step::Stray(Error::StrayEntry {
                tenant,
                path,
                reason,
            });
        }
        warn!(path = %path.display(), "skipping {}: {reason}", path.display());
        Step::Skip
    }
}

/// The bytes a database file's name takes in a path at most, with its
/// separator: room reserved when a candidate's path is built, so that it
/// is built in one allocation.
const LONGEST_FILE_NAME: usize = 64;

/// An entry of the directory `frame` reads.
struct Named<'a> {
    frame: &'a Frame,
    entry: Entry<'a>,
}

impl Named<'_> {
    fn name(&self) -> &OsStr {
        self.entry.name()
    }

    fn file_type(&self) -> io::Result<FileType> {
        self.entry.file_type()
    }

    /// The entry's path (for messages, and for what a walk returns).
    fn path(&self) -> PathBuf {
        self.path_with_room(0)
    }

    /// The entry's path, with room for `more` bytes after it.
    fn path_with_room(&self, more: usize) -> PathBuf {
        let dir = self.frame.dir.as_os_str();
        let mut path = PathBuf::with_capacity(dir.len() + 1 + self.name().len() + more);
        path.push(dir);
        path.push(self.name());
        path
    }
}

/// The directory `dir` names, opened through `parent` (the directory it
/// was listed in), never through a link: the kernel, not a check made
/// earlier, keeps the walk inside the root.
fn open_below(parent: BorrowedFd<'_>, dir: &Path) -> io::Result<OwnedFd> {
    let name = dir.file_name().unwrap_or(dir.as_os_str());
    sys::open_dir(parent, Path::new(name))
}

/// What the file at `path` is (never following a link at its end), looked
/// at through `frame`'s open directory, below which its last `below_len`
/// bytes name it.
fn stat_below(frame: &Frame, path: &Path, below_len: usize) -> io::Result<FileType> {
    let bytes = path.as_os_str().as_bytes();
    let start = (bytes.len().checked_sub(below_len)).ok_or(io::ErrorKind::InvalidInput)?;
    let name = Path::new(OsStr::from_bytes(&bytes[start..]));
    let stat = sys::stat(frame.entries.dir().as_fd(), name)?;
    Ok(FileType::from_raw_mode(stat.st_mode))
}

/// What a dead replace left of the tenant whose database (at `path`, its
/// last `below_len` bytes below `frame`'s directory) is not there:
/// [`Mark::Interrupted`] if the database is fenced off beside it (put back
/// before a fleet run reads it), else [`Mark::Hidden`] (a mark alone, with
/// nothing to put back, is no tenant).
fn fenced_below(frame: &Frame, path: &Path, below_len: usize) -> io::Result<Mark> {
    let Some(name) = path.file_name() else {
        return Ok(Mark::Hidden);
    };
    let fenced_name = fence_path(Path::new(name));
    let fenced = path.with_file_name(&fenced_name);
    let fenced_len = (below_len + fenced_name.as_os_str().len()).saturating_sub(name.len());
    match stat_below(frame, &fenced, fenced_len) {
        Ok(FileType::RegularFile) => Ok(Mark::Interrupted),
        Ok(_) => Ok(Mark::Hidden),
        Err(e) if e.kind() == io::ErrorKind::NotFound || is_no_directory(&e) => Ok(Mark::Hidden),
        Err(e) => Err(e),
    }
}

/// Whether opening a directory failed because a link or a file is there.
fn is_no_directory(e: &io::Error) -> bool {
    let errno = e.raw_os_error().map(Errno::from_raw_os_error);
    matches!(errno, Some(Errno::LOOP | Errno::NOTDIR))
}

/// `frame`'s directory (which listed `entry`), for the database at
/// `path`, whose last `below_len` bytes name it below that directory (for
/// [`Mode::Candidates`]).
fn below((frame, entry): (&Frame, &Named<'_>), path: &Path, below_len: usize) -> Option<Below> {
    let start = path.as_os_str().len().checked_sub(below_len)?;
    Some(Below {
        dir: Arc::clone(frame.entries.dir()),
        start,
        inode: entry.entry.inode(),
    })
}

impl Iterator for Walker {
    type Item = Result<Found>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_step()? {
                Ok(Step::Descend(dir, captured)) => {
                    if let Err(e) = self.open(dir, captured) {
                        return Some(Err(e));
                    }
                }
                Ok(Step::Found(found)) => return Some(Ok(found)),
                Ok(Step::Skip | Step::Stray(_) | Step::Unreadable(_)) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Whether the operation that marked the tenant directory `name` in
/// `frame`'s directory is running: its entry lock (`.NAME.lock`, beside
/// the directory) is held, by one of `operations` (another holder of a
/// dead operation's tenant, a migration waiting on it, says so).
fn running(frame: &Frame, name: &str, operations: &[WaitedFor]) -> bool {
    let lock = lock_path(Path::new(name));
    held_for(frame.entries.dir().as_fd(), &lock).is_some_and(|held| operations.contains(&held))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::Mode;
    use crate::paths::{RootConfig, bucket};

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"").unwrap();
    }

    fn scratch_owner(name: &str) -> Option<&str> {
        let hidden = name.strip_prefix('.')?;
        hidden
            .split_once(".tmp-")
            .map(|(db, _)| db)
            .or_else(|| hidden.strip_suffix(".creating"))
    }

    fn walk(root: &RootConfig, mode: Mode) -> Vec<(String, String)> {
        let mut found: Vec<_> = root
            .walk(mode)
            .unwrap()
            .map(|f| {
                let f = f.unwrap();
                // (Empty for tenant directories found by `Mode::Tenants`.)
                let path = f.path.strip_prefix(root.root_dir()).unwrap_or(&f.path);
                (f.tenant.as_str().to_owned(), path.display().to_string())
            })
            .collect();
        found.sort();
        found
    }

    /// On a file system whose listings give no entry's type, each is
    /// looked at: one that cannot be is an error of the walk, never left
    /// out in silence (a backup run would call itself complete without
    /// it); one removed meanwhile is gone.
    #[cfg(feature = "testing")]
    #[test]
    fn an_entry_whose_type_cannot_be_found_out_is_an_error_not_a_gap() {
        use crate::fs::entries::unlisted_types;
        use crate::fs::{FaultPlan, Step};
        use rustix::io::Errno;
        let dir = tempfile::tempdir().unwrap();
        let root = RootConfig::new(dir.path()).buckets(1);
        for name in ["acme", "beta", "gamma"] {
            touch(&root.database_path(name).unwrap());
        }
        let looked_at_beta = {
            let plan = FaultPlan::record();
            let all = unlisted_types(|| walk(&root, Mode::Candidates));
            assert_eq!(all.len(), 3, "{all:?}");
            let steps = plan.steps();
            1 + (steps.iter())
                .position(|s| s.step == Step::Stat && s.name == Path::new("beta"))
                .expect("the walk looks at each entry it is not told the type of")
        };
        for (errno, gone) in [(Errno::IO, false), (Errno::NOENT, true)] {
            let _plan = FaultPlan::fail_step(looked_at_beta, errno.raw_os_error());
            let walked: Vec<_> = unlisted_types(|| root.walk(Mode::Candidates).unwrap().collect());
            let found: Vec<_> = (walked.iter().flatten())
                .map(|f| f.tenant.as_str().to_owned())
                .collect();
            assert_eq!(found.len(), 2, "{found:?}");
            assert!(!found.contains(&"beta".to_owned()));
            let errors: Vec<_> = walked.iter().filter_map(|w| w.as_ref().err()).collect();
            match gone {
                true => assert!(errors.is_empty(), "{errors:?}"),
                false => {
                    assert_eq!(errors.len(), 1, "{errors:?}");
                    let said = errors[0].to_string();
                    assert!(
                        said.contains("beta") && said.contains("listing tenants"),
                        "{said}"
                    );
                }
            }
        }
    }

    /// A tenant marked by a destroy whose database cannot be looked at
    /// (EIO, EACCES) is an error of the walk, not taken for gone (a second
    /// review); one whose database is missing is gone.
    #[cfg(feature = "testing")]
    #[test]
    fn a_marked_tenant_that_cannot_be_looked_at_is_an_error_not_a_gap() {
        use crate::fs::{FaultPlan, Step};
        use rustix::io::Errno;
        let dir = tempfile::tempdir().unwrap();
        let root = RootConfig::new(dir.path()).buckets(1);
        let acme = root.database_path("acme").unwrap();
        touch(&acme);
        // A destroy's mark (one that died: no lock held).
        let tenant_dir = acme.parent().unwrap();
        touch(&tenant_dir.with_file_name(".acme.destroying"));
        let looked_at = {
            let plan = FaultPlan::record();
            assert_eq!(walk(&root, Mode::Candidates).len(), 1);
            let steps = plan.steps();
            1 + (steps.iter())
                .position(|s| s.step == Step::Stat && s.name == Path::new("acme/main.sqlite3"))
                .expect("the walk looks behind the mark")
        };
        for (errno, error) in [(Errno::IO, true), (Errno::NOENT, false)] {
            let _plan = FaultPlan::fail_step(looked_at, errno.raw_os_error());
            let walked: Vec<_> = root.walk(Mode::Candidates).unwrap().collect();
            let errors = walked.iter().filter(|w| w.is_err()).count();
            let found = walked.iter().filter(|w| w.is_ok()).count();
            assert_eq!((found, errors), (0, usize::from(error)), "{errno:?}");
        }
    }

    /// A directory that keeps failing to be read ends: a sweep, which
    /// goes on past a listing error, asked it again forever (a review).
    #[cfg(feature = "testing")]
    #[test]
    fn a_directory_that_cannot_be_read_is_not_read_forever() {
        use crate::fs::{FaultPlan, Step};
        let dir = tempfile::tempdir().unwrap();
        let root = RootConfig::new(dir.path()).buckets(4);
        touch(&root.database_path("acme").unwrap());
        let (done, finished) = std::sync::mpsc::channel();
        let walking = root.clone();
        std::thread::spawn(move || {
            let _plan = FaultPlan::record().fail_every(Step::Stat, 5);
            for mode in [Mode::Tenants, Mode::Candidates, sweep()] {
                if let Ok(walk) = walking.walk(mode) {
                    walk.for_each(drop);
                }
            }
            done.send(()).unwrap();
        });
        let ended = finished.recv_timeout(std::time::Duration::from_secs(60));
        assert!(ended.is_ok(), "a walk asked a failing directory forever");
    }

    #[cfg(feature = "testing")]
    fn sweep() -> Mode {
        Mode::Siblings {
            owner: scratch_owner,
            operation: "sweeping debris",
        }
    }

    #[test]
    fn tenants_and_siblings_invert_the_template_alike() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootConfig::new(dir.path()).buckets(16);
        let acme = root.database_path("acme").unwrap();
        touch(&acme);
        touch(&acme.with_file_name(".main.sqlite3.tmp-1-1"));
        // A create of "gone" in progress (or crashed): its directory is
        // still hidden, being built beside where it goes.
        let gone = root.database_path("gone").unwrap();
        let gone_dir = gone.parent().unwrap();
        let staged = gone_dir.with_file_name(".gone.creating");
        touch(&staged.join(".main.sqlite3.tmp-2-2"));
        // The wrong bucket, a hidden directory, a name that is no tenant's.
        let wrong = format!("{:x}", (bucket::bucket_of("acme", 16) + 1) % 16);
        touch(&dir.path().join(wrong).join("acme/.main.sqlite3.tmp-3-3"));
        touch(&dir.path().join(".tenanted/templates/.main.sqlite3.tmp-4-4"));
        touch(&dir.path().join("0/-x/main.sqlite3"));
        assert!(!gone_dir.exists());

        let acme_path = acme.strip_prefix(dir.path()).unwrap().display().to_string();
        let gone_path = gone.strip_prefix(dir.path()).unwrap().display().to_string();
        assert_eq!(
            walk(&root, Mode::Tenants),
            [("acme".to_owned(), String::new())]
        );
        let siblings = Mode::Siblings {
            owner: scratch_owner,
            operation: "testing",
        };
        assert_eq!(
            walk(&root, siblings),
            [
                ("acme".to_owned(), acme_path),
                ("gone".to_owned(), gone_path)
            ]
        );
    }

    /// Tenanted publishes a tenant's directory whole, so a listing trusts
    /// it without looking inside; a directory left without its database
    /// (made by hand) is listed too, and the sibling
    /// walk, which the debris sweep uses, finds it.
    #[test]
    fn a_tenant_directory_is_trusted_by_listings_and_looked_into_by_sweeps() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootConfig::new(dir.path()).buckets(16);
        let acme = root.database_path("acme").unwrap();
        touch(&acme);
        let empty = root.database_path("empty").unwrap();
        fs::create_dir_all(empty.parent().unwrap()).unwrap();
        let rel = |p: &Path| p.strip_prefix(dir.path()).unwrap().display().to_string();
        assert_eq!(
            walk(&root, Mode::Tenants),
            [
                ("acme".to_owned(), String::new()),
                ("empty".to_owned(), String::new())
            ]
        );
        let siblings = Mode::Siblings {
            owner: scratch_owner,
            operation: "testing",
        };
        assert_eq!(walk(&root, siblings), [("empty".to_owned(), rel(&empty))]);
    }

    #[test]
    fn a_tenant_in_the_file_name_is_found_at_the_last_level() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootConfig::new(dir.path()).template("db/%{tenant}-%{bucket}.sqlite3");
        touch(&root.database_path("acme").unwrap());
        touch(&dir.path().join("db/acme-00.sqlite3-wal"));
        touch(&dir.path().join("db/.acme.sqlite3"));
        let found = walk(&root, Mode::Tenants);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "acme");
    }

    /// A walk taken in parts (as a fleet run's workers take it) finds
    /// exactly what the walk finds in one piece, whatever the template.
    #[test]
    fn parts_of_a_walk_find_what_the_whole_walk_finds() {
        use super::Part;
        for template in [
            "%{bucket}/%{tenant}/main.sqlite3",
            "%{bucket}/%{tenant}.sqlite3",
            "db/%{bucket}/x/%{tenant}.sqlite3",
            "%{tenant}.sqlite3",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let root = RootConfig::new(dir.path()).template(template).buckets(16);
            for i in 0..40 {
                touch(&root.database_path(&format!("t{i:02}")).unwrap());
            }
            let whole = walk(&root, Mode::Candidates);
            assert_eq!(whole.len(), 40, "{template}");
            let mut top = root.walk(Mode::Candidates).unwrap();
            let mut parts = Vec::new();
            while let Some(part) = top.next_part() {
                match part.unwrap() {
                    Part::Found(found) => parts.push(found),
                    Part::Subtree(walker) => parts.extend(walker.map(|f| f.unwrap())),
                }
            }
            let mut found: Vec<_> = parts
                .iter()
                .map(|f| {
                    let path = f.path.strip_prefix(root.root_dir()).unwrap();
                    (f.tenant.as_str().to_owned(), path.display().to_string())
                })
                .collect();
            found.sort();
            assert_eq!(found, whole, "{template}");
            // The same files, through the directory each part read.
            for f in &parts {
                let (dir, name) = f.below().unwrap();
                let stat = rustix::fs::statat(dir, name, rustix::fs::AtFlags::empty()).unwrap();
                let by_path = fs::metadata(&f.path).unwrap();
                assert_eq!(stat.st_ino, std::os::unix::fs::MetadataExt::ino(&by_path));
            }
        }
    }

    /// A candidate walk also gives the tenant whose directory holds no
    /// database yet (the caller looks), and names each database relative
    /// to the directory the walk read: the same file as its path.
    #[test]
    fn candidates_come_with_their_directory_and_are_not_looked_at() {
        for template in [
            "%{bucket}/%{tenant}/main.sqlite3",
            "db/%{tenant}-%{bucket}.sqlite3",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let root = RootConfig::new(dir.path()).template(template).buckets(16);
            fs::create_dir_all(root.database_path("acme").unwrap()).unwrap();
            fs::remove_dir(root.database_path("acme").unwrap()).unwrap();
            let globex = root.database_path("globex").unwrap();
            touch(&globex);
            fs::write(&globex, b"globex").unwrap();
            let mut found: Vec<_> = root
                .walk(Mode::Candidates)
                .unwrap()
                .map(|f| f.unwrap())
                .collect();
            found.sort_by(|a, b| a.tenant.cmp(&b.tenant));
            let names: Vec<_> = found.iter().map(|f| f.tenant.as_str()).collect();
            let expected: &[&str] = if template.starts_with("db/") {
                &["globex"]
            } else {
                &["acme", "globex"]
            };
            assert_eq!(names, expected, "{template}");
            let globex_found = found.last().unwrap();
            assert_eq!(globex_found.path, globex);
            let (dir, name) = globex_found.below().unwrap();
            assert!(name.is_relative() && globex.ends_with(name), "{template}");
            let flags = rustix::fs::OFlags::RDONLY;
            let fd = rustix::fs::openat(dir, name, flags, rustix::fs::Mode::empty()).unwrap();
            let mut contents = [0u8; 6];
            rustix::io::pread(&fd, &mut contents, 0).unwrap();
            assert_eq!(&contents, b"globex", "{template}");
        }
    }
}
