package backup

import (
	"fmt"
	"strconv"
	"strings"
)

// cronFields are the bounds (and names) of the 5 standard fields, as the
// Kubernetes CronJob controller parses them.
var cronFields = []struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i
}{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{"day of week", 0, 7, []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"}},
}

var cronDescriptors = []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}

// ValidateCron accepts what a CronJob's spec.schedule accepts (minus TZ=,
// which Kubernetes rejects in favour of spec.timeZone).
func ValidateCron(expr string) error {
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "@") {
		for _, d := range cronDescriptors {
			if expr == d {
				return nil
			}
		}
		return fmt.Errorf("unknown descriptor %q", expr)
	}
	parts := strings.Fields(expr)
	if len(parts) != len(cronFields) {
		return fmt.Errorf("%d fields, need 5", len(parts))
	}
	for i, part := range parts {
		f := cronFields[i]
		for _, item := range strings.Split(part, ",") {
			if err := cronItem(item, f.min, f.max, f.names); err != nil {
				return fmt.Errorf("%s %q: %w", f.name, item, err)
			}
		}
	}
	return nil
}

func cronItem(item string, lo, hi int, names []string) error {
	rng, step, hasStep := strings.Cut(item, "/")
	if hasStep {
		n, err := strconv.Atoi(step)
		if err != nil || n < 1 {
			return fmt.Errorf("step must be a positive integer")
		}
	}
	if rng == "*" || rng == "?" {
		return nil
	}
	from, to, isRange := strings.Cut(rng, "-")
	a, err := cronValue(from, lo, hi, names)
	if err != nil {
		return err
	}
	if !isRange {
		return nil
	}
	b, err := cronValue(to, lo, hi, names)
	if err != nil {
		return err
	}
	if a > b {
		return fmt.Errorf("range start after end")
	}
	return nil
}

func cronValue(s string, lo, hi int, names []string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return lo + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("value must be %d-%d", lo, hi)
	}
	return n, nil
}
