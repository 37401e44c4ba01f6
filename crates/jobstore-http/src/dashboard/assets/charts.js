// SVG line charts for the dashboard, drawn with DOM calls only (no HTML strings, no library).
'use strict';

window.Charts = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 640, H = 220, LEFT = 44, RIGHT = 12, TOP = 10, BOTTOM = 26;

  function node(tag, attrs) {
    const element = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) element.setAttribute(key, String(value));
    return element;
  }

  function text(x, y, content, anchor) {
    const t = node('text', { x, y, 'text-anchor': anchor || 'middle' });
    t.textContent = content;
    return t;
  }

  // A round upper bound for the y axis.
  function niceMax(value) {
    if (value <= 4) return 4;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) return step * power;
    }
    return 10 * power;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  // series: [{name, points: [[x, y], ...], total?}]; x0..x1: the x range (ms). Answers a
  // <figure> with the SVG and a legend; `label` names the chart for assistive technology.
  function lines(series, x0, x1, label) {
    const figure = document.createElement('figure');
    figure.className = 'chart-figure';
    const svg = node('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label });
    const maxY = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1]))));
    const spanX = Math.max(1, x1 - x0);
    const px = (x) => LEFT + ((x - x0) / spanX) * (W - LEFT - RIGHT);
    const py = (y) => TOP + (1 - y / maxY) * (H - TOP - BOTTOM);
    for (const fraction of [0, 0.5, 1]) {
      const y = py(maxY * fraction);
      svg.appendChild(node('line', { x1: LEFT, x2: W - RIGHT, y1: y, y2: y, class: 'axis' }));
      svg.appendChild(text(LEFT - 6, y + 4, String(Math.round(maxY * fraction)), 'end'));
    }
    for (const fraction of [0, 0.5, 1]) {
      const x = x0 + spanX * fraction;
      svg.appendChild(text(px(x), H - 8, clock(x), fraction === 0 ? 'start' : fraction === 1 ? 'end' : 'middle'));
    }
    series.forEach((s, i) => {
      if (s.points.length === 0) return;
      const d = s.points
        .map((p, k) => `${k === 0 ? 'M' : 'L'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`)
        .join(' ');
      // A lone point has no line to draw: a ring marks it.
      const path = s.points.length === 1
        ? node('circle', { cx: px(s.points[0][0]).toFixed(1), cy: py(s.points[0][1]).toFixed(1), r: 3, class: `line s${i % 8}` })
        : node('path', { d, class: `line s${i % 8}` });
      const title = node('title');
      title.textContent = s.name;
      path.appendChild(title);
      svg.appendChild(path);
    });
    figure.appendChild(svg);
    const legend = document.createElement('div');
    legend.className = 'legend';
    series.forEach((s, i) => {
      const item = document.createElement('span');
      const swatch = document.createElement('i');
      swatch.className = `s${i % 8}`;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(s.total === undefined ? s.name : `${s.name}: ${s.total}`));
      legend.appendChild(item);
    });
    figure.appendChild(legend);
    return figure;
  }

  return { lines };
})();
