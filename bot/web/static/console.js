// The cohort page: refresh the live part when the server says something changed (server-sent
// events), and keep the roster's search and filter applied across refreshes.
(function () {
  "use strict";
  function applyFilter() {
    var search = document.getElementById("search");
    var state = document.getElementById("state");
    if (!search || !state) return;
    var text = search.value.trim().toLowerCase();
    document.querySelectorAll("#roster tbody tr").forEach(function (row) {
      var nameOk = !text || row.dataset.name.indexOf(text) !== -1;
      var stateOk = !state.value || row.dataset.states.split(" ").indexOf(state.value) !== -1;
      row.classList.toggle("hidden", !(nameOk && stateOk));
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    ["search", "state"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.addEventListener("input", applyFilter);
    });
    document.body.addEventListener("htmx:afterSwap", applyFilter);
    if (!live || !window.EventSource) return;
    var source = new EventSource(live.dataset.events);
    source.addEventListener("change", function () {
      htmx.ajax("GET", live.dataset.src, { target: "#live", swap: "innerHTML" });
    });
  });
})();
