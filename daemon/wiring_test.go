package daemon_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/redistest"
)

// The monitor app's event filter is set by the connection; the detector must still get every
// event type it reads, or it would silently miss transfers or voicemail.
func TestMonitorEventFilterLetsThroughWhatTheDetectorReads(t *testing.T) {
	allowed := map[ari.EventType]bool{}
	for _, e := range ari.DefaultMonitorEvents {
		allowed[e] = true
	}
	for _, e := range detect.EventTypes() {
		if !allowed[e] {
			t.Errorf("the detector reads %s but the monitor's event filter drops it", e)
		}
	}
}

func TestDetectorSettingsComeFromTheConfig(t *testing.T) {
	cfg, err := config.Parse([]byte(demo.ConfigYAML+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Detector.InboundContexts = []string{"from-trunk"}
	opts, err := daemon.DetectorOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.ControlApps) != 1 || opts.ControlApps[0] != "callbackd" {
		t.Errorf("control apps %v; want the configured control app", opts.ControlApps)
	}
	if !opts.InternalExtension.MatchString("1003") || opts.InternalExtension.MatchString("+31201234502") {
		t.Errorf("internal extension pattern %v does not tell extensions from numbers", opts.InternalExtension)
	}
	if !opts.CustomerNumber.MatchString("+31201234502") || opts.CustomerNumber.MatchString("1003") {
		t.Errorf("customer number pattern %v does not tell numbers from extensions", opts.CustomerNumber)
	}
	if len(opts.InboundContexts) != 1 || opts.InboundContexts[0] != "from-trunk" || opts.DefaultCountryCode != "31" {
		t.Errorf("inbound contexts %v, country code %q", opts.InboundContexts, opts.DefaultCountryCode)
	}
}

// The detector's patterns are the ones validation compiled: a configuration that was never
// validated gives no detector settings rather than unchecked ones.
func TestDetectorSettingsNeedAValidatedConfig(t *testing.T) {
	if _, err := daemon.DetectorOptions(config.Default()); err == nil || !strings.Contains(err.Error(), "not been validated") {
		t.Errorf("DetectorOptions(unvalidated) error = %v; want one saying the configuration has not been validated", err)
	}
}

// Every Redis mode the configuration accepts reaches a real server, and a URL that does not
// parse is refused without repeating it (it may carry a password).
func TestRedisFromConfig(t *testing.T) {
	plain := redistest.Start(t, redistest.Options{})
	cluster := redistest.Start(t, redistest.Options{Cluster: true})
	cases := []struct {
		name string
		rc   config.Redis
	}{
		{"address", config.Redis{Addr: plain.Addr()}},
		{"URL", config.Redis{URL: config.SecretURL("redis://" + plain.Addr() + "/0")}},
		{"cluster", config.Redis{Cluster: config.Cluster{Addrs: []string{cluster.Addr()}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rdb, err := daemon.RedisClient(tc.rc)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if err := rdb.Ping(context.Background()).Err(); err != nil {
				t.Errorf("PING through the %s client: %v", tc.name, err)
			}
		})
	}
	_, err := daemon.RedisClient(config.Redis{URL: "redis://user:s3cret@[::1"})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "redis.url") {
		t.Errorf("bad URL: %v; want an error naming redis.url without the password", err)
	}
}

func TestInstanceIDIsTheConfiguredOneElseTheHostName(t *testing.T) {
	for _, tt := range []struct {
		name       string
		configured string
		host       string
		hostErr    error
		want       string
	}{
		{"configured", "pbx-a", "web1.example.net", nil, "pbx-a"},
		{"from the host name, the same on every start", "", "Web1.example.net", nil, "web1"},
		{"no host name: the names as configured", "", "", errors.New("no host name"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{InstanceID: tt.configured}
			got := daemon.InstanceID(cfg, func() (string, error) { return tt.host, tt.hostErr })
			if got != tt.want {
				t.Errorf("InstanceID = %q, want %q", got, tt.want)
			}
		})
	}
}
