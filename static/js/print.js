// "Print or save as PDF": the browser's own print dialog, which can also save a PDF.
// A file, not an inline handler, so the Content Security Policy needs no exception.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
});
