//! Reading the results back through the store traits: the target against the fake, the
//! duplicates and the quarantine of the full sync, and the ledger.

use std::collections::BTreeMap;

use sync_core::{Error, Key, Result, Row};

use super::{DeviceSync, DuplicateSeen, LedgerSummary, QuarantineLine, Verification, STREAM, SYNC};

/// A device as compared: status, rate plan, communication plan.
type Fields = (Option<String>, Option<String>, Option<String>);

impl DeviceSync {
    /// The column indexes of iccid, status, rate plan and communication plan.
    fn columns(&self) -> Result<[usize; 4]> {
        let schema = self.config.schema()?;
        let mut out = [0; 4];
        for (slot, name) in
            out.iter_mut()
                .zip(["iccid", "status", "rate_plan", "communication_plan"])
        {
            *slot = schema
                .column_index(name)
                .ok_or_else(|| Error::internal("a device column is missing"))?;
        }
        Ok(out)
    }

    fn text(row: &Row, column: usize) -> Option<String> {
        row.get(column).as_str().map(str::to_owned)
    }

    /// Devices listed twice with both listings at or after `since`, and the rate plan the
    /// target kept for each.
    pub(super) async fn duplicates(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<DuplicateSeen>> {
        let mut listed: BTreeMap<String, Vec<(String, chrono::DateTime<chrono::Utc>)>> =
            BTreeMap::new();
        for d in self.fake.devices() {
            listed
                .entry(d.iccid.clone())
                .or_default()
                .push((d.rate_plan.clone(), d.modified));
        }
        let [_, _, plan, _] = self.columns()?;
        let mut out = Vec::new();
        for (iccid, mut listings) in listed {
            if listings.len() < 2 || listings.iter().any(|(_, t)| *t < since) {
                continue;
            }
            listings.sort_by_key(|(_, t)| *t);
            let kept = self
                .stager
                .read_target_keys(STREAM, &[Key::text(iccid.clone())])
                .await?
                .first()
                .and_then(|r| Self::text(r, plan));
            out.push(DuplicateSeen {
                iccid,
                listed: listings,
                kept,
            });
        }
        Ok(out)
    }

    /// The quarantined devices, by ICCID.
    pub(super) async fn quarantine(&self) -> Result<Vec<QuarantineLine>> {
        let [iccid, ..] = self.columns()?;
        let mut out: Vec<QuarantineLine> = self
            .stager
            .quarantined(SYNC)
            .await?
            .into_iter()
            .map(|q| QuarantineLine {
                iccid: Self::text(&q.row, iccid).unwrap_or_default(),
                reason: q.reason,
            })
            .collect();
        out.sort_by(|a, b| a.iccid.cmp(&b.iccid));
        Ok(out)
    }

    /// The quarantined devices now.
    pub async fn quarantined(&self) -> Result<Vec<QuarantineLine>> {
        self.quarantine().await
    }

    /// Checks the target against the fake: every device whose newest listing changed since
    /// the full sync's window began, with its status and plans, and nothing else; a device
    /// whose newest listing is incomplete is expected in the quarantine instead.
    pub async fn verify(&self) -> Result<Verification> {
        let since = self
            .full_since()
            .ok_or_else(|| Error::new(sync_core::ErrorKind::NotFound, "run the full sync first"))?;
        let expected: BTreeMap<String, Fields> = self
            .fake
            .latest_since(since)
            .into_iter()
            .filter(|d| d.null_fields.is_empty())
            .map(|d| {
                let fields = (
                    Some(d.status),
                    Some(d.rate_plan),
                    Some(d.communication_plan),
                );
                (d.iccid, fields)
            })
            .collect();
        let [iccid, status, plan, communication] = self.columns()?;
        let rows = self.stager.read_target(STREAM).await?;
        let mut target: BTreeMap<String, Fields> = BTreeMap::new();
        let mut unexpected = Vec::new();
        for row in &rows {
            let key = Self::text(row, iccid).unwrap_or_default();
            let fields = (
                Self::text(row, status),
                Self::text(row, plan),
                Self::text(row, communication),
            );
            if target.insert(key.clone(), fields).is_some() {
                unexpected.push(key);
            }
        }
        let missing = expected
            .keys()
            .filter(|k| !target.contains_key(*k))
            .cloned()
            .collect();
        unexpected.extend(
            target
                .keys()
                .filter(|k| !expected.contains_key(*k))
                .cloned(),
        );
        let different = expected
            .iter()
            .filter(|(k, v)| target.get(*k).is_some_and(|t| t != *v))
            .map(|(k, _)| k.clone())
            .collect();
        Ok(Verification {
            expected: expected.len(),
            target: rows.len(),
            missing,
            unexpected,
            different,
        })
    }

    /// The ledger: every committed window and the totals.
    pub async fn ledger(&self) -> Result<LedgerSummary> {
        let windows = self.checkpoints.ledger(SYNC).await?;
        Ok(LedgerSummary {
            rows_read: windows.iter().map(|w| w.rows_read).sum(),
            rows_written: windows.iter().map(|w| w.rows_written).sum(),
            rows_rejected: windows.iter().map(|w| w.rows_rejected).sum(),
            windows,
        })
    }
}
