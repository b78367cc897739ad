//! docs/TUTORIAL.md as a new user follows it: every `sh` block, in order, in a fresh folder,
//! with the binary under test first on PATH.

use std::path::Path;
use std::time::Instant;

use crate::support::Sandbox;

#[test]
fn the_tutorial_runs_as_written() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/TUTORIAL.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(blocks.len() >= 8, "the tutorial's runnable blocks: {blocks:#?}");
    let sb = Sandbox::new();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_drillbook")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let started = Instant::now();
    for (i, block) in blocks.iter().enumerate() {
        let out = std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", block])
            .current_dir(&sb.root)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", &sb.root)
            .env("TMPDIR", &sb.tmp)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "tutorial block {} failed ({}):\n{block}\n--- stdout\n{}\n--- stderr\n{}",
            i + 1,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("the tutorial's {} blocks ran in {:.1} s", blocks.len(), started.elapsed().as_secs_f64());
    sb.assert_no_leftovers();
}
