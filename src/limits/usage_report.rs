//! The fleet usage report's types: one tenant's row ([`TenantUsage`]), the
//! orders its top rows come in ([`UsageOrder`]), the report
//! ([`UsageReport`]), and the tally each worker of the run keeps: totals,
//! and the best rows so far, never more than twice `top`.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::policy::Suspension;
use super::quota::pages_allowed;
use crate::error::Error;
use crate::fleet::{Line, Tally};
use crate::name::TenantName;

/// A tenant at this share of its size limit or more is near it.
pub const NEAR_LIMIT: f64 = 0.9;

/// One tenant's use of the disk, as
/// [`TenantManager::usage`](crate::TenantManager::usage) reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TenantUsage {
    /// The tenant.
    pub tenant: TenantName,
    /// The database file's size in bytes.
    pub database_bytes: u64,
    /// Its `-wal`'s size in bytes (writes not yet checkpointed into it).
    pub wal_bytes: u64,
    /// The database's page size.
    pub page_size: u32,
    /// Its pages as of its last commit: the count its `-wal`'s last
    /// commit holds, or else its header's (as of its last checkpoint).
    /// What its size limit counts.
    pub page_count: u64,
    /// Pages on its free list (room that writes reuse before growing), as
    /// of its last checkpoint (the header's count).
    pub free_pages: u64,
    /// When its database or `-wal` was last modified.
    pub last_write: Option<SystemTime>,
    /// Its size limit in bytes (its own or the manager's default).
    pub max_size: Option<u64>,
    /// Its suspension, if it is suspended.
    pub suspension: Option<Suspension>,
}

impl TenantUsage {
    /// The size its limit counts: page count times page size (as of its
    /// last commit).
    pub fn size(&self) -> u64 {
        self.page_count.saturating_mul(u64::from(self.page_size))
    }

    /// Its bytes on disk: the database and its `-wal`.
    pub fn bytes_on_disk(&self) -> u64 {
        self.database_bytes.saturating_add(self.wal_bytes)
    }

    /// The share of its limit it uses (`None` without a limit).
    pub fn fill(&self) -> Option<f64> {
        let limit = self.max_size?;
        Some(self.size() as f64 / limit.max(1) as f64)
    }

    /// At or over its limit: it cannot grow (SQLite clamps a limit below
    /// the size to the size). A limit that is no whole number of pages
    /// lets the tenant have the whole pages that fit in it, so a tenant
    /// can be at its limit with a [`fill`](Self::fill) just under 1.
    pub fn is_over_limit(&self) -> bool {
        self.max_size
            .is_some_and(|limit| self.page_count >= pages_allowed(limit, u64::from(self.page_size)))
    }

    /// At [`NEAR_LIMIT`] of its limit or more (over it included).
    pub fn is_near_limit(&self) -> bool {
        self.is_over_limit() || self.fill().is_some_and(|f| f >= NEAR_LIMIT)
    }
}

/// The order of a usage report's [`top`](UsageReport::top) rows; ties go
/// by tenant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageOrder {
    /// Most bytes on disk (database and `-wal`) first.
    Largest,
    /// The largest share of its size limit first (tenants without a limit
    /// are left out of the top rows).
    ClosestToLimit,
    /// The oldest last write first.
    LeastRecentlyWritten,
}

impl UsageOrder {
    /// Whether `row` ranks in this order at all.
    fn ranks(self, row: &TenantUsage) -> bool {
        self != UsageOrder::ClosestToLimit || row.max_size.is_some()
    }

    /// `a` before `b` (`Less`) in this order, ties by name.
    fn compare(self, a: &TenantUsage, b: &TenantUsage) -> Ordering {
        let fill = |r: &TenantUsage| r.fill().unwrap_or(-1.0);
        let first = match self {
            UsageOrder::Largest => b.bytes_on_disk().cmp(&a.bytes_on_disk()),
            UsageOrder::ClosestToLimit => fill(b).total_cmp(&fill(a)),
            UsageOrder::LeastRecentlyWritten => a.last_write.cmp(&b.last_write),
        };
        first.then_with(|| a.tenant.cmp(&b.tenant))
    }
}

/// A fleet usage report: totals over every tenant, the first `top` rows
/// in the order asked for, and what could not be read.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UsageReport {
    /// The order of [`top`](Self::top).
    pub order: UsageOrder,
    /// Tenants read.
    pub tenants: usize,
    /// Their database and `-wal` bytes, added up.
    pub total_bytes: u64,
    /// Tenants at or over their size limit.
    pub over_limit: usize,
    /// Tenants near their size limit ([`NEAR_LIMIT`], over it included).
    pub near_limit: usize,
    /// Tenants suspended.
    pub suspended: usize,
    /// The first rows in [`order`](Self::order).
    pub top: Vec<TenantUsage>,
    /// Tenants whose files could not be read, and why (by name).
    pub failed: Vec<(TenantName, Arc<Error>)>,
    /// Directories of the root that could not be listed: tenants in them
    /// are not counted.
    pub listing_errors: Vec<Arc<Error>>,
    /// How long the run took.
    pub duration: Duration,
}

/// One tenant as the run met it.
pub(super) enum UsageLine {
    /// Its row.
    Read(TenantUsage),
    /// Why its files could not be read.
    Failed(TenantName, Arc<Error>),
}

impl Line for UsageLine {
    fn tenant(&self) -> &TenantName {
        match self {
            UsageLine::Read(row) => &row.tenant,
            UsageLine::Failed(tenant, _) => tenant,
        }
    }
}

/// One worker's part of the report: its totals, its failures, and its
/// best rows (at most twice `top`: sorted and cut back when full).
pub(super) struct UsageTally {
    pub(super) report: UsageReport,
    top: usize,
    /// The last of the top rows at the last cut: a row after it in the
    /// order cannot be in the top, and is not kept.
    bar: Option<TenantUsage>,
}

impl UsageTally {
    pub(super) fn new(order: UsageOrder, top: usize) -> Self {
        let report = UsageReport {
            order,
            tenants: 0,
            total_bytes: 0,
            over_limit: 0,
            near_limit: 0,
            suspended: 0,
            top: Vec::new(),
            failed: Vec::new(),
            listing_errors: Vec::new(),
            duration: Duration::ZERO,
        };
        UsageTally {
            report,
            top,
            bar: None,
        }
    }

    fn keep(&mut self, row: &TenantUsage) {
        let order = self.report.order;
        if self.top == 0 || !order.ranks(row) {
            return;
        }
        if let Some(bar) = &self.bar
            && order.compare(row, bar) != Ordering::Less
        {
            return;
        }
        self.report.top.push(row.clone());
        if self.report.top.len() >= 2 * self.top {
            self.cut();
        }
    }

    /// Sorts the kept rows and keeps the first `top`.
    pub(super) fn cut(&mut self) {
        let order = self.report.order;
        self.report.top.sort_by(|a, b| order.compare(a, b));
        self.report.top.truncate(self.top);
        if self.report.top.len() == self.top {
            self.bar = self.report.top.last().cloned();
        }
    }
}

impl Tally for UsageTally {
    type Row = UsageLine;

    /// Counts the row; the run lists none (the report keeps its own top).
    fn count(&mut self, line: &UsageLine) -> bool {
        let row = match line {
            UsageLine::Read(row) => row,
            UsageLine::Failed(tenant, e) => {
                self.report.failed.push((tenant.clone(), Arc::clone(e)));
                return false;
            }
        };
        let r = &mut self.report;
        r.tenants += 1;
        r.total_bytes = r.total_bytes.saturating_add(row.bytes_on_disk());
        r.over_limit += usize::from(row.is_over_limit());
        r.near_limit += usize::from(row.is_near_limit());
        r.suspended += usize::from(row.suspension.is_some());
        self.keep(row);
        false
    }

    fn absorb(&mut self, other: &Self) {
        let (r, o) = (&mut self.report, &other.report);
        r.tenants += o.tenants;
        r.total_bytes = r.total_bytes.saturating_add(o.total_bytes);
        r.over_limit += o.over_limit;
        r.near_limit += o.near_limit;
        r.suspended += o.suspended;
        r.top.extend(o.top.iter().cloned());
        r.failed.extend(o.failed.iter().cloned());
        self.cut();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, pages: u64) -> TenantUsage {
        TenantUsage {
            tenant: TenantName::new(name).unwrap(),
            database_bytes: pages * 4096,
            wal_bytes: 0,
            page_size: 4096,
            page_count: pages,
            free_pages: 0,
            last_write: None,
            max_size: None,
            suspension: None,
        }
    }

    /// A limit that is no whole number of pages: the tenant is full at
    /// the whole pages that fit in it, and said so (a review: 1,000,000
    /// bytes with 4 KiB pages caps it at 999,424, where writes fail, and
    /// the report called it only near its limit).
    #[test]
    fn a_tenant_at_the_whole_pages_of_its_limit_is_at_it() {
        let full = TenantUsage {
            max_size: Some(1_000_000),
            ..row("acme", 244)
        };
        assert!(full.fill().is_some_and(|f| f < 1.0));
        assert!(full.is_over_limit() && full.is_near_limit());
        let below = TenantUsage {
            max_size: Some(1_000_000),
            ..row("acme", 243)
        };
        assert!(!below.is_over_limit() && below.is_near_limit());
        assert!(!row("acme", 10_000).is_over_limit());
    }

    #[test]
    fn a_tally_keeps_the_top_rows_and_at_most_twice_as_many() {
        let mut tally = UsageTally::new(UsageOrder::Largest, 3);
        for i in 0..100 {
            // Sizes in a scrambled order, each once.
            let pages = (i * 37) % 100;
            tally.count(&UsageLine::Read(row(&format!("t{pages:03}"), pages)));
            assert!(
                tally.report.top.len() < 6,
                "kept {}",
                tally.report.top.len()
            );
        }
        let mut total = UsageTally::new(UsageOrder::Largest, 3);
        total.absorb(&tally);
        let top: Vec<u64> = total.report.top.iter().map(|r| r.page_count).collect();
        assert_eq!((total.report.tenants, top), (100, vec![99, 98, 97]));
    }
}
