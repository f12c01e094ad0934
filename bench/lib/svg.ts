/** A line of the plot: points joined in x order, each marked. */
export interface PlotSeries {
  label: string;
  color: string;
  dashed: boolean;
  points: { x: number; y: number }[];
}

export interface PlotOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: PlotSeries[];
  /** Horizontal lines across the plot at a y value (an objective), each labelled at its right end. */
  levels?: { y: number; label: string; color: string }[];
}

const WIDTH = 860;
const HEIGHT = 520;
const MARGIN = { left: 78, right: 24, top: 64, bottom: 58 };

/** 1, 2 or 5 times a power of ten, at least `raw`. */
export function niceStep(raw: number): number {
  if (!(raw > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const factor of [1, 2, 5, 10]) if (factor * power >= raw) return factor * power;
  return 10 * power;
}

/** Ticks 1, 2, 5 × 10^k covering [min, max] (for a logarithmic axis). */
export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let exponent = Math.floor(Math.log10(min)); exponent <= Math.ceil(Math.log10(max)); exponent++) {
    for (const factor of [1, 2, 5]) {
      const tick = factor * 10 ** exponent;
      if (tick >= min * 0.999 && tick <= max * 1.001) ticks.push(tick);
    }
  }
  return ticks;
}

function escapeXml(text: string): string {
  return text.replace(
    /[<>&"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] as string,
  );
}

function label(value: number): string {
  if (value >= 1000) return value.toLocaleString('en-US', { maximumFractionDigits: 0 });
  return String(Number(value.toPrecision(3)));
}

/**
 * An SVG line chart with a linear x axis from 0 and a logarithmic y axis (latencies span decades
 * between light load and saturation). Plain SVG 1.1, no scripts or external resources.
 */
export function renderLinePlot(options: PlotOptions): string {
  const levels = (options.levels ?? []).filter((level) => level.y > 0 && Number.isFinite(level.y));
  const points = options.series
    .flatMap((series) => series.points)
    .concat(levels.map((level) => ({ x: 0, y: level.y })))
    .filter((p) => p.y > 0 && Number.isFinite(p.y));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const xStep = niceStep(Math.max(1, ...points.map((p) => p.x)) / 6);
  const xMax = xStep * Math.ceil(Math.max(1, ...points.map((p) => p.x)) / xStep);
  const yMinRaw = Math.min(...points.map((p) => p.y), 1);
  const yMaxRaw = Math.max(...points.map((p) => p.y), 10);
  const yMin = 10 ** Math.floor(Math.log10(yMinRaw));
  const yMax = 10 ** Math.ceil(Math.log10(yMaxRaw));
  const sx = (x: number): number => MARGIN.left + (x / xMax) * plotWidth;
  const sy = (y: number): number =>
    MARGIN.top +
    plotHeight -
    ((Math.log10(y) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * plotHeight;
  const f = (n: number): string => n.toFixed(1);

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  parts.push(
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(options.title)}</text>`,
  );
  if (options.subtitle !== undefined) {
    parts.push(
      `<text x="${WIDTH / 2}" y="44" text-anchor="middle" fill="#555555">${escapeXml(options.subtitle)}</text>`,
    );
  }

  for (let x = 0; x <= xMax + xStep / 2; x += xStep) {
    parts.push(
      `<line x1="${f(sx(x))}" y1="${MARGIN.top}" x2="${f(sx(x))}" y2="${MARGIN.top + plotHeight}" stroke="#e5e5e5"/>`,
    );
    parts.push(
      `<text x="${f(sx(x))}" y="${MARGIN.top + plotHeight + 18}" text-anchor="middle">${label(x)}</text>`,
    );
  }
  for (const y of logTicks(yMin, yMax)) {
    parts.push(
      `<line x1="${MARGIN.left}" y1="${f(sy(y))}" x2="${MARGIN.left + plotWidth}" y2="${f(sy(y))}" stroke="#e5e5e5"/>`,
    );
    parts.push(`<text x="${MARGIN.left - 8}" y="${f(sy(y) + 4)}" text-anchor="end">${label(y)}</text>`);
  }
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333333"/>`,
  );
  parts.push(
    `<text x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 14}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
  );
  parts.push(
    `<text transform="translate(20 ${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  );

  for (const level of levels) {
    parts.push(
      `<line x1="${MARGIN.left}" y1="${f(sy(level.y))}" x2="${MARGIN.left + plotWidth}" y2="${f(sy(level.y))}" stroke="${level.color}" stroke-width="1.5" stroke-dasharray="2 3"/>`,
    );
    parts.push(
      `<text x="${MARGIN.left + plotWidth - 6}" y="${f(sy(level.y) - 6)}" text-anchor="end" fill="${level.color}">${escapeXml(level.label)}</text>`,
    );
  }

  const legendWidth = 40 + 7 * Math.max(0, ...options.series.map((series) => series.label.length));
  parts.push(
    `<rect x="${MARGIN.left + 6}" y="${MARGIN.top + 4}" width="${legendWidth}" height="${options.series.length * 18 + 8}" fill="#ffffff" fill-opacity="0.85" stroke="#cccccc"/>`,
  );
  options.series.forEach((series, index) => {
    const visible = series.points.filter((p) => p.y > 0 && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    const dash = series.dashed ? ' stroke-dasharray="6 4"' : '';
    if (visible.length > 1) {
      const path = visible.map((p) => `${f(sx(p.x))},${f(sy(p.y))}`).join(' ');
      parts.push(`<polyline points="${path}" fill="none" stroke="${series.color}" stroke-width="2"${dash}/>`);
    }
    for (const p of visible) {
      parts.push(`<circle cx="${f(sx(p.x))}" cy="${f(sy(p.y))}" r="3.5" fill="${series.color}"/>`);
    }
    const legendY = MARGIN.top + 16 + index * 18;
    const legendX = MARGIN.left + 14;
    parts.push(
      `<line x1="${legendX}" y1="${legendY - 4}" x2="${legendX + 26}" y2="${legendY - 4}" stroke="${series.color}" stroke-width="2"${dash}/>`,
    );
    parts.push(`<text x="${legendX + 32}" y="${legendY}">${escapeXml(series.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
