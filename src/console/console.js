// Tessera operator console: the modules and their event map (public, from map.json), and —
// with an admin token — the bus per subscriber and the dead letters, refreshed every few
// seconds, each dead letter with a Replay button. Plain DOM and ES modules
// (dom.js, map.js), no library, no build step.
// The token lives in this tab's sessionStorage only; it is sent as a bearer header, never
// in a URL.
import { el, plural } from './dom.js';
import { drawMap } from './map.js';

const TOKEN_KEY = 'tessera.console.token';
const REFRESH_MS = 5000;
const API = '../api/v1/admin';

const $ = (id) => document.getElementById(id);
let moduleOf = new Map(); // subscriber name -> module
let timer = null;

function seconds(s) {
  if (s < 1) return s === 0 ? '0 s' : '< 1 s';
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// ---- the token ----

function takeTokenFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
    // Out of the address bar and the history: the fragment is never sent, but it is seen.
    history.replaceState(null, '', location.pathname + location.search);
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

class Refused extends Error {}

async function call(method, path) {
  const response = await fetch(path, {
    method,
    cache: 'no-store',
    headers: { Accept: 'application/json', Authorization: `Bearer ${token()}` },
  });
  const body = await response.json().catch(() => null);
  if (response.status === 401 || response.status === 403) {
    throw new Refused(body?.detail ?? `The server refused the token (${response.status}).`);
  }
  if (!response.ok) {
    throw new Error(body?.detail ?? `${method} ${path} answered ${response.status}.`);
  }
  return body;
}

function showLogin(message) {
  stopRefreshing();
  $('login').hidden = false;
  $('bus').hidden = true;
  $('dead').hidden = true;
  $('forget').hidden = true;
  $('login-error').hidden = !message;
  $('login-error').textContent = message ?? '';
}

function signedIn() {
  $('login').hidden = true;
  $('bus').hidden = false;
  $('dead').hidden = false;
  $('forget').hidden = false;
}

// ---- modules and the map ----

function renderModules(map) {
  const list = $('modules');
  list.replaceChildren(
    ...map.modules.map((m) => {
      const types = m.subscribers.map((s) => s.name).join(', ');
      return el(
        'li',
        { 'data-module': m.name },
        el('div', { class: 'name', text: m.name }),
        el('div', {
          class: 'facts',
          text: `publishes ${plural(m.publishes.length, 'event type', 'event types')} · ${plural(
            m.subscribers.length,
            'subscriber',
            'subscribers',
          )}`,
          title: types,
        }),
      );
    }),
  );
  $('module-count').textContent = `${map.modules.length} built in`;
}


async function loadMap() {
  const response = await fetch('map.json', { cache: 'no-store' });
  if (!response.ok) throw new Error(`map.json answered ${response.status}`);
  const map = await response.json();
  moduleOf = new Map(map.modules.flatMap((m) => m.subscribers.map((s) => [s.name, m.name])));
  renderModules(map);
  drawMap(map, $('map'));
}

// ---- the bus ----

function count(n, kind) {
  return el('span', { class: `badge ${n === 0 ? 'zero' : kind}`, text: String(n) });
}

function renderSubscribers(list) {
  $('subscribers')
    .querySelector('tbody')
    .replaceChildren(
      ...list.items.map((s) =>
        el(
          'tr',
          { 'data-subscriber': s.subscriber },
          el('td', { class: 'mono', text: s.subscriber }),
          el('td', { text: moduleOf.get(s.subscriber) ?? s.subscriber.split('.')[0] }),
          el('td', { class: 'num' }, count(s.pending, 'pending')),
          el('td', { class: 'num' }, count(s.failed, 'failed')),
          el('td', {
            class: 'num',
            text: seconds(s.lag_seconds),
            title: s.oldest_pending ? `oldest waiting event published ${s.oldest_pending}` : 'nothing waits',
          }),
        ),
      ),
    );
}

function renderDeadLetters(page) {
  const rows = page.items.map((e) => {
    const button = el('button', { type: 'button', class: 'replay', text: 'Replay' });
    button.addEventListener('click', () => replay(e, button));
    return el(
      'tr',
      { 'data-event': e.id },
      el('td', { class: 'when', text: new Date(e.time).toLocaleString(), title: e.time }),
      el('td', { class: 'mono', text: e.type, title: `published by ${e.source}` }),
      el('td', { class: 'mono', text: e.subject }),
      el('td', { class: 'num', text: String(e.attempts) }),
      el('td', { class: 'error-text', text: e.last_error ?? '' }),
      el('td', {}, button),
    );
  });
  $('dead-letters').querySelector('tbody').replaceChildren(...rows);
  $('dead-letters').hidden = rows.length === 0;
  $('no-dead').hidden = rows.length > 0;
  $('dead-count').textContent =
    page.total > page.items.length ? `newest ${page.items.length} of ${page.total}` : `${page.total}`;
}

async function replay(event, button) {
  button.disabled = true;
  button.textContent = 'Replaying…';
  try {
    const result = await call('POST', `${API}/events/${encodeURIComponent(event.id)}/replay`);
    showStatus(
      `Replayed ${event.type} ${event.id}: ${plural(result.replayed, 'delivery', 'deliveries')} scheduled again.`,
    );
    await refresh();
  } catch (e) {
    button.disabled = false;
    button.textContent = 'Replay';
    failed(e);
  }
}

function showStatus(text) {
  $('status').textContent = text;
  $('status').hidden = false;
}

function failed(e) {
  if (e instanceof Refused) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(e.message);
  } else {
    $('refreshed').textContent = `could not refresh: ${e.message}`;
  }
}

async function refresh() {
  const [subscribers, dead] = await Promise.all([
    call('GET', `${API}/subscribers`),
    call('GET', `${API}/events?status=failed&limit=100`),
  ]);
  renderSubscribers(subscribers);
  renderDeadLetters(dead);
  $('refreshed').textContent = `updated ${new Date().toLocaleTimeString()} · every ${REFRESH_MS / 1000} s`;
}

function stopRefreshing() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

async function start() {
  if (!token()) {
    showLogin();
    return;
  }
  try {
    await refresh();
  } catch (e) {
    failed(e);
    return;
  }
  signedIn();
  stopRefreshing();
  timer = setInterval(() => {
    if (!document.hidden) refresh().catch(failed);
  }, REFRESH_MS);
}

// ---- wiring ----

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $('token').value.trim().replace(/^Bearer\s+/i, '');
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $('token').value = '';
  start();
});
$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin();
});
window.addEventListener('hashchange', () => {
  takeTokenFromFragment();
  start();
});

takeTokenFromFragment();
loadMap().catch((e) => {
  $('map').textContent = `The module map could not be loaded: ${e.message}`;
});
start();
