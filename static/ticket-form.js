// Enhances the ticket forms: shows only the fields the chosen case needs, warns about the
// return window as soon as the arrival date is entered, and suggests FAQ answers while the
// customer describes the problem (what was shown and followed travels with the form).
(function () {
  "use strict";
  var form = document.querySelector("form.ticket-form");
  if (!form) return;

  function kind() {
    var checked = form.querySelector("input[name=kind]:checked");
    var hidden = form.querySelector("input[type=hidden][name=kind]");
    return checked ? checked.value : hidden ? hidden.value : "";
  }
  function toggle() {
    var k = kind();
    form.querySelectorAll(".kind-exchange").forEach(function (el) { el.hidden = !!k && k !== "exchange"; });
    form.querySelectorAll(".kind-photos").forEach(function (el) { el.hidden = !!k && k === "exchange"; });
  }
  form.querySelectorAll("input[name=kind]").forEach(function (el) { el.addEventListener("change", toggle); });
  toggle();

  var arrived = form.querySelector("#arrived_on");
  var windowDays = parseInt(document.body.dataset.returnWindow || "3", 10);
  if (arrived) {
    var note = document.createElement("p");
    note.className = "warning"; note.setAttribute("role", "status"); note.hidden = true;
    arrived.parentNode.appendChild(note);
    arrived.addEventListener("change", function () {
      var value = arrived.value ? new Date(arrived.value + "T00:00:00") : null;
      var today = new Date(); today.setHours(0, 0, 0, 0);
      var days = value ? Math.round((today - value) / 86400000) : 0;
      note.hidden = !(days > windowDays);
      note.textContent = "商品到着から" + days + "日が経過しています。返品・交換のご連絡は到着後" + windowDays +
        "日以内にお願いしております。このまま送信はできますが、ご希望に沿えない場合がございます。";
    });
  }

  var description = form.querySelector("[data-deflect]");
  var box = document.getElementById("deflection");
  var shown = form.querySelector("input[name=deflection_shown]");
  var followed = form.querySelector("input[name=deflection_followed]");
  if (!description || !box || !window.fetch) return;
  function remember(input, id) {
    var ids = input.value ? input.value.split(",") : [];
    if (ids.indexOf(id) < 0) { ids.push(id); input.value = ids.join(","); }
  }
  var timer = null, last = "";
  description.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var text = description.value.trim().slice(0, 200);
      if (text.length < 4 || text === last) return;
      last = text;
      fetch("/api/faq/suggest?q=" + encodeURIComponent(text), { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { results: [] }; })
        .then(function (data) {
          box.textContent = "";
          if (!data.results.length) { box.hidden = true; return; }
          var title = document.createElement("p");
          title.textContent = "こちらの回答で解決するかもしれません:";
          box.appendChild(title);
          var ul = document.createElement("ul");
          data.results.forEach(function (r) {
            remember(shown, r.id);
            var li = document.createElement("li");
            var a = document.createElement("a");
            a.href = "/faq/" + encodeURIComponent(r.id); a.target = "_blank"; a.rel = "noopener";
            a.textContent = r.question;
            a.addEventListener("click", function () { remember(followed, r.id); });
            li.appendChild(a); ul.appendChild(li);
          });
          box.appendChild(ul);
          box.hidden = false;
        })
        .catch(function () { box.hidden = true; });
    }, 400);
  });
})();
