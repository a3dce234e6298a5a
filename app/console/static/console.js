// ledgerflow console: local times and copy buttons. No inline script anywhere (CSP).
(function () {
  "use strict";

  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment.getTime())) { return; }
      el.title = el.textContent.trim();          // UTC stays in the tooltip
      el.textContent = format.format(moment);    // the viewer's time zone
      el.dataset.local = "1";
    });
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    document.body.removeChild(area);
    return done;
  }

  function announce(button, text) {
    var before = button.textContent;
    button.textContent = text;
    window.setTimeout(function () { button.textContent = before; }, 1500);
  }

  function copyButtons(root) {
    root.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var text = button.getAttribute("data-copy");
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(
            function () { announce(button, "Copied"); },
            function () { announce(button, fallbackCopy(text) ? "Copied" : "Copy failed"); }
          );
        } else {
          announce(button, fallbackCopy(text) ? "Copied" : "Copy failed");
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    copyButtons(document);
  });
})();
