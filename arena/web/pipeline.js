// The pipeline at a glance: GET /api/v1/pipeline every few seconds; rates from successive counts.

const EVERY_MS = 2000;
const KEPT = 150; // samples in each sparkline: five minutes
const $ = (selector) => document.querySelector(selector);
const history = { published: [], consumed: [], applied: [] };
let previous = null;

function rows(table, cells) {
  $(`${table} tbody`).replaceChildren(...cells.map((values) => {
    const row = document.createElement("tr");
    for (const value of values) {
      const cell = row.insertCell();
      if (value instanceof Node) cell.append(value); else cell.textContent = value;
    }
    return row;
  }));
}

function code(text) {
  const element = document.createElement("code");
  element.textContent = text;
  return element;
}

function counts(status) {
  const partitions = Object.values(status.consumer.lagByPartition || {});
  return {
    at: performance.now(),
    published: status.outbox.published_total,
    consumed: partitions.reduce((sum, p) => sum + (p.committedOffset > 0 ? p.committedOffset : 0), 0),
    applied: status.projections.appliedTotal,
  };
}

function sparkline(canvas, values) {
  const pen = canvas.getContext("2d");
  pen.clearRect(0, 0, canvas.width, canvas.height);
  const most = Math.max(1, ...values);
  pen.strokeStyle = "#0b57d0";
  pen.beginPath();
  values.forEach((value, index) => {
    const x = (index / Math.max(1, KEPT - 1)) * canvas.width;
    const y = canvas.height - (value / most) * (canvas.height - 4) - 2;
    if (index === 0) pen.moveTo(x, y); else pen.lineTo(x, y);
  });
  pen.stroke();
}

function showRates(now) {
  if (previous) {
    const seconds = (now.at - previous.at) / 1000;
    for (const stage of Object.keys(history)) {
      const rate = Math.max(0, (now[stage] - previous[stage]) / seconds);
      history[stage] = [...history[stage].slice(1 - KEPT), rate];
      const row = document.querySelector(`#rates tr[data-stage=${stage}]`);
      row.cells[1].textContent = rate.toFixed(1);
      sparkline(row.querySelector("canvas"), history[stage]);
    }
  }
  previous = now;
}

async function refresh() {
  try {
    const response = await fetch("/api/v1/pipeline", { headers: { Accept: "application/json" } });
    const status = await response.json();
    const { outbox, consumer, projections, deadLetters } = status;
    $("#notice").textContent = consumer.error ? `Kafka: ${consumer.error}` : "";
    $("#flower").href = status.flower;
    $("#backlog").textContent = outbox.backlog;
    $("#oldest").textContent = `${outbox.oldest_pending_age_seconds.toFixed(1)} s`;
    $("#held").textContent = `${outbox.held} (${outbox.held_arenas})`;
    rows("#lag", Object.entries(consumer.lagByPartition || {}).map(([partition, p]) =>
      [partition, p.endOffset, p.committedOffset >= 0 ? p.committedOffset : "none", p.lag]));
    $("#behind-count").textContent = `${projections.arenasBehind} of ${projections.arenas}`;
    $("#queued").textContent = status.broker.queues
      ? status.broker.queues.map((q) => `${q.queue}: ${q.waiting} (${q.consumers} workers)`).join(", ")
      : "unknown";
    $("#parked").textContent = projections.parkedEvents;
    $("#dead-letters").textContent = deadLetters.records ?? "unknown";
    rows("#stalled", projections.stalledArenas.map((stall) =>
      [stall.arenaId, stall.stalledAtVersion, stall.reason, code(stall.replayCommand)]));
    $("#set-aside-count").textContent = status.ticks.setAside;
    rows("#set-aside", status.ticks.setAsideArenas.map((arena) =>
      [arena.arenaId, new Date(arena.since).toLocaleString(), arena.reason, code(arena.resumeCommand)]));
    showRates(counts(status));
  } catch (error) {
    $("#notice").textContent = `The pipeline status is unavailable: ${error.message}`;
  }
}

refresh();
setInterval(refresh, EVERY_MS);
