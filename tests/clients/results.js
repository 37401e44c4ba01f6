'use strict';
// The rows the JavaScript drivers add to the suite's table: one tab-separated line per call,
// `client, call, ok|FAILED, what was seen`, appended to the file named by COMPAT_RESULTS.

const fs = require('fs');

let failures = 0;

/** Appends one row. */
function record(client, call, ok, detail) {
    const line = [client, call, ok ? 'ok' : 'FAILED', String(detail).replace(/\s+/g, ' ')];
    fs.appendFileSync(process.env.COMPAT_RESULTS, line.join('\t') + '\n');
    if (!ok) {
        failures += 1;
    }
}

/**
 * Runs one check: `fn` answers what it saw (a row `ok`) or throws why it is wrong (a row
 * `FAILED`). Answers what `fn` answered, or undefined when it threw.
 */
async function check(client, call, fn) {
    const started = Date.now();
    try {
        const seen = await fn();
        const detail = typeof seen === 'object' ? seen.detail : seen;
        record(client, call, true, `${detail} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
        return seen;
    } catch (err) {
        record(client, call, false, err && err.stack ? err.message : String(err));
        return undefined;
    }
}

/** Throws `message` unless `condition` holds. */
function expect(condition, message) {
    if (!condition) {
        throw new Error(message);
    }
}

/** Sets the process's exit code from the rows it added. */
function finish() {
    process.exitCode = failures === 0 ? 0 : 1;
}

/** Resolves after `ms` milliseconds. */
function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

module.exports = { check, expect, finish, record, sleep };
