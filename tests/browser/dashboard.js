// The dashboard read and used in a real Chromium, against the real daemon that tests/browser/run
// started. Each check adds a row to the table printed at the end; any failure exits 1.
//
// Environment (set by run): DASH_URL (the daemon with tokens), DASH_OPEN_URL (one without),
// DASH_OPS_TOKEN (read,write), DASH_VIEWER_TOKEN (read), DASH_WORKER_TOKEN (work), all of
// tenant acme; DASH_OTHER_TOKEN (tenant globex); DASH_CHROMIUM; DASH_SCREENSHOTS.
'use strict';

const path = require('path');
const { chromium } = require('playwright-core');

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env('DASH_URL');
const OPEN_BASE = env('DASH_OPEN_URL');
const OPS = env('DASH_OPS_TOKEN');
const VIEWER = env('DASH_VIEWER_TOKEN');
const WORK = env('DASH_WORKER_TOKEN');
const OTHER = env('DASH_OTHER_TOKEN');
const SHOTS = env('DASH_SCREENSHOTS');

const results = [];
function check(name, ok, seen) {
  results.push({ name, ok: Boolean(ok), seen: String(seen ?? '') });
  if (!ok) console.error(`FAILED: ${name}: ${seen}`);
}

// ---- the native API, for the setup and for checking what the page did -------------------

async function api(method, route, token, body, raw) {
  const headers = { Authorization: `Bearer ${token}` };
  let payload;
  if (raw !== undefined) {
    payload = raw;
    headers['Content-Type'] = 'text/csv';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(BASE + route, { method, headers, body: payload });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
const create = (body, token = OPS) => api('POST', '/v1/jobs', token, body);
const claim = (queues, max, leaseMs) => api('POST', '/v1/claim', WORK, {
  worker: 'demo-worker', queues, max, lease_ms: leaseMs || 600000,
}).then((answer) => answer.jobs);
const byWorker = (job) => ({ worker: 'demo-worker', lease_token: job.lease_token });

async function until(what, probe, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function setup() {
  const jobs = {};
  // Queued (three due, one scheduled for tomorrow) in a queue no worker serves.
  jobs.queued = [];
  for (const n of [1, 2, 3]) {
    jobs.queued.push(await create({ kind: 'report', queue: 'reports', name: `report ${n}`, payload: { month: n } }));
  }
  jobs.scheduled = await create({ kind: 'report', queue: 'reports', run_at: Date.now() + 86400000 });
  // Open: an upload phase with two data batches.
  jobs.open = await create({ kind: 'import', queue: 'imports', upload: true, name: 'accounts import' });
  await api('PUT', `/v1/jobs/${jobs.open.id}/data`, OPS, undefined, 'id,name\n1,Ada\n');
  await api('PUT', `/v1/jobs/${jobs.open.id}/data`, OPS, undefined, 'id,name\n2,Grace\n3,Linus\n');
  // Succeeded and failed.
  const a = await create({ kind: 'export', queue: 'batch', payload: { table: 'accounts' } });
  const b = await create({ kind: 'export', queue: 'batch', payload: { table: 'orders' }, max_attempts: 1 });
  const claimed = await claim(['batch'], 2);
  const ok = claimed.find((j) => j.id === a.id);
  const bad = claimed.find((j) => j.id === b.id);
  jobs.succeeded = await api('POST', `/v1/jobs/${a.id}/complete`, WORK, { ...byWorker(ok), result: { rows: 10, file: 'accounts.csv' } });
  jobs.failed = await api('POST', `/v1/jobs/${b.id}/fail`, WORK, { ...byWorker(bad), error: 'disk full', retryable: false });
  // Cancelled.
  const c = await create({ kind: 'export', queue: 'batch' });
  jobs.cancelled = await api('POST', `/v1/jobs/${c.id}/cancel`, OPS);
  // Running with steps, progress and a log: an execution of a definition.
  await api('PUT', '/v1/definitions/nightly-sync', OPS, {
    description: 'Sync the CRM into the lake', queue: 'sync',
    steps: [
      { step_id: 'extract', step_type_id: 'custom.Extract', description: 'Read the CRM' },
      { step_id: 'transform', step_type_id: 'custom.Transform', description: 'Map the fields' },
      { step_id: 'load', step_type_id: 'custom.Load', description: 'Write the lake' },
    ],
  });
  const execution = await api('POST', '/v1/definitions/nightly-sync/executions', OPS, {
    payload: { since: '2026-12-01', objects: ['Account', 'Contact'] },
  });
  const [run] = await claim(['sync'], 1);
  const lease = byWorker(run);
  await api('POST', `/v1/jobs/${execution.id}/steps/extract`, WORK, { ...lease, status: 'running' });
  await api('POST', `/v1/jobs/${execution.id}/steps/extract`, WORK, { ...lease, status: 'ok', exit_code: 'OK', message: '1200 rows read' });
  await api('POST', `/v1/jobs/${execution.id}/steps/transform`, WORK, { ...lease, status: 'running' });
  await api('POST', `/v1/jobs/${execution.id}/heartbeat`, WORK, { ...lease, progress: { done: 40, total: 100 }, phase: 'transform', lease_ms: 600000 });
  await api('POST', `/v1/jobs/${execution.id}/logs`, WORK, { lines: [
    { level: 'info', message: 'extract: 1200 rows read' },
    { level: 'warn', message: 'transform: 3 rows without an email' },
    { level: 'info', message: '<img src=x onerror="document.title=\'owned\'"> is only text' },
  ] });
  jobs.running = execution;
  // A running job of the real worker (`sleep 300`), to cancel from the page.
  jobs.slow = await create({ kind: 'sleepy', queue: 'slow', name: 'long sleep' });
  await until('the worker to claim the slow job', async () => {
    const job = await api('GET', `/v1/jobs/${jobs.slow.id}`, OPS);
    return job.state === 'running' && job.heartbeat_at !== null;
  });
  // Enough jobs for three pages of 50.
  jobs.bulk = [];
  for (let i = 0; i < 120; i += 1) jobs.bulk.push(await create({ kind: 'noop', queue: 'bulk', name: `bulk ${i}` }));
  // Another tenant's job.
  jobs.other = await create({ kind: 'secret', queue: 'reports' }, OTHER);
  // Bulk API 2.0 jobs: the job page names the path that API answers each kind at.
  jobs.ingest = await api('POST', '/services/data/v60.0/jobs/ingest', OPS, { object: 'Account', operation: 'insert' });
  jobs.query = await api('POST', '/services/data/v60.0/jobs/query', OPS, { operation: 'query', query: 'SELECT Id FROM Account' });
  return jobs;
}

// ---- the browser ----------------------------------------------------------------------

async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

async function signIn(page, token) {
  await page.goto(`${BASE}/`);
  check('GET / leads to the dashboard', page.url() === `${BASE}/ui/`, page.url());
  await page.waitForSelector('#login:not([hidden])');
  check('with a tokens file the page asks for a token', await page.isVisible('#login-token'), 'sign-in form shown');
  await page.fill('#login-token', token);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#state-cards .card');
}

async function cardCount(page, state) {
  return Number(await page.textContent(`#state-cards [data-state=${state}] .n`));
}

async function main() {
  const jobs = await setup();
  const browser = await chromium.launch({
    executablePath: env('DASH_CHROMIUM'),
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, timezoneId: 'Europe/Berlin' });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (message) => {
      // A 401/403/404/409 the page shows is expected; a script or policy error is not.
      if (message.type() === 'error' && !/status of (401|403|404|409)/.test(message.text())) {
        problems.push(`console: ${message.text()}`);
      }
    });
    page.on('dialog', (dialog) => dialog.accept());

    // Overview.
    await signIn(page, OPS);
    const stats = (await api('GET', '/v1/stats', OPS)).stats;
    const expected = {};
    for (const row of stats) expected[row.state] = (expected[row.state] || 0) + row.jobs;
    for (const state of ['open', 'queued', 'running', 'succeeded', 'failed', 'cancelled']) {
      const seen = await until(`the ${state} card`, async () => {
        const n = await cardCount(page, state);
        return n === (expected[state] || 0) ? String(n) : null;
      }, 10000).catch(() => cardCount(page, state));
      check(`overview: ${state} count`, Number(seen) === (expected[state] || 0), `${seen} (API: ${expected[state] || 0})`);
    }
    check('overview: every state has jobs', ['open', 'queued', 'running', 'succeeded', 'failed', 'cancelled'].every((s) => expected[s] > 0), JSON.stringify(expected));
    await page.waitForSelector('#throughput svg.chart path.line');
    const legend = await page.textContent('#throughput .legend');
    check('overview: throughput chart (created, succeeded, failed per minute)', /created: \d+/.test(legend) && /succeeded: [1-9]/.test(legend) && /failed: [1-9]/.test(legend), legend);
    await page.waitForSelector('#workers tr[data-worker=demo-worker]');
    const workers = await page.textContent('#workers');
    check('overview: busy workers and their jobs', workers.includes('demo-worker') && workers.includes('browser-worker') && workers.includes(`#${jobs.running.id}`), workers.slice(0, 160));
    const oldest = await page.textContent('#oldest');
    check('overview: oldest due job per queue', oldest.includes('reports') && oldest.includes(`#${jobs.queued[0].id}`), oldest.slice(0, 120));
    // The daemon samples every 10 s: the first sample after the setup draws the queues.
    await page.waitForSelector('#depth svg.chart .line', { timeout: 15000 });
    const depthLegend = await page.textContent('#depth .legend');
    check('overview: queue depth chart drawn from the samples', depthLegend.includes('reports') && depthLegend.includes('bulk'), depthLegend);
    check('overview: the title is untouched by job data', (await page.title()) === 'jobstore', await page.title());
    await shot(page, 'overview');

    // Jobs: filters, keyset paging, sorting.
    await page.click('nav a[data-page=jobs]');
    await page.waitForSelector('#jobs tbody tr[data-id]');
    // A filter or a sort rebuilds the table: read rows only from the new table, once it shows them.
    const SHOWN = '#jobs[aria-busy=false] tbody tr[data-id]';
    const rebuilt = async (action) => {
      const old = await page.$('#jobs');
      await action();
      await old.waitForElementState('hidden');
      await page.waitForSelector(SHOWN);
    };
    await page.fill('#filters input[name=queue]', 'bulk');
    await rebuilt(() => page.click('#filters button[type=submit]'));
    await page.waitForFunction(() => location.hash.includes('queue=bulk'));
    const seenIds = [];
    for (let pageNo = 1; pageNo <= 5; pageNo += 1) {
      await page.waitForSelector(`#page-number:text("Page ${pageNo}")`);
      await page.waitForSelector('#jobs tbody tr[data-id]');
      seenIds.push(...(await page.$$eval('#jobs tbody tr[data-id]', (rows) => rows.map((r) => Number(r.dataset.id)))));
      if (await page.isDisabled('#next-page')) break;
      await page.click('#next-page');
    }
    const unique = new Set(seenIds);
    const wanted = jobs.bulk.map((j) => j.id);
    check('jobs: keyset paging shows every job once', unique.size === seenIds.length && wanted.every((id) => unique.has(id)) && seenIds.length === wanted.length,
      `${seenIds.length} rows, ${unique.size} distinct, ${wanted.length} created`);
    await rebuilt(() => page.click('#jobs button[data-sort=id]'));
    await page.waitForFunction(() => location.hash.includes('sort=id') && location.hash.includes('order=desc'));
    const firstDesc = await page.$eval(SHOWN, (r) => Number(r.dataset.id));
    await rebuilt(() => page.click('#jobs button[data-sort=id]'));
    await page.waitForFunction(() => location.hash.includes('order=asc'));
    const firstAsc = await page.$eval(SHOWN, (r) => Number(r.dataset.id));
    check('jobs: sorting by id both ways', firstDesc === Math.max(...wanted) && firstAsc === Math.min(...wanted), `desc first #${firstDesc}, asc first #${firstAsc}`);
    const hover = await page.getAttribute('#jobs tbody tr[data-id] time', 'title');
    const human = await page.textContent('#jobs tbody tr[data-id] time');
    check('jobs: human times, the exact time on hover in the browser zone', /ago|just now/.test(human) && /GMT\+1|CET|CEST|GMT\+2/.test(hover || ''), `${human} / ${hover}`);
    await shot(page, 'jobs');

    // Bulk cancel of the filtered selection, then the store's refusal of a second one.
    await page.click('text=Select every matching job');
    await page.waitForSelector(`#selected-count:text("${wanted.length} selected")`);
    await page.click('button[data-action=cancel]');
    await page.waitForSelector('#notice:not([hidden])');
    const bulkNotice = await page.textContent('#notice');
    check('jobs: bulk cancel of every matching job', bulkNotice.includes(`${wanted.length} done, 0 refused`), bulkNotice);
    const afterBulk = await api('GET', '/v1/jobs?queue=bulk&state=cancelled&limit=1000', OPS);
    check('jobs: the API sees them cancelled', afterBulk.jobs.length === wanted.length, `${afterBulk.jobs.length} cancelled`);
    await page.click('#jobs tbody tr[data-id] input[type=checkbox]');
    await page.click('button[data-action=cancel]');
    await page.waitForFunction(() => document.querySelector('#notice').textContent.includes('1 refused'));
    const refusal = await page.textContent('#notice');
    check('jobs: the store refuses to cancel a cancelled job, and the page says why', refusal.includes('1 refused') && refusal.includes('invalid_transition'), refusal.replace(/\n/g, ' '));

    // A job: steps, progress, log (as text), events, the vendor path.
    await page.goto(`${BASE}/ui/#/jobs/${jobs.running.id}`);
    await page.waitForSelector('#steps li');
    const steps = await page.$$eval('#steps li', (items) => items.map((li) => `${li.dataset.step}:${li.className}`));
    check('job: steps as a timeline', steps.join(' ') === 'extract:ok transform:running load:pending', steps.join(' '));
    check('job: phase', (await page.textContent('#phase')) === 'transform', await page.textContent('#phase'));
    const log = await page.textContent('#log');
    check('job: the log tail', log.includes('3 rows without an email') && log.includes('WARN'), log.split('\n')[1]);
    const injected = await page.$$eval('#log img, main img', (images) => images.length);
    check('job: log lines are text, never HTML', injected === 0 && log.includes('<img src=x') && (await page.title()) === 'jobstore', `${injected} images`);
    const facts = await page.textContent('#facts');
    check('job: state, attempts and lease', facts.includes('running') && facts.includes('1 of 3') && facts.includes('held by demo-worker'), facts.slice(0, 140));
    const history = await page.textContent('main');
    check('job: event history', history.includes('claim') && history.includes('create'), 'create, claim');
    await shot(page, 'job');

    await page.goto(`${BASE}/ui/#/jobs/${jobs.open.id}`);
    await page.waitForSelector('#download');
    const data = await page.textContent('main');
    check('job: data batches with sizes', data.includes('2 batches') && data.includes('14 B') && data.includes('24 B'), data.match(/Data \([^)]*\)/)?.[0]);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const stream = await download.createReadStream();
    let body = '';
    for await (const chunk of stream) body += chunk;
    check('job: data download', body === 'id,name\n1,Ada\nid,name\n2,Grace\n3,Linus\n', JSON.stringify(body));

    // Each vendor job names the path its API answers it at.
    for (const [kind, id] of [['ingest', jobs.ingest.id], ['query', jobs.query.id]]) {
      await page.goto(`${BASE}/ui/#/jobs/${id}`);
      await page.waitForSelector('#facts code');
      const shown = await page.textContent('#facts code');
      check(`job: a Bulk API 2.0 ${kind} job names its path`, shown === `/services/data/v{version}/jobs/${kind}/${id}`, shown);
    }

    // Cancel the real worker's running job by clicking; the worker acknowledges.
    await page.goto(`${BASE}/ui/#/jobs/${jobs.slow.id}`);
    await page.waitForSelector('button[data-action=cancel]');
    await page.click('button[data-action=cancel]');
    await page.waitForSelector('#notice:not([hidden])');
    const asked = await page.textContent('#notice');
    check('cancel: the page says the cancel was requested', asked.includes('cancel requested'), asked);
    await page.waitForSelector('h1 .badge.cancelled', { timeout: 30000 });
    const slow = await api('GET', `/v1/jobs/${jobs.slow.id}`, OPS);
    const events = (await api('GET', `/v1/jobs/${jobs.slow.id}/events`, OPS)).events;
    const last = events[events.length - 1];
    check('cancel: the worker acknowledged (cancelled)', slow.state === 'cancelled' && last.to === 'cancelled' && last.actor === 'browser-worker', `${slow.state}, last event ${last.event} by ${last.actor}`);
    await shot(page, 'job-cancelled');

    // A refusal on the job page: a succeeded job cannot be cancelled.
    await page.goto(`${BASE}/ui/#/jobs/${jobs.succeeded.id}`);
    await page.waitForSelector('button[data-action=cancel]');
    await page.click('button[data-action=cancel]');
    await page.waitForFunction(() => document.querySelector('#notice').textContent.includes('409'));
    check('job: the store refuses a cancel of a succeeded job', (await page.textContent('#notice')).includes('invalid_transition'), await page.textContent('#notice'));

    // Another tenant's job is not found.
    await page.goto(`${BASE}/ui/#/jobs/${jobs.other.id}`);
    await page.waitForFunction((id) => document.querySelector('main h1')?.textContent === `Job ${id}`
      && document.querySelector('main .empty') !== null, jobs.other.id).catch(() => {});
    const notFound = await page.textContent('main');
    check("job: another tenant's job is not found", notFound.includes(`Job ${jobs.other.id} not found`), notFound.slice(0, 120));

    // Queues and definitions.
    await page.click('nav a[data-page=queues]');
    await page.waitForSelector('#queues tr[data-queue=reports]');
    const reports = await page.$$eval('#queues tr[data-queue=reports] td', (cells) => cells.map((c) => c.textContent));
    check('queues: depth, due, running, failed last hour, oldest', reports[1] === '4' && reports[2] === '3' && reports[5] === `#${jobs.queued[0].id}`, reports.join(' | '));
    const batch = await page.$$eval('#queues tr[data-queue=batch] td', (cells) => cells.map((c) => c.textContent));
    check('queues: failures of the last hour', batch[4] === '1', batch.join(' | '));
    await shot(page, 'queues');
    await page.click('nav a[data-page=definitions]');
    await page.waitForSelector('#definitions tr[data-definition=nightly-sync]');
    const definition = await page.textContent('#definitions tr[data-definition=nightly-sync]');
    check('definitions: steps and last executions', definition.includes('extract → transform → load') && definition.includes(`#${jobs.running.id}`) && definition.includes('running'), definition.slice(0, 140));
    await shot(page, 'definitions');
    check('no script error and no policy violation on any page', problems.length === 0, problems.join('; ') || 'none');
    await context.close();

    // A read-only token sees but cannot act.
    const viewer = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const readonly = await viewer.newPage();
    readonly.on('dialog', (dialog) => dialog.accept());
    await signIn(readonly, VIEWER);
    await readonly.goto(`${BASE}/ui/#/jobs/${jobs.queued[1].id}`);
    await readonly.waitForSelector('button[data-action=cancel]');
    await readonly.click('button[data-action=cancel]');
    await readonly.waitForFunction(() => document.querySelector('#notice').textContent.includes('403'));
    const denied = await readonly.textContent('#notice');
    await readonly.waitForSelector('button[data-action=restart]:disabled');
    const disabled = await readonly.$$eval('button[data-action]', (buttons) => buttons.every((b) => b.disabled));
    const still = await api('GET', `/v1/jobs/${jobs.queued[1].id}`, OPS);
    check('read-only: the API refuses (403) and the page says so', denied.includes('forbidden'), denied);
    check('read-only: the action buttons are refused', disabled, 'every action button disabled');
    check('read-only: the job is unchanged', still.state === 'queued', still.state);
    await shot(readonly, 'read-only');
    await viewer.close();

    // Without tokens (loopback): no sign-in.
    const local = await browser.newContext();
    const open = await local.newPage();
    await open.goto(`${OPEN_BASE}/`);
    await open.waitForSelector('#state-cards .card');
    check('without tokens: no sign-in, the overview at once', await open.isHidden('#login'), open.url());
    await local.close();
  } finally {
    await browser.close();
  }
}

main()
  .catch((err) => check('the suite ran to its end', false, err.stack || err))
  .finally(() => {
    const width = Math.max(...results.map((r) => r.name.length));
    console.log('');
    for (const r of results) console.log(`${r.name.padEnd(width)}  ${r.ok ? 'ok    ' : 'FAILED'}  ${r.seen.replace(/\s+/g, ' ').slice(0, 110)}`);
    const failed = results.filter((r) => !r.ok).length;
    console.log(`\nbrowser: ${results.length - failed} passed, ${failed} failed`);
    process.exitCode = failed === 0 && results.length > 0 ? 0 : 1;
  });
