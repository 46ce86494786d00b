// Package router sets and reads the canary's share of traffic on the routers a rollout drives:
// the built-in `sluice router` (its admin API), nginx (upstream weights in a config file, then
// a tested reload) and HAProxy (its runtime API, no reload).
package router

import (
	"fmt"
)

func checkWeight(w int) error {
	if w < 0 || w > 100 {
		return fmt.Errorf("weight %d: %w", w, ErrWeight)
	}
	return nil
}

// share turns the two servers' weights into the canary's percentage.
func share(stable, canary int) (int, error) {
	if stable+canary <= 0 {
		return 0, fmt.Errorf("stable and canary weights are both 0: no traffic is routed")
	}
	return (200*canary + stable + canary) / (2 * (stable + canary)), nil
}
