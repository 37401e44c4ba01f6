//! Names the process that uploads a batch, so that another process can tell whether that
//! upload can still finish. SQLite's WAL mode keeps every process of one file on one machine,
//! so a process id (with its start time, against reuse) names it.

use std::sync::OnceLock;

/// This process as `"pid:start-time"`, or `None` where `/proc` cannot tell its start time.
pub(crate) fn this_process() -> Option<&'static str> {
    static TAG: OnceLock<Option<String>> = OnceLock::new();
    TAG.get_or_init(|| tag_of(std::process::id())).as_deref()
}

/// Whether the process named by `tag` is still running. A tag that does not parse is
/// taken as running: only a certainly dead uploader's batches are deleted.
pub(crate) fn is_running(tag: &str) -> bool {
    let Some(pid) = tag
        .split(':')
        .next()
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return true;
    };
    if this_process() == Some(tag) {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => start_time(&stat).is_some_and(|start| tag == format!("{pid}:{start}")),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        // Unreadable for another reason: assume it runs.
        Err(_) => true,
    }
}

fn tag_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(format!("{pid}:{}", start_time(&stat)?))
}

/// Field 22 of `/proc/PID/stat`, the start time in clock ticks since boot. The command
/// name (field 2) is in parentheses and may hold spaces, so count after its last `)`.
fn start_time(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_dead_or_reused_pid_does_not() {
        let me = this_process().unwrap_or_else(|| panic!("no /proc here"));
        assert!(is_running(me));
        let pid = me.split(':').next().unwrap_or_default();
        assert!(!is_running(&format!("{pid}:1")), "same pid, other start");
        // pid_max is at most 2^22 on Linux.
        assert!(!is_running("4194305:1"));
        assert!(is_running("not a tag"));
    }

    #[test]
    fn the_start_time_is_read_past_a_command_name_with_spaces() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 0";
        assert_eq!(start_time(stat), Some(987_654));
    }
}
