//! A graph of steps: each runs when the steps it depends on succeeded, as
//! many at once as are ready (the Proxmox client bounds the load per PVE
//! node and per storage). A failed step skips what depends on it and
//! nothing else, so one broken node does not stop the others. Interrupted,
//! the graph starts nothing new and lets running steps finish: a PVE task
//! in flight is never abandoned half-way.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use kiln_journal::events::{Event, EventSink, RunOutcome, StepOutcome};

pub type StepFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One unit of work for one node (or the whole cluster).
pub struct Step {
    pub node: Option<String>,
    pub name: &'static str,
    pub after: Vec<StepId>,
    /// Past this the step fails, naming the node, the step and the time.
    pub timeout: Duration,
    /// An interrupt stops it at once: it only waits, so stopping leaves
    /// nothing half-done (a Proxmox task is always let finish).
    pub abortable: bool,
    pub run: Box<dyn FnOnce() -> StepFuture + Send>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepId(usize);

/// A step that did not succeed, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFailure {
    pub node: Option<String>,
    pub step: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraphReport {
    pub outcome: RunOutcome,
    pub failures: Vec<StepFailure>,
    pub elapsed: Duration,
}

#[derive(Default)]
pub struct Graph {
    steps: Vec<Option<Step>>,
}

enum State {
    Waiting(usize),
    Running,
    Done,
}

impl Graph {
    pub fn add(&mut self, step: Step) -> StepId {
        self.steps.push(Some(step));
        StepId(self.steps.len() - 1)
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs every step; `interrupt` turning `true` stops new steps from starting.
    pub async fn run(
        self,
        run: Uuid,
        sink: Arc<dyn EventSink>,
        mut interrupt: watch::Receiver<bool>,
    ) -> GraphReport {
        let started = Instant::now();
        let mut execution = Execution::new(self, run, sink);
        let mut running: JoinSet<(usize, Result<(), String>)> = JoinSet::new();
        let mut tasks: HashMap<tokio::task::Id, (usize, tokio::task::AbortHandle, bool)> =
            HashMap::new();
        let mut interrupted = *interrupt.borrow();
        loop {
            if !interrupted {
                for (index, step) in execution.take_ready() {
                    let abortable = step.abortable;
                    let handle = running.spawn(timed(index, step));
                    tasks.insert(handle.id(), (index, handle, abortable));
                }
            }
            let finished = tokio::select! {
                finished = running.join_next_with_id() => finished,
                changed = interrupt.changed(), if !interrupted => {
                    interrupted = changed.is_err() || *interrupt.borrow();
                    if interrupted {
                        for (_, handle, abortable) in tasks.values() {
                            if *abortable {
                                handle.abort();
                            }
                        }
                    }
                    continue;
                }
            };
            match finished {
                Some(Ok((_, (index, result)))) => execution.finish(index, result),
                Some(Err(error)) => {
                    if let Some((index, _, _)) = tasks.get(&error.id()) {
                        if error.is_cancelled() {
                            execution
                                .skip(*index, "stopped by the interrupt (it was only waiting)");
                        } else {
                            execution.finish(*index, Err(format!("the step crashed: {error}")));
                        }
                    }
                }
                None => break,
            }
        }
        execution.skip_unfinished("the run was interrupted");
        let outcome = if interrupted {
            RunOutcome::Interrupted
        } else if execution.failures.is_empty() {
            RunOutcome::Succeeded
        } else {
            RunOutcome::Failed
        };
        GraphReport {
            outcome,
            failures: execution.failures,
            elapsed: started.elapsed(),
        }
    }
}

/// The bookkeeping of one run of a graph.
struct Execution {
    steps: Vec<Option<Step>>,
    state: Vec<State>,
    dependents: Vec<Vec<usize>>,
    labels: Vec<(Option<String>, &'static str)>,
    failures: Vec<StepFailure>,
    run: Uuid,
    sink: Arc<dyn EventSink>,
}

impl Execution {
    fn new(graph: Graph, run: Uuid, sink: Arc<dyn EventSink>) -> Self {
        let count = graph.steps.len();
        let mut dependents = vec![Vec::new(); count];
        let mut state = Vec::with_capacity(count);
        let mut labels = Vec::with_capacity(count);
        for (index, step) in graph.steps.iter().enumerate() {
            let (after, node, name) = step.as_ref().map_or((&[][..], None, ""), |step| {
                (&step.after[..], step.node.clone(), step.name)
            });
            for dependency in after {
                dependents[dependency.0].push(index);
            }
            state.push(State::Waiting(after.len()));
            labels.push((node, name));
        }
        Self {
            steps: graph.steps,
            state,
            dependents,
            labels,
            failures: Vec::new(),
            run,
            sink,
        }
    }

    /// The steps whose dependencies all succeeded, marked running.
    fn take_ready(&mut self) -> Vec<(usize, Step)> {
        let mut ready = Vec::new();
        for index in 0..self.steps.len() {
            if matches!(self.state[index], State::Waiting(0))
                && let Some(step) = self.steps[index].take()
            {
                self.state[index] = State::Running;
                self.sink.emit(&Event::StepStarted {
                    run: self.run,
                    node: step.node.clone(),
                    step: step.name.to_owned(),
                    at: SystemTime::now(),
                });
                ready.push((index, step));
            }
        }
        ready
    }

    fn finish(&mut self, index: usize, result: Result<(), String>) {
        self.state[index] = State::Done;
        let outcome = match &result {
            Ok(()) => StepOutcome::Succeeded,
            Err(message) => StepOutcome::Failed(message.clone()),
        };
        self.emit_finished(index, 1, outcome);
        match result {
            Ok(()) => {
                for &dependent in &self.dependents[index] {
                    if let State::Waiting(remaining) = &mut self.state[dependent] {
                        *remaining = remaining.saturating_sub(1);
                    }
                }
            }
            Err(message) => {
                let (node, step) = self.labels[index].clone();
                let reason = format!("`{step}` failed");
                self.failures.push(StepFailure {
                    node,
                    step,
                    message,
                });
                let mut stack = self.dependents[index].clone();
                while let Some(dependent) = stack.pop() {
                    if !matches!(self.state[dependent], State::Done) {
                        self.skip(dependent, &reason);
                        stack.extend(self.dependents[dependent].iter().copied());
                    }
                }
            }
        }
    }

    fn skip_unfinished(&mut self, reason: &str) {
        for index in 0..self.state.len() {
            if !matches!(self.state[index], State::Done) {
                self.skip(index, reason);
            }
        }
    }

    fn skip(&mut self, index: usize, reason: &str) {
        self.state[index] = State::Done;
        self.steps[index] = None;
        self.emit_finished(index, 0, StepOutcome::Skipped(reason.to_owned()));
    }

    fn emit_finished(&self, index: usize, attempts: u32, outcome: StepOutcome) {
        let (node, step) = self.labels[index].clone();
        self.sink.emit(&Event::StepFinished {
            run: self.run,
            node,
            step: step.to_owned(),
            at: SystemTime::now(),
            attempts,
            outcome,
        });
    }
}

async fn timed(index: usize, step: Step) -> (usize, Result<(), String>) {
    let timeout = step.timeout;
    let node = step.node.clone();
    let name = step.name;
    let result = match tokio::time::timeout(timeout, (step.run)()).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{}`{name}` did not finish within {}",
            node.map(|node| format!("node `{node}`: "))
                .unwrap_or_default(),
            humantime::format_duration(timeout)
        )),
    };
    (index, result)
}

#[cfg(test)]
mod tests;
