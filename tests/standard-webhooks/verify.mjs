// Checks deliveries with the `standardwebhooks` package (an implementation
// independent of the service's). Reads {"secret", "deliveries": [{"headers",
// "body"}]} on stdin; prints one result per delivery: {"ok": true, "payload"}
// or {"ok": false, "error"}.
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { secret, deliveries } = JSON.parse(input);
const webhook = new Webhook(secret);
const results = deliveries.map(({ headers, body }) => {
  try {
    return { ok: true, payload: webhook.verify(body, headers) };
  } catch (error) {
    return { ok: false, error: String(error && error.message) };
  }
});
process.stdout.write(JSON.stringify(results));
