//! The line protocol a job's command may print on stdout to report what richer workers report.
//!
//! A line starting with `##jobstore ` is a report, not a log line:
//!
//! ```text
//! ##jobstore progress {"numberRecordsProcessed": 500}   merged into the job's progress
//! ##jobstore phase update                               the job's phase text
//! ##jobstore step export-catalog start                  a step started
//! ##jobstore step export-catalog ok [CODE] [message]    a step finished well (CODE default OK)
//! ##jobstore step export-catalog error [CODE] [message] a step failed (CODE default ERROR)
//! ##jobstore result {"exported": 500}                   the job's result document
//! ##jobstore fatal [message]                            do not retry when the command fails
//! ```
//!
//! Every other line (and a malformed report, with a warning) goes to the job's log. A progress
//! or result report holding a number that would not be stored exactly (an integer beyond 64
//! bits, a fraction finer than a 64-bit float) is malformed: the command must send it as a
//! string.

use serde_json::Value;

/// The prefix that marks a report line.
pub(crate) const PREFIX: &str = "##jobstore ";

/// One report from the command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Report {
    /// Counters to merge into the progress document.
    Progress(Value),
    /// A new phase text.
    Phase(String),
    /// A step started.
    StepStart(String),
    /// A step finished.
    StepEnd {
        /// The step id.
        step: String,
        /// Whether it went well.
        ok: bool,
        /// Its exit code.
        code: String,
        /// A message.
        message: Option<String>,
    },
    /// The result document.
    Result(Value),
    /// The failure is final.
    Fatal(Option<String>),
}

/// What a stdout line is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line {
    /// A report.
    Report(Report),
    /// A line for the log.
    Log(String),
    /// A line that looked like a report but is not one; logged with the reason.
    Malformed {
        /// The line.
        line: String,
        /// What is wrong.
        reason: String,
    },
}

/// Classifies one stdout line (without its newline).
pub(crate) fn parse(line: &str) -> Line {
    let Some(rest) = line.strip_prefix(PREFIX) else {
        return Line::Log(line.to_owned());
    };
    let malformed = |reason: &str| Line::Malformed {
        line: line.to_owned(),
        reason: reason.to_owned(),
    };
    let (command, args) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
    let args = args.trim();
    // A number that would not come back as written is refused, not sent altered.
    if matches!(command, "progress" | "result")
        && let Err(reason) = jobstore::exact_json::check_numbers(args.as_bytes())
    {
        return malformed(&reason);
    }
    match command {
        "progress" => match serde_json::from_str::<Value>(args) {
            Ok(value) if value.is_object() => Line::Report(Report::Progress(value)),
            _ => malformed("progress needs a JSON object"),
        },
        "phase" if !args.is_empty() => Line::Report(Report::Phase(args.to_owned())),
        "phase" => malformed("phase needs a text"),
        "result" => match serde_json::from_str::<Value>(args) {
            Ok(value) => Line::Report(Report::Result(value)),
            Err(_) => malformed("result needs a JSON document"),
        },
        "fatal" => Line::Report(Report::Fatal((!args.is_empty()).then(|| args.to_owned()))),
        "step" => {
            let mut words = args.splitn(4, ' ');
            let (Some(step), Some(what)) = (words.next(), words.next()) else {
                return malformed("step needs an id and start, ok or error");
            };
            let code = words.next();
            let message = words.next().map(str::to_owned);
            match what {
                "start" => Line::Report(Report::StepStart(step.to_owned())),
                "ok" | "error" => Line::Report(Report::StepEnd {
                    step: step.to_owned(),
                    ok: what == "ok",
                    code: code
                        .unwrap_or(if what == "ok" { "OK" } else { "ERROR" })
                        .to_owned(),
                    message,
                }),
                _ => malformed("a step is start, ok or error"),
            }
        }
        _ => malformed("unknown report; known: progress, phase, step, result, fatal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_parse() {
        assert_eq!(
            parse(r#"##jobstore progress {"a": 1}"#),
            Line::Report(Report::Progress(json!({"a": 1})))
        );
        assert_eq!(
            parse("##jobstore phase update"),
            Line::Report(Report::Phase("update".into()))
        );
        assert_eq!(
            parse("##jobstore step s1 start"),
            Line::Report(Report::StepStart("s1".into()))
        );
        assert_eq!(
            parse("##jobstore step s1 error E42 disk full again"),
            Line::Report(Report::StepEnd {
                step: "s1".into(),
                ok: false,
                code: "E42".into(),
                message: Some("disk full again".into()),
            })
        );
        assert_eq!(
            parse("##jobstore step s1 ok"),
            Line::Report(Report::StepEnd {
                step: "s1".into(),
                ok: true,
                code: "OK".into(),
                message: None,
            })
        );
        assert_eq!(
            parse(r#"##jobstore result [1, 2]"#),
            Line::Report(Report::Result(json!([1, 2])))
        );
        assert_eq!(
            parse("##jobstore fatal bad input"),
            Line::Report(Report::Fatal(Some("bad input".into())))
        );
        assert_eq!(parse("hello"), Line::Log("hello".into()));
    }

    #[test]
    fn malformed_reports_are_named() {
        for line in [
            "##jobstore progress [1]",
            "##jobstore progress",
            "##jobstore phase",
            "##jobstore result {",
            "##jobstore step s1",
            "##jobstore step s1 maybe",
            "##jobstore explode",
        ] {
            assert!(matches!(parse(line), Line::Malformed { .. }), "{line}");
        }
    }

    #[test]
    fn numbers_that_would_change_are_refused_not_altered() {
        for line in [
            r#"##jobstore result {"n": 123456789012345678901234567890}"#,
            r#"##jobstore result [1.00000000000000000001]"#,
            r#"##jobstore progress {"rows": 1e400}"#,
            r#"##jobstore progress {"rows": 18446744073709551616}"#,
        ] {
            match parse(line) {
                Line::Malformed { reason, .. } => {
                    assert!(reason.contains("cannot be stored exactly"), "{reason}");
                    assert!(reason.contains("as a string"), "{reason}");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
        assert_eq!(
            parse(
                r#"##jobstore result {"n": 18446744073709551615, "i": -9223372036854775808, "f": 0.1}"#
            ),
            Line::Report(Report::Result(
                json!({"n": u64::MAX, "i": i64::MIN, "f": 0.1})
            ))
        );
        assert_eq!(
            parse(r#"##jobstore progress {"n": "123456789012345678901234567890"}"#),
            Line::Report(Report::Progress(
                json!({"n": "123456789012345678901234567890"})
            ))
        );
        // Other reports' text is not JSON.
        assert_eq!(
            parse("##jobstore phase 123456789012345678901234567890"),
            Line::Report(Report::Phase("123456789012345678901234567890".into()))
        );
    }
}
