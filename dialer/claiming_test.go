package dialer

import (
	"context"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// Two processes with one instance id register the same application names: Asterisk sends the
// events of the first one's callback legs to the second from then on (ApplicationReplaced).
// The first claims no promise for that Asterisk's agents — though its monitor app, which
// nobody took, still reports them free — until it has taken the application back; then the
// promise is kept as usual.
func TestNoPromiseIsClaimedWhileAnotherClientHoldsTheControlApp(t *testing.T) {
	r := newRig(t, monday10, func(c *config.Config) {
		// How long the rig waits before it takes its application back.
		c.Asterisk[0].Reconnect.Max = config.Duration(2 * time.Minute)
	}, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	r.waitFor("bob and anna free", func() bool { return len(r.pool.Free()) == 2 })

	// The other process: the same control app, a monitor app of its own. Its clock never
	// moves, so it never takes the app back once the rig has.
	other, err := ari.NewConn(ari.Options{Name: "pbx", URL: r.pbx.URL() + "/ari", Username: "callbackd",
		Password: "callbackd-secret", MonitorApp: "other-monitor", ControlApp: "callbackd", Clock: clock.NewFake(monday10)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = other.Run(ctx, ari.Handlers{}, ari.Handlers{}) }()
	t.Cleanup(func() { cancel(); <-ran })
	r.waitFor("the other process to hold the control app", other.Connected)
	r.waitFor("the rig's connection to count as down", func() bool { return !r.conn.Connected() })

	job := r.enqueue(customer1, "voicemail", "1003", 2*time.Hour)
	// One dispatch pass of its own, beside the dispatcher's: whatever a pass would claim, this
	// one would have claimed by the time it returns.
	r.disp.pass(context.Background(), context.Background())
	got, err := r.store.Get(context.Background(), job.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if got.State != queue.StatePending {
		t.Errorf("promise %s while another client holds the control app; want it left pending", got.State)
	}
	if steps := r.steps(job.ID); len(steps) > 0 {
		t.Errorf("steps %q while another client holds the control app; want none", steps)
	}
	if n := len(r.requested("POST /ari/channels?")); n != 0 {
		t.Errorf("%d agent legs originated while another client holds the control app", n)
	}
	if free := len(r.pool.Free()); free != 2 {
		t.Errorf("%d agents free by the monitor app's account; want both: the monitor app still sees them", free)
	}

	// After reconnect.max the rig takes the app back and keeps the promise.
	if got := r.settled(job.ID); got.State != queue.StateKept {
		t.Errorf("promise %s after the rig took its app back; want kept\n%s", got.State, r.story())
	}
	r.waitFor("the other process to lose the app", func() bool { return !other.Connected() })
}
