// Slipway portal: small progressive enhancements. Every page works without this file.
"use strict";

// The create-project form checks the name as it is typed.
(function () {
  const input = document.querySelector("input[data-availability]");
  const status = document.getElementById("name-status");
  if (!input || !status) return;
  let timer = null;
  let seq = 0;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    const name = input.value.trim();
    if (!name) return;
    timer = setTimeout(async function () {
      const mine = ++seq;
      try {
        const response = await fetch(input.dataset.availability + "?name=" + encodeURIComponent(name), { credentials: "same-origin" });
        if (!response.ok || mine !== seq) return;
        const body = await response.json();
        status.textContent = body.available ? status.dataset.free : (body.message || status.dataset.taken);
        status.className = body.available ? "hint ok" : "hint bad";
        input.setAttribute("aria-invalid", body.available ? "false" : "true");
      } catch (e) { /* offline: the server checks again on submit */ }
    }, 250);
  });
})();
