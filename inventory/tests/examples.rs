//! Every shipped example inventory validates.

use std::path::PathBuf;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_four_examples_exist() {
    let names: Vec<String> = examples()
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "homelab-k3s.yaml",
            "homelab-talos.yaml",
            "lab.yaml",
            "minimal.yaml"
        ]
    );
}

#[test]
fn every_example_validates() {
    for path in examples() {
        if let Err(error) = kiln_inventory::load(&path) {
            panic!(
                "{} does not validate:\n{}",
                path.display(),
                error.render(false)
            );
        }
    }
}
