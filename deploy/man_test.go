package deploy_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The man page is what deploy/man/generate makes from the CLI's own help, so it cannot drift
// from the flags; and groff reads it without a warning.
func TestTheManPageIsTheCLIsHelp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build callbackd with")
	}
	bin := filepath.Join(t.TempDir(), "callbackd")
	if out, err := exec.Command(goTool, "build", "-o", bin, "../cmd/callbackd").CombinedOutput(); err != nil {
		t.Fatalf("building callbackd: %v\n%s", err, out)
	}
	if out, err := exec.Command("./man/generate", bin, "--check").CombinedOutput(); err != nil {
		t.Errorf("deploy/man/generate --check: %v\n%s", err, out)
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed: the page's troff is not checked")
	}
	// -k: the page is UTF-8 (the help text has …); -ww: every warning; -z: no output.
	out, err := exec.Command(groff, "-k", "-man", "-Tutf8", "-ww", "-z", "man/callbackd.1").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("groff on man/callbackd.1: %v\n%s", err, out)
	}
}
