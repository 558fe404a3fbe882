// A Probot app with one no-op handler, served by Probot's own Node middleware: the baseline for
// coder's webhook ingress benchmark (bench/ingress.py). It prints "ready <port>" once listening.
import { readFileSync } from "node:fs";
import http from "node:http";
import { Probot, createNodeMiddleware } from "probot";

const [port, keyPath, secret] = process.argv.slice(2);
const probot = new Probot({
  appId: 1,
  privateKey: readFileSync(keyPath, "utf8"),
  secret,
  logLevel: "fatal",
});
const app = (probotApp) => {
  probotApp.on("issues.labeled", async () => {});
};
const middleware = await createNodeMiddleware(app, {
  probot,
  webhooksPath: "/api/github/webhooks",
});
const server = http.createServer(middleware);
server.listen(Number(port), "127.0.0.1", () => {
  console.log(`ready ${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
