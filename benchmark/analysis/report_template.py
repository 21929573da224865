"""The HTML, CSS and plain JavaScript of `wmbench report` (no external asset, no library)."""

from __future__ import annotations

import html

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}
.controls{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc;z-index:1}
.controls label{margin-right:1em;font-size:13px}
table#samples{border-collapse:collapse;margin-top:.5em}
#samples td,#samples th{border:1px solid #ddd;padding:4px;vertical-align:top;font-size:12px}
#samples thead th{background:#f4f4f4}
figure{display:inline-block;margin:2px;text-align:center}
figure img{display:block;image-rendering:pixelated;width:var(--thumb);height:auto}
figcaption{font-size:10px;color:#555}
.action{margin-top:4px;font-style:italic;max-width:14em}
.scores td{border:none!important;padding:0 4px!important}
.err{color:#a00;max-width:20em}.na{color:#999}
.text{max-width:16em;padding:2px 4px;border-radius:3px}.text.ok{background:#e3f6e3}.text.bad{background:#fbe9e9}
.figs img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.notes{font-size:12px;color:#444}
"""

JS = """
(function () {
  const tbody = document.querySelector('#samples tbody');
  const rows = Array.from(tbody.rows);
  const scores = new Map(rows.map(tr => [tr, JSON.parse(tr.dataset.scores)]));
  const $ = id => document.getElementById(id);
  function value(tr, key) { const v = scores.get(tr)[key]; return v === undefined ? null : v; }
  function apply() {
    const task = $('task').value, key = $('sort').value, desc = $('dir').value === 'desc';
    const query = $('search').value.trim().toLowerCase();
    const lo = parseFloat($('min').value), hi = parseFloat($('max').value);
    const order = (a, b) => a.dataset.order - b.dataset.order;
    const sorted = rows.slice().sort((a, b) => {
      if (!key) return order(a, b);
      const va = value(a, key), vb = value(b, key);
      if (va === null || vb === null) return (va === null) - (vb === null) || order(a, b);
      return (desc ? vb - va : va - vb) || order(a, b);
    });
    let shown = 0;
    for (const tr of sorted) {
      tbody.appendChild(tr);
      const v = key ? value(tr, key) : null;
      let ok = (!task || tr.dataset.task === task) && (!query || tr.textContent.toLowerCase().includes(query));
      if (key && (!isNaN(lo) || !isNaN(hi))) ok = ok && v !== null && (isNaN(lo) || v >= lo) && (isNaN(hi) || v <= hi);
      tr.hidden = !ok;
      shown += ok;
    }
    $('status').textContent = shown + ' of ' + rows.length + ' samples shown';
  }
  for (const id of ['task', 'sort', 'dir']) $(id).addEventListener('change', apply);
  for (const id of ['search', 'min', 'max']) $(id).addEventListener('input', apply);
  apply();
})();
"""


def figure_html(uri: str, caption: str) -> str:
    return f'<figure><img src="{uri}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _options(items: list[tuple[str, str]]) -> str:
    return "".join(f'<option value="{html.escape(v)}">{html.escape(label)}</option>' for v, label in items)


def page(runs: list[tuple[str, str]], tasks: list[str], rows: str, figures: list[str],
         sort_keys: list[tuple[str, str]], notes: list[str], heat_scale: int, thumb: int) -> str:
    sort_items = [("", "reader order")] + [(f"{label}|{m}", f"{label} · {m}") for label, m in sort_keys]
    heads = "".join(f"<th>{html.escape(label)}</th>" for label, _ in runs)
    run_list = "".join(f"<li><b>{html.escape(label)}</b>: {html.escape(path)}</li>" for label, path in runs)
    note_list = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    figs = "".join(f'<img src="{uri}" alt="figure">' for uri in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>wmbench report</title>
<style>:root{{--thumb:{thumb}px}}{CSS}</style></head>
<body><h1>wmbench report</h1>
<ul>{run_list}</ul>
<ul class="notes">{note_list}
<li>Heatmaps: mean |difference| over the colour channels, one fixed scale for every image (black: none,
brightest: {heat_scale}/255 or more). |target − source| is the true change, |prediction − source| the change the
model made (an unchanged copy of the source is black).</li>
<li>IDP: each model's predicted action, green where it equals the reference action (case-insensitive), red
otherwise.</li></ul>
<div class="figs">{figs}</div>
<h2>Samples</h2>
<div class="controls">
<label>task <select id="task">{_options([("", "all")] + [(t, t) for t in tasks])}</select></label>
<label>sort by <select id="sort">{_options(sort_items)}</select></label>
<label><select id="dir"><option value="desc">descending</option><option value="asc">ascending</option></select></label>
<label>min <input id="min" type="number" step="any" size="6"></label>
<label>max <input id="max" type="number" step="any" size="6"></label>
<label>search <input id="search" type="search" placeholder="action, sample id"></label>
<span id="status"></span></div>
<table id="samples"><thead><tr><th>sample / action</th><th>frames</th>{heads}</tr></thead>
<tbody>{rows}</tbody></table>
<script>{JS}</script>
</body></html>
"""
