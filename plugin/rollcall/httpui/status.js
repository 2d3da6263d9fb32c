// rollcall status page: follow the registry without reloading the page.
// A blocking query for the page's state part (?partial=1&index=R&wait=D)
// is held by the server until the revision served passes R, or for D;
// its answer replaces the part, and the next query starts a second later
// (a registry that changes all the time redraws once a second, not at
// every change).
(function () {
  "use strict";
  var main = document.getElementById("state");
  if (!main || !window.fetch) {
    return;
  }
  var index = main.getAttribute("data-index") || "0";
  var wait = main.getAttribute("data-wait") || "15s";
  function poll() {
    fetch("/?partial=1&index=" + encodeURIComponent(index) + "&wait=" + encodeURIComponent(wait), { cache: "no-store" })
      .then(function (r) {
        var next = r.headers.get("X-Rollcall-Index");
        return r.text().then(function (html) {
          main.innerHTML = html;
          if (next) {
            index = next;
            main.setAttribute("data-index", next);
          }
          document.body.classList.remove("offline");
          setTimeout(poll, r.ok ? 1000 : 2000);
        });
      })
      .catch(function () {
        // The server is away (restarting, or the network): try again soon.
        document.body.classList.add("offline");
        setTimeout(poll, 5000);
      });
  }
  poll();
})();
