/** Hand-drawn SVG line charts: a few hundred points over time need no chart library. */
export interface Point {
  /** The x value: ms since the epoch unless the chart is given its own `xLabel`. */
  readonly t: number;
  readonly v: number;
}

const SVG = 'http://www.w3.org/2000/svg';
const W = 560;
const H = 180;
const PAD = { l: 56, r: 12, t: 12, b: 24 };

function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function fmtAxis(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-2) return v.toExponential(1);
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/**
 * Renders `points` (any order; sorted and de-duplicated by time here) as a line with min/max
 * labels on both axes. `step` draws a staircase, right for chain height which jumps.
 */
export function lineChart(
  points: readonly Point[],
  {
    testid,
    step = false,
    xLabel = (t) => new Date(t).toLocaleTimeString(),
  }: { testid: string; step?: boolean; xLabel?: (t: number) => string },
): SVGSVGElement {
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', 'data-testid': testid, role: 'img' });
  const pts = dedupe(points);
  svg.setAttribute('data-points', String(pts.length));
  if (pts.length === 0) {
    const t = el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'chart-empty' });
    t.textContent = 'no data yet';
    svg.appendChild(t);
    return svg;
  }
  const t0 = pts[0]!.t;
  const t1 = Math.max(pts[pts.length - 1]!.t, t0 + 1);
  let v0 = Math.min(...pts.map((p) => p.v));
  let v1 = Math.max(...pts.map((p) => p.v));
  if (v0 === v1) {
    v0 = v0 > 0 ? v0 * 0.9 : v0 - 1;
    v1 = v1 > 0 ? v1 * 1.1 : v1 + 1;
  }
  const x = (t: number) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v: number) => H - PAD.b - ((v - v0) / (v1 - v0)) * (H - PAD.t - PAD.b);
  svg.appendChild(el('line', { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, class: 'axis' }));
  svg.appendChild(el('line', { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, class: 'axis' }));
  let d = '';
  pts.forEach((p, i) => {
    const px = x(p.t).toFixed(1);
    const py = y(p.v).toFixed(1);
    if (i === 0) d = `M${px},${py}`;
    else if (step) d += `H${px}V${py}`;
    else d += `L${px},${py}`;
  });
  if (pts.length === 1)
    svg.appendChild(el('circle', { cx: x(t0), cy: y(pts[0]!.v), r: 3, class: 'line-dot' }));
  svg.appendChild(el('path', { d, class: 'line' }));
  const label = (text: string, attrs: Record<string, string | number>) => {
    const t = el('text', { class: 'tick', ...attrs });
    t.textContent = text;
    svg.appendChild(t);
  };
  label(fmtAxis(v1), { x: PAD.l - 6, y: PAD.t + 4, 'text-anchor': 'end' });
  label(fmtAxis(v0), { x: PAD.l - 6, y: H - PAD.b, 'text-anchor': 'end' });
  label(xLabel(t0), { x: PAD.l, y: H - 6, 'text-anchor': 'start' });
  label(xLabel(t1), { x: W - PAD.r, y: H - 6, 'text-anchor': 'end' });
  return svg;
}

function dedupe(points: readonly Point[]): Point[] {
  const byT = new Map<number, number>();
  for (const p of points) if (Number.isFinite(p.t) && Number.isFinite(p.v)) byT.set(p.t, p.v);
  return [...byT.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => ({ t, v }));
}

/** Keeps the newest `max` points. */
export function capped(points: Point[], max = 300): Point[] {
  return points.length > max ? points.slice(points.length - max) : points;
}
