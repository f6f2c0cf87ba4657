package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// screenshotEnv names a directory the browser test saves its screenshots in when set.
const screenshotEnv = "CALLBACKD_SUPERVISOR_SCREENSHOTS"

// browserStep bounds one wait in the browser. It is shorter than the page's half-minute
// refresh, so a row that appears within it was brought by the event stream; it only guards
// against a hang otherwise.
const browserStep = 20 * time.Second

// The supervisor page in a real headless Chromium, against a real daemon (daemon.New) on
// the fake Asterisk and a real redis-server: a promise made by a customer's voicemail
// appears, is seen taken by the agent who calls back, and a second one is cancelled with
// its button.
func TestTheSupervisorPageInABrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (Debian: apt-get install -y chromium); the supervisor page's browser test needs it")
	}
	const token = "supervisor-secret"
	pbx, clk := daemontest.StartPBX(t)
	cfg, err := config.Parse([]byte(demo.ConfigYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	cfg.HTTP.Token = config.Secret(token)
	rdb := redistest.Start(t, redistest.Options{}).Client()
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clk, Logger: zap.NewNop(), Instance: "test", Listen: "-"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	run, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(run) }()
	t.Cleanup(func() { stop(); <-ran })

	ctx := startBrowser(t, chromium)
	// The cancel button asks first; the supervisor says yes.
	dialogs := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true})
		}
	}()

	do(t, ctx, "signing in with the token in the address",
		chromedp.Navigate(srv.URL+"/?token="+token), chromedp.WaitVisible(css(`#link[data-state="on"]`)))
	if location := read(t, ctx, chromedp.Location()); location != srv.URL+"/" {
		t.Errorf("after signing in the address is %s; want %s/ (without the token)", location, srv.URL)
	}

	// Ria, the reception's agent, has no phone yet: the promise waits, at risk.
	const first, second = "+31201234561", "+31201234562"
	pbx.SetEndpoint("PJSIP/"+first+"@provider", aritest.Behavior{Answer: true, AnswerAfter: time.Second, HangupAfter: time.Hour})
	leavesVoicemail(pbx, first)
	a := waitPromise(t, d.Store(), first, queue.StatePending)
	row := fmt.Sprintf(`tr[data-promise=%q]`, a.ID)
	do(t, ctx, "the promise to appear on the page", chromedp.WaitVisible(css(row+`.at-risk[data-state="pending"]`)))
	screenshot(t, ctx, "supervisor-at-risk.png", 1280, 1000, false)
	// The status line (aria-live) says the latest event: made, or at risk just after.
	if said := read(t, ctx, chromedp.Text(css(`#said`))); !strings.Contains(said, "Promise to "+first+" in reception: ") {
		t.Errorf("the status line says %q; want it to announce an event of the promise to %s", said, first)
	}

	pbx.SetEndpoint("PJSIP/1001", aritest.Answers(time.Second)) // Ria arrives and answers
	do(t, ctx, "the page to show Ria calling the customer back",
		chromedp.WaitVisible(css(row+`[data-state="connected"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector("#agent-ria .state").textContent.includes("calling")`))
	if state := read(t, ctx, chromedp.Text(css(row+` .state`))); !strings.Contains(state, "ria") {
		t.Errorf("the promise's state reads %q; want it to name ria", state)
	}

	// A second customer while Ria is on the phone: it waits, and the supervisor cancels it.
	leavesVoicemail(pbx, second)
	b := waitPromise(t, d.Store(), second, queue.StatePending)
	brow := fmt.Sprintf(`tr[data-promise=%q]`, b.ID)
	do(t, ctx, "the second promise to appear", chromedp.WaitVisible(css(brow)))
	screenshots(t, ctx)
	for _, layout := range []struct {
		name          string
		width, height int64
		phone         bool
	}{{"a desk", 1280, 1000, false}, {"a phone", 390, 844, true}} {
		emulate := chromedp.EmulateViewport(layout.width, layout.height)
		if layout.phone {
			emulate = chromedp.EmulateViewport(layout.width, layout.height, chromedp.EmulateMobile)
		}
		do(t, ctx, "sizing the window as "+layout.name, emulate)
		screenReaderSees(t, ctx, layout.name, a, b)
	}
	do(t, ctx, "back to the desk's window", chromedp.EmulateViewport(1280, 1000))
	do(t, ctx, "cancelling the second promise with its button",
		chromedp.Click(css(`#cancel-reception-`+b.ID)),
		chromedp.WaitVisible(css(`.notice`)),
		chromedp.WaitNotPresent(css(brow)))
	if notice, want := read(t, ctx, chromedp.Text(css(`.notice`))), "Promise reception/"+b.ID+" cancelled."; notice != want {
		t.Errorf("the notice reads %q; want %q", notice, want)
	}
	got, err := d.Store().Get(context.Background(), b.Ref())
	if err != nil || got.State != queue.StateCancelled || !historyHas(got, "cancelled by http.token on the supervisor page") {
		t.Errorf("the cancelled promise in Redis: %s %v %+v; want cancelled by http.token on the supervisor page", got.State, err, got.History)
	}
	if got, err := d.Store().Get(context.Background(), a.Ref()); err != nil || got.State != queue.StateConnected {
		t.Errorf("the first promise: %s %v; want it still connected, untouched by the cancel", got.State, err)
	}
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// screenReaderSees checks the page as Chromium's accessibility tree gives it to a screen
// reader in one layout: every control has a name, the promises are a table whose rows are
// headed by their number, and the cancel buttons say which promise they cancel.
func screenReaderSees(t *testing.T, ctx context.Context, layout string, promises ...queue.Job) {
	t.Helper()
	res, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		t.Fatalf("reading the accessibility tree: %v", err)
	}
	roles := map[string][]string{}
	for _, n := range res.Nodes {
		if n.Ignored {
			continue
		}
		role, name := axString(n.Role), axString(n.Name)
		roles[role] = append(roles[role], name)
		switch role {
		case "button", "textbox", "columnheader", "link":
			if strings.TrimSpace(name) == "" {
				t.Errorf("%s: a %s without an accessible name", layout, role)
			}
		}
	}
	if len(roles["table"]) < 3 {
		t.Errorf("%s: %d tables in the accessibility tree; want the queues, promises and agents", layout, len(roles["table"]))
	}
	for _, j := range promises {
		if !slices.ContainsFunc(roles["rowheader"], func(n string) bool { return strings.Contains(n, j.Number) }) {
			t.Errorf("%s: no row headed by the number %s; row headers: %q", layout, j.Number, roles["rowheader"])
		}
		want := "Cancel the promise to " + j.Number + " in reception"
		if !slices.Contains(roles["button"], want) {
			t.Errorf("%s: no button named %q; buttons: %q", layout, want, roles["button"])
		}
	}
	if len(roles["status"]) == 0 {
		t.Errorf("%s: no status region announces what happens", layout)
	}
}

func axString(v *accessibility.Value) string {
	if v == nil {
		return ""
	}
	var s string
	if err := json.Unmarshal(v.Value, &s); err != nil {
		return string(v.Value)
	}
	return s
}

// startBrowser starts a headless Chromium that reaches nothing but the test's servers, closed
// when t ends.
func startBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root, Chromium starts only without its sandbox
		chromedp.Headless, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// do runs steps in the browser, failing the test with what was awaited and the page.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if _, err := withinStep(ctx, chromedp.Steps(steps...)); err != nil {
		t.Fatalf("%s: %v\npage:\n%s", what, err, pageHTML(ctx))
	}
}

// read runs one action that reads the page.
func read[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := withinStep(ctx, a)
	if err != nil {
		t.Fatalf("reading the page: %v\npage:\n%s", err, pageHTML(ctx))
	}
	return v
}

func withinStep[T any](ctx context.Context, a chromedp.Action[T]) (T, error) {
	c, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	return chromedp.Run(c, a)
}

func pageHTML(ctx context.Context) string {
	html, _ := withinStep(ctx, chromedp.OuterHTML(css("body")))
	return html
}

// screenshots saves the page as a desk and as a phone show it.
func screenshots(t *testing.T, ctx context.Context) {
	t.Helper()
	screenshot(t, ctx, "supervisor.png", 1280, 1000, false)
	screenshot(t, ctx, "supervisor-phone.png", 390, 844, true)
	do(t, ctx, "back to the desk's window", chromedp.EmulateViewport(1280, 1000))
}

// screenshot saves the whole page in a window of width×height as file, when screenshotEnv
// names a directory.
func screenshot(t *testing.T, ctx context.Context, file string, width, height int64, phone bool) {
	t.Helper()
	dir := os.Getenv(screenshotEnv)
	if dir == "" {
		return
	}
	emulate := chromedp.EmulateViewport(width, height)
	if phone {
		emulate = chromedp.EmulateViewport(width, height, chromedp.EmulateMobile)
	}
	do(t, ctx, "sizing the window for "+file, emulate)
	png := read(t, ctx, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
		t.Errorf("saving the screenshot: %v", err)
	}
}

// leavesVoicemail is a customer calling the main number and leaving a message in a mailbox
// that is nobody's extension: a promise of the reception queue.
func leavesVoicemail(pbx *aritest.Server, from string) {
	pbx.Inbound(aritest.InboundCall{From: from, To: "+31205550100", Steps: []aritest.Step{
		aritest.VoiceMail("2001@default", time.Second),
	}})
}

// waitPromise waits for number's promise in the reception queue to be in state.
func waitPromise(t *testing.T, store *queue.Store, number string, state queue.State) queue.Job {
	t.Helper()
	var found queue.Job
	daemontest.WaitUntil(t, "the promise to "+number+" to be "+string(state), func() bool {
		jobs, _ := store.List(context.Background(), "reception", queue.ListOptions{States: []queue.State{state}})
		for _, j := range jobs {
			if j.Number == number {
				found = j
				return true
			}
		}
		return false
	})
	return found
}

// A page opened while Redis is down says what it could not read and that it is not live; once
// Redis is back it follows the event stream again by itself and shows what happens, though the
// daemon refused its first stream.
func TestThePageFollowsTheStreamOnceRedisIsBack(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (Debian: apt-get install -y chromium); the supervisor page's browser test needs it")
	}
	p := newPage(t)
	ctx := startBrowser(t, chromium)
	p.redis.Stop()
	do(t, ctx, "opening the page with Redis down",
		chromedp.Navigate(p.srv.URL+"/?token=reader-token"),
		chromedp.WaitVisible(css(`.problem`)),
		chromedp.Poll[chromedp.Void](`document.querySelector("#link").textContent !== "not live"`))
	if state := read(t, ctx, chromedp.AttributeValue(css(`#link`), "data-state")); state.Value != "off" {
		t.Errorf("with Redis down the live mark is %q; want off", state.Value)
	}

	p.redis.Restart()
	// The page retries at its own pace (at most the board's half-minute refresh): this wait
	// only guards against a hang.
	back, cancel := context.WithTimeout(ctx, 3*browserStep)
	defer cancel()
	if _, err := chromedp.Run(back, chromedp.Steps(chromedp.WaitVisible(css(`#link[data-state="on"]`)), chromedp.WaitNotPresent(css(`.problem`)))); err != nil {
		t.Fatalf("the page to follow the stream again once Redis is back: %v\npage:\n%s", err, pageHTML(ctx))
	}
	j := p.promise(t, "support", "+31201234641", time.Hour)
	do(t, ctx, "the new promise to be announced and shown",
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector("#said").textContent.includes(%q)`, phone.Mask(j.Number))),
		chromedp.WaitVisible(css(fmt.Sprintf(`tr[data-promise=%q]`, j.ID))))
}

// The status line is a live region from the start: a screen reader announces only the changes
// of a region it already knows, so one that appears with its first words (from display: none)
// is not read out.
func TestTheStatusLineIsALiveRegionBeforeTheFirstEvent(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (Debian: apt-get install -y chromium); the supervisor page's browser test needs it")
	}
	p := newPage(t)
	ctx := startBrowser(t, chromium)
	do(t, ctx, "signing in", chromedp.Navigate(p.srv.URL+"/?token=reader-token"), chromedp.WaitVisible(css(`#link[data-state="on"]`)))
	res, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		t.Fatalf("reading the accessibility tree: %v", err)
	}
	var live []string
	for _, n := range res.Nodes {
		if !n.Ignored && axString(n.Role) == "status" {
			live = append(live, axString(n.Name))
		}
	}
	if len(live) == 0 {
		t.Errorf("before the first event the accessibility tree has no status region; the status line must be there for its announcements to be read out")
	}
	j := p.promise(t, "support", "+31201234661", time.Hour)
	do(t, ctx, "the new promise to be announced",
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector("#said").textContent.includes(%q)`, phone.Mask(j.Number))))
}

// A problem line is an alert, read out whenever one is put in the page: a board refreshed
// with the same problem keeps the line it had, so a screen reader does not announce it again
// with every event, while the rest of the board is new.
func TestARefreshDoesNotAnnounceTheSameProblemAgain(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (Debian: apt-get install -y chromium); the supervisor page's browser test needs it")
	}
	p := newPage(t)
	p.promise(t, "support", "+31201234651", time.Hour)
	bad := p.promise(t, "support", "+31201234652", 2*time.Hour)
	if err := p.redis.Client().HSet(context.Background(), "callbackd:{support}:job:"+bad.ID, "deadline", "soon").Err(); err != nil {
		t.Fatal(err)
	}
	ctx := startBrowser(t, chromium)
	do(t, ctx, "opening the page with a broken record",
		chromedp.Navigate(p.srv.URL+"/?token=reader-token"),
		chromedp.WaitVisible(css(`.problem`)),
		chromedp.WaitVisible(css(`#link[data-state="on"]`)))
	read(t, ctx, chromedp.Evaluate[bool](`document.querySelector(".problem").setAttribute("data-first", "yes"), true`))
	j := p.promise(t, "support", "+31201234653", 3*time.Hour)
	do(t, ctx, "the board to be refreshed with the new promise",
		chromedp.WaitVisible(css(fmt.Sprintf(`tr[data-promise=%q]`, j.ID))))
	if n := read(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll(".problem").length`)); n != 1 {
		t.Errorf("after the refresh the page has %d problem lines; want the one", n)
	}
	if kept := read(t, ctx, chromedp.Evaluate[bool](`document.querySelector(".problem[data-first]") !== null`)); !kept {
		t.Errorf("the refresh put the same problem line in anew (it is read out again):\n%s", pageHTML(ctx))
	}
	if first := read(t, ctx, chromedp.Evaluate[bool](`document.querySelector("#board").firstElementChild.className === "asof"`)); !first {
		t.Errorf("the board's order changed around the kept problem line:\n%s", pageHTML(ctx))
	}
}
