package ratelimit

import (
	"context"
	"fmt"
)

// Check is one limit applied to one subject under one rule.
type Check struct {
	// Rule names the rule; state is kept per (Rule, Subject).
	Rule string
	// Subject identifies who is limited, e.g. "api_key:k_123",
	// "ip:192.0.2.1" or "global".
	Subject string
	Limit   Limit
	// Cost is how many units the request takes; 0 means 1.
	Cost int
}

// cost is Cost with the zero default applied.
func (c Check) cost() int {
	if c.Cost == 0 {
		return 1
	}
	return c.Cost
}

// Validate reports whether c can be decided.
func (c Check) Validate() error {
	if err := c.Limit.Validate(); err != nil {
		return fmt.Errorf("rule %s: %w", c.Rule, err)
	}
	if err := checkCost(c.Limit, c.cost()); err != nil {
		return fmt.Errorf("rule %s: %w", c.Rule, err)
	}
	return nil
}

// Limiter decides the checks of one request atomically.
//
// Allow writes the result of checks[i] to results[i] (results must be at
// least as long as checks) and reports whether every check admits the
// request. When one rejects, none of the checks is charged: the results of the
// others describe their state unchanged. An error means the decision could
// not be made (store unreachable, invalid check); results are then undefined.
type Limiter interface {
	Allow(ctx context.Context, checks []Check, results []Result) (bool, error)
}

// AllowOne decides a single check with cost n.
func AllowOne(ctx context.Context, l Limiter, rule, subject string, lim Limit, n int) (Result, error) {
	var res [1]Result
	_, err := l.Allow(ctx, []Check{{Rule: rule, Subject: subject, Limit: lim, Cost: n}}, res[:])
	return res[0], err
}

func validateChecks(checks []Check, results []Result) error {
	if len(results) < len(checks) {
		return fmt.Errorf("ratelimit: %d results for %d checks", len(results), len(checks))
	}
	for _, c := range checks {
		if err := c.Validate(); err != nil {
			return err
		}
	}
	return nil
}
