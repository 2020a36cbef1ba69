"""The page registry: ``PAGE_MODULES``, the explicit list of the screens, and
``create_dash``, which builds the Dash app from them on the Flask server
(dashboard/pages/__init__.py lists the pages, their paths and roles).

Only this module and the web process (dashboard/wsgi.py) know every page; a page
module imports the helpers it uses (``common``, ``layers``, ...), never this one.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import dash
from dash import ClientsideFunction
from flask import has_request_context

from dashboard import auth_views
from dashboard.auth_views import CallbackPolicy, CallbackRule
from dashboard.i18n import t
from dashboard.mapkit import CityCache, Projector, tile_preset
from dashboard.pages import agencies, dispatch, enterprise, officer, plans, replay, review, wall
from dashboard.pages.common import TTLCache, guard_callback

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
PAGE_MODULES = (wall, dispatch, officer, enterprise, replay, plans, review, agencies)

INDEX_STRING = """<!DOCTYPE html>
<html lang="zh-CN">
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        {%css%}
    </head>
    <body>
        {%app_entry%}
        <footer>
            {%config%}
            {%scripts%}
            {%renderer%}
        </footer>
    </body>
</html>"""


def _register_page(module) -> None:
    kwargs = {"layout": module.layout, "title": module.title, "name": module.__name__.rsplit(".", 1)[-1]}
    if "<" in module.PATH:
        kwargs["path_template"] = module.PATH
    else:
        kwargs["path"] = module.PATH
    dash.register_page(module.__name__, **kwargs)


def _register_callbacks(app: dash.Dash, module, policy: CallbackPolicy) -> None:
    cbs = module.cb
    for spec in cbs.server:
        before = set(app.callback_map)
        app.callback(*spec.args, **spec.kwargs)(guard_callback(spec.fn, spec.roles, spec.changes_state))
        added = set(app.callback_map) - before
        if len(added) != 1:
            raise RuntimeError(f"{module.__name__}.{spec.fn.__name__}: expected one callback key, got {added}")
        policy.add(added.pop(), CallbackRule(cbs.page, spec.roles, spec.changes_state))
    for spec in cbs.client:
        app.clientside_callback(ClientsideFunction(spec.namespace, spec.function), *spec.args, **spec.kwargs)


def warm_up(server) -> threading.Thread:
    """Load the registry, the city map and the wall's KPIs in the background as the web
    process starts, so the first screen served does not wait for them (seconds at city scale)."""

    def run():
        t0 = time.perf_counter()
        try:
            server.extensions["anjian"].registry()
            server.extensions["anjian_city"].get()
            with server.app_context():
                wall.kpis(server.extensions["anjian"])
        except Exception:  # noqa: BLE001 - the first request loads them instead
            log.warning("warm-up failed; the first screen will load the city", exc_info=True)
            return
        log.info("city map, registry and KPIs loaded in %.1f s", time.perf_counter() - t0)

    t = threading.Thread(target=run, name="warm-up", daemon=True)
    t.start()
    return t


def create_dash(server, ctx) -> dash.Dash:
    """Build the Dash app on ``server`` (a Flask app from dashboard.server.create_server)."""
    preset = tile_preset(ctx.settings)
    server.extensions["anjian_tiles"] = preset
    from dashboard.tiles import tiles

    if "tiles" not in server.blueprints:  # /tiles/{z}/{x}/{y} from settings.tiles_mbtiles_path
        server.register_blueprint(tiles)
    server.extensions["anjian_city"] = CityCache(ctx.engine, Projector(preset.crs))
    server.extensions["anjian_cache"] = TTLCache()
    app = dash.Dash(
        __name__,
        server=server,
        use_pages=True,
        pages_folder="",
        assets_folder=str(ASSETS_DIR),
        # Served under /assets/vendor/ but not put on every page: the review page loads hls.js itself.
        assets_path_ignore=[r"^vendor$"],
        suppress_callback_exceptions=True,  # layouts are built per request (role, language)
        title=t("app.name", ctx.settings.language),
        update_title=None,
        serve_locally=True,
        index_string=INDEX_STRING,
        csrf_token_name=auth_views.CSRF_COOKIE,
        csrf_header_name=auth_views.CSRF_HEADER,
        hooks=auth_views.SESSION_HOOKS,  # a session that ended reloads the page (to the login page)
        enable_mcp=False,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    # The page's language on <html lang> (the index string is one for all): the browser's
    # hyphenation and fonts and screen readers follow it; and the catalogue's words for
    # Leaflet's own zoom buttons and its credit's title, which anjian.js puts on them.
    interpolate = app.interpolate_index

    def interpolate_index(**kwargs):
        page = interpolate(**kwargs)
        lang = auth_views.current_lang(ctx) if has_request_context() else ctx.settings.language
        return page.replace('<html lang="zh-CN">', f'<html lang="{lang}" data-zoom-in="{t("map.zoom_in", lang)}" '
                                                   f'data-zoom-out="{t("map.zoom_out", lang)}" '
                                                   f'data-leaflet-title="{t("map.leaflet_title", lang)}">', 1)

    app.interpolate_index = interpolate_index
    policy = CallbackPolicy()
    for module in PAGE_MODULES:
        _register_page(module)
        _register_callbacks(app, module, policy)
    page_roles = {m.PATH.split("/<", 1)[0]: m.ROLES for m in PAGE_MODULES}
    auth_views.install(server, ctx, policy, page_roles, app.config.routes_pathname_prefix)
    server.extensions["anjian_dash"] = app
    server.extensions["anjian_policy"] = policy
    log.info("dashboard: %d pages, %d callbacks (%d change state), tiles %s (%s)", len(PAGE_MODULES),
             len(policy.rules), len(policy.changing_keys()), preset.name, preset.crs)
    return app
