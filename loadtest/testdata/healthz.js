// A short test of one endpoint. Its own threshold, setup data and handleSummary must
// survive the engine's wrapper.
import http from "k6/http";
import { check, sleep } from "k6";

export const options = {
  thresholds: { checks: ["rate>0.99"] },
};

export function setup() {
  return { token: "from-setup" };
}

export default function (data) {
  check(http.get(`${__ENV.TARGET_URL}/api/payments`), {
    "status 200": (r) => r.status === 200,
    "setup data reached the iteration": () => data.token === "from-setup",
  });
  sleep(0.02);
}

export function handleSummary(data) {
  return { "own-summary.txt": `iterations ${data.metrics.iterations.values.count}\n` };
}
