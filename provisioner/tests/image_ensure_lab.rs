//! `kiln image ensure` against the sim lab (a PVE emulator held to the
//! official schema): templates made from a golden image (a small qcow2
//! from `qemu-img`, uploaded for real and checksummed by the lab) and from a
//! catalog image (the lab records the download-url request, it fetches
//! nothing). Passes against the emulator; the sim backend boots nothing.

#[path = "../../clients/proxmox/tests/proxmox_common/mod.rs"]
mod proxmox_common;
mod sim_inventory;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kiln::templates::{TEMPLATE_TAG, TemplateMarker};
use kiln_images::{BUILDER_VERSION, Cache, CachedImage, Recipe};
use kiln_lab::{LabConfig, LoggedRequest, RunningLab};
use kiln_proxmox::{CreateVm, NetDevice, NewDisk};
use sha2::{Digest, Sha256};
use sim_inventory::cli::{self, Run};

/// A lab without any template, a golden image in kiln's cache, state dirs.
struct Fixture {
    lab: RunningLab,
    dir: tempfile::TempDir,
    /// sha256 of the cached golden image, computed here independently.
    golden_sha256: String,
}

impl Fixture {
    async fn new() -> Self {
        let lab = kiln_lab::start(LabConfig::default())
            .await
            .expect("lab starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let golden_sha256 = cache_fake_golden_image(&dir.path().join("cache"));
        Self {
            lab,
            dir,
            golden_sha256,
        }
    }

    /// Writes lab.yaml with `edit` applied.
    fn inventory(&self, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
        cli::write_lab_inventory(self.dir.path(), name, edit)
    }

    async fn kiln(&self, inventory: &Path, args: &[&str]) -> Run {
        let cache = self.dir.path().join("cache");
        cli::kiln(
            &self.lab,
            self.dir.path(),
            inventory,
            args,
            &[("KILN_CACHE_DIR", &cache)],
        )
        .await
    }

    fn mutating(&self) -> Vec<LoggedRequest> {
        self.lab
            .requests()
            .into_iter()
            .filter(|request| request.mutating)
            .collect()
    }
}

/// A 64 MiB qcow2 made by `qemu-img`, filed in kiln's image cache as the
/// `debian-12` recipe's build (what `kiln image build debian-12` leaves).
fn cache_fake_golden_image(cache_root: &Path) -> String {
    let recipe = Recipe::named("debian-12").expect("recipe");
    let cache = Cache::new(cache_root.join("images"));
    let entry = cache.entry_dir(&recipe);
    std::fs::create_dir_all(&entry).expect("cache entry");
    let disk = entry.join("disk.qcow2");
    let status = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&disk)
        .arg("64M")
        .status()
        .expect("qemu-img runs (xtask setup installs qemu-utils)");
    assert!(status.success(), "qemu-img create failed");
    let bytes = std::fs::read(&disk).expect("read qcow2");
    let manifest = CachedImage {
        name: recipe.name.clone(),
        hash: recipe.hash(),
        builder_version: BUILDER_VERSION,
        suite: recipe.suite.clone(),
        packages: recipe.packages.clone(),
        disk_bytes: recipe.disk_bytes,
        file_bytes: bytes.len() as u64,
        path: disk,
    };
    std::fs::write(
        entry.join("image.json"),
        serde_json::to_string(&manifest).expect("manifest"),
    )
    .expect("write manifest");
    assert_eq!(
        cache.lookup(&recipe).map(|image| image.name),
        Some("debian-12".into())
    );
    hex::encode(Sha256::digest(&bytes))
}

fn identity(text: String) -> String {
    text
}

fn paths(requests: &[LoggedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|request| format!("{} {}", request.method, request.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_empty_both_templates_are_made_and_a_second_run_changes_nothing() {
    let fixture = Fixture::new().await;
    let inventory = fixture.inventory("lab.yaml", identity);
    let run = fixture.kiln(&inventory, &["image", "ensure"]).await;
    assert_eq!(run.code, Some(0), "{}", run.output());
    assert!(
        run.stdout.contains("debian-12@pve1") && run.stdout.contains("created"),
        "{}",
        run.output()
    );
    assert!(run.stderr.contains("template done"), "{}", run.output());

    let client = proxmox_common::client(&fixture.lab);
    let mut templates: Vec<(u32, String)> = client
        .cluster_vms()
        .await
        .expect("resources")
        .into_iter()
        .filter(|vm| vm.template)
        .map(|vm| {
            assert!(
                vm.has_tag("kiln-lab") && vm.has_tag("kiln-template") && vm.has_tag("kiln"),
                "{vm:?}"
            );
            (vm.vmid, vm.node)
        })
        .collect();
    templates.sort();
    assert_eq!(templates, [(9000, "pve1".into()), (9001, "pve2".into())]);

    let config = client.vm_config("pve2", 9001).await.expect("config");
    let get = |key: &str| config.get(key).unwrap_or_default();
    assert!(
        get("scsi0").starts_with("local-lvm:base-9001-disk-0"),
        "{config:?}"
    );
    assert!(config.has_cloudinit_drive(), "{config:?}");
    assert_eq!(get("serial0"), "socket");
    assert_eq!(get("vga"), "serial0");
    assert_eq!(get("agent"), "1");
    assert_eq!(get("boot"), "order=scsi0");
    assert_eq!(get("scsihw"), "virtio-scsi-single");
    assert_eq!(get("cores"), "1");
    assert!(get("net0").contains("bridge=vmbr0"), "{config:?}");
    let marker = TemplateMarker::parse(&get("description")).expect("marker");
    assert_eq!(
        (marker.cluster.as_str(), marker.template.as_str()),
        ("lab", "debian-12")
    );
    assert_eq!(marker.checksum, format!("sha256:{}", fixture.golden_sha256));

    // The image went up once per node, with the checksum the lab verified.
    let uploads: Vec<LoggedRequest> = fixture
        .mutating()
        .into_iter()
        .filter(|request| request.path.ends_with("/upload"))
        .collect();
    assert_eq!(uploads.len(), 2, "{:?}", paths(&uploads));
    for upload in &uploads {
        assert_eq!(upload.status, 200);
        assert_eq!(
            upload.params.get("content").map(String::as_str),
            Some("import")
        );
        assert_eq!(
            upload.params.get("checksum-algorithm").map(String::as_str),
            Some("sha256")
        );
        assert_eq!(upload.params.get("checksum"), Some(&fixture.golden_sha256));
    }
    let creates: Vec<LoggedRequest> = fixture
        .mutating()
        .into_iter()
        .filter(|request| request.method == "POST" && request.path.ends_with("/qemu"))
        .collect();
    assert_eq!(creates.len(), 2);
    let import = creates[0].params.get("scsi0").cloned().unwrap_or_default();
    assert!(
        import.starts_with("local-lvm:0,import-from=local:import/debian-12-"),
        "{import}"
    );

    let before = fixture.mutating().len();
    let again = fixture.kiln(&inventory, &["image", "ensure"]).await;
    assert_eq!(again.code, Some(0), "{}", again.output());
    assert!(again.stderr.contains("Nothing to do"), "{}", again.output());
    assert_eq!(
        paths(&fixture.mutating()[before..]),
        [] as [String; 0],
        "a converged ensure must not change anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_vm_on_a_template_vmid_is_an_error_naming_it_and_is_left_alone() {
    let fixture = Fixture::new().await;
    let client = proxmox_common::client(&fixture.lab);
    let foreign = CreateVm {
        vmid: 9001,
        name: Some("hand-made".into()),
        disks: vec![(
            "scsi0".into(),
            NewDisk::Empty {
                storage: "local-lvm".into(),
                size_gib: 1,
            },
        )],
        nets: vec![(0, NetDevice::virtio("vmbr0"))],
        ..CreateVm::default()
    };
    client
        .run(|| client.create_vm("pve2", &foreign))
        .await
        .expect("foreign VM");
    let before_config = client.vm_config("pve2", 9001).await.expect("config").0;
    let before = fixture.mutating().len();

    let inventory = fixture.inventory("lab.yaml", identity);
    let run = fixture
        .kiln(&inventory, &["image", "ensure", "--replace", "--yes"])
        .await;
    assert_eq!(run.code, Some(1), "{}", run.output());
    assert!(
        run.stderr.contains("VM 9001 (`hand-made`, on pve2)"),
        "{}",
        run.output()
    );
    assert_eq!(
        paths(&fixture.mutating()[before..]),
        [] as [String; 0],
        "nothing may change when the plan is refused"
    );
    assert_eq!(
        client.vm_config("pve2", 9001).await.expect("config").0,
        before_config
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_left_unconverted_by_an_interrupted_run_is_finished() {
    let fixture = Fixture::new().await;
    let client = proxmox_common::client(&fixture.lab);
    // What a run killed between create and convert leaves behind.
    let marker = TemplateMarker {
        cluster: "lab".into(),
        template: "debian-12".into(),
        image: "debian-12".into(),
        checksum: format!("sha256:{}", fixture.golden_sha256),
        kiln_version: "test".into(),
        run: "test".into(),
    };
    let half_made = CreateVm {
        vmid: 9000,
        name: Some("debian-12".into()),
        disks: vec![(
            "scsi0".into(),
            NewDisk::Empty {
                storage: "local-lvm".into(),
                size_gib: 1,
            },
        )],
        tags: vec!["kiln".into(), "kiln-lab".into(), TEMPLATE_TAG.into()],
        description: Some(marker.description()),
        ..CreateVm::default()
    };
    client
        .run(|| client.create_vm("pve1", &half_made))
        .await
        .expect("half-made template");
    let inventory = fixture.inventory("lab.yaml", identity);
    let planned = fixture.kiln(&inventory, &["plan"]).await;
    assert!(
        planned.stderr.contains("run `kiln image ensure`")
            && !planned.stderr.contains("no kiln block"),
        "apply's planner takes it for a missing template, not a node: {}",
        planned.output()
    );

    let before = fixture.mutating().len();
    let run = fixture.kiln(&inventory, &["image", "ensure"]).await;
    assert_eq!(run.code, Some(0), "{}", run.output());
    assert!(run.stdout.contains("converted"), "{}", run.output());
    let on_9000: Vec<String> = fixture.mutating()[before..]
        .iter()
        .filter(|request| {
            request.path.contains("/qemu/9000")
                || request.params.get("vmid").map(String::as_str) == Some("9000")
        })
        .map(|request| format!("{} {}", request.method, request.path))
        .collect();
    assert_eq!(on_9000, ["POST /api2/json/nodes/pve1/qemu/9000/template"]);
    assert!(
        client
            .vm_config("pve1", 9000)
            .await
            .expect("config")
            .is_template()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_image_replaces_the_template_only_with_replace() {
    let fixture = Fixture::new().await;
    let inventory = fixture.inventory("lab.yaml", identity);
    assert_eq!(
        fixture.kiln(&inventory, &["image", "ensure"]).await.code,
        Some(0)
    );

    // A rebuilt golden image: same recipe, other bytes.
    let golden = Cache::new(fixture.dir.path().join("cache/images"))
        .lookup(&Recipe::named("debian-12").expect("recipe"))
        .expect("cached");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&golden.path)
        .and_then(|mut file| file.write_all(b"rebuilt"))
        .expect("change the image");

    let before = fixture.mutating().len();
    let outdated = fixture.kiln(&inventory, &["image", "ensure"]).await;
    assert_eq!(outdated.code, Some(1), "{}", outdated.output());
    assert!(
        outdated.stdout.contains("OUTDATED"),
        "{}",
        outdated.output()
    );
    assert_eq!(paths(&fixture.mutating()[before..]), [] as [String; 0]);

    let refused = fixture
        .kiln(&inventory, &["image", "ensure", "--replace"])
        .await;
    assert_eq!(refused.code, Some(1), "{}", refused.output());
    assert!(
        refused.stderr.contains("rerun with --yes"),
        "{}",
        refused.output()
    );

    let replaced = fixture
        .kiln(&inventory, &["image", "ensure", "--replace", "--yes"])
        .await;
    assert_eq!(replaced.code, Some(0), "{}", replaced.output());
    assert!(
        replaced.stdout.contains("replaced"),
        "{}",
        replaced.output()
    );
    let client = proxmox_common::client(&fixture.lab);
    let config = client.vm_config("pve1", 9000).await.expect("config");
    let marker = TemplateMarker::parse(&config.description().unwrap_or_default()).expect("marker");
    let mut bytes = Vec::new();
    std::fs::File::open(&golden.path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .expect("read image");
    assert_eq!(
        marker.checksum,
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
    );
    assert!(config.is_template());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_image_is_downloaded_by_proxmox_with_its_checksum() {
    let fixture = Fixture::new().await;
    let digest = "ab".repeat(64);
    let url =
        "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2";
    let inventory = fixture.inventory("catalog.yaml", |text| {
        text.replace(
            "    golden:\n      recipe: debian-12\n",
            &format!("    url: {url}\n    checksum: sha512:{digest}\n"),
        )
    });
    let run = fixture.kiln(&inventory, &["image", "ensure"]).await;
    assert_eq!(run.code, Some(0), "{}", run.output());
    let mutating = fixture.mutating();
    assert!(
        mutating
            .iter()
            .all(|request| !request.path.ends_with("/upload")),
        "{:?}",
        paths(&mutating)
    );
    let downloads: Vec<&LoggedRequest> = mutating
        .iter()
        .filter(|request| request.path.ends_with("/download-url"))
        .collect();
    assert_eq!(downloads.len(), 2, "{:?}", paths(&mutating));
    for download in downloads {
        let param = |key: &str| download.params.get(key).map(String::as_str);
        assert_eq!(param("url"), Some(url));
        assert_eq!(param("content"), Some("import"));
        assert_eq!(param("checksum"), Some(digest.as_str()));
        assert_eq!(param("checksum-algorithm"), Some("sha512"));
        assert_eq!(
            param("filename").map(str::to_owned),
            Some(format!("debian-12-{}.qcow2", &digest[..16]))
        );
    }
    let client = proxmox_common::client(&fixture.lab);
    assert!(
        client
            .vm_config("pve1", 9000)
            .await
            .expect("config")
            .is_template()
    );
}

/// Serves `body` to every GET on 127.0.0.1 until dropped.
struct SumsServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SumsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_sums(body: String) -> SumsServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/SHA512SUMS", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    SumsServer { url, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_checksum_file_gives_the_digest_proxmox_verifies() {
    let fixture = Fixture::new().await;
    let digest = "cd".repeat(64);
    let sums = serve_sums(format!(
        "{}  debian-12-genericcloud-amd64.raw\n{digest}  debian-12-genericcloud-amd64.qcow2\n",
        "12".repeat(64)
    ))
    .await;
    let url =
        "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2";
    let inventory = fixture.inventory("sums.yaml", |text| {
        text.replace(
            "    golden:\n      recipe: debian-12\n",
            &format!("    url: {url}\n    checksum_url: {}\n", sums.url),
        )
    });
    let run = fixture
        .kiln(&inventory, &["image", "ensure", "-o", "json"])
        .await;
    assert_eq!(run.code, Some(0), "{}", run.output());
    let summary: serde_json::Value = run
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "templates")
        .expect("a templates summary line");
    assert_eq!(
        summary["templates"][0]["checksum"],
        format!("sha512:{digest}")
    );
    assert_eq!(summary["templates"][0]["ok"], true);
    let downloads: Vec<LoggedRequest> = fixture
        .mutating()
        .into_iter()
        .filter(|request| request.path.ends_with("/download-url"))
        .collect();
    assert_eq!(
        downloads[0].params.get("checksum").map(String::as_str),
        Some(digest.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_clones_the_templates_ensure_made() {
    let fixture = Fixture::new().await;
    // Without `ssh` and `agent` a node is done when Proxmox reports its
    // address: this is about the clones, and the sim lab runs no guests.
    let inventory = fixture.inventory("lab.yaml", |text| {
        text.replace("ssh:\n  user: kiln\n", "").replace(
            "agent:\n  collector: env:KILN_COLLECTOR_URL\n  interval: 5s\n",
            "",
        )
    });
    let plan = fixture.kiln(&inventory, &["plan"]).await;
    assert_eq!(plan.code, Some(1), "no templates yet: {}", plan.output());
    assert!(
        plan.stderr.contains("kiln image ensure"),
        "{}",
        plan.output()
    );

    let ensure = fixture.kiln(&inventory, &["image", "ensure"]).await;
    assert_eq!(ensure.code, Some(0), "{}", ensure.output());
    let apply = fixture.kiln(&inventory, &["apply"]).await;
    assert_eq!(apply.code, Some(0), "{}", apply.output());

    let client = proxmox_common::client(&fixture.lab);
    let mut nodes: Vec<(String, String)> = client
        .cluster_vms()
        .await
        .expect("resources")
        .into_iter()
        .filter(|vm| !vm.template)
        .map(|vm| (vm.name.unwrap_or_default(), vm.node))
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        [
            ("lab1".into(), "pve1".into()),
            ("lab2".into(), "pve2".into()),
            ("lab3".into(), "pve1".into())
        ]
    );
    // The node VMs are linked clones of the templates' base disks.
    let config = client
        .node_vms("pve2")
        .await
        .expect("list")
        .into_iter()
        .find(|vm| vm.name.as_deref() == Some("lab2"))
        .expect("lab2");
    let disk = client
        .vm_config("pve2", config.vmid)
        .await
        .expect("config")
        .get("scsi0")
        .unwrap_or_default();
    assert!(disk.contains("base-9001-disk-0/"), "{disk}");
}
