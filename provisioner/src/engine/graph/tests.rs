use std::sync::Mutex;

use super::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        self.0.lock().expect("lock").push(event.clone());
    }
}

impl Recorder {
    fn finished(&self) -> Vec<(String, StepOutcome)> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|event| match event {
                Event::StepFinished {
                    node,
                    step,
                    outcome,
                    ..
                } => Some((
                    format!("{}/{step}", node.as_deref().unwrap_or("-")),
                    outcome.clone(),
                )),
                _ => None,
            })
            .collect()
    }
}

fn step(
    node: &str,
    name: &'static str,
    after: Vec<StepId>,
    work: impl Future<Output = Result<(), String>> + Send + 'static,
) -> Step {
    Step {
        node: Some(node.to_owned()),
        name,
        after,
        timeout: Duration::from_secs(5),
        abortable: false,
        run: Box::new(move || Box::pin(work)),
    }
}

fn quiet() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    std::mem::forget(sender);
    receiver
}

#[tokio::test]
async fn a_failed_step_skips_its_dependents_only() {
    let mut graph = Graph::default();
    let a1 = graph.add(step("a", "clone", vec![], async { Err("boom".to_owned()) }));
    graph.add(step("a", "start", vec![a1], async { Ok(()) }));
    let b1 = graph.add(step("b", "clone", vec![], async { Ok(()) }));
    graph.add(step("b", "start", vec![b1], async { Ok(()) }));
    let recorder = Arc::new(Recorder::default());
    let report = graph.run(Uuid::now_v7(), recorder.clone(), quiet()).await;
    assert_eq!(report.outcome, RunOutcome::Failed);
    assert_eq!(report.failures.len(), 1);
    let mut finished = recorder.finished();
    finished.sort_by(|left, right| left.0.cmp(&right.0));
    assert_eq!(
        finished,
        [
            ("a/clone".to_owned(), StepOutcome::Failed("boom".to_owned())),
            (
                "a/start".to_owned(),
                StepOutcome::Skipped("`clone` failed".to_owned())
            ),
            ("b/clone".to_owned(), StepOutcome::Succeeded),
            ("b/start".to_owned(), StepOutcome::Succeeded),
        ]
    );
}

#[tokio::test]
async fn independent_steps_run_at_the_same_time() {
    let mut graph = Graph::default();
    for node in ["a", "b", "c", "d"] {
        graph.add(step(node, "wait", vec![], async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        }));
    }
    let report = graph
        .run(Uuid::now_v7(), Arc::new(Recorder::default()), quiet())
        .await;
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    assert!(
        report.elapsed < Duration::from_millis(600),
        "ran one after the other: {:?}",
        report.elapsed
    );
}

#[tokio::test]
async fn a_step_that_hangs_times_out_naming_node_and_step() {
    let mut graph = Graph::default();
    let mut hanging = step("a", "wait_ip", vec![], std::future::pending());
    hanging.timeout = Duration::from_millis(50);
    graph.add(hanging);
    let report = graph
        .run(Uuid::now_v7(), Arc::new(Recorder::default()), quiet())
        .await;
    assert_eq!(
        report.failures[0].message,
        "node `a`: `wait_ip` did not finish within 50ms"
    );
}

#[tokio::test]
async fn an_interrupt_lets_running_steps_finish_and_starts_nothing_new() {
    let (interrupt, receiver) = watch::channel(false);
    let mut graph = Graph::default();
    let first = graph.add(step("a", "clone", vec![], async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }));
    graph.add(step("a", "start", vec![first], async { Ok(()) }));
    let recorder = Arc::new(Recorder::default());
    let running = tokio::spawn(graph.run(Uuid::now_v7(), recorder.clone(), receiver));
    tokio::time::sleep(Duration::from_millis(20)).await;
    interrupt.send(true).expect("send");
    let report = running.await.expect("join");
    assert_eq!(report.outcome, RunOutcome::Interrupted);
    assert_eq!(
        recorder.finished(),
        [
            ("a/clone".to_owned(), StepOutcome::Succeeded),
            (
                "a/start".to_owned(),
                StepOutcome::Skipped("the run was interrupted".to_owned())
            ),
        ]
    );
}

#[tokio::test]
async fn an_interrupt_stops_a_step_that_only_waits() {
    let (interrupt, receiver) = watch::channel(false);
    let mut graph = Graph::default();
    let mut waiting = step("a", "wait_ip", vec![], std::future::pending());
    waiting.abortable = true;
    graph.add(waiting);
    let recorder = Arc::new(Recorder::default());
    let running = tokio::spawn(graph.run(Uuid::now_v7(), recorder.clone(), receiver));
    tokio::time::sleep(Duration::from_millis(20)).await;
    interrupt.send(true).expect("send");
    let report = tokio::time::timeout(Duration::from_secs(2), running)
        .await
        .expect("the wait was stopped")
        .expect("join");
    assert_eq!(report.outcome, RunOutcome::Interrupted);
    assert_eq!(
        recorder.finished(),
        [(
            "a/wait_ip".to_owned(),
            StepOutcome::Skipped("stopped by the interrupt (it was only waiting)".to_owned())
        )]
    );
}
