//! `GET /v1/topics/{topic}/messages`: a fetch of one partition (`partition=`), or of
//! every partition when none is named, resumable with the cursor the answer carries.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ErrorKind};
use super::http::{Caller, State};
use super::record_json;

#[derive(Deserialize)]
pub(super) struct FetchQuery {
    partition: Option<u32>,
    #[serde(default)]
    from: String,
    #[serde(default)]
    max: u32,
    max_bytes: Option<usize>,
}

/// Where each partition's read starts: `from` is empty (offset 0), an offset (every
/// partition), or a cursor `<partition>:<offset>,…` (partitions it leaves out: 0).
fn parse_from(from: &str) -> Result<(u64, BTreeMap<u32, u64>), ApiError> {
    let bad = || {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("from: `{from}` is not an offset nor a cursor like 0:12,1:40"),
        )
    };
    if from.is_empty() {
        return Ok((0, BTreeMap::new()));
    }
    if let Ok(n) = from.parse::<u64>() {
        return Ok((n, BTreeMap::new()));
    }
    let mut at = BTreeMap::new();
    for item in from.split(',') {
        let (p, o) = item.split_once(':').ok_or_else(bad)?;
        at.insert(
            p.parse::<u32>().map_err(|_| bad())?,
            o.parse::<u64>().map_err(|_| bad())?,
        );
    }
    Ok((0, at))
}

pub(super) async fn fetch(
    st: web::Data<State>,
    c: Caller,
    topic: web::Path<String>,
    q: web::Query<FetchQuery>,
) -> Result<HttpResponse, ApiError> {
    let t = topic.into_inner();
    st.auth.need(c.0.may_subscribe(&t), "fetch", &t)?;
    let (default_from, at) = parse_from(&q.from)?;
    if let Some(p) = q.partition {
        let from = at.get(&p).copied().unwrap_or(default_from);
        let page = st
            .backend
            .fetch(t.clone(), p, from, q.max, q.max_bytes)
            .await?;
        let list: Vec<Value> = page.records.iter().map(|r| record_json(&t, p, r)).collect();
        let mut out = json!({"records": list, "next": page.next});
        if let Some(cap) = page.capped_to {
            out["capped_to"] = json!(cap);
        }
        return Ok(HttpResponse::Ok().json(out));
    }
    let pages = st
        .backend
        .fetch_every(t.clone(), at, default_from, q.max, q.max_bytes)
        .await?;
    let mut list = Vec::new();
    let mut next = serde_json::Map::new();
    let mut cursor = Vec::with_capacity(pages.len());
    let mut capped = None;
    for (p, page) in &pages {
        list.extend(page.records.iter().map(|r| record_json(&t, *p, r)));
        next.insert(p.to_string(), json!(page.next));
        cursor.push(format!("{p}:{}", page.next));
        capped = capped.or(page.capped_to);
    }
    // A one-partition topic answers as a fetch of partition 0 always did.
    let mut out = match pages.as_slice() {
        [(_, only)] => json!({"records": list, "next": only.next}),
        _ => json!({"records": list, "next": next, "cursor": cursor.join(",")}),
    };
    if let Some(cap) = capped {
        out["capped_to"] = json!(cap);
    }
    Ok(HttpResponse::Ok().json(out))
}

#[cfg(test)]
mod tests {
    use super::parse_from;

    #[test]
    fn from_is_an_offset_or_a_cursor() {
        assert_eq!(parse_from("").unwrap().0, 0);
        assert_eq!(parse_from("7").unwrap().0, 7);
        let (_, at) = parse_from("0:12,3:40").unwrap();
        assert_eq!(at.get(&0), Some(&12));
        assert_eq!(at.get(&3), Some(&40));
        for bad in ["x", "0:", ":1", "0:1,", "-1", "0:1:2"] {
            assert!(parse_from(bad).is_err(), "{bad}");
        }
    }
}
