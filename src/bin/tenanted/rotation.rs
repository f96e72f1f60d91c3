//! `backup --into DIR --keep N --keep-days D`: one timestamped backup
//! directory per run under DIR, and a prune of older runs that never
//! removes the only good copy of a tenant.
//!
//! A run is `DIR/YYYYMMDDTHHMMSSZ/` (UTC; `-2`, `-3`, ... after it for the
//! later runs of the same second), made with `create_dir`, so two runs
//! never share one; a good copy of a tenant is its file in a run
//! (`backup_all` writes each one whole, by rename). Runs are pruned only
//! if they are neither among the newest `keep` nor younger than
//! `keep_days`, and still hold no tenant's only good copy. A pruned run is
//! first renamed to a hidden name (atomic), then removed: a crash in
//! between leaves a hidden directory, never a half-removed run that would
//! count as holding copies.
//!
//! Only runs that went to their end count toward the newest N (a run
//! records `.tenanted/unfinished` when it starts and removes it at its
//! end); one interrupted or killed midway is kept only while it holds a
//! tenant's only good copy.
//!
//! A run holds an exclusive `flock` on its directory while it writes (the
//! kernel lets it go if the run dies), and a prune takes the same lock
//! before it judges a run: a run still being written by another command
//! is kept, never removed under it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::Cli;
use crate::support::{Failure, USAGE, utc_timestamp};

/// How many runs to keep.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Keep the newest `keep` runs.
    pub keep: Option<usize>,
    /// Keep the runs younger than this many days.
    pub keep_days: Option<u64>,
}

/// What a prune did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Runs removed.
    pub removed: Vec<PathBuf>,
    /// Runs kept although retention let them go, with the tenants whose
    /// only good copy they hold.
    pub kept_for: Vec<(PathBuf, Vec<String>)>,
    /// Runs kept because they could not be read or removed (a damaged
    /// layout record, a link named like a run), with why: the prune goes
    /// on with the others, and the command fails.
    pub unjudged: Vec<(PathBuf, String)>,
    /// Runs kept because another backup command is still writing them.
    pub in_progress: Vec<PathBuf>,
    /// What pruned runs left behind and could not be removed (hidden
    /// `.pruning-*` directories: no longer runs), with why: the command
    /// fails, so that someone removes them.
    pub leftovers: Vec<(PathBuf, String)>,
}

/// How many runs one second can name (see [`new_run`]).
const MAX_RUNS_A_SECOND: u32 = 1000;

/// A run's directory, held (see the module) until dropped.
pub struct HeldRun {
    /// The directory.
    pub dir: PathBuf,
    _lock: std::fs::File,
}

/// Takes the run `dir`'s lock: `None` if another command holds it.
fn hold(dir: &Path) -> Result<Option<std::fs::File>, std::io::Error> {
    let file = std::fs::File::open(dir)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// A run's directory name for `time`: `20261205T052600Z`, and
/// `20261205T052600Z-2`, `-3`, ... for the runs made later in the same
/// second (`seq` 2, 3, ...).
fn run_name(time: SystemTime, seq: u32) -> String {
    let stamp = utc_timestamp(time);
    let name = format!("{:08}T{:06}Z", stamp / 1_000_000, stamp % 1_000_000);
    match seq {
        0 | 1 => name,
        seq => format!("{name}-{seq}"),
    }
}

/// The time stamp (YYYYMMDDHHMMSS) of a run's directory name, and its
/// place among the runs of that second (1 for the first, unsuffixed).
fn run_stamp(name: &str) -> Option<(u64, u32)> {
    let (name, seq) = match name.split_once('-') {
        None => (name, 1),
        // Written only as `run_name` writes it: `-2` and up, no zeros first.
        Some((name, seq)) if !seq.starts_with('0') && seq.bytes().all(|b| b.is_ascii_digit()) => {
            (name, seq.parse::<u32>().ok().filter(|&s| s >= 2)?)
        }
        Some(_) => return None,
    };
    let digits = name.strip_suffix('Z')?;
    let (date, time) = digits.split_once('T')?;
    let valid = date.len() == 8 && time.len() == 6;
    let all_digits = (date.bytes().chain(time.bytes())).all(|b| b.is_ascii_digit());
    (valid && all_digits)
        .then(|| date.parse::<u64>().ok().zip(time.parse::<u64>().ok()))?
        .map(|(d, t)| (d * 1_000_000 + t, seq))
}

/// Makes this run's directory under `parent`, held: a new one, never an
/// existing one. A run started in a second another run's name took is
/// named after it (`-2`, `-3`, ...) at once: runs started together used
/// to wait for a free second each, and after about five of them failed
/// (an outside probe).
pub fn new_run(parent: &Path) -> Result<HeldRun, Failure> {
    let io = |e: std::io::Error| Failure(1, format!("cannot create {}: {e}", parent.display()));
    std::fs::create_dir_all(parent).map_err(io)?;
    let now = SystemTime::now();
    // After the last run of this second (or its pruned remains): a number
    // a removed run freed, taken again, sorted before runs made earlier
    // (a review).
    let first = last_of_second(parent, now) + 1;
    for seq in first..=MAX_RUNS_A_SECOND {
        let dir = parent.join(run_name(now, seq));
        match std::fs::create_dir(&dir) {
            // Nobody else holds a directory just made (and a prune counts
            // it as a run only once `backup_all` has recorded its layout).
            Ok(()) => match hold(&dir).map_err(io)? {
                Some(lock) => return Ok(HeldRun { dir, _lock: lock }),
                None => return Err(io(std::io::ErrorKind::WouldBlock.into())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
    }
    Err(Failure(
        1,
        format!(
            "cannot make a new run directory in {}: {MAX_RUNS_A_SECOND} runs were already started in this second ({}); run the backups one after another",
            parent.display(),
            run_name(now, 1)
        ),
    ))
}

/// The highest place among the runs under `parent` (and the pruned runs'
/// remains) named for the second of `time`; 0 if none.
fn last_of_second(parent: &Path, time: SystemTime) -> u32 {
    let stamp = utc_timestamp(time);
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            run_stamp(name.strip_prefix(".pruning-").unwrap_or(&name))
        })
        .filter(|&(s, _)| s == stamp)
        .map(|(_, seq)| seq)
        .max()
        .unwrap_or(0)
}

/// Refuses `--into DIR` when the root being backed up is in (or beneath)
/// a directory of DIR named like a run: a root records its layout as a
/// run does, and one so named was pruned with everything in it (an
/// outside probe).
///
/// # Errors
///
/// The refusal (exit 2).
pub fn refuse_root_inside(root: &Path, into: &Path) -> Result<(), Failure> {
    let (Ok(root), Ok(into)) = (root.canonicalize(), into.canonicalize()) else {
        return Ok(());
    };
    // Only beneath a directory named like a run: the prune looks at no
    // other (`--into /var/lib/app` of the root `/var/lib/app/tenants`
    // stays allowed, as it was: a review).
    let first = root
        .strip_prefix(&into)
        .ok()
        .and_then(|below| below.components().next());
    let run_named = first.is_some_and(|c| run_stamp(&c.as_os_str().to_string_lossy()).is_some());
    if run_named {
        return Err(Failure(
            USAGE,
            format!(
                "the root {} is inside {}: --into prunes the runs it holds, and the root could be taken for one; back up into a directory outside the root's",
                root.display(),
                into.display()
            ),
        ));
    }
    Ok(())
}

/// Makes `dir` for `backup --to`: it must not exist (the kernel says so,
/// atomically), so a backup never overwrites another.
pub fn new_dir(dir: &Path) -> Result<(), Failure> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure(1, format!("cannot create {}: {e}", parent.display())))?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Failure(
            USAGE,
            format!(
                "{} exists already: a backup never overwrites one; pass a new directory to --to, or --into {} for a timestamped directory per run (with --keep/--keep-days to rotate them)",
                dir.display(),
                (dir.parent().filter(|p| !p.as_os_str().is_empty()))
                    .unwrap_or(Path::new("."))
                    .display()
            ),
        )),
        Err(e) => Err(Failure(1, format!("cannot create {}: {e}", dir.display()))),
    }
}

/// The record a run leaves until it goes to its end (see
/// [`mark_unfinished`]).
const UNFINISHED: &str = "unfinished";

/// Records that the run `dir` has not gone to its end yet; [`mark_finished`]
/// takes the record away once every tenant had its line. A run with the
/// record (interrupted, or killed midway: it holds some tenants only) is
/// not one of the newest N: it counted as one while the whole run before
/// it was pruned (an outside probe). A record, not its absence, marks the
/// run, so that runs made before the record existed still count (a
/// review: they would all have been pruned at once).
///
/// # Errors
///
/// The record cannot be written: the backup stops there.
pub fn mark_unfinished(dir: &Path) -> Result<(), Failure> {
    let records = dir.join(tenanted::INTERNAL_DIR);
    std::fs::create_dir_all(&records)
        .and_then(|()| std::fs::write(records.join(UNFINISHED), b""))
        .map_err(|e| Failure(1, format!("cannot write in {}: {e}", records.display())))
}

/// Takes away the record [`mark_unfinished`] left: the run went to its end.
/// A record that cannot be removed leaves the run out of the newest N
/// (judged by its copies, as runs beyond N are), and is said.
pub fn mark_finished(dir: &Path) {
    let record = dir.join(tenanted::INTERNAL_DIR).join(UNFINISHED);
    if let Err(e) = std::fs::remove_file(&record) {
        crate::output::errln!(
            "cannot remove {}: {e}; this run will not count among the runs --keep keeps",
            record.display()
        );
    }
}

/// A run found: ((its stamp, its place in its second), its directory,
/// whether it went to its end).
type FoundRun = ((u64, u32), PathBuf, bool);

/// The runs under `parent`, newest first.
fn runs(parent: &Path) -> Result<Vec<FoundRun>, Failure> {
    let entries = std::fs::read_dir(parent)
        .map_err(|e| Failure(1, format!("cannot read {}: {e}", parent.display())))?;
    let mut runs: Vec<FoundRun> = entries
        .flatten()
        .filter_map(|e| {
            let stamp = run_stamp(&e.file_name().to_string_lossy())?;
            // A link named like a run is none: judged as one, it covered
            // its target's copies, and the target was pruned (an outside
            // probe). `file_type` does not follow it.
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                return None;
            }
            let records = e.path().join(tenanted::INTERNAL_DIR);
            // Only directories `backup_all` made (it records their layout),
            // and never a root in use, which records its layout too: its
            // template databases are made by its first create.
            let made = records.join("layout").is_file() && !records.join("templates").exists();
            let finished = !records.join(UNFINISHED).exists();
            made.then(|| (stamp, e.path(), finished))
        })
        .collect();
    runs.sort_by(|a, b| b.cmp(a));
    Ok(runs)
}

/// A copy in a run: the tenant's name, and which incarnation of it was
/// copied when the run recorded it (`tenanted::LINEAGE_RECORD`).
type Copy = (String, Option<String>);

/// The tenants with a copy in the run `dir`.
///
/// # Errors
///
/// The first directory of the run that cannot be read: a run not listed
/// whole is not judged (its unlisted copies may be a tenant's only ones;
/// an outside review saw such a run removed).
fn copies(cli: &Cli, dir: &Path) -> Result<Vec<Copy>, Failure> {
    let root = cli.root_config();
    let layout = tenanted::RootConfig::new(dir)
        .template(root.template_str())
        .buckets(root.bucket_count());
    let lineages = lineages(dir)?;
    let mut copies = Vec::new();
    for tenant in layout.tenants()? {
        let tenant = tenant?;
        let lineage = lineages.get(tenant.as_str()).cloned();
        copies.push((tenant.as_str().to_owned(), lineage));
    }
    Ok(copies)
}

/// The incarnation of each tenant the run `dir` recorded (none from a
/// run made before the record existed, or one that could not write it:
/// its copies are then matched by name alone).
///
/// # Errors
///
/// A record that is there but cannot be read: the run is not judged (read
/// as no record, its copies of a destroyed incarnation would be taken for
/// the live one's; a review).
fn lineages(dir: &Path) -> Result<HashMap<String, String>, Failure> {
    let record = dir
        .join(tenanted::INTERNAL_DIR)
        .join(tenanted::LINEAGE_RECORD);
    let text = match read_record(&record) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            let why = format!(
                "cannot read its record of incarnations {}: {e}",
                record.display()
            );
            return Err(Failure(1, why));
        }
    };
    Ok((text.lines())
        .filter_map(|line| line.split_once(' '))
        .map(|(name, lineage)| (name.to_owned(), lineage.to_owned()))
        .collect())
}

/// The text of the record file `path`, opened without waiting (a FIFO
/// planted there held a prune for good: an outside probe) and read only
/// if it is a regular file.
fn read_record(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let nonblocking = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nonblocking.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// The copies the runs kept so far hold: by name, each incarnation
/// (`None`: a copy whose incarnation was not recorded).
#[derive(Default)]
struct Covered(HashMap<String, HashSet<Option<String>>>);

impl Covered {
    fn add(&mut self, (name, lineage): Copy) {
        self.0.entry(name).or_default().insert(lineage);
    }

    /// Whether a kept run holds a copy of the same incarnation as `copy`
    /// (by name where `copy`'s incarnation is not known: a run made before
    /// the record existed): a copy of a tenant destroyed since, and made
    /// again under its name, is not covered by the new one's. A kept copy
    /// whose own incarnation is not known (the tenant changed during its
    /// copy) covers no known one: it may be the new tenant's (a review).
    fn covers(&self, (name, lineage): &Copy) -> bool {
        self.0
            .get(name)
            .is_some_and(|kept| lineage.is_none() || kept.contains(lineage))
    }
}

/// Removes the runs under `parent` that `retention` lets go, except those
/// holding a tenant's only good copy. `current` (this run) is always kept.
pub fn prune(
    cli: &Cli,
    parent: &Path,
    current: &Path,
    retention: Retention,
) -> Result<Pruned, Failure> {
    let mut pruned = Pruned::default();
    remove_interrupted_prunes(parent, &mut pruned);
    let (kept, candidates) = sort_runs(parent, current, retention)?;
    let mut covered = covered_by(cli, &kept, current, &mut pruned)?;
    // Newest first: a tenant's newest copy among the candidates is the
    // one kept for it.
    for candidate in candidates {
        judge(cli, candidate, &mut covered, &mut pruned);
    }
    Ok(pruned)
}

/// A run retention lets go: its directory, and whether it had gone to its
/// end when listed.
type Candidate = (PathBuf, bool);

/// The runs under `parent`, newest first, split into those `retention`
/// keeps (and `current`) and those it lets
/// go, each with whether it had gone to its end when listed.
fn sort_runs(
    parent: &Path,
    current: &Path,
    retention: Retention,
) -> Result<(Vec<PathBuf>, Vec<Candidate>), Failure> {
    let now = utc_timestamp(SystemTime::now());
    // Days beyond what the clock can go back keep every run by age (they
    // overflowed, and then kept none: an outside probe).
    let oldest_kept = retention.keep_days.map(|d| {
        (d.checked_mul(86_400))
            .and_then(|secs| SystemTime::now().checked_sub(Duration::from_secs(secs)))
            .map_or(0, utc_timestamp)
    });
    let (mut kept, mut candidates) = (Vec::new(), Vec::new());
    // The newest N runs that went to their end: one cut short is judged
    // by the copies it holds, not kept for its place.
    let mut whole = 0;
    for ((stamp, _), dir, finished) in runs(parent)? {
        let by_count = finished && retention.keep.is_some_and(|k| whole < k);
        whole += usize::from(finished);
        let by_age = oldest_kept.is_some_and(|oldest| stamp >= oldest && stamp <= now);
        if dir == current || by_count || by_age {
            kept.push(dir);
        } else {
            candidates.push((dir, finished));
        }
    }
    Ok((kept, candidates))
}

/// The copies the `kept` runs hold. A kept run that cannot be read covers
/// nothing: runs it would have let go are then judged without it (kept,
/// if they hold a copy).
fn covered_by(
    cli: &Cli,
    kept: &[PathBuf],
    current: &Path,
    pruned: &mut Pruned,
) -> Result<Covered, Failure> {
    let mut covered = Covered::default();
    for dir in kept {
        // A run another command is still writing may yet fail and be
        // removed: its copies cover nothing until it is finished.
        if dir != current && matches!(hold(dir), Ok(None)) {
            pruned.in_progress.push(dir.clone());
            continue;
        }
        match copies(cli, dir) {
            Ok(copies) => copies.into_iter().for_each(|c| covered.add(c)),
            Err(Failure(_, why)) if dir != current => pruned.unjudged.push((dir.clone(), why)),
            Err(failure) => return Err(failure),
        }
    }
    Ok(covered)
}

/// Removes the run `dir` that retention lets go, unless it holds a copy
/// no run kept so far covers (then it is kept, and covers it).
fn judge(cli: &Cli, (dir, finished): Candidate, covered: &mut Covered, pruned: &mut Pruned) {
    // Held until the run is removed, or judged worth keeping.
    let _held = match hold(&dir) {
        Ok(Some(held)) => held,
        Ok(None) => return pruned.in_progress.push(dir),
        // Pruned meanwhile by another backup command's prune.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => return pruned.unjudged.push((dir, format!("cannot lock it: {e}"))),
    };
    // Still being written when listed, and gone to its end since: it was
    // judged as a run cut short, which it is not (it may be one of the
    // newest N). Kept as the run in progress it was; the next prune
    // judges it.
    let unfinished = dir.join(tenanted::INTERNAL_DIR).join(UNFINISHED);
    if !finished && !unfinished.exists() {
        return pruned.in_progress.push(dir);
    }
    let only: Vec<Copy> = match copies(cli, &dir) {
        Ok(copies) => copies.into_iter().filter(|c| !covered.covers(c)).collect(),
        Err(Failure(_, why)) => return pruned.unjudged.push((dir, why)),
    };
    if only.is_empty() {
        match remove_run(&dir) {
            Ok(None) => pruned.removed.push(dir),
            // Out of the runs, but not all gone (said as a failure).
            Ok(Some(leftover)) => {
                pruned.removed.push(dir);
                pruned.leftovers.push(leftover);
            }
            Err(Failure(_, why)) => pruned.unjudged.push((dir, why)),
        }
    } else {
        let mut names: Vec<String> = only.iter().map(|(name, _)| name.clone()).collect();
        only.into_iter().for_each(|c| covered.add(c));
        names.sort();
        names.dedup();
        pruned.kept_for.push((dir, names));
    }
}

/// Finishes removing the runs an interrupted (or failed) prune had
/// renamed; what still cannot be removed is said in `pruned`.
fn remove_interrupted_prunes(parent: &Path, pruned: &mut Pruned) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        // Only what a prune renamed: `.pruning-` and a run's name (anything
        // else so named was removed too: an outside probe).
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.strip_prefix(".pruning-").and_then(run_stamp).is_some()
            && let Err(e) = remove_all(&entry.path())
        {
            pruned.leftovers.push((entry.path(), e.to_string()));
        }
    }
}

/// Renames the run to a hidden name, then removes it: what could not be
/// removed once it was renamed, with why.
fn remove_run(dir: &Path) -> Result<Option<(PathBuf, String)>, Failure> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hidden = dir.with_file_name(format!(".pruning-{name}"));
    let io = |e: std::io::Error| {
        Failure(
            1,
            format!("cannot remove the old backup {}: {e}", dir.display()),
        )
    };
    std::fs::rename(dir, &hidden).map_err(io)?;
    Ok(remove_all(&hidden).err().map(|e| (hidden, e.to_string())))
}

/// Removes `dir` and all in it; gone already is done (another command's
/// prune finished it: a review saw that said as a failure).
fn remove_all(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        removed => removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_read_back_and_order_by_time() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_912_360);
        let name = run_name(t, 1);
        assert_eq!(name, "20251205T052600Z");
        assert_eq!(run_name(t, 1), name);
        assert_eq!(run_stamp(&name), Some((20_251_205_052_600, 1)));
        assert_eq!(run_stamp(&run_name(t, 12)), Some((20_251_205_052_600, 12)));
        // The twelfth run of a second is newer than the second one.
        assert!(run_stamp("20251205T052600Z-12") > run_stamp("20251205T052600Z-2"));
        assert!(run_stamp("20251205T052601Z") > run_stamp("20251205T052600Z-12"));
        for odd in [
            "20251205T0526Z",
            "notes",
            "20251205T052600Z-1",
            "20251205T052600Z-02",
        ] {
            assert_eq!(run_stamp(odd), None, "{odd}");
        }
        for odd in [
            "20251205T052600Z-",
            "20251205T052600Z-x",
            "20251205T052600Z-2-2",
        ] {
            assert_eq!(run_stamp(odd), None, "{odd}");
        }
    }

    /// A run listed while it was being written, and gone to its end when
    /// the prune locks it, is kept (it may be one of the newest N: an
    /// older run's prune removed such a newer run, an outside probe); one
    /// still marked when locked is a run cut short, judged by its copies.
    #[test]
    fn a_run_that_finished_after_it_was_listed_is_kept() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let config = tenanted::RootConfig::new(&root);
        let m = tenanted::TenantManager::builder(config, tenanted::Migrations::new(vec![]))
            .build()
            .unwrap();
        m.create_tenant("acme").unwrap();
        let run = dir.path().join("runs/20200101T000000Z");
        m.backup_all(&run, &tenanted::BackupOptions::new()).unwrap();
        let args = ["tenanted", "--root", root.to_str().unwrap(), "list"];
        let cli = crate::Cli::try_parse_from(args).unwrap();
        let mut covered = Covered::default();
        copies(&cli, &run)
            .ok()
            .unwrap()
            .into_iter()
            .for_each(|c| covered.add(c));
        let mut pruned = Pruned::default();
        judge(&cli, (run.clone(), false), &mut covered, &mut pruned);
        assert_eq!(pruned.in_progress, std::slice::from_ref(&run));
        assert!(run.is_dir());
        std::fs::write(run.join(".tenanted/unfinished"), b"").unwrap();
        let mut pruned = Pruned::default();
        judge(&cli, (run.clone(), false), &mut covered, &mut pruned);
        assert_eq!(pruned.removed, std::slice::from_ref(&run));
        assert!(!run.exists());
    }

    /// A kept copy whose incarnation was not recorded (the tenant changed
    /// while it was copied) does not cover a known incarnation's copy: it
    /// may be the new tenant's, and the older run the destroyed one's
    /// last copy (a review).
    #[test]
    fn a_kept_copy_of_unknown_incarnation_covers_no_known_one() {
        let copy =
            |name: &str, lineage: Option<&str>| (name.to_owned(), lineage.map(str::to_owned));
        let mut covered = Covered::default();
        covered.add(copy("acme", None));
        assert!(!covered.covers(&copy("acme", Some("old"))));
        assert!(covered.covers(&copy("acme", None)));
        covered.add(copy("acme", Some("new")));
        assert!(covered.covers(&copy("acme", Some("new"))));
        assert!(covered.covers(&copy("acme", None)));
        assert!(!covered.covers(&copy("globex", None)));
    }
}
