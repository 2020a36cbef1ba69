"""The screens: a Dash app with one page per module, on the Flask server app.py built.

    dashboard.pages.screens.create_dash(server, ctx) -> dash.Dash

This package holds only this docstring: importing one page module loads that
module and what it imports, nothing else.  ``screens.PAGE_MODULES`` is the
explicit list of pages that ``create_dash`` registers.

Pages (path: roles):

    /wall              wall, dispatcher, admin      the video wall
    /dispatch          dispatcher, admin            the dispatcher console
    /officer           officer, admin               the street officer's phone view
    /enterprise/<id>   dispatcher, admin, officer   one enterprise at a glance (一键全知道)
    /replay            dispatcher, admin            one inspector's day
    /plans             dispatcher, admin, officer   this week's plans, collisions, plan against actual
    /review/<visit>    dispatcher, admin            remote review of an inspection's body-camera stream (远程点评)
    /agencies          dispatcher, admin            the agencies' monthly ranking (every part) and contracts

``/login`` and ``/logout`` are plain Flask routes (``dashboard.auth_views``),
which also installs the gate: every page and every Dash endpoint needs a login,
and every callback is checked against the roles its page module declared.

Pages never import the app object: they declare layouts and callbacks
(``callbacks.PageCallbacks``), and ``create_dash`` registers them.  Everything a
callback needs per request comes from ``flask.current_app.extensions``:
``anjian`` (the WebContext), ``anjian_city`` (the cached city map),
``anjian_tiles`` (the tile preset) and ``anjian_cache`` (answers shared for a
few seconds by every screen of the process: KPIs, heat).
"""
