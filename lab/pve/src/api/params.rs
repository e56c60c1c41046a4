//! Request parameters the way pve-http-server reads them: the query string, plus the body
//! of POST/PUT as `application/x-www-form-urlencoded`, JSON, or multipart (upload).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// A file received in a multipart upload: its size and digests, and its bytes in a spool
/// file when the lab keeps files (qemu backend), like PVE's `/var/tmp/pveupload-*`.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub(crate) size: u64,
    /// Lower-case hex digest per PVE `checksum-algorithm` name.
    pub(crate) digests: BTreeMap<&'static str, String>,
    pub(crate) spooled: Option<Arc<SpooledFile>>,
}

/// An upload's bytes on disk; removed when the last reference goes unless the upload task
/// moved it into the storage first.
#[derive(Debug)]
pub(crate) struct SpooledFile {
    pub(crate) path: PathBuf,
}

impl Drop for SpooledFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// All parameters of one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestParams {
    pub(crate) values: BTreeMap<String, String>,
    pub(crate) upload: Option<Upload>,
}

/// Reads query and body parameters. Later keys win over earlier ones, as in PVE. Uploaded
/// files are written under `spool` when given.
pub(crate) async fn extract(
    req: Request<Body>,
    spool: Option<&Path>,
) -> Result<RequestParams, ApiError> {
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
        read_multipart(req, &mut params, spool).await?;
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

async fn read_multipart(
    req: Request<Body>,
    params: &mut RequestParams,
    spool: Option<&Path>,
) -> Result<(), ApiError> {
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
            let mut sink = match spool {
                Some(dir) => Some(Spool::create(dir).await?),
                None => None,
            };
            while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.body_text()))? {
                size += chunk.len() as u64;
                hashers.update(&chunk);
                if let Some(sink) = sink.as_mut() {
                    sink.write(&chunk).await?;
                }
            }
            let spooled = match sink {
                Some(sink) => Some(sink.finish().await?),
                None => None,
            };
            params.values.insert(name, file_name);
            params.upload = Some(Upload {
                size,
                digests: hashers.finish(),
                spooled,
            });
        } else {
            let text = field.text().await.map_err(|e| bad(e.body_text()))?;
            params.values.insert(name, text);
        }
    }
    Ok(())
}

/// An upload being written to its spool file.
struct Spool {
    file: tokio::fs::File,
    spooled: Arc<SpooledFile>,
}

impl Spool {
    async fn create(dir: &Path) -> Result<Self, ApiError> {
        let path = dir.join(format!("pveupload-{}", crate::api::auth::random_uuid()));
        let spooled = Arc::new(SpooledFile { path });
        let file = tokio::fs::File::create(&spooled.path)
            .await
            .map_err(|e| spool_error(&spooled.path, &e))?;
        Ok(Self { file, spooled })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        use tokio::io::AsyncWriteExt;
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| spool_error(&self.spooled.path, &e))
    }

    async fn finish(self) -> Result<Arc<SpooledFile>, ApiError> {
        self.file
            .sync_all()
            .await
            .map_err(|e| spool_error(&self.spooled.path, &e))?;
        Ok(self.spooled)
    }
}

fn spool_error(path: &Path, error: &std::io::Error) -> ApiError {
    ApiError::fail(format!(
        "unable to write upload to '{}': {error}",
        path.display()
    ))
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
