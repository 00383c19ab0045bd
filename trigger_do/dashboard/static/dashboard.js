// trigger.do dashboard: the little the pages do in the browser (no inline script runs:
// the Content-Security-Policy allows only this file and htmx from this origin).
(function () {
  "use strict";
  // A "select all" checkbox: data-select-all="<name>" ticks every box of that name.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("[data-select-all]")) return;
    var name = box.getAttribute("data-select-all");
    document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (b) {
      b.checked = box.checked;
    });
  });
  // A "use this payload" button: data-fill="<textarea id>" data-value="<text>".
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-fill]");
    if (!button) return;
    var area = document.getElementById(button.getAttribute("data-fill"));
    if (!area) return;
    area.value = button.getAttribute("data-value");
    area.focus();
  });
  // Times are sent in UTC; show them in the reader's zone (the UTC text stays as a title).
  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime()) || t.dataset.local) return;
      t.title = t.textContent;
      t.textContent = d.toLocaleString();
      t.dataset.local = "1";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
  document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
  document.addEventListener("htmx:afterSettle", function (e) { localTimes(e.target); });
})();
