package automation

import "time"

// poll calls changed every interval until it returns true or stop is
// called.
func poll(interval time.Duration, changed func() bool) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for !changed() {
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-ended }
}
