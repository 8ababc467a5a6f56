package ops

// The smoke test's short load test against kcp.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// maxConsecutiveErrors stops a load worker that only gets errors.
const maxConsecutiveErrors = 20

// load runs the short load test against kcp and cleans up after itself.
func load(ctx context.Context, c dynamic.Interface, t SmokeTarget) (LoadResult, error) {
	res := c.Resource(leases).Namespace(t.WorkloadNamespace)
	label := SmokeLabel + "=" + t.RunID + "-load"
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
		defer cancel()
		_ = res.DeleteCollection(cleanup, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label})
	}()
	var mu sync.Mutex
	var latencies []time.Duration
	errs := 0
	var firstErr error
	record := func(d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		latencies = append(latencies, d)
		if err != nil {
			errs++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	timed := func(fn func() error) error {
		start := time.Now()
		err := fn()
		record(time.Since(start), err)
		return err
	}
	start := time.Now()
	stop := start.Add(t.Load.Duration)
	var wg sync.WaitGroup
	for w := range t.Load.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failures := 0
			for i := 0; time.Now().Before(stop) && ctx.Err() == nil && failures < maxConsecutiveErrors; i++ {
				name := fmt.Sprintf("kcp-tmc-load-%s-%d-%d", t.RunID, w, i)
				lease := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
					"metadata": map[string]any{"name": name, "labels": map[string]any{SmokeLabel: t.RunID + "-load"}},
					"spec":     map[string]any{"holderIdentity": fmt.Sprintf("kcp-tmc-smoke-%d", w), "leaseDurationSeconds": int64(15)},
				}}
				if timed(func() error { _, err := res.Create(ctx, lease, metav1.CreateOptions{}); return err }) != nil {
					failures++
					time.Sleep(time.Duration(failures) * 50 * time.Millisecond) // back off a failing kcp
					continue
				}
				failures = 0
				_ = timed(func() error { _, err := res.Get(ctx, name, metav1.GetOptions{}); return err })
				_ = timed(func() error { _, err := res.List(ctx, metav1.ListOptions{LabelSelector: label, Limit: 50}); return err })
				_ = timed(func() error {
					err := res.Delete(ctx, name, metav1.DeleteOptions{})
					if apierrors.IsNotFound(err) {
						return nil
					}
					return err
				})
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	out := LoadResult{Requests: len(latencies), Errors: errs, PerSecond: float64(len(latencies)) / elapsed.Seconds()}
	if len(latencies) == 0 {
		return out, errors.New("no request completed")
	}
	slices.Sort(latencies)
	pct := func(p float64) Duration { return Duration(latencies[int(p*float64(len(latencies)-1))]) }
	out.P50, out.P99, out.Max = pct(0.50), pct(0.99), Duration(latencies[len(latencies)-1])
	var problems []string
	if rate := float64(errs) / float64(len(latencies)); rate > t.Load.MaxErrorRate {
		problems = append(problems, fmt.Sprintf("error rate %.1f%% > %.1f%% (first: %v)", 100*rate, 100*t.Load.MaxErrorRate, firstErr))
	}
	if time.Duration(out.P99) > t.Load.MaxP99 {
		problems = append(problems, fmt.Sprintf("p99 %s > %s", out.P99, Duration(t.Load.MaxP99)))
	}
	if len(problems) > 0 {
		return out, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}
