// pose_fast live page: plain JS, no build step.
(function () {
  "use strict";
  var initial = JSON.parse(document.getElementById("initial").textContent);
  var img = document.getElementById("stream");
  var notice = document.getElementById("notice");
  var noticeText = document.getElementById("notice-text");
  var noticeDetail = document.getElementById("notice-detail");
  var noticeAction = document.getElementById("notice-action");
  var noticeAlt = document.getElementById("notice-alt");
  var spinner = document.getElementById("spinner");
  var caption = document.getElementById("caption");
  var deviceSelect = document.getElementById("device");
  var sourceHint = document.getElementById("source-hint");
  var liveDot = document.getElementById("live-dot");
  var buttons = Array.prototype.slice.call(document.querySelectorAll("[data-source]"));

  var state = {
    sources: initial.sources || {},
    source: initial.source,
    device: initial.device,
    defaultSource: null,  // the server's DEFAULT_SOURCE, from /sources
    token: 0,          // increases on every switch: late answers for an older choice are ignored
    showing: false,    // the stream image is on screen
    waiting: false     // a camera is down: the page resumes by itself once /stats says it runs again
  };

  function query(extra) {
    var q = "source=" + encodeURIComponent(state.source) + "&device-name=" + encodeURIComponent(state.device);
    return extra ? q + "&" + extra : q;
  }

  function getJSON(url) {
    return fetch(url, {cache: "no-store"}).then(function (r) {
      return r.json().catch(function () { return {error: "HTTP " + r.status}; })
        .then(function (body) { body._status = r.status; return body; });
    });
  }

  function setAction(button, action) {
    button.hidden = !action;
    if (action) {
      button.textContent = action.label;
      button.onclick = action.run;
    } else {
      button.onclick = null;
    }
  }

  function showNotice(text, detail, busy, action, alt) {
    notice.hidden = false;
    notice.className = "notice" + (busy ? "" : " problem");
    noticeText.textContent = text;
    noticeDetail.textContent = detail || "";
    spinner.hidden = !busy;
    setAction(noticeAction, action);
    setAction(noticeAlt, alt);
  }

  function hideStream() {
    state.showing = false;
    img.hidden = true;
    img.onload = img.onerror = null;
    img.removeAttribute("src");   // closes the MJPEG connection: the server unsubscribes at once
    liveDot.className = "dot";
  }

  // -- sources ---------------------------------------------------------------------------------------------------
  function isCamera(source) {
    var info = state.sources[source];
    return !!info && info.kind === "camera";
  }

  function cameras() {
    return Object.keys(state.sources).filter(isCamera);
  }

  function demoName() {
    var names = Object.keys(state.sources);
    for (var i = 0; i < names.length; i++) {
      if (state.sources[names[i]].kind === "demo") { return names[i]; }
    }
    return null;
  }

  function label(source) {
    var info = state.sources[source];
    if (info && info.kind === "demo") { return "the demo video" + (info.label ? " (" + info.label + ")" : ""); }
    if (info && info.kind === "camera") { return "camera " + source; }
    return source;
  }

  function capital(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function sentence(message) {
    var text = (message || "").replace(/^no camera on the server: /, "");
    if (!text) { return ""; }
    return capital(text) + (/[.!]$/.test(text) ? "" : ".");
  }

  // a camera that cannot show frames now (starting is not a problem: it will run soon)
  function cameraDown(info) {
    return !!info && info.kind === "camera" && info.available === false && info.state !== "starting";
  }

  function demoAction() {
    var demo = demoName();
    if (!demo || state.source === demo || state.sources[demo].available === false) { return null; }
    return {label: "Watch the demo video", run: function () { choose(demo); }};
  }

  function tryAgain() {
    return {label: "Try again", run: function () { start(); }};
  }

  function markButtons() {
    buttons.forEach(function (b) {
      var name = b.getAttribute("data-source");
      var on = name === state.source;
      var info = state.sources[name];
      b.className = on ? "active" : "";
      b.setAttribute("aria-checked", on ? "true" : "false");
      var down = info && (info.kind === "camera" ? cameraDown(info) : info.available === false);
      b.classList.toggle("unavailable", !!down);
      if (info) {
        var title = info.kind === "camera" ? "camera " + name + ": " + (info.state || "unknown") : label(name);
        if (down && info.error) { title += " (" + info.error + ")"; }
        b.title = title;
      }
    });
  }

  function updateUrl() {
    var url = location.pathname + "?" + query();
    history.replaceState(null, "", url);
  }

  // -- showing a source ------------------------------------------------------------------------------------------
  function start(retry) {
    var token = ++state.token;
    state.waiting = false;
    hideStream();
    markButtons();
    updateUrl();
    if (!state.source) {
      showNotice("No video source on this server", "Start it with --demo-video FILE or --camera NAME=SPEC.", false);
      return;
    }
    var verb = isCamera(state.source) ? "Connecting to " : "Starting ";
    showNotice(verb + label(state.source) + " on " + state.device + "…",
               "The first start compiles the model for the device; later ones use the cache.", true);
    caption.textContent = label(state.source) + " · " + state.device;
    img.onload = function () {
      if (token !== state.token) { return; }
      if (!state.showing) {
        state.showing = true;
        img.hidden = false;
        notice.hidden = true;
        liveDot.className = "dot live";
      }
    };
    img.onerror = function () {
      if (token !== state.token) { return; }
      hideStream();
      explainFailure(token, !!retry);
    };
    img.src = "/video_feed?" + query("t=" + Date.now());
  }

  // The camera's stream is not running: say why, offer to try again and the demo; resume once it is back.
  function showCameraDown(s) {
    var name = state.source;
    var info = state.sources[name];
    if (info) {
      info.available = false;
      info.state = s.state === "running" ? "reconnecting" : (s.state || "reconnecting");
      info.error = s.error || info.error;
    }
    markButtons();
    var title = "Camera " + name + (info && info.state === "stopped" ? " is not running" : " is reconnecting");
    var detail = sentence(s.error || (info && info.error) || "its stream is lost");
    detail += (detail ? " " : "") + "The server keeps retrying it (and records its events once it is back); " +
              "this page resumes by itself.";
    showNotice(title, detail, false, tryAgain(), demoAction());
    caption.textContent = label(name) + " · " + state.device;
    state.waiting = true;
  }

  function explainFailure(token, retried) {
    // The stream request failed (the source or the device could not start): ask the server why.
    getJSON("/stats?" + query()).then(function (s) {
      if (token !== state.token) { return; }
      var camera = isCamera(state.source);
      if (camera && s._status === 200 && s.state === "running" && s.viewers > 0 && s.device &&
          s.device !== state.device) {
        // 409: another viewer watches this camera on another device (a camera runs on one device at a time)
        if (!retried) {   // maybe our own previous connection, not closed on the server yet: once more, shortly
          setTimeout(function () { if (token === state.token) { start(true); } }, 1000);
          return;
        }
        var other = s.device;
        var watchThere = null;
        if (deviceSelect && Array.prototype.some.call(deviceSelect.options, function (o) { return o.value === other; })) {
          watchThere = {label: "Watch it on " + other, run: function () {
            deviceSelect.value = other;
            state.device = other;
            start();
          }};
        }
        showNotice("Camera " + state.source + " is being watched on " + other,
                   "Another viewer watches it on " + other + ", and a camera runs on one device at a time: watch it " +
                   "on " + other + ", or choose " + state.device + " again once nobody else watches it.", false,
                   watchThere || tryAgain(), watchThere ? tryAgain() : demoAction());
        return;
      }
      if (camera && s._status === 200 && s.state !== "running" && s.state !== "starting") {
        showCameraDown(s);
        return;
      }
      var message = s.error || "The stream stopped.";
      if (!s.error && s.watching >= s.max_viewers) {
        message = "Too many viewers on this server (" + s.watching + "): close another tab and try again.";
      }
      showNotice("Could not show " + label(state.source) + " on " + state.device, message, false,
                 tryAgain(), camera ? demoAction() : null);
    }).catch(function () {
      if (token === state.token) {
        showNotice("The server does not answer", "Check that pose-fast web is still running.", false, tryAgain());
      }
    });
  }

  function choose(source) {
    if (source === state.source && state.showing) { return; }
    state.source = source;
    start();
  }

  buttons.forEach(function (b) {
    b.addEventListener("click", function () { choose(b.getAttribute("data-source")); });
  });
  if (deviceSelect) deviceSelect.addEventListener("change", function () {
    state.device = deviceSelect.value;
    start();
  });

  // -- live numbers ---------------------------------------------------------------------------------------------
  function setText(id, text) { document.getElementById(id).textContent = text; }

  function pollStats() {
    if (!state.source) { return; }
    var token = state.token;
    getJSON("/stats?" + query()).then(function (s) {
      if (token !== state.token || s._status !== 200) { return; }
      var running = s.state === "running";
      setText("stat-fps", running ? s.fps.toFixed(1) : "–");
      setText("stat-inference", running ? Math.round(s.inference_ms) + " ms" : "–");
      setText("stat-people", running ? String(s.people) : "–");
      setText("stat-viewers", String(s.viewers));
      var parts = [s.state === "reconnecting" && s.error ? "reconnecting: " + s.error : s.state];
      if (s.always_on) { parts.push(running ? "always on: recording while nobody watches" : "always on: retried until it is back"); }
      if (running && s.last_frame_s > 2) { parts.push("last frame " + Math.round(s.last_frame_s) + " s ago"); }
      if (s.reconnects) { parts.push("reconnected " + s.reconnects + (s.reconnects === 1 ? " time" : " times")); }
      if (s.engine) { parts.push(s.engine); }
      if (s.engine_dropped) { parts.push(s.engine_dropped + " frames dropped by the engine"); }
      if (s.events_error) { parts.push("events not recorded: " + s.events_error); }
      setText("stat-state", parts.join(" · "));
      var info = state.sources[state.source];
      if (info && info.kind === "camera") {   // keep the button's mark current
        info.state = s.state;
        info.available = running;
        info.error = s.error;
        markButtons();
      }
      if (state.waiting && running) {   // the camera is back
        start();
      } else if (state.waiting && s.error && noticeDetail.textContent.indexOf(sentence(s.error)) !== 0) {
        showCameraDown(s);   // a new reason
      } else if (state.showing && isCamera(state.source) && (s.state === "reconnecting" || s.state === "stopped")) {
        hideStream();
        showCameraDown(s);
      } else if (s.state === "failed" && state.showing) {
        hideStream();
        showNotice("The stream stopped", s.error, false, tryAgain());
      }
    }).catch(function () {});
  }

  function refreshSources() {
    return getJSON("/sources").then(function (s) {
      if (!s.sources) { return s; }
      state.sources = s.sources;
      state.defaultSource = s.default_source || null;
      markButtons();
      return s;
    });
  }

  // -- latest events from /detections ---------------------------------------------------------------------------
  var eventsBody = document.getElementById("events");
  var COLUMNS = 5;
  var shownEvents = null;   // what the table shows now: it is rebuilt only when that changes
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (text !== null && text !== undefined) { td.textContent = text; }
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }
  function thumbnail(e) {
    var td = document.createElement("td");
    td.className = "thumb";
    if (e.snapshot) {
      var a = document.createElement("a");
      a.href = e.snapshot;
      a.target = "_blank";
      a.rel = "noopener";
      a.title = "the frame of this event (opens in a new tab)";
      var picture = document.createElement("img");
      picture.loading = "lazy";
      picture.width = 64;
      picture.alt = e.kind + " #" + e.person_id;
      picture.src = e.snapshot;
      a.appendChild(picture);
      td.appendChild(a);
    }
    return td;
  }
  function eventDetail(e) {
    if (e.kind === "exit" && e.reason && e.reason !== "left") { return "(" + e.reason + ")"; }
    if ((e.kind === "zone_enter" || e.kind === "zone_exit") && e.zone) { return "(" + e.zone + ")"; }
    if (e.kind === "line_cross" && (e.zone || e.direction)) {
      return "(" + [e.zone, e.direction].filter(Boolean).join(" ") + ")";
    }
    return "";
  }
  function eventRow(e) {
    var tr = document.createElement("tr");
    tr.className = e.kind;
    tr.appendChild(thumbnail(e));
    var time = (e.timestamp || "").replace("T", " ").replace(/\.\d+Z$/, "").replace(/Z$/, "").slice(11);
    cell(tr, time, "time");
    var kind = cell(tr, (e.kind || "").replace(/_/g, " "), "kind");
    var detail = eventDetail(e);
    if (detail) {
      var small = document.createElement("small");
      small.textContent = " " + detail;
      kind.appendChild(small);
    }
    cell(tr, "#" + e.person_id, "person");
    cell(tr, e.source, "source");
    var title = [e.timestamp, e.kind + (detail ? " " + detail : "") + " #" + e.person_id, e.source, e.device,
                 "frame " + e.frame_index, e.people_count + " in view"];
    if (e.dwell_s !== null && e.dwell_s !== undefined) { title.push(Math.round(e.dwell_s) + " s in view"); }
    tr.title = title.join(" · ");
    return tr;
  }
  function showEvents(list, message, detail) {
    var key = message ? "m:" + message + "|" + (detail || "") :
      "e:" + list.map(function (e) { return e.id + ":" + (e.snapshot || ""); }).join(",");
    if (key === shownEvents) { return; }   // unchanged: keep the rows (and their loaded thumbnails)
    shownEvents = key;
    eventsBody.textContent = "";
    if (message) {
      var tr = document.createElement("tr");
      tr.className = "hint";
      var td = cell(tr, message, "wrap");
      td.colSpan = COLUMNS;
      if (detail) { tr.title = detail; }
      eventsBody.appendChild(tr);
      return;
    }
    list.slice().reverse().slice(0, 8).forEach(function (e) {
      eventsBody.appendChild(eventRow(e));
    });
  }
  function pollEvents() {
    getJSON("/detections?per-page=8").then(function (first) {
      if (first._status === 503) {   // no database yet: it is created when the first stream starts
        showEvents([], "no events yet: people entering and leaving appear here", first.error);
        return null;
      }
      if (first._status !== 200) {
        showEvents([], "events unavailable", first.error);
        return null;
      }
      setText("events-count", first.pagination.count ? "(" + first.pagination.count + " in all)" : "");
      var pages = first.pagination.pages;
      if (!first.pagination.count) { showEvents([], "no events yet: people entering and leaving appear here"); return null; }
      if (pages <= 1) { showEvents(first.results); return null; }
      return getJSON("/detections?per-page=8&page=" + pages).then(function (last) {
        var list = (last.results || []);
        if (list.length < 8 && pages > 1) {
          return getJSON("/detections?per-page=8&page=" + (pages - 1)).then(function (prev) {
            showEvents((prev.results || []).concat(list));
          });
        }
        showEvents(list);
      });
    }).catch(function () { showEvents([], "events unavailable"); });
  }

  // -- go --------------------------------------------------------------------------------------------------------
  // The server's default source if it has one; else the first camera running (or still starting), else the demo.
  function pickDefault() {
    var names = Object.keys(state.sources);
    if (state.defaultSource && state.sources[state.defaultSource]) { return state.defaultSource; }
    var cams = cameras();
    var i;
    for (i = 0; i < cams.length; i++) {
      if (state.sources[cams[i]].available !== false) { return cams[i]; }
    }
    for (i = 0; i < cams.length; i++) {
      if (state.sources[cams[i]].state === "starting") { return cams[i]; }
    }
    var demo = demoName();
    if (demo && state.sources[demo].available !== false) { return demo; }
    return cams[0] || names[0] || null;
  }

  function explainDefault() {
    var cams = cameras();
    var demo = demoName();
    if (state.source !== demo) { return; }
    if (!cams.length) {
      sourceHint.textContent = "No camera on this server: showing the demo video.";
      return;
    }
    var down = cams.filter(function (name) { return cameraDown(state.sources[name]); });
    if (down.length === cams.length) {
      sourceHint.textContent = (cams.length === 1 ? "Camera " + cams[0] + " is not running now"
                                                  : "No camera is running now") + ": showing the demo video.";
    }
  }

  refreshSources().then(function () {
    if (!state.source) {
      state.source = pickDefault();
      explainDefault();
    }
    start();
  }).catch(function () {
    state.source = state.source || pickDefault();
    start();
  });
  setInterval(pollStats, 1000);
  setInterval(pollEvents, 3000);
  setInterval(function () { refreshSources().catch(function () {}); }, 5000);
  pollEvents();
})();
