//! Storage: list, content, upload (multipart), download-url, volume delete.

use std::path::PathBuf;

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use serde_json::Value;

use crate::client::ProxmoxClient;
use crate::de;
use crate::error::{Error, Result, Target};
use crate::params::Params;
use crate::task::TaskHandle;
use crate::wire::{Body, endpoint, seg};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StorageInfo {
    pub storage: String,
    #[serde(rename = "type", default, deserialize_with = "de::opt_string")]
    pub kind: Option<String>,
    /// Comma list: `images,iso,snippets,import,…`
    #[serde(default, deserialize_with = "de::opt_string")]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "de::bool01")]
    pub shared: bool,
    #[serde(default, deserialize_with = "de::bool01")]
    pub active: bool,
    #[serde(default, deserialize_with = "de::bool01")]
    pub enabled: bool,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub avail: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used: Option<u64>,
}

impl StorageInfo {
    pub fn supports(&self, content: &str) -> bool {
        self.content
            .as_deref()
            .is_some_and(|c| c.split(',').any(|x| x.trim() == content))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StorageContent {
    pub volid: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub format: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub size: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub ctime: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub vmid: Option<u32>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub parent: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub notes: Option<String>,
}

/// What an upload or download is (`content` enum of those endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportContent {
    Iso,
    Vztmpl,
    /// Disk images for `import-from` (`.qcow2`, `.raw`, `.vmdk`, `.ova`; PVE ≥ 8.3).
    Import,
}

impl ImportContent {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportContent::Iso => "iso",
            ImportContent::Vztmpl => "vztmpl",
            ImportContent::Import => "import",
        }
    }
}

/// A checksum PVE verifies after the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// `md5`, `sha1`, `sha224`, `sha256`, `sha384` or `sha512`.
    pub algorithm: String,
    pub value: String,
}

impl Checksum {
    pub fn sha256(hex: impl Into<String>) -> Self {
        Self {
            algorithm: "sha256".into(),
            value: hex.into(),
        }
    }
}

/// Where an upload's bytes come from.
#[derive(Debug, Clone)]
pub enum UploadSource {
    Bytes(Vec<u8>),
    /// Streamed from disk, not read into memory.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub content: ImportContent,
    /// The file name PVE stores it under.
    pub filename: String,
    pub source: UploadSource,
    pub checksum: Option<Checksum>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadUrl {
    pub url: String,
    pub content: ImportContent,
    pub filename: String,
    pub checksum: Option<Checksum>,
    /// `gz`, `lzo`, `zst`, `bz2` (iso only).
    pub compression: Option<String>,
    pub verify_certificates: Option<bool>,
}

fn storage_path(node: &str, storage: &str, tail: &str) -> String {
    format!("/nodes/{}/storage/{}/{tail}", seg(node), seg(storage))
}

impl ProxmoxClient {
    /// `GET /nodes/{node}/storage[?content=…]`.
    pub async fn storages(&self, node: &str, content: Option<&str>) -> Result<Vec<StorageInfo>> {
        self.get(
            &format!("/nodes/{}/storage", seg(node)),
            Params::new().set_opt("content", content),
            &Target::node(node),
        )
        .await
    }

    /// Reads `node`'s storages and counts the node-local ones' concurrency
    /// slots per node from now on (see [`crate::limits`]).
    pub async fn learn_storage_scopes(&self, node: &str) -> Result<()> {
        for storage in self.storages(node, None).await? {
            if !storage.shared {
                self.inner.limits.mark_local(&storage.storage);
            }
        }
        Ok(())
    }

    /// `GET /nodes/{node}/storage/{storage}/content[?content=…&vmid=…]`.
    pub async fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
        vmid: Option<u32>,
    ) -> Result<Vec<StorageContent>> {
        self.get(
            &storage_path(node, storage, "content"),
            Params::new()
                .set_opt("content", content)
                .set_opt("vmid", vmid),
            &Target::node(node),
        )
        .await
    }

    /// `DELETE /nodes/{node}/storage/{storage}/content/{volume}`.
    pub async fn delete_volume(
        &self,
        node: &str,
        storage: &str,
        volid: &str,
    ) -> Result<TaskHandle> {
        self.dispatch(
            Method::DELETE,
            &storage_path(node, storage, &format!("content/{}", seg(volid))),
            Params::new(),
            &Target::node(node),
            Some(storage),
        )
        .await
    }

    /// `POST /nodes/{node}/storage/{storage}/download-url`: PVE fetches the
    /// file itself and checks the checksum.
    pub async fn download_url(
        &self,
        node: &str,
        storage: &str,
        d: &DownloadUrl,
    ) -> Result<TaskHandle> {
        if d.compression.is_some() && d.content != ImportContent::Iso {
            return Err(Error::Invalid(
                "compression is only allowed for iso downloads".into(),
            ));
        }
        let mut params = Params::new()
            .set("url", &d.url)
            .set("content", d.content.as_str())
            .set("filename", &d.filename)
            .set_opt("compression", d.compression.as_deref())
            .flag_opt("verify-certificates", d.verify_certificates);
        if let Some(c) = &d.checksum {
            params = params
                .set("checksum", &c.value)
                .set("checksum-algorithm", &c.algorithm);
        }
        self.dispatch(
            Method::POST,
            &storage_path(node, storage, "download-url"),
            params,
            &Target::node(node),
            Some(storage),
        )
        .await
    }

    /// `POST /nodes/{node}/storage/{storage}/upload` (multipart). The file
    /// part carries a Content-Type, which PVE requires (bugzilla 4344).
    pub async fn upload(&self, node: &str, storage: &str, up: &Upload) -> Result<TaskHandle> {
        let path = storage_path(node, storage, "upload");
        let target = Target::node(node);
        let ep = endpoint(&Method::POST, &path);
        let len = match &up.source {
            UploadSource::Bytes(b) => b.len() as u64,
            UploadSource::File(p) => tokio::fs::metadata(p)
                .await
                .map_err(|e| Error::Invalid(format!("upload source {}: {e}", p.display())))?
                .len(),
        };
        let mut fields = Params::new().set("content", up.content.as_str());
        if let Some(c) = &up.checksum {
            fields = fields
                .set("checksum", &c.value)
                .set("checksum-algorithm", &c.algorithm);
        }
        let permits = self.inner.limits.acquire(node, Some(storage)).await;
        let source = up.source.clone();
        let filename = up.filename.clone();
        // Each retry needs a fresh form (a streamed body is used up); file
        // sources are reopened synchronously because the form is built in a
        // plain closure.
        let make_form = move || -> Result<Form> {
            let part = match &source {
                UploadSource::Bytes(b) => Part::bytes(b.clone()),
                UploadSource::File(p) => {
                    let file = std::fs::File::open(p).map_err(|e| {
                        Error::Invalid(format!("upload source {}: {e}", p.display()))
                    })?;
                    Part::stream_with_length(
                        reqwest::Body::from(tokio::fs::File::from_std(file)),
                        len,
                    )
                }
            }
            .file_name(filename.clone())
            .mime_str("application/octet-stream")
            .map_err(|e| Error::Invalid(format!("upload content type: {e}")))?;
            let mut form = Form::new();
            for (k, v) in fields.exposed_pairs() {
                form = form.text(k.to_owned(), v.to_owned());
            }
            Ok(form.part("filename", part))
        };
        let data: Value = self
            .call(
                Method::POST,
                &path,
                Body::Multipart(Box::new(make_form)),
                &target,
            )
            .await?;
        TaskHandle::from_data(data, &ep, &target, permits)
    }
}
