// Runs in the browser. Every unknown path is answered with index.html (the SPA fallback), so this
// script sees /about or /anything and can show a page for it, as a client-side router would.
const route = document.querySelector("#route");
route.textContent = `You are at ${window.location.pathname}; built ${import.meta.env.MODE === "production" ? "for production" : "for development"}.`;
