// Command pause is the process of the e2e node's pod sandbox container: containerd starts
// one per pod to hold its namespaces. It does what Kubernetes' own pause does: sleep until
// SIGINT or SIGTERM (exit 0), and, being PID 1 of a shared PID namespace, reap orphaned
// children. There is no registry here to pull the upstream pause image from, and Debian
// does not package one, so the node loads an image of this static binary instead.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (ccm-issuer e2e node)")
		return
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every child that has exited (several SIGCHLD may have been merged).
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
