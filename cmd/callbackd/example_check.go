package main

import (
	"fmt"
	"io"

	"github.com/callbackd/callbackd/config"
)

// refuseExample prints the example placeholders left in cfg, if any, and reports whether there
// were any. how says how to go on anyway.
func refuseExample(stderr io.Writer, prefix, file string, cfg *config.Config, how string) bool {
	left := config.Placeholders(cfg)
	if len(left) == 0 {
		return false
	}
	noun := "values are"
	if len(left) == 1 {
		noun = "value is"
	}
	fmt.Fprintf(stderr, "%s %s: %d %s still the example's (deploy/callbackd.example.yml):\n", prefix, file, len(left), noun)
	for _, p := range left {
		fmt.Fprintf(stderr, "  %s\n", p)
	}
	if how != "" {
		fmt.Fprintln(stderr, how)
	}
	return true
}
