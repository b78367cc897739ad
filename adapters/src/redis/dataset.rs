//! What drillbook reads of a Redis dataset, the same way on the live source (`drillbook
//! manifest`) and on the restored scratch (the checks), so the two compare: key counts per
//! database and per pattern, the dataset digest and sampled keys. Only read commands.

use std::collections::{BTreeMap, BTreeSet};

use ::redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub type Conn = MultiplexedConnection;
pub type Result<T> = std::result::Result<T, ::redis::RedisError>;

/// How a digest was computed; a manifest says which, and the check computes the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Redis's own `DEBUG DIGEST` / `DEBUG DIGEST-VALUE`: independent of encodings, covers
    /// expiry times. Needs `enable-debug-command` on the source.
    DebugDigest,
    /// For sources that refuse `DEBUG`: SHA-256 over each key's database, name, type, value
    /// read back by type (`GET`, `LRANGE`, sorted `SMEMBERS`/`HGETALL`, `ZRANGE WITHSCORES`,
    /// `XRANGE`) and whether it has a TTL, XORed over the keys, so neither key order nor a
    /// set's or hash's internal order matters. (`DUMP` payloads would not do: a hashtable's
    /// order follows the server's random hash seed, so two servers dump one set differently.)
    ValuesSha256,
}

/// Key counts per database (`INFO keyspace`), databases without keys left out.
pub async fn keyspace(conn: &mut Conn) -> Result<BTreeMap<u32, u64>> {
    let info: String = ::redis::cmd("INFO").arg("keyspace").query_async(conn).await?;
    Ok(parse_keyspace(&info))
}

pub fn parse_keyspace(info: &str) -> BTreeMap<u32, u64> {
    info.lines()
        .filter_map(|l| {
            let (db, rest) = l.trim().split_once(':')?;
            let db: u32 = db.strip_prefix("db")?.parse().ok()?;
            let keys = rest.split(',').find_map(|kv| kv.strip_prefix("keys="))?.parse().ok()?;
            Some((db, keys))
        })
        .collect()
}

async fn select(conn: &mut Conn, db: u32) -> Result<()> {
    ::redis::cmd("SELECT").arg(db).query_async(conn).await
}

/// The distinct keys of `db` matching `pattern` (SCAN may return a key twice).
pub async fn scan(conn: &mut Conn, db: u32, pattern: &str) -> Result<BTreeSet<Vec<u8>>> {
    select(conn, db).await?;
    let mut keys = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) =
            ::redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).query_async(conn).await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// Up to `n` distinct keys of `db` that are text (a runbook or manifest can name them).
pub async fn first_keys(conn: &mut Conn, db: u32, n: usize) -> Result<Vec<String>> {
    select(conn, db).await?;
    let mut keys = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) =
            ::redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(100).query_async(conn).await?;
        keys.extend(batch.into_iter().filter_map(|k| String::from_utf8(k).ok()));
        if next == 0 || keys.len() >= n {
            return Ok(keys.into_iter().take(n).collect());
        }
        cursor = next;
    }
}

/// Keys of `db` matching `pattern`; `DBSIZE` when there is no pattern.
pub async fn count(conn: &mut Conn, db: u32, pattern: Option<&str>) -> Result<u64> {
    match pattern {
        Some(p) => Ok(scan(conn, db, p).await?.len() as u64),
        None => {
            select(conn, db).await?;
            ::redis::cmd("DBSIZE").query_async(conn).await
        }
    }
}

/// The digest of the whole dataset by `method`.
pub async fn digest(conn: &mut Conn, method: Method) -> Result<String> {
    match method {
        Method::DebugDigest => ::redis::cmd("DEBUG").arg("DIGEST").query_async(conn).await,
        Method::ValuesSha256 => {
            let mut acc = [0u8; 32];
            let mut n: u64 = 0;
            for db in keyspace(conn).await?.into_keys() {
                let keys: Vec<Vec<u8>> = scan(conn, db, "*").await?.into_iter().collect();
                for chunk in keys.chunks(500) {
                    // A key that expired between SCAN and reading it counts as absent.
                    for h in value_hashes(conn, db, chunk).await?.into_iter().flatten() {
                        for (a, b) in acc.iter_mut().zip(h) {
                            *a ^= b;
                        }
                        n += 1;
                    }
                }
            }
            Ok(format!("{n}:{}", hex::encode(acc)))
        }
    }
}

/// Per key: the [`Method::ValuesSha256`] hash, or `None` for a key that no longer exists.
/// The connection must have `db` selected.
async fn value_hashes(conn: &mut Conn, db: u32, keys: &[Vec<u8>]) -> Result<Vec<Option<[u8; 32]>>> {
    let mut pipe = ::redis::pipe();
    for k in keys {
        pipe.cmd("TYPE").arg(k.as_slice()).cmd("PTTL").arg(k.as_slice());
    }
    let meta: Vec<::redis::Value> = pipe.query_async(conn).await?;
    let mut kinds = Vec::with_capacity(keys.len());
    let mut pipe = ::redis::pipe();
    for (k, pair) in keys.iter().zip(meta.chunks(2)) {
        let kind: String = ::redis::from_redis_value_ref(&pair[0])?;
        let pttl: i64 = ::redis::from_redis_value_ref(&pair[1])?;
        match kind.as_str() {
            "string" => pipe.cmd("GET").arg(k.as_slice()),
            "list" => pipe.cmd("LRANGE").arg(k.as_slice()).arg(0).arg(-1),
            "set" => pipe.cmd("SMEMBERS").arg(k.as_slice()),
            "zset" => pipe.cmd("ZRANGE").arg(k.as_slice()).arg(0).arg(-1).arg("WITHSCORES"),
            "hash" => pipe.cmd("HGETALL").arg(k.as_slice()),
            "stream" => pipe.cmd("XRANGE").arg(k.as_slice()).arg("-").arg("+"),
            // `none` (gone since SCAN) or a module type: only its name is compared.
            _ => pipe.cmd("EXISTS").arg(k.as_slice()),
        };
        kinds.push((kind, pttl >= 0));
    }
    let values: Vec<::redis::Value> = pipe.query_async(conn).await?;
    let mut out = Vec::with_capacity(keys.len());
    for ((key, (kind, has_ttl)), value) in keys.iter().zip(kinds).zip(values) {
        if kind == "none" {
            out.push(None);
            continue;
        }
        let mut items = Vec::new();
        match &value {
            // A collection's own elements, so that a hash's pairs and a set's members sort.
            ::redis::Value::Array(elements) | ::redis::Value::Set(elements) => {
                elements.iter().for_each(|e| flatten(e, &mut items))
            }
            other => flatten(other, &mut items),
        }
        if matches!(kind.as_str(), "set") {
            items.sort();
        }
        if kind == "hash" {
            let mut pairs: Vec<Vec<u8>> = items.chunks(2).map(framed).collect();
            pairs.sort();
            items = pairs;
        }
        out.push(Some(key_hash(db, key, &kind, &items, has_ttl)));
    }
    Ok(out)
}

/// Every bulk string and number of a reply, in order (nested arrays flattened).
fn flatten(v: &::redis::Value, out: &mut Vec<Vec<u8>>) {
    use ::redis::Value;
    match v {
        Value::BulkString(b) => out.push(b.clone()),
        Value::SimpleString(s) => out.push(s.as_bytes().to_vec()),
        Value::Int(i) => out.push(i.to_string().into_bytes()),
        Value::Double(d) => out.push(d.to_string().into_bytes()),
        Value::Array(items) | Value::Set(items) => {
            out.push(format!("*{}", items.len()).into_bytes());
            for i in items {
                flatten(i, out);
            }
        }
        Value::Map(pairs) => {
            for (k, v) in pairs {
                flatten(k, out);
                flatten(v, out);
            }
        }
        Value::Nil => out.push(b"(nil)".to_vec()),
        other => out.push(format!("{other:?}").into_bytes()),
    }
}

/// Length-prefixed concatenation, so `["ab", "c"]` and `["a", "bc"]` differ.
fn framed<T: AsRef<[u8]>>(parts: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let part = part.as_ref();
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn key_hash(db: u32, key: &[u8], kind: &str, items: &[Vec<u8>], has_ttl: bool) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(db.to_be_bytes());
    h.update(framed(&[key, kind.as_bytes()]));
    h.update(framed(items));
    h.update([u8::from(has_ttl)]);
    h.finalize().into()
}

/// One key as a sample records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyFacts {
    /// `TYPE`: `none` when the key does not exist.
    #[serde(rename = "type")]
    pub kind: String,
    pub ttl: bool,
    /// By the manifest's method; `None` when the key does not exist.
    pub digest: Option<String>,
}

/// What `key` of `db` is now.
pub async fn key_facts(conn: &mut Conn, db: u32, key: &[u8], method: Method) -> Result<KeyFacts> {
    select(conn, db).await?;
    let kind: String = ::redis::cmd("TYPE").arg(key).query_async(conn).await?;
    if kind == "none" {
        return Ok(KeyFacts { kind, ttl: false, digest: None });
    }
    let pttl: i64 = ::redis::cmd("PTTL").arg(key).query_async(conn).await?;
    let digest = match method {
        Method::DebugDigest => {
            // One digest per key named.
            let d: Vec<String> = ::redis::cmd("DEBUG").arg("DIGEST-VALUE").arg(key).query_async(conn).await?;
            d.into_iter().next()
        }
        Method::ValuesSha256 => value_hashes(conn, db, &[key.to_vec()]).await?.pop().flatten().map(hex::encode),
    };
    Ok(KeyFacts { kind, ttl: pttl >= 0, digest })
}

/// `used_memory` of `INFO memory`.
pub async fn used_memory(conn: &mut Conn) -> Result<u64> {
    let info: String = ::redis::cmd("INFO").arg("memory").query_async(conn).await?;
    Ok(super::info_field(&info, "used_memory").and_then(|v| v.parse().ok()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keyspace_lines() {
        let info = "# Keyspace\r\ndb0:keys=1002,expires=1,avg_ttl=999490\r\ndb2:keys=1,expires=0,avg_ttl=0\r\n";
        let k = super::parse_keyspace(info);
        assert_eq!(k.into_iter().collect::<Vec<_>>(), [(0, 1002), (2, 1)]);
    }

    #[test]
    fn value_hashes_frame_their_parts() {
        let h = |key: &[u8], kind: &str, items: &[&[u8]], ttl: bool| {
            super::key_hash(0, key, kind, &items.iter().map(|i| i.to_vec()).collect::<Vec<_>>(), ttl)
        };
        assert_eq!(h(b"k", "list", &[b"ab", b"c"], false), h(b"k", "list", &[b"ab", b"c"], false));
        assert_ne!(h(b"k", "list", &[b"ab", b"c"], false), h(b"k", "list", &[b"a", b"bc"], false));
        assert_ne!(h(b"k", "list", &[b"a"], false), h(b"k", "set", &[b"a"], false));
        assert_ne!(h(b"k", "string", &[b"a"], false), h(b"k", "string", &[b"a"], true));
        assert_ne!(h(b"k", "string", &[b"a"], false), super::key_hash(1, b"k", "string", &[b"a".to_vec()], false));
    }
}
