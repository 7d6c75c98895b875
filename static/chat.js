// The chat page: each question is answered in place, with the same HTML the page shows
// without JavaScript (GET /faq/ask/answer?q=...). Older exchanges fold to their question
// and the input stays at the bottom of the screen. Without JavaScript the page is a plain
// GET form.
(function () {
  "use strict";
  var form = document.querySelector(".chat-input form.search");
  var chat = document.getElementById("chat");
  var input = document.getElementById("q");
  if (!form || !chat || !input || !window.fetch || !("content" in document.createElement("template"))) return;

  function fragment(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }
  function exchangeFor(query) {
    var details = document.createElement("details");
    details.className = "exchange";
    details.open = true;
    var summary = document.createElement("summary");
    summary.className = "bubble user";
    summary.textContent = query;
    var bot = document.createElement("div");
    bot.className = "bubble bot pending";
    bot.textContent = "お調べしています…";
    details.appendChild(summary);
    details.appendChild(bot);
    return details;
  }
  function foldOlder(current) {
    var all = chat.querySelectorAll("details.exchange");
    for (var i = 0; i < all.length; i++) {
      if (all[i] !== current) all[i].open = false;
    }
  }
  function show(node) {
    node.scrollIntoView({ block: "start", behavior: "smooth" });
  }

  form.addEventListener("submit", function (event) {
    var query = input.value.trim();
    if (!query) return; // let the server say what is missing
    event.preventDefault();
    var pending = exchangeFor(query);
    chat.appendChild(pending);
    foldOlder(pending);
    show(pending);
    input.value = "";
    fetch("/faq/ask/answer?q=" + encodeURIComponent(query), { headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.text().then(function (html) { return { ok: response.ok, html: html }; });
      })
      .then(function (result) {
        if (result.ok) {
          var node = fragment(result.html).querySelector("details.exchange");
          chat.replaceChild(node, pending);
          show(node);
        } else {
          var bot = pending.querySelector(".bubble.bot");
          bot.classList.remove("pending");
          bot.textContent = "";
          bot.appendChild(fragment(result.html));
          input.value = query;
        }
      })
      .catch(function () {
        var bot = pending.querySelector(".bubble.bot");
        bot.classList.remove("pending");
        bot.textContent = "通信に失敗しました。もう一度お試しください。";
        input.value = query;
      });
  });

  // "Was this helpful?" inside the chat: sent in place, thanked in place.
  chat.addEventListener("submit", function (event) {
    var vote = event.target;
    if (!vote.classList || !vote.classList.contains("feedback")) return;
    event.preventDefault();
    var body = new URLSearchParams(new FormData(vote));
    if (event.submitter && event.submitter.name) body.set(event.submitter.name, event.submitter.value);
    fetch(vote.action, { method: "POST", body: body, headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        var p = document.createElement("p");
        p.className = "thanks";
        p.setAttribute("role", "status");
        p.textContent = data.message || data.error;
        vote.replaceWith(p);
      })
      .catch(function () { vote.submit(); });
  });
})();
