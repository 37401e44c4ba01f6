'use strict';
// sfcc-ci 2.13.0, unmodified, against the daemon's OCAPI job executions over HTTPS: its
// library (`job.run`, `job.status`) and its command line (`job:run -s -j`, `job:status -j`).
//
// sfcc-ci builds `https://HOST/s/-/dw/data/v19_5/...` from the instance host it is given, and
// trusts the daemon's certificate through NODE_EXTRA_CA_CERTS (it passes `strictSSL: true`).
// Its command line reads the token from its configuration store (`conf`, under
// $XDG_CONFIG_HOME/sfcc-ci-nodejs/config.json, key SFCC_CLIENT_TOKEN), which `client:auth`
// fills after an OAuth grant; no environment variable carries a token. The driver stores the
// daemon's token there through sfcc-ci's own config module, as `client:auth` would.
//
// Environment: COMPAT_RESULTS (the rows), COMPAT_HOST (localhost:PORT), COMPAT_TOKEN,
// COMPAT_SFCC_CI (the sfcc-ci executable). `node sfcc_ci.js untrusted` makes one call, which
// must be refused for the certificate (run without NODE_EXTRA_CA_CERTS).

const { execFile } = require('child_process');
const sfcc = require('sfcc-ci');
const { check, expect, finish, sleep } = require('./results');

const CLIENT = 'sfcc-ci 2.13.0';
const host = process.env.COMPAT_HOST;
const token = process.env.COMPAT_TOKEN;

/** `job.run` (library): starts an execution of `job` with the parameter outcome. */
function run(job, outcome) {
    return new Promise((resolve, reject) => {
        sfcc.job.run(host, job, { parameters: [{ name: 'outcome', value: outcome }] }, token,
            (err, res) => {
                if (err) {
                    reject(err);
                } else if (res.statusCode !== 200) {
                    reject(new Error(`HTTP ${res.statusCode}: ${JSON.stringify(res.body)}`));
                } else {
                    resolve(res.body);
                }
            });
    });
}

/** `job.status` (library): the execution document. */
function status(job, id) {
    return new Promise((resolve, reject) => {
        sfcc.job.status(host, job, id, token, (err, body) => {
            if (err || !body || body.fault) {
                reject(err || new Error(`fault: ${JSON.stringify(body)}`));
            } else {
                resolve(body);
            }
        });
    });
}

/** Polls `job.status` while the execution's status is RUNNING, as `job:run -s` does. */
async function finished(job, id) {
    const deadline = Date.now() + 30000;
    for (let polls = 1; ; polls += 1) {
        const execution = await status(job, id);
        if (execution.status !== 'RUNNING') {
            return { execution, polls };
        }
        expect(Date.now() < deadline, `execution ${id} still RUNNING after 30 s`);
        await sleep(200);
    }
}

/** Runs the sfcc-ci command line; answers its exit code, stdout and stderr. */
function exec(args) {
    return new Promise((resolve, reject) => {
        execFile(process.env.COMPAT_SFCC_CI, args, { timeout: 60000 }, (err, stdout, stderr) => {
            if (err && typeof err.code !== 'number') {
                reject(new Error(`sfcc-ci ${args.join(' ')}: ${err.message} ${stderr}`));
            } else {
                resolve({ code: err ? err.code : 0, stdout, stderr });
            }
        });
    });
}

/** Runs the sfcc-ci command line, which must exit 0; answers its stdout. */
async function cli(args) {
    const { code, stdout, stderr } = await exec(args);
    expect(code === 0, `sfcc-ci ${args.join(' ')} exited ${code}: ${stderr}`);
    return stdout;
}

/** The JSON document `-j` printed. */
function printed(stdout) {
    const start = stdout.indexOf('{');
    expect(start >= 0, `no JSON in the output: ${stdout}`);
    return JSON.parse(stdout.slice(start));
}

/** Checks a finished execution against the outcome asked. */
function expectOutcome(execution, outcome) {
    if (outcome === 'ok') {
        expect(execution.status === 'OK' && execution.exit_status.code === 'OK',
            `status ${execution.status}, exit_status ${JSON.stringify(execution.exit_status)}`);
        return 'OK';
    }
    const message = execution.exit_status && execution.exit_status.message;
    expect(execution.status === 'ERROR' && message === 'the parameter outcome asked to fail',
        `status ${execution.status}, exit_status ${JSON.stringify(execution.exit_status)}`);
    return `ERROR "${message}"`;
}

async function library() {
    // One definition, two executions in turn (a job runs one execution at a time).
    for (const outcome of ['ok', 'fail']) {
        const started = await check(CLIENT, `job.run compat-lib outcome=${outcome}`, async () => {
            const execution = await run('compat-lib', outcome);
            expect(execution.status === 'RUNNING' && execution.execution_status === 'running',
                `status ${execution.status}`);
            expect(execution.parameters[0].value === outcome, JSON.stringify(execution.parameters));
            return { detail: `execution ${execution.id} RUNNING`, id: execution.id };
        });
        if (!started) {
            continue;
        }
        await check(CLIENT, `job.status until not RUNNING, outcome=${outcome}`, async () => {
            const { execution, polls } = await finished('compat-lib', started.id);
            return `${expectOutcome(execution, outcome)} after ${polls} polls`;
        });
    }
}

async function commandLine() {
    await check(CLIENT, 'client:auth:token (token in its config store)', async () => {
        require('sfcc-ci/lib/config').obtain().set('SFCC_CLIENT_TOKEN', token);
        const stdout = await cli(['client:auth:token']);
        expect(stdout.trim() === token, `printed ${stdout.trim().slice(0, 12)}...`);
        return 'the stored token';
    });
    // A definition each, so that the executions wait at once (each `-s` polls every 5 s).
    const runs = ['ok', 'fail'].map((outcome) => check(CLIENT, `job:run -s -j outcome=${outcome}`,
        async () => {
            const stdout = await cli(['job:run', `compat-cli-${outcome}`, `outcome=${outcome}`,
                '-i', host, '-s', '-j']);
            const execution = printed(stdout);
            return { detail: expectOutcome(execution, outcome), id: execution.id };
        }));
    runs.push(check(CLIENT, 'job:run -s -f outcome=fail (exit status)', async () => {
        const { code, stdout, stderr } = await exec(['job:run', 'compat-cli-failfast',
            'outcome=fail', '-i', host, '-s', '-f']);
        expect(code === 1 && /Job ended with error/.test(stderr),
            `exit ${code}: ${stdout} ${stderr}`);
        expect(/Status is: finished \(ERROR\)/.test(stdout), stdout);
        return 'exit 1, "finished (ERROR)"';
    }));
    const [ok] = await Promise.all(runs);
    if (ok) {
        await check(CLIENT, 'job:status -j', async () => {
            const execution = printed(await cli(['job:status', 'compat-cli-ok', ok.id, '-i', host,
                '-j']));
            expect(execution.id === ok.id, `execution ${execution.id}`);
            return expectOutcome(execution, 'ok');
        });
    }
}

async function untrusted() {
    // job.run's callback is not called on a network error (sfcc-ci logs it and stops), so
    // the refusal is read from the request sfcc-ci's job module makes.
    const code = await new Promise((resolve) => {
        require('sfcc-ci/lib/job').runJob(host, 'compat-lib', null, token, (err) => {
            resolve(err ? err.code || err.message : 'accepted');
        });
    });
    process.stdout.write(`${code}\n`);
}

async function main() {
    if (process.argv[2] === 'untrusted') {
        await untrusted();
        return;
    }
    await Promise.all([library(), commandLine()]);
    await check(CLIENT, 'certificate refused without NODE_EXTRA_CA_CERTS', async () => {
        const env = { ...process.env };
        delete env.NODE_EXTRA_CA_CERTS;
        const code = await new Promise((resolve, reject) => {
            execFile(process.execPath, [__filename, 'untrusted'], { env, timeout: 30000 },
                (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
        });
        expect(/CERT|SELF_SIGNED|certificate/i.test(code), `the call ended with ${code}`);
        return code;
    });
    finish();
}

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
