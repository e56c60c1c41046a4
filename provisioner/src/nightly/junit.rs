//! The JUnit XML of a nightly run: one test suite, one test case per phase
//! per node (`classname` = node, `name` = phase), for CI systems to chart.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::summary::NightlySummary;

pub fn junit_xml(summary: &NightlySummary) -> Result<String, quick_junit::SerializeError> {
    let mut suite = TestSuite::new(format!("kiln nightly {}", summary.cluster));
    suite.set_time(Duration::from_secs_f64(summary.seconds));
    for case in &summary.cases {
        let status = match &case.failure {
            None => TestCaseStatus::success(),
            Some(reason) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(reason.as_str());
                status
            }
        };
        let mut test_case = TestCase::new(case.phase.as_str(), status);
        test_case
            .set_classname(case.node.as_str())
            .set_time(Duration::from_secs_f64(case.seconds));
        suite.add_test_case(test_case);
    }
    let mut report = Report::new(format!("kiln nightly ({})", summary.profile));
    report.add_test_suite(suite);
    report.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nightly::NightlyCase;

    #[test]
    fn one_case_per_phase_per_node_with_the_failure() {
        let mut summary = NightlySummary::new("lab-nightly", "nightly");
        summary.cases = vec![
            NightlyCase {
                node: "nightly-lab1".into(),
                phase: "clone".into(),
                seconds: 1.5,
                failure: None,
            },
            NightlyCase {
                node: "nightly-lab1".into(),
                phase: "boot".into(),
                seconds: 30.0,
                failure: Some("wait_ip: no address after 30 s <&>".into()),
            },
            NightlyCase::cluster("teardown", Duration::from_secs(2), None),
        ];
        summary.conclude(Duration::from_secs(40));
        assert!(!summary.passed);
        let xml = junit_xml(&summary).unwrap();
        assert!(xml.contains(r#"tests="3""#), "{xml}");
        assert!(xml.contains(r#"failures="1""#), "{xml}");
        assert!(
            xml.contains(r#"<testcase name="boot" classname="nightly-lab1" time="30.000">"#),
            "{xml}"
        );
        assert!(xml.contains("no address after 30 s &lt;&amp;&gt;"), "{xml}");
        assert!(xml.contains(r#"classname="cluster""#), "{xml}");
    }

    #[test]
    fn an_empty_run_does_not_pass() {
        let mut summary = NightlySummary::new("lab-nightly", "nightly");
        summary.conclude(Duration::ZERO);
        assert!(!summary.passed);
    }
}
