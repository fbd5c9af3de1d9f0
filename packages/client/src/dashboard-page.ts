/**
 * The page of `inferq dashboard`: one HTML document with inline CSS and JS,
 * no build step and nothing fetched from elsewhere. It subscribes to
 * `/events` (server-sent events, one `DashboardEvent` a second, see
 * monitor-server.ts) and redraws its numbers and the last minute's sparklines.
 * Every number has an id (`#throughput`, `#p95`, `#queue-wait`,
 * `#requests-total`, ...), which the browser test reads; the per-tenant
 * table is `#tenants`, one `<tr data-tenant>` per tenant, its columns named
 * by `<th data-col>`.
 *
 * Every string from Redis is written with `textContent`, never `innerHTML`:
 * tenant names and worker ids are chosen by callers, and anyone who can
 * write the stats hashes can write any string there.
 */

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const CSS = `
:root { --bg:#0e1117; --panel:#161b22; --line:#262d37; --text:#e6edf3; --muted:#8b949e; --accent:#58a6ff; --ok:#3fb950; --warn:#d29922; --bad:#f85149; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text); font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; }
header { display:flex; align-items:center; gap:14px; padding:14px 24px; border-bottom:1px solid var(--line); background:#0b0e13; }
header h1 { margin:0; font-size:17px; font-weight:600; letter-spacing:.01em; }
header .model { color:var(--accent); }
#status { margin-left:auto; display:flex; align-items:center; gap:8px; color:var(--muted); font-size:13px; }
#status .dot { width:9px; height:9px; border-radius:50%; background:var(--warn); box-shadow:0 0 6px var(--warn); }
#status.live .dot { background:var(--ok); box-shadow:0 0 6px var(--ok); }
#status.down .dot { background:var(--bad); box-shadow:0 0 6px var(--bad); }
#banner { display:none; margin:16px 24px 0; padding:10px 14px; border:1px solid var(--bad); border-radius:8px; color:#ffb4ae; background:#2a1416; }
main { padding:18px 24px 8px; display:grid; grid-template-columns:repeat(auto-fill,minmax(250px,1fr)); gap:14px; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:13px 16px 12px; min-height:132px; }
.card.wide { grid-column:span 2; }
.card h2 { margin:0 0 4px; font-size:11.5px; font-weight:600; text-transform:uppercase; letter-spacing:.07em; color:var(--muted); }
.big { font-size:30px; font-weight:600; font-variant-numeric:tabular-nums; white-space:nowrap; }
.unit { font-size:13px; font-weight:400; color:var(--muted); margin-left:3px; }
.sub { color:var(--muted); font-size:12.5px; font-variant-numeric:tabular-nums; }
.sub b { color:var(--text); font-weight:500; }
.trio { display:flex; gap:18px; }
.trio div span { display:block; font-size:11px; color:var(--muted); text-transform:uppercase; letter-spacing:.06em; }
.trio .big { font-size:24px; }
svg.spark { display:block; width:100%; height:40px; margin-top:6px; }
.totals { display:grid; grid-template-columns:repeat(4,1fr); gap:8px 16px; margin-top:4px; }
.totals div span { display:block; font-size:11px; color:var(--muted); text-transform:uppercase; letter-spacing:.06em; }
.totals div b { font-size:19px; font-weight:600; font-variant-numeric:tabular-nums; }
#workers { list-style:none; margin:6px 0 0; padding:0; max-height:96px; overflow:auto; font-size:12.5px; }
#workers li { display:flex; justify-content:space-between; gap:10px; padding:3px 0; border-top:1px solid var(--line); font-variant-numeric:tabular-nums; }
#workers li code { color:var(--text); font:12px ui-monospace,SFMono-Regular,Menlo,"DejaVu Sans Mono",monospace; }
[hidden] { display:none !important; }
.card.full { grid-column:1 / -1; min-height:0; }
.table-scroll { max-height:372px; overflow:auto; margin-top:6px; }
#tenants { width:100%; border-collapse:collapse; font-size:12.5px; font-variant-numeric:tabular-nums; }
#tenants th { position:sticky; top:0; background:var(--panel); color:var(--muted); font-size:11px; font-weight:600; text-transform:uppercase; letter-spacing:.06em; text-align:right; padding:4px 10px; border-bottom:1px solid var(--line); white-space:nowrap; }
#tenants td { text-align:right; padding:3px 10px; border-top:1px solid var(--line); white-space:nowrap; }
#tenants th:first-child, #tenants td:first-child { text-align:left; padding-left:0; }
#tenants td:first-child { font:12px ui-monospace,SFMono-Regular,Menlo,"DejaVu Sans Mono",monospace; max-width:32ch; overflow:hidden; text-overflow:ellipsis; }
#tenants td.warn { color:var(--warn); }
#tenants td.none { color:var(--muted); }
.card .note { margin-top:8px; }
footer { padding:6px 24px 18px; color:var(--muted); font-size:12px; }
@media (max-width:640px) { .card.wide { grid-column:span 1; } .totals { grid-template-columns:repeat(2,1fr); } }
`;

const SCRIPT = `
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var HISTORY = 60;
  var series = { throughput: [], p95: [], queue: [], batch: [], hit: [], errors: [] };
  function num(n, digits) {
    if (n === null || n === undefined || !isFinite(n)) return '\\u2013';
    var d = digits === undefined ? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2) : digits;
    return n.toLocaleString('en-US', { minimumFractionDigits: 0, maximumFractionDigits: d });
  }
  function ms(n) { return n === null || n === undefined ? '\\u2013' : num(n, n >= 100 ? 0 : n >= 10 ? 1 : 2); }
  function pct(n) { return n === null || n === undefined ? '\\u2013' : num(n * 100, 1); }
  function bytes(n) {
    if (!isFinite(n)) return '\\u2013';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return num(n, i ? 1 : 0) + ' ' + u[i];
  }
  function age(s) {
    if (s === undefined) return '';
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }
  function set(id, v) { var el = $(id); if (el && el.textContent !== v) el.textContent = v; }
  function push(name, v) {
    var a = series[name];
    a.push(v === null || v === undefined || !isFinite(v) ? null : v);
    if (a.length > HISTORY) a.shift();
  }
  function spark(id, values, color) {
    var svg = $(id); if (!svg) return;
    var w = 300, h = 40, max = 0;
    values.forEach(function (v) { if (v !== null && v > max) max = v; });
    if (max <= 0) max = 1;
    var step = w / (HISTORY - 1), off = HISTORY - values.length, pts = [];
    values.forEach(function (v, i) {
      if (v === null) return;
      pts.push(((off + i) * step).toFixed(1) + ',' + (h - 2 - (v / max) * (h - 6)).toFixed(1));
    });
    var line = pts.join(' ');
    var area = pts.length ? pts[0].split(',')[0] + ',' + h + ' ' + line + ' ' + pts[pts.length - 1].split(',')[0] + ',' + h : '';
    svg.innerHTML = '<polygon points="' + area + '" fill="' + color + '" fill-opacity="0.14"></polygon>' +
      '<polyline points="' + line + '" fill="none" stroke="' + color + '" stroke-width="1.6" stroke-linejoin="round"></polyline>';
  }
  // Columns of the tenant table after the name, in the order of its <th data-col>.
  var TENANT_COLS = ['requests', 'refused', 'timeouts', 'cacheHits', 'queued', 'share', 'weight', 'cap', 'slotCap', 'p50LatencyMs', 'p99LatencyMs'];
  var MAX_TENANT_ROWS = 50;
  function tenantCell(t, k, folded) {
    var v = t[k];
    // 0 means none here: no bound (share), no cap, no latency sample yet.
    if (k === 'share' || k === 'cap' || k === 'slotCap' || k === 'p50LatencyMs' || k === 'p99LatencyMs') {
      if (!(v > 0)) return null;
      return k === 'p50LatencyMs' || k === 'p99LatencyMs' ? ms(v) : num(v, 0);
    }
    if (k === 'weight') return folded ? null : num(v, 2);
    return num(v, 0);
  }
  function tenants(ts) {
    ts = ts || [];
    $('tenants').hidden = !ts.length;
    $('tenants-empty').hidden = !!ts.length;
    set('tenants-count', String(ts.length));
    var body = $('tenants-body'), frag = document.createDocumentFragment();
    ts.forEach(function (t, i) {
      // The row past the bound sums many tenants: it has no weight of its own.
      var folded = ts.length >= MAX_TENANT_ROWS && i === ts.length - 1 && t.tenant === 'other';
      var tr = document.createElement('tr'), name = document.createElement('td');
      tr.setAttribute('data-tenant', String(t.tenant));
      name.textContent = String(t.tenant);
      name.title = String(t.tenant);
      tr.appendChild(name);
      TENANT_COLS.forEach(function (k) {
        var td = document.createElement('td'), v = tenantCell(t, k, folded);
        td.textContent = v === null ? '\u2013' : v;
        if (v === null) td.className = 'none';
        else if ((k === 'refused' || k === 'timeouts') && t[k] > 0) td.className = 'warn';
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    body.textContent = '';
    body.appendChild(frag);
  }
  function status(kind, label) {
    var el = $('status'); el.className = kind; set('status-text', label);
  }
  function render(d) {
    if (!d.ok) {
      status('down', 'Redis unreachable');
      var b = $('banner'); b.style.display = 'block'; b.textContent = d.error || 'Redis could not be read';
      return;
    }
    $('banner').style.display = 'none';
    status('live', 'live \\u00b7 ' + new Date(d.at).toLocaleTimeString('en-GB'));
    var q = d.queue;
    set('queue-wait', q ? num(q.wait + q.prioritized, 0) : '\\u2013');
    set('queue-active', q ? num(q.active, 0) : '\\u2013');
    set('queue-delayed', q ? num(q.delayed, 0) : '\\u2013');
    set('queue-failed', q ? num(q.failed, 0) : '\\u2013');
    set('throughput', num(d.throughput, 1));
    set('items-rate', num(d.itemsPerSecond, 1));
    set('batches-rate', num(d.batchesPerSecond, 1));
    var l = d.latencyMs;
    set('p50', l ? ms(l.p50) : '\\u2013');
    set('p95', l ? ms(l.p95) : '\\u2013');
    set('p99', l ? ms(l.p99) : '\\u2013');
    set('p50-all', ms(d.latencyAllMs.p50));
    set('p95-all', ms(d.latencyAllMs.p95));
    set('p99-all', ms(d.latencyAllMs.p99));
    set('batch-size', num(d.avgBatchSize, 1));
    set('batch-size-all', num(d.avgBatchSizeAll, 2));
    set('hit-rate', pct(d.cacheHitRate));
    set('hit-rate-all', pct(d.cacheHitRateAll));
    set('cache-entries', num(d.cache.entries, 0));
    set('cache-bytes', bytes(d.cache.bytes));
    set('errors-rate', num(d.errorsPerSecond, 2));
    var t = d.totals;
    set('requests-total', num(t.requests, 0));
    set('batches-total', num(t.batches, 0));
    set('items-total', num(t.items, 0));
    set('joins-total', num(t.singleFlightJoins, 0));
    set('cache-hits-total', num(t.cacheHits, 0));
    set('batch-cache-hits-total', num(t.batchCacheHits, 0));
    set('errors-total', num(t.errors, 0));
    set('timeouts-total', num(t.timeouts, 0));
    set('clients-count', d.clients === null || d.clients === undefined ? '\\u2013' : String(d.clients));
    var ws = d.workers, list = $('workers');
    if (ws) {
      set('workers-count', String(ws.length));
      set('workers-noun', ws.length === 1 ? 'worker' : 'workers');
      list.innerHTML = '';
      ws.forEach(function (w) {
        var li = document.createElement('li'), id = document.createElement('code'), info = document.createElement('span');
        id.textContent = w.id;
        info.className = 'sub';
        info.textContent = (w.addr ? w.addr + ' \\u00b7 ' : '') + 'up ' + age(w.ageSeconds);
        li.appendChild(id); li.appendChild(info); list.appendChild(li);
      });
      if (!ws.length) list.innerHTML = '<li><span class="sub">no worker connected to the queue</span></li>';
    } else {
      set('workers-count', '?');
      list.innerHTML = '<li><span class="sub"></span></li>';
      list.firstChild.firstChild.textContent = 'Redis refused CLIENT LIST: ' + (d.workersError || '');
    }
    tenants(d.tenants);
    set('window', num(d.windowSeconds, 1));
    push('throughput', d.throughput); push('p95', l ? l.p95 : null); push('queue', q ? q.wait + q.prioritized + q.active : null);
    push('batch', d.avgBatchSize); push('hit', d.cacheHitRate); push('errors', d.errorsPerSecond);
    spark('spark-throughput', series.throughput, '#58a6ff');
    spark('spark-p95', series.p95, '#d2a8ff');
    spark('spark-queue', series.queue, '#d29922');
    spark('spark-batch', series.batch, '#3fb950');
    spark('spark-hit', series.hit, '#39c5cf');
    spark('spark-errors', series.errors, '#f85149');
  }
  function connect() {
    var es = new EventSource('events');
    es.onopen = function () { status('', 'connected, waiting for data'); };
    es.onmessage = function (e) { try { render(JSON.parse(e.data)); } catch (err) { console.error(err); } };
    es.onerror = function () { status('down', 'disconnected \\u00b7 retrying'); };
  }
  connect();
})();
`;

export function dashboardPage(model: string): string {
  const m = escapeHtml(model);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>inferq · ${m}</title>
<style>${CSS}</style>
</head>
<body>
<header>
  <h1>inferq <span class="sub">·</span> model <span class="model">${m}</span></h1>
  <div id="status"><span class="dot"></span><span id="status-text">connecting…</span></div>
</header>
<div id="banner" role="alert"></div>
<main>
  <section class="card">
    <h2>Throughput</h2>
    <div class="big"><span id="throughput">–</span><span class="unit">req/s</span></div>
    <div class="sub"><b id="items-rate">–</b> inputs/s computed · <b id="batches-rate">–</b> model calls/s</div>
    <svg class="spark" id="spark-throughput" viewBox="0 0 300 40" preserveAspectRatio="none"></svg>
  </section>
  <section class="card">
    <h2>Latency (ms)</h2>
    <div class="trio">
      <div><span>p50</span><b class="big" id="p50">–</b></div>
      <div><span>p95</span><b class="big" id="p95">–</b></div>
      <div><span>p99</span><b class="big" id="p99">–</b></div>
    </div>
    <div class="sub">all time: <b id="p50-all">–</b> / <b id="p95-all">–</b> / <b id="p99-all">–</b></div>
    <svg class="spark" id="spark-p95" viewBox="0 0 300 40" preserveAspectRatio="none"></svg>
  </section>
  <section class="card">
    <h2>Queue depth (jobs)</h2>
    <div class="big"><span id="queue-wait">–</span><span class="unit">waiting</span></div>
    <div class="sub"><b id="queue-active">–</b> active · <b id="queue-delayed">–</b> delayed · <b id="queue-failed">–</b> failed</div>
    <svg class="spark" id="spark-queue" viewBox="0 0 300 40" preserveAspectRatio="none"></svg>
  </section>
  <section class="card">
    <h2>Batch size</h2>
    <div class="big"><span id="batch-size">–</span><span class="unit">inputs / model call</span></div>
    <div class="sub">all time: <b id="batch-size-all">–</b></div>
    <svg class="spark" id="spark-batch" viewBox="0 0 300 40" preserveAspectRatio="none"></svg>
  </section>
  <section class="card">
    <h2>Cache hit rate</h2>
    <div class="big"><span id="hit-rate">–</span><span class="unit">%</span></div>
    <div class="sub">all time <b id="hit-rate-all">–</b> % · <b id="cache-entries">–</b> entries · <b id="cache-bytes">–</b></div>
    <svg class="spark" id="spark-hit" viewBox="0 0 300 40" preserveAspectRatio="none"></svg>
  </section>
  <section class="card">
    <h2>Errors</h2>
    <div class="big"><span id="errors-rate">–</span><span class="unit">/s</span></div>
    <div class="sub"><b id="errors-total">–</b> failed · <b id="timeouts-total">–</b> timed out (all time)</div>
    <svg class="spark" id="spark-errors" viewBox="0 0 300 40" preserveAspectRatio="none"></svg>
  </section>
  <section class="card wide">
    <h2>Totals (since the last stats reset)</h2>
    <div class="totals">
      <div><span>requests</span><b id="requests-total">–</b></div>
      <div><span>model calls</span><b id="batches-total">–</b></div>
      <div><span>inputs computed</span><b id="items-total">–</b></div>
      <div><span>single-flight joins</span><b id="joins-total">–</b></div>
      <div><span>cache hits</span><b id="cache-hits-total">–</b></div>
      <div><span>batch cache hits</span><b id="batch-cache-hits-total">–</b></div>
    </div>
  </section>
  <section class="card wide">
    <h2>Workers and clients</h2>
    <div class="sub"><b class="big" id="workers-count">–</b> <span id="workers-noun">workers</span> on the queue · <b id="clients-count">–</b> client processes alive</div>
    <ul id="workers"></ul>
  </section>
  <section class="card full">
    <h2>Tenants (<span id="tenants-count">–</span>) · counts since the last stats reset, places and caps now</h2>
    <p class="sub" id="tenants-empty" hidden>no tenants yet: no request has been counted and no tenant is configured</p>
    <div class="table-scroll">
      <table id="tenants" hidden>
        <thead><tr>
          <th data-col="tenant">tenant</th>
          <th data-col="requests">requests</th>
          <th data-col="refused">refused</th>
          <th data-col="timeouts">timeouts</th>
          <th data-col="cacheHits">cache hits</th>
          <th data-col="queued" title="places held in the queue now (requests admitted, not yet answered)">queued</th>
          <th data-col="share" title="its share of the model's queue bound if it waited now">share</th>
          <th data-col="weight">weight</th>
          <th data-col="cap" title="cap on its places in the queue">queued cap</th>
          <th data-col="slotCap" title="cap on its inputs in each worker's running batches">slot cap</th>
          <th data-col="p50LatencyMs">p50 ms</th>
          <th data-col="p99LatencyMs">p99 ms</th>
        </tr></thead>
        <tbody id="tenants-body"></tbody>
      </table>
    </div>
    <div class="sub note">At most 50 rows, most requests first; past that, the rest are summed in one row named <b>other</b>. – : none (no bound, no cap, no latency yet).</div>
  </section>
</main>
<footer>Shared numbers of model <b>${m}</b> in Redis (every client and worker), read once a second. Rates, latency, batch size and hit rate: the last <span id="window">–</span> s.</footer>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
