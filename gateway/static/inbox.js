/* Frontdesk staff app: CSRF-aware fetch, live regions fed by server-sent events, confirmations. No framework. */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  /* JSON call to the staff API (/api/v1/...) with the page's CSRF token; rejects with the API's message. */
  function api(method, url, body) {
    var init = { method: method, credentials: "same-origin", headers: { "Accept": "application/json", "X-CSRF-Token": csrf } };
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(url, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          var message = data && data.error ? data.error.message : ("Request failed (" + response.status + ")");
          var error = new Error(message); error.status = response.status; error.data = data; throw error;
        }
        return data;
      });
    });
  }

  /* One EventSource per page; handlers by table name ("leads", "messages", "sessions", "queue_entries", ...). */
  var source = null, handlers = [];
  function live(tables, handler) {
    handlers.push({ tables: tables, handler: handler });
    if (source) return;
    source = new EventSource("/inbox/events");
    source.addEventListener("change", function (event) {
      var change; try { change = JSON.parse(event.data); } catch (e) { return; }
      handlers.forEach(function (h) { if (change.table === "*" || h.tables.indexOf(change.table) >= 0) h.handler(change); });
    });
    source.addEventListener("signed-out", function () {  /* this device's session was revoked or expired */
      source.close();
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    });
    source.addEventListener("ready", function () {
      document.documentElement.dataset.live = "on";
      /* Changes made between the page's render and this (re)connection were not streamed: look once more. */
      handlers.forEach(function (h) { h.handler({ table: "*", op: "resync" }); });
    });
  }

  /* Re-fetch this page and swap the region with the same id: the server renders, the browser just swaps. */
  var pending = {}, stale = {};
  function refresh(region) {
    var id = region.id;
    /* A change while a fetch is on its way may have missed it: look again once that fetch is done. */
    if (pending[id]) { stale[id] = true; return; }
    if (region.contains(document.activeElement) && document.activeElement.matches("input, textarea, select")) {
      pending[id] = setTimeout(function () { pending[id] = null; refresh(region); }, 1000);
      return;
    }
    pending[id] = setTimeout(function () {
      fetch(location.href, { credentials: "same-origin", headers: { "X-Partial": id } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          pending[id] = null;
          if (html) {
            var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
            if (fresh) { region.innerHTML = fresh.innerHTML; region.dispatchEvent(new CustomEvent("refreshed", { bubbles: true })); }
          }
          again(region);
        })
        .catch(function () { pending[id] = null; again(region); });
    }, 150);
  }
  function again(region) {
    if (stale[region.id]) { stale[region.id] = false; refresh(region); }
  }

  function notify(text, isError) {
    var box = document.getElementById("flash");
    if (!box) { alert(text); return; }
    box.textContent = text;
    box.className = isError ? "flash error" : "flash notice";
    box.hidden = false;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (region) {
      live(region.getAttribute("data-live").split(","), function () { refresh(region); });
    });
  });
  /* A switch or picker that applies at once: <input data-submit-on-change> (no inline handlers: the CSP allows none). */
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.form && field.hasAttribute && field.hasAttribute("data-submit-on-change")) field.form.submit();
  });
  /* Destructive actions ask first: <form data-confirm="Cancel this visit?"> */
  document.addEventListener("submit", function (event) {
    var form = event.target, question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); return; }
    /* A double click must not post twice: disable the buttons once the form is on its way. */
    setTimeout(function () { form.querySelectorAll("button[type=submit], button:not([type])").forEach(function (b) { b.disabled = true; }); }, 0);
  }, true);

  window.Frontdesk = { api: api, live: live, refresh: refresh, notify: notify, csrf: function () { return csrf; } };
})();
