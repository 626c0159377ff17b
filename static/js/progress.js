// Keeps an export's progress current without reloading the page; reloads once at the end
// so the page shows the studies decided. No inline script: the CSP forbids it.
(function () {
  "use strict";
  var region = document.querySelector("[data-progress-url]");
  if (!region) return;
  var url = region.getAttribute("data-progress-url");
  var bar = region.querySelector("progress");
  var labels = {queued: "Queued", running: "Running", complete: "Complete", failed: "Failed"};

  function size(bytes) {
    var units = ["bytes", "KB", "MB", "GB", "TB"], i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
  }

  function show(name, text) {
    region.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) {
      el.textContent = text;
    });
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (p) {
        if (!p) return setTimeout(poll, 3000);
        bar.max = p.studies_total || 1;
        bar.value = p.studies_done;
        bar.textContent = p.studies_done + " of " + p.studies_total;
        show("status", labels[p.status] || p.status);
        show("studies_done", p.studies_done);
        show("studies_total", p.studies_total);
        show("files_written", p.files_written);
        show("bytes_written", size(p.bytes_written));
        show("error", p.error);
        if (p.finished) { window.location.reload(); } else { setTimeout(poll, 1000); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
