package web_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkBoard is one refresh of the live board (what the page fetches after an event) with
// 1000 open promises in each of the demo's two queues; the page shows the 200 most urgent of
// each.
func BenchmarkBoard(b *testing.B) {
	p := newPage(b)
	for q, queueName := range []string{"support", "reception"} {
		for i := range 1000 {
			p.promise(b, queueName, fmt.Sprintf("+3120%d%06d", q+1, i), time.Hour+time.Duration(i)*time.Second)
		}
	}
	c := p.signedIn(b, "reader-token")
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.Get(p.srv.URL + "/ui/board")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET /ui/board: %d", resp.StatusCode)
		}
	}
}
