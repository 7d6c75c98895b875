// The console's ticket page: tell the server every few seconds that this agent has the
// ticket open (viewing, or typing while a reply or note is being written), and show who
// else has it open (二重対応防止). Without JavaScript the page shows who was there when it
// was loaded. The CSRF token is read from the page's own forms and sent as X-CSRF-Token.
(function () {
  "use strict";
  var box = document.getElementById("presence");
  var token = document.querySelector("form.reply-form input[name=csrf_token]");
  if (!box || !token || !window.fetch || !window.FormData) return;
  var url = box.getAttribute("data-url");
  var version = box.getAttribute("data-version");
  var changed = document.getElementById("ticket-changed");
  var INTERVAL = 10000;
  var TYPING_FOR = 15000;
  var lastTyped = 0;
  var timer = null;

  function kind() {
    return Date.now() - lastTyped < TYPING_FOR ? "typing" : "viewing";
  }
  function form(what) {
    var data = new FormData();
    data.append("kind", what);
    data.append("version", version);
    data.append("csrf_token", token.value);
    return data;
  }
  function show(others) {
    while (box.firstChild) box.removeChild(box.firstChild);
    if (!others.length) return;
    var warning = document.createElement("p");
    warning.className = "presence-warning";
    var strong = document.createElement("strong");
    strong.textContent = "ほかの担当者がこのチケットを開いています。";
    warning.appendChild(strong);
    warning.appendChild(document.createTextNode("二重対応にご注意ください。"));
    box.appendChild(warning);
    var list = document.createElement("ul");
    list.className = "presence-list";
    others.forEach(function (other) {
      var item = document.createElement("li");
      item.className = "presence-" + other.kind;
      item.textContent = other.name + " さん: " + other.label;
      list.appendChild(item);
    });
    box.appendChild(list);
  }
  function ping(what) {
    return fetch(url, {
      method: "POST",
      body: form(what),
      credentials: "same-origin",
      headers: { "X-CSRF-Token": token.value, "Accept": "application/json" }
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (answer) {
      if (!answer) return;
      show(answer.others || []);
      if (changed && answer.changed) changed.hidden = false;
    }).catch(function () { /* the next ping tries again */ });
  }
  function schedule() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () { ping(kind()).then(schedule, schedule); }, INTERVAL);
  }
  document.querySelectorAll("textarea").forEach(function (area) {
    area.addEventListener("input", function () {
      var was = kind();
      lastTyped = Date.now();
      if (was !== "typing") ping("typing");
    });
  });
  window.addEventListener("pagehide", function () {
    if (navigator.sendBeacon) navigator.sendBeacon(url, form("left"));
  });
  ping(kind()).then(schedule, schedule);
})();
