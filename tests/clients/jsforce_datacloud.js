'use strict';
// @jsforce/jsforce-node 3.10.16, unmodified, its Bulk API 2.0 ingest jobs (`conn.bulk2`)
// against the daemon's Data Cloud ingest API (`/api/v1/ingest/jobs`) over HTTPS: open, a
// chunked upload (a records array, and a stream of CSV lines), close, poll to JobComplete and
// to Failed.
//
// jsforce builds every ingest URL as `new URL('/services/data/v' + version + '/jobs/ingest'
// + path, instanceUrl)`: an absolute path, so neither the instance URL's path nor the
// version can move it. The connection's transport (every request jsforce sends goes through
// it) is wrapped to send `/services/data/vNN.N/jobs/ingest...` to `/api/v1/ingest/jobs...`,
// the only change to what jsforce sends (docs/dialect-datacloud.md, "Clients"). The daemon's
// certificate is trusted through NODE_EXTRA_CA_CERTS.
//
// Environment: COMPAT_RESULTS, COMPAT_HOST (localhost:PORT), COMPAT_TOKEN. `node
// jsforce_datacloud.js untrusted` makes one call, which must be refused for the certificate (run
// without NODE_EXTRA_CA_CERTS).

const { execFile } = require('child_process');
const { Readable } = require('stream');
const jsforce = require('@jsforce/jsforce-node');
const { check, expect, finish } = require('./results');

const CLIENT = 'jsforce-node 3.10.16';
const RECORDS = 2000;

/** Whether each upload (by URL) announced a Content-Length; without one it is chunked. */
const uploads = new Map();

/** A connection to the daemon whose ingest requests go to the Data Cloud paths. */
function connect() {
    const conn = new jsforce.Connection({
        instanceUrl: `https://${process.env.COMPAT_HOST}`,
        accessToken: process.env.COMPAT_TOKEN,
        version: '59.0',
    });
    const transport = conn._transport;
    conn._transport = {
        httpRequest(request, options) {
            request.url = request.url.replace(/\/services\/data\/v[0-9.]+\/jobs\/ingest/,
                '/api/v1/ingest/jobs');
            if (request.method === 'PUT') {
                uploads.set(request.url, Object.keys(request.headers || {})
                    .some((name) => name.toLowerCase() === 'content-length'));
            }
            return transport.httpRequest(request, options);
        },
    };
    return conn;
}

/** The records of a job: one in the middle asks to fail when `outcome` is fail. */
function records(outcome) {
    return Array.from({ length: RECORDS }, (_, i) => ({
        Id: String(i + 1),
        name: `contact ${i + 1}`,
        outcome: outcome === 'fail' && i === RECORDS / 2 ? 'fail' : 'ok',
    }));
}

/** The same records as CSV lines, streamed one line per chunk. */
function csvStream(rows) {
    const lines = ['Id,name,outcome\n', ...rows.map((r) => `${r.Id},${r.name},${r.outcome}\n`)];
    return Readable.from(lines);
}

async function ingest(conn, outcome) {
    const job = conn.bulk2.createJob({ object: 'Contact', sourceName: 'compat', operation: 'upsert' });
    // Every failure also rejects the call that met it; keep the emitter from throwing.
    job.on('error', () => {});
    const opened = await check(CLIENT, `bulk2.createJob().open() outcome=${outcome}`, async () => {
        const info = await job.open();
        expect(info.state === 'Open' && info.id, JSON.stringify(info));
        return `job ${info.id} Open`;
    });
    if (!opened) {
        return;
    }
    const input = outcome === 'ok' ? records(outcome) : csvStream(records(outcome));
    const how = outcome === 'ok' ? 'records array' : 'stream of CSV lines';
    const uploaded = await check(CLIENT, `uploadData (${how}, chunked) outcome=${outcome}`,
        async () => {
            await job.uploadData(input);
            const url = [...uploads.keys()].find((u) => u.endsWith(`/jobs/${job.id}/batches`));
            expect(url, 'no PUT .../batches was sent');
            expect(!uploads.get(url), 'the upload announced a Content-Length: not chunked');
            return `${RECORDS} records, Transfer-Encoding: chunked`;
        });
    if (!uploaded) {
        return;
    }
    const closed = await check(CLIENT, `close() outcome=${outcome}`, async () => {
        await job.close();
        const state = job.getInfo().state;
        expect(state === 'UploadComplete' || state === 'InProgress', `state ${state}`);
        return state;
    });
    if (!closed) {
        return;
    }
    if (outcome === 'ok') {
        await check(CLIENT, 'poll() to JobComplete', async () => {
            await job.poll(200, 30000);
            const info = job.getInfo();
            expect(info.state === 'JobComplete' && info.numberRecordsProcessed === RECORDS,
                JSON.stringify(info));
            return `JobComplete, numberRecordsProcessed ${info.numberRecordsProcessed}`;
        });
    } else {
        await check(CLIENT, 'poll() to Failed (rejects)', async () => {
            let rejected;
            try {
                await job.poll(200, 30000);
            } catch (err) {
                rejected = err;
            }
            const info = job.getInfo();
            expect(rejected && rejected.name !== 'JobPollingTimeout',
                `poll ${rejected ? rejected.message : 'resolved'}`);
            expect(info.state === 'Failed' && info.numberRecordsFailed === 1,
                JSON.stringify(info));
            expect(rejected.message ===
                `Ingest job failed to complete due to: 1 of ${RECORDS} records asked to fail`,
            rejected.message);
            return `Failed: "${rejected.message}"`;
        });
    }
}

async function untrusted() {
    try {
        await connect().bulk2.job('ingest', { id: '1' }).check();
        process.stdout.write('accepted\n');
    } catch (err) {
        process.stdout.write(`${err.code || err.errorCode || err.message}\n`);
    }
}

async function main() {
    if (process.argv[2] === 'untrusted') {
        await untrusted();
        return;
    }
    const conn = connect();
    await Promise.all([ingest(conn, 'ok'), ingest(conn, 'fail')]);
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
