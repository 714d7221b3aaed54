// The status page's script, as text for a <script> element (the page has no build step). It
// polls /api/status once per sample interval, asking only for the seconds it has not seen, and
// keeps the last five minutes itself, so a poll moves a few hundred numbers even with 64
// devices. The DOM is built once per device and then only changed where a value changed:
// text nodes and one SVG path per line, never a rebuilt table. Plain ES2020, no backquotes,
// and no template substitutions but the one constant the API's ?window= limit comes from.
import { STATUS_HISTORY_SAMPLES } from "./status-schema.ts";

export const STATUS_PAGE_SCRIPT = String.raw`
"use strict";
(function () {
  var SVG_NS = "http://www.w3.org/2000/svg";
  var RATE_FIELDS = ["iops", "readIops", "writeIops", "readBytesPerSecond", "writtenBytesPerSecond", "latencyP50Ms", "latencyP99Ms"];
  var MB = 1e6, MIB = 1048576, MAX_WINDOW_SECONDS = ${STATUS_HISTORY_SAMPLES};
  var capacity = 300, intervalMs = 1000, lastSeq = 0, lastOkMs = 0, updates = 0, full = true, warningsKey = "";
  var aggregate = newStore(RATE_FIELDS), processStore = newStore(["rssBytes", "cpuPercent"]);
  var rows = new Map();
  var tbody = document.querySelector("#devices tbody");
  var emptyRow = document.createElement("tr");
  emptyRow.className = "empty";
  emptyRow.innerHTML = '<td class="l" colspan="13">no devices served</td>';

  function newStore(fields) {
    var store = { lastSeq: 0, data: {} };
    fields.forEach(function (field) { store.data[field] = []; });
    return store;
  }

  // Appends the samples newer than what the store holds; a gap (polls missed for longer than
  // the window asked for) is held open with nulls so every store stays aligned by sequence.
  function merge(store, series) {
    var fields = Object.keys(store.data);
    var count = series[fields[0]].length;
    for (var index = 0; index < count; index += 1) {
      var seq = series.firstSeq + index;
      if (seq <= store.lastSeq) continue;
      if (store.lastSeq > 0 && seq > store.lastSeq + 1) {
        var gap = Math.min(seq - store.lastSeq - 1, capacity);
        for (var hole = 0; hole < gap; hole += 1) fields.forEach(function (field) { store.data[field].push(null); });
      }
      fields.forEach(function (field) { store.data[field].push(series[field][index]); });
      store.lastSeq = seq;
    }
    fields.forEach(function (field) {
      var values = store.data[field];
      if (values.length > capacity) values.splice(0, values.length - capacity);
    });
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var mantissa = value / power;
    return (mantissa <= 1 ? 1 : mantissa <= 2 ? 2 : mantissa <= 5 ? 5 : 10) * power;
  }

  // x by age: the newest sample at the right edge, capacity samples across; null breaks the line.
  function pathOf(values, storeSeq, scale, top, width, height) {
    var d = "", pen = false, lag = lastSeq - storeSeq;
    for (var index = 0; index < values.length; index += 1) {
      var value = values[index];
      if (value === null || value === undefined) { pen = false; continue; }
      var x = width - ((values.length - 1 - index + lag) * width) / (capacity - 1);
      if (x < 0) continue;
      var y = height - Math.min(scale(value) / top, 1) * height;
      d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
      pen = true;
    }
    return d;
  }

  function setText(element, text) {
    if (element.textContent !== text) element.textContent = text;
  }

  function fmt(value, unit) {
    if (value === null || value === undefined) return "–";
    var abs = Math.abs(value);
    var text = abs >= 100 ? Math.round(value).toLocaleString("en-US") : abs >= 10 ? value.toFixed(1) : abs >= 0.01 || abs === 0 ? value.toFixed(2) : value.toFixed(3);
    return unit ? text + " " + unit : text;
  }

  // Chart legends and axes: 2.9k, 12k, 1.4M; they have a card's width, not a column's.
  function fmtCompact(value) {
    var abs = Math.abs(value);
    if (abs >= 1e6) return (value / 1e6).toFixed(abs >= 1e7 ? 0 : 1) + "M";
    if (abs >= 1e3) return (value / 1e3).toFixed(abs >= 1e4 ? 0 : 1) + "k";
    return fmt(value, "");
  }

  function fmtBytes(bytes) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], unit = 0;
    while (bytes >= 1024 && unit < units.length - 1) { bytes /= 1024; unit += 1; }
    return (Number.isInteger(bytes) ? String(bytes) : bytes.toFixed(1)) + " " + units[unit];
  }

  function fmtDuration(seconds) {
    var s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return d > 0 ? d + "d " + h + "h" : h > 0 ? h + "h " + m + "m" : m > 0 ? m + "m " + (s % 60) + "s" : s + "s";
  }

  function makeChart(name, lines, format) {
    var svg = document.getElementById("chart-" + name), legend = document.getElementById("legend-" + name);
    var ymax = document.getElementById("ymax-" + name), ymid = document.getElementById("ymid-" + name);
    var parts = lines.map(function (line) {
      var path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("class", "line");
      path.setAttribute("data-series", line.key);
      path.style.stroke = line.color;
      svg.appendChild(path);
      var item = document.createElement("span");
      item.style.setProperty("--swatch", line.color);
      item.setAttribute("data-series", line.key);
      legend.appendChild(item);
      return { line: line, path: path, item: item };
    });
    return function draw(store) {
      var max = 0;
      parts.forEach(function (part) {
        store.data[part.line.key].forEach(function (value) { if (value !== null) max = Math.max(max, part.line.scale(value)); });
      });
      var top = niceMax(max);
      setText(ymax, format(top));
      setText(ymid, format(top / 2));
      parts.forEach(function (part) {
        var values = store.data[part.line.key], current = values.length > 0 ? values[values.length - 1] : null;
        part.path.setAttribute("d", pathOf(values, store.lastSeq, part.line.scale, top, 300, 100));
        setText(part.item, part.line.label + " " + (current === null ? "–" : format(part.line.scale(current))));
        part.item.setAttribute("data-value", current === null ? "" : String(part.line.scale(current)));
      });
    };
  }

  var same = function (value) { return value; };
  var short = fmtCompact;
  var charts = [
    [aggregate, makeChart("iops", [{ key: "readIops", label: "read", color: "var(--read)", scale: same }, { key: "writeIops", label: "write", color: "var(--write)", scale: same }, { key: "iops", label: "all", color: "#9aa3b2", scale: same }], short)],
    [aggregate, makeChart("throughput", [{ key: "readBytesPerSecond", label: "read", color: "var(--read)", scale: function (v) { return v / MB; } }, { key: "writtenBytesPerSecond", label: "write", color: "var(--write)", scale: function (v) { return v / MB; } }], short)],
    [aggregate, makeChart("latency", [{ key: "latencyP50Ms", label: "p50", color: "var(--p50)", scale: same }, { key: "latencyP99Ms", label: "p99", color: "var(--p99)", scale: same }], short)],
    [processStore, makeChart("cpu", [{ key: "cpuPercent", label: "cpu", color: "var(--cpu)", scale: same }], short)],
    [processStore, makeChart("rss", [{ key: "rssBytes", label: "rss", color: "var(--rss)", scale: function (v) { return v / MIB; } }], short)],
  ];

  var ROW_HTML =
    '<td class="l"><b data-field="name"></b><span class="sub"><span data-field="uio"></span><span data-field="blockSize"></span> B blocks</span></td>' +
    '<td class="l"><span class="state" data-field="state"></span></td>' +
    '<td class="l clip"><span data-field="backstoreKind"></span><span class="sub" data-field="backstoreDescription"></span></td>' +
    '<td data-field="size"></td><td class="l clip" data-field="exports"></td><td data-field="inFlight"></td>' +
    '<td><span data-field="iops"></span><span class="sub">r <span data-field="readIops"></span> · w <span data-field="writeIops"></span></span></td>' +
    '<td data-field="readMBps"></td><td data-field="writeMBps"></td><td data-field="latencyP50Ms"></td><td data-field="latencyP99Ms"></td>' +
    '<td><span data-field="commands"></span><span class="sub">R <span data-field="readBytes"></span> · W <span data-field="writtenBytes"></span> · <span data-field="errors"></span> err</span></td>' +
    '<td class="l"><svg class="spark" viewBox="0 0 120 22" preserveAspectRatio="none"><path class="line" data-field="spark"></path></svg></td>';

  function makeRow(name) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-device", name);
    tr.innerHTML = ROW_HTML;
    var fields = {};
    tr.querySelectorAll("[data-field]").forEach(function (element) { fields[element.getAttribute("data-field")] = element; });
    return { tr: tr, fields: fields, store: newStore(RATE_FIELDS), values: {} };
  }

  // Text only where it changed; data-value carries the raw number for scripts and tests.
  function put(row, field, text, value) {
    var element = row.fields[field];
    setText(element, text);
    if (value !== undefined && row.values[field] !== value) {
      row.values[field] = value;
      element.setAttribute("data-value", value === null ? "" : String(value));
    }
  }

  function updateRow(row, device) {
    merge(row.store, device.series);
    var rates = device.rates, totals = device.totals;
    put(row, "name", device.name);
    put(row, "uio", device.uio === "-" ? "" : device.uio + " · ", device.uio);
    put(row, "blockSize", String(device.blockSizeBytes), device.blockSizeBytes);
    put(row, "state", device.state, device.state);
    if (row.values.stateClass !== device.state) { row.fields.state.className = "state " + device.state; row.values.stateClass = device.state; }
    put(row, "backstoreKind", device.backstore.kind);
    put(row, "backstoreDescription", device.backstore.description === device.backstore.kind ? "" : device.backstore.description);
    if (row.fields.backstoreDescription.title !== device.backstore.description) row.fields.backstoreDescription.title = device.backstore.description;
    put(row, "size", fmtBytes(device.sizeBytes), device.sizeBytes);
    var exportsText = device.exports.length === 0 ? "–" : device.exports.join("; ");
    put(row, "exports", exportsText);
    if (row.fields.exports.title !== exportsText) row.fields.exports.title = exportsText;
    put(row, "inFlight", String(device.inFlight), device.inFlight);
    put(row, "iops", fmt(rates.iops), rates.iops);
    put(row, "readIops", fmt(rates.readIops), rates.readIops);
    put(row, "writeIops", fmt(rates.writeIops), rates.writeIops);
    put(row, "readMBps", fmt(rates.readBytesPerSecond / MB), rates.readBytesPerSecond / MB);
    put(row, "writeMBps", fmt(rates.writtenBytesPerSecond / MB), rates.writtenBytesPerSecond / MB);
    put(row, "latencyP50Ms", fmt(rates.latencyP50Ms), rates.latencyP50Ms);
    put(row, "latencyP99Ms", fmt(rates.latencyP99Ms), rates.latencyP99Ms);
    put(row, "commands", fmt(totals.commands), totals.commands);
    put(row, "readBytes", fmtBytes(totals.readBytes), totals.readBytes);
    put(row, "writtenBytes", fmtBytes(totals.writtenBytes), totals.writtenBytes);
    put(row, "errors", String(totals.errors), totals.errors);
    var iops = row.store.data.iops, top = niceMax(Math.max.apply(null, iops.map(function (v) { return v || 0; }).concat([0])));
    row.fields.spark.setAttribute("d", pathOf(iops, row.store.lastSeq, same, top, 120, 22));
  }

  function updateDevices(devices) {
    var seen = new Set();
    devices.forEach(function (device, index) {
      seen.add(device.name);
      var row = rows.get(device.name);
      if (row === undefined) { row = makeRow(device.name); rows.set(device.name, row); }
      updateRow(row, device);
      if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] || null);
    });
    rows.forEach(function (row, name) { if (!seen.has(name)) { row.tr.remove(); rows.delete(name); } });
    if (devices.length === 0 && !emptyRow.isConnected) tbody.appendChild(emptyRow);
    if (devices.length > 0 && emptyRow.isConnected) emptyRow.remove();
    setText(document.getElementById("device-count"), devices.length + (devices.length === 1 ? " device" : " devices"));
  }

  function updateWarnings(warnings) {
    var newest = warnings[warnings.length - 1];
    var key = warnings.length + "|" + (newest ? newest.time + newest.message : "");
    if (key === warningsKey) return;
    warningsKey = key;
    var list = document.getElementById("warnings"), fragment = document.createDocumentFragment();
    warnings.slice().reverse().forEach(function (warning) {
      var item = document.createElement("li"), time = document.createElement("time");
      item.className = warning.level;
      time.textContent = new Date(warning.time).toLocaleTimeString();
      item.appendChild(time);
      item.appendChild(document.createTextNode(warning.level + " " + warning.source + ": " + warning.message));
      fragment.appendChild(item);
    });
    if (warnings.length === 0) { var none = document.createElement("li"); none.className = "empty"; none.textContent = "none"; fragment.appendChild(none); }
    list.replaceChildren(fragment);
  }

  function apply(report) {
    var startedMs = performance.now();
    var history = report.history;
    intervalMs = Math.min(5000, Math.max(200, history.intervalMs));
    capacity = history.capacity;
    // A new serve starts counting again: forget the old one's samples.
    if (history.lastSeq < lastSeq) {
      aggregate = newStore(RATE_FIELDS); processStore = newStore(["rssBytes", "cpuPercent"]);
      charts[0][0] = charts[1][0] = charts[2][0] = aggregate; charts[3][0] = charts[4][0] = processStore;
      rows.forEach(function (row) { row.store = newStore(RATE_FIELDS); });
      full = true;
    }
    lastSeq = history.lastSeq;
    merge(aggregate, report.aggregate.series);
    merge(processStore, report.process.series);
    charts.forEach(function (chart) { chart[1](chart[0]); });
    var span = Math.round((capacity * intervalMs) / 1000);
    document.querySelectorAll(".axis .since").forEach(function (element) { setText(element, "-" + (span % 60 === 0 ? span / 60 + " min" : fmtDuration(span))); });
    updateDevices(report.devices);
    updateWarnings(report.warnings);
    var serve = report.serve;
    setText(document.getElementById("serve-summary"), "up " + fmtDuration(serve.uptimeSeconds) + " · " + report.devices.length + " device(s) · netlink " + (serve.netlink ? "on" : "off") + (serve.stopping ? " · stopping" : ""));
    setText(document.getElementById("process-summary"), "pid " + report.process.pid + " · RSS " + fmtBytes(report.process.rssBytes) + " · CPU " + report.process.cpuPercent.toFixed(1) + "%");
    document.documentElement.setAttribute("data-last-seq", String(lastSeq));
    document.documentElement.setAttribute("data-updates", String((updates += 1)));
    document.documentElement.setAttribute("data-apply-ms", (performance.now() - startedMs).toFixed(1));
  }

  function setConnection(ok, detail) {
    var badge = document.getElementById("connection");
    badge.className = ok ? "" : "down";
    setText(badge, ok ? "live" : "serve not answering" + (detail ? ": " + detail : ""));
  }

  async function poll() {
    var started = Date.now();
    // All the history serve keeps at first, then only what came since the last answer (and a margin).
    var seconds = full ? Math.ceil((capacity * intervalMs) / 1000) : Math.ceil((started - lastOkMs) / 1000) + 2;
    var windowSeconds = Math.min(MAX_WINDOW_SECONDS, seconds);
    try {
      var response = await fetch("/api/status?window=" + windowSeconds, { cache: "no-store", signal: AbortSignal.timeout(5000) });
      if (!response.ok) throw new Error("HTTP " + response.status);
      apply(await response.json());
      lastOkMs = started;
      full = false;
      setConnection(true);
    } catch (error) {
      setConnection(false, error && error.message);
    }
    setTimeout(poll, Math.max(100, intervalMs - (Date.now() - started)));
  }

  poll();
})();
`;
