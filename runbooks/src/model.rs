//! The runbook types (version 1). A `Runbook` returned by [`Runbook::parse`] is valid.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{ByteSize, DurationSpec, Expect, Glob, Name, Parsed, Percent, Schedule, SecretRef, Timezone};

/// One asset's recovery procedure and its schedule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "drillbook runbook (version 1)")]
pub struct Runbook {
    /// Format version; must be 1.
    pub version: u32,
    /// Unique name, `[a-z0-9-]`.
    pub name: Parsed<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who answers for this asset.
    pub owner: String,
    /// When the daemon runs this drill; without it the drill runs only by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Parsed<Schedule>>,
    /// IANA time zone of the schedule; default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Parsed<Timezone>>,
    /// What the daemon does with fire times it missed (it was down or busy); default `skip`.
    #[serde(default)]
    pub misfire: Misfire,
    /// Start up to this long after each fire time (a fixed offset per runbook), so that
    /// runbooks on the same schedule do not all start at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Parsed<DurationSpec>>,
    pub asset: Asset,
    #[serde(default)]
    pub objectives: Objectives,
    /// Where the backup comes from. A drill whose restores each name their own `source` needs
    /// none; otherwise the restores without one share it (fetched once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// How the backup is restored (a drill of one store). Either this or `restores`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<Restore>,
    /// Several stores restored together (a RAG stack: documents, vectors, config), each with a
    /// `name` that checks give in `on:`. Fetch, provision and restore of the restores run
    /// concurrently; teardown runs in reverse order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<Restore>,
    /// How many restores run at once; default: the number of cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u32>,
    /// Checks run against the restored scratch copy, in order.
    #[serde(default)]
    pub verify: Vec<Check>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// After a failed drill, leave what it restored (its folder, a local server's data stopped,
    /// a server's scratch database) this long for investigation (`2h`); the daemon removes it
    /// when the time is up, `drillbook scratch rm RUN_ID` before. Never below the config's
    /// `keep_min_free` of free disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_on_failure: Option<Parsed<DurationSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
}

/// Missed fire times: `skip` waits for the next one; `once` runs one drill at once for all
/// that were missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    #[default]
    Skip,
    Once,
}

/// What is being protected; feeds the asset map.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    pub name: String,
    pub kind: AssetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AssetKind {
    VectorStore,
    DocumentStore,
    Relational,
    Cache,
    Config,
    Files,
}

/// Recovery objectives the drill measures itself against.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    /// Restore and verify must finish within this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<Parsed<DurationSpec>>,
    /// The newest backup must be younger than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<Parsed<DurationSpec>>,
}

/// Where the backup comes from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A storage profile from the config; `local` (the file system) by default.
    #[serde(default = "default_storage")]
    pub storage: String,
    /// A folder (ending in `/`, with `pick: latest`) or an object path. Not with `restic:`,
    /// whose own `path` names what to restore inside the snapshot.
    #[serde(default)]
    pub path: String,
    /// A restic repository instead of a storage profile: the recovery points are its snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restic: Option<ResticSource>,
    /// Which recovery point under `path`: `latest` (the newest), `oldest`, `random` (seeded by
    /// the run id, so a drill can be repeated), `{at: TIME}` (the newest at or before TIME, RFC
    /// 3339), or the exact name of one object.
    #[serde(default)]
    pub pick: Pick,
    /// Only recovery points this recent count (`30d`; for `at`, before TIME) — `random`,
    /// `oldest` and `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Parsed<DurationSpec>>,
    /// A recovery point's time is read from its name with this chrono format (`%Y-%m-%d`,
    /// `%Y%m%dT%H%M%SZ`; UTC), wherever it stands in the name; else its modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_format: Option<String>,
    /// Glob on object names when a recovery point is chosen among several.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Parsed<Glob>>,
    /// How the backup's integrity is proven before it is restored.
    #[serde(default)]
    pub checksum: ChecksumMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decrypt: Option<Decrypt>,
    /// Unpacking stops with a failed drill beyond this multiple of the backup's stored size
    /// (a guard against decompression bombs); default 50. Raise it for very compressible data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_expansion: Option<u64>,
}

/// `source.restic`: the backup is a snapshot in a restic repository, read by the real `restic`
/// (`restic dump`, streamed through the same hash-and-unpack pass as an object).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResticSource {
    /// The repository as restic names it: a folder, `s3:http://host:8333/bucket/repo`,
    /// `sftp:…`, `rest:…`. A relative folder resolves against the runbook's folder.
    pub repository: String,
    /// The repository's password (a secret reference), given to restic as `RESTIC_PASSWORD`.
    pub password: Parsed<SecretRef>,
    /// `latest` (then `source.pick` chooses among the snapshots: latest, oldest, random, at) or
    /// one snapshot's id (full or short).
    #[serde(default = "latest")]
    pub snapshot: String,
    /// What to restore inside the snapshot, as `restic ls` shows it: `/` (everything), a folder
    /// (a tree, under its own name) or one file (the file itself, e.g. a `.dump.zst`).
    #[serde(default = "slash")]
    pub path: String,
    /// Only snapshots carrying all these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Only snapshots taken on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `restic check --read-data-subset` of this share of the pack files before restoring
    /// (`5%`, `100%`); its verdict is the drill's `integrity` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_repository: Option<Parsed<Percent>>,
    /// Variables restic's backend needs (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …);
    /// values may be secret references. Nothing else of drillbook's environment reaches restic.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The restic program; default `restic` on PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin: Option<String>,
    /// The unprivileged user restic runs as when drillbook is root (default `nobody`); it must be
    /// able to read a local repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
}

fn latest() -> String {
    "latest".into()
}

fn slash() -> String {
    "/".into()
}

fn default_storage() -> String {
    "local".into()
}
/// `source.pick`: a word, an object's name, or `{at: TIME}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Pick {
    /// `latest`, `oldest`, `random`, or the exact name of one object.
    Named(String),
    /// The newest recovery point at or before `at`.
    At(PickAt),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PickAt {
    /// RFC 3339, e.g. `2026-11-20T03:00:00Z`.
    pub at: String,
}

impl Default for Pick {
    fn default() -> Self {
        Pick::Named("latest".into())
    }
}

/// How `pick` chooses, in words a program can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickRule<'a> {
    Latest,
    Oldest,
    Random,
    /// RFC 3339 text, checked by validation.
    At(&'a str),
    /// One object by name.
    Exact(&'a str),
}

impl Pick {
    pub fn rule(&self) -> PickRule<'_> {
        match self {
            Pick::Named(n) if n == "latest" => PickRule::Latest,
            Pick::Named(n) if n == "oldest" => PickRule::Oldest,
            Pick::Named(n) if n == "random" => PickRule::Random,
            Pick::Named(n) => PickRule::Exact(n),
            Pick::At(a) => PickRule::At(&a.at),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    /// No checksum: the digest is still computed and reported.
    #[default]
    None,
    /// `<object>.sha256` next to the object, in `sha256sum` format.
    Sidecar,
    /// A `SHA256SUMS` file in the object's folder.
    Manifest,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decrypt {
    pub age_identity: Parsed<SecretRef>,
}

/// How the backup is restored: the adapter, its scratch environment and its options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    /// The restore's name, `[a-z0-9-]`: what a check's `on:` and the report's lanes call it.
    /// Required in `restores:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Parsed<Name>>,
    /// This restore's own backup; without it, the drill's `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// A file or folder inside the unpacked backup that is this restore's (`docs/`,
    /// `vectors/rag.sqlite`): several restores share one archive of the whole stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `local` (an ephemeral environment) or `server:<name>` from the config.
    #[serde(default)]
    pub scratch: Parsed<ScratchSpec>,
    /// The asset this restore brings back, when a stack's store is an asset of its own (the
    /// vector database, the document store): `drillbook assets` lists it beside the runbook's,
    /// proven by the stack's drills. Only in `restores:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<Asset>,
    /// The adapter and its own options; in YAML these sit beside `adapter:`.
    pub adapter: AdapterOptions,
}

/// Where the scratch environment comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScratchSpec {
    Local,
    Server(String),
}

impl Restore {
    /// Its name; `restore` for a drill's only restore that has none.
    pub fn name(&self) -> &str {
        self.name.as_ref().map(|n| n.get().0.as_str()).unwrap_or("restore")
    }
}

impl std::str::FromStr for ScratchSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(ScratchSpec::Local),
            _ => match s.strip_prefix("server:") {
                Some(name) if !name.is_empty() => Ok(ScratchSpec::Server(name.to_string())),
                _ => Err(format!("unknown scratch provider {s:?}: expected `local` or `server:<name>`")),
            },
        }
    }
}

impl Default for Parsed<ScratchSpec> {
    fn default() -> Self {
        Parsed::new("local")
    }
}

impl JsonSchema for ScratchSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Scratch".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^(local|server:.+)$"})
    }
}

/// The registry of adapter option types: one variant per store, named as in YAML.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdapterOptions {
    Postgres(PostgresOptions),
    Sqlite(SqliteOptions),
    Files(FilesOptions),
    Redis(RedisOptions),
    Mariadb(MariadbOptions),
    Chroma(ChromaOptions),
    Qdrant(QdrantOptions),
}

impl AdapterOptions {
    /// The `adapter:` word of YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            AdapterOptions::Postgres(_) => "postgres",
            AdapterOptions::Sqlite(_) => "sqlite",
            AdapterOptions::Files(_) => "files",
            AdapterOptions::Redis(_) => "redis",
            AdapterOptions::Mariadb(_) => "mariadb",
            AdapterOptions::Chroma(_) => "chroma",
            AdapterOptions::Qdrant(_) => "qdrant",
        }
    }
}

/// `adapter: postgres` — a `pg_dump` archive (custom, directory, tar) or plain SQL script,
/// restored with the real `pg_restore`/`psql` into a local ephemeral cluster or a scratch
/// database on a configured server.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresOptions {
    /// The folder of `initdb`, `postgres`, `pg_restore`, `psql`; default: the newest
    /// installation on PATH or under `/usr/lib/postgresql/*/bin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<String>,
    /// Parallel restore jobs (`pg_restore -j`), where the dump format allows it; default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u32>,
    /// The dump inside the unpacked tree, when the backup holds more than the dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The unprivileged user that runs a `local` cluster when drillbook runs as root;
    /// default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// Server settings of a `local` cluster (`-c name=value`), over drillbook's defaults
    /// for a throwaway restore (`fsync=off`, large `maintenance_work_mem`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// `adapter: sqlite` — a SQLite database file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqliteOptions {
    /// The database file inside the unpacked tree; optional when the backup is the file itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// `adapter: files` — a tree of documents or configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesOptions {
    /// A sub-folder of the unpacked tree to treat as the restored root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// `adapter: redis` — an RDB file (`dump.rdb`) or a Redis 7 multi-part AOF folder
/// (`appendonlydir/` with its manifest), checked by `redis-check-rdb`/`redis-check-aof` and
/// loaded by a throwaway `redis-server` on a unix socket in the drill's folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisOptions {
    /// The RDB file or the AOF folder inside the unpacked tree; found by itself when the
    /// backup is one RDB file or holds exactly one RDB file or one AOF folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The folder of `redis-server`, `redis-check-rdb` and `redis-check-aof`; default: PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<String>,
    /// The unprivileged user that runs the scratch server and the checkers when drillbook
    /// runs as root; default `redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// Server settings (`--name value`) over drillbook's defaults for a throwaway copy;
    /// the settings that keep the scratch private (socket, dir, protected configs) cannot be overridden.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// `adapter: mariadb` — a `mariadb-dump`/`mysqldump` SQL file (one database or
/// `--all-databases`), restored with the real `mariadb` client into a throwaway `mariadbd` or a
/// scratch database on a configured server.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MariadbOptions {
    /// The folder of `mariadb-install-db`, `mariadbd` and `mariadb`; default: PATH, then `/usr/sbin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<String>,
    /// The dump inside the unpacked tree, when the backup holds more than the dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The unprivileged user that runs a `local` server and the client when drillbook runs as
    /// root; default `mysql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// Server settings of a `local` server (`--name=value`), over drillbook's defaults for a
    /// throwaway restore (`innodb_flush_log_at_trx_commit=0`, no binary log, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// `adapter: chroma` — a Chroma persist folder (`chroma.sqlite3` and one folder per vector
/// segment), served by the real Chroma server (`chroma run`) with its schema migrations in
/// validate mode, checked through Chroma's HTTP API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChromaOptions {
    /// The persist folder inside the unpacked tree; found by itself when exactly one folder
    /// holds a `chroma.sqlite3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The folder of the `chroma` program (PyPI `chromadb`); default: PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<String>,
    /// The unprivileged user that runs the scratch server when drillbook runs as root;
    /// default `nobody`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// Chroma's tenant and database of the collections; default `default_tenant`, `default_database`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// `adapter: qdrant` — a Qdrant snapshot (a collection snapshot, a shard snapshot, or a full
/// storage snapshot holding collection snapshots), loaded by Qdrant Edge (Qdrant's own engine)
/// in a child process and checked through it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QdrantOptions {
    /// The collection: the one to restore from a full storage snapshot; for a collection or
    /// shard snapshot, its name (default: from the snapshot's file name,
    /// `<collection>-<peer>-<time>.snapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// The snapshot inside the unpacked tree, when the backup archive holds more than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The engine program; default: `drillbook-qdrant-engine` beside the drillbook that runs the drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The unprivileged user that runs the engine when drillbook runs as root; default `nobody`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
}

/// One verification against the restored copy: a name and exactly one kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    /// The restore the check runs on (a name from `restores:`); not needed with one restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// In YAML the kind key sits beside `name`.
    pub check: CheckKind,
}

/// Check kinds whose options sit beside the kind key (`sql: ...` + `expect: ...`) rather
/// than under it (`vector_recall: {...}`).
pub const FLAT_CHECK_KINDS: &[&str] = &["sql"];

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Sql(SqlCheck),
    RowCounts(RowCountsCheck),
    Schema(SchemaCheck),
    TableChecksum(TableChecksumCheck),
    VectorIntegrity(VectorIntegrityCheck),
    VectorRecall(VectorRecallCheck),
    Files(FilesCheck),
    ConfigParse(ConfigParseCheck),
    Command(CommandCheck),
    Keys(KeysCheck),
    DatasetDigest(DatasetDigestCheck),
    Sample(SampleCheck),
    Memory(MemoryCheck),
    CheckTables(CheckTablesCheck),
    Collections(CollectionsCheck),
    Points(PointsCheck),
    DocumentsChecksum(DocumentsChecksumCheck),
    PayloadSchema(PayloadSchemaCheck),
    PointsChecksum(PointsChecksumCheck),
    References(ReferencesCheck),
    SameSet(SameSetCheck),
    SameCount(SameCountCheck),
    MaxSkew(MaxSkewCheck),
    ConfigMatches(ConfigMatchesCheck),
    SameResults(SameResultsCheck),
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Sql(_) => "sql",
            CheckKind::RowCounts(_) => "row_counts",
            CheckKind::Schema(_) => "schema",
            CheckKind::TableChecksum(_) => "table_checksum",
            CheckKind::VectorIntegrity(_) => "vector_integrity",
            CheckKind::VectorRecall(_) => "vector_recall",
            CheckKind::Files(_) => "files",
            CheckKind::ConfigParse(_) => "config_parse",
            CheckKind::Command(_) => "command",
            CheckKind::Keys(_) => "keys",
            CheckKind::DatasetDigest(_) => "dataset_digest",
            CheckKind::Sample(_) => "sample",
            CheckKind::Memory(_) => "memory",
            CheckKind::CheckTables(_) => "check_tables",
            CheckKind::Collections(_) => "collections",
            CheckKind::Points(_) => "points",
            CheckKind::DocumentsChecksum(_) => "documents_checksum",
            CheckKind::PayloadSchema(_) => "payload_schema",
            CheckKind::PointsChecksum(_) => "points_checksum",
            CheckKind::References(_) => "references",
            CheckKind::SameSet(_) => "same_set",
            CheckKind::SameCount(_) => "same_count",
            CheckKind::MaxSkew(_) => "max_skew",
            CheckKind::ConfigMatches(_) => "config_matches",
            CheckKind::SameResults(_) => "same_results",
        }
    }

    /// A check across the restores of a stack: it names the restores it reads itself and has
    /// no `on:`.
    pub fn is_coherence(&self) -> bool {
        matches!(
            self,
            CheckKind::References(_)
                | CheckKind::SameSet(_)
                | CheckKind::SameCount(_)
                | CheckKind::MaxSkew(_)
                | CheckKind::ConfigMatches(_)
                | CheckKind::SameResults(_)
        )
    }

    /// The value sets a coherence check reads.
    pub fn value_sets(&self) -> Vec<(&'static str, &ValueSet)> {
        match self {
            CheckKind::References(r) => vec![("from", &r.from), ("to", &r.to)],
            CheckKind::SameSet(c) => vec![("a", &c.a), ("b", &c.b)],
            CheckKind::SameCount(c) => vec![("a", &c.a), ("b", &c.b)],
            CheckKind::ConfigMatches(c) => vec![("equals", &c.equals)],
            _ => Vec::new(),
        }
    }
}

/// Values read from one restore, for the checks that compare restores: the first column of an
/// SQL query's rows (SQL stores), the paths of the restored files matching a glob (any
/// restore whose result is a tree, e.g. `files`), a payload field of a collection's points
/// or its vectors' dimension (vector stores). Exactly one of `sql`, `files`, `points` and
/// `dimension`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueSet {
    /// The restore the values come from (a name from `restores:`); not needed with one restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// One value per row: the first column, as text (`select document_id from chunks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// One value per restored file matching the glob: its path relative to the restored root,
    /// `/`-separated (`docs/**/*.md` gives `docs/a/b.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Parsed<Glob>>,
    /// Only the file's name, without its folders and this extension (`.md`): what a
    /// database calls the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_extension: Option<String>,
    /// One value per point of a vector store's collection (`qdrant`, `chroma`): a payload
    /// field (Chroma: a metadata key), or the point's id without `field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<PointValues>,
    /// One value: the dimension of a collection's vectors (`qdrant`, `chroma`), what a
    /// config's embedding dimension must equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<DimensionOf>,
}

/// The points of a collection, one value each: `field` of its payload (dotted for nested
/// objects; each element of an array counts), or its id. A point without the field gives
/// `NULL`, as SQL's NULL does.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointValues {
    pub collection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The dimension of a collection's vectors; `vector` names one of Qdrant's named vectors.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DimensionOf {
    pub collection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<String>,
}

/// What a value set asks the store of its restore (a `files:` set is read by the runner).
#[derive(Debug, Clone, Copy)]
pub enum StoreQuery<'a> {
    Sql(&'a str),
    Points(&'a PointValues),
    Dimension(&'a DimensionOf),
}

impl StoreQuery<'_> {
    /// Its key in a value set, as adapters list what they answer.
    pub fn key(&self) -> &'static str {
        match self {
            StoreQuery::Sql(_) => "sql",
            StoreQuery::Points(_) => "points",
            StoreQuery::Dimension(_) => "dimension",
        }
    }
}

impl ValueSet {
    /// The keys that say where the values come from; a valid set has exactly one.
    pub fn origins(&self) -> Vec<&'static str> {
        let set = [
            ("sql", self.sql.is_some()),
            ("files", self.files.is_some()),
            ("points", self.points.is_some()),
            ("dimension", self.dimension.is_some()),
        ];
        set.into_iter().filter(|(_, on)| *on).map(|(k, _)| k).collect()
    }

    /// The set in words, for details and checklists: `` `select id from documents` on docs``,
    /// ``files `docs/*.md` of corpus``, `` `doc_id` of the points of `chunks` on vectors``.
    pub fn describe(&self, rb: &Runbook) -> String {
        let on = rb.restores()[rb.restore_named(self.on.as_deref())].name();
        if let Some(g) = &self.files {
            return format!("files `{}` of {on}", g.raw());
        }
        match self.store_query() {
            Some(StoreQuery::Sql(q)) => format!("`{}` on {on}", q.trim()),
            Some(StoreQuery::Points(p)) => match &p.field {
                Some(f) => format!("`{f}` of the points of `{}` on {on}", p.collection),
                None => format!("the ids of the points of `{}` on {on}", p.collection),
            },
            Some(StoreQuery::Dimension(d)) => format!("the dimension of `{}` on {on}", d.collection),
            None => on.to_string(),
        }
    }

    /// What the store is asked for; `None` for a `files:` set.
    pub fn store_query(&self) -> Option<StoreQuery<'_>> {
        if let Some(q) = &self.sql {
            Some(StoreQuery::Sql(q))
        } else if let Some(p) = &self.points {
            Some(StoreQuery::Points(p))
        } else {
            self.dimension.as_ref().map(StoreQuery::Dimension)
        }
    }
}

/// Every value of `from` is one of `to`'s: every chunk's `document_id` names a document that
/// was restored. At most `max_missing` may be missing (default 0).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferencesCheck {
    pub from: ValueSet,
    pub to: ValueSet,
    #[serde(default)]
    pub max_missing: u64,
}

/// The two sets hold the same values (duplicates count once).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SameSetCheck {
    pub a: ValueSet,
    pub b: ValueSet,
}

/// The two sets yield as many values (rows, files).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SameCountCheck {
    pub a: ValueSet,
    pub b: ValueSet,
}

/// The same queries answer the same on several restores: the upgrade-readiness drill (one
/// backup restored into two engine versions, e.g. PostgreSQL 15 and 17 by `bin_dir`). A query's
/// answer is the first column of every row, in order (`select md5(d::text) from documents d
/// order by id` compares whole rows).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SameResultsCheck {
    /// At least two names from `restores:`; the first is the reference.
    pub restores: Vec<String>,
    pub queries: Vec<String>,
}

/// A value of a restored config file equals a property of a restored store: the embedding
/// dimension the config names and the vectors' (`equals: {on: vectors, sql: select
/// length(embedding) / 4 from chunks limit 1}`), a collection name, a model. Numbers compare
/// as numbers (`384` equals `384.0`), anything else as text.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigMatchesCheck {
    pub config: ConfigValue,
    /// The first value of this set (an SQL scalar, a file's name).
    pub equals: ValueSet,
}

/// One value of a restored config file (YAML, JSON or TOML, by its extension).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigValue {
    /// The restore holding the file (a name from `restores:`); not needed with one restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// The file, relative to the restored root (`app.yaml`, `config/app.yaml`).
    pub file: String,
    /// A dotted key (`embedding.dim`).
    pub key: String,
}

/// The backups of the named restores (default: all) were taken within `max` of each other:
/// a document backup from 02:00 and a vector backup from 14:00 are not one state.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxSkewCheck {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<String>,
    pub max: Parsed<DurationSpec>,
}

/// `sql: QUERY` + `expect: EXPR`: a query returns the expected scalar.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlCheck {
    pub sql: String,
    pub expect: Parsed<Expect>,
}

/// Per-table row counts equal (or within `tolerance` of) a manifest written at backup time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowCountsCheck {
    pub manifest: String,
    #[serde(default)]
    pub tolerance: u64,
}

/// Tables, columns, types and indexes match an expected snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaCheck {
    pub expected: String,
}

/// An order-independent digest of a table's rows equals the manifest's.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableChecksumCheck {
    pub table: String,
    pub manifest: String,
}

/// How vectors are stored where the store has no vector type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VectorEncoding {
    /// Little-endian f32 values in a BLOB.
    #[default]
    F32le,
    /// A JSON array of numbers in a text column.
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    #[default]
    Cosine,
    L2,
    Dot,
}

/// Every vector has the dimension, no NULL/NaN, norms in range.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VectorIntegrityCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// The vector column of `table` (SQL stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// A named vector of `collection` (Qdrant); default: the collection's only vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<String>,
    pub dim: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<VectorEncoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_norm: Option<f64>,
}

/// Golden queries return their expected ids (mean recall@k at least `min_recall`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VectorRecallCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// The vector column and the id column of `table` (SQL stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A named vector of `collection` (Qdrant); default: the collection's only vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<String>,
    /// JSON Lines: `{"id": "q1", "vector": [...], "expected": ["doc-17", ...]}`.
    pub queries: String,
    pub k: u32,
    pub min_recall: f64,
    /// Default: cosine for SQL stores; a vector store's collection says its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<VectorEncoding>,
}

impl VectorIntegrityCheck {
    /// The vector column of a `table` target (validation makes it present there).
    pub fn column(&self) -> &str {
        self.column.as_deref().unwrap_or_default()
    }
}

impl VectorRecallCheck {
    /// The vector and id columns of a `table` target (validation makes them present there).
    pub fn column(&self) -> &str {
        self.column.as_deref().unwrap_or_default()
    }
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
}

/// Every file of a manifest is present and identical; nothing unexpected unless allowed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesCheck {
    /// `sha256sum` format or JSON `[{path, size, sha256}]`, paths relative to the restored root.
    pub manifest: String,
    #[serde(default)]
    pub allow_extra: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfigFormat {
    #[default]
    Auto,
    Yaml,
    Json,
    Toml,
}

/// Every matching file parses, has the required keys and validates against a JSON Schema.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigParseCheck {
    /// Glob relative to the restored root.
    pub path: Parsed<Glob>,
    #[serde(default)]
    pub format: ConfigFormat,
    /// Dotted keys every file must have (`model.name`).
    #[serde(default)]
    pub require: Vec<String>,
    /// A JSON Schema file every file must validate against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// A script against the scratch copy; exit 0 passes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    /// The program and its arguments. A relative path (`./check.sh`, `bin/probe`) resolves
    /// against the runbook's folder, a bare name through PATH; never inside the restored data.
    pub run: Vec<String>,
    /// The only variables the command gets beside PATH, HOME, LANG/LC_*, TZ and `DRILL_*`;
    /// values may be secret references (`${env:NAME}`, `${file:PATH}`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Parsed<DurationSpec>>,
    /// The unprivileged user the command runs as when drillbook is root; default `nobody`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
}

/// Key counts of a key-value store: one database (and key pattern) against `expect`, or every
/// database and pattern of a manifest written at backup time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeysCheck {
    /// The database number (`SELECT`); default 0. Only with `expect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<u32>,
    /// Count the keys matching this glob (Redis `MATCH` syntax, by `SCAN`); without it the
    /// database's size (`DBSIZE`). Only with `expect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Parsed<Expect>>,
    /// A manifest from `drillbook manifest --adapter redis`: every database's key count and
    /// every pattern counted there must match (within `tolerance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(default)]
    pub tolerance: u64,
}

/// The digest of the whole restored dataset equals the manifest's (Redis `DEBUG DIGEST`, or
/// a digest of the values read back when the manifest's source did not allow `DEBUG`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetDigestCheck {
    pub manifest: String,
}

/// Named keys exist with the expected type, TTL presence and value digest; or every key a
/// manifest sampled at backup time (`drillbook manifest --sample N`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleCheck {
    /// The database of `keys`; default 0.
    #[serde(default)]
    pub db: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<SampleKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleKey {
    pub key: String,
    /// `string`, `list`, `set`, `zset`, `hash` or `stream` (Redis `TYPE`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether the key has a time to live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<bool>,
    /// `DEBUG DIGEST-VALUE` of the key at backup time (40 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The restored dataset's memory (`INFO memory` `used_memory`) lies within a range.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Parsed<ByteSize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Parsed<ByteSize>>,
}

/// `CHECK TABLE … EXTENDED` on every restored table (or the named ones): anything but `OK`
/// fails the check, naming the table and the server's words.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckTablesCheck {
    /// Only these tables (`table`, or `database.table` for an `--all-databases` dump).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

/// The restored vector store holds the expected collections: every one of a manifest (with
/// its dimension, metadata and count) or the named ones; others only with `allow_extra`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionsCheck {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(default)]
    pub allow_extra: bool,
}

/// The number of points (records) of a collection, optionally those matching a filter in the
/// store's own syntax (a Chroma `where`), against `expect` or a manifest's count.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointsCheck {
    pub collection: String,
    #[serde(default, alias = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Parsed<Expect>>,
    /// A manifest from `drillbook manifest`: the collection's count there (without `filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(default)]
    pub tolerance: u64,
}

/// An order-independent digest of a collection's records (id, document, metadata) equals the
/// manifest's.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentsChecksumCheck {
    pub collection: String,
    pub manifest: String,
}

/// The payload fields of a collection's points and the types of their values equal the
/// manifest's (a field or a type missing, or one the manifest does not have unless
/// `allow_extra`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PayloadSchemaCheck {
    pub collection: String,
    pub manifest: String,
    #[serde(default)]
    pub allow_extra: bool,
}

/// An order-independent digest of a collection's points (id, every vector, payload) equals
/// the manifest's.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointsChecksumCheck {
    pub collection: String,
    pub manifest: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Limit for any single step; default 15m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Parsed<DurationSpec>>,
    /// Limit for the whole drill; default 45m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<Parsed<DurationSpec>>,
}

impl Timeouts {
    pub fn step(&self) -> std::time::Duration {
        self.step.as_ref().map(|d| d.get().0).unwrap_or(std::time::Duration::from_secs(15 * 60))
    }
    pub fn drill(&self) -> std::time::Duration {
        self.drill.as_ref().map(|d| d.get().0).unwrap_or(std::time::Duration::from_secs(45 * 60))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailNotify>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookNotify>,
}

/// A JSON summary POSTed to `url` (Slack-compatible `text` field), signed with HMAC-SHA256 of
/// the body under `secret` in the `X-Drillbook-Signature-256: sha256=<hex>` header (the
/// GitHub/Stripe convention).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookNotify {
    pub url: String,
    #[serde(default = "default_notify_on")]
    pub on: Vec<NotifyOn>,
    /// A secret reference (`${env:NAME}` or `${file:PATH}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailNotify {
    pub to: Vec<String>,
    #[serde(default = "default_notify_on")]
    pub on: Vec<NotifyOn>,
}

fn default_notify_on() -> Vec<NotifyOn> {
    vec![NotifyOn::Failure, NotifyOn::Recovery]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    Failure,
    Recovery,
    Always,
}

impl Runbook {
    pub fn name(&self) -> &str {
        &self.name.get().0
    }

    /// The drill's restores: `restore` as a list of one, or `restores`.
    pub fn restores(&self) -> &[Restore] {
        match &self.restore {
            Some(one) => std::slice::from_ref(one),
            None => &self.restores,
        }
    }

    /// Whether the drill restores several stores (its steps and checks then name theirs).
    pub fn is_stack(&self) -> bool {
        self.restores().len() > 1
    }

    /// The backup a restore reads: its own `source`, else the drill's (validation makes one
    /// of them present).
    pub fn source_of<'a>(&'a self, restore: &'a Restore) -> Option<&'a Source> {
        restore.source.as_ref().or(self.source.as_ref())
    }

    /// The index in [`Runbook::restores`] of the restore a check runs on: its `on:`, or the
    /// only one (validation makes `on:` name one, and be present with several).
    pub fn restore_of(&self, check: &Check) -> usize {
        self.restore_named(check.on.as_deref())
    }

    /// The index of the restore `on` names, or the first (the only one, where validation lets
    /// `on` be absent).
    pub fn restore_named(&self, on: Option<&str>) -> usize {
        on.and_then(|on| self.restores().iter().position(|r| r.name() == on)).unwrap_or(0)
    }
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.timezone.as_ref().map(|t| t.get().0).unwrap_or(chrono_tz::UTC)
    }
}
