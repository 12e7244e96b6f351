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

// Deploy by upload, with a progress bar; then open the revision's build log.
(function () {
  const form = document.querySelector("form[data-upload]");
  if (!form) return;
  const bar = form.querySelector("progress");
  const status = form.querySelector(".upload-status");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const file = form.querySelector("input[type=file]").files[0];
    if (!file) return;
    const request = new XMLHttpRequest();
    request.open("POST", form.dataset.upload);
    request.setRequestHeader("Content-Type", "application/zip");
    request.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    bar.hidden = false;
    bar.value = 0;
    status.textContent = status.dataset.uploading;
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    request.addEventListener("load", function () {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
      if (request.status === 202 && body.number) {
        window.location.href = "/projects/" + form.dataset.project + "/revisions/" + body.number;
      } else {
        bar.hidden = true;
        status.textContent = (body.error && body.error.message) || status.dataset.failed;
        status.className = "hint bad upload-status";
      }
    });
    request.addEventListener("error", function () {
      bar.hidden = true;
      status.textContent = status.dataset.failed;
    });
    request.send(file);
  });
})();

// Logs that follow: read the text stream into the <pre> as it arrives.
(function () {
  const pre = document.querySelector("pre[data-stream]");
  if (!pre) return;
  const follow = pre.dataset.follow === "true";
  async function read() {
    const response = await fetch(pre.dataset.stream + (follow ? "?follow=true" : ""), { credentials: "same-origin" });
    if (!response.ok || !response.body) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent += decoder.decode(value, { stream: true });
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
    // A finished build changes the page (status, error): show it.
    if (pre.dataset.reloadWhenDone === "true") window.location.reload();
  }
  read().catch(function () { /* the page still shows what arrived */ });
})();
