/* A small canvas line chart (no library): drawPanel(ctx, box, series, opts) draws time series in a box. */
"use strict";
const Chart = (() => {
  const PALETTE = ["#58a6ff", "#f0883e", "#3fb950", "#d2a8ff", "#ff7b72", "#e3b341", "#39c5cf", "#8b949e"];

  function bounds(series, opts) {
    let t0 = Infinity, t1 = -Infinity, v0 = Infinity, v1 = -Infinity;
    for (const s of series) for (const [t, v] of s.points) {
      t0 = Math.min(t0, t); t1 = Math.max(t1, t); v0 = Math.min(v0, v); v1 = Math.max(v1, v);
    }
    if (t0 === Infinity) { t1 = Date.now(); t0 = t1 - 60000; v0 = 0; v1 = 1; }
    if (opts.yMin !== undefined) v0 = opts.yMin;
    if (opts.yMax !== undefined) v1 = opts.yMax;
    if (!(v1 > v0)) { const pad = Math.abs(v0) * 0.01 || 1; v0 -= pad; v1 += pad; }
    if (!(t1 > t0)) { t0 -= 1000; t1 += 1000; }
    return { t0, t1, v0, v1 };
  }

  function axes(ctx, box, b, opts) {
    ctx.strokeStyle = "#2b3642"; ctx.fillStyle = "#8b98a5"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
    const fmt = opts.format || (v => v.toFixed(2));
    for (let i = 0; i <= 4; i++) {
      const v = b.v0 + (b.v1 - b.v0) * i / 4, y = box.y + box.h - box.h * i / 4;
      ctx.beginPath(); ctx.moveTo(box.x, y); ctx.lineTo(box.x + box.w, y); ctx.stroke();
      ctx.fillText(fmt(v), 4, y + 4);
    }
    const when = t => new Date(t).toISOString().slice(11, 19);
    ctx.fillText(when(b.t0), box.x, box.y + box.h + 13);
    const right = when(b.t1); ctx.fillText(right, box.x + box.w - ctx.measureText(right).width, box.y + box.h + 13);
    if (opts.label) ctx.fillText(opts.label, box.x + 4, box.y + 12);
  }

  function drawPanel(ctx, box, series, opts = {}) {
    const b = bounds(series, opts);
    axes(ctx, box, b, opts);
    const x = t => box.x + (t - b.t0) / (b.t1 - b.t0) * box.w;
    const y = v => box.y + box.h - (v - b.v0) / (b.v1 - b.v0) * box.h;
    series.forEach((s, i) => {
      if (!s.points.length) return;
      ctx.strokeStyle = s.color || PALETTE[i % PALETTE.length]; ctx.lineWidth = 2; ctx.beginPath();
      s.points.forEach(([t, v], k) => {
        if (k && s.step) ctx.lineTo(x(t), y(s.points[k - 1][1]));
        k ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v));
      });
      ctx.stroke();
      if (s.fill) { ctx.lineTo(x(s.points[s.points.length - 1][0]), y(0)); ctx.lineTo(x(s.points[0][0]), y(0));
        ctx.fillStyle = s.fill; ctx.fill(); }
      if (s.points.length === 1) { ctx.fillStyle = ctx.strokeStyle; ctx.fillRect(x(s.points[0][0]) - 2, y(s.points[0][1]) - 2, 4, 4); }
    });
  }

  function clear(canvas) {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    return ctx;
  }

  return { PALETTE, drawPanel, clear };
})();
