// sarcodec report viewer (written here, Apache-2.0 with the rest of sarcodec). No dependencies, no network:
// tiles are scripts next to the page (SARV.tile calls), inflated with DecompressionStream and coloured here.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("sarv-data").textContent);
  const TILE = DATA.tile;
  const $ = (id) => document.getElementById(id);
  const pending = new Map();   // tile key -> {resolve, reject}
  const tiles = new Map();     // tile key -> Promise<{w, h, codes}>
  const ready = new Map();     // tile key -> {w, h, codes} once decoded
  const painted = new Map();   // colour key -> canvas
  let inflight = 0;

  const state = {
    image: 0, point: 0, mode: "side", scale: 1, cx: 0, cy: 0, lo: 0, hi: 1, diff: 3, diffOf: "sarc",
    swipe: 0.5, swipeA: "sarc", swipeB: "orig",
  };

  function setPending(delta) {
    inflight += delta;
    document.body.dataset.pending = String(inflight);
  }

  window.SARV = {
    tile(key, w, h, b64) {
      const p = pending.get(key);
      if (!p) return;
      pending.delete(key);
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
      new Response(stream).arrayBuffer().then(
        (buf) => p.resolve({ w: w, h: h, codes: new Uint16Array(buf) }), p.reject);
    },
    state: () => Object.assign({}, state),
    // dB of a full-resolution pixel of a layer ("orig" | "sarc" | "j2k") of the shown image and point, as the
    // tiles carry it (null where invalid): lets tests check the decoded pixels against the source
    valueAt(layer, x, y) {
      const im = img();
      const key = im.id + "/" + (layer === "orig" ? "orig" : "p" + state.point + "-" + layer) + "/0/" +
        Math.floor(y / TILE) + "_" + Math.floor(x / TILE);
      return loadTile(key).then((t) => {
        const c = t.codes[(y % TILE) * t.w + (x % TILE)];
        return c ? c / DATA.codes_per_db - DATA.db_offset : null;
      });
    },
    data: DATA,
    set(changes) {  // e.g. {image: 1, point: 0, lo: -25}: what the controls would do
      const rest = Object.assign({}, changes);
      if ("image" in rest) { selectImage(rest.image); delete rest.image; }
      Object.assign(state, rest);
      if (rest.mode) buildPanels();
      syncControls(); numbers(); render();
    },
  };

  function loadTile(key) {
    let t = tiles.get(key);
    if (t) return t;
    t = new Promise((resolve, reject) => {
      pending.set(key, { resolve: resolve, reject: reject });
      const s = document.createElement("script");
      s.src = DATA.files + "/" + key + ".js";
      s.onload = () => s.remove();
      s.onerror = () => { pending.delete(key); s.remove(); reject(new Error("missing tile " + key)); };
      document.head.appendChild(s);
    });
    setPending(1);
    t.then((v) => { ready.set(key, v); }, () => {}).finally(() => { setPending(-1); render(); });
    tiles.set(key, t);
    return t;
  }

  function img() { return DATA.images[state.image]; }

  // Colour look-up: dB code -> RGBA (little-endian Uint32). Grey for dB, blue-white-red for differences.
  let greyLut = null, greyKey = "";
  function grey() {
    const key = state.lo + "|" + state.hi;
    if (greyKey === key) return greyLut;
    greyLut = new Uint32Array(65536);
    const span = Math.max(state.hi - state.lo, 1e-6);
    for (let c = 1; c < 65536; c++) {
      const db = c / DATA.codes_per_db - DATA.db_offset;
      const g = Math.round(255 * Math.min(1, Math.max(0, (db - state.lo) / span)));
      greyLut[c] = (255 << 24) | (g << 16) | (g << 8) | g;
    }
    greyKey = key;
    return greyLut;
  }
  function diverging(d) {  // d in [-1, 1] -> RGBA
    const t = Math.min(1, Math.max(-1, d));
    let r, g, b;
    if (t >= 0) { r = 255; g = Math.round(255 * (1 - t)); b = g; } else { b = 255; r = Math.round(255 * (1 + t)); g = r; }
    return (255 << 24) | (b << 16) | (g << 8) | r;
  }

  function paint(layer, z, ty, tx) {
    // layer: "orig" | "sarc" | "j2k" | "diff"; returns a canvas or null (still loading)
    const im = img();
    const name = z + "/" + ty + "_" + tx;
    const src = (l) => im.id + "/" + (l === "orig" ? "orig" : "p" + state.point + "-" + l) + "/" + name;
    const ckey = layer === "diff"
      ? src(state.diffOf) + "|diff|" + state.diff
      : src(layer) + "|" + state.lo + "|" + state.hi;
    const hit = painted.get(ckey);
    if (hit) return hit;
    const a = ready.get(src(layer === "diff" ? state.diffOf : layer));
    const o = layer === "diff" ? ready.get(src("orig")) : a;
    if (!a || !o) {
      loadTile(src(layer === "diff" ? state.diffOf : layer));
      if (layer === "diff") loadTile(src("orig"));
      return null;
    }
    const c = document.createElement("canvas");
    c.width = a.w; c.height = a.h;
    const ctx = c.getContext("2d");
    const out = ctx.createImageData(a.w, a.h);
    const px = new Uint32Array(out.data.buffer);
    if (layer === "diff") {
      const k = 1 / (state.diff * DATA.codes_per_db);
      for (let i = 0; i < px.length; i++) {
        px[i] = a.codes[i] && o.codes[i] ? diverging((a.codes[i] - o.codes[i]) * k) : 0;
      }
    } else {
      const lut = grey();
      for (let i = 0; i < px.length; i++) px[i] = lut[a.codes[i]];
    }
    ctx.putImageData(out, 0, 0);
    if (painted.size > 800) painted.clear();
    painted.set(ckey, c);
    return c;
  }

  const LABELS = { orig: "original", sarc: "sarcodec", j2k: "JPEG 2000", diff: "difference" };
  let panels = [];

  function buildPanels() {
    const box = $("panels");
    box.innerHTML = "";
    box.className = state.mode;
    const layers = state.mode === "side" ? ["orig", "sarc", "j2k", "diff"] : ["swipe"];
    panels = layers.map((layer) => {
      const div = document.createElement("div");
      div.className = "panel";
      div.dataset.layer = layer;
      const canvas = document.createElement("canvas");
      const label = document.createElement("span");
      label.className = "label";
      div.appendChild(canvas); div.appendChild(label);
      box.appendChild(div);
      attach(canvas);
      return { layer: layer, canvas: canvas, label: label };
    });
  }

  function labelOf(layer) {
    const p = img().points[state.point];
    if (layer === "diff") return "difference: " + LABELS[state.diffOf] + " \u2212 original (\u00b1" + state.diff + " dB)";
    if (layer === "orig") return "original";
    const row = p.rows[layer === "sarc" ? 0 : 1];
    const bpp = row.cells.find((c) => c.key === "bpp").text;
    return LABELS[layer] + " \u00b7 " + bpp + " bpp";
  }

  function drawLayer(ctx, layer, W, H, s) {
    const im = img();
    const levels = im.levels;
    let z = Math.floor(Math.log2(1 / s));
    z = Math.max(0, Math.min(levels.length - 1, z));
    const zooms = [levels.length - 1];
    if (z !== levels.length - 1) zooms.push(z);  // the coarsest level first, as a background while tiles load
    for (const lev of zooms) {
      const f = Math.pow(2, lev);
      const [lh, lw] = levels[lev];
      const x0 = state.cx - W / (2 * s), y0 = state.cy - H / (2 * s);
      const tx0 = Math.max(0, Math.floor(x0 / (TILE * f))), ty0 = Math.max(0, Math.floor(y0 / (TILE * f)));
      const tx1 = Math.min(Math.ceil(lw / TILE) - 1, Math.floor((x0 + W / s) / (TILE * f)));
      const ty1 = Math.min(Math.ceil(lh / TILE) - 1, Math.floor((y0 + H / s) / (TILE * f)));
      for (let ty = ty0; ty <= ty1; ty++) {
        for (let tx = tx0; tx <= tx1; tx++) {
          const c = paint(layer, lev, ty, tx);
          if (!c) continue;
          const dx = (tx * TILE * f - x0) * s, dy = (ty * TILE * f - y0) * s;
          ctx.drawImage(c, dx, dy, c.width * f * s, c.height * f * s);
        }
      }
    }
  }

  let queued = false;
  function render() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; draw(); });
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    for (const p of panels) {
      const cw = p.canvas.clientWidth, ch = p.canvas.clientHeight;
      if (p.canvas.width !== Math.round(cw * dpr)) p.canvas.width = Math.round(cw * dpr);
      if (p.canvas.height !== Math.round(ch * dpr)) p.canvas.height = Math.round(ch * dpr);
      const ctx = p.canvas.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.fillStyle = "#222630";
      ctx.fillRect(0, 0, p.canvas.width, p.canvas.height);
      const W = p.canvas.width, H = p.canvas.height, s = state.scale * dpr;
      if (p.layer === "swipe") {
        const cut = Math.round(W * state.swipe);
        ctx.save(); ctx.beginPath(); ctx.rect(0, 0, cut, H); ctx.clip();
        drawLayer(ctx, state.swipeA, W, H, s); ctx.restore();
        ctx.save(); ctx.beginPath(); ctx.rect(cut, 0, W - cut, H); ctx.clip();
        drawLayer(ctx, state.swipeB, W, H, s); ctx.restore();
        ctx.fillStyle = "#ffd54a";
        ctx.fillRect(cut - 1, 0, 2, H);
        p.label.textContent = labelOf(state.swipeA) + "  |  " + labelOf(state.swipeB);
      } else {
        drawLayer(ctx, p.layer, W, H, s);
        p.label.textContent = labelOf(p.layer);
      }
    }
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered) + 1);
  }

  function fit() {
    const im = img();
    const c = panels[0].canvas;
    state.scale = Math.min(c.clientWidth / im.width, c.clientHeight / im.height);
    state.cx = im.width / 2; state.cy = im.height / 2;
  }

  function zoomAt(factor, px, py, canvas) {
    const ns = Math.min(64, Math.max(1e-4, state.scale * factor));
    const rect = canvas.getBoundingClientRect();
    const ox = px - rect.width / 2, oy = py - rect.height / 2;  // offset of the fixed point from the centre
    state.cx += ox / state.scale - ox / ns;
    state.cy += oy / state.scale - oy / ns;
    state.scale = ns;
    render();
  }

  function attach(canvas) {
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = canvas.getBoundingClientRect();
      zoomAt(Math.pow(1.25, -e.deltaY / 100), e.clientX - r.left, e.clientY - r.top, canvas);
    }, { passive: false });
    let drag = null;
    canvas.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY }; canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      state.cx -= (e.clientX - drag.x) / state.scale;
      state.cy -= (e.clientY - drag.y) / state.scale;
      drag = { x: e.clientX, y: e.clientY };
      render();
    });
    canvas.addEventListener("pointerup", () => { drag = null; });
  }

  function cellRow(label, cells, tag) {
    const tr = document.createElement("tr");
    const th = document.createElement(tag || "td");
    th.textContent = label;
    tr.appendChild(th);
    for (const c of cells) {
      const td = document.createElement("td");
      td.dataset.key = c.key;
      td.dataset.value = String(c.value);
      td.textContent = c.text;
      tr.appendChild(td);
    }
    return tr;
  }

  function numbers() {
    const p = img().points[state.point];
    const t = $("metrics");
    t.innerHTML = "";
    const head = document.createElement("tr");
    for (const h of ["codec"].concat(DATA.columns.map((c) => c[1]))) {
      const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
    }
    t.appendChild(head);
    p.rows.forEach((r) => {
      const tr = cellRow(r.label, r.cells);
      tr.dataset.codec = r.codec;
      tr.dataset.setting = String(r.setting);
      t.appendChild(tr);
    });
    const ol = $("hardest");
    ol.innerHTML = "";
    for (const h of p.hardest) {
      const li = document.createElement("li");
      li.dataset.x = h.x; li.dataset.y = h.y;
      li.dataset.value = String(h.rmse_db);
      li.textContent = "x " + h.x + ", y " + h.y + ": sarcodec RMSE " + h.rmse_text + " dB, JPEG 2000 " + h.other_rmse_text + " dB";
      li.addEventListener("click", () => {
        const c = panels[0].canvas;
        state.scale = Math.max(1, Math.min(c.clientWidth / h.w, c.clientHeight / h.h));
        state.cx = h.x + h.w / 2; state.cy = h.y + h.h / 2;
        render();
      });
      ol.appendChild(li);
    }
  }

  function colorbar() {
    const c = $("colorbar"), ctx = c.getContext("2d");
    for (let x = 0; x < c.width; x++) {
      const g = Math.round(255 * x / (c.width - 1));
      ctx.fillStyle = "rgb(" + g + "," + g + "," + g + ")";
      ctx.fillRect(x, 0, 1, c.height);
    }
  }

  function syncControls() {
    $("image").value = String(state.image); $("point").value = String(state.point);
    $("lo").value = state.lo; $("hi").value = state.hi; $("diff").value = state.diff;
    $("diff-of").value = state.diffOf; $("swipe").value = state.swipe;
    $("swipe-a").value = state.swipeA; $("swipe-b").value = state.swipeB;
    $("mode-side").classList.toggle("on", state.mode === "side");
    $("mode-swipe").classList.toggle("on", state.mode === "swipe");
    $("viewer").className = state.mode;
  }

  function selectImage(i) {
    state.image = i;
    state.point = 0;
    const im = img();
    state.lo = im.db_lo; state.hi = im.db_hi;
    const sel = $("point");
    sel.innerHTML = "";
    im.points.forEach((p, j) => { const o = new Option(p.label, String(j)); sel.appendChild(o); });
    fit();
    syncControls();
    numbers();
    render();
  }

  function init() {
    DATA.images.forEach((im, i) => $("image").appendChild(new Option(im.name + " (" + im.group + ")", String(i))));
    for (const id of ["swipe-a", "swipe-b"]) {
      for (const l of ["orig", "sarc", "j2k", "diff"]) $(id).appendChild(new Option(LABELS[l], l));
    }
    const bd = $("bd");
    if (DATA.bd.length) {
      const head = document.createElement("tr");
      for (const h of ["group", "codec", "images", "BD-rate vs JPEG 2000 (%)", "BD-PSNR (dB)"]) {
        const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
      }
      bd.appendChild(head);
      for (const r of DATA.bd) {
        const tr = cellRow(r.group, [{ key: "codec", value: r.codec, text: r.codec },
          { key: "images", value: r.images, text: String(r.images) }].concat(r.cells));
        tr.dataset.group = r.group; tr.dataset.codec = r.codec;
        bd.appendChild(tr);
      }
    }
    $("image").addEventListener("change", (e) => selectImage(Number(e.target.value)));
    $("point").addEventListener("change", (e) => { state.point = Number(e.target.value); numbers(); render(); });
    $("mode-side").addEventListener("click", () => { state.mode = "side"; syncControls(); buildPanels(); render(); });
    $("mode-swipe").addEventListener("click", () => { state.mode = "swipe"; syncControls(); buildPanels(); render(); });
    const zoomButton = (f) => () => { const c = panels[0].canvas; zoomAt(f, c.clientWidth / 2, c.clientHeight / 2, c); };
    $("zoom-in").addEventListener("click", zoomButton(2));
    $("zoom-out").addEventListener("click", zoomButton(0.5));
    $("zoom-fit").addEventListener("click", () => { fit(); render(); });
    $("zoom-1").addEventListener("click", () => { state.scale = 1; render(); });
    const num = (id, key) => $(id).addEventListener("input", (e) => {
      const v = Number(e.target.value);
      if (Number.isFinite(v)) { state[key] = v; render(); }
    });
    num("lo", "lo"); num("hi", "hi"); num("diff", "diff"); num("swipe", "swipe");
    $("diff-of").addEventListener("change", (e) => { state.diffOf = e.target.value; render(); });
    $("swipe-a").addEventListener("change", (e) => { state.swipeA = e.target.value; render(); });
    $("swipe-b").addEventListener("change", (e) => { state.swipeB = e.target.value; render(); });
    window.addEventListener("resize", render);
    colorbar();
    buildPanels();
    if (DATA.images.length) selectImage(0);
  }

  init();
})();
