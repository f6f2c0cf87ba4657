// Package buildinfo says which build of callbackd is running: the version the Makefile stamps
// with -ldflags, else what the Go toolchain recorded (a module version for `go install …@v1.2.3`,
// the VCS revision for a build in a checkout).
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Info identifies a build.
type Info struct {
	Version   string // "v1.2.0", "v1.2.0-3-gabc1234-dirty", or "dev"
	GoVersion string // "go1.26.8"
	Revision  string // VCS commit, with "-dirty" for a modified tree; "" when unknown
}

// Read combines stamped (main.version, "dev" when the build did not set it) with the build
// information the binary carries.
func Read(stamped string) Info {
	bi, _ := debug.ReadBuildInfo()
	return From(stamped, bi)
}

// From is Read with the build information given, for tests. bi may be nil (a binary built
// without module support).
func From(stamped string, bi *debug.BuildInfo) Info {
	info := Info{Version: stamped, GoVersion: runtime.Version()}
	if bi == nil {
		if info.Version == "" {
			info.Version = "dev"
		}
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Revision != "" {
		info.Revision += "-dirty"
	}
	if info.Version == "" || info.Version == "dev" {
		// "(devel)" is what a build in a checkout gets as its main module's version: no
		// information, so the stamp's "dev" (with the revision beside it) says it better.
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		} else {
			info.Version = "dev"
		}
	}
	return info
}

// String is one line for `callbackd version`.
func (i Info) String() string {
	s := "callbackd " + i.Version + " (" + i.GoVersion
	if i.Revision != "" {
		s += ", revision " + i.Revision
	}
	return s + ")"
}
