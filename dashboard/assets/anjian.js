/*
 * Anjian map functions and browser-side callbacks.
 *
 * window.dashExtensions.anjian.*  style / pointToLayer / onEachFeature functions
 *   that dash-leaflet's GeoJSON layers name as {"variable": "dashExtensions.anjian.<fn>"}:
 *   one layer per kind of thing, however many markers it holds.
 * window.dash_clientside.anjian.*  clientside callbacks (idle cycle, takeover
 *   flight, alarm sound, clock, replay playback).
 *
 * Every text that reaches the DOM from data is escaped (names come from imports).
 */
(function () {
  "use strict";

  var RISK = { red: "#ff3b30", orange: "#ff9500", yellow: "#ffd60a", blue: "#0a84ff" };
  var OFFLINE = "#5b6675";

  // Marker sizes grow with the screen: a 4K wall at 100 % zoom gets 2x markers.
  function scale() {
    var w = window.innerWidth || 1920;
    return Math.max(1, Math.min(2.2, w / 1920));
  }

  // The scale bar's longest length grows with the screen, as its text does on the
  // wall (at 4K, "200 m" in the wall's type ran out of a 100 px bar).
  if (window.L && L.Control && L.Control.Scale) {
    L.Control.Scale.addInitHook(function () {
      this.options.maxWidth = Math.round((this.options.maxWidth || 100) * scale());
    });
  }

  function hideout(context) {
    return (context && context.hideout) || {};
  }

  function escapeHtml(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function abbreviate(n) {
    if (n >= 10000) return Math.round(n / 1000) + "k";
    if (n >= 1000) return (n / 1000).toFixed(1) + "k";
    return String(n);
  }

  // Heat ramps: sequential, one hue family each, and none of the four risk colours nor
  // the alarm colour (colour means one thing): activity dark teal -> pale aqua, coverage
  // gaps dark violet -> pale lilac.  The same stops draw the legend (heatLegend).
  var HEAT_STOPS = {
    activity: [[0, [13, 59, 78]], [0.5, [23, 150, 150]], [1, [190, 250, 235]]],
    gaps: [[0, [48, 26, 92]], [0.5, [128, 82, 190]], [1, [232, 208, 255]]]
  };
  window.anjianHeatStops = HEAT_STOPS;
  function ramp(v, mode) {
    v = Math.max(0, Math.min(1, v || 0));
    var stops = mode === "gaps" ? HEAT_STOPS.gaps : HEAT_STOPS.activity;
    for (var i = 1; i < stops.length; i++) {
      if (v <= stops[i][0]) {
        var a = stops[i - 1], b = stops[i];
        var f = (v - a[0]) / (b[0] - a[0] || 1);
        var c = a[1].map(function (x, k) { return Math.round(x + f * (b[1][k] - x)); });
        return "rgb(" + c.join(",") + ")";
      }
    }
    return "rgb(" + stops[stops.length - 1][1].join(",") + ")";
  }

  var anjian = {
    // --- boundaries -------------------------------------------------------------
    streetStyle: function (feature, context) {
      var h = hideout(context);
      if (h.offline) {
        return { color: "#3f7bc0", weight: 2, opacity: 0.9, fillColor: "#0f2644", fillOpacity: 0.9 };
      }
      return { color: h.light ? "#1f5fa8" : "#4aa3ff", weight: 2.2, opacity: 0.85, fill: false };
    },
    gridStyle: function (feature, context) {
      var h = hideout(context);
      return { color: h.light ? "#4a6a90" : "#7d9cc4", weight: 0.8, opacity: h.offline ? 0.5 : 0.45,
               fill: false, dashArray: "3 5" };
    },
    streetLabel: function (feature, layer, context) {
      var h = hideout(context);
      var p = feature.properties || {};
      var name = h.lang === "en" ? (p.name_en || p.name) : p.name;
      if (name && !h.nolabels) {
        layer.bindTooltip(escapeHtml(name), { permanent: true, direction: "center",
                                              className: "aj-street-label", opacity: 0.9 });
      }
    },

    // --- live things -------------------------------------------------------------
    inspectorPoint: function (feature, latlng) {
      var p = feature.properties || {};
      var s = scale();
      if (p.k) { // too many to draw one by one: a cell, the inspectors in it counted
        var size = Math.round((18 + 6 * Math.log10(p.k + 1)) * s);
        return L.marker(latlng, {
          icon: L.divIcon({ className: "aj-icell" + (p.on ? "" : " aj-icell-off"), iconSize: [size, size],
                            html: "<span>" + abbreviate(p.k) + "</span>" }),
          keyboard: false
        });
      }
      var off = p.s === "offline";
      return L.circleMarker(latlng, {
        radius: (p.s === "visiting" ? 7.5 : 5.5) * s, color: off ? OFFLINE : "#06101f", weight: 1.5 * s,
        fillColor: off ? OFFLINE : (p.c || "#40f0ff"), fillOpacity: off ? 0.45 : 0.95
      });
    },
    trailStyle: function (feature) {
      return { color: (feature.properties || {}).c || "#40f0ff", weight: 2.5 * scale(), opacity: 0.5,
               lineCap: "round", lineJoin: "round" };
    },
    alarmPoint: function (feature, latlng) {
      var p = feature.properties || {};
      var s = Math.round(30 * scale());
      var cls = "aj-alarm aj-sev-" + (p.sev || "warning") + (p.st === "open" ? " aj-pulse" : "");
      return L.marker(latlng, {
        icon: L.divIcon({ className: cls, html: "<span class=\"aj-alarm-core\"></span>", iconSize: [s, s] }),
        keyboard: false, zIndexOffset: 1000
      });
    },
    enterprisePoint: function (feature, latlng, context) {
      var p = feature.properties || {};
      var s = scale();
      var pane = hideout(context).pane;
      if (p.k) { // an H3 bin: a ring of its risk colours, the count inside
        var size = Math.round((20 + 7 * Math.log10(p.k + 1)) * s);
        var rc = p.rc || [0, 0, 0, p.k], total = rc.reduce(function (a, b) { return a + b; }, 0) || 1;
        var names = ["red", "orange", "yellow", "blue"], acc = 0, parts = [];
        for (var i = 0; i < 4; i++) {
          if (!rc[i]) continue;
          var a0 = acc / total * 360, a1 = (acc + rc[i]) / total * 360;
          parts.push(RISK[names[i]] + " " + a0.toFixed(1) + "deg " + a1.toFixed(1) + "deg");
          acc += rc[i];
        }
        return L.marker(latlng, {
          icon: L.divIcon({ className: "aj-bin", iconSize: [size, size],
                            html: "<div class=\"aj-bin-ring\" style=\"background: conic-gradient(" + parts.join(",") +
                                  ")\"><span>" + abbreviate(p.k) + "</span></div>" }),
          keyboard: false, pane: pane || "markerPane"
        });
      }
      return L.circleMarker(latlng, { radius: 3.5 * s, weight: 0.5, color: "#06101f", pane: pane || "overlayPane",
                                      fillColor: RISK[p.r] || RISK.blue, fillOpacity: 0.9 });
    },
    heatStyle: function (feature, context) {
      var h = hideout(context);
      var v = (feature.properties || {}).v / (h.max || 1);
      return { stroke: false, fillColor: ramp(v, h.mode), fillOpacity: 0.12 + 0.5 * Math.sqrt(Math.max(0, v)) };
    },
    heatPoint: function (feature, latlng, context) {
      // A cell as a circle of its hexagon's size (metres), so it scales with the map.
      var h = hideout(context), p = feature.properties || {};
      var v = p.v / (h.max || 1);
      return L.circle(latlng, { radius: p.rm || 200, stroke: false, fillColor: ramp(v, h.mode),
                                fillOpacity: 0.12 + 0.45 * Math.sqrt(Math.max(0, v)) });
    },

    // --- dispatch / officer / replay ------------------------------------------------------
    suggestionPoint: function (feature, latlng) {
      var p = feature.properties || {};
      return L.marker(latlng, {
        icon: L.divIcon({ className: "aj-suggest", html: "<span>" + escapeHtml(p.rank) + "</span>",
                          iconSize: [26, 26] })
      });
    },
    suggestionStyle: function () {
      return { color: "#30d158", weight: 2, opacity: 0.8, dashArray: "6 6" };
    },
    visitPoint: function (feature, latlng) {
      var p = feature.properties || {};
      return L.circleMarker(latlng, { radius: 7, weight: 2, color: p.dup ? "#c9a0ff" : "#ffffff",
                                      fillColor: RISK[p.r] || RISK.blue, fillOpacity: 0.9 });
    },
    targetPoint: function (feature, latlng) {
      return L.marker(latlng, {
        icon: L.divIcon({ className: "aj-alarm aj-sev-critical aj-pulse",
                          html: "<span class=\"aj-alarm-core\"></span>", iconSize: [34, 34] })
      });
    }
  };

  window.dashExtensions = Object.assign({}, window.dashExtensions, { anjian: anjian });

  // A touch, click, key or wheel on the page pauses the wall's idle cycle.
  window.anjianLastTouch = 0;
  ["mousedown", "touchstart", "keydown", "wheel"].forEach(function (ev) {
    document.addEventListener(ev, function () { window.anjianLastTouch = Date.now(); }, { passive: true });
  });

  // A session that ended (logout elsewhere, a server restarted without a fixed
  // secret key) makes every poll answer 401, with the text for which dash-renderer
  // calls its request_refresh_jwt hook (dashboard/auth_views.py, SESSION_ENDED and
  // SESSION_HOOKS): reload, which leads to the login page, instead of leaving a
  // wall frozen on stale numbers.  No new token: the callback itself fails.
  window.anjianSessionEnded = function () {
    if (!window.anjianReloading) {
      window.anjianReloading = true;
      setTimeout(function () { window.location.reload(); }, 1000);
    }
    return null;
  };

  // Alert changes pushed by the server (GET /api/v1/events, dashboard/push.py).
  // Each event goes into the page's push store (a .aj-push wrapper names it),
  // an input of the page's tick callback, which then runs at once instead of
  // at its next poll.  The pages keep polling, so a lost stream costs only speed;
  // EventSource reconnects by itself, and a closed one is reopened here.
  //
  // On the wall and the console the stream also carries, in "rows", the row of
  // each new alarm that page shows (rendered and scoped by the server:
  // dashboard/push.py).  It goes in at once where the one order puts it; the list the
  // tick callback answers with replaces it: the console's queue is rewritten whole
  // (fillHtml), and on the wall the row goes when React's list has its own row for
  // that alarm.  A row the answer leaves out (past the list's length) goes after
  // PROVISIONAL_MS.
  window.anjianPushed = 0;
  window.anjianPushLog = [];  // the latest events' arrival times and ids (the screens bench reads it)
  var PROVISIONAL_MS = 5000;
  function pushView() {
    var path = window.location.pathname;
    if (/^\/wall(\/|$)/.test(path)) { return "wall"; }
    if (/^\/dispatch(\/|$)/.test(path)) { return "dispatch"; }
    return null;
  }
  function dropProvisional(box) {
    Array.prototype.forEach.call(box.querySelectorAll(".aj-provisional"), function (el) { el.remove(); });
  }
  function showNewRows(rows) {
    var view = pushView(), box = null, into = null, added = 0;
    if (view === "wall") {
      box = into = document.getElementById("wall-alert-list");
    } else if (view === "dispatch") {
      box = document.getElementById("dispatch-queue");
      if (box) {
        into = box.querySelector("tbody");
        if (!into) {  // an empty queue: its "none" line gives way until the answer's table
          box.innerHTML = "<table class=\"aj-queue\"><tbody></tbody></table>";
          into = box.querySelector("tbody");
        }
      }
    }
    if (!into) { return 0; }
    rows.forEach(function (r) {
      var id = String(r.id);
      var there = view === "wall" ? into.querySelector("[data-alert-id=\"" + id + "\"]")
                                  : document.getElementById("queue-row-" + id);
      if (there || typeof r.html !== "string") { return; }
      // Where the one order puts it (every row has its data-order, dashboard/pages/
      // common.py order_attr): before the first row that sorts after it.  One that
      // sorts after every row shown is past the list's end (an older alarm updated):
      // it stays out, and the tick's list has it if it belongs.
      var order = String(r.order || ""), shown = into.querySelectorAll(":scope > [data-order]"), before = null;
      for (var i = 0; i < shown.length; i++) {
        if (shown[i].getAttribute("data-order") > order) { before = shown[i]; break; }
      }
      if (before) {
        before.insertAdjacentHTML("beforebegin", r.html);
      } else if (!shown.length) {
        into.insertAdjacentHTML("afterbegin", r.html);  // an empty list: it stands in for "none"
      } else {
        return;
      }
      added += 1;
    });
    if (!added) { return 0; }
    if (box.anjianHtml !== undefined) { box.anjianHtml = null; }  // the next fillHtml writes, even the same HTML
    if (view === "wall") {
      // When React's list (the answer) has a row of its own for an alarm, the row
      // put here goes; one the answer leaves out goes with the timer.
      var mo = new MutationObserver(function () {
        var left = 0;
        Array.prototype.forEach.call(box.querySelectorAll(".aj-provisional"), function (el) {
          var id = el.getAttribute("data-alert-id");
          if (box.querySelector(".aj-alert-item:not(.aj-provisional)[data-alert-id=\"" + id + "\"]")) {
            el.remove();
          } else {
            left += 1;
          }
        });
        if (!left) { mo.disconnect(); }
      });
      mo.observe(box, { childList: true, subtree: true });
      setTimeout(function () { mo.disconnect(); dropProvisional(box); }, PROVISIONAL_MS);
    } else {
      setTimeout(function () {
        Array.prototype.forEach.call(box.querySelectorAll(".aj-provisional"), function (el) {
          if (Date.now() - Number(el.getAttribute("data-at") || 0) >= PROVISIONAL_MS) { el.remove(); }
        });
      }, PROVISIONAL_MS);
      Array.prototype.forEach.call(box.querySelectorAll(".aj-provisional:not([data-at])"), function (el) {
        el.setAttribute("data-at", String(Date.now()));
      });
    }
    return added;
  }
  window.anjianShowNewRows = showNewRows;  // what an event with rows does (the browser tests call it)
  function openPush() {
    if (!window.EventSource || window.anjianPush) { return; }
    var view = pushView();
    var es = new EventSource("/api/v1/events" + (view ? "?view=" + view : ""));
    window.anjianPush = es;
    es.addEventListener("alert", function (ev) {
      var box = document.querySelector(".aj-push[data-store]");
      var dc = window.dash_clientside;
      if (!box || !dc || !dc.set_props) { return; }
      var d;
      try { d = JSON.parse(ev.data); } catch (e) { return; }
      window.anjianPushed += 1;
      var t = Date.now();
      // The callback's request first (it goes out at once), then the event's rows.
      dc.set_props(box.getAttribute("data-store"), { data: { v: d.v, ids: d.ids, n: window.anjianPushed } });
      var shown = d.rows && d.rows.length ? showNewRows(d.rows) : 0;
      window.anjianPushLog.push({ t: t, ids: d.ids || [], rows: shown });
      if (window.anjianPushLog.length > 200) { window.anjianPushLog.shift(); }
    });
    es.onerror = function () {
      if (es.readyState === 2) { window.anjianPush = null; setTimeout(openPush, 5000); }
    };
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", openPush);
  } else {
    openPush();
  }

  // Buttons in panels built as HTML strings (dashboard/markup.py) carry what a
  // click does: data-aj-store names a store, data-aj-value the JSON to put in it
  // (an object also gets a click counter n, so two clicks are two changes).  The
  // store is the input of a server callback that checks role and action.
  window.anjianClicks = 0;
  var pressedIn = null;  // the element a pointer is pressed on (fillHtml waits for its click)
  document.addEventListener("pointerdown", function (ev) { pressedIn = ev.target; }, true);
  function releasePress() {
    var was = pressedIn;
    pressedIn = null;
    // After the click's own handlers: a box that got new HTML meanwhile gets it now.
    setTimeout(function () {
      var box = was && was.closest ? was.closest("[id]") : null;
      while (box) {
        if (typeof box.anjianPending === "string") {
          var markup = box.anjianPending;
          box.anjianPending = null;
          box.anjianHtml = markup;
          box.innerHTML = markup;
        }
        box = box.parentElement ? box.parentElement.closest("[id]") : null;
      }
    }, 0);
  }
  document.addEventListener("pointerup", releasePress, true);
  document.addEventListener("pointercancel", releasePress, true);
  document.addEventListener("click", function (ev) {
    var el = ev.target && ev.target.closest ? ev.target.closest("button[data-aj-store]") : null;
    var dc = window.dash_clientside;
    if (!el || el.disabled || !dc || !dc.set_props) { return; }
    var value;
    try { value = JSON.parse(el.getAttribute("data-aj-value")); } catch (e) { return; }
    // A button that changes something already decided (another inspector sent, an
    // alarm closed) asks first: data-aj-confirm holds the question.
    var ask = el.getAttribute("data-aj-confirm");
    if (ask && !window.confirm(ask)) { return; }
    window.anjianClicks += 1;
    if (value && typeof value === "object") { value.n = window.anjianClicks; }
    var store = el.getAttribute("data-aj-store");
    var fb = document.getElementById("dispatch-feedback");
    if (fb && store === "dispatch-command") {
      // The answer to this action appears beside this button (placeFeedback).
      var r = el.getBoundingClientRect();
      window.anjianActionAt = { top: r.top, left: r.left, right: r.right, bottom: r.bottom };
    } else if (fb && store === "dispatch-selected") {
      fb.hidden = true;  // another alert: the last action's answer goes
    }
    if (store === "dispatch-selected") { revealDetailSoon(); }
    dc.set_props(store, { data: value });
  });

  // On a phone the console is one column, and the selected alert's panel (its details,
  // its send and resolve buttons) sits two screens below the queue: a tap on an alert
  // changed nothing in sight.  There the panel is brought into view once it shows the
  // alert (its content changes), or after a moment when it already did.
  var PHONE = "(max-width: 700px)", REVEAL_WAIT_MS = 1500;
  function revealDetail() {
    var want = window.anjianRevealDetail, box = document.getElementById("dispatch-detail");
    window.anjianRevealDetail = null;
    if (!want || !box || Date.now() - want > 5000) { return; }
    var panel = box.closest(".aj-panel") || box;
    panel.scrollIntoView({ block: "start", behavior: "auto" });
  }
  function revealDetailSoon() {
    if (!window.matchMedia || !window.matchMedia(PHONE).matches) { return; }
    var box = document.getElementById("dispatch-detail");
    if (!box) { return; }
    window.anjianRevealDetail = Date.now();
    if (!box.anjianRevealWatch && window.MutationObserver) {
      box.anjianRevealWatch = new MutationObserver(function () {
        if (window.anjianRevealDetail) { revealDetail(); }
      });
      box.anjianRevealWatch.observe(box, { childList: true, subtree: true });
    }
    setTimeout(function () { if (window.anjianRevealDetail) { revealDetail(); } }, REVEAL_WAIT_MS);
  }

  // The console's action feedback, as a bubble beside the button that was clicked.  It
  // goes by itself after FEEDBACK_OK_MS (done) or FEEDBACK_FAILED_MS (refused): after a
  // resolve its button is gone, and a tour found the bubble left over the search box.
  var FEEDBACK_OK_MS = 6000, FEEDBACK_FAILED_MS = 12000;
  function placeFeedback(fb) {
    var at = window.anjianActionAt;
    clearTimeout(fb.anjianHide);
    if (!fb.textContent.trim()) { fb.hidden = true; return; }
    fb.hidden = false;
    fb.anjianHide = setTimeout(function () { fb.hidden = true; },
                               fb.classList.contains("aj-ok") ? FEEDBACK_OK_MS : FEEDBACK_FAILED_MS);
    if (!at) { return; }
    if (!fb.classList.contains("aj-bubble")) { fb.classList.add("aj-bubble"); }
    var w = fb.offsetWidth, h = fb.offsetHeight;
    var vw = window.innerWidth, vh = window.innerHeight;
    var left = at.right + 8, top = at.top + (at.bottom - at.top - h) / 2;
    if (left + w > vw - 8) { left = Math.max(8, at.left - w - 8); }
    if (left < 8 || left + w > vw - 8) { left = Math.max(8, Math.min(vw - w - 8, at.left)); top = at.bottom + 6; }
    fb.style.left = Math.round(left) + "px";
    fb.style.top = Math.round(Math.max(8, Math.min(vh - h - 8, top))) + "px";
  }
  function watchFeedback() {
    var fb = document.getElementById("dispatch-feedback");
    if (!fb || fb.anjianWatched || !window.MutationObserver) { return; }
    fb.anjianWatched = true;
    new MutationObserver(function () { placeFeedback(fb); })
      .observe(fb, { childList: true, characterData: true, subtree: true, attributes: true,
                     attributeFilter: ["class"] });
  }
  if (window.MutationObserver && /\/dispatch/.test(window.location.pathname)) {
    var pageWatch = new MutationObserver(function () {
      watchFeedback();
      var fb = document.getElementById("dispatch-feedback");
      if (fb && fb.anjianWatched) { pageWatch.disconnect(); }
    });
    pageWatch.observe(document.documentElement, { childList: true, subtree: true });
  }

  // --- Leaflet's own controls in the page's language ------------------------------------
  // Its zoom buttons say "Zoom in" and "Zoom out" whatever the page's language; the server
  // puts the catalogue's words on <html> (data-zoom-in, data-zoom-out, dashboard/pages/
  // screens.py), and each map's buttons get them once, when they appear.
  function localiseZoom() {
    var html = document.documentElement;
    var words = [html.getAttribute("data-zoom-in"), html.getAttribute("data-zoom-out")];
    if (!words[0]) { return; }
    Array.prototype.forEach.call(document.querySelectorAll(".leaflet-control-zoom:not([data-aj-lang])"), function (c) {
      [".leaflet-control-zoom-in", ".leaflet-control-zoom-out"].forEach(function (sel, i) {
        var b = c.querySelector(sel);
        if (b) { b.title = words[i]; b.setAttribute("aria-label", words[i]); }
      });
      c.setAttribute("data-aj-lang", document.documentElement.lang);
    });
  }
  setInterval(localiseZoom, 1000);
  // Leaflet's credit (its prefix, "Leaflet") links with the title "A JavaScript library for
  // interactive maps", in English in the Chinese UI too; each map's attribution control
  // takes the catalogue's title (data-leaflet-title on <html>) when it is made, so the
  // prefix keeps it whenever the control redraws (a tile server's credit removed).
  if (window.L && L.Control && L.Control.Attribution && L.Control.Attribution.addInitHook) {
    L.Control.Attribution.addInitHook(function () {
      var title = document.documentElement.getAttribute("data-leaflet-title");
      if (title && typeof this.options.prefix === "string") {
        this.options.prefix = this.options.prefix.replace(/title="[^"]*"/, 'title="' + escapeHtml(title) + '"');
      }
    });
  }

  // --- lists cut at a whole row, with a true "more" -------------------------------------
  // A list with data-fit (the wall's alerts, major hazards and unit legend) shows the rows
  // that fit its box and hides the rest from the end; its last row (.aj-alert-more, made
  // by the server with data-n = rows it left out itself) then says how many are not shown
  // in all, with the list's data-fit text ("另有 {n} 条").  The count is an attribute the
  // CSS draws, so nothing React rendered is rewritten.  Refitted when the list changes and
  // when its box or the window does.
  function fitList(ul) {
    var more = null, rows = [];
    for (var i = 0; i < ul.children.length; i++) {
      var li = ul.children[i];
      li.classList.remove("aj-fit-out");
      if (li.classList.contains("aj-alert-more")) { more = li; } else if (!li.classList.contains("aj-alert-none")) { rows.push(li); }
    }
    if (!more) { return; }
    var left = parseInt(more.getAttribute("data-n") || "0", 10) || 0;
    var tpl = ul.getAttribute("data-fit") || "{n}";
    function say(n) {
      more.classList.toggle("aj-fit-none", n <= 0);
      var text = n > 0 ? tpl.replace("{n}", String(n)) : "";
      if (more.getAttribute("data-label") !== text) { more.setAttribute("data-label", text); }
    }
    say(left);
    var over = function () { return ul.scrollHeight > ul.clientHeight + 1; };
    if (!over()) { ul.setAttribute("data-shown", String(rows.length)); return; }
    var hidden = 0;
    say(left + 1);  // the "more" row takes its own line while the rows are measured
    while (hidden < rows.length && over()) {
      rows[rows.length - 1 - hidden].classList.add("aj-fit-out");
      hidden += 1;
      say(left + hidden);
    }
    ul.setAttribute("data-shown", String(rows.length - hidden));
  }
  var fitted = [];
  function refit() {
    fitted.forEach(function (f) {
      f.obs.disconnect();
      fitList(f.ul);
      f.obs.observe(f.ul, { childList: true, subtree: true, characterData: true });
    });
  }
  var fitQueued = false;
  function queueFit() {
    if (fitQueued) { return; }
    fitQueued = true;
    window.requestAnimationFrame(function () { fitQueued = false; refit(); });
  }
  // New lists are looked for at most once a frame, and only lists that are new are
  // measured then (a page's other changes, the map's markers, cost one query).
  var scanQueued = false;
  function scanFits() {
    scanQueued = false;
    var lists = document.querySelectorAll("ul[data-fit]"), found = false;
    for (var i = 0; i < lists.length; i++) {
      var ul = lists[i];
      if (ul.anjianFit) { continue; }
      ul.anjianFit = true;
      found = true;
      fitted.push({ ul: ul, obs: new MutationObserver(queueFit) });
      // The box changes when its neighbours fill in (the hazards, the ranking), not only
      // when its own rows do.
      if (window.ResizeObserver) { new ResizeObserver(queueFit).observe(ul); }
    }
    if (found) {
      fitted = fitted.filter(function (f) { return document.body.contains(f.ul); });
      queueFit();
    }
  }
  if (window.MutationObserver) {
    window.addEventListener("resize", queueFit);
    new MutationObserver(function () {
      if (!scanQueued) { scanQueued = true; window.requestAnimationFrame(scanFits); }
    }).observe(document.documentElement, { childList: true, subtree: true });
    if (document.fonts && document.fonts.ready) { document.fonts.ready.then(queueFit); }
  }

  // --- tiles that fail: every map switches to its offline base by itself ----------------
  // A tile image that fails (no tile server on an intranet) fires "error"; once
  // TILE_FAILURES have failed in one map and none has loaded there, that map's tile
  // layers get the transparent tile as their URL (no more requests), its street and grid
  // layers their offline style (filled, labelled), the tile attribution goes, and its
  // corner notice shows.  The notice (mapkit.tiles_notice, .aj-tiles-notice[data-map])
  // names the ids to change and holds the catalogue's text.
  var TILE_FAILURES = 6;
  var TRANSPARENT = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";
  window.anjianTiles = {};  // per map id: {failed, loaded, offline} (tests read it)
  var leafletMaps = [];     // every Leaflet map made on the page (L.Map init hook below)
  function tileState(mapId) {
    var all = window.anjianTiles;
    if (!all[mapId]) { all[mapId] = { failed: 0, loaded: 0, offline: false }; }
    return all[mapId];
  }
  function tileEvent(ev) {
    var img = ev.target;
    if (!img || img.tagName !== "IMG" || !img.classList.contains("leaflet-tile")) { return; }
    if ((img.getAttribute("src") || "").indexOf("data:") === 0) { return; }
    var box = img.closest(".leaflet-container");
    if (!box || !box.id) { return; }
    var st = tileState(box.id);
    if (ev.type === "load") { st.loaded += 1; return; }
    st.failed += 1;
    if (st.offline || st.loaded > 0 || st.failed < TILE_FAILURES) { return; }
    goOffline(box);
  }
  // One map's switch to its offline base (also when a vector base cannot be drawn).
  function goOffline(box, remember) {
    if (!box || !box.id) { return; }
    var st = tileState(box.id);
    var notice = document.querySelector('.aj-tiles-notice[data-map="' + box.id + '"]');
    var dc = window.dash_clientside;
    if (st.offline || !notice || !dc || !dc.set_props) { return; }
    st.offline = true;
    var root = box.closest("[lang]");
    var lang = (root && root.lang) || document.documentElement.lang || "zh-CN";
    var n = Number(notice.getAttribute("data-tiles")) || 0;
    var prefix = notice.getAttribute("data-tile-prefix");
    for (var k = 0; k < n; k++) {
      dc.set_props(prefix + "-" + k, { url: TRANSPARENT, opacity: 0 });
    }
    ["data-streets", "data-grids"].forEach(function (attr) {
      var id = notice.getAttribute(attr);
      if (id) { dc.set_props(id, { hideout: { offline: true, lang: lang } }); }
    });
    // The attribution named the tile server: it draws nothing now.
    leafletMaps.forEach(function (m) {
      if (m.getContainer() !== box || !m.attributionControl) { return; }
      m.eachLayer(function (l) {
        if (l instanceof L.TileLayer && l.getAttribution && l.getAttribution()) {
          m.attributionControl.removeAttribution(l.getAttribution());
        }
      });
    });
    box.classList.add("aj-map-offline");
    notice.hidden = false;
    if (remember !== false) { rememberDead(box); }
  }
  // A tile server found dead is remembered for DEAD_TILES_MS in this browser, so the next
  // page (or the wall's reload) draws its offline base at once instead of asking the dead
  // server again: each load cost 9-36 failed requests in the console before the switch.
  var DEAD_TILES_MS = 10 * 60 * 1000, DEAD_KEY = "anjian.deadTiles";
  function deadTiles() {
    try {
      var all = JSON.parse(window.localStorage.getItem(DEAD_KEY) || "{}"), now = Date.now(), out = {};
      Object.keys(all).forEach(function (u) { if (all[u] > now) { out[u] = all[u]; } });
      return out;
    } catch (e) { return {}; }
  }
  function rememberDead(box) {
    var dead = deadTiles(), until = Date.now() + DEAD_TILES_MS, any = false;
    leafletMaps.forEach(function (m) {
      if (m.getContainer() !== box) { return; }
      m.eachLayer(function (l) {
        var u = l instanceof L.TileLayer && (l.anjianUrl || l._url);
        if (u && u.indexOf("data:") !== 0) { dead[u] = until; any = true; }
      });
    });
    if (!any) { return; }
    try { window.localStorage.setItem(DEAD_KEY, JSON.stringify(dead)); } catch (e) { /* private mode */ }
  }
  window.anjianForgetDeadTiles = function () {
    try { window.localStorage.removeItem(DEAD_KEY); } catch (e) { /* nothing to forget */ }
  };
  if (window.L && L.TileLayer && L.TileLayer.addInitHook) {
    L.TileLayer.addInitHook(function () {
      // A small map asks for fewer tiles than TILE_FAILURES (the enterprise page's map on a
      // phone asked for 4 and stayed blank): when a layer has finished its tiles ("load",
      // errors included) and every one of them failed, that is enough.
      this.on("load", function () {
        var box = this._map && this._map.getContainer();
        var st = box && box.id && window.anjianTiles[box.id];
        if (st && !st.offline && st.loaded === 0 && st.failed > 0) { goOffline(box); }
      });
      var u = this._url;
      if (!u || u.indexOf("data:") === 0 || sameOrigin(u)) { return; }
      this.anjianUrl = u;
      this._url = TRANSPARENT;  // no request to that server yet: known dead, or to be asked first
      if (deadTiles()[u]) {
        this.once("add", function () {
          var map = this._map;
          window.setTimeout(function () { if (map) { goOffline(map.getContainer()); } }, 0);
        });
        return;
      }
      this.once("add", function () { askFirst(this, u); });
    });
  }
  // A first visit (nothing remembered) asks the tile server for one tile, the one under the
  // map's centre, before the layer lays its tiles out: a whole view of tiles to a server the
  // intranet cannot reach logged 10-36 failed requests in the console before the switch.
  // Any answer (even a 404: the server is there) lets the layer draw; a failed request
  // switches the map to its offline base at once and is remembered; no answer within
  // PROBE_MS switches this page only (a slow server may be alive: the next page asks again).
  // One request per server template and page, however many maps use it.  The app's own
  // /tiles (MBTiles) is never asked first: the page came from there.
  var PROBE_MS = 5000;
  var probes = {};
  function sameOrigin(u) {
    try { return new URL(u, window.location.href).origin === window.location.origin; } catch (e) { return false; }
  }
  function probeUrl(layer, u) {
    var map = layer._map, o = layer.options;
    var most = o.maxNativeZoom != null ? o.maxNativeZoom : o.maxZoom;
    var z = Math.max(o.minNativeZoom || o.minZoom || 0, Math.min(Math.round(map.getZoom()), most));
    var at = map.project(map.getCenter(), z).divideBy(layer.getTileSize().x).floor();
    var coords = L.point(at.x, at.y);
    coords.z = z;
    var y = Math.pow(2, z) - 1 - at.y;
    var data = { r: L.Browser.retina ? "@2x" : "", s: layer._getSubdomain(coords), x: at.x, y: o.tms ? y : at.y,
                 z: z + (o.zoomOffset || 0), "-y": y };
    return L.Util.template(u, L.extend(data, o));
  }
  function probe(url, key) {
    if (!probes[key]) {
      probes[key] = new Promise(function (resolve) {
        var timer = window.setTimeout(function () { resolve("slow"); }, PROBE_MS);
        // no-cors: an opaque answer is enough to know the server is there; a network
        // error (refused, no route, no name) rejects.
        fetch(url, { mode: "no-cors", credentials: "omit", cache: "no-store" }).then(
          function () { window.clearTimeout(timer); resolve("ok"); },
          function () { window.clearTimeout(timer); resolve("dead"); });
      });
    }
    return probes[key];
  }
  function askFirst(layer, u) {
    var map = layer._map;
    if (!map) { return; }
    map.whenReady(function () {
      var url;
      try { url = probeUrl(layer, u); } catch (e) { layer.setUrl(u); return; }  // a template we cannot fill: as before
      probe(url, u).then(function (answer) {
        if (!layer._map) { return; }  // the layer went meanwhile
        var box = layer._map.getContainer();
        if (answer === "ok") {
          var st = window.anjianTiles[box.id];
          if (!(st && st.offline)) { layer.setUrl(u); }
          return;
        }
        goOffline(box, answer === "dead");
      });
    });
  }
  document.addEventListener("error", tileEvent, true);
  document.addEventListener("load", tileEvent, true);

  // --- the vector base: an MBTiles file of vector tiles (tiles=mbtiles, format pbf) -------
  // dash-leaflet has no vector-tile layer, so every Leaflet map whose container says
  // aj-map-vector (dashboard/mapkit.py map_props) gets one here, through Leaflet's own
  // plugin hook (L.Map.addInitHook runs in each map's constructor).  Leaflet.VectorGrid
  // (vendored, never from the internet) and the file's TileJSON are fetched once per
  // page, when the first such map is made.  Tiles of the file's deepest zoom are scaled
  // up beyond it (maxNativeZoom), as raster MBTiles are.
  //
  // The palette is muted on purpose (colour means one thing): land, water, roads and
  // buildings in dark slate greys and blues, none of them a risk colour nor the alarm colour;
  // point layers (labels, POIs) are not drawn.  Layer names are those of the OpenMapTiles
  // and Shortbread schemas; any other layer the file lists gets the quiet default.
  var VECTORGRID_SRC = "/assets/vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js";
  var TILEJSON_URL = "/tiles/tilejson.json";
  var VECTOR = {
    // No outline on areas: a polygon clipped at the tile's edge would outline the tile.
    land: { fill: true, fillColor: "#0f1c2a", fillOpacity: 1, stroke: false },
    green: { fill: true, fillColor: "#10211f", fillOpacity: 1, stroke: false },
    water: { fill: true, fillColor: "#050c16", fillOpacity: 1, stroke: false },
    waterway: { fill: false, color: "#16283c", weight: 1, opacity: 1 },
    road: { fill: false, color: "#2c3b50", weight: 1, opacity: 1 },
    major: { fill: false, color: "#3a4a60", weight: 1.8, opacity: 1 },
    rail: { fill: false, color: "#2a3342", weight: 1, opacity: 1, dashArray: "4 4" },
    building: { fill: true, fillColor: "#182436", fillOpacity: 1, stroke: false },
    boundary: { fill: false, color: "#3a4455", weight: 0.8, opacity: 0.8, dashArray: "4 4" },
    other: { fill: false, color: "#263246", weight: 0.6, opacity: 0.8, radius: 1 }
  };
  var VECTOR_LAYERS = {
    landcover: "green", park: "green", landuse: "land", land: "land", sites: "land",
    water: "water", ocean: "water", water_polygons: "water", waterway: "waterway", water_lines: "waterway",
    building: "building", buildings: "building", boundary: "boundary", boundaries: "boundary",
    transportation: "road", streets: "road", street_polygons: "land", bridges: "road",
    aeroway: "road", aerialways: "rail", ferries: "waterway"
  };
  var VECTOR_POINTS = ["place", "poi", "housenumber", "mountain_peak", "aerodrome_label", "water_name",
                       "transportation_name", "place_labels", "pois", "public_transport", "addresses",
                       "street_labels", "street_labels_points", "water_polygons_labels", "water_lines_labels",
                       "boundary_labels"];
  var MAJOR = /^(motorway|trunk|primary)/;
  function vectorStyle(id) {
    if (VECTOR_POINTS.indexOf(id) >= 0) { return []; }
    var kind = VECTOR_LAYERS[id];
    if (kind === "road") {  // roads: major ones wider; railways dashed
      return function (p) {
        var cls = String((p && (p["class"] || p.kind)) || "");
        if (cls === "rail" || cls === "transit") { return VECTOR.rail; }
        return MAJOR.test(cls) ? VECTOR.major : VECTOR.road;
      };
    }
    return VECTOR[kind] || VECTOR.other;
  }
  var vectorReady = null;
  function loadVectorBase() {
    if (vectorReady) { return vectorReady; }
    var script = new Promise(function (resolve, reject) {
      if (window.L && L.vectorGrid) { resolve(); return; }
      var s = document.createElement("script");
      s.src = VECTORGRID_SRC;
      s.onload = function () { resolve(); };
      s.onerror = function () { reject(new Error("Leaflet.VectorGrid did not load")); };
      document.head.appendChild(s);
    });
    var meta = fetch(TILEJSON_URL, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("tilejson: HTTP " + r.status); }
      return r.json();
    });
    vectorReady = Promise.all([script, meta]).then(function (both) { return both[1]; });
    vectorReady.catch(function () { vectorReady = null; });  // a later map tries again
    return vectorReady;
  }
  function addVectorBase(map) {
    loadVectorBase().then(function (tj) {
      var styles = {};
      Object.keys(VECTOR_LAYERS).concat(VECTOR_POINTS).forEach(function (id) { styles[id] = vectorStyle(id); });
      (tj.vector_layers || []).forEach(function (v) { styles[v.id] = vectorStyle(v.id); });
      var layer = L.vectorGrid.protobuf((tj.tiles || ["/tiles/{z}/{x}/{y}"])[0], {
        rendererFactory: L.canvas.tile,  // canvas: one bitmap per tile, however many roads it holds
        vectorTileLayerStyles: styles,
        interactive: false,
        maxNativeZoom: tj.maxzoom, minNativeZoom: tj.minzoom,
        attribution: tj.attribution || "",
        fetchOptions: { credentials: "same-origin" },  // /tiles needs the session, like every page
        className: "aj-vector-base"
      });
      map.whenReady(function () {
        if (map._container && map._container.isConnected && !map._anjianVector) {
          map._anjianVector = layer;
          layer.addTo(map);
        }
      });
    }).catch(function (e) {
      // No library or no TileJSON (the file gone, the web process without it): the wall
      // draws its offline base and says so, as when raster tiles fail.
      if (window.console) { console.warn("vector base:", e && e.message); }
      goOffline(map.getContainer());
    });
  }
  if (window.L && L.Map && L.Map.addInitHook) {
    L.Map.addInitHook(function () {
      leafletMaps = leafletMaps.filter(function (m) { return m.getContainer().isConnected; });
      leafletMaps.push(this);
      var box = this.getContainer && this.getContainer();
      if (box && box.classList && box.classList.contains("aj-map-vector")) { addVectorBase(this); }
    });
  }

  // --- the console's alarm sound ----------------------------------------------------------
  // A short beep made with the WebAudio API (no sound file).  A browser that
  // blocks sound until the person interacts with the page keeps the AudioContext
  // "suspended": the "enable sound" button (#sound-enable) is shown then, and a
  // click on it resumes the context and plays the beep that was held back.
  window.anjianBeeps = 0;  // beeps played (tests read it)
  window.anjianMuted = false;
  var soundPending = false;
  function audioContext() {
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) { return null; }
    try { return window.anjianAudio || (window.anjianAudio = new AC()); } catch (e) { return null; }
  }
  function soundBlocked() {
    var ac = audioContext();
    return !!ac && ac.state !== "running";
  }
  function showSoundControl() {
    var el = document.getElementById("sound-enable");
    if (el) { el.hidden = !soundBlocked(); }
  }
  function beep() {
    var ac = audioContext();
    if (!ac) { return false; }
    if (ac.state !== "running") {
      soundPending = true;
      if (ac.resume) { ac.resume().then(showSoundControl, showSoundControl); }
      showSoundControl();
      return false;
    }
    try {
      [0, 0.3].forEach(function (t0) {
        var o = ac.createOscillator(), g = ac.createGain();
        o.type = "square"; o.frequency.value = 880; g.gain.value = 0.06;
        o.connect(g); g.connect(ac.destination);
        o.start(ac.currentTime + t0); o.stop(ac.currentTime + t0 + 0.18);
      });
      window.anjianBeeps += 1;
      soundPending = false;
      return true;
    } catch (e) { return false; }
  }
  document.addEventListener("click", function (ev) {
    var el = ev.target && ev.target.closest ? ev.target.closest("#sound-enable") : null;
    if (!el) { return; }
    var ac = audioContext();
    if (!ac) { return; }
    ac.resume().then(function () {
      showSoundControl();
      if (soundPending && !window.anjianMuted) { beep(); }
    }, showSoundControl);
  });

  var shanghai = null;
  try {
    shanghai = new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit",
                                                  day: "2-digit", hour: "2-digit", minute: "2-digit",
                                                  second: "2-digit", hour12: false });
  } catch (e) { shanghai = null; }

  function noUpdate() { return window.dash_clientside.no_update; }

  var clientside = {
    // The wall: fly to a pinned alarm; otherwise, when idle, the next stop of the cycle.
    wallViewport: function (n, takeover, stops, cyc) {
      var nu = noUpdate();
      cyc = Object.assign({ i: 0, pinned: null, idle_ms: 120000 }, cyc || {});
      if (takeover && takeover.id != null) {
        // The label names the alarm shown (never "whole district" while an alarm is).
        if (cyc.pinned === takeover.id) { return [nu, takeover.label || nu, nu]; }
        // A takeover ends the first run too (i 0): Dash drops the answer of a call still
        // running when the callback is called again, so the first fit's answer, 700 ms
        // late, is lost to a takeover that comes within that time; left at -1, the
        // release at the round's end would again wait 700 ms, and the idle cycle's next
        // tick drop that answer too (the label named the last alarm for seconds).
        return [{ center: [takeover.lat, takeover.lon], zoom: 16, transition: "flyTo", options: { duration: 2 } },
                takeover.label || nu, Object.assign({}, cyc, { pinned: takeover.id, i: Math.max(cyc.i, 0) })];
      }
      if (!stops || !stops.length) { return [nu, nu, nu]; }
      var released = cyc.pinned !== null && cyc.pinned !== undefined;
      var trig = ((window.dash_clientside.callback_context || {}).triggered || []).map(function (x) {
        return x.prop_id || "";
      });
      // First run (cyc.i starts at -1): Dash may call this first for the takeover
      // store that the poll filled, not for the timer, so "first" is our own flag.
      var initial = cyc.i < 0;
      var byTick = initial || trig.some(function (p) { return p.indexOf("n_intervals") >= 0; });
      if (!byTick && !released) { return [nu, nu, nu]; } // no takeover before or after: nothing to do
      if (!released && Date.now() - (window.anjianLastTouch || 0) < cyc.idle_ms) { return [nu, nu, nu]; }
      // The overview after a takeover round holds the whole district for its time
      // (settings.wall_overview_s) before the idle cycle moves on to a street, and a
      // little longer: the server's next round comes at its next poll after that time,
      // and a street flown to meanwhile cut the overview short.
      if (!released && cyc.hold_until && Date.now() < cyc.hold_until) { return [nu, nu, nu]; }
      // Released by the takeover (its round ended, or every alarm was acknowledged):
      // back to the overview, the first stop (the whole district).
      var i = released ? 0 : ((cyc.i + 1) % stops.length);
      var s = stops[i];
      var out = [{ bounds: s.bounds, transition: initial ? "fitBounds" : "flyToBounds",
                   options: { duration: 2.5, padding: [24, 24] } },
                 s.name, Object.assign({}, cyc, { i: i, pinned: null,
                                                  hold_until: released ? Date.now() + (cyc.overview_ms || 0) + 5000 : null })];
      if (initial) {
        // The map may mount before the page's grid has its final size; fit the
        // district once layout has settled.
        return new Promise(function (resolve) { setTimeout(function () { resolve(out); }, 700); });
      }
      return out;
    },

    // Three short beeps for a new takeover, if the browser lets the page make sound
    // (kiosk browsers: --autoplay-policy=no-user-gesture-required).
    alarmSound: function (takeover) {
      var nu = noUpdate();
      if (!takeover || takeover.id == null || window.anjianSoundFor === takeover.id) { return nu; }
      window.anjianSoundFor = takeover.id;
      try {
        var AC = window.AudioContext || window.webkitAudioContext;
        if (!AC) { return nu; }
        var ac = window.anjianAudio || (window.anjianAudio = new AC());
        if (ac.state === "suspended" && ac.resume) { ac.resume().catch(function () {}); }
        if (ac.state !== "running") { return nu; }
        [0, 0.35, 0.7].forEach(function (t0) {
          var o = ac.createOscillator(), g = ac.createGain();
          o.type = "square"; o.frequency.value = 880; g.gain.value = 0.06;
          o.connect(g); g.connect(ac.destination);
          o.start(ac.currentTime + t0); o.stop(ac.currentTime + t0 + 0.2);
        });
      } catch (e) { /* no sound: the pinned card still shows */ }
      return nu;
    },

    // The console: a beep for each critical alarm not heard before (unless muted);
    // the banner's flash is the server's (it stays until the alarm is acknowledged).
    consoleAlarm: function (alarm, muted) {
      var nu = noUpdate();
      window.anjianMuted = !!muted;
      var seen = window.anjianAlarmSeen || (window.anjianAlarmSeen = {});
      var fresh = false;
      ((alarm && alarm.ids) || []).forEach(function (id) {
        if (!seen[id]) { seen[id] = true; fresh = true; }
      });
      var ac = audioContext();
      if (ac && ac.state !== "running" && ac.resume) { ac.resume().then(showSoundControl, showSoundControl); }
      showSoundControl();
      // The alarms already waiting when the page opens beep too: nobody has heard them here.
      if (fresh && !window.anjianMuted) { beep(); }
      if (fresh && window.anjianMuted) { soundPending = false; }
      return nu;
    },

    // The wall's map view, settled: the frames of a flight (idle cycle, takeover) each
    // move the map, and every move would ask the server for heat and enterprises.  The
    // first view goes through at once; after that, only a view held for 700 ms.
    settleView: function (zoom, bounds) {
      // With the screen's scale: a 4K wall shows the district one zoom level deeper,
      // and its bins are drawn twice as large; the server picks their resolution for
      // the zoom a 1080p wall would have (dashboard/pages/wall.py, bins_zoom).
      var view = { zoom: zoom, bounds: bounds, scale: scale() };
      if (!window.anjianViewSettled) {
        window.anjianViewSettled = true;
        return view;
      }
      if (window.anjianViewTimer) { clearTimeout(window.anjianViewTimer); }
      window.anjianViewTimer = setTimeout(function () {
        window.dash_clientside.set_props("wall-view", { data: view });
      }, 700);
      return noUpdate();
    },

    // A panel's HTML (built and escaped on the server) into its box; React
    // renders the box without children and never touches what is put here.
    // The same HTML again is not written (the console's detail answers on every
    // alert change, and a rewrite replaces the buttons under the pointer); nor while
    // a pointer is pressed in the box: it is written after that click.
    fillHtml: function (markup, boxId) {
      var el = document.getElementById(boxId);
      if (!el || typeof markup !== "string") { return noUpdate(); }
      if (el.anjianHtml === markup) { return noUpdate(); }
      if (pressedIn && el.contains(pressedIn)) {
        el.anjianPending = markup;
        return noUpdate();
      }
      el.anjianHtml = markup;
      el.innerHTML = markup;
      return noUpdate();
    },
    // The heat legend's ramp follows the heat mode shown.
    heatLegend: function (mode) {
      return "aj-heat-ramp aj-heat-" + (mode === "gaps" ? "gaps" : "activity");
    },
    clock: function () {
      return shanghai ? shanghai.format(new Date()) : new Date().toISOString().slice(0, 19).replace("T", " ");
    },

    // Replay: advance the position while playing; the slider value is seconds since the day's first fix.
    replayTick: function (n, playing, speed, value, track) {
      var nu = noUpdate();
      if (!playing || !track || !track.t || !track.t.length) { return nu; }
      var end = track.t[track.t.length - 1] - track.t[0];
      var step = (Number(speed) || 1) * 0.25; // the timer runs every 250 ms
      var v = (Number(value) || 0) + step;
      return v >= end ? end : v;
    },

    // Replay: marker position and follow mode for a slider value.
    replayPosition: function (value, follow, track) {
      var nu = noUpdate();
      if (!track || !track.t || !track.t.length) { return [nu, nu, ""]; }
      var t = track.t[0] + (Number(value) || 0);
      var lo = 0, hi = track.t.length - 1;
      while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (track.t[mid] <= t) { lo = mid; } else { hi = mid - 1; } }
      var i = lo, pos = [track.lat[i], track.lon[i]];
      if (i < track.t.length - 1 && track.t[i + 1] > track.t[i]) {
        var f = (t - track.t[i]) / (track.t[i + 1] - track.t[i]);
        pos = [track.lat[i] + f * (track.lat[i + 1] - track.lat[i]), track.lon[i] + f * (track.lon[i + 1] - track.lon[i])];
      }
      var when = "";
      if (shanghai) { when = shanghai.format(new Date(t * 1000)).slice(11); }
      var view = (follow && follow.length) ? { center: pos, transition: "panTo" } : nu;
      return [pos, view, when];
    }
  };

  window.dash_clientside = Object.assign({}, window.dash_clientside, { anjian: clientside });
})();
