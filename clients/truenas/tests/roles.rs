//! democratic-csi's least-privilege role set, recomputed from the data: the
//! calls its `freenas-api-*` drivers make (tests/data, see its README) and
//! the roles the vendored 25.10.5 schema declares for each method.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

fn read_json(path: &str) -> Value {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The method names in one "jsonrpc" cell, e.g.
/// `zfs.snapshot.* | pool.snapshot.{create,get_instance}` or
/// `iscsi.target.get_instance + iscsi.target.delete`.
fn method_names(cell: &str) -> Vec<String> {
    let mut names = Vec::new();
    for word in cell.split_whitespace() {
        let expanded: Vec<String> = match (word.find('{'), word.strip_suffix('}')) {
            (Some(open), Some(inner)) => inner[open + 1..]
                .split(',')
                .map(|item| format!("{}{item}", &word[..open]))
                .collect(),
            _ => vec![word.to_owned()],
        };
        for name in expanded {
            let is_method = name.contains('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.' || c == '*');
            if is_method {
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn democratic_csi_role_set_matches_the_vendored_schema() {
    let calls = read_json("tests/data/democratic-csi-calls.json");
    let schema = read_json("../../lab/truenas/schema/methods.json");
    let methods = schema["methods"].as_object().expect("methods");

    let mut with_schema = BTreeSet::new();
    let mut without_schema = BTreeSet::new();
    for call in calls["freenas-api-*"]
        .as_array()
        .expect("freenas-api-* calls")
    {
        for name in method_names(call["jsonrpc"].as_str().expect("jsonrpc cell")) {
            if methods.contains_key(&name) {
                with_schema.insert(name);
            } else {
                without_schema.insert(name);
            }
        }
    }
    let listed: BTreeSet<String> = kiln_truenas::DEMOCRATIC_CSI_METHODS
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    assert_eq!(with_schema, listed);
    let listed_without: BTreeSet<String> = kiln_truenas::DEMOCRATIC_CSI_METHODS_WITHOUT_SCHEMA
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    assert_eq!(without_schema, listed_without);

    let method_roles: BTreeMap<String, Vec<String>> = with_schema
        .iter()
        .map(|name| {
            let roles = methods[name]["roles"]
                .as_array()
                .expect("roles")
                .iter()
                .map(|r| r.as_str().expect("role").to_owned())
                .collect();
            (name.clone(), roles)
        })
        .collect();
    let least = kiln_truenas::least_roles(&method_roles);
    let constant: BTreeSet<String> = kiln_truenas::DEMOCRATIC_CSI_ROLES
        .iter()
        .map(|r| (*r).to_owned())
        .collect();
    assert_eq!(least, constant);
    // Every method is callable with the set (an empty list: any login).
    for (method, roles) in &method_roles {
        assert!(
            roles.is_empty() || roles.iter().any(|r| least.contains(r)),
            "{method} needs one of {roles:?}"
        );
    }
}

#[test]
fn method_cells_expand() {
    assert_eq!(
        method_names("zfs.snapshot.* | pool.snapshot.{create,get_instance}"),
        [
            "zfs.snapshot.*",
            "pool.snapshot.create",
            "pool.snapshot.get_instance"
        ]
    );
    assert_eq!(
        method_names("core.get_jobs [[['id','=',n]]]"),
        ["core.get_jobs"]
    );
}

/// Each method's declared roles, from the vendored schema.
fn roles_of(
    methods: &serde_json::Map<String, Value>,
    names: &[&str],
) -> BTreeMap<String, Vec<String>> {
    names
        .iter()
        .map(|name| {
            let roles = methods
                .get(*name)
                .unwrap_or_else(|| panic!("{name} is not in the schema"))["roles"]
                .as_array()
                .expect("roles")
                .iter()
                .map(|r| r.as_str().expect("role").to_owned())
                .collect();
            ((*name).to_owned(), roles)
        })
        .collect()
}

#[test]
fn kilns_own_role_set_matches_the_vendored_schema() {
    let schema = read_json("../../lab/truenas/schema/methods.json");
    let methods = schema["methods"].as_object().expect("methods");
    let least = kiln_truenas::least_roles(&roles_of(methods, kiln_truenas::KILN_METHODS));
    let constant: BTreeSet<String> = kiln_truenas::KILN_ROLES
        .iter()
        .map(|r| (*r).to_owned())
        .collect();
    assert_eq!(least, constant);
}

#[test]
fn the_csi_account_role_set_matches_the_accounts_schema() {
    let schema = read_json("../../lab/truenas/schema/methods-accounts.json");
    let methods = schema["methods"].as_object().expect("methods");
    let method_roles = roles_of(methods, kiln_truenas::KILN_CSI_ACCOUNT_METHODS);
    let least = kiln_truenas::least_roles(&method_roles);
    let constant: BTreeSet<String> = kiln_truenas::KILN_CSI_ACCOUNT_ROLES
        .iter()
        .map(|r| (*r).to_owned())
        .collect();
    // The schema alone would also accept READONLY_ADMIN for api_key.*; the
    // plugin's api_key_privilege_check does not, for another user's key.
    assert!(least.is_subset(&constant), "{least:?}");
    for (method, roles) in &method_roles {
        assert!(
            roles.iter().any(|r| constant.contains(r)),
            "{method} needs one of {roles:?}"
        );
    }
    // role.py: PRIVILEGE_WRITE does not include PRIVILEGE_READ, so both.
    let roles = &schema["roles"];
    assert_eq!(
        roles["PRIVILEGE_WRITE"]["includes"],
        serde_json::json!(["PRIVILEGE_WRITE"])
    );
    assert_eq!(
        roles["API_KEY_WRITE"]["includes"],
        serde_json::json!(["API_KEY_READ"])
    );
}
