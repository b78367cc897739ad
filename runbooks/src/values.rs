//! Scalar values that carry their own syntax (durations, cron, expressions, secrets).
//!
//! Each is parsed leniently during deserialization into a [`Parsed`] that keeps the raw
//! text, its position and the parse result, so that `Runbook::parse` can report every bad
//! value of a file at once instead of stopping at the first one.

use std::fmt;
use std::str::FromStr;

use marked_yaml::Spanned;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::issue::Pos;

/// A value parsed from a YAML scalar, with its position and the raw text.
///
/// A `Parsed<T>` inside a [`crate::Runbook`] returned by `Runbook::parse` always holds a
/// valid value: parsing rejects the whole file when any of them failed.
#[derive(Clone)]
pub struct Parsed<T> {
    raw: String,
    pos: Pos,
    value: Result<T, String>,
}

impl<T> Parsed<T> {
    /// The parsed value. Only reachable on a runbook that passed `Runbook::parse`.
    pub fn get(&self) -> &T {
        match &self.value {
            Ok(v) => v,
            // `Runbook::parse` refuses any file that holds an `Err` here.
            Err(e) => unreachable!("unvalidated value `{}`: {e}", self.raw),
        }
    }
    pub fn raw(&self) -> &str {
        &self.raw
    }
    pub fn pos(&self) -> Pos {
        self.pos
    }
}

impl<T: FromStr<Err = String>> Parsed<T> {
    /// Builds a value outside YAML (defaults, tests).
    pub fn new(raw: &str) -> Self {
        Parsed { raw: raw.to_string(), pos: Pos::default(), value: raw.parse() }
    }
}

impl<T> fmt::Debug for Parsed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.raw)
    }
}

impl<T> Serialize for Parsed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<String>::deserialize(d)?;
        let pos = s.span().start().map(Pos::from_marker).unwrap_or_default();
        let raw = s.as_str().to_string();
        let value = raw.parse::<T>();
        if let Err(e) = &value {
            crate::parse::report_bad_value(pos, e);
        }
        Ok(Parsed { raw, pos, value })
    }
}

impl<T: JsonSchema> JsonSchema for Parsed<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(g)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// A duration written as a number and a unit: `90s`, `20m`, `26h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec(pub std::time::Duration);

impl FromStr for DurationSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("cannot parse duration {s:?}: expected a whole number and a unit (s, m, h, d), e.g. `90s`, `20m`, `26h`, `7d`")
        })?;
        let secs = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86400,
            _ => {
                return Err(format!("cannot parse duration {s:?}: unknown unit {unit:?}, expected one of s, m, h, d"));
            }
        };
        if secs == 0 {
            return Err(format!("duration {s:?} must be greater than zero"));
        }
        Ok(DurationSpec(std::time::Duration::from_secs(secs)))
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+[smhd]$",
            "description": "A whole number and a unit: 90s, 20m, 26h, 7d."
        })
    }
}

/// A size in bytes: a whole number with an optional unit (`512`, `64KB`, `300MB`, `2GiB`).
/// `KB`/`MB`/`GB` are powers of 1000, `KiB`/`MiB`/`GiB` powers of 1024 (as Redis reports memory
/// in bytes, the unit only has to be unambiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let err = || {
            format!(
                "cannot parse size {s:?}: expected a whole number and an optional unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. `300MB`"
            )
        };
        let n: u64 = num.parse().map_err(|_| err())?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1000,
            "MB" => 1000 * 1000,
            "GB" => 1000 * 1000 * 1000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(err()),
        };
        n.checked_mul(scale).map(ByteSize).ok_or_else(|| format!("size {s:?} is too large"))
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+\\s*(B|KB|MB|GB|KiB|MiB|GiB)?$",
            "description": "A whole number of bytes with an optional unit: 512, 64KB, 300MB, 2GiB."
        })
    }
}

/// A share of something, written as a percentage: `5%`, `100%`, `0.5%` (restic's
/// `--read-data-subset` takes it as written).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("cannot parse {s:?} as a percentage: expected a number followed by `%`, e.g. `5%`");
        let n: f64 = s.trim().strip_suffix('%').ok_or_else(err)?.trim().parse().map_err(|_| err())?;
        if !(n > 0.0 && n <= 100.0) {
            return Err(format!("{s:?} is not between 0% (excluded) and 100%"));
        }
        Ok(Percent(n))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl JsonSchema for Percent {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Percent".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?%$",
            "description": "A percentage: 5%, 0.5%, 100%."
        })
    }
}

/// A cron schedule: 5 fields, 6 fields with seconds first, or a macro (`@daily`, `@hourly`, ...).
#[derive(Debug, Clone)]
pub struct Schedule(pub cron::Schedule);

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let trimmed = s.trim();
        let fields = trimmed.split_whitespace().count();
        // The cron crate wants seconds first; a classic 5-field line fires at second 0.
        let expr = if !trimmed.starts_with('@') && fields == 5 {
            format!("0 {trimmed}")
        } else if trimmed.starts_with('@') || fields == 6 {
            trimmed.to_string()
        } else {
            return Err(format!(
                "cannot parse schedule {s:?}: expected 5 fields (min hour day month weekday), 6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly; found {fields} fields"
            ));
        };
        cron::Schedule::from_str(&expr).map(Schedule).map_err(|e| format!("cannot parse schedule {s:?}: {e}"))
    }
}

impl JsonSchema for Schedule {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Schedule".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "5-field cron, 6-field with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly."
        })
    }
}

/// An IANA time zone name such as `Europe/Berlin`.
#[derive(Debug, Clone, Copy)]
pub struct Timezone(pub chrono_tz::Tz);

impl FromStr for Timezone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<chrono_tz::Tz>().map(Timezone).map_err(|_| {
            let hint = crate::issue::nearest(s, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                .map(|n| format!(", did you mean `{n}`?"))
                .unwrap_or_default();
            format!("unknown time zone {s:?} (expected an IANA name such as Europe/Berlin){hint}")
        })
    }
}

impl JsonSchema for Timezone {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timezone".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "IANA time zone name, e.g. Europe/Berlin."})
    }
}

/// The runbook name: `[a-z0-9-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

impl FromStr for Name {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && !s.starts_with('-')
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Name(s.to_string()))
        } else {
            Err(format!("invalid name {s:?}: use 1 to 63 characters of [a-z0-9-], not starting with `-`"))
        }
    }
}

impl JsonSchema for Name {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"})
    }
}

/// A comparison operator of an `expect` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// What an observed scalar is compared with: `== 0`, `>= 100`, `between 5 and 9`, `== ok`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Cmp(CmpOp, Operand),
    Between(f64, f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Number(f64),
    Text(String),
}

impl FromStr for Expect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let err = || {
            format!(
                "cannot parse {s:?}: expected one of ==, !=, <, <=, >, >= followed by a value, or `between A and B`"
            )
        };
        if let Some(rest) = t.strip_prefix("between ") {
            let (a, b) = rest.split_once(" and ").ok_or_else(err)?;
            let a: f64 = a.trim().parse().map_err(|_| err())?;
            let b: f64 = b.trim().parse().map_err(|_| err())?;
            if a > b {
                return Err(format!("cannot parse {s:?}: the lower bound {a} is above the upper bound {b}"));
            }
            return Ok(Expect::Between(a, b));
        }
        // Longest operators first so that `<=` is not read as `<` followed by `=`.
        let ops = [
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ];
        let (op, rest) = ops.iter().find_map(|(sym, op)| t.strip_prefix(sym).map(|r| (*op, r))).ok_or_else(err)?;
        let rest = rest.trim();
        if rest.is_empty() || rest.starts_with(['=', '<', '>', '!']) {
            return Err(err());
        }
        let operand = match rest.parse::<f64>() {
            Ok(n) => Operand::Number(n),
            Err(_) if matches!(op, CmpOp::Eq | CmpOp::Ne) => Operand::Text(rest.trim_matches(['"', '\'']).to_string()),
            Err(_) => {
                return Err(format!("cannot parse {s:?}: `{}` needs a number", op.symbol()));
            }
        };
        Ok(Expect::Cmp(op, operand))
    }
}

impl Expect {
    /// Compares an observed value (as text, since a query may return any scalar).
    pub fn matches(&self, observed: &str) -> bool {
        let num = observed.trim().parse::<f64>().ok();
        match (self, num) {
            (Expect::Between(a, b), Some(n)) => *a <= n && n <= *b,
            (Expect::Between(..), None) => false,
            (Expect::Cmp(op, Operand::Number(want)), Some(n)) => match op {
                CmpOp::Eq => n == *want,
                CmpOp::Ne => n != *want,
                CmpOp::Lt => n < *want,
                CmpOp::Le => n <= *want,
                CmpOp::Gt => n > *want,
                CmpOp::Ge => n >= *want,
            },
            (Expect::Cmp(CmpOp::Ne, Operand::Number(_)), None) => true,
            (Expect::Cmp(_, Operand::Number(_)), None) => false,
            (Expect::Cmp(op, Operand::Text(want)), _) => match op {
                CmpOp::Eq => observed == want,
                _ => observed != want,
            },
        }
    }
}

impl JsonSchema for Expect {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Expect".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^\\s*(==|!=|<=|>=|<|>|between\\s)",
            "description": "`== 0`, `!= 3`, `>= 100`, `< 5`, `between 5 and 9`."
        })
    }
}

/// A secret written as a reference: `${env:NAME}` or `${file:PATH}`. Never a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(String),
}

impl SecretRef {
    /// Finds a reference inside a string; `Ok(None)` when there is none.
    pub fn find(s: &str) -> Result<Option<SecretRef>, String> {
        match s.find("${") {
            None => Ok(None),
            Some(_) => s.parse().map(Some),
        }
    }
}

impl FromStr for SecretRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let inner = s.trim().strip_prefix("${").and_then(|r| r.strip_suffix('}')).ok_or_else(|| {
            "a secret must be a reference, `${env:NAME}` or `${file:PATH}`, never the value itself".to_string()
        })?;
        match inner.split_once(':') {
            Some(("env", name)) if !name.is_empty() => Ok(SecretRef::Env(name.to_string())),
            Some(("file", path)) if !path.is_empty() => Ok(SecretRef::File(path.to_string())),
            _ => Err(format!("cannot parse secret reference {s:?}: expected `${{env:NAME}}` or `${{file:PATH}}`")),
        }
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretRef".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^\\$\\{(env|file):.+\\}$"})
    }
}

/// A glob on object or file names (`*.tar.zst`).
#[derive(Debug, Clone)]
pub struct Glob(pub String);

impl FromStr for Glob {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // Validation mirrors the matcher the adapters use (globset syntax).
        let mut depth = 0i32;
        for c in s.chars() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                break;
            }
        }
        if depth != 0 || s.is_empty() {
            return Err(format!("cannot parse glob {s:?}: unbalanced brackets or braces"));
        }
        Ok(Glob(s.to_string()))
    }
}

impl JsonSchema for Glob {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Glob".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "A glob such as *.tar.zst"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("90s".parse::<DurationSpec>().unwrap().0.as_secs(), 90);
        assert_eq!("20m".parse::<DurationSpec>().unwrap().0.as_secs(), 1200);
        assert_eq!("26h".parse::<DurationSpec>().unwrap().0.as_secs(), 93600);
        assert_eq!("7d".parse::<DurationSpec>().unwrap().0.as_secs(), 604800);
        assert!("20 minutes".parse::<DurationSpec>().unwrap_err().contains("unknown unit"));
        assert!("m".parse::<DurationSpec>().is_err());
        assert!("0s".parse::<DurationSpec>().is_err());
    }

    #[test]
    fn schedules() {
        assert!("30 3 * * *".parse::<Schedule>().is_ok());
        assert!("*/5 * * * * *".parse::<Schedule>().is_ok());
        assert!("@daily".parse::<Schedule>().is_ok());
        assert!("61 3 * * *".parse::<Schedule>().is_err());
        assert!("3 * *".parse::<Schedule>().unwrap_err().contains("found 3 fields"));
    }

    #[test]
    fn expectations() {
        let e: Expect = ">= 100".parse().unwrap();
        assert!(e.matches("100") && e.matches("101") && !e.matches("99"));
        let e: Expect = "== 0".parse().unwrap();
        assert!(e.matches("0") && !e.matches("1") && !e.matches("zero"));
        let e: Expect = "between 5 and 9".parse().unwrap();
        assert!(e.matches("5") && e.matches("9") && !e.matches("10"));
        let e: Expect = "== ok".parse().unwrap();
        assert!(e.matches("ok") && !e.matches("not ok"));
        assert!(">== 0".parse::<Expect>().unwrap_err().contains("expected one of ==, !="));
        assert!("< abc".parse::<Expect>().is_err());
        assert!("between 9 and 5".parse::<Expect>().is_err());
    }

    #[test]
    fn secrets() {
        assert_eq!("${env:X}".parse::<SecretRef>().unwrap(), SecretRef::Env("X".into()));
        assert_eq!("${file:/k}".parse::<SecretRef>().unwrap(), SecretRef::File("/k".into()));
        assert!("hunter2".parse::<SecretRef>().unwrap_err().contains("never the value itself"));
        assert!("${vault:x}".parse::<SecretRef>().is_err());
    }

    #[test]
    fn timezones() {
        assert!("Europe/Berlin".parse::<Timezone>().is_ok());
        let e = "Europe/Berln".parse::<Timezone>().unwrap_err();
        assert!(e.contains("did you mean `Europe/Berlin`"), "{e}");
    }
}
