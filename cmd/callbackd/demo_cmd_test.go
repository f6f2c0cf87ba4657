package main

import (
	"bytes"
	"context"
	"testing"
)

func TestDemoRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--speed", "0"}, {"--speed", "x"}, {"extra"}} {
		var out, errOut bytes.Buffer
		if code := runDemo(context.Background(), args, &out, &errOut); code != 2 || out.Len() != 0 {
			t.Errorf("demo %v: exit %d, stdout %q; want exit 2 and nothing on stdout", args, code, out.String())
		}
	}
}
