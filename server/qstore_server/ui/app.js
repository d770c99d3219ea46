// The Q-Store console: one ES module, no build step. It speaks the JSON protocol under /v1/
// (docs/PROTOCOL.md) with the key the user gives, kept in sessionStorage for this tab only.
/* global uPlot */

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const KEY_STORE = 'qstore.apiKey';
const POLL_MS = 400;
const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

// ------------------------------------------------------------------ the protocol

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers };
  if (method === 'POST') {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  const res = await fetch(`/v1${path}`, init);
  const text = await res.text();
  if (res.ok && (res.headers.get('Content-Type') || '').startsWith('text/plain')) return text; // /metrics
  let doc;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ApiError(res.status, res.ok ? 'internal' : `http_${res.status}`, text.slice(0, 200) || res.statusText);
  }
  if (!res.ok || doc.error) {
    throw new ApiError(res.status, doc.error?.code ?? 'internal', doc.error?.message ?? res.statusText);
  }
  return doc.result;
}

const enc = encodeURIComponent;
const col = (name) => `/collections/${enc(name)}`;

// ------------------------------------------------------------------ feedback: errors and status

function showError(err) {
  const box = $('#error');
  if (err instanceof ApiError) {
    $('#error-code').textContent = `${err.code} (HTTP ${err.status}):`;
    $('#error-message').textContent = err.message;
  } else {
    $('#error-code').textContent = 'error:';
    $('#error-message').textContent = String(err?.message ?? err);
  }
  box.hidden = false;
}

function clearError() {
  $('#error').hidden = true;
}

function say(text) {
  $('#status').textContent = text;
}

// Run an action: clear the old error, show a new one (code and message) if it fails.
async function attempt(fn) {
  clearError();
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  }
}

function parseJSON(text, what) {
  if (!text.trim()) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(0, 'invalid_argument', `${what} is not valid JSON: ${e.message}`);
  }
}

// ------------------------------------------------------------------ small DOM helpers

function cell(content, attrs = {}) {
  const td = document.createElement(attrs.th ? 'th' : 'td');
  if (attrs.th) td.scope = 'row';
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? '';
  if (attrs.className) td.className = attrs.className;
  return td;
}

function row(cells) {
  const tr = document.createElement('tr');
  tr.append(...cells);
  return tr;
}

function button(text, onClick, className = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  if (className) b.className = className;
  b.addEventListener('click', onClick);
  return b;
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...rows);
  if (!rows.length) tbody.append(row([Object.assign(cell(empty), { colSpan: columns })]));
}

const fmt = (x, digits = 4) => (x === null || x === undefined ? '–' : Number(x).toPrecision(digits));
const short = (value, n = 80) => {
  const s = JSON.stringify(value);
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
};

function secondsLeft(expiresAt) {
  if (expiresAt === null || expiresAt === undefined) return 'never';
  const left = expiresAt - Date.now() / 1000;
  return left > 0 ? `${left.toFixed(1)} s` : 'expired';
}

// A |α|² bar: a meter for assistive technology, a bar for the eye, the number as text.
function probabilityBar(p) {
  const wrap = document.createElement('div');
  wrap.className = 'bar';
  wrap.setAttribute('role', 'meter');
  wrap.setAttribute('aria-valuemin', '0');
  wrap.setAttribute('aria-valuemax', '1');
  wrap.setAttribute('aria-valuenow', String(p));
  wrap.setAttribute('aria-label', '|α|²');
  const fillEl = document.createElement('span');
  fillEl.className = 'bar-fill';
  fillEl.style.width = `${(100 * p).toFixed(1)}%`;
  const label = document.createElement('span');
  label.className = 'bar-label';
  label.textContent = `${(100 * p).toFixed(1)}%`;
  wrap.append(fillEl, label);
  return wrap;
}

// ------------------------------------------------------------------ access: what the key may do

// The console asks the server what the key may do with calls whose bodies are invalid, so they
// are refused after the scope check and before anything runs: 403 means no scope, 400 means yes.
async function probe(path) {
  try {
    await api('POST', path, {});
    return true;
  } catch (err) {
    if (err.code === 'forbidden') return false;
    if (err.code === 'unauthorized') throw err;
    return true;
  }
}

const access = { read: false, write: false, admin: false };

async function checkAccess() {
  clearError();
  try {
    await api('GET', '/collections');
    access.read = true;
    access.write = await probe('/collections');
    access.admin = await probe('/admin/backup');
  } catch (err) {
    Object.assign(access, { read: false, write: false, admin: false });
    showError(err);
  }
  const words = access.admin ? 'read, write and admin' : access.write ? 'read and write' : access.read ? 'read only' : 'none';
  $('#access').textContent = `Access: ${words}`;
  document.body.dataset.access = access.admin ? 'admin' : access.write ? 'write' : access.read ? 'read' : 'none';
  $$('.needs-write').forEach((el) => { el.hidden = !access.write; });
  $$('.needs-admin').forEach((el) => { el.hidden = !access.admin; });
}

// ------------------------------------------------------------------ views and tabs

const views = {};
let current = null;

function show(name, focus = false) {
  if (!views[name]) name = 'collections';
  if (name !== current) say('');
  current = name;
  for (const tab of $$('[role="tab"]')) {
    const on = tab.dataset.view === name;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`#${tab.getAttribute('aria-controls')}`).hidden = !on;
  }
  if (focus) $(`#tab-${name}`).focus();
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  return views[name].enter?.();
}

function setupTabs() {
  const tabs = $$('[role="tab"]');
  tabs.forEach((tab, i) => {
    tab.addEventListener('click', () => show(tab.dataset.view));
    tab.addEventListener('keydown', (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      let j = null;
      if (step) j = (i + step + tabs.length) % tabs.length;
      if (e.key === 'Home') j = 0;
      if (e.key === 'End') j = tabs.length - 1;
      if (j !== null) {
        e.preventDefault();
        show(tabs[j].dataset.view, true);
      }
    });
  });
  window.addEventListener('hashchange', () => show(location.hash.slice(1)));
}

async function fillCollectionSelects(names) {
  names = names ?? (await api('GET', '/collections'));
  for (const select of $$('.collection-select')) {
    const keep = select.value;
    select.replaceChildren(...names.map((n) => new Option(n, n)));
    if (names.includes(keep)) select.value = keep;
  }
  return names;
}

// ------------------------------------------------------------------ collections

views.collections = {
  async enter() {
    await attempt(() => this.load());
  },
  async load() {
    const names = await api('GET', '/collections');
    await fillCollectionSelects(names);
    const infos = await Promise.all(names.map((n) => api('GET', `${col(n)}/info`)));
    const rows = infos.map((info) => {
      const idx = info.index || {};
      const params = Object.entries(idx).filter(([k]) => k !== 'type').map(([k, v]) => `${k}=${v}`).join(', ');
      const expiry = info.coherence_time ? `${info.coherence_time} s, then ${info.on_decohere}` : 'never';
      const actions = document.createElement('div');
      actions.className = 'actions';
      actions.append(
        button('Browse', () => { $('#records-form [name=collection]').value = info.name; show('records'); views.records.scroll(); }),
        button('Search', () => { $('#search-form [name=collection]').value = info.name; show('search'); }),
      );
      if (access.admin) actions.append(button('Drop…', () => this.askDrop(info.name), 'danger'));
      return row([cell(info.name, { th: true }), cell(info.dim), cell(info.metric), cell(info.count),
        cell(`${idx.type ?? '?'}${params ? ` (${params})` : ''}`), cell(info.indexed_vectors), cell(info.tombstones),
        cell(expiry), cell(actions)]);
    });
    fill($('#collections-table tbody'), rows, 'No collections yet.', 9);
    say(`${names.length} collection(s).`);
  },
  async create(form) {
    const f = new FormData(form);
    const num = (k) => (f.get(k) === '' ? undefined : Number(f.get(k)));
    const index = { type: f.get('index_type') };
    for (const k of ['m', 'ef_construction', 'ef_search', 'nlist']) if (num(k) !== undefined) index[k] = num(k);
    const body = { name: f.get('name'), dim: num('dim'), metric: f.get('metric'), index, on_decohere: f.get('on_decohere') };
    if (num('coherence_time') !== undefined) body.coherence_time = num('coherence_time');
    await api('POST', '/collections', body);
    say(`Created collection ${body.name}.`);
    form.reset();
    await this.load();
  },
  askDrop(name) {
    const dialog = $('#drop-dialog');
    $('#drop-name').textContent = name;
    $('#drop-confirm').value = '';
    dialog.dataset.name = name;
    dialog.returnValue = '';
    dialog.showModal();
    $('#drop-confirm').focus();
  },
  async dropped(dialog) {
    const name = dialog.dataset.name;
    if (dialog.returnValue !== 'drop') return;
    if ($('#drop-confirm').value !== name) {
      showError(new ApiError(0, 'invalid_argument', `type ${name} to confirm; nothing was dropped`));
      return;
    }
    await attempt(async () => {
      await api('DELETE', col(name));
      say(`Dropped collection ${name}.`);
      await this.load();
    });
  },
};

// ------------------------------------------------------------------ records

views.records = {
  loaded: [],
  cursor: null,
  open: null,
  timer: null,
  async enter() {
    await attempt(() => fillCollectionSelects());
  },
  params() {
    const f = new FormData($('#records-form'));
    return { name: f.get('collection'), limit: Number(f.get('limit')) || 50, filter: parseJSON(f.get('filter'), 'the filter') };
  },
  async scroll(more = false) {
    await attempt(async () => {
      const { name, limit, filter } = this.params();
      if (!name) throw new ApiError(0, 'invalid_argument', 'choose a collection');
      const page = await api('POST', `${col(name)}/scroll`, { limit, cursor: more ? this.cursor : null, filter });
      this.loaded = more ? this.loaded.concat(page.records) : page.records;
      this.collection = name;
      this.cursor = page.next_cursor;
      $('#records-more').disabled = !page.next_cursor;
      this.render();
      say(`${this.loaded.length} record(s) loaded from ${name}${page.next_cursor ? '; more available' : ''}.`);
    });
  },
  render() {
    const rows = this.loaded.map((r) => row([
      cell(button(r.id, () => this.show(r.id), 'link'), { th: true }),
      cell(r.branches.length), cell(short(r.metadata)),
      cell(secondsLeft(r.expires_at), { className: 'expires' }), cell(r.version),
    ]));
    fill($('#records-table tbody'), rows, 'No records match.', 5);
    $('#records-count').textContent = `(${this.loaded.length} loaded)`;
  },
  async show(id) {
    await attempt(async () => {
      const [rec] = await api('POST', `${col(this.collection)}/get`, { ids: [id] });
      if (!rec) throw new ApiError(404, 'not_found', `record ${id} is gone (deleted or decohered)`);
      this.open = rec;
      $('#record-detail').hidden = false;
      $('#record-title').textContent = `Record ${rec.id}`;
      $('#record-version').textContent = rec.version;
      $('#record-metadata').textContent = JSON.stringify(rec.metadata);
      $('#record-vector').textContent = short(rec.vector.map((x) => Number(x.toFixed(4))), 120);
      const rows = rec.branches.map((b) => {
        const [re, im] = b.amplitude;
        return row([cell(b.context ?? '(none)', { th: true }), cell(`${fmt(re)} ${im < 0 ? '−' : '+'} ${fmt(Math.abs(im))}i`),
          cell(probabilityBar(re * re + im * im))]);
      });
      fill($('#branches-table tbody'), rows, 'No branches.', 3);
      this.tick();
      clearInterval(this.timer);
      if (rec.expires_at !== null) this.timer = setInterval(() => this.tick(), 1000);
      $('#record-title').focus();
      await this.partners(rec.id);
    });
  },
  tick() {
    const rec = this.open;
    if (!rec) return;
    $('#record-expiry').textContent = rec.expires_at === null ? 'Does not expire.'
      : `Expires in ${secondsLeft(rec.expires_at)} (at ${new Date(rec.expires_at * 1000).toLocaleTimeString()}).`;
    const byId = new Map(this.loaded.filter((r) => r.expires_at !== null).map((r) => [r.id, r]));
    if (!byId.size) return;
    for (const tr of $$('#records-table tbody tr')) {
      const r = byId.get(tr.querySelector('th')?.textContent);
      if (r) tr.querySelector('.expires').textContent = secondsLeft(r.expires_at);
    }
  },
  // Group membership is not on the wire; ρ with each loaded record is (the `correlation` call).
  async partners(id) {
    const others = this.loaded.filter((r) => r.id !== id).slice(0, 200);
    const rhos = await Promise.all(others.map((r) => api('POST', `${col(this.collection)}/correlation`, { id_a: id, id_b: r.id })
      .then((rho) => [r.id, rho], () => [r.id, 0])));
    const found = rhos.filter(([, rho]) => rho > 0).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    $('#partners-note').textContent = `ρ = 1 − Π(1 − ρ_g) over the groups both records share, checked against the ${others.length} other loaded record(s).`;
    fill($('#partners-table tbody'), found.map(([pid, rho]) => row([cell(pid, { th: true }), cell(fmt(rho, 3))])),
      'Not entangled with any loaded record.', 2);
  },
};

// ------------------------------------------------------------------ search

views.search = {
  async enter() {
    await attempt(() => fillCollectionSelects());
  },
  async run(form) {
    const f = new FormData(form);
    const name = f.get('collection');
    let vector;
    if (f.get('by') === 'record') {
      const id = f.get('record');
      const [rec] = await api('POST', `${col(name)}/get`, { ids: [id] });
      if (!rec) throw new ApiError(404, 'not_found', `no record ${id} in ${name}`);
      vector = rec.vector;
    } else {
      vector = parseJSON(f.get('vector'), 'the vector');
      if (!Array.isArray(vector)) throw new ApiError(0, 'invalid_vector', 'paste a JSON list of numbers');
    }
    const tunneling = Number(f.get('tunneling')) || 0;
    const body = { vector, top_k: Number(f.get('top_k')), filter: parseJSON(f.get('filter'), 'the filter'),
      context: f.get('context') || null, tunneling, seed: Number(f.get('seed')) || 0 };
    const hits = await api('POST', `${col(name)}/query`, body);
    // Tunneling keeps the plain top_k's hits that it ranks high and adds hits from far regions
    // it entered; a hit plain search (same vector, filter, context) does not return came from one.
    let near = null;
    if (tunneling > 0) {
      const plain = await api('POST', `${col(name)}/query`, { ...body, tunneling: null, seed: null });
      near = new Set(plain.map((h) => h.id));
    }
    const region = (h) => (near === null ? 'plain search' : near.has(h.id) ? 'near (in plain top_k)' : 'far region (tunneled)');
    const rows = hits.map((h, i) => row([cell(i + 1), cell(h.id, { th: true }), cell(fmt(h.score, 6), { className: 'score' }),
      cell(region(h), { className: 'region' }), cell(short(h.metadata))]));
    fill($('#search-table tbody'), rows, 'No hits.', 5);
    const far = near === null ? 0 : hits.filter((h) => !near.has(h.id)).length;
    $('#search-summary').textContent = `${hits.length} hit(s)${tunneling > 0 ? `, ${far} from far regions (tunneling ${tunneling})` : ''}.`;
  },
};

// ------------------------------------------------------------------ charts (uPlot)

function chart(el, series, scales) {
  const width = Math.max(320, el.clientWidth || 640);
  const opts = {
    width, height: 260,
    scales: { x: { time: false }, ...scales },
    series: [{ label: series[0].label }, ...series.slice(1).map((s) => ({ label: s.label, stroke: s.color, width: 2, scale: s.scale, points: { show: true } }))],
    axes: [{ label: series[0].label, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] }, ...Object.keys(scales).map((scale, i) => ({ scale, label: series.find((s) => s.scale === scale).label, side: i ? 1 : 3, grid: { show: i === 0 } }))],
  };
  el.replaceChildren();
  const plot = new uPlot(opts, series.map(() => []), el);
  return {
    set(data) {
      plot.setData(data);
      el.dataset.points = String(data[0].length);
    },
  };
}

// ------------------------------------------------------------------ training

views.training = {
  watching: null,
  timer: null,
  async enter() {
    await attempt(async () => {
      const names = await api('GET', '/datasets');
      for (const sel of [$('#train-dataset'), $('#train-validation')]) {
        const keep = sel.value;
        const none = sel.id === 'train-validation' ? [new Option('none', '')] : [];
        sel.replaceChildren(...none, ...names.map((n) => new Option(n, n)));
        if (keep) sel.value = keep;
      }
      await this.refresh();
    });
    if (this.watching) await this.poll();
  },
  async refresh() {
    const [jobs, checkpoints] = await Promise.all([api('GET', '/jobs'), api('GET', '/checkpoints')]);
    const rows = jobs.slice().reverse().map((job) => {
      const actions = document.createElement('div');
      actions.className = 'actions';
      if (job.kind === 'train') actions.append(button('Watch', () => this.watch(job.id, job.params.run)));
      if (!FINAL.has(job.state) && access.write) actions.append(button('Cancel', () => this.cancel(job.id), 'danger'));
      const bar = document.createElement('progress');
      bar.max = 1;
      bar.value = job.progress;
      bar.setAttribute('aria-label', `progress of job ${job.id.slice(0, 8)}`);
      return row([cell(job.id.slice(0, 8), { th: true }), cell(job.kind), cell(job.state, { className: 'state' }), cell(bar),
        cell(job.params?.run ?? ''), cell(job.error ? `${job.error.code}: ${job.error.message}` : job.message), cell(actions)]);
    });
    fill($('#jobs-table tbody'), rows, 'No jobs.', 7);
    const runs = checkpoints.filter((c) => c.kind === 'run');
    fill($('#runs-table tbody'), runs.map((r) => {
      const m = r.metrics || {};
      const quality = m.accuracy ?? m.r2 ?? [];
      return row([cell(r.run, { th: true }), cell(r.dataset ?? ''), cell(r.epoch), cell(fmt(m.loss?.at(-1))),
        cell(fmt(quality.at(-1))), cell((r.checkpoints || []).join(', ') || 'none')]);
    }), 'No training runs yet.', 6);
  },
  async start(form) {
    const f = new FormData(form);
    const dataset = f.get('dataset');
    const info = await api('GET', `/datasets/${enc(dataset)}`);
    const model = { type: f.get('type'), n_qubits: Number(f.get('n_qubits')), layers: Number(f.get('layers')) };
    if (model.type === 'vqc') model.n_classes = Math.max(2, (info.classes || []).length);
    const run = f.get('run') || `console-${new Date().toISOString().replace(/[-:T.Z]/g, '').slice(0, 14)}`;
    const params = { dataset, model, run, epochs: Number(f.get('epochs')), batch_size: Number(f.get('batch_size')),
      lr: Number(f.get('lr')), optimizer: f.get('optimizer'), validation: f.get('validation') || null };
    const job = await api('POST', '/jobs', { kind: 'train', params });
    say(`Started training job ${job.id.slice(0, 8)} (run ${run}).`);
    await this.watch(job.id, run);
  },
  async watch(id, run) {
    clearTimeout(this.timer);
    this.watching = { id, run };
    $('#watch').hidden = false;
    $('#watch-title').textContent = `Run ${run} (job ${id.slice(0, 8)})`;
    $('#watch-cancel').dataset.job = id;
    this.plot = chart($('#watch-chart'), [{ label: 'epoch' }, { label: 'loss', color: '#b03a2e', scale: 'loss' },
      { label: 'accuracy', color: '#1f618d', scale: 'quality' }], { loss: {}, quality: {} });
    $('#epochs-table tbody').replaceChildren();
    $('#watch-title').focus();
    await this.poll();
  },
  async poll() {
    clearTimeout(this.timer);
    const w = this.watching;
    if (!w || current !== 'training') return;
    const ok = await attempt(async () => {
      const [job, docs] = await Promise.all([api('GET', `/jobs/${enc(w.id)}`), api('GET', `/checkpoints?run=${enc(w.run)}`)]);
      if (this.watching !== w) return true;
      $('#watch-progress').value = job.progress;
      $('#watch-state').textContent = job.state;
      $('#watch-message').textContent = job.error ? `${job.error.code}: ${job.error.message}` : job.message;
      $('#watch-cancel').hidden = FINAL.has(job.state) || !access.write;
      const record = docs.find((d) => d.kind === 'run');
      const m = record?.metrics || {};
      const epochs = m.epoch || [];
      const quality = m.accuracy ?? m.r2 ?? [];
      this.plot.set([epochs, m.loss || [], quality]);
      const valKey = Object.keys(m).find((k) => k.startsWith('val_') && k !== 'val_loss');
      $('#epochs-table tbody').replaceChildren(...epochs.map((e, i) => row([cell(e, { th: true }), cell(fmt(m.loss[i])),
        cell(fmt(quality[i])), cell(valKey ? fmt(m[valKey][i]) : '–')])));
      if (FINAL.has(job.state)) {
        say(`Job ${w.id.slice(0, 8)} ${job.state} after ${epochs.length} epoch(s).`);
        await this.refresh();
        return true;
      }
      return false;
    });
    if (ok === false) this.timer = setTimeout(() => this.poll(), POLL_MS);
  },
  async cancel(id) {
    await attempt(async () => {
      await api('POST', `/jobs/${enc(id)}/cancel`);
      say(`Asked job ${id.slice(0, 8)} to cancel.`);
      await this.refresh();
    });
  },
};

// ------------------------------------------------------------------ federated runs

views.federated = {
  rounds: [],
  async enter() {
    await attempt(async () => {
      const docs = await api('GET', '/checkpoints');
      const runs = [...new Set(docs.filter((d) => d.kind === 'federated').map((d) => d.run))];
      const sel = $('#fed-run');
      const keep = sel.value;
      sel.replaceChildren(...runs.map((r) => new Option(r, r)));
      if (runs.includes(keep)) sel.value = keep;
      if (!runs.length) say('No federated runs: a Coordinator with db= this server checkpoints each round here.');
      else await this.show(sel.value);
    });
  },
  async show(run) {
    const docs = (await api('GET', `/checkpoints?run=${enc(run)}`)).filter((d) => d.kind === 'federated');
    // The summaries leave maps out; each round's full document carries its round record.
    this.rounds = await Promise.all(docs.map((d) => api('GET', `/checkpoints/${enc(d.id)}`)));
    const m = (r, k) => r.metrics?.[k] ?? null;
    this.plot = chart($('#fed-chart'), [{ label: 'round' }, { label: 'accuracy', color: '#1f618d', scale: 'quality' },
      { label: 'ε', color: '#7d3c98', scale: 'epsilon' }], { quality: {}, epsilon: {} });
    this.plot.set([this.rounds.map((r) => r.round), this.rounds.map((r) => m(r, 'accuracy')), this.rounds.map((r) => m(r, 'epsilon'))]);
    fill($('#rounds-table tbody'), this.rounds.map((r) => row([cell(r.round, { th: true }), cell(fmt(m(r, 'accuracy'))),
      cell(fmt(m(r, 'loss'))), cell(fmt(m(r, 'epsilon'))), cell(r.record?.samples ?? '–'), cell((r.participants || []).join(', '))])),
    'No aggregated rounds.', 6);
    const sel = $('#fed-round');
    sel.replaceChildren(...this.rounds.map((r) => new Option(`round ${r.round}`, r.round)));
    if (this.rounds.length) {
      sel.value = this.rounds.at(-1).round;
      this.participants(this.rounds.at(-1).round);
    }
  },
  participants(round) {
    const r = this.rounds.find((x) => String(x.round) === String(round));
    const rec = r?.record;
    let rows;
    if (!rec) {
      rows = (r?.participants || []).map((p) => row([cell(p, { th: true }), cell('aggregated'), cell('–'), cell('–'), cell('')]));
    } else {
      const names = [...new Set([...rec.selected, ...rec.participants, ...Object.keys(rec.excluded)])];
      rows = names.map((p) => {
        const excluded = rec.excluded[p];
        const local = rec.local?.[p] || {};
        const status = rec.participants.includes(p) ? 'aggregated' : excluded !== undefined ? 'excluded' : 'not selected';
        const samples = rec.counts?.[p] ?? (rec.secure && status === 'aggregated' ? 'hidden (secure aggregation)' : '–');
        return row([cell(p, { th: true }), cell(status, { className: 'status' }), cell(samples),
          cell(fmt(local.accuracy ?? local.r2)), cell(excluded ?? '')]);
      });
    }
    fill($('#participants-table tbody'), rows, 'No participants recorded.', 5);
  },
};

// ------------------------------------------------------------------ metrics (Prometheus text)

function parseProm(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

views.metrics = {
  last: null,
  timer: null,
  async enter() {
    await this.refresh();
  },
  async refresh() {
    clearTimeout(this.timer);
    await attempt(async () => {
      const samples = parseProm(await api('GET', '/metrics'));
      const now = performance.now() / 1000;
      const routes = {};
      const get = (r) => (routes[r] ??= { requests: 0, errors: 0, sum: 0, count: 0 });
      for (const s of samples) {
        if (s.name === 'qstore_requests_total') {
          get(s.labels.route).requests += s.value;
          if (Number(s.labels.status) >= 400) get(s.labels.route).errors += s.value;
        } else if (s.name === 'qstore_request_duration_seconds_sum') get(s.labels.route).sum += s.value;
        else if (s.name === 'qstore_request_duration_seconds_count') get(s.labels.route).count += s.value;
      }
      const prev = this.last;
      const rows = Object.entries(routes).sort((a, b) => b[1].requests - a[1].requests).map(([route, r]) => {
        const rate = prev && prev.routes[route] ? (r.requests - prev.routes[route].requests) / (now - prev.at) : null;
        return row([cell(route, { th: true }), cell(r.requests), cell(rate === null ? '–' : rate.toFixed(2)),
          cell(r.count ? (1000 * r.sum / r.count).toFixed(2) : '–'), cell(r.errors)]);
      });
      fill($('#requests-table tbody'), rows, 'No requests counted yet.', 5);
      this.last = { at: now, routes };
      const gauges = samples.filter((s) => /^qstore_(records|index_vectors|index_tombstones|collections|jobs|errors_total)$/.test(s.name));
      fill($('#gauges-table tbody'), gauges.map((s) => row([cell(s.name, { th: true }),
        cell(Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(', ')), cell(s.value)])), 'No samples.', 3);
    });
    if (current === 'metrics' && $('#metrics-auto').checked) this.timer = setTimeout(() => this.refresh(), 2000);
  },
};

// ------------------------------------------------------------------ wiring

function onSubmit(selector, fn) {
  $(selector).addEventListener('submit', (e) => {
    e.preventDefault();
    attempt(() => fn(e.target));
  });
}

function setup() {
  $('#api-key').value = sessionStorage.getItem(KEY_STORE) ?? '';
  $('#key-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    document.body.dataset.ready = 'false';
    const key = $('#api-key').value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
    await checkAccess();
    await show(current ?? 'collections');
    document.body.dataset.ready = 'true';
  });
  $('#forget-key').addEventListener('click', async () => {
    sessionStorage.removeItem(KEY_STORE);
    $('#api-key').value = '';
    await checkAccess();
  });
  $('#error-close').addEventListener('click', clearError);
  setupTabs();

  $('#collections-refresh').addEventListener('click', () => views.collections.enter());
  onSubmit('#create-form', (form) => views.collections.create(form));
  $('#drop-dialog').addEventListener('close', (e) => views.collections.dropped(e.target));

  $('#records-form').addEventListener('submit', (e) => { e.preventDefault(); views.records.scroll(); });
  $('#records-more').addEventListener('click', () => views.records.scroll(true));
  onSubmit('#rho-form', async (form) => {
    const other = new FormData(form).get('other');
    const rho = await api('POST', `${col(views.records.collection)}/correlation`, { id_a: views.records.open.id, id_b: other });
    $('#rho-out').textContent = `ρ = ${fmt(rho, 3)}`;
  });
  $('#record-search').addEventListener('click', () => {
    const form = $('#search-form');
    form.collection.value = views.records.collection;
    form.record.value = views.records.open.id;
    form.querySelector('[value=record]').checked = true;
    form.dispatchEvent(new Event('change'));
    show('search');
    form.record.focus();
  });

  $('#search-form').addEventListener('change', (e) => {
    const byRecord = e.currentTarget.querySelector('[name=by]:checked').value === 'record';
    $('.by-record').hidden = !byRecord;
    $('.by-vector').hidden = byRecord;
  });
  onSubmit('#search-form', (form) => views.search.run(form));

  onSubmit('#train-form', (form) => views.training.start(form));
  $('#jobs-refresh').addEventListener('click', () => attempt(() => views.training.refresh()));
  $('#watch-cancel').addEventListener('click', (e) => views.training.cancel(e.target.dataset.job));

  onSubmit('#fed-form', (form) => views.federated.show(new FormData(form).get('run')));
  onSubmit('#round-form', (form) => views.federated.participants(new FormData(form).get('round')));

  $('#metrics-refresh').addEventListener('click', () => views.metrics.refresh());
  $('#metrics-auto').addEventListener('change', () => views.metrics.refresh());
}

setup();
// data-ready tells tests (and anyone scripting the page) that the view has loaded its data.
checkAccess().then(() => show(location.hash.slice(1) || 'collections')).finally(() => {
  document.body.dataset.ready = 'true';
});
