use super::global::Exit;

pub fn run() -> anyhow::Result<Exit> {
    println!(
        "{}",
        serde_json::to_string_pretty(kiln_inventory::json_schema())?
    );
    Ok(Exit::Success)
}
