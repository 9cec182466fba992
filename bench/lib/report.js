// Number formatting, statistics and the SVG bar chart shared by every benchmark's report, so that
// the tables and charts of different benchmarks read the same way.

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
export const fmtRatio = (r) => (r === null || r === undefined ? '—' : `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`);
export const fmtUs = (s) => (s * 1e6).toFixed(2);

export const log = (msg) => process.stderr.write(`${msg}\n`);

/** The line that says where and when a benchmark ran. */
export const machineLine = (meta) =>
  `Machine: ${meta.cpu}, ${meta.cpus} CPUs, ${meta.platform}; Node ${meta.node}` +
  `${meta.compiler ? `; ${meta.compiler}` : ''}. Measured ${meta.date.slice(0, 10)}.`;

/** Ends a report: the entries that did not run, each named by `name(entry)`, then a newline. */
export function endReport(lines, results, name) {
  const other = results.filter((e) => e.status !== 'ok');
  if (other.length > 0) {
    lines.push('', 'Not measured in this run:', '');
    for (const e of other) lines.push(`- ${name(e)} — ${e.status}: ${e.note}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Summarises an entry's samples (seconds per run of `roundTrips`) into best and median figures. */
export function summarise(e, roundTrips, repeats) {
  if (e.samples.length === 0) {
    e.status = 'failed';
    e.note = e.errors[0];
    return;
  }
  e.status = 'ok';
  if (e.errors.length > 0) e.note = `${e.errors.length} of ${repeats} runs failed: ${e.errors[0]}`;
  e.bestSeconds = Math.min(...e.samples);
  e.medianSeconds = median(e.samples);
  e.roundTripsPerSec = roundTrips / e.bestSeconds;
  e.medianRoundTripsPerSec = roundTrips / e.medianSeconds;
  e.usPerRoundTrip = (e.bestSeconds * 1e6) / roundTrips;
}

/** Prints rows (the first one is the header) as an aligned table; the first `left` columns are left-aligned. */
export function printTable(rows, left) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  log('');
  for (const [n, r] of rows.entries()) {
    log(r.map((c, i) => (i < left ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
    if (n === 0) log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

export const COLORS = {
  native: '#555555',
  'node-net': '#3b82c4',
  'child_process-ipc-json': '#e08a2c',
  'child_process-ipc-advanced': '#c96a12',
  'pyre-nexus': '#d0342c',
  // the pool benchmark
  'pyre-nexus-fork': '#d0342c',
  'pyre-nexus-threads': '#e8746d',
  piscina: '#3b82c4',
  tinypool: '#6aa5db',
  workerpool: '#2f9e6e',
  'fork-ipc': '#e08a2c',
  'framed-rr': '#555555',
  'node-e0': '#999999',
};

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

/**
 * A horizontal bar chart. groups: [{ heading?, ownScale?, bars: [{ label, value, text, impl }] }];
 * every bar is on one scale so groups can be compared with each other, except in groups with
 * `ownScale` (for groups measuring different things), and pyre-nexus bars are in bold.
 */
export function barChart({ title, subtitle, footer, groups }) {
  const width = 860;
  const labelW = 290;
  const barMax = 360;
  const rowH = 30;
  const headH = 26;
  const top = 64;
  const bars = groups.flatMap((g) => g.bars);
  const max = Math.max(1, ...bars.map((b) => b.value));
  const body = groups.reduce((h, g) => h + (g.heading ? headH : 0) + Math.max(g.bars.length, 1) * rowH, 0);
  const height = top + Math.max(body, rowH) + 36;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="17" font-weight="600" fill="#222">${esc(title)}</text>`,
    `<text x="16" y="46" font-size="12" fill="#666">${esc(subtitle)}</text>`,
  ];
  let y = top;
  for (const g of groups) {
    if (g.heading) {
      out.push(`<text x="16" y="${y + 18}" font-size="13" font-weight="600" fill="#444">${esc(g.heading)}</text>`);
      y += headH;
    }
    const y0 = y;
    const scale = g.ownScale ? Math.max(Number.MIN_VALUE, ...g.bars.map((b) => b.value)) : max;
    for (const b of g.bars) {
      const w = Math.max(1, (b.value / scale) * barMax);
      const weight = b.impl.startsWith('pyre-nexus') ? ' font-weight="700"' : '';
      out.push(
        `<text x="${labelW - 10}" y="${y + 18}" font-size="13" text-anchor="end" fill="#222"${weight}>${esc(b.label)}</text>`,
        `<rect x="${labelW}" y="${y + 5}" width="${w.toFixed(1)}" height="${rowH - 10}" rx="2" fill="${COLORS[b.impl] ?? '#7a5cc4'}"/>`,
        `<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 18}" font-size="12" fill="#333">${esc(b.text)}</text>`,
      );
      y += rowH;
    }
    if (g.bars.length === 0) {
      out.push(`<text x="16" y="${y + 18}" font-size="13" fill="#a00">no results</text>`);
      y += rowH;
    }
    out.push(`<line x1="${labelW}" y1="${y0}" x2="${labelW}" y2="${y}" stroke="#999"/>`);
  }
  out.push(`<text x="16" y="${height - 12}" font-size="11" fill="#888">${esc(footer)}</text>`, '</svg>');
  return `${out.join('\n')}\n`;
}
