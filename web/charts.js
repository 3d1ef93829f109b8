// Small SVG charts for the reports page: columns or a line over days, a
// histogram against a target, and a weekday-by-hour heat map. No library:
// each chart is an <svg role="img"> labelled by its caption, and the page
// puts the same figures in a table next to it.

const NS = 'http://www.w3.org/2000/svg';
let uid = 0;

export function svgEl(name, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.append(e);
  return e;
}

function label(parent, x, y, str, attrs = {}) {
  const t = svgEl('text', { x, y, ...attrs }, parent);
  t.textContent = str;
  return t;
}

function tooltip(node, str) {
  const t = svgEl('title', {}, node);
  t.textContent = str;
}

/** A rounded-up axis maximum and tick step for counts or shares. */
export function niceScale(max, ticks = 4, { whole = true } = {}) {
  if (!(max > 0)) return { max: ticks, step: 1 };
  if (whole && max < ticks) return { max: ticks, step: 1 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

/** The same for durations in ms: steps of whole seconds or minutes. */
export function niceTimeScale(maxMs, ticks = 4) {
  const steps = [5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3];
  const max = maxMs > 0 ? maxMs : 60e3;
  const step = steps.find((s) => max / s <= ticks) ?? Math.ceil(max / ticks / 3600e3) * 3600e3;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

/** Striped fills, so that "over target" differs by more than colour. */
function patterns(svg, id) {
  const defs = svgEl('defs', {}, svg);
  const stripes = (name, colour) => {
    const p = svgEl('pattern', {
      id: `${id}-${name}`, width: 8, height: 8, patternUnits: 'userSpaceOnUse',
      patternTransform: 'rotate(45)',
    }, defs);
    svgEl('rect', { width: 8, height: 8, fill: colour, 'fill-opacity': 0.35 }, p);
    svgEl('rect', { width: 4, height: 8, fill: colour }, p);
  };
  stripes('over', 'var(--orange)');
  stripes('none', 'var(--grey-1)');
}

function start(figure, { title, summary, width, height }) {
  figure.replaceChildren();
  const id = `chart-${++uid}`;
  const caption = document.createElement('figcaption');
  caption.id = `${id}-caption`;
  const h = document.createElement('h3');
  h.textContent = title;
  caption.append(h);
  if (summary) {
    const p = document.createElement('p');
    p.className = 'chart__summary';
    p.textContent = summary;
    caption.append(p);
  }
  figure.append(caption);
  const svg = svgEl('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': caption.id,
    class: 'chart__svg', preserveAspectRatio: 'xMinYMin meet',
  }, figure);
  return { svg, id };
}

function axisY(svg, { left, right, top, bottom, scale, format, unit }) {
  const min = scale.min ?? 0;
  for (let v = min; v <= scale.max + 1e-9; v += scale.step) {
    const y = bottom - ((v - min) / (scale.max - min)) * (bottom - top);
    svgEl('line', { x1: left, x2: right, y1: y, y2: y, class: v === 0 ? 'axis' : 'grid' }, svg);
    label(svg, left - 8, y + 4, format(v), { class: 'tick', 'text-anchor': 'end' });
  }
  if (unit) label(svg, left - 8, top - 8, unit, { class: 'unit', 'text-anchor': 'end' });
}

/**
 * Values over days: columns (`kind: 'bar'`) or a line with points.
 * `refLines`: horizontal lines such as targets, `{ value, label }`.
 */
export function seriesChart(figure, opts) {
  const {
    title, summary, labels, values, kind = 'bar', format = String, scale,
    refLines = [], describe = (i, v) => `${labels[i]}: ${format(v)}`, unit, tickLabel = (s) => s,
    rightMargin = refLines.length ? 100 : 20,
  } = opts;
  const width = 960, height = 230;
  const left = 70, right = width - rightMargin, top = 26, bottom = height - 36;
  const { svg } = start(figure, { title, summary, width, height });
  axisY(svg, { left, right, top, bottom, scale, format, unit });
  const n = labels.length;
  const band = (right - left) / Math.max(n, 1);
  const min = scale.min ?? 0;
  const y = (v) => bottom - ((Math.max(min, Math.min(v, scale.max)) - min) / (scale.max - min)) * (bottom - top);
  const everyNth = Math.max(1, Math.ceil(n / 10));
  labels.forEach((l, i) => {
    if (i % everyNth === 0) {
      label(svg, left + band * (i + 0.5), bottom + 20, tickLabel(l), { class: 'tick', 'text-anchor': 'middle' });
    }
  });
  if (kind === 'bar') {
    const g = svgEl('g', { class: 'bars' }, svg);
    values.forEach((v, i) => {
      if (v == null) return;
      const h = bottom - y(v);
      const r = svgEl('rect', {
        x: left + band * i + band * 0.12, width: Math.max(1, band * 0.76),
        y: bottom - h, height: Math.max(h, v > 0 ? 1 : 0), class: 'bar',
      }, g);
      tooltip(r, describe(i, v));
    });
  } else {
    let d = '';
    let pen = false;
    values.forEach((v, i) => {
      if (v == null) { pen = false; return; }
      d += `${pen ? 'L' : 'M'}${(left + band * (i + 0.5)).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    svgEl('path', { d, class: 'line' }, svg);
    const g = svgEl('g', { class: 'points' }, svg);
    values.forEach((v, i) => {
      if (v == null) return;
      const c = svgEl('circle', { cx: left + band * (i + 0.5), cy: y(v), r: n > 62 ? 1.8 : 3.5, class: 'point' }, g);
      tooltip(c, describe(i, v));
    });
  }
  // Reference lines (targets), labelled in words at the right.
  refLines.filter((r) => r.value <= scale.max).forEach((r) => {
    const yy = y(r.value);
    svgEl('line', { x1: left, x2: right, y1: yy, y2: yy, class: 'ref' }, svg);
    label(svg, right + 8, yy + 4, r.label, { class: 'ref-label' });
  });
  return svg;
}

/**
 * Answered requests by wait, one bar per bucket; bars within the target
 * are solid green, bars over it striped orange; a last striped grey bar
 * counts requests never answered that waited longer than the target.
 */
export function histogram(figure, opts) {
  const { title, summary, bucketLabels, counts, overFrom, targetLabel, unanswered, describe } = opts;
  const width = 960, height = 230;
  const left = 70, right = width - 20, top = 30, bottom = height - 44;
  const { svg, id } = start(figure, { title, summary, width, height });
  patterns(svg, id);
  const all = [...counts, unanswered];
  const scale = niceScale(Math.max(...all, 1));
  axisY(svg, { left, right, top, bottom, scale, format: (v) => v.toLocaleString('en-GB'), unit: 'requests' });
  const n = all.length;
  const gap = 14; // between the answered bars and the "not answered" bar
  const band = (right - left - gap) / n;
  const xOf = (i) => left + band * i + (i === n - 1 ? gap : 0);
  all.forEach((v, i) => {
    const h = (v / scale.max) * (bottom - top);
    const last = i === n - 1;
    const over = !last && i >= overFrom;
    const fill = last ? `url(#${id}-none)` : over ? `url(#${id}-over)` : 'var(--green)';
    const r = svgEl('rect', {
      x: xOf(i) + band * 0.1, width: band * 0.8, y: bottom - h, height: h,
      fill, class: 'hbar',
    }, svg);
    tooltip(r, describe(i, v));
    if (v > 0) {
      label(svg, xOf(i) + band / 2, bottom - h - 5, v.toLocaleString('en-GB'), { class: 'count', 'text-anchor': 'middle' });
    }
    const words = last ? ['Not', 'answered'] : bucketLabels[i].split('\n');
    words.forEach((w, k) => label(svg, xOf(i) + band / 2, bottom + 16 + k * 14, w, {
      class: 'tick', 'text-anchor': 'middle',
    }));
  });
  // The target: a dashed line between the last bar within it and the first over it.
  const tx = xOf(overFrom);
  svgEl('line', { x1: tx, x2: tx, y1: top - 14, y2: bottom, class: 'target' }, svg);
  label(svg, tx + 6, top - 4, targetLabel, { class: 'target-label' });
  return svg;
}

/** A weekday-by-hour grid: shade by value, and the value printed in each cell. */
export function heatmap(figure, opts) {
  const { title, summary, rows, values, format, describe, legend } = opts;
  const cols = 24;
  const left = 100, top = 28, cellW = 35, cellH = 30;
  const width = left + cols * cellW + 10;
  const height = top + rows.length * cellH + 56;
  const { svg } = start(figure, { title, summary, width, height });
  const max = Math.max(1, ...values.flat().filter((v) => v != null));
  for (let h = 0; h < cols; h += 1) {
    label(svg, left + cellW * (h + 0.5), top - 10, String(h).padStart(2, '0'), { class: 'tick', 'text-anchor': 'middle' });
  }
  rows.forEach((row, r) => {
    label(svg, left - 10, top + cellH * (r + 0.5) + 5, row, { class: 'tick', 'text-anchor': 'end' });
    for (let h = 0; h < cols; h += 1) {
      const v = values[r][h];
      const x = left + cellW * h, y = top + cellH * r;
      const t = v == null ? 0 : v / max;
      const rect = svgEl('rect', {
        x: x + 1, y: y + 1, width: cellW - 2, height: cellH - 2, rx: 3,
        fill: v == null ? 'var(--grey-4)' : shade(t), class: 'cell',
      }, svg);
      tooltip(rect, describe(r, h, v));
      label(svg, x + cellW / 2, y + cellH / 2 + 4, v == null ? '–' : format(v), {
        class: `cell-text${t > 0.5 ? ' cell-text--light' : ''}`, 'text-anchor': 'middle',
      });
    }
  });
  // Legend: five steps from the lightest to the darkest shade.
  const ly = top + rows.length * cellH + 22;
  label(svg, left - 10, ly + 13, legend, { class: 'tick', 'text-anchor': 'end' });
  for (let i = 0; i < 5; i += 1) {
    const t = i / 4;
    svgEl('rect', { x: left + i * 70, y: ly, width: 66, height: 18, rx: 3, fill: shade(t), class: 'cell' }, svg);
    label(svg, left + i * 70 + 33, ly + 13, format(Math.round(t * max)), {
      class: `cell-text${t > 0.5 ? ' cell-text--light' : ''}`, 'text-anchor': 'middle',
    });
  }
  label(svg, left + 5 * 70 + 10, ly + 13, '(– = none)', { class: 'tick' });
  return svg;
}

/** Light grey-blue (0) to NHS dark blue (1). */
function shade(t) {
  const a = [240, 244, 245], b = [0, 48, 135];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * Math.max(0, Math.min(1, t))));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}
