package main

import (
	"context"
	"fmt"
	"io"
)

// Placeholder until the detector lands; owned by the detector work.
func runReplay(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "callbackd replay: not built yet")
	return 1
}
