// Follows a paid application while its permit is on its way: asks the API every few seconds
// and updates the page in place (the phase and why it waits, in an aria-live region), reloading
// it when the status changes (to show the documents, or why it failed). Without this script the
// page is still right, only not live.
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("avance");
  if (!box || !box.dataset.solicitud) return;
  var every = (parseInt(box.dataset.cada, 10) || 10) * 1000;
  var wait = document.getElementById("espera");
  var phase = document.getElementById("fase");
  function show(el, text) {
    if (!el) return;
    if (el.textContent !== text) el.textContent = text;
    el.hidden = !text;
  }
  function ask() {
    fetch("/v1/applications/" + box.dataset.solicitud, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (app) {
        if (app && app.status !== box.dataset.estado) { window.location.reload(); return; }
        if (app) {
          show(phase, app.permit_progress || "");
          show(wait, app.permit_wait || "");
        }
        window.setTimeout(ask, every);
      })
      .catch(function () { window.setTimeout(ask, every); });
  }
  window.setTimeout(ask, every);
});
