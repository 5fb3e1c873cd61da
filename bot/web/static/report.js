// The report page's charts: the options bot/report_charts.py made (the HTML report's own), in a
// JSON block of the page, drawn with the ECharts the console serves itself.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var block = document.getElementById("report-options");
    if (!block || !window.echarts) return;
    var options = JSON.parse(block.textContent);
    var charts = [];
    var pending = 0;
    document.querySelectorAll(".chart").forEach(function (box) {
      var option = options[box.dataset.key];
      if (!option) { box.remove(); return; }
      option.animationDuration = 300;
      option.title.textStyle = { fontSize: 15 };
      var chart = echarts.init(box, null, { renderer: "canvas" });
      pending += 1;
      chart.on("finished", function once() {
        chart.off("finished", once);
        pending -= 1;
        if (pending === 0) document.body.setAttribute("data-ready", "1");
      });
      chart.setOption(option);
      charts.push(chart);
    });
    window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  });
})();
