//! Run progress: with `-o json` one event per line on stdout (for
//! programs); on a terminal one live line per node; elsewhere (a CI log, a
//! pipe) one plain, timestamped line per step on stderr.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kiln::engine::{Event, EventSink, RunOutcome, StepOutcome};

pub struct JsonEvents;

impl EventSink for JsonEvents {
    fn emit(&self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
    }
}

/// Plain lines, readable in a terminal and in a CI log alike.
pub struct PlainLines {
    started: Instant,
    /// When each running step started, to print its duration.
    running: Mutex<Vec<(Option<String>, String, Instant)>>,
}

impl PlainLines {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            running: Mutex::new(Vec::new()),
        }
    }

    fn line(&self, text: &str) {
        let elapsed = self.started.elapsed().as_secs();
        eprintln!("[{:02}:{:02}] {text}", elapsed / 60, elapsed % 60);
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

impl EventSink for PlainLines {
    fn emit(&self, event: &Event) {
        match event {
            Event::RunStarted {
                command,
                cluster,
                run,
                ..
            } => {
                self.line(&format!("{command} on cluster `{cluster}` (run {run})"));
            }
            Event::StepStarted { node, step, .. } => {
                if let Ok(mut running) = self.running.lock() {
                    running.push((node.clone(), step.clone(), Instant::now()));
                }
                self.line(&format!(
                    "{:<12} {step} …",
                    node.as_deref().unwrap_or("cluster")
                ));
            }
            Event::StepFinished {
                node,
                step,
                outcome,
                ..
            } => {
                let took = self.running.lock().ok().and_then(|mut running| {
                    let position = running
                        .iter()
                        .position(|(n, s, _)| n == node && s == step)?;
                    Some(running.remove(position).2.elapsed())
                });
                let node = node.as_deref().unwrap_or("cluster");
                let text = match (outcome, took) {
                    (StepOutcome::Succeeded, Some(took)) => {
                        format!("{node:<12} {step} done ({})", seconds(took))
                    }
                    (StepOutcome::Succeeded, None) => format!("{node:<12} {step} done"),
                    (StepOutcome::Failed(error), _) => format!("{node:<12} {step} FAILED: {error}"),
                    (StepOutcome::Skipped(reason), _) => {
                        format!("{node:<12} {step} skipped: {reason}")
                    }
                };
                self.line(&text);
            }
            Event::RunFinished { outcome, .. } => {
                let text = match outcome {
                    RunOutcome::Succeeded => "finished",
                    RunOutcome::Failed => "finished with failures",
                    RunOutcome::Interrupted => {
                        "interrupted: running steps were let finish, nothing new was started"
                    }
                };
                self.line(&format!("{text} in {}", seconds(self.started.elapsed())));
            }
        }
    }
}

/// On a terminal: one live line per node (its current step and how long
/// it has run), kept on screen when the node is done.
pub struct LiveLines {
    started: Instant,
    bars: indicatif::MultiProgress,
    nodes: Mutex<Vec<(String, indicatif::ProgressBar)>>,
}

impl LiveLines {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            bars: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ),
            nodes: Mutex::new(Vec::new()),
        }
    }

    fn bar(&self, node: &str) -> Option<indicatif::ProgressBar> {
        let mut nodes = self.nodes.lock().ok()?;
        if let Some((_, bar)) = nodes.iter().find(|(name, _)| name == node) {
            return Some(bar.clone());
        }
        let style =
            indicatif::ProgressStyle::with_template("{spinner} {prefix:<12} {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bar = self
            .bars
            .add(indicatif::ProgressBar::new_spinner().with_style(style));
        bar.set_prefix(node.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        nodes.push((node.to_owned(), bar.clone()));
        Some(bar)
    }
}

impl EventSink for LiveLines {
    fn emit(&self, event: &Event) {
        match event {
            Event::RunStarted {
                command,
                cluster,
                run,
                ..
            } => {
                let _ = self
                    .bars
                    .println(format!("{command} on cluster `{cluster}` (run {run})"));
            }
            Event::StepStarted { node, step, .. } => {
                if let Some(bar) = self.bar(node.as_deref().unwrap_or("cluster")) {
                    bar.set_message(format!("{step} …"));
                }
            }
            Event::StepFinished {
                node,
                step,
                outcome,
                ..
            } => {
                let Some(bar) = self.bar(node.as_deref().unwrap_or("cluster")) else {
                    return;
                };
                match outcome {
                    StepOutcome::Succeeded => bar.set_message(format!("{step} done")),
                    StepOutcome::Failed(error) => {
                        bar.abandon_with_message(format!("{step} FAILED: {error}"))
                    }
                    StepOutcome::Skipped(reason) => {
                        bar.set_message(format!("{step} skipped: {reason}"))
                    }
                }
            }
            Event::RunFinished { outcome, .. } => {
                if let Ok(nodes) = self.nodes.lock() {
                    for (_, bar) in nodes.iter().filter(|(_, bar)| !bar.is_finished()) {
                        bar.finish();
                    }
                }
                let text = match outcome {
                    RunOutcome::Succeeded => "finished",
                    RunOutcome::Failed => "finished with failures",
                    RunOutcome::Interrupted => {
                        "interrupted: running steps were let finish, nothing new was started"
                    }
                };
                let _ = self
                    .bars
                    .println(format!("{text} in {}", seconds(self.started.elapsed())));
            }
        }
    }
}

/// Whether `--progress auto` draws live lines: only for a person at a
/// terminal, never in CI or a dumb terminal.
pub fn live(choice: crate::cli::global::Progress) -> bool {
    use std::io::IsTerminal;
    match choice {
        crate::cli::global::Progress::Always => true,
        crate::cli::global::Progress::Never => false,
        crate::cli::global::Progress::Auto => {
            std::io::stderr().is_terminal()
                && std::env::var_os("CI").is_none()
                && std::env::var("TERM").map_or(true, |term| term != "dumb")
        }
    }
}
