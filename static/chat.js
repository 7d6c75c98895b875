// Enhances the chat page: answers arrive in place and the conversation keeps growing.
// Without JavaScript the page works as a plain GET form.
(function () {
  "use strict";
  var form = document.querySelector("form.search");
  var chat = document.getElementById("chat");
  var input = document.getElementById("q");
  if (!form || !chat || !window.fetch) return;

  function bubble(cls) {
    var div = document.createElement("div");
    div.className = "bubble " + cls;
    chat.appendChild(div);
    return div;
  }
  function link(href, text) {
    var a = document.createElement("a");
    a.href = href; a.textContent = text;
    return a;
  }
  function list(results, query) {
    var ul = document.createElement("ul");
    ul.className = "suggestions";
    results.forEach(function (r) {
      var li = document.createElement("li");
      li.appendChild(link("/faq/" + encodeURIComponent(r.id) + "?q=" + encodeURIComponent(query), r.question));
      ul.appendChild(li);
    });
    return ul;
  }
  function feedback(id, query, box) {
    var p = document.createElement("p");
    p.textContent = "この回答は役に立ちましたか？ ";
    ["yes", "no"].forEach(function (vote) {
      var b = document.createElement("button");
      b.type = "button"; b.className = "vote"; b.textContent = vote === "yes" ? "はい" : "いいえ";
      b.addEventListener("click", function () {
        var body = new URLSearchParams({ helpful: vote, q: query });
        var token = document.querySelector("meta[name=csrf-token]");
        fetch("/faq/" + encodeURIComponent(id) + "/feedback", {
          method: "POST", body: body, credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRF-Token": token ? token.content : "" }
        }).then(function (r) { return r.json(); }).then(function (data) {
          p.textContent = data.message || data.error;
        });
      });
      p.appendChild(b);
    });
    box.appendChild(p);
  }
  function render(data) {
    var box = bubble("bot");
    if (data.answered) {
      var h = document.createElement("strong"); h.textContent = data.answer.question; box.appendChild(h);
      var t = document.createElement("div"); t.className = "answer-text"; t.textContent = data.answer.answer; box.appendChild(t);
      feedback(data.answer.id, data.query, box);
      if (data.results.length > 1) {
        var more = document.createElement("p"); more.textContent = "ほかの質問:"; box.appendChild(more);
        box.appendChild(list(data.results.slice(1), data.query));
      }
    } else {
      var p = document.createElement("p");
      p.textContent = data.results.length ? "ぴったりの回答が見つかりませんでした。こちらの質問が近いかもしれません。" : "ぴったりの回答が見つかりませんでした。";
      box.appendChild(p);
      if (data.results.length) box.appendChild(list(data.results, data.query));
      var c = document.createElement("p");
      c.appendChild(document.createTextNode("解決しない場合は、"));
      c.appendChild(link("/contact", "お問い合わせフォーム"));
      c.appendChild(document.createTextNode("からご連絡ください。"));
      box.appendChild(c);
    }
    box.scrollIntoView({ block: "nearest" });
  }
  form.addEventListener("submit", function (event) {
    var query = input.value.trim();
    if (!query) return; // let the server say what is missing
    event.preventDefault();
    bubble("user").textContent = query;
    input.value = "";
    fetch("/api/faq/search?q=" + encodeURIComponent(query), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (data.error) { bubble("bot").textContent = data.error; input.value = query; return; }
        render(data);
      })
      .catch(function () { bubble("bot").textContent = "通信に失敗しました。もう一度お試しください。"; input.value = query; });
  });
})();
