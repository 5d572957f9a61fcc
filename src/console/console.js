// Tessera operator console: the modules and their event map (public, from map.json), and —
// with an admin token — the bus per subscriber and the dead letters, refreshed every few
// seconds, each dead letter with a Replay button. Plain DOM, no library, no build step.
// The token lives in this tab's sessionStorage only; it is sent as a bearer header, never
// in a URL.
'use strict';

(() => {
  const TOKEN_KEY = 'tessera.console.token';
  const REFRESH_MS = 5000;
  const API = '../api/v1/admin';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  let moduleOf = new Map(); // subscriber name -> module
  let timer = null;

  // ---- DOM helpers ----

  function build(ns, tag, attrs, children) {
    const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs ?? {})) {
      if (key === 'class') node.setAttribute('class', value);
      else if (key === 'text') node.textContent = value;
      else if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    for (const child of children ?? []) node.append(child);
    return node;
  }
  const el = (tag, attrs, ...children) => build(null, tag, attrs, children);
  const svg = (tag, attrs, ...children) => build(SVG_NS, tag, attrs, children);

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

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

  /** The module map as an arc diagram: modules in a row, trait calls above, events below. */
  function drawMap(map) {
    const W = 136;
    const H = 54;
    const STEP = 196;
    const LINE = 14;
    const nodes = map.modules.map((m) => ({
      id: m.name,
      title: m.name,
      sub: `${plural(m.publishes.length, 'event', 'events')} · ${plural(m.subscribers.length, 'sub', 'subs')}`,
      tip: m.publishes.join('\n'),
      kind: 'module',
    }));
    for (const r of map.remote) nodes.push({ id: r, title: r, sub: 'not built in', kind: 'remote' });
    if (map.flows.some((f) => f.from === 'elsewhere')) {
      nodes.push({ id: 'elsewhere', title: 'elsewhere', sub: 'modules not built in', kind: 'virtual' });
    }
    if (map.dynamic.length > 0) {
      nodes.push({ id: 'any_module', title: 'any module', sub: 'contract triggers', kind: 'virtual' });
    }
    const index = new Map(nodes.map((n, i) => [n.id, i]));

    const edges = [
      ...map.calls.map((c) => ({ from: c.from, to: c.to, lines: [c.via], kind: 'call', tip: c.purpose })),
      ...map.flows.map((f) => ({ from: f.from, to: f.to, lines: f.event_types, kind: 'event' })),
      ...map.dynamic.map((m) => ({
        from: 'any_module',
        to: m,
        lines: ['types named by', 'deployed contracts'],
        kind: 'dynamic',
      })),
    ].filter((e) => index.has(e.from) && index.has(e.to));

    // Lanes: an arc is drawn above every shorter arc it overlaps, so that arcs nest and
    // their labels never cover one another.
    const sides = { up: [], down: [] };
    for (const e of edges) {
      e.a = index.get(e.from);
      e.b = index.get(e.to);
      e.lo = Math.min(e.a, e.b);
      e.hi = Math.max(e.a, e.b);
      e.labelW = Math.max(...e.lines.map((l) => l.length)) * 6.4 + 14;
      e.labelH = e.lines.length * LINE + 8;
      sides[e.kind === 'call' ? 'up' : 'down'].push(e);
    }
    const extent = { up: 0, down: 0 };
    for (const [side, list] of Object.entries(sides)) {
      list.sort((x, y) => x.hi - x.lo - (y.hi - y.lo) || x.lo - y.lo);
      const placed = [];
      for (const e of list) {
        const under = placed.filter((p) => p.lo <= e.hi && e.lo <= p.hi);
        e.lane = under.length === 0 ? 0 : Math.max(...under.map((p) => p.lane)) + 1;
        const floor = under.length === 0 ? 18 : Math.max(...under.map((p) => p.apex + p.labelH / 2));
        e.apex = floor + 12 + e.labelH / 2;
        placed.push(e);
        extent[side] = Math.max(extent[side], e.apex + e.labelH / 2);
      }
    }

    const margin = 16;
    const width = nodes.length * STEP - (STEP - W) + 2 * margin;
    const rowY = margin + extent.up;
    const height = rowY + H + extent.down + margin;
    const cx = (i) => margin + i * STEP + W / 2;

    const root = svg('svg', {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: 'img',
      'aria-label': 'Module and event map',
    });
    const defs = svg('defs');
    for (const kind of ['call', 'event', 'dynamic']) {
      defs.append(
        svg(
          'marker',
          {
            id: `arrow-${kind}`,
            viewBox: '0 0 10 10',
            refX: 9,
            refY: 5,
            // The same size whatever the line's width.
            markerUnits: 'userSpaceOnUse',
            markerWidth: kind === 'call' ? 12 : 9,
            markerHeight: kind === 'call' ? 12 : 9,
            orient: 'auto-start-reverse',
            class: `arrow ${kind}`,
          },
          svg('path', { d: 'M0,0 L10,5 L0,10 z', class: `arrowhead ${kind}` }),
        ),
      );
    }
    root.append(defs);

    const edgeLayer = svg('g', { class: 'edges' });
    const labelLayer = svg('g', { class: 'labels' });
    for (const e of edges) {
      const up = e.kind === 'call';
      const y0 = up ? rowY : rowY + H;
      const sign = up ? -1 : 1;
      // Anchors move outwards with the lane, so that nested arcs do not share end points.
      const inset = Math.max(-W / 2 + 8, 30 - 16 * e.lane);
      let x1;
      let x2;
      if (e.a === e.b) {
        x1 = cx(e.a) - 24;
        x2 = cx(e.a) + 24;
      } else {
        const dir = e.b > e.a ? 1 : -1;
        x1 = cx(e.a) + dir * inset;
        x2 = cx(e.b) - dir * inset;
      }
      const control = y0 + (sign * e.apex) / 0.75;
      const path = svg(
        'path',
        {
          d: `M${x1},${y0} C${x1},${control} ${x2},${control} ${x2},${y0}`,
          class: `edge ${e.kind}`,
          'marker-end': `url(#arrow-${e.kind})`,
          'data-from': e.from,
          'data-to': e.to,
        },
        svg('title', { text: `${e.from} → ${e.to}: ${e.lines.join(', ')}${e.tip ? `\n${e.tip}` : ''}` }),
      );
      edgeLayer.append(path);
      const lx = (x1 + x2) / 2;
      const ly = y0 + sign * e.apex;
      const label = svg('g', { class: `label ${e.kind}` });
      label.append(
        svg('rect', {
          x: lx - e.labelW / 2,
          y: ly - e.labelH / 2,
          width: e.labelW,
          height: e.labelH,
          rx: 5,
        }),
      );
      e.lines.forEach((line, i) => {
        label.append(
          svg('text', {
            x: lx,
            y: ly - e.labelH / 2 + 4 + LINE * (i + 1) - 3,
            'text-anchor': 'middle',
            text: line,
          }),
        );
      });
      labelLayer.append(label);
    }
    root.append(edgeLayer, labelLayer);

    const nodeLayer = svg('g', { class: 'nodes' });
    nodes.forEach((n, i) => {
      const x = cx(i) - W / 2;
      nodeLayer.append(
        svg(
          'g',
          { class: `node ${n.kind}`, 'data-module': n.id },
          svg('title', { text: n.tip ? `${n.title} publishes:\n${n.tip}` : n.title }),
          svg('rect', { x, y: rowY, width: W, height: H, rx: 8 }),
          svg('text', { class: 'title', x: cx(i), y: rowY + 23, 'text-anchor': 'middle', text: n.title }),
          svg('text', { class: 'sub', x: cx(i), y: rowY + 41, 'text-anchor': 'middle', text: n.sub }),
        ),
      );
    });
    root.append(nodeLayer);
    $('map').replaceChildren(root);
  }

  async function loadMap() {
    const response = await fetch('map.json', { cache: 'no-store' });
    if (!response.ok) throw new Error(`map.json answered ${response.status}`);
    const map = await response.json();
    moduleOf = new Map(map.modules.flatMap((m) => m.subscribers.map((s) => [s.name, m.name])));
    renderModules(map);
    drawMap(map);
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
})();
