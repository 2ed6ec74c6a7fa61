// pose_fast live page: plain JS, no build step.
(function () {
  "use strict";
  var initial = JSON.parse(document.getElementById("initial").textContent);
  var img = document.getElementById("stream");
  var notice = document.getElementById("notice");
  var noticeText = document.getElementById("notice-text");
  var noticeDetail = document.getElementById("notice-detail");
  var noticeAction = document.getElementById("notice-action");
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
    token: 0,          // increases on every switch: late answers for an older choice are ignored
    showing: false     // the stream image is on screen
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

  function showNotice(text, detail, busy, action) {
    notice.hidden = false;
    notice.className = "notice" + (busy ? "" : " problem");
    noticeText.textContent = text;
    noticeDetail.textContent = detail || "";
    spinner.hidden = !busy;
    noticeAction.hidden = !action;
    if (action) {
      noticeAction.textContent = action.label;
      noticeAction.onclick = action.run;
    }
  }

  function hideStream() {
    state.showing = false;
    img.hidden = true;
    img.onload = img.onerror = null;
    img.removeAttribute("src");   // closes the MJPEG connection: the server unsubscribes at once
    liveDot.className = "dot";
  }

  function cameraDetail(message) {
    var text = (message || "").replace(/^no camera on the server: /, "");
    return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!]$/.test(text) ? "" : ".");
  }

  function demoAction() {
    if (!state.sources.demo || state.sources.demo.available === false) { return null; }
    return {label: "Watch the demo video", run: function () { choose("demo"); }};
  }

  function markButtons() {
    buttons.forEach(function (b) {
      var on = b.getAttribute("data-source") === state.source;
      b.className = on ? "active" : "";
      b.setAttribute("aria-checked", on ? "true" : "false");
      var info = state.sources[b.getAttribute("data-source")];
      b.classList.toggle("unavailable", !!info && info.available === false);
    });
  }

  function updateUrl() {
    var url = location.pathname + "?" + query();
    history.replaceState(null, "", url);
  }

  function start() {
    var token = ++state.token;
    hideStream();
    markButtons();
    updateUrl();
    if (!state.source) {
      showNotice("No video source on this server", "Start it with --demo-video FILE or --camera N.", false);
      return;
    }
    var info = state.sources[state.source];
    if (state.source === "camera" && info && info.available === false) {
      showNotice("No camera on this server", cameraDetail(info.error), false, demoAction());
      caption.textContent = "";
      return;
    }
    showNotice("Starting " + label(state.source) + " on " + state.device + "…",
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
      explainFailure(token);
    };
    img.src = "/video_feed?" + query("t=" + Date.now());
  }

  function explainFailure(token) {
    // The stream request failed (the source or the device could not start): ask the server why.
    getJSON("/stats?" + query()).then(function (s) {
      if (token !== state.token) { return; }
      var message = s.error || "The stream stopped.";
      if (!s.error && s.watching >= s.max_viewers) {
        message = "Too many viewers on this server (" + s.watching + "): close another tab and try again.";
      }
      if (state.source === "camera" && /camera/.test(message)) {
        state.sources.camera.available = false;
        state.sources.camera.error = message;
        markButtons();
        showNotice("No camera on this server", cameraDetail(message), false, demoAction());
      } else {
        showNotice("Could not show " + label(state.source) + " on " + state.device, message, false,
                   {label: "Try again", run: start});
      }
    }).catch(function () {
      if (token === state.token) {
        showNotice("The server does not answer", "Check that pose-fast web is still running.", false,
                   {label: "Try again", run: start});
      }
    });
  }

  function label(source) {
    var info = state.sources[source];
    if (source === "demo") { return "the demo video" + (info && info.label ? " (" + info.label + ")" : ""); }
    if (source === "camera") { return info && info.label ? info.label : "the camera"; }
    return source;
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
      var parts = [s.state];
      if (s.engine) { parts.push(s.engine); }
      if (s.engine_dropped) { parts.push(s.engine_dropped + " frames dropped by the engine"); }
      if (s.events_error) { parts.push("events not recorded: " + s.events_error); }
      setText("stat-state", parts.join(" · "));
      if (s.state === "failed" && state.showing) {
        hideStream();
        showNotice("The stream stopped", s.error, false, {label: "Try again", run: start});
      }
    }).catch(function () {});
  }

  // -- latest events from /detections ---------------------------------------------------------------------------
  var eventsBody = document.getElementById("events");
  function row(cells, cls) {
    var tr = document.createElement("tr");
    cells.forEach(function (c) {
      var td = document.createElement("td");
      td.textContent = c;
      tr.appendChild(td);
    });
    if (cls) { tr.className = cls; }
    return tr;
  }
  function showEvents(list, message, detail) {
    eventsBody.textContent = "";
    if (message) {
      var tr = row([message], "hint");
      tr.firstChild.colSpan = 4;
      tr.firstChild.className = "wrap";
      if (detail) { tr.title = detail; }
      eventsBody.appendChild(tr);
      return;
    }
    list.slice().reverse().slice(0, 8).forEach(function (e) {
      var time = (e.timestamp || "").replace("T", " ").replace(/\.\d+Z$/, "").replace(/Z$/, "").slice(11);
      var tr = row([time, e.kind, "#" + e.person_id, e.source], e.kind);
      tr.title = e.timestamp + " · " + e.kind + " #" + e.person_id + " · " + e.source + " · " + e.device +
                 " · frame " + e.frame_index + " · " + e.people_count + " in view";
      eventsBody.appendChild(tr);
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
  function pickDefault() {
    var order = ["camera", "demo"];
    for (var i = 0; i < order.length; i++) {
      var info = state.sources[order[i]];
      if (info && info.available !== false) { return order[i]; }
    }
    return Object.keys(state.sources)[0] || null;
  }

  getJSON("/sources").then(function (s) {
    if (s.sources) { state.sources = s.sources; }
    var cam = state.sources.camera;
    if (cam && cam.available === false) {
      sourceHint.textContent = "No camera found on the server.";
    }
    if (!state.source) {
      state.source = pickDefault();
      if (cam && cam.available === false && state.source === "demo") {
        sourceHint.textContent = "No camera found on the server: showing the demo video.";
      }
    }
    start();
  }).catch(function () {
    state.source = state.source || pickDefault();
    start();
  });
  setInterval(pollStats, 1000);
  setInterval(pollEvents, 3000);
  pollEvents();
})();
