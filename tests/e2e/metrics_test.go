package e2e

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// sample is one series' value in a scrape (Prometheus' text format).
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// samples parses a scrape body: every series line with its labels (quoted
// values may hold commas, braces and escapes) and value; comments and
// lines it cannot read are left out. The one reader of scrapes here.
func samples(body []byte) []sample {
	var out []sample
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i > 0 && line[i] == '{' {
			s.name = line[:i]
			var ok bool
			if rest, ok = parseLabels(line[i+1:], s.labels); !ok {
				continue
			}
		} else if i > 0 {
			s.name, rest = line[:i], line[i:]
		} else {
			continue
		}
		f := strings.Fields(rest) // value, then an optional timestamp
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// parseLabels reads `k="v",…}` into labels and returns what follows the
// closing brace.
func parseLabels(in string, labels map[string]string) (string, bool) {
	for {
		in = strings.TrimLeft(in, " ,")
		if strings.HasPrefix(in, "}") {
			return in[1:], true
		}
		k, v, ok := strings.Cut(in, `="`)
		if !ok {
			return "", false
		}
		var val strings.Builder
		i := 0
		for ; i < len(v) && v[i] != '"'; i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
				if v[i] == 'n' {
					val.WriteByte('\n')
					continue
				}
			}
			val.WriteByte(v[i])
		}
		if i == len(v) {
			return "", false
		}
		labels[strings.TrimSpace(k)] = val.String()
		in = v[i+1:]
	}
}

func TestSamples(t *testing.T) {
	tests := []struct {
		name, body string
		want       []sample
	}{
		{"no labels, timestamp", "# HELP up x\nup 1 1700000000\n", []sample{{"up", map[string]string{}, 1}}},
		{"labels", `apiserver_request_total{verb="GET",resource="widgets",group="example.com"} 42`,
			[]sample{{"apiserver_request_total", map[string]string{"verb": "GET", "resource": "widgets", "group": "example.com"}, 42}}},
		{"commas, braces and escapes in values", `m{a="x,y}",b="q\"z\\",c="l\n2"} 3e2`,
			[]sample{{"m", map[string]string{"a": "x,y}", "b": `q"z\`, "c": "l\n2"}, 300}}},
		{"unreadable lines left out", "m{a=\"x} 1\nn 1 2\nbad\nm{} NaN-ish\n", []sample{{"n", map[string]string{}, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := samples([]byte(tt.body)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("samples(%q) = %v, want %v", tt.body, got, tt.want)
			}
		})
	}
}
