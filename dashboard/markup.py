"""Server-built HTML for the read-mostly panels of a busy screen.

A Dash component per table cell and button is a React component, a redux
subscription and, for a pattern-matching id, a callback input: the dispatcher
console's queue, duplicate panel, detail panel and inspector list were ~1,500
of them, and every alarm rebuilt the queue, so the page's main thread was busy
for seconds under city load (docs/benchmarks.md section 4).  Such a panel is
now one HTML string, built here, put into its box in the browser by
``dash_clientside.anjian.fillHtml``; its buttons carry what they do as data
(``button``) and one delegated click handler (``assets/anjian.js``) puts that
into a store, the input of a server callback, which checks the role and the
action as before.

Every text goes through ``escape``: names come from imports.
"""

from __future__ import annotations

import json

from markupsafe import Markup, escape

__all__ = ["Markup", "button", "tag", "join"]


def _attrs(attrs: dict) -> str:
    out = []
    for k, v in attrs.items():
        if v is None or v is False:
            continue
        name = k.rstrip("_").replace("_", "-")  # class_ -> class, data_x -> data-x
        out.append(f" {name}" if v is True else f' {name}="{escape(v)}"')
    return "".join(out)


def join(parts) -> Markup:
    return Markup("").join(escape(p) for p in parts if p is not None)


def tag(name: str, *children, **attrs) -> Markup:
    """``<name attrs>children</name>``; children are escaped unless Markup."""
    return Markup(f"<{name}{_attrs(attrs)}>") + join(children) + Markup(f"</{name}>")


def button(text, store: str, value, *, class_: str = "aj-btn", disabled: bool = False, **attrs) -> Markup:
    """A button whose click puts ``value`` into the store ``store`` (anjian.js's
    delegated handler; objects get a click counter ``n``, so the same click twice
    is two clicks)."""
    return tag("button", text, type="button", class_=class_, disabled=disabled,
               data_aj_store=store, data_aj_value=json.dumps(value, ensure_ascii=False, separators=(",", ":")),
               **attrs)
