// The arena in a browser: the lobby, and one arena live from its event stream (no build step).
// Every read comes from the query routes and the streams (the Redis read model); every change is
// a command of the public API, with the bearer token the arena gave this browser.

const API = "/api/v1/arenas";
const EVENT_TYPES = [
  "ArenaCreated", "PlayerJoined", "PlayerLeft", "ArenaStarted", "ArenaPaused", "ArenaResumed",
  "ArenaStopped", "ArenaConfigUpdated", "ActionSubmitted", "ActionApplied", "ActionRejected",
  "TickAdvanced", "SnapshotTaken",
];
const VIEW_CHANGES = new Set(["PlayerJoined", "PlayerLeft", "ArenaStarted", "ArenaPaused",
  "ArenaResumed", "ArenaStopped", "ArenaConfigUpdated"]);
const PALETTE = ["#0b57d0", "#c5221f", "#188038", "#b06000", "#8430ce", "#007b83", "#5f6368"];
const ARRAYS = { "<f8": Float64Array, "<f4": Float32Array, "<i4": Int32Array, "<i2": Int16Array,
  "<u2": Uint16Array, "|u1": Uint8Array, "|i1": Int8Array };
const FEED_SHOWN = 30;
const REOPEN_FIRST_MILLIS = 1000; // then twice as long after each refusal, up to the most
const REOPEN_MOST_MILLIS = 60_000;

const $ = (selector) => document.querySelector(selector);
const state = { arena: null, view: null, board: null, lastVersion: 0, waitingFor: 0,
  streams: {}, reopening: {}, trouble: {}, following: 0, counts: [],
  layers: { nutrients: null, antibiotic: null } };

// --- the API -------------------------------------------------------------------------------

function seat(arenaId) {
  return JSON.parse(localStorage.getItem(`petri:arena:${arenaId}`) || "null");
}

function keepSeat(arenaId, player) {
  localStorage.setItem(`petri:arena:${arenaId}`, JSON.stringify(player));
}

async function call(path, { method = "GET", body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const answer = response.status === 204 ? {} : await response.json();
  if (!response.ok) {
    const fields = (answer.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
    throw new Error(`${answer.detail || response.statusText}${fields ? ` (${fields})` : ""}`);
  }
  return answer;
}

function say(text) { $("#notice").textContent = text; }

async function command(path, options) {
  try {
    const answer = await call(path, options);
    say("");
    if (answer.version) state.waitingFor = Math.max(state.waitingFor, answer.version);
    showBehind();
    return answer;
  } catch (error) {
    say(error.message);
    return null;
  }
}

// --- the lobby ------------------------------------------------------------------------------

async function showLobby() {
  closeStreams();
  $("#lobby").hidden = false;
  $("#arena").hidden = true;
  const page = await call(`${API}?limit=50`);
  $("#arenas tbody").replaceChildren(...page.items.map((arena) => {
    const row = document.createElement("tr");
    const open = document.createElement("a");
    open.href = `#/arena/${arena.id}`;
    open.textContent = `Open ${arena.name}`;
    for (const text of [arena.name, arena.status, arena.players.length, arena.tick]) {
      const cell = row.insertCell();
      cell.textContent = text;
    }
    row.insertCell().append(open);
    return row;
  }));
}

$("#create").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const form = new FormData(submitted.target);
  const created = await command(API, { method: "POST", body: {
    name: form.get("name"), displayName: form.get("displayName"),
    config: { width: Number(form.get("width")), height: Number(form.get("height")) },
  } });
  if (created) {
    keepSeat(created.id, { ...created.player, displayName: form.get("displayName") });
    Object.assign(state, { arena: created.id, waitingFor: created.version });
    location.hash = `#/arena/${created.id}`;
  }
});

// --- one arena ------------------------------------------------------------------------------

async function showArena(arenaId) {
  closeStreams();
  const waitingFor = state.arena === arenaId ? state.waitingFor : 0; // a command's own version
  Object.assign(state, { arena: arenaId, board: null, lastVersion: 0, waitingFor, counts: [] });
  $("#lobby").hidden = true;
  $("#arena").hidden = false;
  $("#feed").replaceChildren();
  await refreshView();
  await drawBoard(await call(`${API}/${arenaId}/board`));
  follow(arenaId);
}

async function refreshView() {
  // Read your own writes: wait (a few seconds at most) for the version a command answered.
  const wanted = state.waitingFor > state.lastVersion ? `?minVersion=${state.waitingFor}` : "";
  const view = await call(`${API}/${state.arena}${wanted}`);
  state.view = view;
  state.lastVersion = Math.max(state.lastVersion, view.version);
  const mine = seat(state.arena);
  $("#arena-title").textContent = view.name;
  $("#status").textContent = view.status;
  $("#tick").textContent = view.tick;
  $("#version").textContent = state.lastVersion;
  $("#me").textContent = mine ? `${mine.displayName} (${mine.role})` : "a watcher";
  $("#join").hidden = Boolean(mine);
  $("#admin").hidden = !mine || mine.role !== "ADMIN";
  $("#tools").disabled = !mine;
  showBehind();
}

function showBehind() {
  const behind = state.waitingFor - state.lastVersion;
  $("#behind").hidden = behind <= 0;
  $("#behind").textContent = `behind by ${behind} event${behind === 1 ? "" : "s"}`;
}

// The arena's two live streams, each made by its opener.
const STREAMS = {
  events(arenaId) {
    const events = new EventSource(`${API}/${arenaId}/stream?mode=FULL`);
    for (const type of EVENT_TYPES) {
      events.addEventListener(type, (frame) => onEvent(JSON.parse(frame.data)));
    }
    events.addEventListener("reset", () => showArena(arenaId)); // too far behind: reload
    return events;
  },
  stats(arenaId) {
    const stats = new EventSource(`${API}/${arenaId}/stats/stream?windowSeconds=60`);
    stats.addEventListener("stats", (frame) => onStats(JSON.parse(frame.data)));
    return stats;
  },
};

function follow(arenaId) {
  for (const name of Object.keys(STREAMS)) open(name, arenaId, 0);
}

// EventSource reconnects by itself, with its Last-Event-ID, after a connection drops; but a
// refusal (429: this address holds its streams already, as behind a NAT; 503: the server is
// full) closes it for good. Such a stream is opened again after a growing, partly random delay,
// so that tabs refused together do not knock again together.
function open(name, arenaId, failures) {
  const stream = STREAMS[name](arenaId);
  state.streams[name] = stream;
  stream.addEventListener("open", () => {
    failures = 0;
    showLive(name, "");
  });
  stream.addEventListener("error", () => {
    if (stream.readyState === EventSource.CLOSED) reopenLater(name, arenaId, failures);
    else showLive(name, "reconnecting…");
  });
}

function reopenLater(name, arenaId, failures) {
  const longest = Math.min(REOPEN_FIRST_MILLIS * 2 ** failures, REOPEN_MOST_MILLIS);
  const wait = longest * (0.5 + Math.random() / 2);
  const following = state.following;
  showLive(name, `reconnecting in ${Math.ceil(wait / 1000)} s…`);
  state.reopening[name] = setTimeout(async () => {
    // A new EventSource has no Last-Event-ID: the events stream starts where the view is, so
    // the view and its board are read again first.
    const reloaded = name !== "events" || await reload(arenaId).then(() => true, () => false);
    if (state.following !== following) return; // the page moved on meanwhile
    if (reloaded) open(name, arenaId, failures + 1);
    else reopenLater(name, arenaId, failures + 1);
  }, wait);
}

async function reload(arenaId) {
  await refreshView();
  await drawBoard(await call(`${API}/${arenaId}/board`));
}

function showLive(name, trouble) {
  if ((state.trouble[name] || "") === trouble) return; // leave other notices be
  state.trouble[name] = trouble;
  const shown = Object.entries(state.trouble).filter(([, text]) => text);
  say(shown.map(([stream, text]) => `Live ${stream}: ${text}`).join(" "));
}

function closeStreams() {
  for (const stream of Object.values(state.streams)) stream.close();
  for (const timer of Object.values(state.reopening)) clearTimeout(timer);
  if (Object.values(state.trouble).some(Boolean)) say("");
  Object.assign(state, { streams: {}, reopening: {}, trouble: {} });
  state.following += 1;
}

async function onEvent(event) {
  state.lastVersion = Math.max(state.lastVersion, event.version);
  $("#version").textContent = state.lastVersion;
  showBehind();
  const item = document.createElement("li");
  item.value = event.version;
  item.textContent = `${event.type}${event.payload.tick !== undefined ? ` (tick ${event.payload.tick})` : ""}`;
  $("#feed").prepend(item);
  while ($("#feed").children.length > FEED_SHOWN) $("#feed").lastChild.remove();
  if (event.type === "TickAdvanced") {
    $("#tick").textContent = event.payload.tick;
    if (event.payload.board) await drawBoard(event.payload.board);
  } else if (VIEW_CHANGES.has(event.type)) {
    await refreshView();
  }
}

async function onStats(stats) {
  state.counts = [...state.counts.slice(-149), stats.organismCount];
  drawSparkline();
  const leaders = await call(`${API}/${state.arena}/leaderboard?top=10`);
  $("#leaders").replaceChildren(...leaders.entries.map((entry) => {
    const item = document.createElement("li");
    item.textContent = `#${entry.organismId} ${entry.kind.toLowerCase()}, fitness ${entry.fitness.toFixed(2)} (${nameOf(entry.owner)})`;
    return item;
  }));
  $("#players tbody").replaceChildren(...leaders.players.map((player) => {
    const row = document.createElement("tr");
    for (const text of [player.displayName, player.organisms, player.biomass.toFixed(1)]) {
      row.insertCell().textContent = text;
    }
    return row;
  }));
}

function nameOf(playerId) {
  const player = (state.view?.players || []).find((p) => p.playerId === playerId);
  return player ? player.displayName : "gone";
}

function colourOf(playerId) {
  const index = (state.view?.players || []).findIndex((p) => p.playerId === playerId);
  return PALETTE[(index < 0 ? PALETTE.length - 1 : index) % PALETTE.length];
}

// --- drawing --------------------------------------------------------------------------------

async function field(described) {
  const bytes = Uint8Array.from(atob(described.data), (c) => c.charCodeAt(0));
  const inflated = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  const buffer = await new Response(inflated).arrayBuffer();
  return new ARRAYS[described.dtype](buffer);
}

async function drawBoard(board) {
  state.board = board;
  state.layers.nutrients = await field(board.layers.nutrients);
  state.layers.antibiotic = await field(board.layers.antibiotic);
  paint();
}

function cellSize() {
  const board = state.board;
  return Math.max(2, Math.floor(512 / Math.max(board.width, board.height)));
}

function paint() {
  const board = state.board;
  if (!board) return;
  const canvas = $("#board");
  const size = cellSize();
  canvas.width = board.width * size;
  canvas.height = board.height * size;
  const pen = canvas.getContext("2d");
  pen.fillStyle = "#ffffff";
  pen.fillRect(0, 0, canvas.width, canvas.height);
  const cells = board.width * board.height;
  const nutrients = state.layers.nutrients;
  const antibiotic = state.layers.antibiotic;
  const mostFood = Math.max(1, ...nutrients);
  for (let cell = 0; cell < cells; cell += 1) {
    const x = (cell % board.width) * size;
    const y = Math.floor(cell / board.width) * size;
    if ($("#show-nutrients").checked && nutrients[cell] > 0) {
      pen.fillStyle = `rgba(24, 128, 56, ${(0.45 * nutrients[cell]) / mostFood})`;
      pen.fillRect(x, y, size, size);
    }
    const dose = antibiotic[cell] + antibiotic[cells + cell] + antibiotic[2 * cells + cell];
    if ($("#show-antibiotic").checked && dose > 0) {
      pen.fillStyle = `rgba(132, 48, 206, ${Math.min(0.6, dose / 5000)})`;
      pen.fillRect(x, y, size, size);
    }
  }
  for (const organism of board.layers.organisms) {
    pen.fillStyle = colourOf(organism.owner);
    const x = organism.x * size;
    const y = organism.y * size;
    if (organism.kind === "FUNGI") {
      pen.beginPath();
      pen.arc(x + size / 2, y + size / 2, size / 2, 0, 2 * Math.PI);
      pen.fill();
    } else if (organism.kind === "PHAGE") {
      pen.beginPath();
      pen.moveTo(x + size / 2, y);
      pen.lineTo(x + size, y + size);
      pen.lineTo(x, y + size);
      pen.fill();
    } else {
      pen.fillRect(x + 1, y + 1, size - 2, size - 2);
    }
  }
  if (document.activeElement === canvas) { // the keyboard's cursor
    pen.strokeStyle = "#1b1f24";
    pen.lineWidth = 2;
    pen.strokeRect(cursor.x * size + 1, cursor.y * size + 1, size - 2, size - 2);
  }
}

function drawSparkline() {
  const canvas = $("#sparkline");
  const pen = canvas.getContext("2d");
  pen.clearRect(0, 0, canvas.width, canvas.height);
  const most = Math.max(1, ...state.counts);
  pen.strokeStyle = "#0b57d0";
  pen.beginPath();
  state.counts.forEach((count, index) => {
    const x = (index / Math.max(1, state.counts.length - 1)) * canvas.width;
    const y = canvas.height - (count / most) * (canvas.height - 4) - 2;
    if (index === 0) pen.moveTo(x, y); else pen.lineTo(x, y);
  });
  pen.stroke();
}

// --- acting on the board --------------------------------------------------------------------

function cellAt(pointer) {
  const box = $("#board").getBoundingClientRect();
  const size = cellSize();
  const scale = $("#board").width / box.width;
  return {
    x: Math.min(state.board.width - 1, Math.max(0, Math.floor(((pointer.clientX - box.left) * scale) / size))),
    y: Math.min(state.board.height - 1, Math.max(0, Math.floor(((pointer.clientY - box.top) * scale) / size))),
  };
}

let dragFrom = null;
$("#board").addEventListener("pointerdown", (pointer) => { if (state.board) dragFrom = cellAt(pointer); });
$("#board").addEventListener("pointerup", async (pointer) => {
  if (!dragFrom) return;
  const from = dragFrom;
  dragFrom = null;
  await act(from, cellAt(pointer));
});

// The keyboard does what the pointer does: arrows move the cursor cell, Enter or Space acts
// there (an area tool takes two presses: one corner, then the other).
const cursor = { x: 0, y: 0, from: null };
$("#board").addEventListener("keydown", async (key) => {
  if (!state.board) return;
  const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  if (moves[key.key]) {
    key.preventDefault();
    cursor.x = Math.min(state.board.width - 1, Math.max(0, cursor.x + moves[key.key][0]));
    cursor.y = Math.min(state.board.height - 1, Math.max(0, cursor.y + moves[key.key][1]));
    paint();
  } else if (key.key === "Enter" || key.key === " ") {
    key.preventDefault();
    const here = { x: cursor.x, y: cursor.y };
    const area = ["NUTRIENTS", "ANTIBIOTIC"].includes(document.querySelector("input[name=tool]:checked").value);
    if (area && !cursor.from) {
      cursor.from = here;
      say(`Corner at ${here.x}, ${here.y}: move to the other corner and press Enter.`);
      return;
    }
    const from = cursor.from || here;
    cursor.from = null;
    await act(from, here);
  }
});
$("#board").addEventListener("focus", paint);
$("#board").addEventListener("blur", paint);

async function act(from, to) {
  const mine = seat(state.arena);
  if (!mine) return;
  const tool = document.querySelector("input[name=tool]:checked").value;
  const area = { x: Math.min(from.x, to.x), y: Math.min(from.y, to.y),
    width: Math.abs(to.x - from.x) + 1, height: Math.abs(to.y - from.y) + 1 };
  let action;
  if (tool === "NUTRIENTS") action = { type: "ADD_NUTRIENTS", payload: { area, amount: 5 } };
  else if (tool === "ANTIBIOTIC") {
    action = { type: "DROP_ANTIBIOTIC", payload: { area, kind: $("#antibiotic").value, concentration: 2 } };
  } else action = { type: "SPAWN_ORGANISM", payload: { kind: tool, position: to } };
  await command(`${API}/${state.arena}/actions`, { method: "POST", body: action, token: mine.token });
}

$("#join").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const displayName = new FormData(submitted.target).get("displayName");
  const joined = await command(`${API}/${state.arena}/players`, { method: "POST", body: { displayName } });
  if (joined) {
    keepSeat(state.arena, { ...joined.player, displayName });
    await refreshView();
  }
});

for (const button of document.querySelectorAll("#admin [data-transition]")) {
  button.addEventListener("click", () => command(`${API}/${state.arena}/${button.dataset.transition}`,
    { method: "POST", token: seat(state.arena).token }));
}
$("#set-config").addEventListener("click", () => command(`${API}/${state.arena}/config`, {
  method: "PATCH", token: seat(state.arena).token,
  body: { temperature: { value: Number($("#temperature").value), unit: "C" } },
}));
for (const toggle of ["#show-nutrients", "#show-antibiotic"]) $(toggle).addEventListener("change", paint);

// --- routing --------------------------------------------------------------------------------

function route() {
  const found = location.hash.match(/^#\/arena\/([0-9a-f-]{36})$/);
  (found ? showArena(found[1]) : showLobby()).catch((error) => say(error.message));
}
window.addEventListener("hashchange", route);
route();
