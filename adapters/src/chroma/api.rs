//! The few calls of Chroma's HTTP API v2 a drill makes: heartbeat, version, collections,
//! count, paged `get` and `query`. Read-only: nothing here adds, updates or deletes.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

/// Records read per `get` call when a whole collection's ids, documents or metadata are read.
pub const PAGE: usize = 5000;

/// Records per `get` call when embeddings are read: about 1M numbers a page (2 600 of 384-d,
/// 650 of 1536-d): few calls, each answer about 10 MB.
pub fn embedding_page(c: &Collection) -> usize {
    (1_000_000 / c.dimension.unwrap_or(384).max(1) as usize).clamp(100, PAGE)
}

/// A Chroma server's API, scoped to one tenant and database.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    tenant: String,
    database: String,
}

/// A collection as `GET …/collections` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Collection {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub dimension: Option<u32>,
    #[serde(default)]
    pub configuration_json: Value,
}

impl Collection {
    /// The HNSW space (`l2`, `cosine`, `ip`): the configuration's, else the legacy
    /// `hnsw:space` metadata, else Chroma's default `l2`.
    pub fn space(&self) -> String {
        self.configuration_json
            .pointer("/hnsw/space")
            .and_then(Value::as_str)
            .or_else(|| self.metadata.as_ref()?.get("hnsw:space")?.as_str())
            .unwrap_or("l2")
            .to_string()
    }
}

/// One page of `get`.
#[derive(Debug, Default, Deserialize)]
pub struct Records {
    pub ids: Vec<String>,
    #[serde(default)]
    pub embeddings: Option<Vec<Option<Vec<Option<f32>>>>>,
    #[serde(default)]
    pub documents: Option<Vec<Option<String>>>,
    #[serde(default)]
    pub metadatas: Option<Vec<Option<Value>>>,
}

impl Records {
    /// The page's ids and embeddings (a missing value as NaN, a missing vector as empty).
    pub fn vectors(self) -> (Vec<String>, Vec<Vec<f32>>) {
        let mut vectors: Vec<Vec<f32>> = self
            .embeddings
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.unwrap_or_default().into_iter().map(|x| x.unwrap_or(f32::NAN)).collect())
            .collect();
        vectors.resize(self.ids.len(), Vec::new());
        (self.ids, vectors)
    }
}

#[derive(Debug, Deserialize)]
struct QueryResult {
    ids: Vec<Vec<String>>,
}

impl Api {
    pub fn new(base: &str, tenant: &str, database: &str) -> Result<Api, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A page of embeddings or an exact scan by the server takes a while on a large
            // collection; the drill's step deadline bounds it.
            .timeout(Duration::from_secs(600))
            .no_proxy()
            .build()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            tenant: tenant.to_string(),
            database: database.to_string(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn collections_url(&self) -> String {
        format!("{}/api/v2/tenants/{}/databases/{}/collections", self.base, self.tenant, self.database)
    }

    /// Sends `req` and reads its answer as `T` (straight from the text: a page of embeddings
    /// is never held as a JSON tree).
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, String> {
        let resp = req.send().await.map_err(|e| format!("{what}: {}", without_url(&e)))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("{what}: {}", without_url(&e)))?;
        if !status.is_success() {
            let mut said = text.trim().to_string();
            said.truncate(300);
            return Err(format!("{what}: Chroma answered {status}: {said}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{what}: unexpected answer ({e})"))
    }

    /// Whether the server answers its heartbeat.
    pub async fn heartbeat(&self) -> bool {
        let req = self.http.get(format!("{}/api/v2/heartbeat", self.base)).timeout(Duration::from_secs(2));
        matches!(req.send().await, Ok(r) if r.status().is_success())
    }

    /// The API's version (`1.0.0`).
    pub async fn version(&self) -> Result<String, String> {
        self.send(self.http.get(format!("{}/api/v2/version", self.base)), "version").await
    }

    /// Every collection of the tenant's database, by name.
    pub async fn collections(&self) -> Result<Vec<Collection>, String> {
        let mut all = Vec::new();
        loop {
            let url = format!("{}?limit=100&offset={}", self.collections_url(), all.len());
            let page: Vec<Collection> =
                serde_json::from_value(self.send(self.http.get(url), "list collections").await?)
                    .map_err(|e| format!("list collections: unexpected answer ({e})"))?;
            let n = page.len();
            all.extend(page);
            if n < 100 {
                break;
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// One collection by name, or why not, naming the ones there are.
    pub async fn collection(&self, name: &str) -> Result<Collection, String> {
        let all = self.collections().await?;
        let names: Vec<String> = all.iter().map(|c| c.name.clone()).collect();
        all.into_iter().find(|c| c.name == name).ok_or_else(|| {
            format!(
                "no collection `{name}` in the database (it has: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )
        })
    }

    /// The collection's record count.
    pub async fn count(&self, c: &Collection) -> Result<u64, String> {
        let url = format!("{}/{}/count", self.collections_url(), c.id);
        self.send(self.http.get(url), &format!("count {}", c.name)).await
    }

    /// One page of records from `offset`, with `include` (`embeddings`, `documents`,
    /// `metadatas`), filtered by a `where` when given.
    pub async fn get(
        &self,
        c: &Collection,
        filter: Option<&Value>,
        include: &[&str],
        offset: usize,
        limit: usize,
    ) -> Result<Records, String> {
        let mut body = json!({"limit": limit, "offset": offset, "include": include});
        if let Some(f) = filter {
            body["where"] = f.clone();
        }
        let url = format!("{}/{}/get", self.collections_url(), c.id);
        self.send(self.http.post(url).json(&body), &format!("get from {}", c.name)).await
    }

    /// Every record of the collection (matching `filter`), `page` at a time, each page handed
    /// to `each`.
    pub async fn scan(
        &self,
        c: &Collection,
        filter: Option<&Value>,
        include: &[&str],
        page: usize,
        mut each: impl FnMut(Records) -> Result<(), String>,
    ) -> Result<u64, String> {
        let mut offset = 0usize;
        loop {
            let records = self.get(c, filter, include, offset, page).await?;
            let n = records.ids.len();
            each(records)?;
            offset += n;
            if n < page {
                return Ok(offset as u64);
            }
        }
    }

    /// The ids Chroma's own index returns for one query vector, nearest first.
    pub async fn query(&self, c: &Collection, vector: &[f32], k: u32) -> Result<Vec<String>, String> {
        let body = json!({"query_embeddings": [vector], "n_results": k, "include": ["distances"]});
        let url = format!("{}/{}/query", self.collections_url(), c.id);
        let r: QueryResult = self.send(self.http.post(url).json(&body), &format!("query {}", c.name)).await?;
        Ok(r.ids.into_iter().next().unwrap_or_default())
    }
}

/// A reqwest error in words, without the URL (the scratch's loopback address, noise) but with
/// its cause (connection refused, reset, timed out).
fn without_url(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_decode() {
        "unreadable answer"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        causes.push(s.to_string());
        src = s.source();
    }
    match causes.last() {
        Some(root) => format!("{what}: {root}"),
        None => what.to_string(),
    }
}
