//! `Serialize` for [`FleetReport`] (the `serde` feature), written once for
//! every fleet operation in the format the CLI's `--json` documents: the
//! operation's own fields, `tenants` (the lines the report holds),
//! `skipped`, `cancelled`, `stopped_by_failures`, `listing_errors` (their
//! messages), `duration_ms` and `totals`.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::report::{FleetCounts, FleetReport};

/// A duration in milliseconds, to the microsecond: `0.003`, never the
/// `0.0029349999999999997` a float product gives.
pub(crate) fn millis(d: std::time::Duration) -> f64 {
    // Exact below 2^53 microseconds (285 years); ryu prints the shortest
    // decimal that reads back as the same float.
    d.as_micros() as f64 / 1000.0
}

impl<C> Serialize for FleetReport<C>
where
    C: FleetCounts,
    C::Line: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_lines(&self.failures).serialize(s)
    }
}

impl<C: FleetCounts> FleetReport<C> {
    /// The report's JSON (as its own `Serialize`) with `lines` in
    /// `tenants` instead of the failures it keeps: every tenant's line,
    /// as `after_each` gave them (what the CLI's `migrate --json`
    /// prints). Each line is serialized as it is written, never all at
    /// once.
    pub fn with_lines<'a>(&'a self, lines: &'a [C::Line]) -> ReportWithLines<'a, C> {
        ReportWithLines {
            report: self,
            lines,
        }
    }
}

/// A [`FleetReport`]'s JSON with the lines given
/// ([`FleetReport::with_lines`]).
#[derive(Debug)]
pub struct ReportWithLines<'a, C: FleetCounts> {
    report: &'a FleetReport<C>,
    lines: &'a [C::Line],
}

impl<C> Serialize for ReportWithLines<'_, C>
where
    C: FleetCounts,
    C::Line: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.report;
        let mut map = s.serialize_map(None)?;
        r.counts.serialize_head(&mut map)?;
        map.serialize_entry("tenants", self.lines)?;
        map.serialize_entry("skipped", &r.skipped)?;
        map.serialize_entry("cancelled", &r.cancelled)?;
        map.serialize_entry("stopped_by_failures", &r.stopped_by_failures)?;
        let errors: Vec<String> = r.listing_errors.iter().map(|e| e.to_string()).collect();
        map.serialize_entry("listing_errors", &errors)?;
        map.serialize_entry("duration_ms", &millis(r.duration))?;
        map.serialize_entry("totals", &Totals(r))?;
        map.end()
    }
}

/// `{"tenants", "succeeded", "failed", "skipped", ...}` and the
/// operation's own totals.
struct Totals<'a, C: FleetCounts>(&'a FleetReport<C>);

impl<C: FleetCounts> Serialize for Totals<'_, C> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("tenants", &r.total())?;
        map.serialize_entry("succeeded", &r.succeeded())?;
        map.serialize_entry("failed", &r.failed())?;
        map.serialize_entry("skipped", &r.skipped.len())?;
        r.counts.serialize_totals(&mut map)?;
        map.end()
    }
}
