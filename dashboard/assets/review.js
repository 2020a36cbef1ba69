/*
 * The remote-review page's player (dashboard/pages/review.py, docs/review.md).
 *
 * window.dash_clientside.review.attach  plays the visit's stream in its <video>:
 *   an HLS playlist through hls.js, loaded on demand from this app
 *   (/assets/vendor/hls.js/hls.min.js, never from the internet), or natively where
 *   the browser plays HLS itself (Safari); a recording file directly.
 * window.dash_clientside.review.stamp   the player's current time when a comment
 *   is posted: {n, at_s, stream_id}, the input of the page's server callback.
 */
(function () {
  "use strict";

  var HLS_SRC = "/assets/vendor/hls.js/hls.min.js";
  var loading = null;
  var players = {}; // video id -> Hls instance

  function loadHls() {
    if (window.Hls) return Promise.resolve(window.Hls);
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = HLS_SRC;
        s.async = true;
        s.onload = function () { resolve(window.Hls); };
        s.onerror = function () { loading = null; reject(new Error("hls.js did not load")); };
        document.head.appendChild(s);
      });
    }
    return loading;
  }

  function say(text) {
    window.dash_clientside.set_props("review-player-status", { children: text });
  }

  function play(video, source) {
    var texts = source.texts || {};
    var started = false;
    video.addEventListener("playing", function () {
      if (!started) { started = true; say(texts.playing || ""); }
    });
    var p = video.play();
    if (p && p.catch) p.catch(function () { /* autoplay refused: the controls are there */ });
  }

  function attachHls(video, source) {
    var texts = source.texts || {};
    if (video.canPlayType("application/vnd.apple.mpegurl") && !window.MediaSource) {
      video.src = source.url;
      play(video, source);
      return;
    }
    loadHls().then(function (Hls) {
      if (!Hls || !Hls.isSupported()) { say(texts.error || ""); return; }
      var old = players[video.id];
      if (old) old.destroy();
      var hls = new Hls({ lowLatencyMode: true, backBufferLength: 90 });
      players[video.id] = hls;
      hls.on(Hls.Events.ERROR, function (_e, data) {
        if (!data.fatal) return;
        if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
          hls.startLoad(); // a live edge not there yet, a camera on a weak link: retry
        } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
        } else {
          say(texts.error || "");
          hls.destroy();
          delete players[video.id];
        }
      });
      hls.on(Hls.Events.MANIFEST_PARSED, function () { play(video, source); });
      hls.loadSource(source.url);
      hls.attachMedia(video);
    }, function () { say(texts.error || ""); });
  }

  var review = {
    attach: function (source, videoId) {
      if (!source || !source.url) return "";
      var tries = 0;
      (function go() {
        var video = document.getElementById(videoId);
        if (!video) { if (++tries < 50) setTimeout(go, 100); return; }
        if (source.kind === "hls") {
          attachHls(video, source);
        } else {
          video.src = source.url;
          play(video, source);
        }
      })();
      return (source.texts || {}).loading || "";
    },
    stamp: function (n, videoId, source) {
      if (!n) return window.dash_clientside.no_update;
      var video = document.getElementById(videoId);
      var at = video && isFinite(video.currentTime) ? video.currentTime : 0;
      return { n: n, at_s: Math.round(at * 1000) / 1000, stream_id: source ? source.id : null };
    }
  };

  window.dash_clientside = Object.assign({}, window.dash_clientside, { review: review });
})();
