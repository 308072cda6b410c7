/* Session page: item changes are sent without a reload (the server renders, the page swaps the parts), and while
   staff choose an examination or change a quantity the invoice is previewed through POST /api/v1/invoices/preview. */
(function () {
  "use strict";
  var SWAPPED = ["visit", "bill", "invoice", "flash"];

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    SWAPPED.forEach(function (id) {
      var next = fresh.getElementById(id), here = document.getElementById(id);
      if (!next || !here) return;
      /* In place (attributes and content), so live regions keep watching the same element. */
      Array.prototype.slice.call(here.attributes).forEach(function (a) { if (!next.hasAttribute(a.name)) here.removeAttribute(a.name); });
      Array.prototype.slice.call(next.attributes).forEach(function (a) { here.setAttribute(a.name, a.value); });
      here.innerHTML = next.innerHTML;
    });
  }

  function enable(form) {
    form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
  }

  /* Forms marked data-bill (add, re-count, remove a line) go through fetch; the answer is the page after the
     post/redirect/get, notice included. Confirmation and double-click protection come from inbox.js. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-bill") || event.defaultPrevented) return;
    event.preventDefault();
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "X-CSRF-Token": window.Frontdesk.csrf(), "Accept": "text/html" }
    }).then(function (response) {
      return response.text().then(function (text) {
        if (response.ok) { swap(text); return; }
        var page = new DOMParser().parseFromString(text, "text/html");
        var message = page.querySelector("main p, p");
        window.Frontdesk.notify(message ? message.textContent : "That did not work (" + response.status + ").", true);
        enable(form);
      });
    }).catch(function () {
      window.Frontdesk.notify("The clinic server did not answer. Check the connection and try again.", true);
      enable(form);
    });
  });

  function decimals(amount) { var parts = String(amount).split("."); return parts.length > 1 ? parts[1].length : 0; }
  function money(amount, currency) {
    var digits = decimals(amount);
    try {
      return new Intl.NumberFormat("en", { style: "currency", currency: currency, currencyDisplay: "code",
        minimumFractionDigits: digits, maximumFractionDigits: digits }).format(Number(amount)).replace(/\u00a0/g, " ");
    } catch (e) { return currency + " " + amount; }
  }

  function data() {
    var bill = document.getElementById("bill");
    return bill && bill.dataset.preview ? { bill: bill, value: JSON.parse(bill.dataset.preview) } : null;
  }

  /* change: {add: examination id, quantity} or {lineId, quantity} */
  function body(value, change) {
    function qty(line) { return change.lineId === line.line_id ? change.quantity : line.quantity; }
    var exams = value.examinations.map(function (l) { return { examination_id: l.examination_id, quantity: qty(l) }; });
    var items = value.consumables.map(function (l) {
      return { name: l.name, unit_price: l.unit_price, quantity: qty(l), taxable: l.taxable };
    });
    if (change.add) exams.push({ examination_id: change.add, quantity: change.quantity });
    return { branch_id: value.branch_id, patient_id: value.patient_id, examinations: exams, consumables: items,
             loyalty_points: value.loyalty_points };
  }

  function show(box, invoice, label, examinationId) {
    var now = document.getElementById("invoice-total");
    box.textContent = "";
    var head = document.createElement("p");
    head.style.margin = "0";
    head.append(label + ": the patient would pay ");
    var total = document.createElement("strong");
    total.id = "preview-total";
    total.textContent = money(invoice.totals.patient_pays, invoice.currency);
    head.append(total, " (now " + (now ? now.textContent : "—") + "). Nothing is saved until you press the button.");
    box.append(head);
    var line = invoice.lines.filter(function (l) { return l.kind === "examination" && l.ref_id === examinationId; }).pop();
    if (line) {
      var steps = document.createElement("ul");
      steps.className = "steps";
      line.steps.forEach(function (step) {
        var item = document.createElement("li"), what = document.createElement("span"), amount = document.createElement("span");
        what.textContent = step.explanation;
        amount.textContent = money(step.amount, invoice.currency);
        item.append(what, amount);
        steps.append(item);
      });
      box.append(steps);
    }
    box.hidden = false;
  }

  var timer = null, asked = 0;
  function preview(change, label, examinationId) {
    var found = data(), box = document.getElementById("bill-preview");
    if (!found || !box) return;
    clearTimeout(timer);
    timer = setTimeout(function () {
      var mine = ++asked;
      window.Frontdesk.api("POST", "/api/v1/invoices/preview", body(found.value, change)).then(function (invoice) {
        if (mine === asked) show(box, invoice, label, examinationId);
      }).catch(function (error) {
        if (mine !== asked) return;
        box.textContent = error.message;
        box.hidden = false;
      });
    }, 200);
  }

  function onEdit(event) {
    var target = event.target, found = data();
    if (!found || !(target instanceof HTMLElement) || !found.bill.contains(target)) return;
    if (target.id === "add-exam" || target.id === "add-qty") {
      var select = document.getElementById("add-exam"), count = document.getElementById("add-qty");
      var id = Number(select.value), quantity = Number(count.value);
      var box = document.getElementById("bill-preview");
      if (!id || !(quantity >= 1)) { if (box) box.hidden = true; return; }
      var name = found.value.names[String(id)] || "the examination";
      preview({ add: id, quantity: quantity }, "With " + quantity + " × " + name + " added", id);
    } else if (target.dataset && target.dataset.lineId) {
      var lineId = Number(target.dataset.lineId), wanted = Number(target.value);
      if (!(wanted >= 1)) return;
      var line = found.value.examinations.filter(function (l) { return l.line_id === lineId; })[0];
      var label = "With quantity " + wanted;
      preview({ lineId: lineId, quantity: wanted }, label, line ? line.examination_id : null);
    }
  }
  document.addEventListener("change", onEdit);
  document.addEventListener("input", onEdit);
})();
