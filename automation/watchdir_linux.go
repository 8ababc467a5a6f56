package automation

import (
	"fmt"
	"os"
	"syscall"
)

// watchDir calls changed once, then each time a file is created in or
// moved into dir (created if need be), until changed returns true or stop
// is called.
func watchDir(dir string, changed func() bool) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_CLOSE_WRITE); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("inotify on %s: %w", dir, err)
	}
	// Non-blocking, so that Go's poller waits for it and Close ends a Read.
	events := os.NewFile(uintptr(fd), "inotify "+dir)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		buf := make([]byte, 64*(syscall.SizeofInotifyEvent+syscall.NAME_MAX+1))
		for !changed() {
			if _, err := events.Read(buf); err != nil {
				return // closed by stop
			}
		}
	}()
	return func() { events.Close(); <-ended }, nil
}
