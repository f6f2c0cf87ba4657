package daemon_test

import (
	"net"
	"strings"
	"testing"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/redistest"
)

// /readyz names why Redis or an Asterisk cannot be used — the words an operator acts on —
// rather than "context deadline exceeded" or a bare "not connected".
func TestReadinessNamesTheCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := "http://" + ln.Addr().String() + "/ari"
	_ = ln.Close()

	tests := []struct {
		name      string
		url       func(pbxURL string) string
		password  string
		stopRedis bool
		want      []string
	}{
		{"wrong ARI password", func(u string) string { return u }, "wrong", false,
			[]string{"asterisk fake-pbx: not connected: auth failed"}},
		{"nothing listens at the ARI URL", func(string) string { return nobody }, "callbackd-secret", false,
			[]string{"asterisk fake-pbx: not connected: connection refused"}},
		{"redis-server stopped", func(u string) string { return u }, "callbackd-secret", true,
			[]string{"redis: connection refused (dial tcp 127.0.0.1:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pbx, clk := daemontest.StartPBX(t)
			cfg, err := config.Parse([]byte(demo.ConfigYAML), nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Asterisk[0].URL = config.SecretURL(tt.url(pbx.URL() + "/ari"))
			cfg.Asterisk[0].Password = config.Secret(tt.password)
			redisSrv := redistest.Start(t, redistest.Options{})
			d, _, _ := runDaemon(t, cfg, redisSrv.Client(), clk)
			h := serve(t, d)
			if tt.stopRedis {
				daemontest.WaitUntil(t, "readiness", func() bool { code, _ := get(t, h, "GET", "/readyz", ""); return code == 200 })
				redisSrv.Stop()
			}
			var body string
			daemontest.WaitUntil(t, "/readyz to name the cause", func() bool {
				var code int
				code, body = get(t, h, "GET", "/readyz", "")
				for _, w := range tt.want {
					if code != 503 || !strings.Contains(body, w) {
						return false
					}
				}
				return true
			})
			if tt.stopRedis {
				if code, metrics := get(t, h, "GET", "/metrics", ""); code != 200 || !strings.Contains(metrics, "callbackd_build_info{") {
					t.Errorf("/metrics with Redis stopped: %d, build info missing", code)
				}
			}
		})
	}
}
