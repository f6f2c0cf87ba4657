package stasisapp

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, tt := range []struct {
		name, monitor, control, id string
		wantMonitor, wantControl   string
	}{
		{"no instance id: the configured names, as before", "callbackd-monitor", "callbackd", "", "callbackd-monitor", "callbackd"},
		{"an instance id is appended to both", "callbackd-monitor", "callbackd", "pbx-a", "callbackd-monitor-pbx-a", "callbackd-pbx-a"},
		{"configured names are kept as the base", "cbmon", "cbctl", "2", "cbmon-2", "cbctl-2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, c := Names(tt.monitor, tt.control, tt.id)
			if m != tt.wantMonitor || c != tt.wantControl {
				t.Errorf("Names(%q, %q, %q) = %q, %q; want %q, %q", tt.monitor, tt.control, tt.id, m, c, tt.wantMonitor, tt.wantControl)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		name    string
		app     string
		problem string // "" when the name is fine
	}{
		{"the default control app", "callbackd", ""},
		{"the default monitor app with an instance id", "callbackd-monitor-web1.dc2_b", ""},
		{"as long as Asterisk takes", strings.Repeat("a", 73), ""},
		{"empty", "", "must not be empty"},
		{"one longer than ARI_MAX_APP_NAME_LEN", strings.Repeat("a", 74), "at most 73"},
		{"a comma splits the events socket's app list", "callbackd,x", `contains ","`},
		{"a space is stripped by Asterisk", "callbackd x", `contains " "`},
		{"a slash breaks /applications/{name}", "callbackd/x", `contains "/"`},
		{"not ASCII", "callbackdé", "use only letters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.app)
			switch {
			case tt.problem == "" && err != nil:
				t.Errorf("Check(%q) = %v; want no problem", tt.app, err)
			case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
				t.Errorf("Check(%q) = %v; want a problem saying %q", tt.app, err, tt.problem)
			}
		})
	}
}

func TestCheckInstanceID(t *testing.T) {
	for _, tt := range []struct {
		id      string
		problem string
	}{
		{"a", ""},
		{"pbx-host_2.b", ""},
		{strings.Repeat("x", 32), ""},
		{strings.Repeat("x", 33), "at most 32"},
		{"", "must not be empty"},
		{"a,b", `contains ","`},
		{"web 1", `contains " "`},
	} {
		err := CheckInstanceID(tt.id)
		switch {
		case tt.problem == "" && err != nil:
			t.Errorf("CheckInstanceID(%q) = %v; want no problem", tt.id, err)
		case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
			t.Errorf("CheckInstanceID(%q) = %v; want a problem saying %q", tt.id, err, tt.problem)
		}
	}
}

func TestFromHost(t *testing.T) {
	for _, tt := range []struct {
		host, want string
	}{
		{"pbx1", "pbx1"},
		{"Web-01.example.net", "web-01"},                 // the first label, lower-cased
		{"callbackd-7d9f8c-x2k", "callbackd-7d9f8c-x2k"}, // a pod name
		{"host_name", "host_name"},
		{"host:name", "host-name"},
		{"-odd-", "odd"},
		{strings.Repeat("h", 40), strings.Repeat("h", 32)},
		{"", ""},
		{".example.net", ""},
	} {
		got := FromHost(tt.host)
		if got != tt.want {
			t.Errorf("FromHost(%q) = %q, want %q", tt.host, got, tt.want)
		}
		if got != "" {
			if err := CheckInstanceID(got); err != nil {
				t.Errorf("FromHost(%q) = %q, which CheckInstanceID refuses: %v", tt.host, got, err)
			}
		}
	}
}
