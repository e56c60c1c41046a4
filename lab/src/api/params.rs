//! Request parameters the way pve-http-server reads them: the query string, plus the body
//! of POST/PUT as `application/x-www-form-urlencoded`, JSON, or multipart (upload).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{Request, header};
use md5::Md5;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::reply::ApiError;

/// Form and JSON bodies beyond this are refused (PVE's own limit is 64 KiB for non-upload
/// requests; a little more room costs nothing here).
const MAX_FORM_BODY: usize = 1024 * 1024;

/// A file received in a multipart upload. The lab keeps its size and digests, not its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub(crate) size: u64,
    /// Lower-case hex digest per PVE `checksum-algorithm` name.
    pub(crate) digests: BTreeMap<&'static str, String>,
}

/// All parameters of one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestParams {
    pub(crate) values: BTreeMap<String, String>,
    pub(crate) upload: Option<Upload>,
}

/// Reads query and body parameters. Later keys win over earlier ones, as in PVE.
pub(crate) async fn extract(req: Request<Body>) -> Result<RequestParams, ApiError> {
    let mut params = RequestParams::default();
    if let Some(query) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            params.values.insert(k.into_owned(), v.into_owned());
        }
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        read_multipart(req, &mut params).await?;
        return Ok(params);
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BODY)
        .await
        .map_err(|e| ApiError::Fail {
            status: 400,
            message: format!("unable to read request body: {e}"),
        })?;
    if body.is_empty() {
        return Ok(params);
    }
    if content_type.starts_with("application/json") {
        let json: Value = serde_json::from_slice(&body).map_err(|e| ApiError::Fail {
            status: 400,
            message: format!("unable to parse JSON body: {e}"),
        })?;
        let Value::Object(map) = json else {
            return Err(ApiError::Fail {
                status: 400,
                message: "JSON body is not an object".into(),
            });
        };
        for (k, v) in map {
            let text = match v {
                Value::String(s) => s,
                Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
                Value::Null => continue,
                other => other.to_string(),
            };
            params.values.insert(k, text);
        }
    } else {
        for (k, v) in form_urlencoded::parse(&body) {
            params.values.insert(k.into_owned(), v.into_owned());
        }
    }
    Ok(params)
}

async fn read_multipart(req: Request<Body>, params: &mut RequestParams) -> Result<(), ApiError> {
    let bad = |e: String| ApiError::Fail {
        status: 400,
        message: format!("unable to parse multipart body: {e}"),
    };
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| bad(e.body_text()))?;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if let Some(file_name) = field.file_name().map(str::to_string) {
            // As in PVE, the file part's own file name is the `filename` parameter.
            let mut hashers = Hashers::default();
            let mut size = 0u64;
            while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.body_text()))? {
                size += chunk.len() as u64;
                hashers.update(&chunk);
            }
            params.values.insert(name, file_name);
            params.upload = Some(Upload {
                size,
                digests: hashers.finish(),
            });
        } else {
            let text = field.text().await.map_err(|e| bad(e.body_text()))?;
            params.values.insert(name, text);
        }
    }
    Ok(())
}

#[derive(Default)]
struct Hashers {
    md5: Md5,
    sha1: Sha1,
    sha224: Sha224,
    sha256: Sha256,
    sha384: Sha384,
    sha512: Sha512,
}

impl Hashers {
    fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.sha1.update(data);
        self.sha224.update(data);
        self.sha256.update(data);
        self.sha384.update(data);
        self.sha512.update(data);
    }

    fn finish(self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("md5", hex(&self.md5.finalize())),
            ("sha1", hex(&self.sha1.finalize())),
            ("sha224", hex(&self.sha224.finalize())),
            ("sha256", hex(&self.sha256.finalize())),
            ("sha384", hex(&self.sha384.finalize())),
            ("sha512", hex(&self.sha512.finalize())),
        ])
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
