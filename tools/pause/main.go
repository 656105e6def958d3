// Command pause is the sandbox ("pause") container of the real-node test
// cluster: it holds a pod's namespaces open and does nothing else.
//
// It blocks until SIGINT or SIGTERM and then exits 0. As PID 1 of a pod that
// shares its process namespace it is also the init of every orphaned process
// there, so on SIGCHLD it reaps all exited children; otherwise they would stay
// zombies. Only the standard library is used, and it is built with
// CGO_ENABLED=0 into a static binary for a FROM-scratch image.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("pause (ollama-operator) 1.0")
		return
	}

	// Buffered: a signal arriving while we reap is kept, not dropped.
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)

	for sig := range signals {
		switch sig {
		case syscall.SIGCHLD:
			reap()
		default: // SIGINT, SIGTERM
			fmt.Fprintf(os.Stderr, "pause: %v, exiting\n", sig)
			os.Exit(0)
		}
	}
}

// reap collects every child that has exited. Several exits can be folded into
// one SIGCHLD, hence the loop; WNOHANG keeps it from blocking on live children.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil { // 0: children left but none exited; ECHILD: none left
			return
		}
	}
}
