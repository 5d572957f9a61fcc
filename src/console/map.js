// The module and event map of /console/map.json drawn as SVG: an arc diagram with the
// modules in a row, trait calls arching above, events below (dashed: types named by deployed
// contracts). The same data `tessera modules` renders as Mermaid in docs/modules.md.
import { plural, svg } from './dom.js';

/** The module map as an arc diagram: modules in a row, trait calls above, events below. */
export function drawMap(map, container) {
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
  container.replaceChildren(root);
}
