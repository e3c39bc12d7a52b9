// The shopper's page: accounts, deposits and orders over the gateway's HTTP API, and each
// order's payment result live over its WebSocket. Plain JS, no build step, no library.
"use strict";

const MAX_ID = 2n ** 63n - 1n;
const MAX_AMOUNT = 10 ** 12;
const DEFAULT_GATEWAY = "http://localhost:8080";
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 8000;
const NOTES_KEPT = 8;
const REASONS = {
  insufficient_funds: "not enough money on the account",
  account_not_found: "the user has no account",
};

const $ = (id) => document.getElementById(id);

const state = {
  gateway: initialGateway(),
  userId: null, // a string of digits: ids go up to 2^63-1, past what a JS number holds exactly
  socket: null,
  retries: 0,
  retryTimer: null,
  orders: new Map(), // order id → order, for the current user
  placed: new Set(), // orders placed from this page: their result is shown even if its frame was missed
  notified: new Set(), // orders whose result was shown (a frame may come twice after a fault)
  balanceAsked: 0, // balance answers can cross: show one only if no later-asked one was shown
  balanceShown: 0,
};

// --- Reading the inputs -------------------------------------------------------------

function initialGateway() {
  const asked = parseGateway(new URLSearchParams(location.search).get("gateway") || "");
  if (asked) return asked;
  if (location.protocol === "http:" || location.protocol === "https:") return location.origin;
  return stored("gozon.gateway") || DEFAULT_GATEWAY;
}

function stored(key, value) {
  // localStorage may be refused (e.g. a file page in a strict browser): the page works without it.
  try {
    if (value === undefined) return localStorage.getItem(key);
    localStorage.setItem(key, value);
  } catch {
    return null;
  }
  return value;
}

/** The field's value checked by `parse`; on failure, the field says why and null is returned. */
function valid(inputId, parse, problem) {
  const input = $(inputId);
  const value = parse(input.value.trim());
  input.setAttribute("aria-invalid", value === null ? "true" : "false");
  $(`${inputId}-error`).textContent = value === null ? problem : "";
  return value;
}

function parseUserId(text) {
  if (!/^[0-9]{1,19}$/.test(text)) return null;
  const id = BigInt(text);
  return id >= 1n && id <= MAX_ID ? id.toString() : null;
}

function parseAmount(text) {
  if (!/^[0-9]{1,13}$/.test(text)) return null;
  const amount = Number(text);
  return amount >= 1 && amount <= MAX_AMOUNT ? amount : null;
}

function parseGateway(text) {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.origin : null;
  } catch {
    return null;
  }
}

const userIdField = () =>
  valid("user-id", parseUserId, "User ID must be a whole number from 1 to 9223372036854775807.");
const amountField = (inputId) =>
  valid(inputId, parseAmount, "Amount must be a whole number from 1 to 1000000000000.");

// --- Talking to the gateway -------------------------------------------------------------

// JSON with integers past 2^53 kept as their exact digits (a balance may reach 2^63-1).
const parseJson = (text) =>
  JSON.parse(text, (key, value, context) =>
    typeof value === "number" && !Number.isSafeInteger(value) && context?.source ? context.source : value);

/** The gateway's JSON answer; a refusal throws an Error carrying the server's message. */
async function call(method, path, body) {
  let response;
  try {
    response = await fetch(state.gateway + path, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body,
    });
  } catch {
    throw new Error(`The gateway at ${state.gateway} cannot be reached.`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = parseJson(text);
  } catch {
    // not JSON: said below in words
  }
  if (!response.ok) {
    const error = new Error(data?.message || `The gateway answered ${response.status} ${response.statusText}.`);
    error.code = data?.error;
    throw error;
  }
  return data;
}

// Bodies are written by hand so that an id keeps all its digits (both parts were validated).
const userBody = (userId, amount) =>
  amount === undefined ? `{"user_id": ${userId}}` : `{"user_id": ${userId}, "amount": ${amount}}`;

// --- The WebSocket ------------------------------------------------------------------------

function connect() {
  clearTimeout(state.retryTimer);
  if (state.socket) {
    state.socket.onclose = null;
    state.socket.close();
    state.socket = null;
  }
  if (state.userId === null) return showConnection("offline", "no user selected");
  const socket = new WebSocket(`${state.gateway.replace(/^http/, "ws")}/ws?user_id=${state.userId}`);
  state.socket = socket;
  showConnection("connecting", "connecting…");
  socket.onopen = () => socket.send("ping");
  socket.onmessage = (event) => {
    const frame = parseJson(event.data);
    if (frame.type === "pong") subscribed();
    else if (frame.type === "payment_result") paymentResult(frame);
  };
  socket.onclose = reconnectLater;
}

function subscribed() {
  // The first pong: from now on every result of this user's orders reaches this page.
  state.retries = 0;
  showConnection("online", `connected as user ${state.userId}`);
  refresh(); // results that came while the page was not connected
}

function reconnectLater() {
  const backoff = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** state.retries);
  const delay = backoff * (0.75 + Math.random() / 2); // jitter: not every page at once
  state.retries += 1;
  showConnection("offline", `disconnected — reconnecting in ${Math.ceil(delay / 1000)} s`);
  state.retryTimer = setTimeout(connect, delay);
}

function showConnection(kind, text) {
  const indicator = $("connection");
  indicator.dataset.state = kind;
  indicator.textContent = text;
}

// --- What the shopper sees ----------------------------------------------------------------

function paymentResult(frame) {
  addOrder({ id: frame.order_id, amount: frame.amount, status: frame.order_status, reason: frame.reason });
  showResult(state.orders.get(frame.order_id));
  refreshBalance();
}

function addOrder(order) {
  mergeOrder(order);
  renderOrders();
}

function mergeOrder(order) {
  const known = state.orders.get(order.id);
  // A result can arrive before the answer to the POST: never go back from a final status to `new`.
  if (known && known.status !== "new" && order.status === "new") return;
  state.orders.set(order.id, { ...known, ...order });
}

function showResult(order) {
  if (order.status === "new" || state.notified.has(order.id)) return;
  state.notified.add(order.id);
  if (order.status === "finished") note("success", `Order ${order.id}: success`);
  else note("failed", `Order ${order.id}: failed — ${reasonInWords(order.reason)}`);
}

function reasonInWords(reason) {
  return REASONS[reason] || "the payment was refused";
}

function note(kind, text) {
  const item = document.createElement("li");
  item.className = `note ${kind}`;
  item.textContent = text;
  const list = $("notifications");
  list.prepend(item);
  while (list.children.length > NOTES_KEPT) list.lastElementChild.remove();
}

function renderOrders() {
  const orders = [...state.orders.values()].sort((a, b) => b.id - a.id);
  $("orders").replaceChildren(...orders.map((order) => {
    const item = document.createElement("li");
    item.dataset.orderId = order.id;
    item.dataset.status = order.status;
    item.append(span("id", `Order ${order.id}`), span("amount", `amount ${order.amount}`),
      span("status", order.status === "new" ? "new — paying…" : order.status));
    if (order.status === "cancelled") item.append(span("reason", reasonInWords(order.reason)));
    return item;
  }));
  $("orders-empty").hidden = orders.length > 0;
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

/** Ask for the balance now: the returned function shows the answer unless the user changed
 * or a balance asked for later was shown already (answers can cross on the way back). */
function balanceAnswer() {
  const asked = ++state.balanceAsked;
  const userId = state.userId;
  return (balance) => {
    if (userId !== state.userId || asked < state.balanceShown) return;
    state.balanceShown = asked;
    $("balance").textContent = balance === null ? "no account" : String(balance);
  };
}

async function refreshBalance() {
  const show = balanceAnswer();
  try {
    show((await call("GET", `/accounts/balance?user_id=${state.userId}`)).balance);
  } catch (error) {
    if (error.code === "account_not_found") show(null);
    else note("error", error.message);
  }
}

async function refreshOrders() {
  const userId = state.userId;
  try {
    const orders = await call("GET", `/orders?user_id=${userId}&limit=100`);
    if (userId !== state.userId) return;
    orders.forEach(mergeOrder);
    renderOrders();
    for (const order of orders) if (state.placed.has(order.id)) showResult(state.orders.get(order.id));
  } catch (error) {
    if (userId === state.userId) note("error", error.message);
  }
}

function refresh() {
  if (state.userId === null) return;
  refreshBalance();
  refreshOrders();
}

// --- The shopper's actions -------------------------------------------------------------

function switchUser(userId) {
  if (userId === state.userId) return;
  state.userId = userId;
  stored("gozon.user", userId);
  state.orders.clear();
  state.placed.clear();
  state.notified.clear();
  renderOrders();
  $("balance").textContent = "…";
  connect(); // once subscribed, the balance and the orders are loaded
}

/** The user whose id is in the field (switching to it first); null if the field is wrong. */
function currentUser() {
  const userId = userIdField();
  if (userId !== null) switchUser(userId);
  return userId;
}

/** Run `action` with `button` disabled, showing a refusal's message in words. */
async function act(button, action) {
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    note("error", error.message);
  } finally {
    button.disabled = false;
  }
}

function onSubmit(formId, handler) {
  $(formId).addEventListener("submit", (event) => {
    event.preventDefault();
    handler(event.submitter || $(formId).querySelector("button"));
  });
}

onSubmit("user-form", () => {
  const userId = userIdField();
  if (userId === null) return;
  if (userId === state.userId) connect(); // the same user again: a fresh connection
  else switchUser(userId);
});

$("create-account").addEventListener("click", (event) => {
  const userId = currentUser();
  if (userId === null) return;
  const show = balanceAnswer();
  act(event.currentTarget, async () => {
    const account = await call("POST", "/accounts", userBody(userId));
    note("info", `Account created for user ${userId}.`);
    show(account.balance);
  });
});

$("check-balance").addEventListener("click", (event) => {
  const userId = currentUser();
  if (userId === null) return;
  const show = balanceAnswer();
  act(event.currentTarget, async () => show((await call("GET", `/accounts/balance?user_id=${userId}`)).balance));
});

onSubmit("deposit-form", (button) => {
  const userId = currentUser();
  const amount = amountField("deposit-amount");
  if (userId === null || amount === null) return;
  const show = balanceAnswer();
  act(button, async () => {
    const account = await call("POST", "/accounts/deposit", userBody(userId, amount));
    note("info", `Deposited ${amount}: the balance is ${account.balance}.`);
    show(account.balance);
  });
});

onSubmit("order-form", (button) => {
  const userId = currentUser();
  const amount = amountField("order-amount");
  if (userId === null || amount === null) return;
  act(button, async () => {
    const order = await call("POST", "/orders", userBody(userId, amount));
    if (userId !== state.userId) return;
    state.placed.add(order.id);
    addOrder(order);
    showResult(state.orders.get(order.id)); // its result may have come before this answer
  });
});

onSubmit("gateway-form", () => {
  const gateway = valid("gateway", parseGateway, "The gateway is an address like http://localhost:8080.");
  if (gateway === null) return;
  state.gateway = gateway;
  stored("gozon.gateway", gateway);
  $("docs-link").href = `${gateway}/docs`;
  connect();
});

// --- Start --------------------------------------------------------------------------------

$("gateway").value = state.gateway;
$("docs-link").href = `${state.gateway}/docs`;
const lastUser = parseUserId(new URLSearchParams(location.search).get("user") || stored("gozon.user") || "");
if (lastUser !== null) {
  $("user-id").value = lastUser;
  switchUser(lastUser);
}
