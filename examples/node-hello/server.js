// An Express app for the `node` template: Slipway runs `npm start` and sets PORT.
const express = require("express");

const app = express();
const port = Number(process.env.PORT) || 3000;
// Inside its sandbox the app listens on every address; HOST narrows that when running by hand.
const host = process.env.HOST || "0.0.0.0";

app.get("/", (req, res) => {
  res.type("text/plain").send("Hello from Slipway (Node + Express)\n");
});

app.listen(port, host, () => {
  console.log(`listening on http://${host}:${port}`);
});
