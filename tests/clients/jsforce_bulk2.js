'use strict';
// @jsforce/jsforce-node 3.10.16, unmodified and unredirected, against the daemon's Salesforce
// Bulk API 2.0 (`/services/data/vNN.N/jobs/ingest` and `…/jobs/query`) over HTTPS:
// `conn.bulk2.loadAndWaitForResults` (records processed, failed and unprocessed, from the
// per-record results), an ingest job step by step (`createJob`, `open`, `uploadData`, `close`,
// `poll`, `getSuccessfulResults`, `getFailedResults`, `getUnprocessedRecords`, `delete`), a job
// the worker fails (`poll` rejects with the job's error), and `conn.bulk2.query` read to the
// end. The jobs are run by `jobstore worker` with job.py (`COMPAT_API=bulk2`).
//
// Environment: COMPAT_RESULTS, COMPAT_HOST (localhost:PORT), COMPAT_TOKEN; the daemon's
// certificate is trusted through NODE_EXTRA_CA_CERTS.

const jsforce = require('@jsforce/jsforce-node');
const { check, expect, finish } = require('./results');

const CLIENT = 'jsforce-node 3.10.16 (Bulk API 2.0)';

function connect() {
    const conn = new jsforce.Connection({
        instanceUrl: `https://${process.env.COMPAT_HOST}`,
        accessToken: process.env.COMPAT_TOKEN,
        version: '59.0',
    });
    conn.bulk2.pollInterval = 200;
    conn.bulk2.pollTimeout = 60000;
    return conn;
}

/** `n` contacts; the records named in `outcomes` (by index) get that outcome. */
function contacts(n, outcomes = {}) {
    return Array.from({ length: n }, (_, i) => ({
        LastName: `Contact ${i + 1}`,
        Email: `c${i + 1}@example.com`,
        outcome: outcomes[i] || 'ok',
    }));
}

async function loadAndWait(conn) {
    await check(CLIENT, 'bulk2.loadAndWaitForResults (insert)', async () => {
        const results = await conn.bulk2.loadAndWaitForResults({
            object: 'Contact',
            operation: 'insert',
            input: contacts(500, { 10: 'fail', 20: 'fail', 30: 'skip' }),
        });
        const { successfulResults, failedResults, unprocessedRecords } = results;
        expect(successfulResults.length === 497, `successful ${successfulResults.length}`);
        expect(failedResults.length === 2, `failed ${failedResults.length}`);
        expect(unprocessedRecords.length === 1, `unprocessed ${unprocessedRecords.length}`);
        expect(successfulResults.every((r) => r.sf__Id && r.sf__Created === 'true'),
            JSON.stringify(successfulResults[0]));
        expect(failedResults[0].LastName === 'Contact 11' &&
            failedResults[0].sf__Error.startsWith('FIELD_CUSTOM_VALIDATION_EXCEPTION'),
        JSON.stringify(failedResults[0]));
        expect(unprocessedRecords[0].LastName === 'Contact 31',
            JSON.stringify(unprocessedRecords[0]));
        return 'successful 497, failed 2, unprocessed 1';
    });
}

async function stepByStep(conn) {
    const job = conn.bulk2.createJob({
        object: 'Contact',
        operation: 'upsert',
        externalIdFieldName: 'Email',
        lineEnding: 'LF',
    });
    job.on('error', () => {});
    const opened = await check(CLIENT, 'bulk2.createJob(upsert).open()', async () => {
        const info = await job.open();
        expect(info.state === 'Open' && info.externalIdFieldName === 'Email', JSON.stringify(info));
        return `job ${info.id} Open, externalIdFieldName Email`;
    });
    if (!opened) {
        return;
    }
    const steps = await check(CLIENT, 'uploadData, close, poll to JobComplete', async () => {
        await job.uploadData(contacts(1000, { 999: 'fail' }));
        await job.close();
        await job.poll();
        const info = await job.check();
        expect(info.state === 'JobComplete' && info.numberRecordsProcessed === 1000 &&
            info.numberRecordsFailed === 1, JSON.stringify(info));
        return 'JobComplete, numberRecordsProcessed 1000, numberRecordsFailed 1';
    });
    if (!steps) {
        return;
    }
    await check(CLIENT, 'getSuccessfulResults, getFailedResults, getUnprocessedRecords',
        async () => {
            const successful = await job.getSuccessfulResults();
            const failed = await job.getFailedResults();
            const unprocessed = await job.getUnprocessedRecords();
            expect(successful.length === 999, `successful ${successful.length}`);
            expect(failed.length === 1 && failed[0].Email === 'c1000@example.com',
                JSON.stringify(failed));
            expect(unprocessed.length === 0, `unprocessed ${unprocessed.length}`);
            return 'successful 999, failed 1 (c1000@example.com), unprocessed 0';
        });
    await check(CLIENT, 'delete()', async () => {
        await job.delete();
        let gone;
        try {
            await job.check();
        } catch (err) {
            gone = err;
        }
        expect(gone && gone.errorCode === 'NOT_FOUND', `after delete: ${gone && gone.errorCode}`);
        return 'deleted; its info is then NOT_FOUND';
    });
}

async function failing(conn) {
    const job = conn.bulk2.createJob({ object: 'Contact', operation: 'insert' });
    job.on('error', () => {});
    await check(CLIENT, 'poll() of a job the worker fails (rejects)', async () => {
        await job.open();
        await job.uploadData(contacts(3, { 1: 'fatal' }));
        await job.close();
        let rejected;
        try {
            await job.poll();
        } catch (err) {
            rejected = err;
        }
        expect(rejected && /record 2 asked the whole job to fail/.test(rejected.message),
            `poll ${rejected ? rejected.message : 'resolved'}`);
        const info = await job.check();
        expect(info.state === 'Failed', JSON.stringify(info));
        return `Failed: "${rejected.message}"`;
    });
}

async function query(conn) {
    await check(CLIENT, 'bulk2.query (one page, read to the end)', async () => {
        const stream = await conn.bulk2.query('SELECT Id, Name FROM Account LIMIT 120');
        const records = await stream.toArray();
        expect(records.length === 120, `${records.length} records`);
        expect(records[0].Id === '001000000000000001' && records[0].Name === 'Name 1, "quoted"',
            JSON.stringify(records[0]));
        expect(new Set(records.map((r) => r.Id)).size === 120, 'records repeated');
        return '120 records';
    });
    await check(CLIENT, 'bulk2.query of a failing query (rejects)', async () => {
        try {
            await conn.bulk2.query('SELECT Id FROM Fail');
        } catch (err) {
            // jsforce words every failed query job alike (the vendor's query job info has no
            // errorMessage to read, it says); the job's own error is on its info.
            expect(/Query job failed to complete/.test(err.message), err.message);
            return `rejects: "${err.message}"`;
        }
        throw new Error('the query resolved');
    });
}

async function main() {
    const conn = connect();
    await Promise.all([loadAndWait(conn), stepByStep(conn), failing(conn), query(conn)]);
    finish();
}

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
