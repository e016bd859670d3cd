/* matchstream dashboard: draws one snapshot (matchstream/dashboard/snapshot.py) with uPlot.
 * Served, it polls data.json every POLL_MS without reloading the page; as a report, it draws
 * the snapshot embedded in the file once. window.matchstreamDashboard exposes the charts and the
 * last snapshot so that a test (or a curious user in the console) can read what is drawn. */
(function () {
  "use strict";

  var POLL_MS = 2000;
  // A refresh that kept the database busy for T waits at least 2 T before the next, so an
  // open page never takes more than a third of the database's time (the live-quality views
  // rank every prediction: seconds at 100,000 predictions).
  var BUSY_FACTOR = 2;
  var LAG_SAMPLES = 300; // ten minutes of refreshes
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                "#17becf", "#7f7f7f", "#bcbd22"];

  // refreshesWithErrors: snapshots that carried a database error (shown, then maybe gone).
  var state = {charts: {}, snapshot: null, refreshes: 0, failures: 0, refreshesWithErrors: 0,
               lag: {t: [], pipelines: [], series: []}, mode: "live"};
  window.matchstreamDashboard = state;

  function fmt(value, digits) {
    if (value === null || value === undefined) { return "–"; }
    if (typeof value === "number" && digits !== undefined) { return value.toFixed(digits); }
    return String(value);
  }

  function clock(seconds) {
    return seconds === null || seconds === undefined ? "–"
      : new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function node(tag, text, className) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = text; }
    if (className) { e.className = className; }
    return e;
  }

  function line(label, color, dash) {
    return {label: label, stroke: color, width: 2, dash: dash, spanGaps: true,
            points: {show: true, size: 4}};
  }

  var WHOLE_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

  /* With a single point (one model version, the first lag sample) uPlot widens a time axis by
   * 86400 of its units, years here: a minute around the point instead. */
  function oneSample(chart, data, time) {
    if (data[0].length === 1) {
      var pad = time ? 30 : 1;
      chart.setScale("x", {min: data[0][0] - pad, max: data[0][0] + pad});
    }
    return chart;
  }

  function figureWidth(id) {
    var fig = document.getElementById(id);
    return Math.max(280, fig.clientWidth - 16);
  }

  /* One chart: created on first use, recreated when its series change (a pipeline appears),
   * otherwise only given new data. */
  function draw(id, key, data, opts) {
    var existing = state.charts[key];
    var labels = opts.series.map(function (s) { return s.label; }).join("\u0000");
    if (existing && existing._labels === labels) {
      existing.setData(data);
      return oneSample(existing, data, opts.time);
    }
    if (existing) { existing.destroy(); }
    var full = {
      width: figureWidth(id), height: 240,
      scales: {x: {time: opts.time}, y: opts.yRange ? {range: opts.yRange} : {}},
      series: [{label: opts.xLabel, value: opts.time
        ? function (u, v) { return v === null ? "–" : clock(v); } : undefined}]
        .concat(opts.series),
      // Model versions are whole numbers: no tick at 1.5.
      axes: [opts.time ? {} : {incrs: WHOLE_STEPS}, {label: opts.yLabel, size: 60}],
      legend: {live: true}
    };
    var chart = new uPlot(full, data, document.getElementById(id));
    chart._labels = labels;
    state.charts[key] = chart;
    return oneSample(chart, data, opts.time);
  }

  function drawCharts(s) {
    var t = s.training;
    draw("chart-training", "training",
         [t.model_version, t.auc, t.accuracy, t.f1, t.accuracy_baseline],
         {time: false, xLabel: "model version", yLabel: "on its batch", yRange: [0, 1], series: [
           line("AUC", COLORS[0]), line("accuracy", COLORS[1]), line("F1", COLORS[2]),
           line("always no-match accuracy", "#999", [5, 5])]});
    var m = s.live_per_minute;
    draw("chart-live-minute", "live_minute", [m.minute, m.auc, m.accuracy, m.accuracy_baseline],
         {time: true, xLabel: "minute", yLabel: "live", yRange: [0, 1], series: [
           line("AUC", COLORS[0]), line("accuracy", COLORS[1]),
           line("always no-match accuracy", "#999", [5, 5])]});
    var v = s.live_per_version;
    draw("chart-live-version", "live_version",
         [v.model_version, v.auc, v.accuracy, v.accuracy_baseline],
         {time: false, xLabel: "model version", yLabel: "live", yRange: [0, 1], series: [
           line("AUC", COLORS[0]), line("accuracy", COLORS[1]),
           line("always no-match accuracy", "#999", [5, 5])]});
    var p = s.predictions_per_second;
    draw("chart-pps", "predictions_per_second", [p.second, p.predictions],
         {time: true, xLabel: "second", yLabel: "predictions/s", series: [
           {label: "predictions", stroke: COLORS[0], fill: "rgba(31,119,180,0.15)", width: 1}]});
    var b = s.batch_times;
    draw("chart-batch", "batch_times", [b.started].concat(b.series),
         {time: true, xLabel: "batch start", yLabel: "seconds", series: b.pipelines.map(
           function (name, i) {
             return {label: name, stroke: COLORS[i % COLORS.length], width: 0, spanGaps: false,
                     points: {show: true, size: 5, fill: COLORS[i % COLORS.length]}};
           })});
    drawLag(s);
  }

  /* The catalog keeps only the current lag, so its history is what this page has seen. */
  function drawLag(s) {
    var names = s.pipelines.map(function (p) { return p.name; });
    var lag = state.lag;
    if (names.join("\u0000") !== lag.pipelines.join("\u0000")) {
      lag.t = []; lag.pipelines = names; lag.series = names.map(function () { return []; });
    }
    lag.t.push(s.generated_at);
    s.pipelines.forEach(function (p, i) { lag.series[i].push(p.lag); });
    if (lag.t.length > LAG_SAMPLES) {
      lag.t.shift();
      lag.series.forEach(function (values) { values.shift(); });
    }
    draw("chart-lag", "lag", [lag.t.slice()].concat(lag.series.map(function (x) {
      return x.slice();
    })), {time: true, xLabel: "sampled", yLabel: "messages", series: names.map(function (n, i) {
      return line(n, COLORS[i % COLORS.length]);
    })});
  }

  function tile(name, text) {
    document.querySelector('[data-tile="' + name + '"]').textContent = text;
  }

  function drawTiles(s) {
    var totals = s.totals || {}, live = s.live || {};
    var pps = s.predictions_per_second.predictions.slice(-10);
    var rate = pps.length ? pps.reduce(function (a, c) { return a + c; }, 0) / pps.length : null;
    tile("live_model_version", fmt(totals.live_model_version));
    tile("versions_trained", fmt(totals.versions_trained));
    tile("predictions", fmt(totals.predictions));
    tile("predictions_per_second", fmt(rate, 1));
    tile("live_accuracy", fmt(live.accuracy, 3));
    tile("live_auc", fmt(live.auc, 3));
    tile("judged", fmt(live.scored) + " / " + fmt(live.awaiting_outcome));
    tile("rejected_rows", fmt(totals.rejected_rows));
  }

  function fillTable(id, rows, cells) {
    var body = document.querySelector("#" + id + " tbody");
    body.textContent = "";
    rows.forEach(function (row) {
      var tr = node("tr");
      cells(row).forEach(function (c) {
        var td = node("td", c[0], c[1]);
        if (c[2]) { td.dataset.col = c[2]; }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function drawTables(s) {
    fillTable("pipelines", s.pipelines, function (p) {
      return [[p.name, "", "name"], [p.topic, "", "topic"],
              [p.state, "state-" + p.state, "state"], [fmt(p.lag), "num", "lag"],
              [fmt(p.batch_seconds, 3), "num", "batch_seconds"],
              [clock(p.last_batch_at), "", "last_batch_at"]];
    });
    fillTable("drift", s.drift, function (d) {
      return [[fmt(d.model_version), "num"], [d.kind], [fmt(d.score, 3), "num"], [d.detail]];
    });
    var list = document.getElementById("errors");
    list.textContent = "";
    if (!s.recent_errors.length) { list.appendChild(node("li", "none", "none")); }
    s.recent_errors.forEach(function (e) {
      var li = node("li");
      li.dataset.errorId = e.id;
      li.appendChild(node("span", e.type, "type-" + e.type));
      li.appendChild(node("span", " " + clock(e.at) + " "));
      li.appendChild(node("span", e.where, "where"));
      li.appendChild(node("div", e.message, "message"));
      if (e.std_error) { li.appendChild(node("pre", e.std_error)); }
      list.appendChild(li);
    });
  }

  function showProblems(lines) {
    var box = document.getElementById("problems");
    box.hidden = lines.length === 0;
    box.textContent = lines.join("\n");
  }

  function render(s) {
    state.snapshot = s;
    document.getElementById("database").textContent = s.database;
    drawTiles(s);
    drawCharts(s);
    drawTables(s);
    var problems = Object.keys(s.errors).map(function (k) { return k + ": " + s.errors[k]; });
    if (problems.length) { state.refreshesWithErrors += 1; }
    showProblems(problems);
    document.getElementById("cost").textContent = (state.mode === "report"
      ? "Reading the data for this report: " : "This refresh: ") + s.cost.queries +
      " queries, " + (s.cost.seconds * 1000).toFixed(1) + " ms in the database (catalog " +
      s.catalog + ")" + (s.cost.reused.length ? "; unchanged since the last refresh, not " +
      "queried again: " + s.cost.reused.join(", ") : "") + ".";
  }

  function status(text) {
    var el = document.getElementById("status");
    el.textContent = text;
    el.dataset.refreshes = String(state.refreshes);
  }

  function nextDelay(s) {
    return s ? Math.max(POLL_MS, BUSY_FACTOR * s.cost.seconds * 1000) : POLL_MS;
  }

  function poll() {
    fetch("data.json", {cache: "no-store"}).then(function (response) {
      if (!response.ok) { throw new Error("data.json answered HTTP " + response.status); }
      return response.json();
    }).then(function (s) {
      state.refreshes += 1;
      render(s);
      status("live, updated " + clock(s.generated_at) + " (every " +
             (nextDelay(s) / 1000).toFixed(nextDelay(s) > POLL_MS ? 1 : 0) + " s)");
    }).catch(function (err) {
      state.failures += 1;
      showProblems(["the dashboard server does not answer: " + err.message +
                    " (is `matchstream dashboard` still running?)"]);
      status("not updated since " + (state.snapshot ? clock(state.snapshot.generated_at) : "–"));
    }).then(function () { window.setTimeout(poll, nextDelay(state.snapshot)); });
  }

  window.addEventListener("resize", function () {
    Object.keys(state.charts).forEach(function (k) {
      var c = state.charts[k];
      c.setSize({width: Math.max(280, c.root.parentNode.clientWidth - 16), height: 240});
    });
  });

  var embedded = document.getElementById("snapshot");
  if (embedded) {
    state.mode = "report";
    document.querySelector("#chart-lag figcaption").textContent =
      "Lag per pipeline, messages, when the report was written";
    var snapshot = JSON.parse(embedded.textContent);
    state.refreshes = 1;
    render(snapshot);
    status("report generated " + clock(snapshot.generated_at) + " (a snapshot; it does not update)");
  } else {
    poll();
  }
}());
