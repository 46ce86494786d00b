// Load test of the example payments API: each iteration creates a payment, reads it back
// and lists payments. The target comes from __ENV.TARGET_URL (sluice sets it from the
// stage's target); the thresholds here are merged with the stage's own.
import http from "k6/http";
import { check, sleep } from "k6";

const target = __ENV.TARGET_URL || "http://127.0.0.1:18081";
const json = { headers: { "Content-Type": "application/json" } };

export const options = {
  vus: 5,
  duration: "10s",
  thresholds: {
    http_req_failed: ["rate<0.01"],
    http_req_duration: ["p(95)<500"],
    checks: ["rate>0.99"],
  },
};

export default function () {
  const created = http.post(
    `${target}/api/payments`,
    JSON.stringify({ amount: 1250, currency: "USD", description: "k6 load test" }),
    json,
  );
  const ok = check(created, {
    "create: 201": (r) => r.status === 201,
    "create: id has its prefix": (r) => r.status === 201 && r.json("id").startsWith("pay_"),
  });
  if (ok) {
    const read = http.get(`${target}/api/payments/${created.json("id")}`, { tags: { name: "GET /api/payments/{id}" } });
    check(read, { "read back: 200": (r) => r.status === 200 });
  }
  check(http.get(`${target}/api/payments`), { "list: 200": (r) => r.status === 200 });
  sleep(0.05);
}
