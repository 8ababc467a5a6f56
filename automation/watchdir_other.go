//go:build !linux

package automation

import "time"

// watchDir calls changed every 10 ms until it returns true or stop is
// called (no inotify here).
func watchDir(_ string, changed func() bool) (stop func(), err error) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for !changed() {
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-ended }, nil
}
