// Load generator for the ingress benchmark: signed GitHub deliveries, each with a fresh
// X-GitHub-Delivery, through autocannon. Prints one JSON object with the results.
//   node load.mjs URL SECRET PAYLOAD_PATH CONNECTIONS SECONDS [RATE]
import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import autocannon from "autocannon";

const [url, secret, payloadPath, connections, seconds, rate] = process.argv.slice(2);
const body = JSON.stringify(JSON.parse(readFileSync(payloadPath, "utf8")));
const signature = "sha256=" + createHmac("sha256", secret).update(body).digest("hex");

const result = await autocannon({
  url,
  method: "POST",
  body,
  connections: Number(connections),
  duration: Number(seconds),
  ...(rate ? { overallRate: Number(rate) } : {}),
  headers: {
    "content-type": "application/json",
    "user-agent": "GitHub-Hookshot/bench",
    "x-github-event": "issues",
    "x-github-hook-id": "1",
    "x-hub-signature-256": signature,
  },
  requests: [
    {
      setupRequest: (request) => ({
        ...request,
        headers: { ...request.headers, "x-github-delivery": randomUUID() },
      }),
    },
  ],
});
console.log(
  JSON.stringify({
    per_second: result.requests.average,
    total: result.requests.total,
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
  }),
);
