//go:build !linux

package automation

import "time"

// watchDir calls changed every 10 ms until it returns true or stop is
// called (no inotify here).
func watchDir(_ string, changed func() bool) (stop func(), err error) {
	return poll(10*time.Millisecond, changed), nil
}
