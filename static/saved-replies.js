// Saved replies on the console's ticket page: 「挿入」 puts the chosen saved reply (already
// rendered for this ticket by the server, in the option's data-text) into the reply box at
// the cursor, without reloading the page, so that nothing typed is lost. Without this
// script the form reloads the page with ?reply=ID and the server fills the reply box.
(function () {
  "use strict";
  var picker = document.querySelector("form.saved-reply-picker");
  if (!picker) return;
  picker.addEventListener("submit", function (event) {
    var box = document.querySelector("textarea[name=body]:not([readonly])");
    var select = picker.querySelector("select[name=reply]");
    var option = select && select.options[select.selectedIndex];
    if (!box || !option || !option.hasAttribute("data-text")) return;  // reload instead
    event.preventDefault();
    var text = option.getAttribute("data-text");
    var start = box.selectionStart || 0;
    var end = box.selectionEnd || 0;
    if (!box.value) {
      box.value = text;
      start = end = 0;
    } else {
      box.value = box.value.slice(0, start) + text + box.value.slice(end);
    }
    var caret = start + text.length;
    box.focus();
    box.setSelectionRange(caret, caret);
    box.dispatchEvent(new Event("input", { bubbles: true }));
    var status = picker.parentNode.querySelector(".saved-reply-inserted-js");
    if (!status) {
      status = document.createElement("p");
      status.className = "notice saved-reply-inserted-js";
      status.setAttribute("role", "status");
      picker.parentNode.insertBefore(status, picker.nextSibling);
    }
    status.textContent = "「" + option.textContent.trim() + "」を返信欄に挿入しました。" +
      (text.indexOf("【要入力") >= 0 ? "「【要入力: …】」の箇所を書き換えてから送信してください。"
                                   : "内容を確認してから送信してください。");
  });
})();
