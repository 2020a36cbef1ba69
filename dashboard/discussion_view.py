"""The online adjudication of a disputed hazard (线上研判) as a page: ``/hazards/<id>/discussion``.

The thread that stays with the hazard (comments from several units, each with its
unit), a comment box for the units' officials (dispatcher, officer, admin), and for
the authorised role (admin, ``hazards.adjudication.DECIDE_ROLES``) the one final
decision: category, level and rectification advice, with its grounds.  After the
decision the thread is closed and the page shows what was decided.

A plain page like the other phone screens of the hazard loop (dashboard/hazard_views.py):
the script calls the HTTP API (``/api/v1/hazards/{id}/discussion`` and ``/decision``),
which decides who may do what; every string comes from the one catalogue.
"""

from __future__ import annotations

from flask import Flask, render_template_string, session

from dashboard.api import current_principal
from dashboard.auth_views import current_lang
from dashboard.hazard_views import FRAME_CSS, FRAME_HEADER
from dashboard.i18n import t
from hazards.adjudication import DECIDE_ROLES, DISCUSS_ROLES

ROLES = ("wall", "dispatcher", "officer", "admin", "enterprise")
TEXT_KEYS = (
    "adj.decided", "adj.no_posts", "adj.posted", "adj.failed", "adj.decision_line", "adj.by",
    "hz.level.general", "hz.level.major", "hz.state.reported", "hz.state.rectifying", "hz.state.rectified",
    "hz.state.accepted", "hz.state.closed",
    "role.wall", "role.dispatcher", "role.officer", "role.admin", "role.enterprise",
)

PAGE = """<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t('adj.title', id=hazard_id) }} · {{ t('app.name') }}</title>
<link rel="stylesheet" href="/assets/anjian.css">
<style>
""" + FRAME_CSS + """ .adj{max-width:640px}
 .adj .post{border:1px solid var(--line);background:var(--panel);border-radius:8px;padding:10px;margin:8px 0;overflow-wrap:anywhere}
 .adj .post .who{font-weight:600;color:var(--muted)}.adj .post.decision{border:2px solid var(--accent)}
 .adj .status{min-height:1.4em;font-weight:600}.adj .banner{padding:10px;border-radius:8px;background:var(--panel-2)}
 .adj #adj-comment-post,.adj #adj-decide{background:var(--accent);color:#02101f;border-color:var(--accent);font-weight:700}
</style>
</head>
<body>
""" + FRAME_HEADER + """
<main class="hz adj" id="adj-page" data-role="{{ role }}">
<p id="adj-hazard" class="aj-data"></p>
<p id="adj-banner" class="banner" hidden></p>
<h2>{{ t('adj.thread') }}</h2>
<section id="adj-posts"></section>
{% if can_discuss %}
<section id="adj-comment-box">
  <label for="adj-comment">{{ t('adj.comment') }}</label>
  <textarea id="adj-comment" rows="3" maxlength="2000"></textarea>
  <button id="adj-comment-post" type="button">{{ t('adj.comment.post') }}</button>
</section>
{% endif %}
{% if can_decide %}
<section id="adj-decision-box">
  <h2>{{ t('adj.decide') }}</h2>
  <label for="adj-category">{{ t('hz.category') }}</label>
  <select id="adj-category">
  {% for g in catalogue.groups %}<optgroup label="{{ g.name if lang == 'zh-CN' else g.name_en }}">
    {% for i in g.items %}<option value="{{ i.code }}">{{ i.name if lang == 'zh-CN' else i.name_en }}</option>{% endfor %}
  </optgroup>{% endfor %}
  </select>
  <label>{{ t('hz.level') }}</label>
  <div class="row">
    <label><input type="radio" name="adj-level" value="general" checked> {{ t('hz.level.general') }}</label>
    <label><input type="radio" name="adj-level" value="major"> {{ t('hz.level.major') }}</label>
  </div>
  <label for="adj-advice">{{ t('adj.advice') }}</label>
  <textarea id="adj-advice" rows="3" maxlength="2000"></textarea>
  <label for="adj-grounds">{{ t('adj.grounds') }}</label>
  <textarea id="adj-grounds" rows="2" maxlength="2000"></textarea>
  <button id="adj-decide" type="button">{{ t('adj.decide.post') }}</button>
</section>
{% endif %}
<p class="status" id="adj-status" role="status"></p>
</main>
<script>
const T = {{ texts|tojson }};
const LANG = {{ lang|tojson }};
const ID = {{ hazard_id|tojson }};
const NAMES = {{ names|tojson }};
function el(tag, props, text) { const e = Object.assign(document.createElement(tag), props || {});
  if (text !== undefined) e.textContent = text; return e; }
async function api(method, path, body) {
  // The CSRF header: the API refuses a state change made with the login cookie alone.
  const opt = {method, credentials: 'same-origin', headers: {'X-CSRFToken': {{ csrf|tojson }}}};
  if (body !== undefined) { opt.body = JSON.stringify(body); opt.headers['Content-Type'] = 'application/json'; }
  const r = await fetch('/api/v1' + path, opt);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.message || data.error || r.status);
  return data;
}
function when(iso) { return iso ? iso.replace('T', ' ').slice(0, 16) : ''; }
function levelText(l) { return T['hz.level.' + l] || l; }
function draw(th) {
  const h = th.hazard;
  document.getElementById('adj-hazard').textContent =
    `${h.enterprise_name || h.enterprise_id} · ${NAMES[h.category] || h.category} · ${levelText(h.level)} · ${T['hz.state.' + h.state] || h.state}` +
    (h.advice ? ` · ${h.advice}` : '');
  const box = document.getElementById('adj-posts'); box.replaceChildren();
  if (!th.posts.length) box.append(el('p', {}, T['adj.no_posts']));
  for (const p of th.posts) {
    const item = el('div', {className: 'post' + (p.kind === 'decision' ? ' decision' : ''), id: `adj-post-${p.id}`});
    item.append(el('div', {className: 'who'}, T['adj.by'].replace('{who}', p.actor_name || p.actor)
      .replace('{unit}', (LANG === 'en' ? p.unit_name_en : p.unit_name) || T['role.' + p.role] || p.role).replace('{when}', when(p.at))));
    if (p.kind === 'decision') {
      const d = p.decision || {};
      item.append(el('div', {className: 'aj-decision'}, T['adj.decision_line']
        .replace('{category}', NAMES[d.category] || d.category).replace('{level}', levelText(d.level))
        .replace('{advice}', d.advice || '')));
    }
    if (p.comment) item.append(el('div', {}, p.comment));
    box.append(item);
  }
  const decided = !!th.decision;
  const banner = document.getElementById('adj-banner');
  banner.hidden = !decided; banner.textContent = decided ? T['adj.decided'] : '';
  for (const id of ['adj-comment-box', 'adj-decision-box']) {
    const s = document.getElementById(id); if (s) s.hidden = decided;
  }
}
async function load() {
  try { draw(await api('GET', `/hazards/${ID}/discussion`)); }
  catch (e) { document.getElementById('adj-status').textContent = T['adj.failed'] + ': ' + e.message; }
}
async function send(path, body) {
  const st = document.getElementById('adj-status');
  try { draw(await api('POST', `/hazards/${ID}/${path}`, body)); st.textContent = T['adj.posted']; return true; }
  catch (e) { st.textContent = T['adj.failed'] + ': ' + e.message; return false; }
}
const cb = document.getElementById('adj-comment-post');
if (cb) cb.onclick = async () => {
  const box = document.getElementById('adj-comment');
  if (await send('discussion', {comment: box.value})) box.value = '';
};
const db = document.getElementById('adj-decide');
if (db) db.onclick = () => send('decision', {
  category: document.getElementById('adj-category').value,
  level: document.querySelector('input[name=adj-level]:checked').value,
  advice: document.getElementById('adj-advice').value,
  comment: document.getElementById('adj-grounds').value || undefined,
});
load(); setInterval(load, 15000);
</script>
</body>
</html>
"""


def install_discussion_view(server: Flask) -> None:
    @server.get("/hazards/<int:hazard_id>/discussion")
    def hazard_discussion_page(hazard_id: int):
        p = current_principal()
        if p is None or p.role not in ROLES:
            return ("forbidden", 403, {"Content-Type": "text/plain; charset=utf-8"})
        from dashboard.api_hazards import store

        lang = current_lang()
        catalogue = store().catalogue
        names = {i.code: (i.name if lang == "zh-CN" else i.name_en) for g in catalogue.groups for i in g.items}
        # The way back: where each role came from (the hazard page, or the console).
        back = {"officer": ("/officer/hazards", "hz.officer_title"), "dispatcher": ("/dispatch", "nav.dispatch"),
                "admin": ("/dispatch", "nav.dispatch"), "enterprise": ("/my", "hz.my_title")}.get(p.role)
        # The API answers what this account may see of the hazard (404 outside its area).
        return render_template_string(
            PAGE, lang=lang, t=lambda k, **kw: t(k, lang, **kw), hazard_id=hazard_id, role=p.role,
            title=t("adj.title", lang, id=hazard_id), back=back[0] if back else None,
            back_key=back[1] if back else None, other_lang="en" if lang != "en" else "zh-CN",
            catalogue=catalogue, names=names, csrf=session.get("csrf", ""),
            can_discuss=p.role in DISCUSS_ROLES, can_decide=p.role in DECIDE_ROLES,
            texts={k: t(k, lang) for k in TEXT_KEYS})
