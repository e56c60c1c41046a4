//! Run progress: with `-o json` one event per line on stdout (for
//! programs); otherwise one plain, timestamped line per step on stderr.

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
