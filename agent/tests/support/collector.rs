//! A tiny HTTPS collector on 127.0.0.1 for tests and the bench: a fresh self-signed
//! certificate, every request recorded, answers scripted per request (202 by default).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use kiln_agent::report::Report;
use kiln_tls::Fingerprint;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// One request as the collector saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub authorization: Option<String>,
    pub report: Report,
    /// What the collector answered.
    pub status: u16,
}

#[derive(Default)]
struct Script {
    answers: VecDeque<(u16, Option<u64>)>,
    received: Vec<Received>,
}

pub struct TestCollector {
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
    script: Arc<Mutex<Script>>,
    server: JoinHandle<()>,
}

impl TestCollector {
    pub async fn start() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["collector.test".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der: CertificateDer<'static> = cert.der().clone();
        let fingerprint = Fingerprint::of_der(der.as_ref());
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(kiln_tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der], key_der)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script::default()));
        let server = tokio::spawn(serve(listener, acceptor, Arc::clone(&script)));
        Self {
            addr,
            fingerprint,
            script,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The next request gets `status` (and a Retry-After of `retry_after` seconds).
    pub fn answer_next(&self, status: u16, retry_after: Option<u64>) {
        self.script
            .lock()
            .unwrap()
            .answers
            .push_back((status, retry_after));
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// Sequence numbers of the reports it answered with 2xx, in arrival order.
    pub fn accepted_sequences(&self) -> Vec<u64> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(|r| r.report.sequence)
            .collect()
    }
}

impl Drop for TestCollector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, script: Arc<Mutex<Script>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        let script = Arc::clone(&script);
        tokio::spawn(async move {
            // A client that refuses the certificate ends the handshake: nothing to serve.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let script = Arc::clone(&script);
                async move { Ok::<_, Infallible>(answer(request, &script).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>, script: &Mutex<Script>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let report: Report = serde_json::from_slice(&body).unwrap();
    let mut script = script.lock().unwrap();
    let (status, retry_after) = script.answers.pop_front().unwrap_or((202, None));
    script.received.push(Received {
        path,
        authorization,
        report,
        status,
    });
    let mut response = Response::builder().status(status);
    if let Some(seconds) = retry_after {
        response = response.header(hyper::header::RETRY_AFTER, seconds.to_string());
    }
    response.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
}
