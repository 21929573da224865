"""The HTML, CSS and plain JavaScript of a human-evaluation annotation page (`wmbench human export`).

One page per annotator; it works from file:// with no server and no external asset: images are
data URIs, the script is inline. The page knows only item ids and option numbers, never which
model is which option (that is in key.json beside the pages). The annotator's choices are kept in
localStorage where the browser allows it and are always downloadable as JSON (a Blob link, which
needs no storage); a downloaded file can be loaded back to resume.
"""

from __future__ import annotations

import html
import json

# file formats shared by export and import: the page's download and the blinding key beside the pages
ANNOTATIONS_FORMAT = "wmbench-human-annotations"
ANNOTATIONS_VERSION = 1
KEY_FILE = "key.json"
KEY_FORMAT = "wmbench-human-key"
KEY_VERSION = 1

CSS = """
:root{--img:256px}
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #ccc;padding:.5em 1em;
  display:flex;flex-wrap:wrap;gap:.4em 1.2em;align-items:center}
header h1{font-size:1.05em;margin:0}
header .meta{font-size:12px;color:#555}
#progress-bar{width:10em;height:.9em}
#autosave{font-size:12px;color:#2a6a2a}#autosave.warn{color:#a33;font-weight:600}
button{font:inherit;cursor:pointer}
main{padding:.8em 1em 3em}
.item{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em}
.instruction{font-size:1.15em;margin:.2em 0 .6em}.instruction b{background:#fff4c2;padding:1px 4px}
.frames{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
figure{margin:0;text-align:center}
figure img{display:block;width:var(--img);height:auto;border:1px solid #bbb;background:#eee}
figure.source img{border:3px solid #555}
figcaption{font-size:14px;font-weight:600;margin-top:2px}
.sep{width:1px;align-self:stretch;background:#ccc;margin:0 4px}
table.choices{border-collapse:collapse;margin-top:.8em}
.choices td,.choices th{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:middle}
.choices tr.active{background:#e8f0ff;outline:2px solid #7aa2f7}
.choices tr.done td:first-child::after{content:" ✓";color:#2a8a2a}
.choices small{color:#555}
.opt{min-width:2.2em;margin:0 2px;padding:2px 6px;border:1px solid #999;border-radius:4px;background:#fff}
.opt.best[aria-pressed=true]{background:#2a8a2a;color:#fff;border-color:#2a8a2a}
.opt.worst[aria-pressed=true]{background:#b33;color:#fff;border-color:#b33}
textarea{width:min(40em,95%);height:2.6em;margin-top:.5em}
nav{margin:.8em 0;display:flex;gap:.6em;align-items:center;flex-wrap:wrap}
#dots{display:flex;flex-wrap:wrap;gap:3px;margin:.4em 0}
#dots button{width:1.6em;height:1.4em;padding:0;font-size:10px;border:1px solid #aaa;background:#eee}
#dots button.done{background:#8c8}#dots button.partial{background:#fd8}#dots button.here{outline:2px solid #333}
#message{color:#a33;font-weight:600;min-height:1.2em}
.help{font-size:13px;color:#333;background:#fff;border:1px solid #ddd;border-radius:6px;padding:.4em 1em;margin-top:1em}
.help kbd{border:1px solid #999;border-radius:3px;padding:0 4px;background:#f4f4f4;font-size:12px}
"""

JS = r"""
(function () {
  'use strict';
  const DATA = JSON.parse(document.getElementById('wmbench-data').textContent);
  const CRITERIA = DATA.criteria.map(c => c.id);
  const sections = Array.from(document.querySelectorAll('section.item'));
  const ids = sections.map(s => s.dataset.item);
  const options = Object.fromEntries(sections.map(s => [s.dataset.item, +s.dataset.options]));
  const state = Object.fromEntries(ids.map(id => [id, {best: {}, worst: {}, comment: ''}]));
  const STORE_KEY = 'wmbench-human:' + DATA.export_id + ':' + DATA.annotator;
  const $ = id => document.getElementById(id);
  let current = 0, active = 0, unsaved = false, messageTimer = null;

  // localStorage may be missing or throw (file:// in some browsers, privacy modes, a full quota)
  function openStore() {
    try {
      const s = window.localStorage, probe = '__wmbench_probe__';
      s.setItem(probe, probe); s.removeItem(probe);
      return s;
    } catch (e) { return null; }
  }
  const store = openStore();

  function isComplete(id) { const s = state[id]; return CRITERIA.every(c => s.best[c] && s.worst[c]); }
  function isEmpty(id) {
    const s = state[id]; return CRITERIA.every(c => !s.best[c] && !s.worst[c]) && !s.comment;
  }
  function say(text) {
    $('message').textContent = text;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => { $('message').textContent = ''; }, 4000);
  }

  function documentJSON() {
    return {
      format: DATA.format, version: DATA.version, export_id: DATA.export_id, annotator: DATA.annotator,
      criteria: CRITERIA, saved_at: new Date().toISOString(), n_items: ids.length,
      n_complete: ids.filter(isComplete).length,
      items: ids.map(id => ({
        item: id,
        best: Object.fromEntries(CRITERIA.map(c => [c, state[id].best[c] || null])),
        worst: Object.fromEntries(CRITERIA.map(c => [c, state[id].worst[c] || null])),
        comment: state[id].comment,
      })),
    };
  }

  function restore(saved) {  // a downloaded file (items: a list) or the autosave (items: an object)
    const list = Array.isArray(saved.items) ? saved.items
      : Object.entries(saved.items || {}).map(([item, s]) => Object.assign({item: item}, s));
    let n = 0;
    for (const entry of list) {
      if (!entry || !(entry.item in state)) continue;
      const s = state[entry.item], k = options[entry.item];
      for (const which of ['best', 'worst']) {
        for (const c of CRITERIA) {
          const v = entry[which] && entry[which][c];
          if (Number.isInteger(v) && v >= 1 && v <= k) s[which][c] = v; else delete s[which][c];
        }
      }
      for (const c of CRITERIA) if (s.best[c] && s.best[c] === s.worst[c]) delete s.worst[c];
      s.comment = typeof entry.comment === 'string' ? entry.comment : '';
      n += 1;
    }
    return n;
  }

  function save() {
    unsaved = true;
    if (!store) return;
    try {
      store.setItem(STORE_KEY, JSON.stringify({current: current, items: state}));
      $('autosave').textContent = 'autosaved in this browser';
      $('autosave').className = '';
    } catch (e) {
      $('autosave').textContent = 'autosave failed (' + e.name + '): download the JSON to keep your work';
      $('autosave').className = 'warn';
    }
  }

  function choose(which, option) {
    const id = ids[current], k = options[id], c = CRITERIA[active], s = state[id];
    const other = which === 'best' ? 'worst' : 'best';
    if (option < 1 || option > k) { say('there is no option ' + option + ' here'); return; }
    s[which][c] = option;
    if (k === 2) {
      s[other][c] = 3 - option;  // with two options, one choice decides the other
    } else if (s[other][c] === option) {
      delete s[other][c];
      say('best and worst must differ: the ' + other + ' choice was cleared');
    }
    if (s.best[c] && s.worst[c]) {  // move on to the next criterion still open in this item
      for (let step = 1; step <= CRITERIA.length; step++) {
        const j = (active + step) % CRITERIA.length;
        if (!(s.best[CRITERIA[j]] && s.worst[CRITERIA[j]])) { active = j; break; }
      }
    }
    save();
  }

  function clearActive() {
    const s = state[ids[current]], c = CRITERIA[active];
    delete s.best[c]; delete s.worst[c];
    save();
  }

  function go(index) {
    if (index < 0 || index >= ids.length) return;
    current = index; active = 0;
    const s = state[ids[current]];
    const open = CRITERIA.findIndex(c => !(s.best[c] && s.worst[c]));
    if (open >= 0) active = open;
    save();
    window.scrollTo(0, 0);
  }

  function nextIncomplete() {
    for (let step = 1; step <= ids.length; step++) {
      const j = (current + step) % ids.length;
      if (!isComplete(ids[j])) { go(j); return; }
    }
    say('every item is complete: download the annotations');
  }

  function render() {
    sections.forEach((sec, i) => { sec.hidden = i !== current; });
    const id = ids[current], s = state[id], sec = sections[current];
    sec.querySelectorAll('tr[data-criterion]').forEach((tr, row) => {
      const c = tr.dataset.criterion;
      tr.classList.toggle('active', row === active);
      tr.classList.toggle('done', !!(s.best[c] && s.worst[c]));
      tr.querySelectorAll('button.opt').forEach(b => {
        b.setAttribute('aria-pressed', String(s[b.dataset.which][c] === +b.dataset.option));
      });
    });
    const comment = sec.querySelector('textarea');
    if (comment && document.activeElement !== comment) comment.value = s.comment;
    const done = ids.filter(isComplete).length;
    $('progress').textContent = done + ' / ' + ids.length + ' complete';
    $('progress-bar').value = done;
    $('position').textContent = 'item ' + (current + 1) + ' of ' + ids.length;
    Array.from($('dots').children).forEach((b, i) => {
      b.className = (isComplete(ids[i]) ? 'done' : isEmpty(ids[i]) ? '' : 'partial') + (i === current ? ' here' : '');
    });
  }

  function download() {
    const text = JSON.stringify(documentJSON(), null, 1);
    const url = URL.createObjectURL(new Blob([text], {type: 'application/json'}));
    const a = document.createElement('a');
    a.href = url; a.download = DATA.filename; a.style.display = 'none';
    document.body.appendChild(a); a.click();
    setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 2000);
    unsaved = false;
    say('downloaded ' + DATA.filename + ' (' + ids.filter(isComplete).length + ' of ' + ids.length + ' items complete)');
  }

  function load(file) {
    const reader = new FileReader();
    reader.onload = () => {
      let saved;
      try { saved = JSON.parse(reader.result); } catch (e) { say('not a JSON file: ' + file.name); return; }
      if (saved.export_id !== DATA.export_id || saved.annotator !== DATA.annotator) {
        say(file.name + ' belongs to another page (export ' + saved.export_id + ', annotator ' + saved.annotator + ')');
        return;
      }
      const n = restore(saved);
      save(); render();
      say('loaded ' + n + ' items from ' + file.name);
    };
    reader.readAsText(file);
  }

  // events ---------------------------------------------------------------------------------------
  document.addEventListener('click', e => {
    const b = e.target.closest('button');
    if (!b) {
      const tr = e.target.closest('tr[data-criterion]');
      if (tr) { active = CRITERIA.indexOf(tr.dataset.criterion); render(); }
      return;
    }
    b.blur();  // keys then go to the page, not to the focused button
    if (b.classList.contains('opt')) {
      active = CRITERIA.indexOf(b.closest('tr').dataset.criterion);
      choose(b.dataset.which, +b.dataset.option);
    } else if (b.dataset.go !== undefined) {
      go(+b.dataset.go);
    } else if (b.id === 'prev') { go(current - 1); }
    else if (b.id === 'next') { go(current + 1); }
    else if (b.id === 'next-open') { nextIncomplete(); }
    else if (b.id === 'download') { download(); }
    else if (b.id === 'load') { $('load-file').click(); }
    else if (b.id === 'zoom') { document.body.classList.toggle('zoom'); }
    render();
  });
  $('load-file').addEventListener('change', e => {
    if (e.target.files[0]) load(e.target.files[0]);
    e.target.value = '';
  });
  document.addEventListener('input', e => {
    if (e.target.tagName === 'TEXTAREA') { state[ids[current]].comment = e.target.value; save(); render(); }
  });
  document.addEventListener('keydown', e => {
    const t = e.target;
    if (t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT')) { if (e.key === 'Escape') t.blur(); return; }
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') { e.preventDefault(); download(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const digit = /^(?:Digit|Numpad)([1-9])$/.exec(e.code || '');
    if (digit) {
      choose(e.shiftKey ? 'worst' : 'best', +digit[1]);
    } else if (e.key === 'ArrowRight' || e.key === 'n') { go(current + 1); }
    else if (e.key === 'ArrowLeft' || e.key === 'p') { go(current - 1); }
    else if (e.key === 'ArrowDown' || e.key === 'j') { active = Math.min(CRITERIA.length - 1, active + 1); }
    else if (e.key === 'ArrowUp' || e.key === 'k') { active = Math.max(0, active - 1); }
    else if (e.key === 'Enter') { nextIncomplete(); }
    else if (e.key === 'Backspace' || e.key === 'Delete') { clearActive(); }
    else if (e.key === 'z') { document.body.classList.toggle('zoom'); }
    else return;
    e.preventDefault();
    render();
  });
  window.addEventListener('beforeunload', e => {
    if (unsaved && !store) { e.preventDefault(); e.returnValue = ''; }
  });

  // start ----------------------------------------------------------------------------------------
  ids.forEach((id, i) => {
    const b = document.createElement('button');
    b.dataset.go = i; b.textContent = i + 1; b.title = 'item ' + (i + 1);
    $('dots').appendChild(b);
  });
  $('progress-bar').max = ids.length;
  if (store) {
    try {
      const saved = JSON.parse(store.getItem(STORE_KEY) || 'null');
      if (saved) {
        restore(saved);
        if (Number.isInteger(saved.current) && saved.current >= 0 && saved.current < ids.length) current = saved.current;
      }
      $('autosave').textContent = 'autosaved in this browser';
    } catch (e) { $('autosave').textContent = 'could not read the autosave (' + e.name + ')'; }
  } else {
    $('autosave').textContent = 'autosave unavailable in this browser: download the JSON before closing the page';
    $('autosave').className = 'warn';
  }
  go(current);
  unsaved = false;
  render();
  document.body.dataset.ready = '1';
})();
"""


def _script_json(data: dict) -> str:
    """JSON safe inside <script>: no '</' can end the element."""
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def item_html(item: str, options: list[str], source: str, instruction: str, criteria: list[dict]) -> str:
    """One sample: `options` are image data URIs in the order shown (numbered 1..K on the page)."""
    figures = [f'<figure class="source"><img src="{source}" alt="source frame"><figcaption>source</figcaption></figure>',
               '<div class="sep"></div>']
    figures += [f'<figure class="option"><img src="{uri}" alt="option {i}"><figcaption>{i}</figcaption></figure>'
                for i, uri in enumerate(options, 1)]
    rows = []
    for c in criteria:
        cells = []
        for which in ("best", "worst"):
            buttons = "".join(f'<button class="opt {which}" data-which="{which}" data-option="{i}" '
                              f'aria-pressed="false" title="{which}: option {i}">{i}</button>'
                              for i in range(1, len(options) + 1))
            cells.append(f"<td>{buttons}</td>")
        rows.append(f'<tr data-criterion="{html.escape(c["id"])}"><td><b>{html.escape(c["label"])}</b><br>'
                    f'<small>{html.escape(c["question"])}</small></td>{"".join(cells)}</tr>')
    return (f'<section class="item" data-item="{html.escape(item)}" data-options="{len(options)}" hidden>'
            f'<p class="instruction">Instruction: <b>{html.escape(instruction)}</b></p>'
            f'<div class="frames">{"".join(figures)}</div>'
            f'<table class="choices"><thead><tr><th>criterion</th><th>best</th><th>worst</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>'
            f'<textarea placeholder="optional comment on this item (e.g. a broken frame)"></textarea></section>')


def page(*, export_id: str, annotator: str, criteria: list[dict], items: list[str], title: str,
         image_px: int) -> str:
    """The whole annotation page around the items' HTML (from `item_html`)."""
    data = {"format": ANNOTATIONS_FORMAT, "version": ANNOTATIONS_VERSION, "export_id": export_id,
            "annotator": annotator, "criteria": criteria,
            "filename": f"wmbench-human-{export_id}-{annotator}.json"}
    questions = "".join(f"<li><b>{html.escape(c['label'])}</b>: {html.escape(c['question'])}</li>" for c in criteria)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="wmbench-export-id" content="{html.escape(export_id)}">
<title>{html.escape(title)} · {html.escape(annotator)}</title>
<style>:root{{--img:{image_px}px}}{CSS}body.zoom{{--img:{2 * image_px}px}}</style></head>
<body>
<header><h1>{html.escape(title)}</h1>
<span class="meta">annotator <b id="annotator">{html.escape(annotator)}</b> ·
export <code id="export-id">{html.escape(export_id)}</code></span>
<span><progress id="progress-bar" value="0" max="1"></progress> <span id="progress"></span></span>
<span id="autosave"></span>
<button id="download" title="Ctrl+S">Download annotations (JSON)</button>
<button id="load" title="resume from a downloaded file">Load a downloaded file</button>
<input id="load-file" type="file" accept="application/json,.json" hidden>
</header>
<main>
<div id="message" role="status"></div>
{"".join(items)}
<nav><button id="prev">← previous</button><span id="position"></span><button id="next">next →</button>
<button id="next-open">next incomplete (Enter)</button><button id="zoom">zoom (z)</button></nav>
<div id="dots" title="items: green complete, yellow started"></div>
<div class="help">
<p>Each item shows the <b>source</b> frame, the <b>instruction</b> given to the models, and the frames that
several models predicted for "the source after the instruction", numbered in a random order
(different for every item and annotator). For each criterion pick the <b>best</b> and the <b>worst</b>
prediction; they must differ. Judge only what you see; skip nothing: an item counts once every criterion has a
best and a worst.</p>
<ul>{questions}</ul>
<p>Keys: <kbd>1</kbd>…<kbd>9</kbd> best, <kbd>Shift</kbd>+<kbd>1</kbd>…<kbd>9</kbd> worst (for the highlighted
criterion; it moves on once both are set) ·
<kbd>↑</kbd>/<kbd>↓</kbd> (or <kbd>k</kbd>/<kbd>j</kbd>) change criterion ·
<kbd>→</kbd>/<kbd>n</kbd> next item, <kbd>←</kbd>/<kbd>p</kbd> previous · <kbd>Enter</kbd> next incomplete item ·
<kbd>Backspace</kbd> clear the highlighted criterion · <kbd>z</kbd> zoom · <kbd>Ctrl</kbd>+<kbd>S</kbd> download.</p>
<p>Your choices are saved in this browser as you go where it allows (see the note at the top). When you are done,
press <b>Download annotations</b> and send the file back; you can also download part-way and later resume with
<b>Load a downloaded file</b>.</p>
</div>
</main>
<script type="application/json" id="wmbench-data">{_script_json(data)}</script>
<script>{JS}</script>
</body></html>
"""
