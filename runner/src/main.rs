//! `drillbook`: recovery drills as code. CLI entry point; maps outcomes to exit codes.

mod audit;
mod bundle;
mod config;
mod daemon;
mod evidence;
mod execute;
mod explain;
mod folder;
mod history;
mod http;
mod init;
mod inventory;
mod ledger;
mod memory;
mod notify;
mod plan;
mod progress;
mod run;
mod schedule;
mod timestamp;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

/// Input that cannot be executed (runbook, config, arguments): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// `--version`: the release, the commit it was built from, and the stores it restores.
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (commit {})\nadapters: {}",
        env!("CARGO_PKG_VERSION"),
        env!("DRILLBOOK_COMMIT"),
        drillbook_runbooks::adapter_kinds().join(", ")
    )
});

#[derive(Parser)]
#[command(
    name = "drillbook",
    version,
    long_version = LONG_VERSION.as_str(),
    about = "Recovery drills as code: restore real backups into scratch environments and prove them."
)]
struct Cli {
    /// Config file (default: ./drillbook.yaml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check runbooks (files or folders) without running anything. Exit 0 valid, 2 invalid.
    Validate {
        paths: Vec<PathBuf>,
        /// Also resolve every secret reference (`${env:…}`, `${file:…}`) as a drill would.
        #[arg(long)]
        resolve: bool,
    },
    /// Run one drill now. Exit 0 passed, 1 failed, 2 invalid input.
    Run {
        runbook: PathBuf,
        #[arg(long)]
        report_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Fire every runbook of the folder on its schedule until SIGTERM; SIGHUP reloads.
    Daemon,
    /// Past drills, newest first.
    History {
        #[arg(long)]
        runbook: Option<String>,
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Next fire times of runbooks (files or folders), in each runbook's time zone.
    Plan {
        paths: Vec<PathBuf>,
        #[arg(long, default_value_t = 3)]
        count: usize,
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// The asset map: every runbook's asset with its last drill and whether a passing drill
    /// proved it within its RPO.
    Assets {
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// From a backup to a working runbook: detect what it is, restore it once into scratch,
    /// capture the ground truth, write `<name>.yaml` beside `truth/<name>/`.
    Init(Box<init::InitArgs>),
    /// The runbook as a numbered checklist to follow by hand.
    Explain { runbook: PathBuf },
    /// The JSON Schema of runbooks.
    Schema,
    /// A shell completion script: `drillbook completions bash > /etc/bash_completion.d/drillbook`.
    Completions { shell: clap_complete::Shell },
    /// Create an Ed25519 key pair: DIR/signing.pem (PKCS#8 v1, 0600) and DIR/signing.pub.pem
    /// (SPKI). With --rotate, DIR is a keyring: a new key is added and the active one retired.
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// Add a key to the keyring DIR (created if needed; a signing.pem pair in DIR is taken
        /// in as a retired key) and retire the active one as of now.
        #[arg(long)]
        rotate: bool,
    },
    /// Evidence: verify a signed report and its chain.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Evidence for auditors: what served every scheduled fire time of a period.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Failed drills' scratch kept for investigation (`keep_on_failure`).
    #[command(subcommand)]
    Scratch(ScratchCommand),
    /// Capture ground truth from a live store at backup time (row counts, digests, schema,
    /// golden-query answers). Read-only.
    Manifest(Box<run::ManifestArgs>),
    /// Internal: write the man pages (drillbook.1 and one per subcommand) into DIR, for
    /// packages (`scripts/package.sh`).
    #[command(hide = true)]
    Manpages { out: PathBuf },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Every scheduled fire time of every runbook in [FROM, TO) and what served it: a run
    /// (verdict, report checked against history) or `missed` and why. Exit 0 when every fire
    /// time ran and every report is intact, 1 otherwise.
    Coverage {
        /// Start of the period: RFC 3339 (2026-11-01T00:00:00Z) or a date (UTC midnight).
        #[arg(long, value_parser = parse_time)]
        from: chrono::DateTime<chrono::Utc>,
        /// End of the period (excluded), same forms.
        #[arg(long, value_parser = parse_time)]
        to: chrono::DateTime<chrono::Utc>,
        #[arg(long, value_enum, default_value = "table")]
        output: CoverageOutput,
    },
    /// One tar for the auditor: every report of [FROM, TO), the coverage (HTML + CSV), the
    /// asset map, the public key(s), a signed SHA256SUMS, index.html, VERIFY.md and verify.sh
    /// (openssl, sha256sum and tar alone).
    Export {
        #[arg(long, value_parser = parse_time)]
        from: chrono::DateTime<chrono::Utc>,
        #[arg(long, value_parser = parse_time)]
        to: chrono::DateTime<chrono::Utc>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a bundle as verify.sh does: the signed SHA256SUMS, every file against it, nothing
    /// extra, every report's own envelope. Exit 0 valid, 1 not.
    Verify {
        bundle: PathBuf,
        /// The public key you trust (default: the one the bundle carries, with a note).
        #[arg(long, conflicts_with = "keyring")]
        pubkey: Option<PathBuf>,
        /// A keyring folder whose public half you trust.
        #[arg(long)]
        keyring: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CoverageOutput {
    Table,
    Csv,
    Json,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("`{s}` is neither an RFC 3339 time (2026-11-01T03:00:00Z) nor a date (2026-11-01)"))
}

#[derive(Subcommand)]
enum ScratchCommand {
    /// Every kept scratch: run, runbook, until when, where.
    List {
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Remove a kept scratch now (its folder, a scratch database on a server).
    Rm { run_id: String },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Check an envelope's signature, that report.json beside it is the signed report, and
    /// with --chain DIR (the reports root) the chain of earlier reports. Exit 0 valid, 1 not.
    Verify {
        envelope: PathBuf,
        /// The signer's public key (default: signing.pub.pem beside the configured key, or the
        /// configured keyring).
        #[arg(long, conflicts_with = "keyring")]
        pubkey: Option<PathBuf>,
        /// A keyring folder (keys.yaml + <keyid>.pub.pem): each report is checked with the key
        /// it names, which must have been valid when the report was signed.
        #[arg(long)]
        keyring: Option<PathBuf>,
        #[arg(long)]
        chain: Option<PathBuf>,
        /// The TSA's CA certificate (PEM) to check `report.tsr` against (default: the
        /// config's `timestamp.ca`).
        #[arg(long)]
        tsa_ca: Option<PathBuf>,
    },
    /// Render DIR/index.html: every drill of every runbook, with an RTO trend per runbook.
    Index {
        #[arg(long)]
        out: PathBuf,
        /// The reports root (default: `reports` from the config).
        #[arg(long)]
        report_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DRILLBOOK_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    // TLS clients (webhooks) and the HTTPS server use ring; one process-wide provider.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    if matches!(cli.command, Command::Daemon) {
        memory::limit_arenas();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            if let Some(invalid) = e.downcast_ref::<Invalid>() {
                eprintln!("{invalid}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Validate { paths, resolve } => plan::validate_command(&config, &paths, resolve),
        Command::Run { runbook, report_dir, output } => {
            run::run_command(&config, &runbook, report_dir, output == Output::Json).await
        }
        Command::Daemon => daemon::daemon_command(&config).await,
        Command::History { runbook, output } => {
            run::history_command(&config, runbook.as_deref(), output == Output::Json).await
        }
        Command::Plan { paths, count, output } => {
            inventory::plan_command(&config, &paths, count, output == Output::Json)
        }
        Command::Assets { paths, output } => inventory::assets_command(&config, &paths, output == Output::Json).await,
        Command::Init(args) => init::init_command(&config, &args).await,
        Command::Explain { runbook } => explain::explain_command(&config, &runbook),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "drillbook", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpages { out } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            // generate_to builds the command itself; building it first would add `help` pages.
            clap_mangen::generate_to(Cli::command(), &out)
                .with_context(|| format!("cannot write into {}", out.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&drillbook_runbooks::runbook_schema())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen { out, rotate } => evidence::keygen_command(&out, rotate),
        Command::Report(ReportCommand::Verify { envelope, pubkey, keyring, chain, tsa_ca }) => {
            let keys =
                evidence::KeyArgs { pubkey: pubkey.as_deref(), keyring: keyring.as_deref(), tsa_ca: tsa_ca.as_deref() };
            evidence::verify_command(&config, &envelope, keys, chain.as_deref()).await
        }
        Command::Report(ReportCommand::Index { out, report_dir }) => {
            evidence::index_command(&config, report_dir.as_deref(), &out)
        }
        Command::Manifest(args) => run::manifest_command(&args).await,
        Command::Audit(AuditCommand::Coverage { from, to, output }) => {
            if from >= to {
                return Err(Invalid(format!("--from {from} is not before --to {to}")).into());
            }
            let output = match output {
                CoverageOutput::Table => "table",
                CoverageOutput::Csv => "csv",
                CoverageOutput::Json => "json",
            };
            audit::coverage_command(&config, from, to, output).await
        }
        Command::Audit(AuditCommand::Export { from, to, out }) => {
            if from >= to {
                return Err(Invalid(format!("--from {from} is not before --to {to}")).into());
            }
            bundle::export_command(&config, from, to, &out).await
        }
        Command::Audit(AuditCommand::Verify { bundle, pubkey, keyring }) => {
            bundle::verify_command(&bundle, pubkey.as_deref(), keyring.as_deref())
        }
        Command::Scratch(ScratchCommand::List { output }) => {
            daemon::scratch_list_command(&config, output == Output::Json).await
        }
        Command::Scratch(ScratchCommand::Rm { run_id }) => daemon::scratch_rm_command(&config, &run_id).await,
    }
}

/// This machine's name, for reports and history.
/// This machine's boot, pid and start time of process `pid` (`<boot id>:<pid>:<start
/// ticks>`): equal only for the very same process, whatever its name, and different for a
/// later process that got the same pid (a container restarted as PID 1).
pub fn process_identity(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(format!("{}:{pid}:{}", boot.trim(), start_ticks(&stat)?))
}

/// Field 22 of `/proc/<pid>/stat` (the start time in clock ticks after boot), read after the
/// last `)` because the command name in parentheses may itself hold spaces and parentheses.
fn start_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on; the start time is field 22.
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn a_process_is_known_by_its_boot_pid_and_start_time() {
        let me = process_identity(std::process::id()).expect("our own identity");
        assert_eq!(process_identity(std::process::id()).as_deref(), Some(me.as_str()), "stable");
        assert_ne!(process_identity(1), Some(me.clone()), "another process differs");
        // A command name with spaces and parentheses does not shift the fields.
        let stat = "4242 (evil) (name) S 1 4242 4242 0 -1 4194560 500 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(start_ticks(stat), Some(987654));
        assert_eq!(process_identity(u32::MAX), None, "no such process");
    }
}
