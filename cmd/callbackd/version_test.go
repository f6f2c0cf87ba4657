package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The version the Makefile stamps with -ldflags is the one the binary reports.
func TestTheStampedVersionIsTheOneReported(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build with")
	}
	bin := filepath.Join(t.TempDir(), "callbackd")
	if out, err := exec.Command(goTool, "build", "-ldflags", "-X main.version=v1.2.3-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil || !strings.HasPrefix(string(out), "callbackd v1.2.3-test (go1.") {
			t.Errorf("callbackd %s = %q, %v; want it to start with \"callbackd v1.2.3-test (go1.\"", arg, out, err)
		}
	}
}
