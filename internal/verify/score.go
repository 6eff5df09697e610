package verify

// Scoring follows MDN HTTP Observatory: start from 100, subtract a penalty
// per failed check, add bonuses for doing better than required only when
// the score before bonuses is at least 90, floor at 0, and map the score to
// a letter grade with the same bands.

// penalty is what a fail costs; a warn costs half, rounded down.
func penalty(s Severity) int {
	switch s {
	case SeverityCritical:
		return 40
	case SeverityHigh:
		return 20
	case SeverityMedium:
		return 10
	case SeverityLow:
		return 5
	}
	return 0
}

// bonusChecks earn +5 each when they pass with the extra seen.
var bonusChecks = map[string]string{
	"HDR-004":    "strict Content-Security-Policy",
	"COOKIE-004": "__Host- session cookies",
	"WS-003":     "single-use WebSocket tickets",
}

// Score computes the score and grade of results.
func Score(results []Result) (int, string) {
	score := 100
	bonus := 0
	for _, r := range results {
		switch r.Status {
		case StatusFail:
			score -= penalty(r.Severity)
		case StatusWarn:
			score -= penalty(r.Severity) / 2
		case StatusPass:
			if _, ok := bonusChecks[r.ID]; ok {
				bonus += 5
			}
		}
	}
	if score >= 90 {
		score += bonus
	}
	score = max(score, 0)
	return score, Grade(score)
}

// Grade maps a score to MDN Observatory's letter bands.
func Grade(score int) string {
	bands := []struct {
		min   int
		grade string
	}{
		{100, "A+"}, {90, "A"}, {85, "A-"}, {80, "B+"}, {70, "B"}, {65, "B-"},
		{60, "C+"}, {50, "C"}, {45, "C-"}, {40, "D+"}, {30, "D"}, {25, "D-"},
	}
	for _, b := range bands {
		if score >= b.min {
			return b.grade
		}
	}
	return "F"
}
