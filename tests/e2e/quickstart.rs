use crate::support::Sandbox;

#[test]
fn quickstart_drill_passes_and_leaves_evidence() {
    let sb = Sandbox::quickstart();
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["schema"], "drillbook.report/v1");
    assert_eq!(report["verdict"], "passed", "{run}");
    assert_eq!(report["failure_reasons"].as_array().unwrap().len(), 0);
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    for want in ["locate", "fetch", "integrity", "unpack", "provision", "restore", "verify", "teardown"] {
        assert!(steps.contains(&want), "step {want} missing from {steps:?}");
    }
    assert!(report["steps"].as_array().unwrap().iter().all(|s| s["status"] == "passed"), "{run}");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 10);
    let recall = checks.iter().find(|c| c["kind"] == "vector_recall").unwrap();
    assert_eq!(recall["observed"], 1.0);
    // The backup the drill proved, with the digest it computed while streaming.
    let bytes = std::fs::read(sb.path("quickstart/backups/rag-2026-11-29.tar.zst")).unwrap();
    assert_eq!(report["backup"]["sha256"], crate::support::sha256_hex(&bytes));
    assert_eq!(report["backup"]["size_bytes"], bytes.len());
    assert!(report["objectives"]["rto"]["met"].as_bool().unwrap());
    assert!(report["objectives"]["rpo"]["measured_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(report["previous"], serde_json::Value::Null);
    assert_eq!(report["scheduled_for"], serde_json::Value::Null);

    // Evidence on disk, and a history row that points at it.
    let folder = sb.path(&format!("drill-reports/quickstart-rag/{}", report["run_id"].as_str().unwrap()));
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("report.json")).unwrap()).unwrap();
    assert_eq!(on_disk, report);
    assert!(std::fs::read_to_string(folder.join("report.md")).unwrap().contains("PASSED"));
    let history = sb.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["status"], "passed");
    assert_eq!(history[0]["run_id"], report["run_id"]);
    assert!(history[0]["report"].as_str().unwrap().ends_with(report["run_id"].as_str().unwrap()));
    for field in ["runbook", "started_at", "finished_at", "scheduled_for"] {
        assert!(history[0].get(field).is_some(), "history lacks {field}");
    }
    sb.assert_no_leftovers();

    // A second drill links to the first one's report.
    let (run2, report2) = sb.drill("quickstart.yaml");
    assert_eq!(run2.code, 0, "{run2}");
    assert_eq!(report2["previous"]["run_id"], report["run_id"]);
    assert_eq!(report2["previous"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(sb.history()[0]["run_id"], report2["run_id"], "newest first");
}

#[test]
fn restored_data_that_differs_from_backup_time_fails_the_drill() {
    // Same backup, but ground truth that says the table had other rows: the digest catches it.
    let sb = Sandbox::quickstart();
    let m = sb.read("quickstart/db-manifest.json");
    let digest = m.split("\"digest\": \"").nth(1).unwrap().split('"').next().unwrap().to_string();
    sb.edit("quickstart/db-manifest.json", &digest, &"0".repeat(32));
    let (run, report) = sb.drill("quickstart.yaml");
    assert_eq!(run.code, 1, "{run}");
    let c = report["checks"].as_array().unwrap().iter().find(|c| c["kind"] == "table_checksum").unwrap();
    assert_eq!(c["status"], "failed");
    assert!(report["failure_reasons"][0].as_str().unwrap().contains("chunks identical to backup time"), "{run}");
    sb.assert_no_leftovers();
}
