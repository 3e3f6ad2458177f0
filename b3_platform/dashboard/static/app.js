// The dashboard page: reads the inlined data and chart specs, and redraws on every control change.
// Nothing is fetched: the data, the specs and Vega itself are in this page.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("dashboard-data").textContent);
  const SPECS = JSON.parse(document.getElementById("dashboard-specs").textContent);
  const DAY_MS = 86400000;

  const records = (table) => table.rows.map((row) => Object.fromEntries(table.fields.map((f, i) => [f, row[i]])));
  const tables = {};
  for (const name of ["summary", "weights", "sectors", "events", "latest", "overlap", "rebalance_preview", "rebalance_changes", "rebalance_accuracy"])
    tables[name] = records(DATA[name]);
  const allDates = [...new Set(tables.summary.map((r) => r.date))].sort();

  // The history is bounded: each index's newest dates are rows day by day, older ones one row per
  // month (resolution "month": the month's last date in the lake) saying how many lake dates it
  // stands for, so counts are summed over rows, never counted as rows.
  const held = (r) => r.dates ?? 1;
  const firstHeld = (r) => r.first_date ?? r.date;
  const compared = (r) => r.compared ?? (r.previous_in_lake ? 1 : 0);
  const withSectors = (r) => r.with_sectors ?? (r.has_sector ? 1 : 0);
  const sum = (rows, value) => rows.reduce((total, r) => total + value(r), 0);
  // The gaps between the lake's dates of `rows` (one index, in date order): every date whose
  // previous trading day the lake lacks, but the first.
  const gapsIn = (rows) =>
    Math.max(sum(rows, (r) => held(r) - compared(r)) - (rows.length && !(rows[0].first_compared ?? rows[0].previous_in_lake) ? 1 : 0), 0);
  const firstDate = tables.summary.length ? tables.summary.map(firstHeld).sort()[0] : undefined;
  // Per index whose older dates are month points: its first date drawn day by day.
  const dailyFrom = new Map();
  const monthly = new Set();
  for (const r of tables.summary) {
    if (r.resolution === "month") monthly.add(r.index);
    else if (monthly.has(r.index) && !dailyFrom.has(r.index)) dailyFrom.set(r.index, r.date);
  }
  const QUERY_NOTE = "every date stays queryable with python -m b3_platform query";

  const state = {
    view: "overview",
    index: DATA.indices.includes("IBOV") ? "IBOV" : DATA.indices[0],
    from: firstDate,
    to: allDates[allDates.length - 1],
  };
  const views = {};
  window.dashboard = { data: tables, views, state, rendered: 0, errors: [] };

  const $ = (id) => document.getElementById(id);
  const fixed = (value, digits) => (value === null || value === undefined ? "—" : Number(value).toFixed(digits));
  const signed = (value) => (value === null || value === undefined ? "—" : (value > 0 ? "+" : "") + Number(value).toFixed(3));
  const escape = (text) => String(text ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const inRange = (row) => row.date >= state.from && row.date <= state.to;
  const ofIndex = (row) => row.index === state.index;

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.get("view") === "index" || params.get("view") === "overview") state.view = params.get("view");
    if (DATA.indices.includes(params.get("index"))) state.index = params.get("index");
    for (const key of ["from", "to"]) if (/^\d{4}-\d{2}-\d{2}$/.test(params.get(key) || "")) state[key] = params.get(key);
  }

  function writeHash() {
    const params = new URLSearchParams({ view: state.view, index: state.index, from: state.from, to: state.to });
    history.replaceState(null, "", "#" + params.toString());
  }

  // The time axis of the chosen range, as a Vega expression (an expression is one domain for every
  // layer of a chart): UTC midnight of `from` to the day after `to`.
  function utcDomain(from, to) {
    const utc = (ms) => {
      const d = new Date(ms);
      return `utc(${d.getUTCFullYear()}, ${d.getUTCMonth()}, ${d.getUTCDate()})`;
    };
    return { expr: `[${utc(Date.parse(from))}, ${utc(Date.parse(to) + DAY_MS)}]` };
  }

  async function draw(id, rows, note) {
    const element = $(id);
    if (views[id]) {
      views[id].finalize();
      delete views[id];
    }
    element.textContent = "";
    if (!rows.length) {
      if (note) element.innerHTML = `<p class="note">${escape(note)}</p>`;
      return;
    }
    const spec = structuredClone(SPECS[id]);
    spec.data = { name: "rows", values: rows };
    const x = spec.encoding && spec.encoding.x;
    if (x && x.type === "temporal") x.scale = { ...x.scale, domain: utcDomain(state.from, state.to) };
    const result = await vegaEmbed(element, spec, { actions: false, renderer: "svg", logLevel: 1 /* vega.Error */ });
    views[id] = result.view;
  }

  function indexFacts(summary) {
    const last = summary[summary.length - 1];
    const facts = [
      ["dates in range", sum(summary, held)],
      ["first", summary.length ? firstHeld(summary[0]) : "—"],
      ["last", last ? last.date : "—"],
      ["gaps", gapsIn(summary)],
      ["components", last ? last.components : "—"],
      ["top-10 weight", last ? fixed(last.top10_weight, 3) + " %" : "—"],
      ["HHI", last ? fixed(last.hhi, 6) : "—"],
    ];
    $("index-facts").innerHTML = facts.map(([k, v]) => `<div><dt>${escape(k)}</dt><dd>${escape(v)}</dd></div>`).join("");
    const from = dailyFrom.get(state.index);
    $("resolution-note").textContent = from
      ? `Before ${from}: one point per month — the month's last date in the lake (the counts above are of every date); ${QUERY_NOTE}.`
      : "";
  }

  function eventsList(events) {
    const byDate = new Map();
    for (const e of events) {
      if (!byDate.has(e.date)) byDate.set(e.date, []);
      byDate.get(e.date).push(e);
    }
    $("events-list").innerHTML = [...byDate.entries()]
      .map(([date, items]) => {
        const parts = items.map(
          (e) => `<span class="${e.membership}">${e.membership === "entered" ? "+" : "−"} ${escape(e.ticker)} (${escape(e.company)}, ${fixed(e.weight, 3)} %)</span>`
        );
        return `<li><strong>${date}</strong>: ${parts.join(" · ")}</li>`;
      })
      .join("");
  }

  function compositionTable() {
    const rows = tables.latest.filter(ofIndex);
    const day = rows.length ? rows[0].date : null;
    const summary = tables.summary.find((r) => r.index === state.index && r.date === day);
    const compared = summary && summary.previous_in_lake;
    $("composition-title").textContent = day
      ? `Composition of ${state.index} on ${day} (its newest date in the lake)` +
        (compared ? ", with the change from the previous trading day" : "; the previous trading day is not in the lake, so no change is shown")
      : "";
    const head = "<tr><th>ticker</th><th>company</th><th>sector</th><th class=n>weight (%)</th><th class=n>previous (%)</th><th class=n>change (pp)</th><th>membership</th></tr>";
    $("composition").innerHTML =
      head +
      rows
        .map(
          (r) =>
            `<tr class="${escape(r.membership)}"><td>${escape(r.ticker)}</td><td>${escape(r.company)}</td><td>${escape(r.sector ?? "—")}</td>` +
            `<td class=n>${fixed(r.weight, 3)}</td><td class=n>${fixed(r.previous_weight, 3)}</td><td class=n>${signed(r.weight_change_pp)}</td><td>${escape(r.membership)}</td></tr>`
        )
        .join("");
  }

  // The next rebalance: what the latest captured preview of the index announces (tickers entering
  // and leaving, expected weight changes), and how the day portfolio of the latest rebalance date
  // matched the previews captured before it. Tables come from announced_changes/announced_accuracy.
  const RESHOWN = 15; // staying tickers listed with their expected weight change, largest first

  function rebalancePanel() {
    const preview = tables.rebalance_preview.find(ofIndex);
    const changes = tables.rebalance_changes.filter(ofIndex);
    const accuracy = tables.rebalance_accuracy.filter(ofIndex);
    $("rebalance-title").textContent = preview
      ? `Next rebalance of ${state.index}: ${preview.rebalance_date}, as the preview captured on ${preview.captured_on} announces it`
      : `Next rebalance of ${state.index}`;
    if (!preview) {
      $("rebalance-preview").innerHTML = `<p class="note" id="rebalance-none">No preview of the next rebalance has been captured for ${escape(state.index)} yet: the lake holds no GetQuartelyPreview capture of it (announced_changes has no row).</p>`;
    } else {
      const listed = (change) => changes.filter((r) => r.change === change);
      const names = (rows, weight) =>
        rows.length ? rows.map((r) => `${escape(r.ticker)} (${escape(r.company)}, ${fixed(r[weight], 3)} %)`).join(" · ") : "none";
      const reweighted = listed("staying");
      const head = "<tr><th>ticker</th><th>company</th><th>change</th><th class=n>current (%)</th><th class=n>preview (%)</th><th class=n>change (pp)</th></tr>";
      const shown = [...listed("entering"), ...listed("leaving"), ...reweighted.slice(0, RESHOWN)];
      $("rebalance-preview").innerHTML =
        `<ul class="rebalance-moves"><li class="entered" id="rebalance-entering"><strong>entering (${preview.entering})</strong>: ${names(listed("entering"), "preview_weight")}</li>` +
        `<li class="exited" id="rebalance-leaving"><strong>leaving (${preview.leaving})</strong>: ${names(listed("leaving"), "current_weight")}</li></ul>` +
        `<p class="note">${preview.staying} tickers stay, ${preview.reweighted} of them with another weight` +
        (reweighted.length > RESHOWN ? ` (the ${RESHOWN} largest changes shown)` : "") +
        `. Preview vs the theoretical portfolio in force; capture <code>${escape(preview.preview_capture_id)}</code>.</p>` +
        `<table id="rebalance-table" class="numbers">${head}` +
        shown
          .map(
            (r) =>
              `<tr class="${r.change === "entering" ? "entered" : r.change === "leaving" ? "exited" : ""}"><td>${escape(r.ticker)}</td><td>${escape(r.company)}</td><td>${escape(r.change)}</td>` +
              `<td class=n>${fixed(r.current_weight, 3)}</td><td class=n>${fixed(r.preview_weight, 3)}</td><td class=n>${signed(r.weight_change_pp)}</td></tr>`
          )
          .join("") +
        "</table>";
    }
    if (!accuracy.length) {
      $("rebalance-accuracy").innerHTML = "";
      return;
    }
    const day = accuracy[0].rebalance_date;
    const head =
      "<tr><th>preview of</th><th class=n>trading days before</th><th class=n>tickers matched</th><th>missing</th><th>unexpected</th><th class=n>quantities equal</th><th class=n>max weight error (pp)</th><th>exact</th></tr>";
    $("rebalance-accuracy").innerHTML =
      `<h4>How accurate the previews of the ${escape(day)} rebalance were</h4>` +
      `<p class="note">The day portfolio of ${escape(day)} against each preview captured before it; tickers stable since ${escape(accuracy[0].tickers_stable_since)}, quantities since ${escape(accuracy[0].quantities_stable_since)}.</p>` +
      `<table id="accuracy-table" class="numbers">${head}` +
      accuracy
        .map(
          (r) =>
            `<tr><td>${escape(r.preview_date)}</td><td class=n>${r.trading_days_before}</td><td class=n>${r.tickers_matched} of ${r.actual_components}</td>` +
            `<td>${escape(r.missing_tickers || "—")}</td><td>${escape(r.unexpected_tickers || "—")}</td><td class=n>${r.quantities_equal}</td>` +
            `<td class=n>${fixed(r.weight_max_abs_error_pp, 3)}</td><td>${r.exact ? "yes" : "no"}</td></tr>`
        )
        .join("") +
      "</table>";
  }

  async function renderIndex() {
    const summary = tables.summary.filter((r) => ofIndex(r) && inRange(r));
    $("index-title").textContent = `${state.index}, ${state.from} to ${state.to}`;
    indexFacts(summary);
    const empty = `${state.index} has no date in the lake between ${state.from} and ${state.to}.`;
    const events = tables.events.filter((r) => ofIndex(r) && inRange(r));
    const sectors = tables.sectors.filter((r) => ofIndex(r) && inRange(r));
    const dates = sum(summary, held);
    $("sectors-note").textContent = summary.length
      ? `${sum(summary, withSectors)} of ${dates} dates carry sectors (only B3 API captures with segment 2 do).`
      : "";
    $("events-note").textContent = `${sum(summary, compared)} of ${dates} dates could be compared with their previous trading day (it is in the lake).`;
    eventsList(events);
    compositionTable();
    rebalancePanel();
    await Promise.all([
      draw("weights", tables.weights.filter((r) => ofIndex(r) && inRange(r)), empty),
      draw("sectors", sectors, `No date of ${state.index} in this range carries sectors.`),
      draw("concentration", summary, empty),
      draw("hhi", summary, empty),
      draw("components", summary, empty),
      draw("events", events, `No entries or exits in this range.`),
    ]);
  }

  function overviewTable() {
    const head = "<tr><th>index</th><th class=n>dates</th><th>first</th><th>newest</th><th class=n>components</th><th class=n>top-5 (%)</th><th class=n>top-10 (%)</th><th class=n>HHI</th></tr>";
    const lines = DATA.indices.map((index) => {
      const rows = tables.summary.filter((r) => r.index === index && inRange(r));
      const last = rows[rows.length - 1];
      if (!last) return `<tr><td>${escape(index)}</td><td class=n>0</td><td colspan=6>no date in this range</td></tr>`;
      return (
        `<tr><td><a href="#view=index&index=${encodeURIComponent(index)}&from=${state.from}&to=${state.to}" data-index="${escape(index)}">${escape(index)}</a></td>` +
        `<td class=n>${sum(rows, held)}</td><td>${firstHeld(rows[0])}</td><td>${last.date}</td><td class=n>${last.components}</td>` +
        `<td class=n>${fixed(last.top5_weight, 3)}</td><td class=n>${fixed(last.top10_weight, 3)}</td><td class=n>${fixed(last.hhi, 6)}</td></tr>`
      );
    });
    $("overview-table").innerHTML = head + lines.join("");
    const since = new Map();
    for (const [index, from] of dailyFrom) since.set(from, [...(since.get(from) || []), index]);
    $("overview-resolution").textContent = since.size
      ? "Each index's newest dates are drawn day by day; before " +
        [...since].map(([from, indices]) => `${from} (${indices.join(", ")})`).join(", before ") +
        ` one point per month — the month's last date in the lake (the dates counted above are every date); ${QUERY_NOTE}.`
      : "";
  }

  async function renderOverview() {
    overviewTable();
    const summary = tables.summary.filter(inRange);
    const overlap = tables.overlap
      .filter((r) => r.index_a !== r.index_b)
      .map((r) => ({ ...r, label: `${fixed(r.shared_weight_a, 1)} % · ${r.shared}/${r.members_a}` }));
    $("overlap-note").textContent = overlap.length
      ? "Each pair on the newest date both indices are in the lake (hover for the date)."
      : "No two indices are in the lake on the same date, so their members cannot be compared.";
    await Promise.all([
      draw("overview-components", summary, "No date in this range."),
      draw("overview-top10", summary, ""),
      draw("overview-hhi", summary, ""),
      draw("overlap", overlap, ""),
    ]);
  }

  async function render() {
    for (const name of ["overview", "index"]) {
      $(name).classList.toggle("active", state.view === name);
      $("tab-" + name).classList.toggle("active", state.view === name);
    }
    $("index-select").value = state.index;
    $("date-from").value = state.from;
    $("date-to").value = state.to;
    writeHash();
    await (state.view === "index" ? renderIndex() : renderOverview());
    window.dashboard.rendered += 1;
  }

  function setup() {
    if (!allDates.length) {
      document.querySelector("main").innerHTML =
        '<p class="note" id="empty">The catalog holds no date yet: materialize gold, then athena_tables, and rebuild the dashboard.</p>';
      document.getElementById("controls").hidden = true;
      window.dashboard.rendered += 1;
      return;
    }
    $("index-select").innerHTML = DATA.indices.map((i) => `<option value="${escape(i)}">${escape(i)}</option>`).join("");
    for (const input of [$("date-from"), $("date-to")]) {
      input.min = firstDate;
      input.max = allDates[allDates.length - 1];
    }
    readHash();
    const rerender = () => {
      window.dashboard.ready = render();
    };
    $("index-select").addEventListener("change", (e) => {
      state.index = e.target.value;
      state.view = "index";
      rerender();
    });
    $("date-from").addEventListener("change", (e) => {
      if (e.target.value) state.from = e.target.value;
      rerender();
    });
    $("date-to").addEventListener("change", (e) => {
      if (e.target.value) state.to = e.target.value;
      rerender();
    });
    $("range-all").addEventListener("click", () => {
      state.from = firstDate;
      state.to = allDates[allDates.length - 1];
      rerender();
    });
    for (const button of document.querySelectorAll("nav button")) {
      button.addEventListener("click", () => {
        state.view = button.dataset.view;
        rerender();
      });
    }
    $("overview-table").addEventListener("click", (e) => {
      const link = e.target.closest("a[data-index]");
      if (!link) return;
      e.preventDefault();
      state.index = link.dataset.index;
      state.view = "index";
      rerender();
    });
    rerender();
  }

  setup();
})();
