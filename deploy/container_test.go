package deploy_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The Containerfile builds from scratch, runs as a numeric non-root user, and says why it has
// no HEALTHCHECK. (Read even without buildah, so a change to it is checked everywhere.)
func TestTheContainerfileIsFromScratchAndNonRoot(t *testing.T) {
	b, err := os.ReadFile("container/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	var from, user []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			from = append(from, f[1])
		case "USER":
			user = append(user, f[1])
		case "HEALTHCHECK":
			t.Errorf("HEALTHCHECK %q: scratch has nothing to run it with", line)
		}
	}
	if len(from) != 1 || from[0] != "scratch" {
		t.Errorf("FROM %v; want one stage, FROM scratch (nothing to pull)", from)
	}
	if len(user) != 1 || !regexp.MustCompile(`^[1-9][0-9]*:[1-9][0-9]*$`).MatchString(user[0]) {
		t.Errorf("USER %v; want one numeric non-root uid:gid (scratch has no /etc/passwd to look a name up in)", user)
	}
	if !strings.Contains(string(b), "No HEALTHCHECK") {
		t.Error("the Containerfile does not say why it has no HEALTHCHECK")
	}
}

// With Debian's buildah, deploy/container/build makes an image without pulling anything, and
// in that image the static binary runs as the non-root user, finds the time zones of the
// example configuration with no zoneinfo on disk, and refuses the example's placeholders.
func TestTheContainerImageBuildsAndRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a static binary and an image")
	}
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Skip("buildah not installed (apt-get install buildah; .ci/run installs it): the image is not built")
	}
	if os.Geteuid() != 0 {
		t.Skip("buildah bud --isolation chroot needs root here")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool to build callbackd with")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Its own storage, so the test neither sees nor leaves images in /var/lib/containers.
	store := t.TempDir()
	const tag = "localhost/callbackd:deploy-test"
	build := exec.CommandContext(ctx, "./container/build", tag)
	build.Env = append(os.Environ(), "BUILDAH_ROOT="+store, "VERSION=v0.0.0-deploy-test")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("deploy/container/build: %v\n%s", err, out)
	}
	buildah := func(args ...string) (string, error) {
		all := append([]string{"--root", store, "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs"}, args...)
		out, err := exec.CommandContext(ctx, "buildah", all...).CombinedOutput()
		return string(out), err
	}

	out, err := buildah("inspect", "--type", "image", tag)
	if err != nil {
		t.Fatalf("buildah inspect: %v\n%s", err, out)
	}
	var img struct {
		OCIv1 struct {
			Config struct {
				User         string
				Entrypoint   []string
				Cmd          []string
				ExposedPorts map[string]struct{}
				Labels       map[string]string
			} `json:"config"`
		} `json:"OCIv1"`
	}
	if err := json.Unmarshal([]byte(out), &img); err != nil {
		t.Fatalf("buildah inspect: %v\n%s", err, out)
	}
	c := img.OCIv1.Config
	if c.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532", c.User)
	}
	if strings.Join(c.Entrypoint, " ") != "/usr/bin/callbackd" || strings.Join(c.Cmd, " ") != "run -c /etc/callbackd/callbackd.yml" {
		t.Errorf("entrypoint %q cmd %q; want /usr/bin/callbackd run -c /etc/callbackd/callbackd.yml", c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["9464/tcp"]; !ok {
		t.Errorf("exposed ports %v; want 9464/tcp (http.listen's default port)", c.ExposedPorts)
	}
	if c.Labels["org.opencontainers.image.version"] != "v0.0.0-deploy-test" {
		t.Errorf("version label %q, want the VERSION it was built with", c.Labels["org.opencontainers.image.version"])
	}

	ctr, err := buildah("from", "--pull=never", tag)
	if err != nil {
		t.Fatalf("buildah from: %v\n%s", err, ctr)
	}
	ctr = strings.TrimSpace(ctr[strings.LastIndex(strings.TrimSpace(ctr), "\n")+1:])
	defer buildah("rm", ctr)
	run := func(args ...string) (string, error) {
		return buildah(append([]string{"run", "--isolation", "chroot", ctr, "--"}, args...)...)
	}
	if out, err := run("/usr/bin/callbackd", "--version"); err != nil || !strings.HasPrefix(out, "callbackd v0.0.0-deploy-test ") {
		t.Errorf("callbackd --version in the image: %v\n%s", err, out)
	}
	// The example's calling_hours name Europe/Amsterdam: a binary without its own tzdata fails
	// here, since scratch has no /usr/share/zoneinfo.
	if out, err := run("/usr/bin/callbackd", "config", "check", "-c", "/etc/callbackd/callbackd.yml"); err != nil {
		t.Errorf("callbackd config check in the image: %v\n%s", err, out)
	}
	if out, err := run("/usr/bin/callbackd", "run", "-c", "/etc/callbackd/callbackd.yml"); err == nil || !strings.Contains(out, "still the example's") {
		t.Errorf("callbackd run on the image's example config: %v\n%s\nwant it refused, naming the example's placeholders", err, out)
	}
	mnt, err := buildah("mount", ctr)
	if err != nil {
		t.Fatalf("buildah mount: %v\n%s", err, mnt)
	}
	defer buildah("umount", ctr)
	mnt = strings.TrimSpace(mnt)
	for _, f := range []string{"usr/share/callbackd/sounds/en/callbackd-callback-for.alaw", "usr/share/callbackd/sounds/nl/callbackd-callback-for.ulaw", "etc/ssl/certs/ca-certificates.crt"} {
		if _, err := os.Stat(filepath.Join(mnt, f)); err != nil {
			t.Errorf("the image lacks /%s: %v", f, err)
		}
	}
	if out, err := run("/bin/sh", "-c", "true"); err == nil {
		t.Errorf("the image has a shell; want only the binary\n%s", out)
	}
}
