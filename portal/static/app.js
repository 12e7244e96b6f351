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
    status.className = "hint upload-status";
    status.removeAttribute("role");
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
        status.className = "error upload-status";
        status.setAttribute("role", "alert");
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

// Times: pages print UTC inside <time datetime>; show them in the browser's own zone (Intl).
(function () {
  const format = new Intl.DateTimeFormat(document.documentElement.lang || undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
  document.querySelectorAll("time[data-local]").forEach(function (node) {
    const when = new Date(node.getAttribute("datetime"));
    if (!isNaN(when)) node.textContent = format.format(when);
  });
  // Forms with datetime-local fields send the browser's UTC offset for the time entered (so a
  // deadline across a daylight-saving change is right); without this script it stays 0 (UTC).
  // Prefilled values come in UTC (data-utc); show them in the browser's zone before editing.
  const pad = function (n) { return String(n).padStart(2, "0"); };
  document.querySelectorAll("input[data-utc]").forEach(function (input) {
    const when = new Date(input.dataset.utc);
    if (!input.dataset.utc || isNaN(when)) return;
    input.value = when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) + "T" + pad(when.getHours()) + ":" + pad(when.getMinutes());
  });
  document.querySelectorAll("form[data-tz-form]").forEach(function (form) {
    const label = form.querySelector("[data-tz-label]");
    if (label) label.textContent = "(" + Intl.DateTimeFormat().resolvedOptions().timeZone + ")";
    form.addEventListener("submit", function () {
      const due = form.querySelector("input[name=due_at]").value;
      const at = due ? new Date(due) : new Date();
      form.querySelector("input[name=utc_offset_minutes]").value = String(-at.getTimezoneOffset());
    });
  });
})();

// Roster import: the chosen file travels base64-encoded in the form (no multipart parser on the
// server), so a CP949 file reaches it byte for byte.
(function () {
  const form = document.querySelector("form[data-roster-form]");
  if (!form) return;
  const input = form.querySelector("input[data-roster-file]");
  input.addEventListener("change", function () {
    const file = input.files[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = function () {
      const bytes = new Uint8Array(reader.result);
      let binary = "";
      for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
      form.querySelector("input[name=file_b64]").value = btoa(binary);
    };
    reader.readAsArrayBuffer(file);
  });
})();

// Grading: scores and feedback save as they change; opening the page wakes this submission and
// the next few, so the grader never waits on a cold start.
(function () {
  const card = document.querySelector("[data-grading]");
  if (!card) return;
  const base = card.dataset.grading;
  const headers = { "Content-Type": "application/json", "X-CSRF-Token": card.dataset.csrf };
  fetch(base + "/prewarm", { method: "POST", headers: headers, credentials: "same-origin" }).catch(function () {});
  const form = card.querySelector("form[data-grade-form]");
  const status = form.querySelector("[data-save-status]");
  const total = form.querySelector("[data-total]");
  let timer = null;
  async function save() {
    const scores = Array.from(form.querySelectorAll("input[name=score]")).map(function (i) { return i.value; });
    const feedback = form.querySelector("textarea[name=feedback]").value;
    status.firstChild.textContent = status.dataset.saving + " ";
    try {
      const response = await fetch(base + "/grade", { method: "POST", headers: headers, credentials: "same-origin", body: JSON.stringify({ scores: scores, feedback: feedback }) });
      const body = await response.json();
      if (response.ok) {
        status.firstChild.textContent = status.dataset.saved + ": ";
        total.textContent = body.grade === null ? "" : String(body.grade);
        status.className = "hint ok";
      } else {
        status.firstChild.textContent = ((body.error && body.error.message) || "error") + " ";
        status.className = "error";
      }
    } catch (e) {
      status.className = "error";
    }
  }
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(save, 400);
  });
  form.addEventListener("submit", function (event) { event.preventDefault(); save(); });
})();
