package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/daemon/daemontest"

	"go.yaml.in/yaml/v3"

	"github.com/callbackd/callbackd/demo"
)

// dashboardQuery is one query of one panel of deploy/grafana/callbackd.json.
type dashboardQuery struct {
	panel, refID, expr string
}

type dashboardPanel struct {
	ID         int               `json:"id"`
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Datasource map[string]string `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Expr       string            `json:"expr"`
		RefID      string            `json:"refId"`
		Datasource map[string]string `json:"datasource"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // a collapsed row's panels
}

func loadDashboard(t *testing.T) []dashboardPanel {
	t.Helper()
	b, err := os.ReadFile("grafana/callbackd.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/callbackd.json: %v", err)
	}
	var flat []dashboardPanel
	for _, p := range d.Panels {
		flat = append(flat, p)
		flat = append(flat, p.Panels...)
	}
	if len(flat) == 0 {
		t.Fatal("grafana/callbackd.json has no panels")
	}
	return flat
}

func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	var qs []dashboardQuery
	for _, p := range loadDashboard(t) {
		for _, tg := range p.Targets {
			qs = append(qs, dashboardQuery{panel: p.Title, refID: tg.RefID, expr: tg.Expr})
		}
	}
	return qs
}

// grafanaValues stand for the dashboard's variables the way Grafana fills them in: "All"
// queues is the variable's allValue, and $__rate_interval is at least four scrape intervals
// (the test's Prometheus scrapes every second; in production it is Grafana's own choice).
var grafanaValues = strings.NewReplacer("$queue", ".*", "$__rate_interval", "5s")

var metricRE = regexp.MustCompile(`\b((?:callbackd|go|process)_[a-z0-9_]+)\b`)

// The dashboard shows what issue 16 and the README's metrics reference say an operator needs
// to see: every one of these metrics is in at least one panel.
func TestTheDashboardShowsEveryOperatorMetric(t *testing.T) {
	want := []string{
		"callbackd_promise_kept_ratio", "callbackd_promises_at_risk", "callbackd_promise_predicted_slack_seconds_bucket",
		"callbackd_quote_seconds", "callbackd_promises_open", "callbackd_time_to_callback_seconds_bucket",
		"callbackd_promise_slack_seconds_bucket", "callbackd_call_attempts_total", "callbackd_agents",
		"callbackd_ari_connected", "callbackd_ari_reconnects_total", "callbackd_ari_event_backlog",
		"callbackd_ari_backlog_overflows_total", "callbackd_store_scrape_errors_total",
		"callbackd_requests_refused_total", "callbackd_promises_quarantined_total",
		"callbackd_webhook_deliveries_total", "callbackd_webhook_lag_seconds",
	}
	shown := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		for _, m := range metricRE.FindAllString(q.expr, -1) {
			shown[m] = true
		}
	}
	for _, m := range want {
		if !shown[m] {
			t.Errorf("no panel of grafana/callbackd.json shows %s", m)
		}
	}
}

// Every panel queries through the dashboard's datasource variable (so it works whatever the
// Prometheus datasource is called), has ids and refIds Grafana can tell apart, and sits on the
// 24-column grid without covering another.
func TestTheDashboardIsWellFormed(t *testing.T) {
	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range loadDashboard(t) {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at x=%d y=%d", other, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: a query with expr %q and refId %q (empty or repeated)", p.Title, tg.Expr, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q query %s: datasource %v, want the ${datasource} variable", p.Title, tg.RefID, tg.Datasource)
			}
		}
	}
}

// daemonMetricNames is every series name the daemon's own registry exports while it works:
// the demo (the daemon as `callbackd run` builds it, on a fake Asterisk and an embedded Redis)
// runs in this process, and its /metrics is read the way Prometheus reads it, until every name
// in want has appeared or 40 s have passed. Some series exist only once something happened
// (REST requests by status, the quote once an agent can keep a deadline), hence the polling.
// Histograms add _bucket, _sum and _count.
func daemonMetricNames(t *testing.T, want map[string]bool) map[string]bool {
	t.Helper()
	addr := freeLoopbackAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out daemontest.Output
	ran := make(chan error, 1)
	go func() {
		ran <- demo.Run(ctx, demo.Settings{Speed: 120, Listen: addr, Serve: true, Token: demoToken}, &out)
	}()
	t.Cleanup(func() { cancel(); <-ran })

	names := map[string]bool{}
	deadline := time.Now().Add(40 * time.Second)
	for {
		select {
		case err := <-ran:
			ran <- err // for the cleanup
			t.Fatalf("the demo stopped: %v\n%s", err, out.String())
		default:
		}
		if resp, err := getMetrics("http://" + addr + "/metrics"); err == nil {
			addTypeLines(names, resp.Body)
			resp.Body.Close()
		}
		missing := 0
		for m := range want {
			if !names[m] {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return names
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// addTypeLines adds the series names of the "# TYPE" lines of a /metrics body.
func addTypeLines(names map[string]bool, body io.Reader) {
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names[f[2]] = true
		switch f[3] {
		case "histogram":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f[2]+s] = true
			}
		case "summary":
			for _, s := range []string{"_sum", "_count"} {
				names[f[2]+s] = true
			}
		}
	}
}

// Every metric a panel names is one the running daemon exports: a renamed or removed metric
// fails here, not on an operator's empty panel. The queue variable's values come from a
// metric too.
func TestEveryDashboardMetricIsOneTheDaemonExports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for a few seconds")
	}
	want := map[string]bool{"callbackd_promises_open": true} // label_values(callbackd_promises_open, queue)
	for _, q := range dashboardQueries(t) {
		for _, m := range metricRE.FindAllString(q.expr, -1) {
			want[m] = true
		}
	}
	names := daemonMetricNames(t, want)
	for _, q := range dashboardQueries(t) {
		for _, m := range metricRE.FindAllString(q.expr, -1) {
			if !names[m] {
				t.Errorf("panel %q query %s names %s, which the running daemon does not export", q.panel, q.refID, m)
			}
		}
	}
	if !names["callbackd_promises_open"] {
		t.Error("the queue variable reads label_values(callbackd_promises_open, queue), which the running daemon does not export")
	}
}

// The provisioning files give Grafana a Prometheus datasource and load the dashboard from the
// directory the README says to copy it to.
func TestGrafanaProvisioningFiles(t *testing.T) {
	var dsFile struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, UID, URL, Access string
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/callbackd.yml", &dsFile)
	if dsFile.APIVersion != 1 || len(dsFile.Datasources) != 1 || dsFile.Datasources[0].Type != "prometheus" ||
		dsFile.Datasources[0].Access != "proxy" || !strings.HasPrefix(dsFile.Datasources[0].URL, "http") {
		t.Errorf("datasources/callbackd.yml = %+v; want apiVersion 1 and one prometheus datasource with access proxy and a URL", dsFile)
	}
	var dbFile struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Type string
			Options    struct{ Path string }
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/callbackd.yml", &dbFile)
	if dbFile.APIVersion != 1 || len(dbFile.Providers) != 1 || dbFile.Providers[0].Type != "file" ||
		dbFile.Providers[0].Options.Path != "/var/lib/grafana/dashboards/callbackd" {
		t.Errorf("dashboards/callbackd.yml = %+v; want one file provider reading /var/lib/grafana/dashboards/callbackd", dbFile)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Every panel's query parses and returns data in a real Prometheus (Debian's prometheus
// package) scraping a running `callbackd demo --serve`: the dashboard's queries are what
// Grafana would send, with the variables filled in as for "All" queues.
func TestEveryDashboardQueryReturnsDataFromARealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds callbackd and runs it with a Prometheus for about 20 s")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install prometheus; .ci/run installs it): the dashboard's queries are not run")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build callbackd with")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "callbackd")
	if out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, "../cmd/callbackd").CombinedOutput(); err != nil {
		t.Fatalf("building callbackd: %v\n%s", err, out)
	}

	// The demo on a loopback port of its own, fast enough that its scripted morning (promises
	// made, kept, pending, at risk) is over by the time Prometheus has scraped a few times.
	demoAddr := freeLoopbackAddr(t)
	demoOut, err := os.Create(filepath.Join(dir, "demo.log"))
	if err != nil {
		t.Fatal(err)
	}
	start(t, ctx, demoOut, bin, "demo", "--serve", "--speed", "120", "--listen", demoAddr)
	waitFor(t, ctx, "the demo to serve /metrics on "+demoAddr, demoOut.Name(), func() bool {
		resp, err := getMetrics("http://" + demoAddr + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	promAddr := freeLoopbackAddr(t)
	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: callbackd
    authorization: {credentials: %s}
    static_configs: [{targets: ["%s"]}]
`, demoToken, demoAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	promOut, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	start(t, ctx, promOut, promBin, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")

	// A few scrapes: rate() needs two samples in its window, and the demo's promises must have
	// been made and kept in that time.
	api := "http://" + promAddr + "/api/v1/query"
	waitFor(t, ctx, "Prometheus to have scraped the demo 8 times", promOut.Name(), func() bool {
		r, err := promQuery(api, `count_over_time(up{job="callbackd"}[1m]) >= 8 and on() (max(up{job="callbackd"}) == 1)`)
		return err == nil && len(r) > 0
	})

	for _, q := range dashboardQueries(t) {
		expr := grafanaValues.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("panel %q query %s: %q uses a variable this test does not fill in", q.panel, q.refID, expr)
			continue
		}
		result, err := promQuery(api, expr)
		switch {
		case err != nil:
			t.Errorf("panel %q query %s: %s: %v", q.panel, q.refID, expr, err)
		case len(result) == 0:
			t.Errorf("panel %q query %s: %s returned no series from the demo", q.panel, q.refID, expr)
		default:
			t.Logf("panel %q query %s: %d series, e.g. %s", q.panel, q.refID, len(result), result[0])
		}
	}
}

// promQuery runs an instant query and returns its series, one line each ("{labels} value");
// a query Prometheus cannot parse or run is an error with Prometheus' own message.
func promQuery(api, expr string) ([]string, error) {
	resp, err := http.Get(api + "?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status, ErrorType, Error string
		Data                     struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		}
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want a vector (a panel plots series)", r.Data.ResultType)
	}
	var out []string
	for _, s := range r.Data.Result {
		v, _ := s.Value[1].(string)
		if x, err := strconv.ParseFloat(v, 64); err == nil && math.IsNaN(x) {
			v = "NaN (nothing happened in the window)"
		}
		out = append(out, fmt.Sprintf("%v %s", sortedLabels(s.Metric), v))
	}
	return out, nil
}

func sortedLabels(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return "{" + strings.Join(kv, ",") + "}"
}

// freeLoopbackAddr is a loopback port nothing listens on right now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// start runs a process for the rest of the test, its output to out, and stops it after.
// demoToken is the served demo's bearer token in these tests: /metrics needs it.
const demoToken = "dashboard-test-token-0123456789"

// getMetrics reads /metrics with the demo's token.
func getMetrics(url string) (*http.Response, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+demoToken)
	return http.DefaultClient.Do(req)
}

func start(t *testing.T, ctx context.Context, out *os.File, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "CALLBACKD_HTTP_TOKEN="+demoToken)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		_ = out.Close()
	})
}

// waitFor polls cond until it holds; on timeout it fails with the process log named.
func waitFor(t *testing.T, ctx context.Context, what, logFile string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("timed out waiting for %s; %s:\n%s", what, filepath.Base(logFile), log)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
