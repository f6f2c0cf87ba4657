package dialer

import (
	"testing"

	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/config"
)

const routesConfig = `
asterisk:
  - {name: pbx1, url: "http://127.0.0.1:8088/ari", username: u, password: p}
queues:
  - name: support
  - name: sales
  - name: reception
detector:
  default_queue: reception
  routes:
    - {asterisk_queue: sales, queue: sales}
    - {ring_group: "PJSIP/2001&PJSIP/2002", queue: sales}
    - {extension: _20XX, queue: sales}
    - {did: "+31205550300", queue: sales}
    - {context: from-trunk-support, queue: support}
agents:
  - {id: anna, endpoint: PJSIP/1003, extension: "1003", queues: [support]}
  - {id: piet, endpoint: PJSIP/2001, extension: "2001", queues: [support]}
dialer:
  customer_dial_template: PJSIP/{number}@provider
  caller_id: {number: "+31205550100"}
`

// TestRoutingOrder: routes in the order written, then the target's agent queue, then the
// default queue; the rule that chose is named.
func TestRoutingOrder(t *testing.T) {
	cfg, err := config.Parse([]byte(routesConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p := PolicyFrom(cfg)
	tests := []struct {
		name  string
		req   detect.Request
		queue string
		rule  string
	}{
		{"a missed Queue(sales) goes to sales, whoever its members are",
			detect.Request{Target: "sales", AsteriskQueue: "sales", DID: "+31205550100"}, "sales", "detector.routes[0] (asterisk_queue sales)"},
		{"an Asterisk queue nobody routes goes to the default queue, not by its name",
			detect.Request{Target: "2042", AsteriskQueue: "2042"}, "reception", RuleDefaultQueue},
		{"the sales ring group, its phones in any order",
			detect.Request{Target: "600", DialString: "PJSIP/2002&PJSIP/2001"}, "sales", "detector.routes[1] (ring_group PJSIP/2001&PJSIP/2002)"},
		{"an extension matching a pattern, before its agent's own queue",
			detect.Request{Target: "2001"}, "sales", "detector.routes[2] (extension _20XX)"},
		{"the DID of the advert",
			detect.Request{Target: "1004", DID: "+31205550300"}, "sales", "detector.routes[3] (did +31205550300)"},
		{"the inbound context",
			detect.Request{Target: "1004", Context: "from-trunk-support"}, "support", "detector.routes[4] (context from-trunk-support)"},
		{"no route: the target's agent queue",
			detect.Request{Target: "1003", DID: "+31205550100", Context: "from-trunk"}, "support", RuleAgentQueue + " (agent anna)"},
		{"no route, nobody's extension: the default queue",
			detect.Request{Target: "1005", DID: "+31205550100", Context: "from-trunk"}, "reception", RuleDefaultQueue},
	}
	for _, tt := range tests {
		q, rule := p.Route(tt.req)
		if q.Name != tt.queue || rule != tt.rule {
			t.Errorf("%s: queue %s by %q, want %s by %q", tt.name, q.Name, rule, tt.queue, tt.rule)
		}
	}
}
