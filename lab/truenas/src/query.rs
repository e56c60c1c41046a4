//! Query filters and options (`middlewared/utils/filter_list.py`, described in the docs'
//! `query_methods.rst`): `[["field", "op", value], ["OR", [[…], […]]]]` with the operators
//! `= != > >= < <= in nin rin rnin ^ !^ $ !$` (a `C` prefix compares case-insensitively;
//! `~`, the regex match, is not emulated), and the options `select`, `order_by`, `offset`,
//! `limit`, `count`, `get`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::rpc::RpcError;

/// Filters and options applied to a table's entries.
pub(crate) fn apply(
    items: Vec<Value>,
    filters: Option<&Value>,
    options: Option<&Value>,
) -> Result<Value, RpcError> {
    let empty = Vec::new();
    let filters = match filters {
        Some(Value::Array(f)) => f,
        _ => &empty,
    };
    let no_options = Map::new();
    let options = options.and_then(Value::as_object).unwrap_or(&no_options);
    let mut selected = Vec::new();
    for item in items {
        if matches_all(&item, filters)? {
            selected.push(item);
        }
    }
    if let Some(Value::Array(order)) = options.get("order_by") {
        // Later keys first, each sort stable: the first key decides last.
        for key in order.iter().rev().filter_map(Value::as_str) {
            let (field, reverse) = match key.strip_prefix('-') {
                Some(field) => (field, true),
                None => (key, false),
            };
            let field = field
                .trim_start_matches("nulls_first:")
                .trim_start_matches("nulls_last:");
            selected.sort_by(|a, b| {
                let ordering =
                    compare(lookup(a, field), lookup(b, field)).unwrap_or(Ordering::Equal);
                if reverse {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
    }
    if options.get("count").and_then(Value::as_bool) == Some(true) {
        return Ok(Value::from(selected.len()));
    }
    let offset = options.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let mut selected: Vec<Value> = selected.into_iter().skip(offset).collect();
    if let Some(limit) = options
        .get("limit")
        .and_then(Value::as_u64)
        .filter(|l| *l > 0)
    {
        selected.truncate(limit as usize);
    }
    if let Some(Value::Array(select)) = options
        .get("select")
        .filter(|s| s.as_array().is_some_and(|a| !a.is_empty()))
    {
        selected = selected.iter().map(|item| project(item, select)).collect();
    }
    if options.get("get").and_then(Value::as_bool) == Some(true) {
        return selected
            .into_iter()
            .next()
            .ok_or_else(|| RpcError::Exception("MatchNotFound()".into()));
    }
    Ok(Value::Array(selected))
}

/// A dotted field (`listen.0.ip` is not supported by TrueNAS either; `a.b` is).
fn lookup<'a>(item: &'a Value, field: &str) -> Option<&'a Value> {
    field.split('.').try_fold(item, |v, part| v.get(part))
}

fn matches_all(item: &Value, filters: &[Value]) -> Result<bool, RpcError> {
    for filter in filters {
        if !matches(item, filter)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn matches(item: &Value, filter: &Value) -> Result<bool, RpcError> {
    let invalid = || RpcError::field("filters", format!("Invalid filter {filter}"));
    let Some(parts) = filter.as_array() else {
        return Err(invalid());
    };
    if let [Value::String(or), Value::Array(alternatives)] = parts.as_slice()
        && or == "OR"
    {
        for alternative in alternatives {
            // Each alternative is one filter or a list of filters that must all hold.
            let holds = match alternative.as_array().and_then(|a| a.first()) {
                Some(Value::Array(_)) => {
                    matches_all(item, alternative.as_array().map_or(&[][..], Vec::as_slice))?
                }
                _ => matches(item, alternative)?,
            };
            if holds {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    let [Value::String(field), Value::String(op), expected] = parts.as_slice() else {
        return Err(invalid());
    };
    let actual = lookup(item, field);
    let (op, fold) = match op.strip_prefix('C') {
        Some(rest) => (rest, true),
        None => (op.as_str(), false),
    };
    let norm = |v: &Value| -> Value {
        match v {
            Value::String(s) if fold => Value::String(s.to_lowercase()),
            other => other.clone(),
        }
    };
    let actual = actual.map(norm).unwrap_or(Value::Null);
    let expected = norm(expected);
    let contains = |list: &Value, v: &Value| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|x| norm(x) == *v))
    };
    let text = |v: &Value| v.as_str().map(str::to_string);
    Ok(match op {
        "=" => actual == expected,
        "!=" => actual != expected,
        ">" => compare(Some(&actual), Some(&expected)) == Some(Ordering::Greater),
        ">=" => matches!(
            compare(Some(&actual), Some(&expected)),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        "<" => compare(Some(&actual), Some(&expected)) == Some(Ordering::Less),
        "<=" => matches!(
            compare(Some(&actual), Some(&expected)),
            Some(Ordering::Less | Ordering::Equal)
        ),
        "in" => contains(&expected, &actual),
        "nin" => !contains(&expected, &actual),
        "rin" => {
            contains(&actual, &expected)
                || matches!((&actual, &expected), (Value::String(a), Value::String(e)) if a.contains(e.as_str()))
        }
        "rnin" => {
            !(contains(&actual, &expected)
                || matches!((&actual, &expected), (Value::String(a), Value::String(e)) if a.contains(e.as_str())))
        }
        "^" => matches!((text(&actual), text(&expected)), (Some(a), Some(e)) if a.starts_with(&e)),
        "!^" => {
            !matches!((text(&actual), text(&expected)), (Some(a), Some(e)) if a.starts_with(&e))
        }
        "$" => matches!((text(&actual), text(&expected)), (Some(a), Some(e)) if a.ends_with(&e)),
        "!$" => !matches!((text(&actual), text(&expected)), (Some(a), Some(e)) if a.ends_with(&e)),
        _ => return Err(RpcError::field("filters", format!("Invalid operator {op}"))),
    })
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Option<Ordering> {
    match (a?, b?) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) => Some(Ordering::Less),
        (_, Value::Null) => Some(Ordering::Greater),
        _ => None,
    }
}

fn insert_path(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry((*first).to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// `select`: named fields only; `["field", "alias"]` renames.
fn project(item: &Value, select: &[Value]) -> Value {
    let mut out = Map::new();
    for entry in select {
        let (field, name) = match entry {
            Value::String(field) => (field.as_str(), field.as_str()),
            Value::Array(pair) => match (
                pair.first().and_then(Value::as_str),
                pair.get(1).and_then(Value::as_str),
            ) {
                (Some(field), Some(alias)) => (field, alias),
                _ => continue,
            },
            _ => continue,
        };
        if let Some(value) = lookup(item, field) {
            // `a.b` keeps the nesting, as TrueNAS does.
            insert_path(
                &mut out,
                &name.split('.').collect::<Vec<_>>(),
                value.clone(),
            );
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> Vec<Value> {
        vec![
            json!({"id": 1, "name": "tank/k8s", "comment": "kiln:a", "tags": ["x"]}),
            json!({"id": 2, "name": "tank/k8s/iscsi", "comment": "kiln:b", "tags": []}),
            json!({"id": 3, "name": "tank/other", "comment": "", "tags": ["y"]}),
        ]
    }

    fn ids(v: Value) -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    }

    #[test]
    fn operators() {
        let q = |f: Value| ids(apply(items(), Some(&f), None).unwrap());
        assert_eq!(q(json!([["id", "=", 2]])), vec![2]);
        assert_eq!(q(json!([["id", "!=", 2]])), vec![1, 3]);
        assert_eq!(
            q(json!([["name", "in", ["tank/k8s", "tank/other"]]])),
            vec![1, 3]
        );
        assert_eq!(q(json!([["name", "nin", ["tank/k8s"]]])), vec![2, 3]);
        assert_eq!(q(json!([["name", "^", "tank/k8s/"]])), vec![2]);
        assert_eq!(q(json!([["name", "$", "other"]])), vec![3]);
        assert_eq!(q(json!([["comment", "C^", "KILN:"]])), vec![1, 2]);
        assert_eq!(q(json!([["tags", "rin", "y"]])), vec![3]);
        assert_eq!(q(json!([["id", ">", 1], ["id", "<=", 3]])), vec![2, 3]);
        assert_eq!(
            q(json!([["OR", [["id", "=", 1], ["id", "=", 3]]]])),
            vec![1, 3]
        );
        assert!(apply(items(), Some(&json!([["id", "~", 1]])), None).is_err());
        assert!(apply(items(), Some(&json!([["id"]])), None).is_err());
    }

    #[test]
    fn options() {
        let all = json!([]);
        assert_eq!(
            apply(items(), Some(&all), Some(&json!({"count": true}))).unwrap(),
            json!(3)
        );
        assert_eq!(
            ids(apply(
                items(),
                Some(&all),
                Some(&json!({"order_by": ["-id"], "limit": 2}))
            )
            .unwrap()),
            vec![3, 2]
        );
        assert_eq!(
            ids(apply(items(), Some(&all), Some(&json!({"offset": 1}))).unwrap()),
            vec![2, 3]
        );
        assert_eq!(
            apply(
                items(),
                Some(&json!([["id", "=", 2]])),
                Some(&json!({"get": true, "select": ["name"]}))
            )
            .unwrap(),
            json!({"name": "tank/k8s/iscsi"})
        );
        let missing = apply(
            items(),
            Some(&json!([["id", "=", 9]])),
            Some(&json!({"get": true})),
        );
        assert_eq!(missing, Err(RpcError::Exception("MatchNotFound()".into())));
    }
}
