/* Frontdesk web chat widget: one <script src=".../webchat/widget.js" defer></script> on any page.
 *
 * Options (data- attributes on the script tag):
 *   data-language="en|id"   the widget's language (default: the page's <html lang>, then the browser's)
 *   data-title="..."        the dialog's heading
 *   data-position="left"    put the bubble bottom left instead of bottom right
 *
 * Accessible by design: a labelled button opens a modal dialog (focus moves in, Tab stays in, Escape closes and
 * gives focus back), messages land in a polite live log, reply options are real buttons. Works with the keyboard
 * alone. Styles live in a shadow root so the host page and the widget cannot break each other.
 *
 * Protocol (JSON over a websocket): hello {token, language} → welcome {token, history}; message {id, text} or
 * button {id, data, text} → ack {id}; the server pushes message {id, text, buttons, image}; error {code, id?,
 * retry_after?}. Unacknowledged messages are re-sent with the same id after a reconnect: the server keeps one copy.
 * An error with retry_after is not a refusal but "not yet": a message stays pending and is sent again after that
 * many seconds (then longer); a connection refused that way (busy, unavailable) reconnects no sooner than that.
 */
(function () {
  "use strict";

  if (window.__frontdeskWebchat) return;
  window.__frontdeskWebchat = true;

  var script =
    document.currentScript ||
    Array.prototype.slice.call(document.getElementsByTagName("script")).filter(function (s) {
      return /\/webchat\/widget\.js(\?|$)/.test(s.src);
    })[0];
  if (!script) return;

  var STRINGS = {
    en: {
      open: "Chat with the clinic",
      openUnread: "Chat with the clinic (new message)",
      title: "Chat with us",
      close: "Close chat",
      log: "Conversation",
      input: "Your message",
      send: "Send",
      you: "You:",
      clinic: "Clinic:",
      sending: "Sending…",
      sent: "Sent",
      notSent: "Not sent",
      choices: "Choose a reply",
      image: "Image from the clinic",
      connecting: "Connecting…",
      reconnecting: "Connection lost. Reconnecting…",
      empty: "Ask us anything: opening hours, examinations or an appointment.",
      too_long: "That message is too long.",
      rate_limited: "You are sending messages too quickly. Wait a few seconds and try again.",
      malformed: "That message could not be sent.",
      unavailable: "We could not take that message yet. It will be sent again.",
      busy: "Many chats are starting right now. The chat will connect by itself as soon as it can.",
      retrying: "Sending again soon…",
    },
    id: {
      open: "Chat dengan klinik",
      openUnread: "Chat dengan klinik (pesan baru)",
      title: "Chat dengan kami",
      close: "Tutup chat",
      log: "Percakapan",
      input: "Pesan Anda",
      send: "Kirim",
      you: "Anda:",
      clinic: "Klinik:",
      sending: "Mengirim…",
      sent: "Terkirim",
      notSent: "Tidak terkirim",
      choices: "Pilih balasan",
      image: "Gambar dari klinik",
      connecting: "Menghubungkan…",
      reconnecting: "Koneksi terputus. Menghubungkan kembali…",
      empty: "Tanyakan apa saja: jam buka, pemeriksaan, atau janji temu.",
      too_long: "Pesan itu terlalu panjang.",
      rate_limited: "Anda mengirim pesan terlalu cepat. Tunggu beberapa detik lalu coba lagi.",
      malformed: "Pesan itu tidak dapat dikirim.",
      unavailable: "Pesan Anda belum dapat kami terima. Pesan akan dikirim ulang.",
      busy: "Banyak chat sedang dimulai. Chat akan tersambung sendiri secepatnya.",
      retrying: "Segera dikirim ulang…",
    },
  };

  function pickLanguage() {
    var wanted = [script.getAttribute("data-language"), document.documentElement.lang, navigator.language];
    for (var i = 0; i < wanted.length; i++) {
      var code = String(wanted[i] || "").toLowerCase().split("-")[0];
      if (STRINGS[code]) return code;
    }
    return "en";
  }

  var language = pickLanguage();
  var T = STRINGS[language];
  var server = new URL(script.src, location.href);
  var socketUrl = (server.protocol === "https:" ? "wss:" : "ws:") + "//" + server.host + "/webchat/ws";
  var storageKey = "frontdesk.webchat.token:" + server.host;
  var MAX_TEXT = 2000;

  // --- storage (may be unavailable: private modes, sandboxed frames)

  function loadToken() {
    try {
      return window.localStorage.getItem(storageKey);
    } catch (e) {
      return null;
    }
  }

  function saveToken(token) {
    try {
      window.localStorage.setItem(storageKey, token);
    } catch (e) {
      /* the chat still works for this page view */
    }
  }

  function newId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) {
      return (b + 0x100).toString(16).slice(1);
    }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  // --- the DOM, inside a shadow root

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        node.setAttribute(name, attrs[name]);
      });
    }
    if (text != null) node.textContent = text;
    return node;
  }

  var CSS = [
    ":host { all: initial; }",
    "* { box-sizing: border-box; }",
    ".root { font: 16px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1d2330; }",
    ".bubble { position: fixed; bottom: 20px; right: 20px; z-index: 2147483000; width: 60px; height: 60px;",
    "  border-radius: 50%; border: 2px solid #fff; background: #0b5cad; color: #fff; cursor: pointer;",
    "  box-shadow: 0 4px 14px rgba(0,0,0,.3); display: flex; align-items: center; justify-content: center; }",
    ".left .bubble { right: auto; left: 20px; }",
    ".bubble:hover { background: #084a8c; }",
    ".bubble svg { width: 30px; height: 30px; fill: currentColor; }",
    ".badge { position: absolute; top: -2px; right: -2px; width: 16px; height: 16px; border-radius: 50%;",
    "  background: #b3261e; border: 2px solid #fff; }",
    ".panel { position: fixed; bottom: 92px; right: 20px; z-index: 2147483001; width: 370px;",
    "  max-width: calc(100vw - 24px); height: 540px; max-height: calc(100vh - 112px); background: #fff;",
    "  border-radius: 14px; box-shadow: 0 10px 34px rgba(0,0,0,.32); display: flex; flex-direction: column;",
    "  overflow: hidden; border: 1px solid #c5cad3; }",
    ".left .panel { right: auto; left: 20px; }",
    ".panel[hidden] { display: none; }",
    "@media (max-width: 480px) { .panel { inset: 0; width: 100%; max-width: none; height: 100%;",
    "  max-height: none; border-radius: 0; } }",
    "header { display: flex; align-items: center; justify-content: space-between; gap: 8px; padding: 12px 14px;",
    "  background: #0b5cad; color: #fff; }",
    "h2 { margin: 0; font-size: 17px; font-weight: 650; }",
    ".close { background: transparent; color: #fff; border: 2px solid transparent; border-radius: 8px;",
    "  font-size: 24px; line-height: 1; width: 40px; height: 40px; cursor: pointer; }",
    ".close:hover { border-color: #fff; }",
    ".status { margin: 0; padding: 0 14px; font-size: 14px; color: #5c2c00; background: #fff4e5; }",
    ".status:not(:empty) { padding: 6px 14px; }",
    ".log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px;",
    "  background: #f6f7fb; }",
    ".hint { color: #4a5466; font-size: 14px; margin: 4px 2px; }",
    ".msg { max-width: 85%; padding: 8px 12px; border-radius: 12px; white-space: pre-wrap;",
    "  overflow-wrap: anywhere; }",
    ".msg.in { align-self: flex-end; background: #0b5cad; color: #fff; border-bottom-right-radius: 4px; }",
    ".msg.out { align-self: flex-start; background: #fff; color: #1d2330; border: 1px solid #c5cad3;",
    "  border-bottom-left-radius: 4px; }",
    ".meta { display: block; font-size: 12px; margin-top: 2px; opacity: .95; }",
    ".msg.failed { background: #fdecea; color: #6b1510; border: 1px solid #b3261e; }",
    ".msg img { display: block; max-width: 100%; margin-top: 6px; border-radius: 6px; background: #fff; }",
    ".choices { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }",
    ".choices button { font: inherit; font-size: 15px; padding: 7px 12px; min-height: 40px; border-radius: 18px;",
    "  border: 2px solid #0b5cad; background: #fff; color: #0b5cad; cursor: pointer; }",
    ".choices button:hover:not(:disabled) { background: #e7f0fa; }",
    ".choices button:disabled { border-color: #8a93a3; color: #4a5466; cursor: default; }",
    "form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #c5cad3; background: #fff;",
    "  align-items: flex-end; }",
    ".field { flex: 1; display: flex; flex-direction: column; gap: 2px; }",
    "label { font-size: 13px; color: #4a5466; }",
    "input { font: inherit; width: 100%; padding: 9px 10px; min-height: 44px; border: 2px solid #6b7486;",
    "  border-radius: 8px; color: #1d2330; background: #fff; }",
    ".send { font: inherit; font-weight: 600; padding: 0 16px; min-height: 44px; border-radius: 8px;",
    "  border: 2px solid #0b5cad; background: #0b5cad; color: #fff; cursor: pointer; }",
    ".send:hover { background: #084a8c; }",
    "button:focus-visible, input:focus-visible, .log:focus-visible { outline: 3px solid #f2b600;",
    "  outline-offset: 2px; }",
    ".sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;",
    "  clip: rect(0,0,0,0); white-space: nowrap; border: 0; }",
    "@media (forced-colors: active) { .bubble, .send, .msg { border: 2px solid CanvasText; } }",
  ].join("\n");

  var host = el("div", { "data-frontdesk-webchat": "" });
  var shadow = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var style = el("style", null, CSS);
  var root = el("div", { class: "root" + (script.getAttribute("data-position") === "left" ? " left" : ""), lang: language });

  var bubble = el("button", {
    type: "button",
    class: "bubble",
    "aria-label": T.open,
    "aria-haspopup": "dialog",
    "aria-expanded": "false",
    "aria-controls": "fd-chat-dialog",
  });
  bubble.innerHTML =
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 ' +
    '2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6v2h2V9H7zm4 0v2h2V9h-2zm4 0v2h2V9h-2z"/></svg>';
  var badge = el("span", { class: "badge", hidden: "" });
  bubble.appendChild(badge);

  var panel = el("div", {
    class: "panel",
    id: "fd-chat-dialog",
    role: "dialog",
    "aria-modal": "true",
    "aria-labelledby": "fd-chat-title",
    hidden: "",
  });
  var header = el("header");
  var title = el("h2", { id: "fd-chat-title" }, script.getAttribute("data-title") || T.title);
  var closeButton = el("button", { type: "button", class: "close", "aria-label": T.close }, "×");
  header.appendChild(title);
  header.appendChild(closeButton);
  var status = el("p", { class: "status", role: "status", "aria-live": "polite" });
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": T.log, tabindex: "0" });
  var hint = el("p", { class: "hint" }, T.empty);
  log.appendChild(hint);
  var form = el("form", { novalidate: "" });
  var field = el("div", { class: "field" });
  var label = el("label", { for: "fd-chat-input" }, T.input);
  var input = el("input", { id: "fd-chat-input", type: "text", autocomplete: "off", maxlength: String(MAX_TEXT) });
  var sendButton = el("button", { type: "submit", class: "send" }, T.send);
  field.appendChild(label);
  field.appendChild(input);
  form.appendChild(field);
  form.appendChild(sendButton);
  panel.appendChild(header);
  panel.appendChild(status);
  panel.appendChild(log);
  panel.appendChild(form);
  root.appendChild(bubble);
  root.appendChild(panel);
  shadow.appendChild(style);
  shadow.appendChild(root);

  // --- opening and closing (modal dialog semantics)

  var isOpen = false;

  function focusables() {
    return Array.prototype.slice
      .call(panel.querySelectorAll("button, input, [tabindex='0']"))
      .filter(function (node) {
        return !node.disabled && !node.hidden && node.getClientRects().length > 0;
      });
  }

  function openChat() {
    isOpen = true;
    panel.hidden = false;
    bubble.setAttribute("aria-expanded", "true");
    badge.hidden = true;
    bubble.setAttribute("aria-label", T.open);
    connect();
    input.focus();
    scrollToEnd();
  }

  function closeChat() {
    isOpen = false;
    panel.hidden = true;
    bubble.setAttribute("aria-expanded", "false");
    bubble.focus();
  }

  bubble.addEventListener("click", function () {
    if (isOpen) closeChat();
    else openChat();
  });
  closeButton.addEventListener("click", closeChat);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.preventDefault();
      closeChat();
      return;
    }
    if (event.key !== "Tab") return;
    var items = focusables();
    if (!items.length) return;
    var first = items[0];
    var last = items[items.length - 1];
    var active = shadow.activeElement || document.activeElement;
    if (event.shiftKey && (active === first || !panel.contains(active))) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (active === last || !panel.contains(active))) {
      event.preventDefault();
      first.focus();
    }
  });

  // --- the log

  var seen = {}; // message ids already shown (history and live pushes may overlap)
  var pending = []; // frames sent but not acknowledged, oldest first: re-sent after a reconnect

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function disableOldChoices() {
    Array.prototype.forEach.call(log.querySelectorAll(".choices button"), function (button) {
      button.disabled = true;
    });
  }

  function showMessage(entry) {
    if (entry.id && seen[entry.id]) return seen[entry.id];
    if (hint.parentNode) hint.parentNode.removeChild(hint);
    disableOldChoices(); // only the newest message's options can be answered
    var mine = entry.direction === "in";
    var node = el("div", { class: "msg " + (mine ? "in" : "out") });
    if (entry.id) node.setAttribute("data-id", entry.id);
    node.appendChild(el("span", { class: "sr-only" }, (mine ? T.you : T.clinic) + " "));
    node.appendChild(el("span", { class: "text" }, entry.text || ""));
    if (typeof entry.image === "string" && entry.image.indexOf("data:image/") === 0) {
      node.appendChild(el("img", { src: entry.image, alt: T.image }));
    }
    if (mine) {
      node.appendChild(el("span", { class: "meta" }, entry.state === "pending" ? T.sending : T.sent));
      node.setAttribute("data-state", entry.state || "acked");
    } else {
      var buttons = Array.isArray(entry.buttons) ? entry.buttons : [];
      if (buttons.length) {
        var group = el("div", { class: "choices", role: "group", "aria-label": T.choices });
        buttons.forEach(function (choice) {
          var button = el("button", { type: "button" }, String(choice.label || choice.data || ""));
          button.addEventListener("click", function () {
            disableOldChoices();
            sendFrame("button", String(choice.label || ""), String(choice.data || ""));
            input.focus();
          });
          group.appendChild(button);
        });
        node.appendChild(group);
      }
    }
    if (entry.id) seen[entry.id] = node;
    log.appendChild(node);
    scrollToEnd();
    return node;
  }

  function markMessage(id, state, text) {
    var node = seen[id];
    if (!node) return;
    node.setAttribute("data-state", state);
    var meta = node.querySelector(".meta");
    if (meta) meta.textContent = text;
    if (state === "failed") node.classList.add("failed");
  }

  function notice(text) {
    status.textContent = text || "";
  }

  // --- the connection

  var socket = null;
  var ready = false; // welcome received on the current socket
  var attempt = 0;
  var retryTimer = null;
  var notBefore = 0; // the server asked us not to reconnect before this time (ms since epoch)
  var MAX_DELAY = 30000;

  function connect() {
    if (socket || retryTimer) return;
    ready = false;
    if (!attempt) notice(T.connecting);
    try {
      socket = new WebSocket(socketUrl);
    } catch (e) {
      socket = null;
      scheduleReconnect();
      return;
    }
    socket.addEventListener("open", function () {
      socket.send(JSON.stringify({ type: "hello", token: loadToken(), language: language }));
    });
    socket.addEventListener("message", function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (frame && typeof frame === "object") receive(frame);
    });
    socket.addEventListener("close", function () {
      socket = null;
      ready = false;
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (retryTimer) return;
    // 1 s, 2 s, 4 s ... up to 30 s, with jitter so that a restarted server is not hit by every widget at once;
    // never sooner than the server asked (a busy refusal says when).
    var delay = Math.min(MAX_DELAY, 1000 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
    delay = Math.max(delay, notBefore - Date.now());
    attempt += 1;
    if (isOpen && Date.now() >= notBefore) notice(T.reconnecting); // else the server's reason stays on screen
    retryTimer = window.setTimeout(function () {
      retryTimer = null;
      connect();
    }, delay);
  }

  function receive(frame) {
    if (frame.type === "welcome") {
      attempt = 0;
      ready = true;
      notice("");
      if (typeof frame.token === "string") saveToken(frame.token);
      (Array.isArray(frame.history) ? frame.history : []).forEach(function (entry) {
        if (entry.direction === "in" && seen[entry.id]) markAcked(entry.id);
        else showMessage(entry);
      });
      pending.slice().forEach(function (queued) {
        transmit(queued);
      });
    } else if (frame.type === "ack") {
      markAcked(frame.id);
    } else if (frame.type === "message") {
      var fresh = !seen[frame.id];
      showMessage({ id: frame.id, direction: "out", text: frame.text, buttons: frame.buttons, image: frame.image });
      if (fresh && !isOpen) {
        badge.hidden = false;
        bubble.setAttribute("aria-label", T.openUnread);
      }
    } else if (frame.type === "error") {
      var text = T[frame.code] || T.malformed;
      var retryAfter = Number(frame.retry_after);
      if (retryAfter > 0 && frame.id) {
        retryLater(frame.id, retryAfter); // not taken yet: the message stays pending and goes again
      } else if (retryAfter > 0) {
        notBefore = Date.now() + retryAfter * 1000; // the server refuses this connection for now and closes it
      } else if (frame.id) {
        pending = pending.filter(function (queued) {
          return queued.id !== frame.id;
        });
        markMessage(frame.id, "failed", T.notSent);
      }
      notice(text);
    }
  }

  function retryLater(id, seconds) {
    var queued = pending.filter(function (candidate) {
      return candidate.id === id;
    })[0];
    if (!queued) return;
    queued.tries = (queued.tries || 0) + 1;
    markMessage(id, "pending", T.retrying);
    var delay = Math.min(MAX_DELAY, seconds * 1000 * Math.pow(2, queued.tries - 1)) * (0.75 + Math.random() / 4);
    window.clearTimeout(queued.timer);
    queued.timer = window.setTimeout(function () {
      queued.timer = null;
      if (pending.indexOf(queued) >= 0) transmit(queued);
    }, delay);
  }

  function markAcked(id) {
    pending = pending.filter(function (queued) {
      if (queued.id === id) window.clearTimeout(queued.timer);
      return queued.id !== id;
    });
    markMessage(id, "acked", T.sent);
  }

  function transmit(queued) {
    if (!(socket && ready && socket.readyState === WebSocket.OPEN)) return; // sent again after the next welcome
    var frame = { type: queued.type, id: queued.id, text: queued.text };
    if (queued.type === "button") frame.data = queued.data;
    socket.send(JSON.stringify(frame));
  }

  function sendFrame(type, text, data) {
    var frame = { type: type, id: newId(), text: text };
    if (type === "button") frame.data = data;
    pending.push(frame);
    showMessage({ id: frame.id, direction: "in", text: text || data, state: "pending" });
    notice("");
    transmit(frame);
    connect();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    if (text.length > MAX_TEXT) {
      notice(T.too_long);
      return;
    }
    input.value = "";
    sendFrame("message", text);
  });

  function mount() {
    document.body.appendChild(host);
    // A returning visitor connects right away (replies and the unread mark arrive); a new one on first open.
    if (loadToken()) connect();
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
