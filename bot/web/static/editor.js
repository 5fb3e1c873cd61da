// The playbook editor: CodeMirror over the form's textarea; Check and Save post the text and
// show the answer below, marking each problem's line (gutter sign, tinted line, the message
// on hover). Without JavaScript the form still works, with the answer on a new page.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("editor-form");
    var result = document.getElementById("result");
    if (!form || !result || !window.CodeMirror) return;
    var cm = CodeMirror.fromTextArea(form.elements.text, {
      mode: "yaml", lineNumbers: true, lineWrapping: true, indentUnit: 2, tabSize: 2,
      gutters: ["marks", "CodeMirror-linenumbers"],
      extraKeys: { Tab: function (c) { c.replaceSelection("  "); } }  // YAML: spaces, never tabs
    });
    var marked = [];
    function mark() {
      marked.forEach(function (m) {
        cm.removeLineClass(m, "background", "line-error");
        cm.removeLineClass(m, "background", "line-warning");
        cm.setGutterMarker(m, "marks", null);
      });
      marked = [];
      result.querySelectorAll("[data-line]").forEach(function (li) {
        var n = parseInt(li.dataset.line, 10) - 1;
        if (isNaN(n) || n < 0 || n >= cm.lineCount()) return;
        var level = li.dataset.level;
        var sign = document.createElement("span");
        sign.className = "mark mark-" + level;
        sign.textContent = level === "error" ? "✖" : "⚠";
        sign.title = li.textContent.trim();
        cm.setGutterMarker(n, "marks", sign);
        marked.push(cm.addLineClass(n, "background", "line-" + level));
        li.querySelector("a").addEventListener("click", function (e) {
          e.preventDefault();
          cm.setCursor(n, 0);
          cm.scrollIntoView(null, 80);
          cm.focus();
        });
      });
      var version = result.querySelector("[data-version]");
      if (version) form.elements.version.value = version.dataset.version;
    }
    function send(url) {
      cm.save();
      var body = new URLSearchParams(new FormData(form));
      return fetch(url, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "HX-Request": "true", "X-CSRF-Token": form.elements.csrf.value }
      }).then(function (r) { return r.text(); }).then(function (html) {
        result.innerHTML = html;  // the server's own page part, its texts escaped there
        mark();
      });
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (e.submitter && e.submitter.value === "check") {
        send(form.dataset.check);
        return;
      }
      // Saving: checked first, so what the save changes is shown (and agreed) before it does.
      send(form.dataset.check).then(function () {
        var valid = result.querySelector("[data-confirm]");
        if (valid && window.confirm(valid.dataset.confirm)) send(form.dataset.save);
      });
    });
    mark();
  });
})();
