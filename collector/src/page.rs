//! The status page: one HTML document, no external assets (the collector
//! may sit on a network without internet), refreshing itself. Every value
//! from a report is escaped: node names, check names and details come from
//! hosts.

use std::fmt::Write as _;

use kiln_agent::report::Status;

use crate::nodes::NodeView;
use crate::state::NodeState;

/// Seconds between the page's own reloads.
pub const REFRESH_SECS: u32 = 10;

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.4rem; margin-bottom: 0.2rem; }
p.summary { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 0.45rem 0.7rem; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
.state { font-weight: 600; padding: 0.1rem 0.5rem; border-radius: 0.6rem; }
.healthy { background: #d8f5dd; color: #145a24; }
.degraded { background: #fff1c2; color: #6b4e00; }
.failing { background: #ffd9d6; color: #8a1208; }
.stale, .unknown { background: #e6e6e6; color: #444; }
ul.checks { margin: 0; padding-left: 1rem; }
.empty { color: #777; font-style: italic; }
";

/// The page for `nodes`, generated at the wall-clock time `generated_at`
/// (already formatted).
pub fn render(nodes: &[NodeView], generated_at: &str) -> String {
    let mut html = String::with_capacity(4096 + nodes.len() * 512);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>kiln — node status</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>kiln — node status</h1>\n<p class=\"summary\">{summary} · generated {generated}</p>\n",
        summary = escape(&summary(nodes)),
        generated = escape(generated_at),
    );
    if nodes.is_empty() {
        html.push_str("<p class=\"empty\">No nodes yet: issue a token with <code>kiln agent token NODE</code> or install the agents.</p>\n");
    } else {
        html.push_str(
            "<table id=\"nodes\">\n<thead><tr><th>Cluster</th><th>Node</th><th>State</th>\
             <th>Last report</th><th>Agent</th><th>Checks not ok</th></tr></thead>\n<tbody>\n",
        );
        for node in nodes {
            row(&mut html, node);
        }
        html.push_str("</tbody>\n</table>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}

fn row(html: &mut String, node: &NodeView) {
    let state = node.state.as_str();
    let _ = write!(
        html,
        "<tr data-node=\"{name}\" data-state=\"{state}\"><td>{cluster}</td><td>{name}</td>\
         <td><span class=\"state {state}\">{state}</span></td><td>{age}</td><td>{agent}</td><td>",
        name = escape(&node.node),
        cluster = escape(&node.cluster),
        age = escape(&age(node.last_report_age_secs)),
        agent = escape(node.agent_version.as_deref().unwrap_or("-")),
    );
    let bad: Vec<_> = node
        .checks
        .iter()
        .filter(|check| check.status != Status::Ok)
        .collect();
    if bad.is_empty() {
        html.push('-');
    } else {
        html.push_str("<ul class=\"checks\">");
        for check in bad {
            let _ = write!(
                html,
                "<li><strong>{status}</strong> {name}: {detail}</li>",
                status = check.status.as_str(),
                name = escape(&check.name),
                detail = escape(&check.detail),
            );
        }
        html.push_str("</ul>");
    }
    html.push_str("</td></tr>\n");
}

fn summary(nodes: &[NodeView]) -> String {
    let parts: Vec<String> = NodeState::ALL
        .iter()
        .filter_map(|state| {
            let count = nodes.iter().filter(|node| node.state == *state).count();
            (count > 0).then(|| format!("{count} {state}"))
        })
        .collect();
    if parts.is_empty() {
        "no nodes".to_owned()
    } else {
        format!("{} nodes: {}", nodes.len(), parts.join(", "))
    }
}

/// `12s ago`, `3m ago`, `2h ago`, or `never`.
pub fn age(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds else {
        return "never".to_owned();
    };
    let whole = seconds.max(0.0).round();
    if whole < 120.0 {
        format!("{whole:.0}s ago")
    } else if whole < 7200.0 {
        format!("{:.0}m ago", (whole / 60.0).floor())
    } else if whole < 172_800.0 {
        format!("{:.0}h ago", (whole / 3600.0).floor())
    } else {
        format!("{:.0}d ago", (whole / 86_400.0).floor())
    }
}

/// Text made safe for element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use kiln_agent::report::Check;

    use super::*;

    fn node(name: &str, state: NodeState, checks: Vec<Check>) -> NodeView {
        NodeView {
            cluster: "home".into(),
            node: name.into(),
            state,
            last_report_age_secs: Some(4.2),
            received_at_ms: Some(1),
            sequence: Some(1),
            interval_secs: Some(15),
            agent_version: Some("0.1.0".into()),
            checks,
        }
    }

    #[test]
    fn values_from_reports_are_escaped() {
        let evil = node(
            "<script>alert(1)</script>",
            NodeState::Failing,
            vec![Check {
                name: "command.\"x\"".into(),
                status: Status::Fail,
                detail: "<img src=x onerror=alert(1)> & 'more'".into(),
            }],
        );
        let html = render(&[evil], "now");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("command.&quot;x&quot;"));
        assert!(html.contains("&amp; &#39;more&#39;"));
    }

    #[test]
    fn the_page_refreshes_itself_and_loads_nothing_else() {
        let html = render(&[node("cp1", NodeState::Healthy, vec![])], "now");
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        for external in ["src=", "href=", "@import", "url("] {
            assert!(!html.contains(external), "{external} in {html}");
        }
        assert!(html.contains("data-node=\"cp1\" data-state=\"healthy\""));
        assert!(html.contains("1 nodes: 1 healthy"));
    }

    #[test]
    fn only_checks_that_are_not_ok_are_listed() {
        let checks = vec![
            Check {
                name: "unit.sshd".into(),
                status: Status::Ok,
                detail: "active".into(),
            },
            Check {
                name: "system.disk".into(),
                status: Status::Warn,
                detail: "/ at 91%".into(),
            },
        ];
        let html = render(&[node("w1", NodeState::Degraded, checks)], "now");
        assert!(html.contains("system.disk: / at 91%"));
        assert!(!html.contains("unit.sshd"));
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(None), "never");
        assert_eq!(age(Some(4.4)), "4s ago");
        assert_eq!(age(Some(600.0)), "10m ago");
        assert_eq!(age(Some(10_800.0)), "3h ago");
        assert_eq!(age(Some(259_200.0)), "3d ago");
    }
}
