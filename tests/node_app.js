// The small HTTP server of the end-to-end test: `node node_app.js PORT`.
const http = require("http");
const port = Number(process.argv[2]);
http
  .createServer((req, res) => res.end(`hello from ${process.pid}\n`))
  .listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));
