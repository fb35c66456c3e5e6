
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("audiodb-data").textContent);
  var TYPES = {f4: Float32Array, i4: Int32Array, u2: Uint16Array, u4: Uint32Array};
  function decode(a) {
    var bin = atob(a.b), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TYPES[a.t](bytes.buffer);
  }
  // Names are data: they go into the page with textContent, and into Plotly's
  // (HTML-like) labels escaped.
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  var NO_CLUSTER = -2147483648;
  var n = D.n, names = D.names, K = D.k;
  var X = decode(D.x), Y = decode(D.y), dur = decode(D.duration), folderOf = decode(D.folder_index);
  var nbrs = decode(D.neighbours);
  // A map of moments (segments): each point is a window of its file, played from start to end.
  var M = D.moments, mStart = M ? decode(M.start_ms) : null, mEnd = M ? decode(M.end_ms) : null;
  function secs(ms) {  // 12500 -> "12.5", 12000 -> "12.0", 12345 -> "12.345"
    var t = (ms / 1000).toFixed(3).replace(/0+$/, "");
    return t.charAt(t.length - 1) === "." ? t + "0" : t;
  }
  function spanText(i) { return secs(mStart[i]) + "–" + secs(mEnd[i]) + " s"; }
  var clusters = {};
  Object.keys(D.clusters).forEach(function (m) { clusters[m] = decode(D.clusters[m]); });

  document.getElementById("title").textContent = D.title;
  var notesEl = document.getElementById("notes");
  D.notes.forEach(function (t) { notesEl.appendChild(el("li", t)); });

  function path(i) {
    var f = D.folders[folderOf[i]];
    return (f.charAt(f.length - 1) === "/" ? f : f + "/") + names[i];
  }
  function fileUrl(i) { return D.folder_urls[folderOf[i]] + encodeURIComponent(names[i]); }
  function clusterText(c) {
    return c === NO_CLUSTER ? "not clustered" : c === -1 ? "noise (-1)" : String(c);
  }
  function durationText(i) {
    if (M) return "at " + spanText(i);
    return isNaN(dur[i]) ? "?" : dur[i].toFixed(1) + " s";
  }
  function infoLines(i) {
    var lines = [M ? "at " + spanText(i) + " (" + M.segmentation + ")" : "duration: " + durationText(i)];
    Object.keys(clusters).forEach(function (m) {
      lines.push(D.cluster_labels[m] + " cluster: " + clusterText(clusters[m][i]));
    });
    if (D.color.hover) lines.push(D.color.title + ": " + D.color.hover[i]);
    return lines;
  }
  function hoverText(i) {
    var title = D.titles && D.titles[i];
    var head = title ? "<b>" + esc(title) + "</b><br>" + esc(names[i]) : "<b>" + esc(names[i]) + "</b>";
    return head + "<br>" + infoLines(i).map(esc).join("<br>");
  }

  function webgl() {
    try {
      var c = document.createElement("canvas");
      return !!(window.WebGLRenderingContext && (c.getContext("webgl") || c.getContext("experimental-webgl")));
    } catch (e) { return false; }
  }
  var TYPE = webgl() ? "scattergl" : "scatter";
  var size = n <= 1000 ? 9 : n <= 10000 ? 6 : 4;
  var opacity = n <= 10000 ? 0.85 : 0.7;

  // One trace per colour (discrete) or one coloured trace (continuous); members[t] maps a
  // trace's point number back to the track.
  var traces = [], members = [];
  function addTrace(idx, props) {
    var xs = new Float32Array(idx.length), ys = new Float32Array(idx.length), text = new Array(idx.length);
    for (var j = 0; j < idx.length; j++) { xs[j] = X[idx[j]]; ys[j] = Y[idx[j]]; text[j] = hoverText(idx[j]); }
    var t = {type: TYPE, mode: "markers", x: xs, y: ys, text: text,
             hovertemplate: "%{text}<extra></extra>", marker: {size: size, opacity: opacity}};
    Object.keys(props).forEach(function (key) { t[key] = props[key]; });
    traces.push(t);
    members.push(idx);
  }
  var color = D.color;
  if (color.kind === "discrete") {
    var codes = decode(color.codes), groups = color.categories.map(function () { return []; });
    for (var i = 0; i < n; i++) groups[codes[i]].push(i);
    color.categories.forEach(function (cat, c) {
      if (!groups[c].length) return;
      addTrace(Int32Array.from(groups[c]), {name: esc(cat.name),
        marker: {size: size, opacity: opacity, color: cat.color}});
    });
  } else {
    var values = decode(color.values), have = [], none = [];
    for (var i2 = 0; i2 < n; i2++) (isNaN(values[i2]) ? none : have).push(i2);
    var colorbar = {title: {text: esc(color.title)}};
    if (color.ticks) { colorbar.tickvals = color.ticks.vals; colorbar.ticktext = color.ticks.text.map(esc); }
    if (have.length) addTrace(Int32Array.from(have), {name: esc(color.title), showlegend: false,
      marker: {size: size, opacity: opacity, color: Float32Array.from(have, function (i) { return values[i]; }),
               colorscale: "Viridis", showscale: true, colorbar: colorbar}});
    if (none.length) addTrace(Int32Array.from(none), {name: "(none)",
      marker: {size: size, opacity: opacity, color: "#c5c9d0"}});
  }

  var layout = {
    xaxis: {title: {text: esc(D.axes[0])}, zeroline: false},
    yaxis: {title: {text: esc(D.axes[1])}, zeroline: false},
    plot_bgcolor: D.plot_bgcolor,
    legend: {title: {text: color.kind === "discrete" ? esc(color.title) : ""}, itemsizing: "constant"},
    hovermode: "closest",
    margin: {l: 60, r: 20, t: 36, b: 50},
    uirevision: "keep"
  };
  var gd = document.getElementById("plot");
  var player = document.getElementById("player");

  // Highlights (search matches, the selected track and its neighbours) are drawn on an SVG
  // layer over the plot, not as Plotly traces: changing a trace makes Plotly recompute every
  // trace, about a second at 50,000 points; this layer redraws in a few milliseconds.
  var SVG = "http://www.w3.org/2000/svg", layer = document.getElementById("highlights");
  var MAX_DRAWN_MATCHES = 5000;
  var matched = [], selected = -1;
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (a) { e.setAttribute(a, attrs[a]); });
    return e;
  }
  function drawHighlights(ev) {
    layer.textContent = "";
    var drag = gd.querySelector(".nsewdrag");
    if (!drag) return;
    var box = drag.getBoundingClientRect(), origin = layer.getBoundingClientRect();
    var xr = gd.layout.xaxis.range, yr = gd.layout.yaxis.range;
    if (ev) {  // while zooming or panning the layout lags behind the event
      if (ev["xaxis.range[0]"] !== undefined) xr = [ev["xaxis.range[0]"], ev["xaxis.range[1]"]];
      if (ev["yaxis.range[0]"] !== undefined) yr = [ev["yaxis.range[0]"], ev["yaxis.range[1]"]];
    }
    if (!xr || !yr) return;
    var area = svg("svg", {x: box.left - origin.left, y: box.top - origin.top, width: box.width, height: box.height});
    function px(i) {
      return [(X[i] - xr[0]) / (xr[1] - xr[0]) * box.width, (1 - (Y[i] - yr[0]) / (yr[1] - yr[0])) * box.height];
    }
    for (var j = 0; j < matched.length && j < MAX_DRAWN_MATCHES; j++) {
      var p = px(matched[j]);
      area.appendChild(svg("circle", {"class": "match", cx: p[0], cy: p[1], r: size / 2 + 5}));
    }
    if (selected >= 0) {
      var s = px(selected);
      for (var k = 0; k < K; k++) {
        var q = px(nbrs[selected * K + k]);
        area.appendChild(svg("line", {x1: s[0], y1: s[1], x2: q[0], y2: q[1]}));
        area.appendChild(svg("circle", {"class": "neighbour", cx: q[0], cy: q[1], r: size / 2 + 3}));
      }
      area.appendChild(svg("circle", {"class": "selected", cx: s[0], cy: s[1], r: size / 2 + 6}));
    }
    layer.appendChild(area);
  }

  function shownName(i) {
    if (M) return names[i] + " @ " + spanText(i);
    return (D.titles && D.titles[i]) || names[i];
  }
  function trackButton(i, onclick) {
    var b = el("button", shownName(i), "track");
    b.type = "button";
    b.title = path(i);
    b.addEventListener("click", function () { onclick(i); });
    return b;
  }
  function select(i, play) {
    selected = i;
    var name = document.getElementById("now-name");
    name.textContent = shownName(i);
    name.className = "name";
    document.getElementById("now-info").textContent = infoLines(i).join(" · ");
    document.getElementById("now-path").textContent = path(i);
    player.preload = "metadata";
    if (M) {
      // The moment only: a media fragment starts it there; the page pauses it at the end (and
      // seeks, for a browser that ignores the fragment).
      stopAt = mEnd[i] / 1000;
      startAt = mStart[i] / 1000;
      player.src = fileUrl(i) + "#t=" + startAt + "," + stopAt;
      player.dataset.start = String(startAt);
      player.dataset.end = String(stopAt);
    } else {
      player.src = fileUrl(i);
    }
    player.dataset.track = String(i);
    if (play) { var p = player.play(); if (p && p.catch) p.catch(function () {}); }
    var list = document.getElementById("neighbours");
    list.textContent = "";
    for (var j = 0; j < K; j++) {
      var nb = nbrs[i * K + j], li = el("li");
      li.appendChild(trackButton(nb, function (t) { select(t, true); }));
      li.appendChild(el("span", " " + durationText(nb), "dim"));
      list.appendChild(li);
    }
    drawHighlights();
  }

  var startAt = null, stopAt = null;
  if (M) {
    player.addEventListener("loadedmetadata", function () {
      if (startAt != null && Math.abs(player.currentTime - startAt) > 0.05) player.currentTime = startAt;
    });
    player.addEventListener("timeupdate", function () {
      if (stopAt != null && player.currentTime >= stopAt && !player.paused) player.pause();
    });
    player.addEventListener("play", function () {  // played again after the end: from the start
      if (stopAt != null && player.currentTime >= stopAt - 0.01) player.currentTime = startAt;
    });
  }

  var lower = null;
  function search(q) {
    q = q.trim().toLowerCase();
    var list = document.getElementById("matches"), count = document.getElementById("search-count");
    list.textContent = "";
    matched = [];
    if (q) {
      if (!lower) lower = names.map(function (s) { return s.toLowerCase(); });
      for (var i = 0; i < n; i++) if (lower[i].indexOf(q) !== -1) matched.push(i);
      var unit = M ? ["1 moment", " moments"] : ["1 track", " tracks"];
      count.textContent = (matched.length === 1 ? unit[0] : matched.length + unit[1]) +
        (matched.length > 50 ? " (first 50 listed)" : "") +
        (matched.length > MAX_DRAWN_MATCHES ? "; the first " + MAX_DRAWN_MATCHES + " ringed" : "");
      matched.slice(0, 50).forEach(function (i) {
        var li = el("li");
        li.appendChild(trackButton(i, function (t) { select(t, true); }));
        list.appendChild(li);
      });
    } else {
      count.textContent = "";
    }
    drawHighlights();
    return matched;
  }
  var box = document.getElementById("search"), timer = null;
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { search(box.value); }, n > 10000 ? 150 : 0);
  });
  box.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") {
      clearTimeout(timer);
      var found = search(box.value);
      if (found.length) select(found[0], true);
    }
  });

  Plotly.newPlot(gd, traces, layout, {responsive: true, displaylogo: false, scrollZoom: true}).then(function () {
    gd.on("plotly_click", function (ev) {
      var p = ev && ev.points && ev.points[0];
      if (!p) return;
      var idx = members[p.curveNumber];
      if (idx && p.pointNumber < idx.length) select(idx[p.pointNumber], true);
    });
    gd.on("plotly_relayouting", drawHighlights);
    gd.on("plotly_relayout", function () { drawHighlights(); });
    gd.on("plotly_afterplot", function () { drawHighlights(); });
    window.addEventListener("resize", function () { drawHighlights(); });
    var drawn = 0;
    for (var t = 0; t < traces.length; t++) drawn += gd._fullData[t].x.length;
    var status = {points: drawn, tracks: n, traces: traces.length, renderer: TYPE};
    document.getElementById("audiodb-status").textContent = JSON.stringify(status);
    document.body.dataset.ready = "1";
  });
  window.audiodbMap = {select: select, search: search, members: members, fileUrl: fileUrl, gd: gd};
})();
