package main

import (
	"flag"
)

// configFlag defines the configuration file flag every command spells the same way: -c FILE
// or --config FILE (the flag package takes one or two dashes for either name).
func configFlag(fs *flag.FlagSet, def, usage string) *string {
	p := fs.String("c", def, usage)
	fs.StringVar(p, "config", def, "the same as -c")
	return p
}
