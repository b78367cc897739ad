//! Which recovery point a drill restores: `pick: oldest|random|{at}`, `within`, `time_format`.

use crate::bad_input::{fails_with, step};
use crate::support::Sandbox;

/// The quickstart with five recovery points, named by day (the same content, so every one
/// restores), and the runbook's `pick: latest` replaced by `pick`.
fn points(pick: &str) -> Sandbox {
    let sb = Sandbox::quickstart();
    let backups = sb.path("quickstart/backups");
    for day in ["2000-01-01", "2026-11-01", "2026-11-10", "2026-11-20"] {
        for ext in ["", ".sha256"] {
            std::fs::copy(
                backups.join(format!("rag-2026-11-29.tar.zst{ext}")),
                backups.join(format!("rag-{day}.tar.zst{ext}")),
            )
            .unwrap();
        }
    }
    sb.edit("quickstart.yaml", "  pick: latest\n", &format!("{pick}\n  time_format: \"%Y-%m-%d\"\n"));
    sb
}

fn picked(sb: &Sandbox) -> (String, serde_json::Value) {
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    let detail = step(&report, "locate")["detail"].as_str().unwrap().to_string();
    (detail, report)
}

#[test]
fn at_oldest_and_random_pick_their_recovery_point_and_say_how() {
    let sb = points("  pick: { at: \"2026-11-21T00:00:00Z\" }");
    let (detail, report) = picked(&sb);
    assert!(detail.contains("rag-2026-11-20.tar.zst"), "{detail}");
    assert!(detail.contains("picked the newest of 4 recovery points at or before 2026-11-21T00:00:00Z"), "{detail}");
    assert!(detail.contains("taken 2026-11-20T00:00:00+00:00 by its name"), "{detail}");
    // The recovery point's age is its name's time, not the copy's modification time.
    let age = report["backup"]["age_seconds"].as_i64().unwrap();
    assert!(age > 9 * 86400, "age {age}s is the file's, not the point's");

    let sb = points("  pick: oldest\n  within: 36500d");
    let (detail, _) = picked(&sb);
    assert!(detail.contains("rag-2000-01-01.tar.zst"), "{detail}");
    let sb = points("  pick: oldest\n  within: 3650d");
    let (detail, _) = picked(&sb);
    assert!(detail.contains("rag-2026-11-01.tar.zst"), "the point from 2000 is outside the window: {detail}");
    assert!(detail.contains("the oldest of 4 recovery points within 3650d"), "{detail}");

    // Random, seeded by the run id: the report says which of how many and with what seed.
    let sb = points("  pick: random\n  within: 3650d");
    let (detail, _) = picked(&sb);
    assert!(detail.contains("picked at random (seed "), "{detail}");
    assert!(detail.contains("by time of 4 recovery points within 3650d"), "{detail}");
}

#[test]
fn no_recovery_point_in_the_window_is_a_failed_drill_saying_so() {
    let sb = points("  pick: { at: \"2026-11-21T00:00:00Z\" }\n  within: 12h");
    let (_, report) =
        fails_with(&sb, "quickstart.yaml", "locate: no recovery point in the 12h before 2026-11-21T00:00:00Z");
    assert_eq!(step(&report, "restore")["status"], "skipped");
    let sb = points("  pick: { at: \"yesterday\" }");
    let r = sb.run(&["validate", "quickstart.yaml"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("source.pick.at: `yesterday` is not an RFC 3339 time"), "{r}");
}
