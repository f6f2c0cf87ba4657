package main

import (
	"context"
	"fmt"
	"io"
)

// Placeholder until the config package lands; owned by the config work.
func runConfig(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "callbackd config: not built yet")
	return 1
}
