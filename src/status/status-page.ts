// The status page served at /: one self-contained HTML document (no CDN, no build step, no
// request but /api/status, which the CSP in http.ts enforces). The markup is static; the script
// (status-page-script.ts) polls /api/status and updates it in place. Stable hooks for tests and
// scripts: each device row is tr[data-device="NAME"], its values are [data-field="…"] with the
// raw number in data-value, the charts are svg#chart-<name>, html[data-last-seq] is the newest
// sample shown.
import { STATUS_PAGE_SCRIPT } from "./status-page-script.ts";

const STYLE = `
:root { --fg: #1d2430; --muted: #6b7585; --line: #e3e7ee; --bg: #f5f7fa; --card: #fff;
  --read: #2f6fdf; --write: #e0782a; --p50: #2a9d6f; --p99: #c2410c; --cpu: #7c4dcc; --rss: #0e8f9e; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.35 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 16px; padding: 10px 18px; background: #1d2430; color: #fff; }
header h1 { margin: 0; font-size: 16px; font-weight: 600; }
header .summary { color: #c8cfdb; }
#connection { margin-left: auto; padding: 2px 8px; border-radius: 10px; background: #2a9d6f; font-size: 12px; }
#connection.down { background: #c0392b; }
main { padding: 12px 18px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.card h2 { margin: 0 0 4px; font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.legend { display: flex; gap: 8px; font-size: 12px; font-variant-numeric: tabular-nums; min-height: 18px; white-space: nowrap; overflow: hidden; }
.legend span::before { content: ""; display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 4px; background: var(--swatch); }
.plot { position: relative; height: 92px; margin: 4px 0 0 34px; }
.plot svg { width: 100%; height: 100%; display: block; overflow: visible; }
.plot .y { position: absolute; left: -34px; width: 30px; text-align: right; font-size: 10px; color: var(--muted); }
.plot .y.top { top: -6px; } .plot .y.mid { top: calc(50% - 6px); } .plot .y.bottom { bottom: -6px; }
.axis { display: flex; justify-content: space-between; margin-left: 34px; font-size: 10px; color: var(--muted); }
.grid { stroke: var(--line); stroke-width: 1; vector-effect: non-scaling-stroke; }
path.line { fill: none; stroke-width: 1.6; vector-effect: non-scaling-stroke; stroke-linejoin: round; }
h3 { margin: 16px 0 6px; font-size: 13px; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); font-variant-numeric: tabular-nums; }
th, td { padding: 4px 6px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { font-size: 11px; font-weight: 600; color: var(--muted); background: #fafbfc; position: sticky; top: 0; }
th.l, td.l { text-align: left; }
tr.empty td { color: var(--muted); }
td.clip { max-width: 210px; overflow: hidden; text-overflow: ellipsis; }
.sub { display: block; font-size: 11px; color: var(--muted); }
.state { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 11px; color: #fff; background: #2a9d6f; }
.state.stopped { background: #b7791f; } .state.broken { background: #c0392b; } .state.stopping { background: #6b7585; }
svg.spark { width: 110px; height: 22px; display: block; }
svg.spark path { stroke: var(--read); }
#warnings { list-style: none; margin: 0; padding: 0; max-height: 180px; overflow: auto; background: var(--card); border: 1px solid var(--line); font: 12px ui-monospace, monospace; }
#warnings li { padding: 3px 8px; border-bottom: 1px solid var(--line); white-space: pre-wrap; }
#warnings li.error { color: #a8261b; } #warnings li.empty { color: var(--muted); font-family: system-ui, sans-serif; }
#warnings time { color: var(--muted); margin-right: 8px; }
`;

/** One chart card: a legend (filled in by the script) and an SVG whose paths it redraws. */
function chartCard(name: string, title: string): string {
  return `<section class="card"><h2>${title}</h2><div class="legend" id="legend-${name}"></div>
<div class="plot"><span class="y top" id="ymax-${name}">0</span><span class="y mid" id="ymid-${name}"></span><span class="y bottom">0</span>
<svg id="chart-${name}" viewBox="0 0 300 100" preserveAspectRatio="none"><line class="grid" x1="0" y1="0" x2="300" y2="0"/><line class="grid" x1="0" y1="50" x2="300" y2="50"/><line class="grid" x1="0" y1="100" x2="300" y2="100"/></svg></div>
<div class="axis"><span class="since">-5 min</span><span>now</span></div></section>`;
}

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en" data-last-seq="0">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tcmu-appliance status</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>tcmu-appliance</h1><span class="summary" id="serve-summary">connecting…</span><span class="summary" id="process-summary"></span><span id="connection">connecting</span></header>
<main>
<div class="charts">
${chartCard("iops", "IOPS")}
${chartCard("throughput", "Throughput MB/s")}
${chartCard("latency", "Latency ms (sampled)")}
${chartCard("cpu", "CPU % of one core")}
${chartCard("rss", "RSS MiB")}
</div>
<h3>Devices <span class="sub" style="display:inline" id="device-count"></span></h3>
<table id="devices">
<thead><tr><th class="l">Device</th><th class="l">State</th><th class="l">Backstore</th><th>Size</th><th class="l">Exports</th><th title="commands in flight: the queue depth in use">QD</th><th>IOPS</th><th>rMB/s</th><th>wMB/s</th><th title="latency, sampled">p50 ms</th><th title="latency, sampled">p99 ms</th><th>Totals</th><th class="l">IOPS trend</th></tr></thead>
<tbody></tbody>
</table>
<h3>Recent warnings</h3>
<ol id="warnings"><li class="empty">none</li></ol>
</main>
<script>${STATUS_PAGE_SCRIPT}</script>
</body>
</html>
`;
