// A Node app without dependencies or a start script: Slipway runs `node server.js` (package.json's
// `main`) and sets PORT.
const http = require("node:http");

const port = Number(process.env.PORT) || 3000;
const host = process.env.HOST || "0.0.0.0";

const server = http.createServer((req, res) => {
  if (req.url !== "/") {
    res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
    res.end("Not found\n");
    return;
  }
  res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
  res.end("Hello from Slipway (plain Node http)\n");
});

server.listen(port, host, () => {
  console.log(`listening on http://${host}:${port}`);
});
