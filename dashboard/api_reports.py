"""The bulletin routes of the HTTP API under /api/v1 (docs/api.md, docs/reports.md).

Listing, metadata and downloads of archived bulletins, and generating one on
demand.  Roles: dispatcher and admin (403 for any other).  The work is in
``dashboard.bulletins`` and ``data.report_store``.

Registered by ``dashboard.server.create_server``::

    server.register_blueprint(api_reports)
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request, send_file

from dashboard.api import ApiError, int_arg, require, web
from dashboard.i18n import normalise_lang
from data import report_store
from reports.period import KINDS, PeriodError

api_reports = Blueprint("api_reports", __name__, url_prefix="/api/v1")

REPORT_ROLES = ("dispatcher", "admin")
MIMETYPES = {"pdf": "application/pdf", "html": "text/html"}


@api_reports.errorhandler(ApiError)
def _api_error(e: ApiError):
    return jsonify({"error": e.code, "message": e.message}), e.status


def _kind(raw: str | None, required: bool = False) -> str | None:
    if raw in (None, ""):
        if required:
            raise ApiError(400, "missing_field", f"kind is required: one of {', '.join(KINDS)}")
        return None
    if raw not in KINDS:
        raise ApiError(400, "bad_parameter", f"kind must be one of {', '.join(KINDS)}")
    return raw


@api_reports.get("/reports")
@require(*REPORT_ROLES)
def reports_list():
    rows = report_store.listing(web().engine, kind=_kind(request.args.get("kind")),
                                street=request.args.get("street") or None, period=request.args.get("period") or None,
                                limit=int_arg("limit", 200, 1, 2000))
    return jsonify(rows)


@api_reports.get("/reports/<int:report_id>")
@require(*REPORT_ROLES)
def report_get(report_id: int):
    r = report_store.get(web().engine, report_id)
    if r is None:
        raise ApiError(404, "not_found", f"no report {report_id}")
    return jsonify(r)


def _download(report_id: int, fmt: str):
    ctx = web()
    r = report_store.get(ctx.engine, report_id)
    if r is None:
        raise ApiError(404, "not_found", f"no report {report_id}")
    lang = normalise_lang(request.args.get("lang"))
    if lang not in r["downloads"]:
        raise ApiError(404, "not_found", f"report {report_id} has no {lang} version")
    path = report_store.report_dir(ctx.settings.data_dir, report_id) / report_store.file_name(lang, fmt)
    if not path.is_file():
        raise ApiError(404, "not_found", f"the {fmt} file of report {report_id} is missing from the archive")
    name = f"anjian-{r['kind']}-{r['period']}-{r['street_id'] or 'district'}.{lang}.{fmt}"
    return send_file(path, mimetype=MIMETYPES[fmt], as_attachment=fmt == "pdf", download_name=name)


@api_reports.get("/reports/<int:report_id>.pdf")
@require(*REPORT_ROLES)
def report_pdf(report_id: int):
    return _download(report_id, "pdf")


@api_reports.get("/reports/<int:report_id>.html")
@require(*REPORT_ROLES)
def report_html(report_id: int):
    return _download(report_id, "html")


@api_reports.post("/reports")
@require(*REPORT_ROLES)
def report_create():
    """Generate one now: ``{"kind", "period" (optional: the last complete one), "street" (optional)}``."""
    from dashboard import bulletins
    from dashboard.bulletin_render import RenderError
    from data.report_queries import UnknownStreet

    body = request.get_json(silent=True) if request.data else {}
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    errors = []
    kind = body.get("kind")
    if kind not in KINDS:
        errors.append(f"kind must be one of {', '.join(KINDS)}")
    for f in ("period", "street"):
        if body.get(f) is not None and not isinstance(body.get(f), str):
            errors.append(f"{f} must be a string")
    if errors:
        return jsonify({"error": "bad_request", "message": "; ".join(errors), "errors": errors}), 400
    ctx = web()
    try:
        gen = bulletins.generate(ctx.engine, ctx.settings, kind, body.get("period") or None,
                                 body.get("street") or None, actor=g.principal.username)
    except PeriodError as e:
        raise ApiError(400, "bad_parameter", str(e)) from None
    except UnknownStreet as e:
        raise ApiError(404, "not_found", f"no street {e.args[0]}") from None
    except RenderError as e:
        raise ApiError(503, "render_unavailable", str(e)) from None
    return jsonify(report_store.get(ctx.engine, gen.id)), 201
