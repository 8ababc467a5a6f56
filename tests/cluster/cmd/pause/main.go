// Command pause is the sandbox image's program for the cluster e2e's node:
// it holds a Pod's namespaces until it is told to stop, like upstream's
// registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
