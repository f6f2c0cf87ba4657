package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// configFlag defines the configuration file flag every command spells the same way: -c FILE
// or --config FILE (the flag package takes one or two dashes for either name).
func configFlag(fs *flag.FlagSet, def, usage string) *string {
	p := fs.String("c", def, usage)
	fs.StringVar(p, "config", def, "the same as -c")
	return p
}

// parseVerb reads the verb that starts args (one of verbs) and the flags after it, for
// commands spelled "callbackd CMD VERB [flags] [args]". When done, the command ends with code:
// 0 after -h, 2 for no verb, an unknown one (named on stderr) or a bad flag.
func parseVerb(fs *flag.FlagSet, args []string, verbs []string, stderr io.Writer) (verb string, code int, done bool) {
	if len(args) > 0 && slices.Contains(verbs, args[0]) {
		code, done = parseFlags(fs, args[1:])
		return args[0], code, done
	}
	switch {
	case len(args) > 0 && strings.HasPrefix(args[0], "-"):
		// -h, or a flag before the verb: the flag package says which.
		if code, done := parseFlags(fs, args); done {
			return "", code, true
		}
	case len(args) > 0:
		fmt.Fprintf(stderr, "callbackd %s: unknown verb %q (%s)\n", fs.Name(), args[0], strings.Join(verbs, ", "))
	}
	fs.Usage()
	return "", 2, true
}
