"""Two phone screens of the hazard loop, Flask-served HTML with a little script that
calls the HTTP API (``/api/v1/hazards...``, with the login session):

* ``/officer/hazards`` (officer, admin): record a hazard on site in at most five taps
  (category, level, photo from the phone's camera, note, record; the enterprise is
  the one of the visit under way, or chosen once), which also assigns it for
  rectification with the deadline of its level; below, the rectifications waiting for
  acceptance, with accept on site (GPS proof), accept by review, and send back.
* ``/my`` (enterprise): its self-inspection checklist, its hazards, and the upload of
  rectification evidence.

Plain pages rather than Dash: a form with a file input from the camera is what a
phone does best, and the screens stay usable on a slow network.  Every string comes
from ``dashboard.i18n``; the server decides what each role may do (the API).
"""

from __future__ import annotations

from flask import Flask, g, render_template_string, session

from dashboard.api import current_principal, web
from dashboard.auth_views import current_lang
from dashboard.i18n import t

TEXT_KEYS = (
    "hz.enterprise", "hz.category", "hz.level", "hz.level.general", "hz.level.major", "hz.photo", "hz.note",
    "hz.record", "hz.recorded", "hz.failed", "hz.waiting", "hz.none", "hz.accept_on_site", "hz.accept_review",
    "hz.send_back", "hz.reason", "hz.done", "hz.my_hazards", "hz.deadline", "hz.evidence", "hz.submit_rectification",
    "hz.self_inspection", "hz.self_inspection_hint", "hz.submit_self_inspection", "hz.state.reported",
    "hz.state.rectifying", "hz.state.rectified", "hz.state.accepted", "hz.state.closed", "hz.overdue",
    "hz.officer_title", "hz.my_title", "auth.logout", "hz.discuss", "hz.photo.choose", "hz.photo.none",
    "hz.photo.chosen",
)

# The frame the plain pages of the hazard loop share (this one and the discussion page,
# dashboard/discussion_view.py): the dark panel colours of the other screens, and a
# header with the way back, the title, the language switch and logout.
FRAME_CSS = """ /* The dark frame of the other screens: the same panel colours, inputs and buttons. */
 .hz{max-width:480px;margin:0 auto;padding:12px;font-size:16px;color:var(--text)}
 .hz-head{display:flex;align-items:center;gap:10px;padding:8px 12px;background:var(--panel);border-bottom:1px solid var(--line)}
 .hz-head h1{font-size:18px;margin:0;flex:1;min-width:0}.hz-head a{color:var(--text);text-decoration:none;white-space:nowrap}
 .hz-head form{margin:0}.hz-head button{width:auto;margin:0;padding:5px 10px;font-size:14px;cursor:pointer;
   background:var(--panel-2);color:var(--text);border:1px solid var(--line);border-radius:6px}
 .hz h2{font-size:17px;margin:18px 0 8px;color:var(--muted)}
 .hz label{display:block;margin:10px 0 4px;font-weight:600}
 .hz select,.hz input[type=text],.hz input[type=search],.hz textarea,.hz input[type=file]{width:100%;box-sizing:border-box;font-size:16px;padding:10px;
   background:#071223;color:var(--text);border:1px solid var(--line);border-radius:8px}
 .hz input[type=file]::file-selector-button{background:var(--panel-2);color:var(--text);border:1px solid var(--line);border-radius:6px;padding:6px 10px;margin-right:10px}
 .hz .hz-file{display:flex;align-items:center;gap:10px;border:1px solid var(--line);border-radius:8px;padding:8px 10px;background:#071223}
 .hz .hz-file button{width:auto;margin:0;padding:6px 12px;font-size:16px;flex:none}
 .hz .hz-file-name{color:var(--muted);min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
 .hz input[type=file].hz-file-input{position:absolute;width:1px;height:1px;opacity:0;overflow:hidden;padding:0;border:0}
 .hz .row{display:flex;gap:8px}.hz .row label{flex:1;font-weight:400;border:1px solid var(--line);border-radius:8px;padding:10px;margin:0;background:var(--panel)}
 .hz button{font-size:16px;padding:12px;margin:6px 0;width:100%;border-radius:8px;border:1px solid var(--line);background:var(--panel-2);color:var(--text);cursor:pointer}
"""
FRAME_HEADER = """<header class="hz-head">
  {% if back %}<a href="{{ back }}" id="hz-back">‹ {{ t(back_key) }}</a>{% endif %}
  <h1>{{ title }}</h1>
  <a href="?lang={{ other_lang }}" id="lang-toggle" class="aj-lang">{{ t('lang.switch') }}</a>
  <form method="post" action="/logout"><input type="hidden" name="csrf" value="{{ csrf }}">
  <button type="submit">{{ t('auth.logout') }}</button></form>
</header>"""

PAGE = """<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · {{ t('app.name') }}</title>
<link rel="stylesheet" href="/assets/anjian.css">
<style>
""" + FRAME_CSS + """ .hz #hz-submit,.hz #si-submit{background:var(--accent);color:#02101f;border-color:var(--accent);font-weight:700}
 .hz .picked{color:var(--muted);font-size:14px;margin-top:4px;min-height:1.2em}
 .hz .item{border:1px solid var(--line);background:var(--panel);border-radius:8px;padding:10px;margin:8px 0}
 .hz .item .bar{display:flex;gap:6px}.hz .item .bar button{flex:1;padding:10px 4px}
 .hz .status{min-height:1.4em;font-weight:600}.hz .late{color:#c00;font-weight:700}
 .hz .thumbs{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0}.hz .thumbs img{width:96px;height:96px;object-fit:cover;border-radius:6px;border:1px solid #ccd}
 .hz details{margin:6px 0}.hz .check{font-weight:400;display:flex;gap:8px;align-items:flex-start}
</style>
</head>
<body>
""" + FRAME_HEADER + """
<main class="hz" id="hz-page" data-role="{{ role }}">
{% if role != 'enterprise' %}
<section id="hz-form">
  <label for="hz-enterprise">{{ t('hz.enterprise') }}</label>
  <input type="search" id="hz-enterprise" value="{{ enterprise_name or enterprise_id or '' }}" autocomplete="off"
         list="hz-enterprises" placeholder="{{ t('hz.enterprise_hint') }}" data-id="{{ enterprise_id or '' }}">
  <datalist id="hz-enterprises"></datalist>
  <div class="picked" id="hz-picked">{{ enterprise_id or '' }}</div>
  <label for="hz-category">{{ t('hz.category') }}</label>
  <select id="hz-category">
  {% for g in catalogue.groups %}<optgroup label="{{ g.name if lang == 'zh-CN' else g.name_en }}">
    {% for i in g.items %}<option value="{{ i.code }}" data-level="{{ i.level }}">{{ i.name if lang == 'zh-CN' else i.name_en }}</option>{% endfor %}
  </optgroup>{% endfor %}
  </select>
  <label>{{ t('hz.level') }}</label>
  <div class="row">
    <label><input type="radio" name="hz-level" id="hz-level-general" value="general" checked> {{ t('hz.level.general') }}</label>
    <label><input type="radio" name="hz-level" id="hz-level-major" value="major"> {{ t('hz.level.major') }}</label>
  </div>
  <label for="hz-photo">{{ t('hz.photo') }}</label>
  <input type="file" id="hz-photo" accept="image/*" capture="environment">
  <label for="hz-note">{{ t('hz.note') }}</label>
  <textarea id="hz-note" rows="2"></textarea>
  <button id="hz-submit" type="button">{{ t('hz.record') }}</button>
  <p class="status" id="hz-status" role="status"></p>
</section>
<h2>{{ t('hz.waiting') }}</h2>
<section id="hz-waiting"></section>
{% else %}
<h2>{{ t('hz.my_hazards') }}</h2>
<section id="hz-mine"></section>
<h2>{{ t('hz.self_inspection') }}</h2>
<p>{{ t('hz.self_inspection_hint') }}</p>
<section id="hz-checklist">
  {% for g in catalogue.groups %}<details{% if loop.first %} open{% endif %}><summary>{{ g.name if lang == 'zh-CN' else g.name_en }}</summary>
    {% for i in g.items %}<label class="check"><input type="checkbox" data-code="{{ i.code }}"> {{ i.name if lang == 'zh-CN' else i.name_en }}</label>{% endfor %}
  </details>{% endfor %}
  <button id="si-submit" type="button">{{ t('hz.submit_self_inspection') }}</button>
  <p class="status" id="si-status" role="status"></p>
</section>
{% endif %}
</main>
<script>
const T = {{ texts|tojson }};
const ROLE = {{ role|tojson }};
async function api(method, path, body) {
  // The CSRF header: the API refuses a state change made with the login cookie alone.
  const opt = {method, credentials: 'same-origin', headers: {'X-CSRFToken': {{ csrf|tojson }}}};
  if (body instanceof FormData) opt.body = body;
  else if (body !== undefined) { opt.body = JSON.stringify(body); opt.headers['Content-Type'] = 'application/json'; }
  const r = await fetch('/api/v1' + path, opt);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.message || data.error || r.status);
  return data;
}
async function upload(id, file, stage) {
  const fd = new FormData(); fd.append('file', file); fd.append('stage', stage);
  return api('POST', `/hazards/${id}/photos`, fd);
}
function el(tag, attrs, text) { const e = document.createElement(tag); Object.assign(e, attrs || {}); if (text) e.textContent = text; return e; }
// A file input with the catalogue's words: the browser's own control says "Choose File" and
// "No file chosen" in the browser's language, whatever the page's.  The input stays in the
// page (its label, the tests' set_input_files), out of sight; a button opens it, and a line
// beside it names what was chosen.
function picker(input) {
  const shown = el('span', {className: 'hz-file-name', id: `${input.id}-name`});
  const show = () => {
    const n = input.files ? input.files.length : 0;
    shown.textContent = !n ? T['hz.photo.none'] : n === 1 ? input.files[0].name : T['hz.photo.chosen'].replace('{n}', n);
  };
  const open = el('button', {type: 'button', id: `${input.id}-choose`, onclick: () => input.click()}, T['hz.photo.choose']);
  const box = el('div', {className: 'hz-file'});
  input.classList.add('hz-file-input');
  input.addEventListener('change', show);
  input.anjianShow = show;
  input.replaceWith(box);
  box.append(open, shown, input);
  show();
  return box;
}
const CATEGORIES = {{ categories|tojson }};
// A time as the other screens write it: China time, 2026-12-05 14:03.
function when(ts) {
  if (!ts) return '';
  const d = new Date((ts + 8 * 3600) * 1000).toISOString();
  // Non-breaking hyphens and space: a phone's narrow card broke "2026-" / "12-04".
  return (d.slice(0, 10) + ' ' + d.slice(11, 16)).replace(/-/g, '\u2011').replace(' ', '\u00a0');
}
function line(h) {
  return `#${h.id} · ${CATEGORIES[h.category] || h.category} · ${T['hz.level.' + h.level]} · ${T['hz.state.' + h.state]}` +
         (h.deadline_ts ? ` · ${T['hz.deadline']} ${when(h.deadline_ts)}` : '');
}
// Enterprises by name: the search fills the list as the officer types (GET /api/v1/enterprises,
// the officer's own area); the chosen one's id is what is sent.  An id typed or pasted works too.
const NAMES = {};
async function nameOf(id) {
  if (!(id in NAMES)) {
    NAMES[id] = api('GET', `/enterprises?q=${encodeURIComponent(id)}&limit=5`)
      .then(list => (list.find(e => e.id === id) || {}).name || id).catch(() => id);
  }
  return NAMES[id];
}
function enterpriseId() {
  const box = document.getElementById('hz-enterprise');
  const v = box.value.trim();
  const opt = [...document.querySelectorAll('#hz-enterprises option')].find(o => o.value === v);
  if (opt) return opt.dataset.id;
  if (box.dataset.id && v === box.dataset.name) return box.dataset.id;
  return v;
}
let searchTimer = null;
function searchEnterprises() {
  const box = document.getElementById('hz-enterprise');
  if (!box) return;
  box.dataset.name = box.value;
  box.addEventListener('input', () => {
    clearTimeout(searchTimer);
    const q = box.value.trim();
    document.getElementById('hz-picked').textContent = '';
    const opt = [...document.querySelectorAll('#hz-enterprises option')].find(o => o.value === q);
    if (opt) { document.getElementById('hz-picked').textContent = opt.dataset.label; return; }
    if (!q) return;
    searchTimer = setTimeout(async () => {
      const list = await api('GET', `/enterprises?q=${encodeURIComponent(q)}&limit=20`).catch(() => []);
      const dl = document.getElementById('hz-enterprises');
      dl.replaceChildren(...list.map(e => {
        const o = el('option', {value: e.name}); o.dataset.id = e.id; o.dataset.label = e.address || e.id; return o; }));
    }, 250);
  });
}
async function loadWaiting() {
  const box = document.getElementById('hz-waiting'); if (!box) return;
  const list = await api('GET', '/hazards?state=rectified&limit=50');
  box.replaceChildren();
  if (!list.length) box.append(el('p', {}, T['hz.none']));
  for (const h of list) {
    const item = el('div', {className: 'item', id: `w-${h.id}`});
    const who = el('div', {className: 'aj-data'}, `${h.enterprise_id} ` + line(h));
    nameOf(h.enterprise_id).then(n => { who.textContent = `${n} ` + line(h); });
    item.append(who);
    const thumbs = el('div', {className: 'thumbs', id: `thumbs-${h.id}`});
    item.append(thumbs);
    api('GET', `/hazards/${h.id}`).then(d => {  // the evidence to judge, as thumbnails linking to the photo
      for (const p of (d.photos || []).filter(p => p.stage === 'rectification')) {
        const a = el('a', {href: `/api/v1/hazards/${h.id}/photos/${p.id}`, target: '_blank'});
        a.append(el('img', {src: `/api/v1/hazards/${h.id}/photos/${p.id}/thumb`, alt: T['hz.evidence'], loading: 'lazy'}));
        thumbs.append(a);
      }
    }).catch(() => {});
    const bar = el('div', {className: 'bar'});
    const reason = el('input', {type: 'text', id: `reason-${h.id}`, placeholder: T['hz.reason']});
    const act = async (path, body) => {
      try { await api('POST', `/hazards/${h.id}/${path}`, body); item.replaceChildren(el('p', {}, T['hz.done'])); }
      catch (e) { item.append(el('p', {className: 'status'}, T['hz.failed'] + ': ' + e.message)); }
    };
    bar.append(el('button', {id: `accept-${h.id}`, onclick: () => act('accept', {method: 'on_site'})}, T['hz.accept_on_site']));
    bar.append(el('button', {id: `review-${h.id}`, onclick: () => act('accept', {method: 'review'})}, T['hz.accept_review']));
    bar.append(el('button', {id: `back-${h.id}`, onclick: () => act('reject', {reason: reason.value})}, T['hz.send_back']));
    const discuss = el('a', {href: `/hazards/${h.id}/discussion`, id: `discuss-${h.id}`}, T['hz.discuss']);
    item.append(bar, reason, discuss); box.append(item);
  }
}
async function record() {
  const status = document.getElementById('hz-status');
  status.textContent = '';
  const level = document.querySelector('input[name=hz-level]:checked').value;
  const photo = document.getElementById('hz-photo').files[0];
  try {
    const h = await api('POST', '/hazards', {enterprise_id: enterpriseId(),
      category: document.getElementById('hz-category').value, level, description: document.getElementById('hz-note').value});
    if (photo) await upload(h.id, photo, 'finding');
    await api('POST', `/hazards/${h.id}/assign`, {});
    status.textContent = T['hz.recorded'] + ` #${h.id}`;
    status.dataset.hazardId = h.id;
    const input = document.getElementById('hz-photo');
    document.getElementById('hz-note').value = ''; input.value = ''; if (input.anjianShow) input.anjianShow();
  } catch (e) { status.textContent = T['hz.failed'] + ': ' + e.message; }
}
async function loadMine() {
  const box = document.getElementById('hz-mine'); if (!box) return;
  const list = await api('GET', '/hazards?limit=100');
  box.replaceChildren();
  if (!list.length) box.append(el('p', {}, T['hz.none']));
  for (const h of list) {
    const item = el('div', {className: 'item', id: `h-${h.id}`});
    item.append(el('div', {}, line(h)), el('a', {href: `/hazards/${h.id}/discussion`}, T['hz.discuss']));
    if (h.description) item.append(el('div', {className: 'aj-data'}, h.description));
    if (h.overdue) item.append(el('div', {className: 'late'}, T['hz.overdue']));
    if (h.state === 'rectifying') {
      const file = el('input', {type: 'file', id: `ev-photo-${h.id}`, accept: 'image/*', capture: 'environment', multiple: true});
      const note = el('textarea', {id: `ev-note-${h.id}`, rows: 2, placeholder: T['hz.note']});
      const st = el('p', {className: 'status', id: `ev-status-${h.id}`});
      const go = el('button', {id: `ev-submit-${h.id}`, type: 'button'}, T['hz.submit_rectification']);
      go.onclick = async () => {
        try {
          for (const f of file.files) await upload(h.id, f, 'rectification');
          await api('POST', `/hazards/${h.id}/rectify`, {note: note.value});
          st.textContent = T['hz.done']; loadMine();
        } catch (e) { st.textContent = T['hz.failed'] + ': ' + e.message; }
      };
      item.append(el('label', {htmlFor: file.id}, T['hz.evidence']), file, note, go, st);
      picker(file);
    }
    box.append(item);
  }
}
async function selfInspect() {
  const st = document.getElementById('si-status');
  const items = [...document.querySelectorAll('#hz-checklist input[data-code]')].map(c => ({code: c.dataset.code, ok: !c.checked}));
  try { const r = await api('POST', '/self-inspections', {items}); st.textContent = T['hz.done'] + ` (${r.hazards_found})`; }
  catch (e) { st.textContent = T['hz.failed'] + ': ' + e.message; }
}
if (ROLE === 'enterprise') {
  document.getElementById('si-submit').onclick = selfInspect; loadMine();
} else {
  picker(document.getElementById('hz-photo'));
  document.getElementById('hz-submit').onclick = record; searchEnterprises(); loadWaiting(); setInterval(loadWaiting, 15000);
}
</script>
</body>
</html>
"""


def install_hazard_views(server: Flask) -> None:
    def render(role_ok: tuple[str, ...], title_key: str):
        p = current_principal()
        if p is None or p.role not in role_ok:
            return None
        lang = current_lang()
        from dashboard.api_hazards import store

        enterprise_id = enterprise_name = None
        if p.role == "enterprise":
            enterprise_id = p.enterprise_id
        elif p.inspector_id:
            try:
                enterprise_id = web().visiting().get(p.inspector_id)  # the visit under way
            except Exception:  # noqa: BLE001 - no live state: the officer types the enterprise once
                enterprise_id = None
        if enterprise_id:
            enterprise_name = web().registry().enterprise_names.get(enterprise_id)
        g.principal = p
        cat = store().catalogue
        back = {"officer": ("/officer", "nav.officer"), "dispatcher": ("/dispatch", "nav.dispatch"),
                "admin": ("/dispatch", "nav.dispatch")}.get(p.role)
        return render_template_string(
            PAGE, lang=lang, t=lambda k, **kw: t(k, lang, **kw), title=t(title_key, lang), role=p.role,
            enterprise_id=enterprise_id, enterprise_name=enterprise_name, catalogue=cat, csrf=session.get("csrf", ""),
            texts={k: t(k, lang) for k in TEXT_KEYS}, back=back[0] if back else None,
            back_key=back[1] if back else None, other_lang="en" if lang != "en" else "zh-CN",
            categories={code: (i.name if lang == "zh-CN" else i.name_en) for code, i in cat.items.items()})

    def forbidden():
        return ("forbidden", 403, {"Content-Type": "text/plain; charset=utf-8"})

    @server.get("/officer/hazards")
    def officer_hazards():
        return render(("officer", "admin", "dispatcher"), "hz.officer_title") or forbidden()

    @server.get("/my")
    def enterprise_home():
        return render(("enterprise",), "hz.my_title") or forbidden()
