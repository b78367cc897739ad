//! A backup read once: locate → fetch, hashed and unpacked as it streams → integrity. The
//! drill's shared `source` and each restore's own go through here.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drillbook_adapters::source::Located;
use drillbook_adapters::{DrillCx, Taken, Unpacked, unpack};
use drillbook_reports::{self as reports, StepStatus};
use drillbook_runbooks::Source;
use sha2::Digest;

use super::record::{Recorder, done};
use super::{Origin, SourcePlan};

/// locate, fetch, integrity, unpack. Fetch and unpack overlap: one read of the object.
pub(super) async fn fetch(
    source: &SourcePlan,
    spec: &Source,
    cx: &DrillCx,
    dest: &Path,
    rec: &mut Recorder<'_>,
    backup: &mut Option<reports::Backup>,
) -> Option<Unpacked> {
    let located = rec
        .step("locate", async {
            // `pick: random` is seeded by the run id: the same drill picks the same point again.
            let seed =
                u64::from_be_bytes(sha2::Sha256::digest(cx.run_id.as_bytes())[..8].try_into().unwrap_or_default());
            let (found, expected) = match &source.origin {
                Origin::Storage { storage, path } => {
                    let found =
                        storage.locate(spec, path, chrono::Utc::now(), seed).await.map_err(|e| e.to_string())?;
                    let expected = storage.expected_sha256(&found, spec.checksum).await.map_err(|e| e.to_string())?;
                    (found, expected)
                }
                Origin::Restic(restic) => {
                    let found = restic
                        .locate(spec, chrono::Utc::now(), seed, &cx.work_dir, &cx.cancel)
                        .await
                        .map_err(|e| e.to_string())?;
                    (found, None)
                }
            };
            let when = found.modified.map(|m| m.to_rfc3339()).unwrap_or_else(|| "unknown".into());
            let what = match source.origin {
                // A snapshot's size is known once restic has restored it.
                Origin::Restic(_) => format!("taken {when}; restic is restoring it"),
                Origin::Storage { .. } => format!(
                    "{} bytes, modified {when}{}",
                    found.size,
                    found.named_time.map(|t| format!(", taken {} by its name", t.to_rfc3339())).unwrap_or_default()
                ),
            };
            let detail = format!(
                "{} ({what}){}{}",
                found.location,
                found.picked.as_ref().map(|p| format!("; picked {p}")).unwrap_or_default(),
                expected.as_ref().map(|e| format!("; expected sha256 {e}")).unwrap_or_default()
            );
            Ok(done((found, expected), None, detail))
        })
        .await;
    let Some((mut found, expected)) = located else {
        rec.skip_rest("locate");
        return None;
    };
    *backup = Some(backup_record(&found, None, expected.clone(), &source.origin));
    if let Err(e) = std::fs::create_dir(dest) {
        rec.fail("unpack", format!("cannot create {}: {e}", dest.display()));
        rec.skip_rest("locate");
        return None;
    }

    let fetch_at = Utc::now();
    let fetch_t = Instant::now();
    let (limit, which) = rec.budget();
    let ratio = spec.max_expansion.unwrap_or(unpack::DEFAULT_MAX_RATIO);
    let pipeline = async {
        match &source.origin {
            Origin::Storage { storage, .. } => {
                storage
                    .fetch_and_unpack(&found, dest, ratio, source.decryption.clone(), cx.progress.clone(), &cx.cancel)
                    .await
            }
            Origin::Restic(restic) => {
                restic.fetch_and_unpack(&found, dest, ratio, cx.progress.clone(), &cx.cancel).await
            }
        }
    };
    let fetched = tokio::select! {
        r = tokio::time::timeout(limit, pipeline) => r.ok(),
        _ = cx.cancel.cancelled() => None,
    };
    let Some(f) = fetched else {
        let reason = if cx.cancel.is_cancelled() { rec.interrupted() } else { rec.timed_out(fetch_t, which) };
        rec.push(
            "fetch",
            fetch_at,
            Utc::now().signed_duration_since(fetch_at).to_std().unwrap_or_default(),
            StepStatus::Failed,
            None,
            reason.clone(),
        );
        rec.fail("fetch", reason);
        rec.skip_rest("fetch");
        return None;
    };
    if let Origin::Restic(_) = source.origin {
        // A snapshot's size is what restic restored.
        found.size = f.bytes_read;
    }
    *backup = Some(backup_record(&found, f.sha256.clone(), expected.clone(), &source.origin));
    let fetch_took = Duration::from_millis(f.fetch_ms);
    if let Some(err) = &f.fetch_error {
        if cx.cancel.is_cancelled() {
            // Marks the drill aborted when it was (the fetch error says how it ended).
            rec.interrupted();
        }
        rec.push("fetch", fetch_at, fetch_took, StepStatus::Failed, Some(f.bytes_read), err.clone());
        rec.fail("fetch", err.clone());
        rec.skip_rest("fetch");
        return None;
    }
    rec.push(
        "fetch",
        fetch_at,
        fetch_took,
        StepStatus::Passed,
        Some(f.bytes_read),
        match source.origin {
            Origin::Storage { .. } => format!("read {} once, hashed while streaming", found.location),
            Origin::Restic(_) => format!("`restic restore` of {}", found.location),
        },
    );

    let integrity_at = Utc::now();
    let sha = f.sha256.clone().unwrap_or_default();
    if let Origin::Restic(restic) = &source.origin {
        let proof = rec
            .step("integrity", async {
                // restic authenticates every blob it restores (MAC, then its SHA-256 id).
                let file =
                    if sha.is_empty() { String::new() } else { format!("; the restored file hashes to sha256 {sha}") };
                match restic.check(&cx.cancel).await {
                    Some(Ok(said)) => Ok(done((), Some(f.bytes_read), format!("{said}{file}"))),
                    Some(Err(why)) => Err(why),
                    None => Ok(done(
                        (),
                        Some(f.bytes_read),
                        format!(
                            "restic authenticated every blob it restored{file} (add `verify_repository: 5%` to \
                             read back a share of the whole repository)"
                        ),
                    )),
                }
            })
            .await;
        if proof.is_none() {
            rec.skip_rest("integrity");
            return None;
        }
    } else {
        match &expected {
            Some(want) if *want != sha => {
                let reason =
                    format!("sha256 mismatch: the backup hashes to {sha}, the {} says {want}", checksum_source(spec));
                rec.push(
                    "integrity",
                    integrity_at,
                    Duration::ZERO,
                    StepStatus::Failed,
                    Some(f.bytes_read),
                    reason.clone(),
                );
                rec.fail("integrity", reason);
                rec.skip_rest("integrity");
                return None;
            }
            Some(_) => rec.push(
                "integrity",
                integrity_at,
                Duration::ZERO,
                StepStatus::Passed,
                Some(f.bytes_read),
                format!("sha256 {sha} matches the {}", checksum_source(spec)),
            ),
            None => rec.push(
                "integrity",
                integrity_at,
                Duration::ZERO,
                StepStatus::Passed,
                Some(f.bytes_read),
                format!("sha256 {sha} (no checksum required by the runbook)"),
            ),
        }
    }

    let unpack_took = Duration::from_millis(f.unpack_ms);
    match f.unpacked {
        Ok(u) => {
            rec.push(
                "unpack",
                fetch_at,
                unpack_took,
                StepStatus::Passed,
                Some(u.bytes),
                match source.origin {
                    Origin::Storage { .. } => format!("{} (overlapped with fetch)", unpack::describe(&u)),
                    Origin::Restic(_) => {
                        format!("{} (the unpack rules checked on what restic wrote)", unpack::describe(&u))
                    }
                },
            );
            Some(u)
        }
        Err(e) => {
            let reason = e.to_string();
            rec.push("unpack", fetch_at, unpack_took, StepStatus::Failed, None, reason.clone());
            rec.fail("unpack", reason);
            rec.skip_rest("unpack");
            None
        }
    }
}

fn checksum_source(spec: &Source) -> &'static str {
    match spec.checksum {
        drillbook_runbooks::ChecksumMode::Manifest => "SHA256SUMS manifest",
        _ => "sidecar",
    }
}

fn backup_record(
    found: &Located,
    sha256: Option<String>,
    expected: Option<String>,
    origin: &Origin,
) -> reports::Backup {
    // The recovery point's own time: the one in its name when `time_format` read it (the
    // restore replaces it with the one its content holds, `taken_from_content`).
    let (taken_at, taken_from) = match (found.named_time, origin) {
        (Some(t), _) => (Some(t), "its name (`time_format`)"),
        (None, Origin::Restic(_)) => (found.modified, "the restic snapshot's time"),
        (None, Origin::Storage { .. }) => (found.modified, "the object's modification time"),
    };
    reports::Backup {
        location: found.location.clone(),
        size_bytes: found.size,
        modified_at: found.modified,
        sha256,
        expected_sha256: expected,
        taken_from: taken_at.map(|_| taken_from.to_string()),
        taken_at,
        age_seconds: taken_at.map(|m| Utc::now().signed_duration_since(m).num_seconds()),
        newest_age_seconds: found.newest_time.map(|m| Utc::now().signed_duration_since(m).num_seconds()),
    }
}

/// The backup's time as its content says (the restore read it), in place of its object's:
/// unless it is later than the object was stored or than now, which a backup's own time
/// cannot be (a dump host's wall clock in a zone east of UTC, say); then the report says so.
pub(super) fn taken_from_content(backup: &mut reports::Backup, taken: Taken, rec: &mut Recorder<'_>) {
    let stored = backup.modified_at.unwrap_or(DateTime::<Utc>::MAX_UTC).min(Utc::now());
    // A minute for clocks that differ between the backup host and the storage.
    if taken.at > stored + chrono::Duration::minutes(1) {
        rec.note(
            "restore",
            format!(
                "{} says the backup was taken at {}, after it was stored ({}): its time stays {}",
                taken.from,
                taken.at.to_rfc3339(),
                stored.to_rfc3339(),
                backup.taken_from.as_deref().unwrap_or("unknown")
            ),
        );
        return;
    }
    let age = |t: DateTime<Utc>| Utc::now().signed_duration_since(t).num_seconds();
    // When an older point was drilled on purpose, the newest one's age stays what the RPO is
    // measured on; otherwise this backup is the newest.
    backup.age_seconds = Some(age(taken.at));
    backup.taken_at = Some(taken.at);
    backup.taken_from = Some(taken.from);
}
