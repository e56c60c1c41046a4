//! democratic-csi's API key through an apply and a rotation, with every
//! field kiln-truenas logs captured: the key is in no log line, plan,
//! Debug output, error or call log. (A test binary of its own: tracing
//! caches per call site whether anyone listens, so tests running beside it
//! without a subscriber would hide events from it.)

mod common;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use kiln_lab_truenas::TruenasFaults;
use kiln_truenas::DEMOCRATIC_CSI_ROLES;
use kiln_truenas::ensure::{self, DesiredCsiAccount, DesiredStorage};
use secrecy::{ExposeSecret, SecretString};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use common::{connect, mutating_calls, start_nas};

const USERNAME: &str = "kiln-csi-lab";

/// Every field kiln-truenas logs, as text.
#[derive(Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = writeln!(self.0, "{}={value:?}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        if let Ok(mut text) = self.0.lock() {
            span.record(&mut Fields(&mut text));
        }
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        if let Ok(mut text) = self.0.lock() {
            values.record(&mut Fields(&mut text));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if let Ok(mut text) = self.0.lock() {
            event.record(&mut Fields(&mut text));
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn the_key_is_never_logged_printed_or_in_an_error() {
    let capture = Capture::default();
    let text = capture.0.clone();
    let _guard = tracing::subscriber::set_default(capture);
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let want = DesiredStorage {
        cluster: "lab".into(),
        datasets: Vec::new(),
        iscsi: None,
        nfs: None,
        csi_account: Some(DesiredCsiAccount {
            username: USERNAME.into(),
            roles: DEMOCRATIC_CSI_ROLES
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
        }),
    };
    let plan = ensure::plan(&client, &want).await.unwrap();
    let shown_plan = format!(
        "{plan:?} {}",
        plan.changes
            .iter()
            .map(ToString::to_string)
            .collect::<String>()
    );
    let ids = ensure::apply(&client, plan).await.unwrap();
    let first = ids.csi_api_key.clone().unwrap();
    let rotated: SecretString = ensure::rotate_csi_key(&client, USERNAME).await.unwrap();
    // A failing call after the key exists: its error has no key either.
    let error = ensure::rotate_csi_key(&client, "nobody").await.unwrap_err();

    assert!(!mutating_calls(&nas).is_empty());
    let logged = text.lock().unwrap().clone();
    assert!(
        logged.contains("TrueNAS change"),
        "nothing captured: {logged}"
    );
    for secret in [first.key.expose_secret(), rotated.expose_secret()] {
        let bare = secret.split_once('-').unwrap().1;
        for (what, output) in [
            ("log", logged.as_str()),
            ("plan", shown_plan.as_str()),
            ("ids", &format!("{ids:?}")),
            ("key", &format!("{first:?} {rotated:?}")),
            ("error", &format!("{error} {error:?}")),
            ("call log", &serde_json::to_string(&nas.calls()).unwrap()),
        ] {
            assert!(!output.contains(bare), "key in the {what}: {output}");
        }
    }
    nas.shutdown().await;
}
