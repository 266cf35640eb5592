//! Reads back the Prometheus text this process renders, so the status
//! page shows exactly what `/metrics` shows, with no second set of
//! counters to keep in step.

/// One sample line: `name{label="value",...} number`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with a histogram's `_bucket`/`_sum`/`_count` suffix).
    pub name: String,
    /// Labels in written order, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses the sample lines of a text exposition; comments and lines that
/// do not parse are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        loop {
            // key
            let key_start = chars.clone().next()?.0;
            let (eq, _) = chars.by_ref().find(|(_, c)| *c == '=' || *c == '}')?;
            if body[key_start..eq].is_empty() {
                rest = &body[eq + 1..];
                break;
            }
            let key = body[key_start..eq].trim_start_matches(',').to_owned();
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key, value));
            match chars.next()? {
                (i, '}') => {
                    rest = &body[i + 1..];
                    break;
                }
                (_, ',') => {
                    if let Some((i, '}')) = chars.clone().next() {
                        rest = &body[i + 1..];
                        break;
                    }
                }
                _ => return None,
            }
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample { name, labels, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected name, labels and value of a line.
    type Expected<'a> = Option<(&'a str, &'a [(&'a str, &'a str)], f64)>;

    fn check(line: &str, expected: Expected<'_>) {
        let got = parse_line(line);
        let want = expected.map(|(n, l, v)| Sample {
            name: n.into(),
            labels: l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value: v,
        });
        assert_eq!(got, want, "{line}");
    }

    #[test]
    fn sample_lines() {
        check("cardlink_duplicates_total 7", Some(("cardlink_duplicates_total", &[], 7.0)));
        check(
            "cardlink_rewards_total{status=\"PENDING\",kind=\"cash\"} 12",
            Some(("cardlink_rewards_total", &[("status", "PENDING"), ("kind", "cash")], 12.0)),
        );
        check(
            r#"cardlink_offer_budget_used_ratio{offer="a \"b\" \\c"} 0.5"#,
            Some(("cardlink_offer_budget_used_ratio", &[("offer", "a \"b\" \\c")], 0.5)),
        );
        check(
            "cardlink_match_seconds_bucket{le=\"+Inf\"} 3",
            Some(("cardlink_match_seconds_bucket", &[("le", "+Inf")], 3.0)),
        );
        check("x{a=\"1\",} 2.5", Some(("x", &[("a", "1")], 2.5)));
        check("x{} 1", Some(("x", &[], 1.0)));
        check("x{a=1} 2", None);
        check("x", None);
        assert_eq!(parse("# HELP x y\n# TYPE x counter\nx 1\n\n").len(), 1);
    }
}
