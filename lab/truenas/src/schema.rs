//! The vendored method schemas (`schema/methods.json`, TrueNAS 25.10.5): what exists, what
//! is a job, who needs to log in, and the params every call is held to — by pydantic's
//! rules (`strict`) and by the `jsonschema` crate as the final word.

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::Validator;
use kiln_lab_core::LabError;
use serde_json::Value;

use crate::rpc::{EINVAL, FieldError, RpcError};
use crate::strict::{self, StrictError};

const METHODS_JSON: &str = include_str!("../schema/methods.json");
/// The account methods (`api_key.*`, `privilege.*`, `user.*`, `group.*`), extracted from the
/// same tag the same way (`schema/README.md`); held to exactly as `methods.json` is.
pub(crate) const METHODS_ACCOUNTS_JSON: &str = include_str!("../schema/methods-accounts.json");

/// One method of the schema file.
pub(crate) struct MethodSpec {
    pub job: bool,
    pub authentication_required: bool,
    /// `false`: any logged-in user may call it (`_no_authz_required`).
    pub authorization_required: bool,
    /// The roles of which a caller needs any one (`roles`, as declared).
    pub roles: Vec<String>,
    /// The positional arguments: each one's schema; its `title` is the argument's name,
    /// the first segment of every attribute path.
    params: Vec<Value>,
    /// How many leading arguments are required.
    required: usize,
    result: Value,
    param_validators: OnceLock<Result<Vec<Validator>, String>>,
    result_validator: OnceLock<Result<Validator, String>>,
}

/// Every method of the schema file.
pub(crate) struct Schema {
    methods: HashMap<String, MethodSpec>,
}

impl Schema {
    pub(crate) fn load() -> Result<Self, LabError> {
        let mut out = HashMap::new();
        for text in [METHODS_JSON, METHODS_ACCOUNTS_JSON] {
            load_file(text, &mut out)?;
        }
        Ok(Self { methods: out })
    }

    pub(crate) fn method(&self, name: &str) -> Option<&MethodSpec> {
        self.methods.get(name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(String::as_str)
    }
}

/// The methods of one schema file, into `out`.
fn load_file(text: &str, out: &mut HashMap<String, MethodSpec>) -> Result<(), LabError> {
    let mut doc: Value = serde_json::from_str(text).map_err(|e| LabError::Schema(e.to_string()))?;
    crate::order::annotate(&mut doc, text).map_err(LabError::Schema)?;
    let methods = doc
        .get("methods")
        .and_then(Value::as_object)
        .ok_or_else(|| LabError::Schema("no `methods` object".into()))?;
    for (name, spec) in methods {
        let params = spec
            .pointer("/params/prefixItems")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let required = spec
            .pointer("/params/minItems")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        out.insert(
            name.clone(),
            MethodSpec {
                job: spec.get("job").and_then(Value::as_bool).unwrap_or(false),
                authentication_required: spec
                    .get("authentication_required")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
                authorization_required: spec
                    .get("authorization_required")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
                roles: spec
                    .get("roles")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
                params,
                required,
                result: spec.get("result").cloned().unwrap_or(Value::Bool(true)),
                param_validators: OnceLock::new(),
                result_validator: OnceLock::new(),
            },
        );
    }
    Ok(())
}

fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::draft202012::new(schema).map_err(|e| e.to_string())
}

impl MethodSpec {
    /// The name of argument `index` (`data`, `iscsi_target_create`, `id`).
    pub(crate) fn param_name(&self, index: usize) -> &str {
        self.params
            .get(index)
            .and_then(|p| p.get("title"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Validates a call's params as the middleware's `accept_params` does, with the
    /// attribute of each error `<argument>.<field>[.<index>…]`.
    pub(crate) fn check_params(&self, params: &[Value]) -> Result<(), RpcError> {
        if params.len() > self.params.len() {
            return Err(RpcError::Validation(vec![FieldError::new(
                "",
                format!(
                    "Too many arguments (expected {}, found {})",
                    self.params.len(),
                    params.len()
                ),
            )]));
        }
        let mut errors = Vec::new();
        for (index, (schema, value)) in self.params.iter().zip(params).enumerate() {
            let mut found: Vec<StrictError> = Vec::new();
            strict::check(schema, value, &mut Vec::new(), &mut found);
            if found.is_empty() {
                found = self.schema_errors(index, value)?;
            }
            let name = self.param_name(index);
            errors.extend(found.into_iter().map(|e| {
                let attribute = std::iter::once(name.to_string())
                    .chain(e.loc)
                    .collect::<Vec<_>>()
                    .join(".");
                FieldError::new(attribute, e.message)
            }));
        }
        for index in params.len()..self.required {
            errors.push(FieldError::new(self.param_name(index), "Field required"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RpcError::Validation(errors))
        }
    }

    /// What the `jsonschema` crate finds that the pydantic-style walk did not.
    fn schema_errors(&self, index: usize, value: &Value) -> Result<Vec<StrictError>, RpcError> {
        let validators = self
            .param_validators
            .get_or_init(|| self.params.iter().map(compile).collect())
            .as_ref()
            .map_err(|e| RpcError::call(EINVAL, format!("schema: {e}")))?;
        let Some(validator) = validators.get(index) else {
            return Ok(Vec::new());
        };
        Ok(validator
            .iter_errors(value)
            .map(|e| StrictError {
                loc: e
                    .instance_path()
                    .iter()
                    .map(|segment| match segment {
                        jsonschema::paths::LocationSegment::Property(p) => p.to_string(),
                        jsonschema::paths::LocationSegment::Index(i) => i.to_string(),
                    })
                    .collect(),
                message: match e.kind() {
                    jsonschema::error::ValidationErrorKind::Pattern { pattern } => {
                        format!("String should match pattern '{pattern}'")
                    }
                    _ => e.to_string(),
                },
            })
            .collect())
    }

    /// Whether `result` is what the result schema describes. Extended-JSON dates
    /// (`{"$date": ms}`, what the middleware sends for datetimes) stand for the schema's
    /// `date-time` strings.
    pub(crate) fn check_result(&self, result: &Value) -> Result<(), String> {
        let validator = self
            .result_validator
            .get_or_init(|| compile(&self.result))
            .as_ref()
            .map_err(Clone::clone)?;
        let plain = without_ejson_dates(result);
        let errors: Vec<String> = validator
            .iter_errors(&plain)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

fn without_ejson_dates(value: &Value) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.get("$date").is_some_and(Value::is_number) => {
            Value::String("1970-01-01T00:00:00Z".into())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), without_ejson_dates(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_ejson_dates).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn extra(method: &str, params: Value) -> Vec<(String, String)> {
        let schema = Schema::load().unwrap();
        let spec = schema.method(method).unwrap();
        match spec.check_params(params.as_array().unwrap()) {
            Ok(()) => Vec::new(),
            Err(RpcError::Validation(errors)) => errors
                .into_iter()
                .map(|e| (e.attribute.unwrap_or_default(), e.message))
                .collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_schema_compiles() {
        let schema = Schema::load().unwrap();
        // 141 of methods.json and 29 of methods-accounts.json.
        assert_eq!(schema.names().count(), 141 + 29);
        for name in schema.names() {
            let spec = schema.method(name).unwrap();
            for p in &spec.params {
                compile(p).unwrap_or_else(|e| panic!("{name} params: {e}"));
            }
            compile(&spec.result).unwrap_or_else(|e| panic!("{name} result: {e}"));
        }
    }

    #[test]
    fn results_are_checked_against_the_result_schema() {
        let schema = Schema::load().unwrap();
        let spec = schema.method("iscsi.targetextent.create").unwrap();
        assert!(
            spec.check_result(&json!({"id": 1, "target": 1, "lunid": 0, "extent": 1}))
                .is_ok()
        );
        assert!(
            spec.check_result(&json!({"id": 1, "target": 1, "extent": 1}))
                .is_err()
        );
        assert!(
            spec.check_result(&json!({"id": 1, "target": "1", "lunid": 0, "extent": 1}))
                .is_err()
        );
        let jobs = schema.method("core.get_jobs").unwrap();
        assert!(
            jobs.check_result(&json!([{"id": 1, "time_started": {"$date": 5}}]))
                .is_ok()
        );
    }

    #[test]
    fn attribute_paths_name_the_argument_and_field() {
        assert_eq!(
            extra(
                "iscsi.targetextent.create",
                json!([{"target": "1", "extent": 2}])
            ),
            vec![(
                "iscsi_target_to_extent_create.target".into(),
                "Input should be a valid integer".into()
            )]
        );
        assert_eq!(
            extra(
                "iscsi.target.create",
                json!([{"name": "x", "groups": [{"portal": 1.0}]}])
            ),
            vec![(
                "iscsi_target_create.groups.0.portal".into(),
                "Input should be a valid integer".into()
            )]
        );
        assert_eq!(
            extra(
                "pool.dataset.create",
                json!([{"name": "tank/v", "type": "VOLUME"}])
            ),
            // A union of models: every model's errors under its name (as pydantic 2.9.2).
            vec![
                (
                    "data.PoolDatasetCreateFilesystem.type".into(),
                    "Input should be 'FILESYSTEM'".into()
                ),
                (
                    "data.PoolDatasetCreateVolume.volsize".into(),
                    "Field required".into()
                ),
            ]
        );
        assert_eq!(
            extra("pool.dataset.create", json!([])),
            vec![("data".into(), "Field required".into())]
        );
        assert_eq!(
            extra("core.ping", json!([1])),
            vec![("".into(), "Too many arguments (expected 0, found 1)".into())]
        );
        assert_eq!(
            extra(
                "pool.dataset.create",
                json!([{"name": "tank/a", "user_properties": [{"key": "nocolon", "value": "v"}]}])
            ),
            vec![
                (
                    "data.PoolDatasetCreateFilesystem.user_properties.0.key".into(),
                    "String should match pattern '.*:.*'".into()
                ),
                (
                    "data.PoolDatasetCreateVolume.user_properties.0.key".into(),
                    "String should match pattern '.*:.*'".into()
                ),
                (
                    "data.PoolDatasetCreateVolume.volsize".into(),
                    "Field required".into()
                ),
            ]
        );
        assert_eq!(
            extra(
                "auth.login_ex",
                json!([{"mechanism": "API_KEY_PLAIN", "username": "root"}])
            ),
            vec![(
                "login_data.API_KEY_PLAIN.api_key".into(),
                "Field required".into()
            )]
        );
    }
}
