//! List queries of Cinder's collections: filters (exact and, from 3.34,
//! `key~` like-filters), `sort`/`sort_key`/`sort_dir`, `limit`/`marker`/
//! `offset`, `with_count` (3.45), and the `next` link.

use super::fault::{CinderResult, Fault};
use serde_json::{json, Value};
use std::cmp::Ordering;

/// Largest page (Cinder's osapi_max_limit).
pub const MAX_LIMIT: usize = 1000;

/// Filters backups accept (resource_filters.json) and the keys they match.
pub const BACKUP_FILTERS: &[&str] = &["name", "status", "volume_id"];
/// Filters volumes accept.
pub const VOLUME_FILTERS: &[&str] = &["name", "status"];

/// Parameters that are not filters.
const CONTROL: &[&str] = &[
    "limit",
    "marker",
    "offset",
    "sort",
    "sort_key",
    "sort_dir",
    "with_count",
    "all_tenants",
];

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pairs: Vec<(String, String)>,
    filters: Vec<(String, String, bool)>,
    sort: Vec<(String, bool)>,
    limit: usize,
    marker: Option<String>,
    offset: usize,
    pub with_count: bool,
}

/// One page of a list and the facts for its links.
pub struct Page {
    pub items: Vec<Value>,
    pub total: usize,
    pub more: bool,
}

fn truthy(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | "t" | "y"
    )
}

impl ListQuery {
    pub fn parse(query: &str, version: u32, allowed: &[&str]) -> CinderResult<Self> {
        let pairs: Vec<(String, String)> = url_pairs(query);
        let mut q = ListQuery {
            limit: MAX_LIMIT,
            ..Default::default()
        };
        let mut sort_key = None;
        let mut sort_dir = None;
        for (k, v) in &pairs {
            match k.as_str() {
                "limit" => q.limit = parse_count("limit", v)?.min(MAX_LIMIT),
                "offset" => q.offset = parse_count("offset", v)?,
                "marker" => q.marker = Some(v.clone()),
                "with_count" => q.with_count = version >= 45 && truthy(v),
                "sort" => q.sort = parse_sort(v)?,
                "sort_key" => sort_key = Some(v.clone()),
                "sort_dir" => sort_dir = Some(v.clone()),
                "all_tenants" => {}
                key => q.add_filter(key, v, version, allowed)?,
            }
        }
        if sort_key.is_some() || sort_dir.is_some() {
            if !q.sort.is_empty() {
                return Err(Fault::bad_request(
                    "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.",
                ));
            }
            let spec = format!(
                "{}:{}",
                sort_key.unwrap_or_else(|| "created_at".into()),
                sort_dir.unwrap_or_else(|| "desc".into())
            );
            q.sort = parse_sort(&spec)?;
        }
        if q.sort.is_empty() {
            q.sort = vec![("created_at".into(), false)];
        }
        q.pairs = pairs;
        Ok(q)
    }

    fn add_filter(
        &mut self,
        key: &str,
        value: &str,
        version: u32,
        allowed: &[&str],
    ) -> CinderResult<()> {
        let (name, like) = match key.strip_suffix('~') {
            Some(n) if version >= 34 => (n, true),
            _ => (key, false),
        };
        let name = if name == "display_name" { "name" } else { name };
        if allowed.contains(&name) {
            self.filters
                .push((name.to_string(), value.to_string(), like));
        } else if version >= 31 && !CONTROL.contains(&key) {
            return Err(Fault::bad_request(format!(
                "Invalid filters {key} are found in query options."
            )));
        }
        Ok(())
    }

    /// Filters, sorts and pages `items` (detail views).
    pub fn apply(&self, mut items: Vec<Value>) -> CinderResult<Page> {
        items.retain(|item| {
            self.filters
                .iter()
                .all(|(k, v, like)| matches(item, k, v, *like))
        });
        items.sort_by(|a, b| self.compare(a, b));
        let total = items.len();
        let start = match &self.marker {
            None => self.offset,
            Some(m) => match items.iter().position(|i| i["id"] == *m) {
                Some(p) => p + 1,
                None => return Err(Fault::bad_request(format!("marker [{m}] not found"))),
            },
        };
        let rest: Vec<Value> = items.into_iter().skip(start).collect();
        let more = rest.len() > self.limit;
        Ok(Page {
            items: rest.into_iter().take(self.limit).collect(),
            total,
            more,
        })
    }

    fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for (key, ascending) in &self.sort {
            let order = compare_values(&a[key.as_str()], &b[key.as_str()]);
            let order = if *ascending { order } else { order.reverse() };
            if order != Ordering::Equal {
                return order;
            }
        }
        compare_values(&a["id"], &b["id"])
    }

    /// The query with `marker` set to `last`, for the next link.
    fn next_query(&self, last: &str) -> String {
        let mut parts: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "marker")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        parts.push(format!("marker={}", encode(last)));
        parts.join("&")
    }
}

impl Page {
    /// Adds `<name>_links` (when more items follow) and `count` to a list body.
    pub fn decorate(&self, body: &mut Value, name: &str, url: &str, q: &ListQuery) {
        if self.more {
            if let Some(last) = self.items.last().and_then(|i| i["id"].as_str()) {
                let href = format!("{url}?{}", q.next_query(last));
                body[format!("{name}_links")] = json!([{"rel": "next", "href": href}]);
            }
        }
        if q.with_count {
            body["count"] = json!(self.total);
        }
    }
}

fn matches(item: &Value, key: &str, wanted: &str, like: bool) -> bool {
    let have = match &item[key] {
        Value::String(s) => s.clone(),
        Value::Null => return false,
        other => other.to_string(),
    };
    match like {
        true => have.to_lowercase().contains(&wanted.to_lowercase()),
        false => have == wanted,
    }
}

fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn parse_count(what: &str, v: &str) -> CinderResult<usize> {
    v.parse::<usize>().map_err(|_| {
        Fault::bad_request(format!(
            "Invalid input received: {what} must be a non-negative integer, not {v:?}"
        ))
    })
}

/// `key[:asc|desc][,key2...]`; `display_name` is `name`.
fn parse_sort(spec: &str) -> CinderResult<Vec<(String, bool)>> {
    let known = [
        "id",
        "status",
        "size",
        "name",
        "created_at",
        "updated_at",
        "data_timestamp",
        "volume_id",
        "availability_zone",
    ];
    let mut out = Vec::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (key, dir) = part.split_once(':').unwrap_or((part, "desc"));
        let key = if key == "display_name" { "name" } else { key };
        if !known.contains(&key) {
            return Err(Fault::bad_request(format!(
                "Invalid input received: sort key {key} is not supported"
            )));
        }
        let ascending = match dir {
            "asc" => true,
            "desc" => false,
            _ => {
                return Err(Fault::bad_request(format!(
                    "Invalid input received: sort direction {dir} must be asc or desc"
                )))
            }
        };
        out.push((key.to_string(), ascending));
    }
    Ok(out)
}

/// Decodes `application/x-www-form-urlencoded` pairs.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Value> {
        (0..5)
            .map(
                |i| json!({"id": format!("id{i}"), "name": format!("n{}", i % 2), "created_at": i}),
            )
            .collect()
    }

    #[test]
    fn filters_sort_and_pages() {
        let q = ListQuery::parse(
            "name=n1&sort=display_name%3Aasc&limit=1&with_count=True",
            71,
            BACKUP_FILTERS,
        )
        .unwrap();
        let page = q.apply(items()).unwrap();
        assert_eq!((page.items.len(), page.total, page.more), (1, 2, true));
        let mut body = json!({"backups": page.items});
        page.decorate(&mut body, "backups", "http://h/v3/p/backups/detail", &q);
        let href = body["backups_links"][0]["href"].as_str().unwrap();
        assert!(href.ends_with("marker=id1"), "{href}");
        assert_eq!(body["count"], 2);
        let next = ListQuery::parse(href.split_once('?').unwrap().1, 71, BACKUP_FILTERS).unwrap();
        let page = next.apply(items()).unwrap();
        assert_eq!(page.items[0]["id"], "id3");
        assert!(!page.more);
    }

    #[test]
    fn default_order_is_newest_first_and_unknown_filters_fail_from_3_31() {
        let q = ListQuery::parse("all_tenants=False", 64, BACKUP_FILTERS).unwrap();
        assert_eq!(q.apply(items()).unwrap().items[0]["id"], "id4");
        assert!(ListQuery::parse("colour=red", 31, BACKUP_FILTERS).is_err());
        assert!(ListQuery::parse("colour=red", 30, BACKUP_FILTERS).is_ok());
        assert!(ListQuery::parse("sort=name&sort_key=id", 71, BACKUP_FILTERS).is_err());
        assert!(ListQuery::parse("limit=-1", 71, BACKUP_FILTERS).is_err());
    }
}
