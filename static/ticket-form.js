// Enhances the ticket forms; every form also works without it.
// - Shows the fields the chosen case needs and switches the 必須/任意 badges with it.
// - Shows the late-arrival notice and its checkbox as soon as the arrival date is entered.
// - Checks each photo's type and size as soon as it is chosen, and previews it. A photo over
//   the limit is not uploaded: the server is told its size instead, and answers with it and
//   every other problem in the same round.
// - Sends with a progress bar and shows the server's answer in place. Files the server did
//   not look at (a refused request, storage down) stay chosen; a page whose token expired is
//   sent once more with the fresh token the answer carries.
// - On the contact form, the 返品・交換・不良品 topic leads on to the returns form.
// - Suggests FAQ answers while the customer describes the problem (what was shown and
//   followed travels with the form).
(function () {
  "use strict";
  var PHOTO_TYPES = ["image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"];
  var PHOTO_NAMES = /\.(jpe?g|png|webp|heic|heif)$/i;
  var PREVIEWABLE = /^image\/(jpeg|png|webp)$/;
  // The progress bar appears only when sending takes longer than this (slow connections).
  var PROGRESS_DELAY_MS = 250;
  var NETWORK_ERROR = "送信できませんでした。通信環境をご確認のうえ、もう一度お試しください。";

  function megabytes(bytes) {
    return (bytes / (1024 * 1024)).toFixed(1);
  }

  function enhance(form) {
    var button = form.querySelector("button[type=submit]");
    var buttonLabel = button ? button.textContent : "";
    var progress = form.querySelector(".upload-progress");
    var bar = progress && progress.querySelector("progress");
    var progressText = progress && progress.querySelector(".upload-status");
    var windowDays = parseInt(document.body.dataset.returnWindow || "3", 10);
    // Photos chosen but too large to send: field name -> size in bytes.
    var tooLarge = {};
    var sending = false;

    // -- the case chosen decides the fields and badges ----------------------------------
    function kind() {
      var checked = form.querySelector("input[name=kind]:checked");
      var hidden = form.querySelector("input[type=hidden][name=kind]");
      return checked ? checked.value : hidden ? hidden.value : "";
    }
    function toggleKind() {
      var k = kind();
      form.querySelectorAll(".kind-exchange").forEach(function (el) { el.hidden = !!k && k !== "exchange"; });
      form.querySelectorAll(".kind-photos").forEach(function (el) { el.hidden = !!k && k === "exchange"; });
      form.querySelectorAll("[data-required-for]").forEach(function (badge) {
        var needed = !k || badge.getAttribute("data-required-for").split(" ").indexOf(k) >= 0;
        badge.textContent = needed ? "必須" : "任意";
        badge.className = "badge " + (needed ? "required" : "optional");
        var label = badge.closest("label");
        var control = label && document.getElementById(label.htmlFor);
        if (!control) return;
        var kept = form.querySelector("input[name='" + control.name + "_kept']");
        if (needed && !kept) control.setAttribute("aria-required", "true");
        else control.removeAttribute("aria-required");
      });
    }

    // -- the late-arrival notice ----------------------------------------------------------
    var arrived = form.querySelector("#arrived_on");
    var late = form.querySelector("[data-late]");
    function checkLate() {
      if (!arrived || !late) return;
      var value = arrived.value ? new Date(arrived.value + "T00:00:00") : null;
      var today = new Date();
      today.setHours(0, 0, 0, 0);
      var days = value && !isNaN(value.getTime()) ? Math.round((today - value) / 86400000) : null;
      var isLate = days !== null && days > windowDays;
      late.hidden = !isLate;
      var text = late.querySelector("[data-late-days-text]");
      if (text && isLate) text.textContent = "(到着から" + days + "日)";
    }

    // -- photos: checked and previewed as soon as they are chosen ---------------------------
    function note(field, className, role) {
      var el = field.querySelector("." + className);
      if (!el) {
        el = document.createElement(className === "photo-preview" ? "div" : "p");
        el.className = className + (className === "client-error" ? " field-error" : "");
        if (role) el.setAttribute("role", role);
        var input = field.querySelector("input[type=file]");
        field.insertBefore(el, className === "photo-preview" ? input.nextSibling : input);
      }
      return el;
    }
    function checkPhoto(input) {
      var field = input.closest(".field");
      var error = note(field, "client-error", "alert");
      var preview = note(field, "photo-preview");
      var file = input.files && input.files[0];
      var max = parseInt(input.getAttribute("data-max-bytes") || "0", 10);
      var label = input.getAttribute("data-label") || "写真";
      delete tooLarge[input.name];
      error.hidden = true;
      error.textContent = "";
      preview.hidden = true;
      preview.textContent = "";
      // The server's word on an earlier file no longer applies once another is chosen.
      var earlier = document.getElementById(input.name + "-error");
      if (earlier) {
        earlier.hidden = !!file;
        field.classList.toggle("has-error", !file);
      }
      if (!file) return;
      if (max && file.size > max) {
        tooLarge[input.name] = file.size;
        error.textContent = "「" + label + "」のファイルが大きすぎます(" + megabytes(file.size) + "MB)。" +
          megabytes(max).replace(/\.0$/, "") + "MB以下の画像を選び直してください。この写真は送信されません。";
        error.hidden = false;
        return;
      }
      if (PHOTO_TYPES.indexOf(file.type) < 0 && !PHOTO_NAMES.test(file.name)) {
        error.textContent = "「" + label + "」はJPEG・PNG・WebP・HEIC形式の画像を選んでください。";
        error.hidden = false;
        return;
      }
      if (PREVIEWABLE.test(file.type) && window.URL && URL.createObjectURL) {
        var img = document.createElement("img");
        img.src = URL.createObjectURL(file);
        img.alt = "選んだ写真: " + file.name;
        img.width = 96;
        img.addEventListener("load", function () { URL.revokeObjectURL(img.src); });
        preview.appendChild(img);
      }
      var caption = document.createElement("span");
      caption.textContent = "選択中: " + file.name + "(" + megabytes(file.size) + "MB)";
      preview.appendChild(caption);
      preview.hidden = false;
    }

    // -- the contact form's way to the returns form ---------------------------------------
    var category = form.querySelector("#category");
    function checkTopic() {
      if (!category || !button) return;
      var option = category.options[category.selectedIndex];
      var leads = !!option && option.hasAttribute("data-leads-to");
      var hint = form.querySelector("#returns-topic-hint");
      if (hint) hint.hidden = !leads;
      button.textContent = leads ? button.getAttribute("data-returns-label") : buttonLabel;
    }

    // -- FAQ suggestions while the problem is described ------------------------------------
    var description = form.querySelector("[data-deflect]");
    var box = form.querySelector("#deflection");
    var shown = form.querySelector("input[name=deflection_shown]");
    var followed = form.querySelector("input[name=deflection_followed]");
    var timer = null;
    var lastQuery = "";
    function remember(input, id) {
      var ids = input.value ? input.value.split(",") : [];
      if (ids.indexOf(id) < 0) { ids.push(id); input.value = ids.join(","); }
    }
    function suggest() {
      if (!description || !box || !window.fetch) return;
      clearTimeout(timer);
      timer = setTimeout(function () {
        var text = description.value.trim().slice(0, 200);
        if (text.length < 4 || text === lastQuery) return;
        lastQuery = text;
        // "first": this form has shown no suggestion yet (counted once per form, insights).
        var first = shown && !shown.value ? "&first=1" : "";
        fetch("/api/faq/suggest?q=" + encodeURIComponent(text) + first, { headers: { Accept: "application/json" } })
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
              a.href = "/faq/" + encodeURIComponent(r.id);
              a.target = "_blank";
              a.rel = "noopener";
              a.textContent = r.question;
              a.addEventListener("click", function () { remember(followed, r.id); });
              li.appendChild(a);
              ul.appendChild(li);
            });
            box.appendChild(ul);
            box.hidden = false;
          })
          .catch(function () { box.hidden = true; });
      }, 400);
    }

    // -- sending with progress, answering in place ---------------------------------------
    function payload() {
      var data = new FormData(form);
      Object.keys(tooLarge).forEach(function (name) {
        data.delete(name);
        data.append(name + "_too_large", String(tooLarge[name]));
      });
      return data;
    }
    function showProgress(percent, text) {
      if (!progress) return;
      if (percent === null) bar.removeAttribute("value");
      else bar.value = percent;
      progressText.textContent = text;
    }
    function done() {
      sending = false;
      if (button) button.disabled = false;
      if (progress) progress.hidden = true;
    }
    function failed(message) {
      done();
      var alert = form.querySelector(".send-error");
      if (!alert) {
        alert = document.createElement("div");
        alert.className = "send-error error-summary";
        alert.setAttribute("role", "alert");
        alert.tabIndex = -1;
        form.insertBefore(alert, form.querySelector(".submit-row"));
      }
      alert.textContent = (message || NETWORK_ERROR) + " 入力内容はそのまま残っています。";
      alert.hidden = false;
      alert.focus();
    }
    function send(retried) {
      sending = true;
      if (button) button.disabled = true;
      var reveal = setTimeout(function () { if (sending && progress) progress.hidden = false; }, PROGRESS_DELAY_MS);
      showProgress(0, "送信中… 0%");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "text/html");
      xhr.upload.addEventListener("progress", function (event) {
        if (!event.lengthComputable) return;
        var percent = Math.floor((event.loaded / event.total) * 100);
        showProgress(percent, "送信中… " + percent + "%");
      });
      xhr.upload.addEventListener("load", function () { showProgress(null, "受け付けています…"); });
      xhr.addEventListener("load", function () { clearTimeout(reveal); answered(xhr, retried); });
      xhr.addEventListener("error", function () { clearTimeout(reveal); failed(); });
      xhr.addEventListener("abort", function () { clearTimeout(reveal); failed(); });
      xhr.send(payload());
    }
    function answered(xhr, retried) {
      var action = new URL(form.action, location.href);
      var landed = xhr.responseURL ? new URL(xhr.responseURL) : action;
      if (xhr.status < 400 && landed.pathname !== action.pathname) {
        location.assign(landed.href); // accepted: on to the confirmation page
        return;
      }
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var fresh = doc.querySelector("form.ticket-form");
      if (fresh && fresh.getAttribute("data-refused") === "csrf" && !retried) {
        var token = fresh.querySelector("input[name=csrf_token]");
        var mine = form.querySelector("input[name=csrf_token]");
        if (token && mine) {
          mine.value = token.value; // the answer also set the matching cookie
          send(true);
          return;
        }
      }
      var main = doc.querySelector("main");
      if (!main || (!fresh && xhr.status >= 400)) {
        // Not a form (413, 500...): say why above the button; the form stays as it is.
        var said = doc.querySelector("main p");
        failed(said ? said.textContent : "");
        return;
      }
      swap(doc);
    }
    function swap(doc) {
      var newMain = document.adoptNode(doc.querySelector("main"));
      // The files the server did not look at stay chosen: the inputs move over as they are.
      newMain.querySelectorAll("[data-keep-file] input[type=file]").forEach(function (input) {
        var old = form.querySelector("input[type=file][name='" + input.name + "']");
        if (old && old.files && old.files.length) input.parentNode.replaceChild(old, input);
      });
      var next = newMain.querySelector("form.ticket-form");
      var leaving = next && next.getAttribute("data-form") !== form.getAttribute("data-form");
      document.querySelector("main").replaceWith(newMain);
      document.title = doc.title;
      if (leaving && window.history && history.replaceState) {
        history.replaceState(null, "", next.getAttribute("action"));
      }
      window.scrollTo(0, 0);
      if (next) enhance(next);
      else {
        var heading = newMain.querySelector("h1");
        if (heading) { heading.tabIndex = -1; heading.focus(); }
      }
    }

    // -- wiring (delegated, so that inputs moved into a new form answer to it alone) -----
    form.addEventListener("change", function (event) {
      var target = event.target;
      if (target.name === "kind") toggleKind();
      else if (target === arrived) checkLate();
      else if (target.type === "file") checkPhoto(target);
      else if (target === category) checkTopic();
    });
    form.addEventListener("input", function (event) {
      if (event.target === arrived) checkLate();
      else if (event.target === description) suggest();
    });
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest || !window.DOMParser || !window.URL) return;
      event.preventDefault();
      if (!sending) send(false);
    });

    toggleKind();
    checkTopic();
    if (late && late.hidden) checkLate();
    // Files kept from a refused request, or restored by the browser's back button.
    form.querySelectorAll("input[type=file]").forEach(function (input) {
      if (input.files && input.files.length) checkPhoto(input);
    });
    var summary = document.getElementById("error-summary") || document.getElementById("notice");
    if (summary) {
      summary.tabIndex = -1;
      summary.focus();
    }
  }

  var form = document.querySelector("form.ticket-form");
  if (form) enhance(form);
})();
