package webhook

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callbackd/callbackd/internal/clock"
)

// BenchmarkDeliveries is the throughput of one daemon delivering one queue's events to a
// local endpoint that answers at once: each op is one event read, signed, sent, acknowledged.
func BenchmarkDeliveries(b *testing.B) {
	h := newHarness(b, clock.Real{})
	rc := newReceiver(b, answerOK)
	reg := prometheus.NewRegistry()
	d, err := New(Options{Redis: h.rdb, Streams: h.store, Instance: "daemon-1", Registerer: reg,
		Endpoints: []Endpoint{endpoint(b, "crm", rc)}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		h.promise("sales", fmt.Sprintf("+3120%07d", i))
	}
	r := &running{d: d, reg: reg}
	b.ResetTimer()
	go func() { _ = d.Run(ctx) }()
	waitFor(b, "every event is delivered", func() bool { return r.count("crm", ResultDelivered) == float64(b.N) })
	b.StopTimer()
}
