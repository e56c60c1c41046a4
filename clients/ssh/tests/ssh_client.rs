//! The SSH client against a real OpenSSH sshd on 127.0.0.1: exec (exit
//! codes, signals, stderr, large output, timeouts), host-key checks, auth
//! sources, channel hygiene and wait_for_ssh. Uploads: `ssh_upload.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers are test code too

mod ssh_common;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_ssh::{
    ExitStatus, HostKeyError, KeySource, Output, Privilege, Session, SshError, SshTarget, Timeouts,
    fingerprint, wait_for_ssh,
};
use secrecy::SecretString;
use ssh_common::login::{Fixture, policy};
use ssh_common::{keygen, keygen_fingerprint};
use ssh_key::PublicKey;

#[tokio::test]
async fn exit_codes_come_back_and_stderr_stays_apart() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let session = fixture.connect().await;
    for code in [0u32, 1, 42] {
        let output = session
            .exec(&format!(
                "echo out-{code}; echo err-{code} >&2; exit {code}"
            ))
            .await
            .unwrap();
        assert_eq!(output.status, ExitStatus::Code(code));
        assert_eq!(output.stdout_text(), format!("out-{code}\n"));
        assert_eq!(output.stderr_text(), format!("err-{code}\n"));
    }
    let signalled = session.exec("kill -TERM $$").await.unwrap();
    assert!(
        matches!(signalled.status, ExitStatus::Signal { ref name, .. } if name == "TERM"),
        "{:?}",
        signalled.status
    );
    let error = session
        .run(Privilege::Login, "echo nope >&2; exit 3")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("exit status 3"), "{error}");
    assert!(error.contains("stderr: nope"), "{error}");
    assert!(
        error.contains(&format!("127.0.0.1:{}", fixture.sshd.port)),
        "{error}"
    );
    session.close().await;
}

#[tokio::test]
async fn large_output_arrives_whole_collected_and_streamed() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let session = fixture.connect().await;
    let expected: String = (1..=1_200_000).map(|n| format!("{n}\n")).collect();
    assert!(expected.len() >= 8 * 1024 * 1024);
    let output = session.exec("seq 1 1200000; echo done >&2").await.unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout.len(), expected.len());
    assert!(output.stdout == expected.as_bytes(), "stdout differs");
    assert_eq!(output.stderr_text(), "done\n");

    let mut streamed = Vec::new();
    let mut chunks = 0;
    let mut stderr = Vec::new();
    let status = session
        .exec_streaming(
            "seq 1 1200000; echo done >&2",
            Duration::from_secs(120),
            |output| match output {
                Output::Stdout(data) => {
                    chunks += 1;
                    streamed.extend_from_slice(data);
                }
                Output::Stderr(data) => stderr.extend_from_slice(data),
            },
        )
        .await
        .unwrap();
    assert!(status.success());
    assert!(streamed == expected.as_bytes(), "streamed stdout differs");
    assert!(chunks > 1, "output arrived in pieces, as it is produced");
    assert_eq!(stderr, b"done\n");
}

#[tokio::test]
async fn fifty_execs_on_one_connection_do_not_leak_channels() {
    // sshd allows 10 sessions per connection (MaxSessions): a channel left
    // open per exec would fail the 11th.
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let session = fixture.connect().await;
    for n in 0..50 {
        let output = session.exec(&format!("echo {n}")).await.unwrap();
        assert_eq!(output.stdout_text(), format!("{n}\n"), "exec {n}");
    }
    let failing = session.exec("cat /nonexistent").await.unwrap();
    assert_eq!(failing.status, ExitStatus::Code(1));
    assert!(session.exec("true").await.unwrap().status.success());
}

#[tokio::test]
async fn a_timed_out_command_is_killed_and_frees_its_channel() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let session = fixture.connect().await;
    let marker = format!("sleep {}.5", 100_000 + std::process::id());
    // The remote command ends a second after the client gives up: a few
    // sessions are still closing while the loop goes on, never ten.
    for _ in 0..12 {
        let error = session
            .exec_streaming(&marker, Duration::from_millis(300), |_| {})
            .await
            .unwrap_err();
        assert!(matches!(error, SshError::Timeout { .. }), "{error}");
        assert!(
            error.to_string().contains("no answer within 300ms"),
            "{error}"
        );
    }
    assert!(session.exec("true").await.unwrap().status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap();
        if left.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "remote commands still running: {}",
            String::from_utf8_lossy(&left.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn a_host_key_mismatch_aborts_naming_both_fingerprints() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let impostor = fixture.state.path().join("impostor");
    keygen(&impostor);
    let impostor_key = PublicKey::read_openssh_file(impostor.with_extension("pub")).unwrap();
    let policy = fixture.policy();
    policy
        .pin("127.0.0.1", fixture.sshd.port, &impostor_key)
        .unwrap();
    let error = Session::connect(
        &fixture.target(),
        &fixture.key_source(),
        &policy.trust_new_host_keys(true),
        &Timeouts::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            SshError::HostKey { ref source, .. } if matches!(**source, HostKeyError::Mismatch { .. })
        ),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&keygen_fingerprint(&fixture.sshd.host_public_key())),
        "{text}"
    );
    assert!(text.contains(&fingerprint(&impostor_key)), "{text}");
    assert!(text.contains("(node test-node)"), "{text}");
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_unless_first_use_trust_is_allowed() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let fresh = tempfile::tempdir().unwrap();
    let strict = policy(&fresh);
    let error = Session::connect(
        &fixture.target(),
        &fixture.key_source(),
        &strict,
        &Timeouts::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            SshError::HostKey { ref source, .. } if matches!(**source, HostKeyError::Unknown { .. })
        ),
        "{error}"
    );
    assert!(!error.is_transient());
    let session = Session::connect(
        &fixture.target(),
        &fixture.key_source(),
        &strict.clone().trust_new_host_keys(true),
        &Timeouts::default(),
    )
    .await
    .unwrap();
    session.close().await;
    let recorded = std::fs::read_to_string(strict.kiln_file()).unwrap();
    assert!(
        recorded.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", fixture.sshd.port)),
        "{recorded}"
    );
    Session::connect(
        &fixture.target(),
        &fixture.key_source(),
        &strict,
        &Timeouts::default(),
    )
    .await
    .expect("the recorded key is now pinned");
}

#[tokio::test]
async fn a_closed_port_is_refused_and_a_silent_one_times_out() {
    let state = tempfile::tempdir().unwrap();
    let closed = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let key = KeySource::Secret(SecretString::from("unused"));
    let target = SshTarget::new("ghost", "127.0.0.1", "kiln").with_port(closed);
    let error = Session::connect(&target, &key, &policy(&state), &Timeouts::default())
        .await
        .unwrap_err();
    assert!(matches!(error, SshError::Connect { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("kiln@127.0.0.1:{closed} (node ghost): connect: ")),
        "{error}"
    );

    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let target = target.with_port(silent.local_addr().unwrap().port());
    let timeouts = Timeouts {
        connect: Duration::from_millis(500),
        ..Timeouts::default()
    };
    let error = Session::connect(&target, &key, &policy(&state), &timeouts)
        .await
        .unwrap_err();
    assert!(matches!(error, SshError::Timeout { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("connect: no answer within 500ms"),
        "{error}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn keys_from_a_file_and_from_ssh_agent_log_in_and_a_wrong_key_is_named() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let target = fixture.target();
    let from_file = KeySource::File {
        path: fixture.key.clone(),
        passphrase: None,
    };
    Session::connect(&target, &from_file, &fixture.policy(), &Timeouts::default())
        .await
        .unwrap()
        .close()
        .await;

    let locked = fixture.state.path().join("locked_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "open sesame", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(made.success());
    fixture.sshd.authorize(&locked);
    let with_passphrase = |passphrase: &str| KeySource::File {
        path: locked.clone(),
        passphrase: Some(SecretString::from(passphrase)),
    };
    Session::connect(
        &target,
        &with_passphrase("open sesame"),
        &fixture.policy(),
        &Timeouts::default(),
    )
    .await
    .unwrap()
    .close()
    .await;
    let text = Session::connect(
        &target,
        &with_passphrase("hunter2"),
        &fixture.policy(),
        &Timeouts::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(text.contains("or the passphrase is wrong"), "{text}");
    assert!(text.contains("locked_key"), "{text}");
    assert!(
        !text.contains("hunter2"),
        "no passphrase in the message: {text}"
    );

    let agent = Agent::start(fixture.state.path(), &fixture.key);
    let from_agent = KeySource::Agent {
        socket: Some(agent.socket.clone()),
    };
    let session = Session::connect(
        &target,
        &from_agent,
        &fixture.policy(),
        &Timeouts::default(),
    )
    .await
    .unwrap();
    assert!(session.exec("true").await.unwrap().status.success());

    let stranger = fixture.state.path().join("stranger");
    keygen(&stranger);
    let wrong = KeySource::Secret(SecretString::from(
        std::fs::read_to_string(&stranger).unwrap(),
    ));
    let error = Session::connect(&target, &wrong, &fixture.policy(), &Timeouts::default())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, SshError::AuthRejected { .. }), "{text}");
    assert!(
        text.contains(&keygen_fingerprint(&stranger.with_extension("pub"))),
        "{text}"
    );
    assert!(!text.contains("PRIVATE"), "{text}");

    let garbage = KeySource::Secret(SecretString::from(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA",
    ));
    let text = Session::connect(&target, &garbage, &fixture.policy(), &Timeouts::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("not a private key kiln can read"), "{text}");
    assert!(!text.contains("AAAA"), "{text}");
}

#[tokio::test]
async fn wait_for_ssh_retries_until_the_key_is_authorized_and_is_bounded() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let late = fixture.state.path().join("late");
    keygen(&late);
    let key = KeySource::File {
        path: late.clone(),
        passphrase: None,
    };
    let started = Instant::now();
    let error = wait_for_ssh(
        &fixture.target(),
        &key,
        &fixture.policy(),
        &Timeouts::default(),
        Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    let waited = started.elapsed();
    let SshError::WaitTimedOut { attempts, last, .. } = &error else {
        panic!("{error}");
    };
    assert!(*attempts >= 2, "{error}");
    assert!(matches!(**last, SshError::AuthRejected { .. }), "{error}");
    assert!(waited < Duration::from_secs(20), "bounded: {waited:?}");

    let authorize = {
        let authorized = fixture.sshd.dir.path().join("authorized_keys");
        let public = std::fs::read_to_string(late.with_extension("pub")).unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            let mut keys = std::fs::read_to_string(&authorized).unwrap();
            keys.push_str(&public);
            std::fs::write(authorized, keys).unwrap();
        })
    };
    let session = wait_for_ssh(
        &fixture.target(),
        &key,
        &fixture.policy(),
        &Timeouts::default(),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    authorize.await.unwrap();
    assert!(session.exec("true").await.unwrap().status.success());

    let fresh = tempfile::tempdir().unwrap();
    let refused = wait_for_ssh(
        &fixture.target(),
        &key,
        &policy(&fresh),
        &Timeouts::default(),
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(refused, SshError::HostKey { .. }),
        "an unknown host key ends the wait at once: {refused}"
    );
}

#[tokio::test]
async fn keep_alive_notices_a_peer_that_went_silent() {
    // Through a proxy that stops forwarding after login: without keep-alive
    // the command would only end at its 60 s timeout; with it, the
    // unanswered probes close the connection first.
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let (port, frozen) = silenceable_proxy(fixture.sshd.port).await;
    fixture
        .policy()
        .pin(
            "127.0.0.1",
            port,
            &PublicKey::read_openssh_file(fixture.sshd.host_public_key()).unwrap(),
        )
        .unwrap();
    let target = fixture.target().with_port(port);
    let timeouts = Timeouts {
        keepalive: Duration::from_millis(300),
        command: Duration::from_secs(60),
        ..Timeouts::default()
    };
    let session = Session::connect(&target, &fixture.key_source(), &fixture.policy(), &timeouts)
        .await
        .unwrap();
    assert!(session.exec("true").await.unwrap().status.success());
    frozen.store(true, Ordering::Relaxed);
    let error = session.exec("sleep 30").await.unwrap_err();
    assert!(
        !matches!(error, SshError::Timeout { .. }),
        "keep-alive should have ended it first: {error}"
    );
}

/// A TCP proxy to `upstream` on loopback that drops everything in both
/// directions once the flag is set, keeping both sockets open.
async fn silenceable_proxy(upstream: u16) -> (u16, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let frozen = Arc::new(AtomicBool::new(false));
    let flag = frozen.clone();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, upstream))
            .await
            .unwrap();
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let there = tokio::spawn(forward(client_read, server_write, flag.clone()));
        let back = tokio::spawn(forward(server_read, client_write, flag));
        let _ = tokio::join!(there, back);
    });
    (port, frozen)
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        if frozen.load(Ordering::Relaxed) {
            continue;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// An ssh-agent holding one key, killed by pid on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path, key: &Path) -> Self {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let agent = Self { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let added = Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .status()
            .unwrap();
        assert!(added.success());
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
