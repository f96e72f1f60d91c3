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
        let mut map = s.serialize_map(None)?;
        self.counts.serialize_head(&mut map)?;
        map.serialize_entry("tenants", &self.failures)?;
        map.serialize_entry("skipped", &self.skipped)?;
        map.serialize_entry("cancelled", &self.cancelled)?;
        map.serialize_entry("stopped_by_failures", &self.stopped_by_failures)?;
        let errors: Vec<String> = self.listing_errors.iter().map(|e| e.to_string()).collect();
        map.serialize_entry("listing_errors", &errors)?;
        map.serialize_entry("duration_ms", &millis(self.duration))?;
        map.serialize_entry("totals", &Totals(self))?;
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
