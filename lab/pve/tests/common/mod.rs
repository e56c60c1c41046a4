//! Helpers shared by the lab's integration tests: a client that trusts exactly the lab's
//! certificate, and small request wrappers.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use kiln_lab_pve::{LabConfig, RunningLab};
use serde_json::Value;

pub struct Reply {
    pub status: u16,
    /// The reason phrase as sent (PVE puts its message there).
    pub reason: String,
    pub body: Value,
}

pub struct Lab {
    pub lab: RunningLab,
    pub http: reqwest::Client,
}

pub async fn start(config: LabConfig) -> Lab {
    let lab = kiln_lab_pve::start(config).await.unwrap();
    let http = client_for(&lab);
    Lab { lab, http }
}

/// A reqwest client that trusts only the lab's self-signed certificate.
pub fn client_for(lab: &RunningLab) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = reqwest::Certificate::from_pem(lab.cert_pem.as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

impl Lab {
    pub fn url(&self, path: &str) -> String {
        format!("{}/api2/json{path}", self.lab.endpoint)
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        rb.header("Authorization", format!("PVEAPIToken={}", self.lab.token()))
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let response = self.auth(rb).send().await.unwrap();
        into_reply(response).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.send(self.http.post(self.url(path)).form(form)).await
    }

    pub async fn put(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.send(self.http.put(self.url(path)).form(form)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.url(path))).await
    }

    /// Polls a task on the node named in its UPID until it stops; returns its status.
    pub async fn wait(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).unwrap();
        let path = format!("/nodes/{node}/tasks/{}/status", encode(upid));
        for _ in 0..500 {
            let reply = self.get(&path).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            if reply.body["data"]["status"] == "stopped" {
                return reply.body["data"].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("task {upid} did not stop");
    }

    /// Runs an async call and waits for its task; asserts it ended `OK`.
    pub async fn ok_task(&self, reply: Reply) -> Value {
        assert_eq!(reply.status, 200, "{} {}", reply.reason, reply.body);
        let upid = reply.body["data"].as_str().unwrap().to_string();
        let status = self.wait(&upid).await;
        assert_eq!(status["exitstatus"], "OK", "{status}");
        status
    }
}

pub async fn into_reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| response.status().canonical_reason().map(str::to_string))
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        reason,
        body,
    }
}

pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A lab with one template (9000 on pve1) and tasks short enough for quick tests.
pub async fn lab_with_template() -> Lab {
    lab_with_timing(Duration::from_millis(100), Duration::from_millis(100)).await
}

/// A lab with one template (9000 on pve1), tasks running `task` and guests booting in
/// `boot`: long enough to observe the in-between states even on a loaded machine.
pub async fn lab_with_timing(task: Duration, boot: Duration) -> Lab {
    let lab = start(LabConfig {
        task_duration: task,
        boot_delay: boot,
        ..LabConfig::default()
    })
    .await;
    lab.lab.add_template("pve1", 9000, "debian-12").unwrap();
    lab
}
