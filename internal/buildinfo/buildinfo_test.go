package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromPrefersTheStampThenTheModuleVersion(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		want    Info
	}{
		{"make build stamps the version", "v1.2.0", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("abc123", "false")},
			Info{Version: "v1.2.0", GoVersion: "go1.26.8", Revision: "abc123"}},
		{"go install pkg@v1.3.0 carries the module version", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.3.0"}},
			Info{Version: "v1.3.0", GoVersion: "go1.26.8"}},
		{"go build in a modified checkout says dev and the dirty revision", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("abc123", "true")},
			Info{Version: "dev", GoVersion: "go1.26.8", Revision: "abc123-dirty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := From(tt.stamped, tt.bi); got != tt.want {
				t.Errorf("From(%q) = %+v, want %+v", tt.stamped, got, tt.want)
			}
		})
	}
	if got := From("", nil); got.Version != "dev" || got.GoVersion == "" {
		t.Errorf("without build information: %+v, want version dev and the running Go", got)
	}
}
