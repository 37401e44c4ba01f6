// The jobstore dashboard: a small single-page script over the native API (/v1).
//
// Rules this file keeps:
// - job data (payloads, results, logs, names, errors) reaches the page as text only: elements
//   are built with createElement and filled with textContent or text nodes, never as HTML;
// - the token typed in is kept in this tab's sessionStorage and sent as `Authorization:
//   Bearer` by fetch; no cookie is ever set or sent (credentials: 'omit');
// - every action asks for confirmation and shows the API's answer, refusals included.
'use strict';

(() => {
  const TOKEN = 'jobstore.token';
  const STATES = ['open', 'queued', 'running', 'succeeded', 'failed', 'cancelled'];
  const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
  const APIS = ['native', 'c360', 'ocapi', 'aep', 'datacloud', 'bulk2'];
  const SORTS = { id: 'ID', state: 'State', kind: 'Kind', name: 'Name', created_at: 'Created', finished_at: 'Finished' };
  const PAGE_SIZE = 50;
  const $ = (id) => document.getElementById(id);

  // ---- the API ------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, type, message) {
      super(message);
      this.status = status;
      this.type = type;
    }
  }

  async function call(method, path, options = {}) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN);
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit' });
    if (!response.ok) {
      let type = `http_${response.status}`;
      let message = response.statusText;
      try {
        const doc = await response.json();
        type = doc.error.type;
        message = doc.error.message;
      } catch (_) {
        // Not the API's error document: keep the status line.
      }
      if (response.status === 401) showLogin(token ? `The token was refused: ${message}` : '');
      throw new ApiError(response.status, type, message);
    }
    if (options.as === 'text') return response.text();
    if (options.as === 'log') {
      return { text: await response.text(), seq: response.headers.get('Jobstore-Log-Seq') };
    }
    if (options.as === 'blob') return response.blob();
    if (response.status === 204) return null;
    return response.json();
  }
  const get = (path) => call('GET', path);

  // ---- building the page (text only) ---------------------------------------------------

  function h(tag, attrs, ...children) {
    const element = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
      else if (key === 'class') element.className = value;
      else if (typeof value === 'boolean' || key === 'value') element[key] = value;
      else element.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : String(child));
    }
    return element;
  }

  function exact(ms) {
    return new Date(ms).toLocaleString(undefined, {
      year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
      second: '2-digit', timeZoneName: 'short',
    });
  }

  function ago(ms) {
    const diff = Date.now() - ms;
    const s = Math.round(Math.abs(diff) / 1000);
    if (s < 5) return 'just now';
    let text;
    if (s < 60) text = `${s} s`;
    else if (s < 3600) text = `${Math.round(s / 60)} min`;
    else if (s < 86400) text = `${Math.round(s / 3600)} h`;
    else text = `${Math.round(s / 86400)} d`;
    return diff >= 0 ? `${text} ago` : `in ${text}`;
  }

  // A time as people read it ("3 min ago"), the exact time in this browser's zone on hover.
  function when(ms) {
    if (ms === null || ms === undefined) return h('span', { class: 'muted' }, '—');
    return h('time', { datetime: new Date(ms).toISOString(), title: exact(ms) }, ago(ms));
  }

  function bytes(n) {
    if (n < 1024) return `${n} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let value = n;
    let unit = -1;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  const badge = (state) => h('span', { class: `badge ${state}` }, state);
  const jobLink = (id) => h('a', { href: `#/jobs/${id}` }, `#${id}`);
  const panel = (title, ...children) => h('section', { class: 'panel' }, h('h2', null, title), ...children);
  const empty = (text) => h('p', { class: 'empty' }, text);

  function table(headers, rows) {
    return h('table', null,
      h('thead', null, h('tr', null, headers.map((x) => (x instanceof Node ? h('th', null, x) : h('th', { class: x.startsWith('#') ? 'num' : null }, x.replace(/^#/, '')))))),
      h('tbody', null, rows));
  }
  const num = (n) => h('td', { class: 'num' }, String(n));

  // ---- notices, sign-in, refusals ------------------------------------------------------

  function notify(text, ok) {
    const notice = $('notice');
    notice.textContent = text;
    notice.className = ok ? 'notice ok' : 'notice';
    notice.hidden = false;
  }
  const clearNotice = () => { $('notice').hidden = true; };

  function report(err) {
    if (err instanceof ApiError) {
      if (err.status === 401) return;
      notify(`${err.status} ${err.type}: ${err.message}`);
    } else {
      notify(String(err && err.message ? err.message : err));
    }
  }

  function showLogin(message) {
    stop();
    $('view').hidden = true;
    $('login').hidden = false;
    const error = $('login-error');
    error.textContent = message || '';
    error.hidden = !message;
    renderWho();
  }

  function renderWho() {
    const who = $('who');
    who.replaceChildren();
    if (sessionStorage.getItem(TOKEN)) {
      who.append(h('span', null, 'Signed in with a token'),
        h('button', { type: 'button', id: 'sign-out', onclick: () => { sessionStorage.removeItem(TOKEN); location.hash = '#/'; route(); } }, 'Sign out'));
    } else {
      who.append(h('span', { class: 'muted-light' }, 'No token'));
    }
  }

  // Set once the API answered an action 403: this token may read but not act.
  let actionsRefused = null;
  function refuseActions(err) {
    actionsRefused = `This token may not act: ${err.status} ${err.type}: ${err.message}`;
    for (const button of document.querySelectorAll('button[data-action]')) {
      button.disabled = true;
      button.title = actionsRefused;
    }
  }
  function actionButton(label, action, onclick, danger) {
    return h('button', {
      type: 'button', 'data-action': action, class: danger ? 'danger' : null,
      disabled: actionsRefused !== null, title: actionsRefused, onclick,
    }, label);
  }

  // Runs one action on one job: its confirmation asked first by the caller.
  async function act(action, id) {
    if (action === 'delete') return call('DELETE', `/v1/jobs/${id}`);
    return call('POST', `/v1/jobs/${id}/${action}`);
  }

  // ---- polling ---------------------------------------------------------------------------

  let stopCurrent = null;
  function stop() {
    if (stopCurrent) stopCurrent();
    stopCurrent = null;
  }
  // Calls fn now and again `ms` after each answer while the page is shown and fn does not
  // answer false; never sooner than five times the last refresh took, so that a slow count
  // (a very large database) is not asked for back to back.
  function every(ms, fn) {
    stop();
    let alive = true;
    let handle = null;
    const loop = async () => {
      if (!alive) return;
      let again = true;
      const started = performance.now();
      try {
        again = (await fn()) !== false;
      } catch (err) {
        report(err);
        if (err instanceof ApiError && err.status === 401) again = false;
      }
      if (alive && again) handle = setTimeout(loop, Math.max(ms, 5 * (performance.now() - started)));
    };
    stopCurrent = () => { alive = false; clearTimeout(handle); };
    loop();
  }

  // ---- Overview ----------------------------------------------------------------------------

  function overview(view) {
    const cards = h('div', { class: 'cards', id: 'state-cards' });
    const byQueue = h('div', { id: 'by-queue' });
    const throughput = h('div', { id: 'throughput' });
    const depth = h('div', { id: 'depth' });
    const waiting = h('div', { id: 'oldest' });
    const workers = h('div', { id: 'workers' });
    view.append(
      h('h1', null, 'Overview', h('span', { class: 'live', title: 'Refreshed every 3 s' }, '● live')),
      cards,
      h('div', { class: 'grid' },
        panel('Throughput per minute, last hour', throughput),
        panel('Queue depth (queued jobs, sampled since the daemon started)', depth)),
      h('div', { class: 'grid' },
        panel('Jobs by queue and state', byQueue),
        panel('Oldest due job per queue', waiting)),
      panel('Busy workers', workers));
    every(3000, async () => {
      const [stats, queues, busy, minutes, samples] = await Promise.all([
        get('/v1/stats'), get('/v1/queues'), get('/v1/workers'), get('/v1/throughput?minutes=60'),
        get('/v1/queues/depth'),
      ]);
      const totals = Object.fromEntries(STATES.map((s) => [s, 0]));
      const queueRows = new Map();
      for (const row of stats.stats) {
        totals[row.state] += row.jobs;
        if (!queueRows.has(row.queue)) queueRows.set(row.queue, Object.fromEntries(STATES.map((s) => [s, 0])));
        queueRows.get(row.queue)[row.state] += row.jobs;
      }
      cards.replaceChildren(...STATES.map((s) => h('a', { class: `card ${s}`, href: `#/jobs?state=${s}`, 'data-state': s },
        h('span', { class: 'n' }, String(totals[s])), h('span', { class: 'label' }, s))));
      byQueue.replaceChildren(queueRows.size === 0 ? empty('No jobs yet.')
        : table(['Queue', ...STATES.map((s) => `#${s}`)], [...queueRows].map(([queue, counts]) => h('tr', { 'data-queue': queue },
          h('td', null, h('a', { href: `#/jobs?queue=${encodeURIComponent(queue)}` }, queue)),
          STATES.map((s) => num(counts[s]))))));
      const buckets = minutes.buckets;
      if (buckets.length > 0) {
        const series = ['created', 'succeeded', 'failed'].map((key) => ({
          name: key,
          points: buckets.map((b) => [b.start, b[key]]),
          total: buckets.reduce((sum, b) => sum + b[key], 0),
        }));
        throughput.replaceChildren(Charts.lines(series, buckets[0].start, buckets[buckets.length - 1].start, 'Jobs per minute'));
      }
      const perQueue = new Map();
      for (const sample of samples.samples) {
        if (!perQueue.has(sample.queue)) perQueue.set(sample.queue, []);
        perQueue.get(sample.queue).push([sample.at, sample.queued]);
      }
      const now = Date.now();
      depth.replaceChildren(perQueue.size === 0
        ? empty(`No sample with queued or running jobs yet: the daemon samples every ${samples.interval_ms / 1000} s since it started (${ago(samples.since)}).`)
        : Charts.lines([...perQueue].map(([name, points]) => ({ name, points })), Math.min(now - 300000, Math.max(samples.since, now - 3600000)), now, 'Queued jobs per queue'));
      const due = queues.queues.filter((q) => q.oldest_due_id !== null);
      waiting.replaceChildren(due.length === 0 ? empty('No job is waiting for a worker.')
        : table(['Queue', '#Due', 'Job', 'Waiting since'], due.map((q) => h('tr', null,
          h('td', null, q.queue), num(q.due), h('td', null, jobLink(q.oldest_due_id)), h('td', null, when(q.oldest_due_since))))));
      workers.replaceChildren(busy.workers.length === 0 ? empty('No worker holds a job.')
        : table(['Worker', 'Job', 'Kind', 'Queue', 'Phase', 'Started', 'Last heartbeat', 'Lease expires'],
          busy.workers.flatMap((w) => w.jobs.map((job, i) => h('tr', { 'data-worker': w.worker },
            h('td', null, i === 0 ? w.worker : ''), h('td', null, jobLink(job.id), job.cancel_requested_at ? ' (cancel requested)' : ''),
            h('td', null, job.kind), h('td', null, job.queue), h('td', null, job.phase || '—'),
            h('td', null, when(job.started_at)), h('td', null, when(job.heartbeat_at)), h('td', null, when(job.lease_expires_at)))))));
    });
  }

  // ---- Jobs ----------------------------------------------------------------------------------

  const localInput = (ms) => {
    if (!ms) return '';
    const d = new Date(Number(ms));
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  };

  function jobsPage(view, params) {
    const filters = {
      state: params.getAll('state').filter((s) => STATES.includes(s)),
      queue: params.get('queue') || '', kind: params.get('kind') || '', dialect: params.get('dialect') || '',
      tenant: params.get('tenant') || '', created_after: params.get('created_after') || '',
      created_before: params.get('created_before') || '',
      sort: SORTS[params.get('sort')] ? params.get('sort') : 'created_at',
      order: params.get('order') === 'asc' ? 'asc' : 'desc',
    };
    const go = (changes) => {
      const next = { ...filters, ...changes };
      const q = new URLSearchParams();
      for (const s of next.state) q.append('state', s);
      for (const key of ['queue', 'kind', 'dialect', 'tenant', 'created_after', 'created_before', 'sort', 'order']) {
        if (next[key]) q.set(key, next[key]);
      }
      location.hash = `#/jobs?${q}`;
    };
    const apiQuery = (limit, cursor) => {
      const q = new URLSearchParams();
      for (const s of filters.state) q.append('state', s);
      for (const key of ['queue', 'kind', 'dialect', 'tenant', 'created_after', 'created_before', 'sort', 'order']) {
        if (filters[key]) q.set(key, filters[key]);
      }
      q.set('limit', String(limit));
      if (cursor) q.set('cursor', cursor);
      return q;
    };

    const input = (name, value, type) => h('input', { name, value, type: type || 'text' });
    const form = h('form', { class: 'filters', id: 'filters', onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const ms = (v) => (v ? String(new Date(v).getTime()) : '');
      go({
        state: data.getAll('state'), queue: data.get('queue').trim(), kind: data.get('kind').trim(),
        dialect: data.get('dialect'), tenant: data.get('tenant').trim(),
        created_after: ms(data.get('created_after')), created_before: ms(data.get('created_before')),
      });
    } },
    h('div', { class: 'states' }, STATES.map((s) => h('label', null, h('input', { type: 'checkbox', name: 'state', value: s, checked: filters.state.includes(s) }), s))),
    h('label', null, 'Queue', input('queue', filters.queue)),
    h('label', null, 'Kind', input('kind', filters.kind)),
    h('label', null, 'API', h('select', { name: 'dialect' }, h('option', { value: '' }, 'any'),
      APIS.map((a) => h('option', { value: a, selected: filters.dialect === a }, a)))),
    h('label', { title: 'Admin tokens only' }, 'Tenant (admins)', input('tenant', filters.tenant)),
    h('label', null, 'Created after', input('created_after', localInput(filters.created_after), 'datetime-local')),
    h('label', null, 'Created before', input('created_before', localInput(filters.created_before), 'datetime-local')),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'),
    h('button', { type: 'button', onclick: () => { location.hash = '#/jobs'; } }, 'Clear'));

    const idBox = h('input', { id: 'job-id', type: 'search', placeholder: 'Job id', inputmode: 'numeric', size: 10 });
    const search = h('form', { class: 'toolbar', onsubmit: (event) => {
      event.preventDefault();
      const id = idBox.value.trim().replace(/^#/, '');
      if (/^[1-9][0-9]*$/.test(id)) location.hash = `#/jobs/${id}`;
      else notify(`"${id}" is not a job id`);
    } }, idBox, h('button', { type: 'submit' }, 'Open job'));

    const selected = new Set();
    const count = h('span', { id: 'selected-count', class: 'muted' });
    const body = h('tbody');
    const pager = h('div', { class: 'toolbar' });
    const cursors = [null];
    let index = 0;
    let rows = [];

    const showCount = () => { count.textContent = `${selected.size} selected`; };
    const bulk = (action, verb) => actionButton(`${verb} selected`, action, async () => {
      if (selected.size === 0) return notify('Select jobs first.');
      if (!confirm(`${verb} ${selected.size} job(s)?`)) return;
      let done = 0;
      const refused = [];
      for (const id of [...selected]) {
        try {
          await act(action, id);
          done += 1;
        } catch (err) {
          if (err instanceof ApiError && err.status === 403) {
            refuseActions(err);
            report(err);
            return;
          }
          refused.push(`job ${id}: ${err.type || ''} ${err.message}`);
        }
      }
      selected.clear();
      notify(`${verb}: ${done} done, ${refused.length} refused${refused.length ? `\n${refused.join('\n')}` : ''}`, refused.length === 0);
      load();
    }, action === 'delete');
    const selectAll = h('button', { type: 'button', onclick: async () => {
      // Every job the filters match, page by page (at most 10 000).
      selected.clear();
      let cursor = null;
      do {
        const page = await get(`/v1/jobs?${apiQuery(1000, cursor)}`);
        for (const job of page.jobs) selected.add(job.id);
        cursor = page.next_cursor;
      } while (cursor && selected.size < 10000);
      showCount();
      renderRows();
    } }, 'Select every matching job');

    const header = (field) => {
      const active = filters.sort === field;
      const arrow = active ? (filters.order === 'asc' ? ' ▲' : ' ▼') : '';
      return h('th', null, h('button', { type: 'button', class: `sort${active ? ' active' : ''}`, 'data-sort': field,
        onclick: () => go({ sort: field, order: active && filters.order === 'desc' ? 'asc' : 'desc' }) }, SORTS[field] + arrow));
    };
    const pageBox = h('input', { type: 'checkbox', title: 'Select this page', onchange: () => {
      for (const job of rows) (pageBox.checked ? selected.add(job.id) : selected.delete(job.id));
      showCount();
      renderRows();
    } });

    function renderRows() {
      body.replaceChildren(...(rows.length === 0 ? [h('tr', null, h('td', { colspan: 10, class: 'empty' }, 'No job matches.'))]
        : rows.map((job) => h('tr', { 'data-id': job.id },
          h('td', null, h('input', { type: 'checkbox', checked: selected.has(job.id), 'aria-label': `select job ${job.id}`, onchange: (e) => {
            (e.target.checked ? selected.add(job.id) : selected.delete(job.id));
            showCount();
          } })),
          h('td', null, jobLink(job.id)), h('td', null, badge(job.state)), h('td', null, job.kind),
          h('td', null, job.queue), h('td', null, job.name), h('td', null, job.dialect),
          h('td', { class: 'num' }, `${job.attempt}/${job.max_attempts}`),
          h('td', null, when(job.created_at)), h('td', null, when(job.finished_at))))));
    }

    async function load() {
      const page = await get(`/v1/jobs?${apiQuery(PAGE_SIZE, cursors[index])}`);
      rows = page.jobs;
      pageBox.checked = false;
      renderRows();
      showCount();
      body.parentElement.setAttribute('aria-busy', 'false');
      pager.replaceChildren(
        h('button', { type: 'button', id: 'previous-page', disabled: index === 0, onclick: () => { index -= 1; load().catch(report); } }, '‹ Previous'),
        h('span', { class: 'muted', id: 'page-number' }, `Page ${index + 1}`),
        h('button', { type: 'button', id: 'next-page', disabled: !page.next_cursor, onclick: () => {
          cursors[index + 1] = page.next_cursor;
          index += 1;
          load().catch(report);
        } }, 'Next ›'));
    }

    view.append(h('h1', null, 'Jobs'), search, form,
      h('div', { class: 'toolbar' }, selectAll, count, h('span', { class: 'spacer' }),
        bulk('cancel', 'Cancel'), bulk('restart', 'Restart'), bulk('delete', 'Delete')),
      // aria-busy until this view's first page is shown.
      h('div', { class: 'panel' }, h('table', { id: 'jobs', 'aria-busy': 'true' },
        h('thead', null, h('tr', null, h('th', null, pageBox), header('id'), header('state'), header('kind'), h('th', null, 'Queue'),
          header('name'), h('th', null, 'API'), h('th', { class: 'num' }, 'Attempts'), header('created_at'), header('finished_at'))),
        body)),
      pager);
    stop();
    load().catch(report);
  }

  // ---- A job -----------------------------------------------------------------------------

  // How each vendor API names a job: the path it answers the job at.
  const VENDOR_PATHS = {
    native: (job) => `/v1/jobs/${job.id}`,
    c360: (job) => `/datamanager/datatools/v1.0/jobs/${job.id}`,
    ocapi: (job) => `/dw/data/v{version}/jobs/${job.definition_id || '{job_id}'}/executions/${job.id}`,
    aep: (job) => `/data/core/ups/export/jobs/${job.id}`,
    datacloud: (job) => `/api/v1/ingest/jobs/${job.id}`,
    // Bulk API 2.0 answers its query jobs (core kind `query`) apart from its ingest jobs.
    bulk2: (job) => `/services/data/v{version}/jobs/${job.kind === 'query' ? 'query' : 'ingest'}/${job.id}`,
  };

  // The filled part of a progress bar (a CSSOM width: the policy allows no style attribute).
  function fill(fraction) {
    const span = h('span');
    span.style.width = `${Math.max(0, Math.min(100, Math.round(100 * fraction)))}%`;
    return span;
  }

  function json(value) {
    return JSON.stringify(value, null, 2);
  }

  // The tail of a job's log: the last LOG_TAIL lines once, then only the lines after the
  // last one read (`?after=`, with the seq the daemon answers in Jobstore-Log-Seq).
  const LOG_TAIL = 500;
  function logTail(id) {
    let seq = null;
    let lines = [];
    let more = false;
    return async () => {
      const path = seq === null ? `/v1/jobs/${id}/logs?tail=${LOG_TAIL}` : `/v1/jobs/${id}/logs?after=${seq}`;
      const page = await call('GET', path, { as: 'log' });
      const fresh = page.text.split('\n').filter((line) => line !== '');
      if (seq === null && fresh.length === LOG_TAIL) more = true;
      lines = lines.concat(fresh);
      if (lines.length > LOG_TAIL) {
        more = true;
        lines = lines.slice(-LOG_TAIL);
      }
      if (page.seq !== null) seq = page.seq;
      return { lines, more };
    };
  }

  function jobPage(view, id) {
    const open = new Map([['payload', true], ['result', true], ['progress', true]]);
    const readLog = logTail(id);
    const collapsible = (key, title, value) => {
      const details = h('details', { open: open.get(key) === true, 'data-section': key },
        h('summary', null, title), h('pre', { class: 'doc' }, json(value)));
      details.addEventListener('toggle', () => open.set(key, details.open));
      return details;
    };

    async function download(job) {
      try {
        const blob = await call('GET', `/v1/jobs/${job.id}/data`, { as: 'blob' });
        const url = URL.createObjectURL(blob);
        const link = h('a', { href: url, download: `job-${job.id}-data` });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (err) {
        report(err);
      }
    }

    const verbs = { cancel: 'Cancel', restart: 'Restart', delete: 'Delete' };
    const run = (action) => async () => {
      if (!confirm(`${verbs[action]} job ${id}?`)) return;
      try {
        const job = await act(action, id);
        if (action === 'delete') {
          notify(`Job ${id} deleted.`, true);
          location.hash = '#/jobs';
          return;
        }
        const note = job.state === 'running' && job.cancel_requested_at
          ? 'cancel requested: the worker stops at its next heartbeat' : `now ${job.state}`;
        notify(`Job ${id}: ${note}.`, true);
      } catch (err) {
        if (err instanceof ApiError && err.status === 403) refuseActions(err);
        report(err);
      }
      jobPage(view, id);
    };

    every(2000, async () => {
      let job;
      try {
        job = await get(`/v1/jobs/${id}`);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          view.replaceChildren(h('h1', null, `Job ${id}`), empty(`Job ${id} not found: ${err.message}`));
          return false;
        }
        throw err;
      }
      const [events, log] = await Promise.all([get(`/v1/jobs/${id}/events`), readLog()]);
      const live = !TERMINAL.has(job.state);
      const vendor = VENDOR_PATHS[job.dialect];
      const facts = [
        ['State', badge(job.state)],
        ['Kind', job.kind], ['Queue', job.queue], ['Tenant', job.tenant],
        ['Name', job.name || '—'], ['Priority', String(job.priority)],
        ['Attempts', `${job.attempt} of ${job.max_attempts}`],
        ['API', vendor ? h('span', null, job.dialect, ' — ', h('code', null, vendor(job))) : job.dialect],
        ['Lease', job.lease_owner ? h('span', null, `held by ${job.lease_owner} (token ${job.lease_token}), expires `, when(job.lease_expires_at)) : '—'],
        ['Last heartbeat', when(job.heartbeat_at)],
        ['Cancel requested', when(job.cancel_requested_at)],
        ['Run at', when(job.run_at)], ['Created', when(job.created_at)], ['Started', when(job.started_at)],
        ['Finished', when(job.finished_at)], ['Updated', when(job.updated_at)],
        ['Created by', job.created_by || '—'], ['Source', job.source || '—'], ['Target', job.target || '—'],
        ['Definition', job.definition_id || '—'], ['Unique key', job.unique_key || '—'],
        ['Restart of', job.restart_of ? jobLink(job.restart_of) : '—'], ['Restartable', job.restartable ? 'yes' : 'no'],
        ['Error', job.error || '—'],
      ];
      const progress = job.progress || {};
      const done = Number(progress.done ?? progress.processed ?? progress.records);
      const total = Number(progress.total);
      const steps = job.steps || [];
      const batches = job.batches || [];
      const tail = log.lines;
      view.replaceChildren(
        h('h1', null, `Job ${job.id} · ${job.kind} `, badge(job.state), live ? h('span', { class: 'live', title: 'Refreshed every 2 s' }, '● live') : null),
        h('div', { class: 'toolbar' },
          actionButton('Cancel', 'cancel', run('cancel')), actionButton('Restart', 'restart', run('restart')),
          actionButton('Delete', 'delete', run('delete'), true)),
        h('div', { class: 'grid' },
          panel('Job', h('dl', { class: 'facts', id: 'facts' }, facts.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]))),
          panel('Progress',
            h('p', null, 'Phase: ', h('strong', { id: 'phase' }, job.phase || '—')),
            Number.isFinite(done) && Number.isFinite(total) && total > 0
              ? h('div', { class: 'bar', title: `${done} of ${total}` }, fill(done / total)) : null,
            collapsible('progress', 'Progress counters', progress),
            collapsible('payload', 'Payload', job.payload),
            collapsible('result', 'Result', job.result))),
        h('div', { class: 'grid' },
          panel(`Steps (${steps.length})`, steps.length === 0 ? empty('This job has no steps.')
            : h('ol', { class: 'timeline', id: 'steps' }, steps.map((step) => h('li', { class: step.status, 'data-step': step.step_id },
              h('div', null, h('span', { class: 'step-title' }, step.step_id), ' ', badge(step.status), ' ',
                h('span', { class: 'muted' }, step.step_type_id)),
              step.description ? h('div', null, step.description) : null,
              h('div', { class: 'muted' }, 'started ', when(step.started_at), ' · finished ', when(step.finished_at),
                step.exit_code ? ` · exit ${step.exit_code}` : ''),
              step.message ? h('div', null, step.message) : null)))),
          panel(`Data (${job.data_batches || 0} batches, ${bytes(job.data_bytes || 0)})`,
            batches.length === 0 ? empty('No data uploaded.')
              : h('div', null, table(['#Batch', '#Size', 'Uploaded'], batches.map((b) => h('tr', null, num(b.batch), num(bytes(b.bytes)), h('td', null, when(b.created_at))))),
                h('p', null, h('button', { type: 'button', id: 'download', onclick: () => download(job) }, 'Download all data'))))),
        panel(log.more ? `Log (the last ${tail.length} lines)` : `Log (${tail.length} lines)`,
          live ? h('span', { class: 'live' }, '● tail, live') : null,
          h('pre', { class: 'log', id: 'log' }, tail.length ? tail.join('\n') : '(empty)')),
        panel('History', table(['When', 'Event', 'From', 'To', 'Actor', 'Detail'], events.events.map((e) => h('tr', null,
          h('td', null, when(e.at)), h('td', null, e.event), h('td', null, e.from || '—'), h('td', null, e.to),
          h('td', null, e.actor || '—'), h('td', null, e.detail || ''))))));
      const logBox = $('log');
      if (logBox) logBox.scrollTop = logBox.scrollHeight;
      return live;
    });
  }

  // ---- Queues ----------------------------------------------------------------------------

  function queuesPage(view) {
    const box = h('div', { id: 'queues' });
    view.append(h('h1', null, 'Queues', h('span', { class: 'live' }, '● live')), h('div', { class: 'panel' }, box));
    every(5000, async () => {
      const [stats, queues] = await Promise.all([get('/v1/stats'), get('/v1/queues')]);
      const all = new Map();
      const row = (queue) => {
        if (!all.has(queue)) all.set(queue, { totals: Object.fromEntries(STATES.map((s) => [s, 0])), activity: null });
        return all.get(queue);
      };
      for (const count of stats.stats) row(count.queue).totals[count.state] += count.jobs;
      for (const activity of queues.queues) row(activity.queue).activity = activity;
      box.replaceChildren(all.size === 0 ? empty('No queue holds jobs.')
        : table(['Queue', '#Queued', '#Due', '#Running', '#Failed (last hour)', 'Oldest due job', 'Waiting since', '#Succeeded', '#Failed', '#Cancelled', '#Open'],
          [...all].sort(([a], [b]) => a.localeCompare(b)).map(([queue, { totals, activity }]) => h('tr', { 'data-queue': queue },
            h('td', null, h('a', { href: `#/jobs?queue=${encodeURIComponent(queue)}` }, queue)),
            num(totals.queued), num(activity ? activity.due : 0), num(totals.running),
            num(activity ? activity.failed_last_hour : 0),
            h('td', null, activity && activity.oldest_due_id ? jobLink(activity.oldest_due_id) : '—'),
            h('td', null, activity && activity.oldest_due_since ? when(activity.oldest_due_since) : '—'),
            num(totals.succeeded), num(totals.failed), num(totals.cancelled), num(totals.open)))));
    });
  }

  // ---- Definitions -------------------------------------------------------------------------

  function definitionsPage(view) {
    const box = h('div', { id: 'definitions' });
    view.append(h('h1', null, 'Definitions'), h('div', { class: 'panel' }, box));
    every(10000, async () => {
      const { definitions } = await get('/v1/definitions');
      const last = await Promise.all(definitions.map((d) => get(`/v1/jobs?${new URLSearchParams({ definition: d.id, sort: 'id', order: 'desc', limit: '5' })}`)));
      box.replaceChildren(definitions.length === 0 ? empty('No job definition is stored.')
        : table(['Definition', 'Description', 'Queue', 'Steps', 'Restartable', 'Enabled', 'Valid', 'Last executions'],
          definitions.map((d, i) => h('tr', { 'data-definition': d.id },
            h('td', null, h('a', { href: `#/jobs?definition=${encodeURIComponent(d.id)}` }, d.id)), h('td', null, d.description || '—'),
            h('td', null, d.queue), h('td', null, d.steps.map((s) => s.step_id).join(' → ')),
            h('td', null, d.restartable ? 'yes' : 'no'), h('td', null, d.enabled ? 'yes' : 'no'), h('td', null, d.valid ? 'yes' : 'no'),
            h('td', null, last[i].jobs.length === 0 ? h('span', { class: 'muted' }, 'never executed')
              : last[i].jobs.map((job) => h('div', null, jobLink(job.id), ' ', badge(job.state), ' ', when(job.created_at))))))));
    });
  }

  // ---- routing -----------------------------------------------------------------------------

  function route() {
    stop();
    clearNotice();
    $('login').hidden = true;
    const view = $('view');
    view.hidden = false;
    view.replaceChildren();
    renderWho();
    const hash = location.hash.replace(/^#/, '') || '/';
    const [path, query] = hash.split('?');
    const params = new URLSearchParams(query || '');
    const page = path === '/' ? 'overview' : path.split('/')[1];
    for (const link of document.querySelectorAll('nav a')) {
      link.classList.toggle('current', link.dataset.page === page);
    }
    const job = path.match(/^\/jobs\/([1-9][0-9]*)$/);
    if (path === '/') overview(view);
    else if (path === '/jobs' && params.has('definition')) definitionJobs(view, params.get('definition'));
    else if (path === '/jobs') jobsPage(view, params);
    else if (job) jobPage(view, job[1]);
    else if (path === '/queues') queuesPage(view);
    else if (path === '/definitions') definitionsPage(view);
    else view.append(h('h1', null, 'Not found'), empty('No such page.'));
  }

  // The executions of one definition: the jobs list of the definition filter.
  function definitionJobs(view, definition) {
    const box = h('div');
    view.append(h('h1', null, `Executions of ${definition}`), h('div', { class: 'panel' }, box));
    every(5000, async () => {
      const page = await get(`/v1/jobs?${new URLSearchParams({ definition, sort: 'id', order: 'desc', limit: '100' })}`);
      box.replaceChildren(page.jobs.length === 0 ? empty('Never executed.')
        : table(['Job', 'State', 'Created', 'Finished'], page.jobs.map((job) => h('tr', null,
          h('td', null, jobLink(job.id)), h('td', null, badge(job.state)), h('td', null, when(job.created_at)), h('td', null, when(job.finished_at))))));
    });
  }

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('login-token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN, token);
    $('login-token').value = '';
    actionsRefused = null;
    route();
  });
  window.addEventListener('hashchange', route);
  route();
})();
