//! Everything kiln-truenas logs, at every level, through a connect with a
//! wrong key, a connect with the right one, a reconnect and an apply with
//! CHAP: neither the API key nor the CHAP secret ever appears.

mod common;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kiln_lab_truenas::TruenasFaults;
use kiln_truenas::ensure::{self, ChapCredentials, DesiredIscsi, DesiredStorage};
use kiln_truenas::{TruenasClient, initiator_name};
use secrecy::SecretString;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use common::{client_config, connect, mutating_calls, start_nas};

/// Writes every field of kiln-truenas's spans and events into one string.
#[derive(Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    next_span: AtomicU64,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = writeln!(self.0, "{}={value:?}", field.name());
    }
}

impl Capture {
    fn record(&self, target: &str, fill: impl FnOnce(&mut Fields<'_>)) {
        if target.starts_with("kiln_truenas")
            && let Ok(mut text) = self.text.lock()
        {
            let _ = writeln!(text, "[{target}]");
            fill(&mut Fields(&mut text));
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.record(span.metadata().target(), |fields| span.record(fields));
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        self.record("kiln_truenas", |fields| values.record(fields));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        self.record(event.metadata().target(), |fields| event.record(fields));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

const CHAP_SECRET: &str = "chap-secret-4567";

#[tokio::test]
async fn no_secret_is_ever_logged() {
    let capture = Capture::default();
    let text = capture.text.clone();
    let _guard = tracing::subscriber::set_default(capture);

    let nas = start_nas(TruenasFaults {
        drop_connection_after: Some(4),
        ..TruenasFaults::default()
    })
    .await;
    let mut wrong = client_config(&nas);
    wrong.api_key = SecretString::from(format!("{}x", nas.api_key()));
    assert!(TruenasClient::connect(wrong).await.is_err());

    let client = connect(&nas).await;
    let desired = DesiredStorage {
        cluster: "lab".into(),
        datasets: vec!["tank/k8s/lab/iscsi".into()],
        iscsi: Some(DesiredIscsi {
            portal: "0.0.0.0:3260".parse().unwrap(),
            initiators: [initiator_name("lab", "node-1").unwrap()].into(),
            chap: Some(ChapCredentials {
                user: "kiln-lab".into(),
                secret: SecretString::from(CHAP_SECRET),
            }),
        }),
        nfs: None,
        csi_account: None,
    };
    // The dropped connection hits the plan's reads: reconnect, log in again.
    let plan = ensure::plan(&client, &desired).await.unwrap();
    ensure::apply(&client, plan).await.unwrap();
    assert!(!mutating_calls(&nas).is_empty());

    let logged = text.lock().unwrap().clone();
    assert!(
        logged.contains("TrueNAS change"),
        "nothing captured: {logged}"
    );
    assert!(
        logged.contains("reconnecting"),
        "no reconnect logged: {logged}"
    );
    assert!(!logged.contains(nas.api_key()), "API key logged:\n{logged}");
    assert!(
        !logged.contains(CHAP_SECRET),
        "CHAP secret logged:\n{logged}"
    );
    nas.shutdown().await;
}
